"""Answer rows in bounded memory: chunked JSON lines equal json.dumps byte for byte; `run`
rows name a large answer's evidence by id, its geometry being in the answer's layer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import CRS

from georeason.geo.language.answer import Answer, Evidence
from georeason.geo.vector.scene import Scene
from georeason.pipeline import EVIDENCE_CHUNK, export_item_outputs, outcome_jsonl, outcome_row

REPO = Path(__file__).resolve().parents[1]
UTM = CRS.from_epsg(32633)


def evidence(n: int) -> list[Evidence]:
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        x, y = 500_000 + rng.uniform(0, 5000), 5_000_000 + rng.uniform(0, 5000)
        g = shapely.Point(x, y).buffer(rng.uniform(5, 30), quad_segs=3) if i % 3 else shapely.Point(x, y)
        out.append(Evidence(f"lake-{i + 1}", "lake", g, UTM, "object"))
    out.append(Evidence("$s2", "region", shapely.box(500_000, 5_000_000, 500_100, 5_000_100), UTM, "region"))
    return out


@pytest.mark.parametrize("n", [3, EVIDENCE_CHUNK, EVIDENCE_CHUNK + 1, 3 * EVIDENCE_CHUNK + 17])
@pytest.mark.parametrize("geometry", [True, False])
def test_chunked_line_is_json_dumps_byte_for_byte(n, geometry):
    a = Answer(n, "count", evidence=evidence(n), question="How many lakes are there?", details={"k": [1, 2]})
    want = a.to_json(geometry) if not geometry else outcome_row(a, "item-1")
    got = outcome_jsonl(a, "item-1" if geometry else None, geometry=geometry)
    assert got == json.dumps(want) + "\n"
    row = json.loads(got)
    assert len(row["evidence"]) == n + 1
    assert ("geometry" in row["evidence"][0]) is geometry
    assert row["evidence"][-1]["geometry"]["type"] == "Polygon"  # a computed region keeps its geometry


def test_chunked_line_refuses_non_finite_like_json_dumps():
    a = Answer(math.nan, "scalar", evidence=evidence(EVIDENCE_CHUNK + 5))
    with pytest.raises(ValueError):
        outcome_jsonl(a)


def test_run_rows_name_large_evidence_by_id(tmp_path):
    small = Answer(2, "count", evidence=evidence(2), question="How many ponds are there?")
    big = Answer(
        EVIDENCE_CHUNK + 1, "count", evidence=evidence(EVIDENCE_CHUNK + 1), question="How many lakes?"
    )
    ev = big.evidence[:-1]
    scene = Scene([e.id for e in ev], [e.label for e in ev], [e.geometry for e in ev], UTM)
    raster = REPO / "data_catalog" / "sample" / "sample_scene.tif"
    rows, _ = export_item_outputs("it", str(raster), [small, big], scene, tmp_path)
    assert all("geometry" in e for e in rows[0]["evidence"])  # small: inline, as before
    assert [e.get("geometry") for e in rows[1]["evidence"][:-1]] == [None] * (EVIDENCE_CHUNK + 1)
    assert rows[1]["evidence"][-1]["geometry"]["type"] == "Polygon"
    assert rows[1]["item"] == "it"
    # the geometry is in the answer's layers on disk (one per geometry type): every evidence id
    files = rows[1]["outputs"].get("parts") or [rows[1]["outputs"]["geojson"]]
    assert len(files) == 2  # points and polygons
    ids = set()
    for f in files:
        layer = json.loads(Path(f).read_text())
        ids |= {x["properties"]["id"] for x in layer["features"] if x["geometry"] is not None}
    assert {e.id for e in ev} <= ids


def test_batch_file_lines_written_in_pieces_equal_the_whole_lines(tmp_path):
    """`ask --questions --out`: each line written piece by piece is the line
    `_batch_line` builds whole; a non-finite number mid-line is cut off and the error
    row written in its place, the lines around it intact."""
    from georeason.cli_ask import _batch_line, _write_batch_line

    good = Answer(7, "count", evidence=evidence(EVIDENCE_CHUNK + 9), question="How many lakes are there?")
    bad = Answer(2.0, "scalar", evidence=evidence(EVIDENCE_CHUNK + 3), details={"x": math.inf})
    small = Answer(1, "count", evidence=evidence(2))
    path = tmp_path / "a.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for a in (good, bad, small):
            _write_batch_line(fh, a, True)
    want = "".join(_batch_line(a, True) for a in (good, bad, small))
    assert path.read_text(encoding="utf-8") == want
    rows = [json.loads(line) for line in want.splitlines()]
    assert len(rows) == 3 and rows[0]["answer"] == 7 and rows[2]["answer"] == 1
    assert rows[1]["answer"] != 2.0  # the error row, not the refused answer
