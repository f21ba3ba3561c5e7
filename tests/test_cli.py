"""The `georeason` command line, run as users run it (subprocesses of the installed script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOWN = REPO / "examples" / "town.geojson"
SAMPLE = REPO / "data_catalog" / "sample"


def georeason(*args: str, env=None, timeout=300) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("georeason")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "georeason.cli"]
    return subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        cwd=REPO,
    )


def test_ask_json_is_one_object_with_the_contract_keys():
    r = georeason("ask", "What is the distance between #b1 and #b2?", "--objects", str(TOWN), "--json")
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 1
    d = json.loads(lines[0])
    for key in ("question", "answer", "unit", "kind", "evidence", "abstained", "reason", "query"):
        assert key in d
    assert d["kind"] == "scalar" and d["unit"] == "m" and isinstance(d["answer"], float)
    assert {e["id"] for e in d["evidence"]} == {"b1", "b2"}


def test_unparseable_question_exits_2_listing_the_forms():
    r = georeason("ask", "Why is the sky blue?", "--objects", str(TOWN))
    assert r.returncode == 2
    assert "cannot parse the question" in r.stderr and "Supported forms" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_input_exits_2_naming_the_file(tmp_path):
    missing = tmp_path / "nope.geojson"
    r = georeason("ask", "How many lakes are there?", "--objects", str(missing))
    assert r.returncode == 2 and str(missing) in r.stderr and "Traceback" not in r.stderr


def test_abstention_exits_0():
    r = georeason("ask", "What is the area of the lake?", "--objects", str(TOWN), "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["abstained"] and "lake-1" in d["reason"] and d["answer"] is None


def test_ask_never_imports_heavy_modules():
    code = (
        "import sys\n"
        "from georeason.cli import app\n"
        f"sys.argv = ['georeason', 'ask', 'How far is #b1 from #b2?', '--objects', {str(TOWN)!r}, '--json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in HEAVY if m in sys.modules))\n"
    )
    # start-up: a question about a vector file needs none of these (stdout is a pipe, so
    # no rich table either); each one seen here was a measured share of `ask`'s latency
    heavy = (
        "prefect torch transformers dask rasterio scipy pystac rich pyogrio geopandas pandas pyarrow boto3"
    ).split()
    code = f"HEAVY = {heavy!r}\n" + code
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr
    assert '"answer"' in r.stdout  # it did answer


def test_ask_prints_plain_lines_off_a_terminal():
    r = georeason("ask", "What is the distance between #b1 and #b2?", "--objects", str(TOWN))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [x.split()[0] for x in lines] == ["question", "answer", "kind", "details", "evidence"]
    assert lines[0] == "question  What is the distance between #b1 and #b2?"
    assert lines[1].startswith("answer    ") and lines[1].endswith(" m")
    assert all(x == x.rstrip() for x in lines)


def _forms() -> list[str]:
    return [
        "What is the distance between #b1 and #lake-1?",
        "What is the distance between the centres of #b1 and #lake-1?",
        "How far is #b3 from the river?",
        "In which direction is #b5 from the largest lake?",
        "What is the bearing from #b1 to #b4?",
        "Is #b5 north of the largest lake?",
        "What is the topological relation between the river and the largest lake?",
        "Does the river intersect #lake-1?",
        "How many buildings are within 500 m of the largest lake?",
        "How many buildings are inside the region [9.15, 47.65, 9.19, 47.67]?",
        "Which building is nearest to the river?",
        "Which building is farthest from #lake-2?",
        "Which is the largest lake?",
        "What is the area of #park-1?",
        "What is the length of the river?",
        "Show all buildings within 300 m of the road.",
        "What is the area of the lake?",  # abstains: two lakes
        "Why is the sky blue?",  # error line, the rest go on
    ]


def test_questions_file_answers_500_questions_in_one_process(tmp_path):
    forms = _forms()
    qs = [forms[i % len(forms)] for i in range(500)]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"question": q}) + "\n" for q in qs))
    out = tmp_path / "answers.jsonl"
    r = georeason("ask", "--questions", str(qfile), "--objects", str(TOWN), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 500
    assert [r["question"] for r in rows] == qs
    errors = [r for r in rows if r.get("error")]
    assert len(errors) == qs.count("Why is the sky blue?") and all(
        "cannot parse" in e["error"] for e in errors
    )
    answered = [r for r in rows if not r.get("error") and not r["abstained"]]
    assert len(answered) == 500 - len(errors) - qs.count("What is the area of the lake?")


def test_schema_is_json():
    r = georeason("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["type"] == "array" and "$defs" in schema


def test_ask_on_a_raster_grounds_the_classes_it_needs(tmp_path):
    truth_lakes = 3
    r = georeason("ask", "How many lakes are there?", "--raster", str(SAMPLE / "sample_scene.tif"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answer"] == truth_lakes
    # combined with a vector layer (roads) and a pixel answer written as a mask
    mask = tmp_path / "water.tif"
    r = georeason(
        "ask",
        "Which pixels are water within 150 m of #road-1?",
        "--raster",
        str(SAMPLE / "sample_scene.tif"),
        "--objects",
        str(SAMPLE / "sample_roads.geojson"),
        "--mask",
        str(mask),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kind"] == "pixel" and d["answer"] > 0 and mask.exists()


@pytest.mark.e2e
def test_run_command_writes_answers(prefect_harness, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("How many lakes are there?\nWhat is the length of #road-1 in km?\n")
    r = georeason(
        "run",
        "--item",
        "sample",
        "--questions",
        str(qfile),
        "--out",
        str(tmp_path / "out"),
        env={"PREFECT_API_URL": prefect_harness},
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert [x["answer"] for x in rows][0] == 3
    assert rows[1]["unit"] == "km" and rows[1]["answer"] > 10
    assert "answered" in r.stdout
