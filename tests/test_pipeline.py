"""One pipeline path: ``ask --raster`` and ``run`` give the same objects and answers.

Both commands go through :class:`georeason.pipeline.Pipeline`; only the map over tile
batches differs (a plain loop for ``ask``, Prefect's ``task.map`` for ``run``). These
tests hold them to the same result on the sample item with a model grounder whose
``min_area_m2`` is set by ``--grounder-option``, and with a grounder that fails one tile
with a ``KeyError``; each question is compiled once per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyproj import Geod
from typer.testing import CliRunner

from georeason.cli import app
from georeason.config import read_questions
from georeason.geo.vector.scene import read_scene
from georeason.models.registry import prepare_spectral, register
from georeason.models.spectral import SpectralGrounder, class_family

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
RECORDED = SAMPLE / "recorded_outputs.jsonl"
FAIL_TILE = (1, 1)
pytestmark = pytest.mark.e2e


def _sample_questions() -> list[str]:
    return [
        s.question for s in read_questions(REPO / "data_catalog" / "questions.yaml") if s.item == "sample"
    ]


class KeyErrorGrounder(SpectralGrounder):
    """The spectral grounder, except that one tile raises a ``KeyError`` (a model-style bug)."""

    def ground(self, pixels, tile, classes, bands):
        if tuple(tile.index) == FAIL_TILE:
            raise KeyError(f"no output for tile {tuple(tile.index)}")
        return super().ground(pixels, tile, classes, bands)


def _register_failing() -> None:
    def factory(cfg):
        return KeyErrorGrounder(cfg.get("thresholds"))

    register("keyerror-spectral", factory, lambda label: class_family(label) is not None, prepare_spectral)


def _comparable(rows: list[dict]) -> list[dict]:
    """Rows without what legitimately differs: item field, output paths, mask file names."""
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in ("item", "outputs")}
        r["details"] = {k: v for k, v in (r.get("details") or {}).items() if k != "mask"}
        out.append(r)
    return out


def _ask_and_run(
    api_url: str, tmp_path: Path, questions: list[str], *args: str
) -> tuple[list[dict], list[dict]]:
    qfile = tmp_path / "q.txt"
    qfile.write_text("".join(q + "\n" for q in questions), encoding="utf-8")
    runner = CliRunner()
    ask = runner.invoke(
        app,
        ["ask", "--item", "sample", "--questions", str(qfile), "--out", str(tmp_path / "ask.jsonl")]
        + ["--mask", str(tmp_path / "m.tif"), *args],
    )
    assert ask.exit_code == 0, ask.output[-3000:]
    # `run` in a child process, as a user runs it (Prefect's log handlers outlive an
    # in-process CliRunner's streams); the child registers the same test grounder
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import test_pipeline; test_pipeline._register_failing(); "
        "from georeason.cli import main; sys.argv = sys.argv[1:]; main()"
    )
    run_args = [
        "georeason",
        "run",
        "--item",
        "sample",
        "--questions",
        str(qfile),
        "--out",
        str(tmp_path / "run"),
    ]
    run_args += ["--results", str(tmp_path / "results"), *args]
    env = dict(os.environ, PREFECT_API_URL=api_url)
    run = subprocess.run([sys.executable, "-c", code, *run_args], env=env, capture_output=True, text=True)
    # exit 1 means "some answers are errors" (the question no template knows), not a crash
    assert run.returncode in (0, 1) and (tmp_path / "run" / "answers.jsonl").exists(), run.stderr[-3000:]
    asked = [json.loads(x) for x in (tmp_path / "ask.jsonl").read_text().splitlines()]
    ran = [json.loads(x) for x in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    return asked, ran


def test_ask_and_run_agree_with_min_area_for_a_model_grounder(prefect_harness, tmp_path):
    questions = _sample_questions()
    min_area = 1_000_000.0  # 1 km2: keeps lake-1 and lake-2 of the truth, drops lake-3
    asked, ran = _ask_and_run(
        prefect_harness,
        tmp_path,
        questions,
        "--grounder",
        "recorded",
        "--outputs",
        str(RECORDED),
        "--grounder-option",
        f"min_area_m2={min_area}",
    )
    assert _comparable(asked) == _comparable(ran)
    assert [r["question"] for r in ran] == questions
    # the option reached the merge in both: lakes are those of the truth at least 1 km2
    # (geodesic areas on WGS84, computed here with pyproj directly)
    geod = Geod(ellps="WGS84")
    truth = read_scene(SAMPLE / "sample_truth.geojson")
    want = sum(
        1
        for lab, g in zip(truth.labels, truth.lonlat)
        if lab == "lake" and abs(geod.geometry_area_perimeter(g)[0]) >= min_area
    )
    assert want == 2
    count = next(r for r in asked if r["question"] == "How many lakes are there?")
    assert count["answer"] == want
    # and the objects are the same: the run's objects layer holds exactly the lakes the answers name
    # (one GeoJSON per geometry type: objects.polygons.geojson beside the roads' lines)
    layers = sorted((tmp_path / "run" / "sample").glob("objects*.geojson"))
    assert layers
    features = [f for p in layers for f in json.loads(p.read_text())["features"]]
    lakes = sorted(f["id"] for f in features if f["properties"]["class"] == "lake")
    assert lakes == sorted(e["id"] for e in count["evidence"])


def test_ask_and_run_agree_when_a_tile_fails(prefect_harness, tmp_path):
    _register_failing()
    questions = [
        "How many lakes are there?",
        "Which is the largest lake?",
        "What is the topological relation between #road-1 and #road-2?",
        "Why?",
    ]
    asked, ran = _ask_and_run(prefect_harness, tmp_path, questions, "--grounder", "keyerror-spectral")
    assert _comparable(asked) == _comparable(ran)
    by_q = {r["question"]: r for r in asked}
    # answers that depend on grounded classes abstain, naming the tile and the KeyError ...
    for q in questions[:2]:
        assert by_q[q]["abstained"], by_q[q]
        assert f"tile {FAIL_TILE}" in by_q[q]["reason"] and "KeyError" in by_q[q]["reason"]
    # ... the answer from the roads layer alone is given; a question no template knows is an error row
    assert not by_q[questions[2]]["abstained"] and by_q[questions[2]]["answer"]
    assert by_q["Why?"]["error"] and by_q["Why?"]["answer"] is None


def test_each_question_compiled_once_per_run(prefect_harness, tmp_path, monkeypatch):
    """Two items asked the same questions: each question is compiled and validated once."""
    import georeason.geo.language.english as english
    from georeason.catalog import add_item
    from georeason.flows.answer import answer
    from georeason.runstate import result_of

    calls = {"compile": 0, "validate": 0}
    compile_question, validate_program = english.compile_question, english.validate_program

    def counting_compile(q):
        calls["compile"] += 1
        return compile_question(q)

    def counting_validate(*a, **kw):
        calls["validate"] += 1
        return validate_program(*a, **kw)

    monkeypatch.setattr(english, "compile_question", counting_compile)
    monkeypatch.setattr(english, "validate_program", counting_validate)
    cat = tmp_path / "cat"
    for item in ("a", "b"):
        add_item(cat, SAMPLE / "sample_scene.tif", vectors=[SAMPLE / "sample_roads.geojson"], item_id=item)
    questions = ["How many lakes are there?", "Is the smallest lake south of #road-1?", "Why?"]
    qfile = tmp_path / "q.txt"
    qfile.write_text("".join(q + "\n" for q in questions), encoding="utf-8")
    # "Why?" is an error row, so the run ends Failed (AnsweredWithErrors); its result is kept
    result = result_of(
        answer(
            catalog=str(cat),
            questions=str(qfile),
            out=str(tmp_path / "out"),
            results_dir=str(tmp_path / "r"),
            return_state=True,
        )
    )
    assert len(result["rows"]) == 6  # 3 questions x 2 items
    assert calls == {"compile": 3, "validate": 2}  # "Why?" does not compile, so is not validated
    # and through `ask --questions` as well
    calls.update(compile=0, validate=0)
    res = CliRunner().invoke(
        app, ["ask", "--item", "sample", "--questions", str(qfile), "--out", str(tmp_path / "a.jsonl")]
    )
    assert res.exit_code == 0, res.output[-2000:]
    assert calls == {"compile": 3, "validate": 2}
