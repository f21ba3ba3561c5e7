"""``georeason ask``'s fast start: the console script reads a plain ``ask`` command line
without typer (georeason/cli_entry.py), and programs of question shapes compiled before
come from disk without lark (geo/language/shapes.py). The oracle of every output here is
the typer command line (``python -m georeason.cli``) with an empty program cache."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import shapely
import shapely.ops
from pyproj import Geod

from georeason.cli_entry import fast_ask_args

REPO = Path(__file__).resolve().parents[1]
TOWN = REPO / "examples" / "town.geojson"


def _run(module: str, args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env=dict(os.environ, GEOREASON_CACHE_DIR=str(cache)),
    )


def _fast(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return _run("georeason.cli_entry", args, cache)


def _typer(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return _run("georeason.cli", args, cache)


def test_plain_ask_command_lines_are_read_without_typer():
    q = "How many lakes are there?"
    assert fast_ask_args(["ask", q, "--objects", "t.geojson"]) == (
        {},
        {"question": q, "objects": Path("t.geojson")},
    )
    assert fast_ask_args(["-q", "--debug", "ask", "-o", "t.geojson", q, "--json", "--crs=EPSG:4326"]) == (
        {"quiet": True, "debug": True},
        {"objects": Path("t.geojson"), "question": q, "as_json": True, "crs": "EPSG:4326"},
    )
    assert fast_ask_args(["ask", "--questions", "q.txt", "-o", "t.geojson", "--no-evidence-geometry"]) == (
        {},
        {"questions": Path("q.txt"), "objects": Path("t.geojson"), "evidence_geometry": False},
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["schema"],
        ["run", "--item", "sample"],
        ["ask", "--help"],
        ["ask", "q", "--raster", "x.tif"],  # an option the fast path does not take
        ["ask", "q", "--item", "sample"],
        ["ask", "q", "-o"],  # a value missing
        ["ask", "q", "-o", "-x.geojson"],  # a value that looks like an option
        ["ask", "q", "--objects="],  # an empty value
        ["ask", "q", "-ot.geojson"],  # short option with its value attached
        ["ask", "q", "-o", "a", "-o", "b"],  # repeated
        ["ask", "q", "--json", "--json"],
        ["ask", "q", "r", "-o", "t"],  # two questions
        ["ask", "--", "-q"],
        ["ask", "-", "-o", "t"],
        ["ask", "q", "--json=yes", "-o", "t"],
        ["-q", "-v", "ask", "q", "-o", "t"],  # conflicting globals: typer says so
        ["-q", "-q", "ask", "q", "-o", "t"],
        ["--debug", "ask", "q", "--debug", "-o", "t"],  # a global option after ask
        ["-qv", "ask", "q", "-o", "t"],
        ["--quiet"],
        ["catalog", "list"],
    ],
)
def test_anything_else_goes_to_typer(argv):
    assert fast_ask_args(argv) is None


def _cases(tmp: Path) -> list[list[str]]:
    town = str(TOWN)
    qfile = tmp / "q.txt"
    qfile.write_text(
        "What is the distance between #b1 and #lake-1?\nHow many buildings are within 500 m of the largest lake?\n"
        "Why is the sky blue?\nWhat is the area of the lake?\n"
    )
    query = tmp / "query.json"
    query.write_text(
        json.dumps(
            [
                {"id": "a", "op": "object", "args": {"id": "b1"}},
                {"id": "b", "op": "object", "args": {"id": "b4"}},
                {"id": "d", "op": "distance", "args": {"a": "$a", "b": "$b", "mode": "min", "unit": "km"}},
                {"id": "out", "op": "answer", "args": {"value": "$d"}},
            ]
        )
    )
    return [  # (command line, exit status: 2 for bad input, else 0; answers, abstentions)
        (["ask", "What is the distance between #b1 and #lake-1?", "--objects", town], 0),
        (["ask", "What is the distance between #b7 and #b2?", "-o", town, "--json"], 0),
        (["-q", "ask", "--objects=" + town, "Which building is nearest to the river?", "--json"], 0),
        (["ask", "How many buildings are inside the region [9.15, 47.65, 9.19, 47.67]?", "-o", town], 0),
        (["ask", "What is the area of the lake?", "-o", town, "--json"], 0),  # abstains: two lakes
        (["ask", "Why is the sky blue?", "-o", town], 2),  # the forms listed
        (["ask", "How far is #nope-9 from #b1?", "-o", town], 0),  # abstains: no such object
        (["ask", "How many lakes are there?", "-o", str(tmp / "missing.geojson")], 2),
        (["ask", "-o", town], 2),  # no question
        (["ask", "How many lakes are there?", "--questions", str(qfile), "-o", town], 2),  # two
        (["ask", "--questions", str(qfile), "-o", town], 0),
        (["ask", "--questions", str(qfile), "-o", town, "--evidence-geometry"], 0),
        (["ask", "--query", str(query), "-o", town, "--json"], 0),
        (["ask", "How many lakes are there?", "-o", town, "--out", town], 2),  # would overwrite its input
        (["ask", "How many lakes are there?", "-o", town, "--crs", "EPSG:4326", "--class-field", "class"], 0),
        (["ask", "How many lakes are there?", "-o", town, "--id-field", "no_such_field"], 2),
    ]


def test_fast_path_prints_what_typer_prints(tmp_path):
    """Same stdout, stderr and exit status as the typer command, case by case; the fast
    path twice (the second time with programs from the cache its first run wrote)."""
    for n, (args, code) in enumerate(_cases(tmp_path)):
        assert fast_ask_args(args) is not None, args
        want = _typer(args, tmp_path / f"typer-{n}")
        assert want.returncode == code and "Traceback" not in want.stderr, (args, want.stderr)
        assert want.stdout if code == 0 else want.stderr.startswith("georeason: error: ")
        for cache in ("cold", "warm"):
            got = _fast(args, tmp_path / f"fast-{n}")
            assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), (
                cache,
                args,
            )


def test_fast_path_writes_the_same_files(tmp_path):
    for kind, run in (("typer", _typer), ("fast", _fast)):
        out = tmp_path / kind / "answer.geojson"
        out.parent.mkdir()
        r = run(
            ["ask", "Show all buildings within 300 m of the road.", "-o", str(TOWN), "--out", str(out)],
            tmp_path,
        )
        assert r.returncode == 0, r.stderr
        jsonl = tmp_path / kind / "answers.jsonl"
        r = run(
            [
                "ask",
                "--questions",
                str(REPO / "examples" / "questions.txt"),
                "-o",
                str(TOWN),
                "--out",
                str(jsonl),
            ],
            tmp_path,
        )
        assert r.returncode == 0, r.stderr
    # one file per geometry type (polygons, the road's lines), then the JSONL
    names = sorted(p.name for p in (tmp_path / "typer").iterdir())
    assert names == ["answer.lines.geojson", "answer.polygons.geojson", "answers.jsonl"]
    assert sorted(p.name for p in (tmp_path / "fast").iterdir()) == names
    for name in names:
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "typer" / name).read_bytes()


def _geodesic_min_distance(a, b) -> float:
    """Hand-rolled check: geodesic length of shapely's nearest points (lon/lat), the
    minimum distance for objects this small and far apart."""
    pa, pb = shapely.ops.nearest_points(a, b)
    return Geod(ellps="WGS84").inv(pa.x, pa.y, pb.x, pb.y)[2]


def test_a_cached_shape_answers_other_ids(tmp_path):
    """The program of 'distance between #X and #Y' learnt from b1/lake-1 is used for b7/b2
    in a later process (no lark imported), with the right objects and distance."""
    cache = tmp_path / "cache"
    first = _fast(["ask", "What is the distance between #b1 and #lake-1?", "-o", str(TOWN), "--json"], cache)
    assert first.returncode == 0, first.stderr
    files = sorted(p.name for p in cache.iterdir())
    assert [f for f in files if f.startswith("programs-")], files
    code = (
        "import sys, json\n"
        "from georeason.cli_entry import main\n"
        "sys.argv = ['georeason', 'ask', 'What is the distance between #b7 and #b2?', '-o', sys.argv[1], '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in ('lark', 'georeason.geo.language.grammar', 'typer', 'click') if m in sys.modules)))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(TOWN)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, GEOREASON_CACHE_DIR=str(cache)),
    )
    assert r.returncode == 0, r.stderr
    answer_line, modules_line = r.stdout.splitlines()
    assert json.loads(modules_line) == []
    d = json.loads(answer_line)
    assert {e["id"] for e in d["evidence"]} == {"b7", "b2"}
    feats = {
        f["properties"]["id"]: shapely.geometry.shape(f["geometry"])
        for f in json.loads(TOWN.read_text())["features"]
    }
    assert math.isclose(d["answer"], _geodesic_min_distance(feats["b7"], feats["b2"]), rel_tol=1e-3)
    typer_answer = _typer(
        ["ask", "What is the distance between #b7 and #b2?", "-o", str(TOWN), "--json"], tmp_path
    )
    assert json.loads(typer_answer.stdout) == d  # and exactly the answer of a fresh parse


def test_a_cache_file_someone_else_could_write_is_not_read(tmp_path):
    cache = tmp_path / "cache"
    q = ["ask", "What is the distance between #b1 and #lake-1?", "-o", str(TOWN), "--json"]
    want = _fast(q, cache)
    (path,) = cache.glob("programs-*.json")
    # a planted program: the distance in km instead of m
    data = json.loads(path.read_text())
    data["shapes"] = {k: v.replace('"unit": "m"', '"unit": "km"') for k, v in data["shapes"].items()}
    path.write_text(json.dumps(data))
    path.chmod(0o666)
    assert _fast(q, cache).stdout == want.stdout  # refused: parsed afresh
    path.write_text("{not json")
    path.chmod(0o600)
    assert _fast(q, cache).stdout == want.stdout  # unreadable: parsed afresh


def test_fast_path_imports_neither_typer_nor_the_heavy_modules(tmp_path):
    """Extends test_cli.test_ask_never_imports_heavy_modules to the console script's path:
    no typer/click/pydantic-settings (the command tree), and with the program cache warm no
    lark or grammar either."""
    heavy = (
        "prefect torch transformers dask rasterio scipy pystac rich pyogrio geopandas pandas pyarrow boto3 "
        "typer click georeason.cli georeason.cli_catalog georeason.config"
    ).split()
    code = (
        f"HEAVY = {heavy!r}\n"
        "import sys\n"
        "from georeason.cli_entry import main\n"
        f"sys.argv = ['georeason', 'ask', 'How far is #b1 from #b2?', '--objects', {str(TOWN)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in HEAVY if m in sys.modules))\n"
        "print('LARK', sorted(m for m in ('lark', 'georeason.geo.language.grammar') if m in sys.modules))\n"
    )
    env = dict(os.environ, GEOREASON_CACHE_DIR=str(tmp_path))
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        for _ in range(2)
    ]
    for r in runs:
        assert "HEAVY []" in r.stdout, r.stdout + r.stderr
        assert '"answer"' in r.stdout
    assert "LARK ['georeason.geo.language.grammar', 'lark']" in runs[0].stdout  # first: parsed
    assert "LARK []" in runs[1].stdout  # then: from the program cache


def test_program_cache_keeps_the_newest_shapes(tmp_path, monkeypatch):
    from georeason.geo.language import shapes

    monkeypatch.setenv("GEOREASON_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shapes, "MAX_SHAPES", 3)
    shapes.save("#x", {"a": "[1]", "b": "[2]"})
    assert shapes.load() == ("#x", {"b": "[2]", "a": "[1]"})
    shapes.save("#x", {"c": "[3]", "d": "[4]"})  # d, c newest; then b; a dropped
    assert shapes.load() == ("#x", {"d": "[4]", "c": "[3]", "b": "[2]"})
    (path,) = tmp_path.glob("programs-*.json")
    assert path == shapes.cache_path() and oct(path.stat().st_mode & 0o777) == "0o600"
    path.chmod(0o620)  # group-writable: not read
    assert shapes.load() == (None, {})
