"""The bad-input corpus: every user mistake is one line on stderr and exit 2, before work.

Each case runs the real CLI (``typer`` test runner, in process) on a bad input and checks:
the exit code; that the message names the input; that no Python traceback and no
unhandled exception escaped; and that no output or temporary file was left behind in the
case's folder. Kinds: ``ask`` (question, ``--query``, ``--questions``, ``--raster``,
``--objects``, ``--item``), ``run``, ``catalog add/list/validate``, config files and
environment, recorded model outputs. Held-out raster kinds: rotated, corrupt, truncated,
zero-byte, not-a-TIFF, all-nodata, NaN float, identity transform, no CRS.

Then Hypothesis: random strings to the question parser, templated questions with random
(extreme) numbers, random text to the recorded-outputs reader and every model-output
parser: only project errors, answers or abstentions come out.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from georeason.cli import app
from georeason.errors import GeoreasonError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
TOWN = REPO / "examples" / "town.geojson"
runner = CliRunner()
T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)


# --------------------------------------------------------------------------- inputs


def _tif(path: Path, *, crs="EPSG:32633", transform=T, dtype="uint8", data=None, nodata=None, tiled=False):
    arr = data if data is not None else np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(dtype)
    prof = dict(
        driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype.name
    )
    if crs is not None:
        prof["crs"] = crs
    if transform is not None:
        prof["transform"] = transform
    if nodata is not None:
        prof["nodata"] = nodata
    if tiled:
        prof.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **prof) as d:
            d.write(arr)
    return path


def bad_raster(kind: str, d: Path) -> Path:
    """One held-out kind of bad raster, written in ``d``."""
    p = d / f"{kind}.tif"
    if kind == "rotated":
        return _tif(p, transform=Affine(10, 2, 500000, 2, -10, 5_000_000))
    if kind == "identity":
        return _tif(p, transform=None)
    if kind == "nocrs":
        return _tif(p, crs=None)
    if kind == "zero":
        p.write_bytes(b"")
        return p
    if kind == "notatiff":
        p.write_text("this is not an image\n" * 50)
        return p
    if kind in ("truncated", "corrupt"):
        data = np.random.default_rng(1).integers(0, 5000, (2, 512, 512)).astype("uint16")
        full = _tif(d / f"{kind}-full.tif", data=data, tiled=True)
        raw = bytearray(full.read_bytes())
        full.unlink()
        if kind == "truncated":
            p.write_bytes(bytes(raw[: len(raw) // 2]))
        else:  # every data byte past the header overwritten: blocks fail to decompress
            raw[4096:] = bytes(len(raw) - 4096)
            p.write_bytes(bytes(raw))
        return p
    if kind == "missing":
        return d / "nowhere.tif"
    raise ValueError(kind)


@dataclass
class Case:
    """One corpus case: CLI args (``{d}`` = the case folder), expected exit, message parts."""

    name: str
    args: list[str]
    exit: int = 2
    says: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    may_create: tuple[str, ...] = ()  # files the case may leave (e.g. a catalog it was given)


def _write(rel: str, text: str) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)

    return f


def _copy(src: Path, rel: str) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        shutil.copy(src, d / rel)

    return f


def _both(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def f(d: Path) -> None:
        for fn in fns:
            fn(d)

    return f


def _raster(kind: str) -> Callable[[Path], None]:
    return lambda d: None if kind == "missing" else bad_raster(kind, d) and None


def _catalog(d: Path) -> None:
    from georeason.catalog import add_item

    shutil.copy(SAMPLE / "sample_scene.tif", d / "scene.tif")
    shutil.copy(SAMPLE / "sample_roads.geojson", d / "roads.geojson")
    add_item(d / "cat", d / "scene.tif", vectors=[d / "roads.geojson"], item_id="sample")
    (d / "cat" / "questions.yaml").write_text(
        "questions:\n  - {item: sample, question: 'How many lakes are there?'}\n"
    )


def _lonlat_fc(coords, crs_member=None) -> str:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": f"p{i}", "class": "well"},
                "geometry": {"type": "Point", "coordinates": c},
            }
            for i, c in enumerate(coords)
        ],
    }
    if crs_member:
        fc["crs"] = {"type": "name", "properties": {"name": crs_member}}
    return json.dumps(fc)


Q = "How many lakes are there?"
DIST = "What is the distance between #lake-1 and #road-1?"
RASTER_KINDS = ["rotated", "identity", "nocrs", "zero", "notatiff", "truncated", "corrupt", "missing"]
RASTER_SAYS = {
    "rotated": "rotat",
    "identity": "identity",
    "nocrs": "no coordinate reference system",
    "zero": "zero.tif",
    "notatiff": "notatiff.tif",
    "truncated": "truncated.tif",
    "corrupt": "corrupt.tif",
    "missing": "nowhere.tif",
}

CASES: list[Case] = []

# ---- ask: questions and values ----------------------------------------------------
CASES += [
    Case("ask-nothing", ["ask"], says=("exactly one of",)),
    Case(
        "ask-two-inputs",
        ["ask", Q, "--questions", "{d}/q.txt"],
        says=("exactly one of",),
        setup=_write("q.txt", Q),
    ),
    Case(
        "ask-unparseable",
        ["ask", "Why is the sky blue?", "--objects", str(TOWN)],
        says=("Why is the sky blue",),
    ),
    Case("ask-empty-question", ["ask", "", "--objects", str(TOWN)], says=("cannot parse the question",)),
    Case(
        "ask-lat-95",
        ["ask", "How far is #lake-1 from (9.1, 95)?", "--objects", str(TOWN)],
        says=("latitude 95",),
    ),
    Case(
        "ask-lat-minus-91",
        ["ask", "How far is #lake-1 from (9.1, -91)?", "--objects", str(TOWN)],
        says=("latitude -91",),
    ),
    Case(
        "ask-lon-200",
        ["ask", "How far is #lake-1 from (200, 47)?", "--objects", str(TOWN)],
        says=("longitude 200",),
    ),
    Case(
        "ask-lon-minus-181",
        ["ask", "How far is #lake-1 from (-181, 47)?", "--objects", str(TOWN)],
        says=("longitude -181",),
    ),
    Case(
        "ask-bbox-lat",
        ["ask", "How many buildings are inside [9.1, 47.6, 9.2, 97.7]?", "--objects", str(TOWN)],
        says=("latitude 97.7",),
    ),
    Case(
        "ask-within-1e300-km",
        ["ask", "Which buildings are within 1e300 km of #road-1?", "--objects", str(TOWN)],
        says=("1e+300",),
    ),
    Case(
        "ask-within-30000-km",
        ["ask", "How many buildings are within 30000 km of #road-1?", "--objects", str(TOWN)],
        says=("30000 km",),
    ),
    Case(
        "ask-unknown-id",
        ["ask", "What is the distance between #nope and #road-1?", "--objects", str(TOWN)],
        exit=0,  # an abstention naming it: exit 0 is the documented contract
        says=("nope",),
    ),
    Case("ask-unknown-item", ["ask", Q, "--item", "nope"], says=("nope", "sample", "landsat")),
    Case(
        "ask-item-missing-catalog", ["ask", Q, "--item", "sample", "--catalog", "{d}/nocat"], says=("nocat",)
    ),
    Case("ask-bad-tile-px", ["ask", Q, "--objects", str(TOWN), "--tile-px", "0"], says=("--tile-px 0",)),
    Case(
        "ask-overlap-ge-tile",
        ["ask", Q, "--objects", str(TOWN), "--tile-px", "64", "--overlap-px", "64"],
        says=("overlap",),
    ),
    Case(
        "ask-bad-crs-flag",
        ["ask", Q, "--objects", "{d}/p.geojson", "--crs", "EPSG:99999999"],
        says=("EPSG:99999999",),
        setup=_write("p.geojson", _lonlat_fc([[9.1, 47.6]])),
    ),
    Case(
        "ask-bad-id-field",
        ["ask", Q, "--objects", str(TOWN), "--id-field", "nosuchfield"],
        says=("nosuchfield",),
    ),
]
# ---- ask: --objects files ----------------------------------------------------------
CASES += [
    Case("objects-missing", ["ask", Q, "--objects", "{d}/none.geojson"], says=("none.geojson",)),
    Case(
        "objects-zero-byte",
        ["ask", Q, "--objects", "{d}/z.geojson"],
        says=("z.geojson",),
        setup=_write("z.geojson", ""),
    ),
    Case(
        "objects-not-json",
        ["ask", Q, "--objects", "{d}/x.geojson"],
        says=("x.geojson",),
        setup=_write("x.geojson", "{nope"),
    ),
    Case(
        "objects-3857-member-on-lonlat",
        ["ask", "What is the distance between #p0 and #p1?", "--objects", "{d}/m.geojson"],
        says=("m.geojson", "look like lon/lat"),
        setup=_write("m.geojson", _lonlat_fc([[9.1, 47.6], [9.2, 47.7]], "urn:ogc:def:crs:EPSG::3857")),
    ),
    Case(
        "objects-lat-95",
        ["ask", "How many wells are there?", "--objects", "{d}/l.geojson"],
        says=("l.geojson", "latitude 95"),
        setup=_write("l.geojson", _lonlat_fc([[9.1, 95.0]])),
    ),
    Case(
        "objects-lon-200",
        ["ask", "How many wells are there?", "--objects", "{d}/l.geojson"],
        says=("l.geojson", "longitude 200"),
        setup=_write("l.geojson", _lonlat_fc([[200.0, 45.0]])),
    ),
    Case(
        "objects-utm-as-4326",
        ["ask", "How many wells are there?", "--objects", "{d}/u.geojson"],
        says=("u.geojson",),
        setup=_write("u.geojson", _lonlat_fc([[500000.0, 5000000.0]])),
    ),
    Case("objects-directory", ["ask", Q, "--objects", "{d}"], says=("could not read",)),
]
# ---- ask: --query programs ---------------------------------------------------------
_BUF = [
    {"id": "r", "op": "object", "args": {"id": "road-1"}},
    {"id": "b", "op": "buffer", "args": {"of": "$r", "distance": 6000, "unit": "km"}},
    {"id": "w", "op": "select", "args": {"cls": "building"}},
    {"id": "i", "op": "inside", "args": {"objects": "$w", "region": "$b"}},
    {"id": "c", "op": "count", "args": {"objects": "$i"}},
    {"id": "a", "op": "answer", "args": {"value": "$c"}},
]


def _within(distance) -> str:
    steps = [
        {"id": "r", "op": "object", "args": {"id": "road-1"}},
        {"id": "w", "op": "select", "args": {"cls": "building"}},
        {"id": "i", "op": "within_distance", "args": {"objects": "$w", "of": "$r", "distance": distance}},
        {"id": "a", "op": "answer", "args": {"value": "$i"}},
    ]
    return json.dumps(steps).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")


CASES += [
    Case("query-missing", ["ask", "--query", "{d}/none.json", "--objects", str(TOWN)], says=("none.json",)),
    Case(
        "query-not-json",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("q.json",),
        setup=_write("q.json", "[{"),
    ),
    Case(
        "query-not-list",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("list",),
        setup=_write("q.json", '{"op": "count"}'),
    ),
    Case(
        "query-unknown-op",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("teleport",),
        setup=_write("q.json", '[{"id": "a", "op": "teleport", "args": {}}]'),
    ),
    Case(
        "query-dangling-ref",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("$zz",),
        setup=_write("q.json", '[{"id": "a", "op": "answer", "args": {"value": "$zz"}}]'),
    ),
    Case(
        "query-nan-distance",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("distance",),
        setup=_write("q.json", _within("NaN")),
    ),
    Case(
        "query-inf-distance",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("distance",),
        setup=_write("q.json", _within("Infinity")),
    ),
    Case(
        "query-negative-distance",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("distance",),
        setup=_write("q.json", _within(-5)),
    ),
    Case(
        "query-buffer-6000-km",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("6000 km",),
        setup=_write("q.json", json.dumps(_BUF)),
    ),
    Case(
        "query-geometry-lat",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("latitude 100",),
        setup=_write(
            "q.json",
            json.dumps(
                [
                    {"id": "g", "op": "geometry", "args": {"coords": [[9.0, 100.0]]}},
                    {"id": "a", "op": "answer", "args": {"value": "$g"}},
                ]
            ),
        ),
    ),
    Case(
        "query-geometry-nan",
        ["ask", "--query", "{d}/q.json", "--objects", str(TOWN)],
        says=("nan",),
        setup=_write(
            "q.json",
            '[{"id": "g", "op": "geometry", "args": {"coords": [[NaN, 1.0]]}}, {"id": "a", "op": "answer", "args": {"value": "$g"}}]',
        ),
    ),
]
# ---- ask --questions --------------------------------------------------------------
CASES += [
    Case(
        "questions-missing",
        ["ask", "--questions", "{d}/none.txt", "--objects", str(TOWN)],
        says=("none.txt",),
    ),
    Case(
        "questions-empty",
        ["ask", "--questions", "{d}/e.txt", "--objects", str(TOWN)],
        says=("e.txt", "no questions"),
        setup=_write("e.txt", "# nothing\n"),
    ),
    Case(
        "questions-bad-yaml",
        ["ask", "--questions", "{d}/q.yaml", "--objects", str(TOWN)],
        says=("q.yaml",),
        setup=_write("q.yaml", "questions: [unclosed\n"),
    ),
    Case(
        "questions-yaml-number",
        ["ask", "--questions", "{d}/q.yaml", "--objects", str(TOWN)],
        says=("q.yaml",),
        setup=_write("q.yaml", "questions: 3\n"),
    ),
    Case(
        "questions-bad-jsonl",
        ["ask", "--questions", "{d}/q.jsonl", "--objects", str(TOWN)],
        says=("q.jsonl line 1",),
        setup=_write("q.jsonl", '{"question": \n'),
    ),
    Case(
        "questions-is-dir",
        ["ask", "--questions", "{d}", "--objects", str(TOWN)],
        says=("cannot read questions file",),
    ),
    Case(
        "questions-binary",
        ["ask", "--questions", "{d}/b.txt", "--objects", str(TOWN)],
        says=("b.txt",),
        setup=lambda d: (d / "b.txt").write_bytes(b"\xff\xfe\x00bad"),
    ),
]
# ---- ask: outputs onto inputs --------------------------------------------------------
CASES += [
    Case(
        "out-is-objects",
        ["ask", Q, "--objects", "{d}/t.geojson", "--out", "{d}/t.geojson"],
        says=("--out", "t.geojson"),
        setup=_copy(TOWN, "t.geojson"),
        may_create=("t.geojson",),
    ),
    Case(
        "out-is-questions",
        ["ask", "--questions", "{d}/q.txt", "--objects", str(TOWN), "--out", "{d}/q.txt"],
        says=("--out", "q.txt"),
        setup=_write("q.txt", Q),
        may_create=("q.txt",),
    ),
    Case(
        "mask-is-raster",
        ["ask", "Which pixels are water?", "--raster", "{d}/s.tif", "--mask", "{d}/s.tif"],
        says=("--mask", "s.tif"),
        setup=_copy(SAMPLE / "sample_scene.tif", "s.tif"),
        may_create=("s.tif",),
    ),
    Case(
        "out-is-raster-via-symlink",
        ["ask", Q, "--raster", "{d}/s.tif", "--out", "{d}/link.tif"],
        says=("--out", "s.tif"),
        setup=lambda d: (
            (shutil.copy(SAMPLE / "sample_scene.tif", d / "s.tif"), (d / "link.tif").symlink_to(d / "s.tif"))
            and None
        ),
        may_create=("s.tif", "link.tif"),
    ),
    Case(
        "numbered-mask-is-input",
        ["ask", "--questions", "{d}/q.txt", "--raster", "{d}/m-001.tif", "--mask", "{d}/m.tif"],
        says=("m-001.tif",),
        setup=_both(_write("q.txt", Q), _copy(SAMPLE / "sample_scene.tif", "m-001.tif")),
        may_create=("q.txt", "m-001.tif"),
    ),
    Case(
        "out-is-item-raster",
        ["ask", Q, "--item", "sample", "--out", str(SAMPLE / "sample_scene.tif")],
        says=("--out", "sample_scene.tif"),
    ),
]
# ---- ask: rasters (held-out kinds) and grounders ---------------------------------------
CASES += [
    Case(
        f"ask-raster-{k}",
        ["ask", Q, "--raster", f"{{d}}/{'nowhere' if k == 'missing' else k}.tif"],
        says=(RASTER_SAYS[k],),
        setup=_raster(k),
        may_create=(f"{k}.tif",),
    )
    for k in RASTER_KINDS
]
CASES += [
    Case(
        "ask-unknown-grounder",
        ["ask", Q, "--raster", str(SAMPLE / "sample_scene.tif"), "--grounder", "magic"],
        says=("magic",),
    ),
    Case(
        "ask-qwen-no-weights",
        [
            "ask",
            Q,
            "--raster",
            str(SAMPLE / "sample_scene.tif"),
            "--grounder",
            "qwen2.5-vl",
            "--model-path",
            "{d}/no-weights",
        ],
        says=("no-weights",),
    ),
    Case(
        "ask-recorded-no-outputs",
        ["ask", Q, "--raster", str(SAMPLE / "sample_scene.tif"), "--grounder", "recorded"],
        says=("--outputs",),
    ),
    Case(
        "ask-recorded-missing-file",
        [
            "ask",
            Q,
            "--raster",
            str(SAMPLE / "sample_scene.tif"),
            "--grounder",
            "recorded",
            "--outputs",
            "{d}/rec.jsonl",
        ],
        says=("rec.jsonl",),
    ),
    Case(
        "ask-recorded-garbage",
        [
            "ask",
            Q,
            "--raster",
            str(SAMPLE / "sample_scene.tif"),
            "--grounder",
            "recorded",
            "--outputs",
            "{d}/rec.jsonl",
        ],
        says=("rec.jsonl",),
        setup=_write("rec.jsonl", "not json\n"),
    ),
    Case(
        "ask-recorded-missing-fields",
        [
            "ask",
            Q,
            "--raster",
            str(SAMPLE / "sample_scene.tif"),
            "--grounder",
            "recorded",
            "--outputs",
            "{d}/rec.jsonl",
        ],
        says=("rec.jsonl",),
        setup=_write("rec.jsonl", '{"item": "x"}\n'),
    ),
]
# ---- run ----------------------------------------------------------------------------
_RUN = ["run", "--catalog", "{d}/cat", "--out", "{d}/out"]
CASES += [
    Case("run-missing-catalog", ["run", "--catalog", "{d}/nocat", "--out", "{d}/out"], says=("nocat",)),
    Case(
        "run-catalog-garbage",
        ["run", "--catalog", "{d}/gc", "--out", "{d}/out"],
        says=("gc",),
        setup=_write("gc/catalog.json", "{not json"),
        may_create=("gc",),
    ),
    Case(
        "run-unknown-item",
        [*_RUN, "--item", "nope"],
        says=("nope", "sample"),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-missing-questions",
        [*_RUN, "--questions", "{d}/none.yaml"],
        says=("none.yaml",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-questions-unknown-item",
        [*_RUN, "--questions", "{d}/q.jsonl"],
        says=("q.jsonl", "smaple", "sample"),
        setup=_both(_catalog, _write("q.jsonl", json.dumps({"question": Q, "item": "smaple"}) + "\n")),
        may_create=("cat", "scene.tif", "roads.geojson", "q.jsonl"),
    ),
    Case("run-missing-config", [*_RUN, "--config", "{d}/none.yaml"], says=("none.yaml",)),
    Case(
        "run-config-bad-yaml",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("c.yaml",),
        setup=_write("c.yaml", "tile_px: [\n"),
    ),
    Case(
        "run-config-not-mapping",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("c.yaml", "mapping"),
        setup=_write("c.yaml", "- 1\n- 2\n"),
    ),
    Case(
        "run-config-tile-px-abc",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("tile_px='abc'", "config file", "integer"),
        setup=_write("c.yaml", "tile_px: abc\n"),
    ),
    Case(
        "run-config-threads-negative",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("threads=-3", "greater than 0"),
        setup=_write("c.yaml", "threads: -3\n"),
    ),
    Case(
        "run-config-tile-px-float",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("tile_px=5.5",),
        setup=_write("c.yaml", "tile_px: 5.5\n"),
    ),
    Case(
        "run-config-unknown-key",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("tiles", "c.yaml"),
        setup=_write("c.yaml", "tiles: 3\n"),
    ),
    Case(
        "run-config-model-not-mapping",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("model",),
        setup=_write("c.yaml", "model: qwen\n"),
    ),
    Case(
        "run-config-overlap",
        [*_RUN, "--config", "{d}/c.yaml"],
        says=("overlap_px",),
        setup=_write("c.yaml", "tile_px: 256\noverlap_px: 300\n"),
    ),
    Case(
        "run-env-tile-px-big",
        list(_RUN),
        says=("GEOREASON_TILE_PX", "'big'"),
        env={"GEOREASON_TILE_PX": "big"},
    ),
    Case("run-env-threads-zero", list(_RUN), says=("GEOREASON_THREADS",), env={"GEOREASON_THREADS": "0"}),
    Case("run-threads-negative", [*_RUN, "--threads", "-3"], says=("threads=-3",)),
    Case("run-dask-workers-zero", [*_RUN, "--dask-workers", "0"], says=("dask_workers=0",)),
    Case(
        "run-unknown-grounder",
        [*_RUN, "--grounder", "magic"],
        says=("magic",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-qwen-no-weights",
        [*_RUN, "--grounder", "qwen2.5-vl"],
        says=("Qwen/Qwen2.5-VL-7B-Instruct",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-model-path-missing",
        [*_RUN, "--grounder", "owlv2", "--model-path", "{d}/w"],
        says=("w", "does not exist"),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-recorded-missing",
        [*_RUN, "--grounder", "recorded", "--outputs", "{d}/r.jsonl"],
        says=("r.jsonl",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-objects-missing",
        [*_RUN, "--objects", "{d}/none.geojson"],
        says=("none.geojson",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-out-is-catalog",
        ["run", "--catalog", "{d}/cat", "--out", "{d}/cat"],
        says=("--out", "sample"),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-out-is-questions",
        [*_RUN[:3], "--questions", "{d}/q.txt", "--out", "{d}/q.txt"],
        says=("--out", "q.txt"),
        setup=_both(_catalog, _write("q.txt", Q)),
        may_create=("cat", "scene.tif", "roads.geojson", "q.txt"),
    ),
    Case(
        "run-results-in-catalog",
        [*_RUN, "--results", "{d}/cat/sample"],
        says=("sample",),
        setup=_catalog,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "run-raster-edited",
        list(_RUN),
        says=("scene.tif", "changed since it was catalogued", "--update"),
        setup=lambda d: (_catalog(d), _tif(d / "cat" / "sample" / "scene.tif")) and None,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
]
# ---- catalog add / list / validate ------------------------------------------------------
CASES += [
    Case(
        f"add-raster-{k}",
        ["catalog", "add", f"{{d}}/{'nowhere' if k == 'missing' else k}.tif", "--catalog", "{d}/cat"],
        says=(RASTER_SAYS[k],),
        setup=_raster(k),
        may_create=(f"{k}.tif",),
    )
    for k in RASTER_KINDS
]
CASES += [
    Case(
        "add-bad-id",
        ["catalog", "add", "{d}/ok.tif", "--catalog", "{d}/cat", "--id", "../x"],
        says=("../x",),
        setup=lambda d: _tif(d / "ok.tif") and None,
        may_create=("ok.tif",),
    ),
    Case(
        "add-vectors-missing",
        ["catalog", "add", "{d}/ok.tif", "--catalog", "{d}/cat", "--vectors", "{d}/v.geojson"],
        says=("v.geojson",),
        setup=lambda d: _tif(d / "ok.tif") and None,
        may_create=("ok.tif",),
    ),
    Case(
        "add-vectors-shapefile",
        ["catalog", "add", "{d}/ok.tif", "--catalog", "{d}/cat", "--vectors", "{d}/v.shp"],
        says=("v.shp", "shapefile"),
        setup=lambda d: (_tif(d / "ok.tif"), (d / "v.shp").write_bytes(b"x")) and None,
        may_create=("ok.tif", "v.shp"),
    ),
    Case(
        "add-bad-datetime",
        ["catalog", "add", "{d}/ok.tif", "--catalog", "{d}/cat", "--datetime", "yesterday"],
        says=("yesterday",),
        setup=lambda d: _tif(d / "ok.tif") and None,
        may_create=("ok.tif",),
    ),
    Case(
        "add-catalog-is-file",
        ["catalog", "add", "{d}/ok.tif", "--catalog", "{d}/f.txt"],
        says=("f.txt",),
        setup=lambda d: (_tif(d / "ok.tif"), (d / "f.txt").write_text("x")) and None,
        may_create=("ok.tif", "f.txt"),
    ),
    Case("list-missing", ["catalog", "list", "--catalog", "{d}/nocat"], says=("nocat",)),
    Case(
        "list-garbage",
        ["catalog", "list", "--catalog", "{d}/gc"],
        says=("gc",),
        setup=_write("gc/catalog.json", "[1, 2"),
        may_create=("gc",),
    ),
    Case(
        "list-not-a-catalog",
        ["catalog", "list", "--catalog", "{d}/gc"],
        says=("gc",),
        setup=_write("gc/catalog.json", '{"type": "Feature"}'),
        may_create=("gc",),
    ),
    Case("validate-missing", ["catalog", "validate", "--catalog", "{d}/nocat"], says=("nocat",)),
    Case(
        "validate-asset-gone",
        ["catalog", "validate", "--catalog", "{d}/cat"],
        says=("scene.tif", "missing"),
        setup=lambda d: (_catalog(d), (d / "cat" / "sample" / "scene.tif").unlink()) and None,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
    Case(
        "validate-checksum",
        ["catalog", "validate", "--catalog", "{d}/cat"],
        says=("roads.geojson", "checksum"),
        setup=lambda d: (_catalog(d), (d / "cat" / "sample" / "roads.geojson").write_text("{}")) and None,
        may_create=("cat", "scene.tif", "roads.geojson"),
    ),
]


def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "case"
    d.mkdir()
    if case.setup is not None:
        case.setup(d)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(d)
    before = _snapshot(d)
    args = [a.replace("{d}", str(d)) for a in case.args]
    res = runner.invoke(app, args)
    out = res.output or ""
    # no unhandled exception, no traceback: one 'georeason: error:' (or usage) message
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in out, out
    assert res.exit_code == case.exit, out
    for s in case.says:
        assert s.replace("{d}", str(d)) in out, (s, out)
    errs = [ln for ln in out.splitlines() if ln.startswith("georeason: error:")]
    assert len(errs) == 1 or "Usage:" in out or "problem" in out or case.exit == 0, out
    # nothing written: no output, no temporary file, no partial catalog
    after = _snapshot(d)
    assert after == before, sorted(after - before)


def test_corpus_is_large_enough():
    assert len(CASES) >= 80


# --------------------------------------------------------------------------- batch isolation


def test_ask_questions_always_writes_every_line(tmp_path: Path):
    qs = [
        "How many lakes are there?",
        "Why?",
        "How far is #lake-1 from (9.1, 95)?",
        "Which buildings are within 1e300 km of #road-1?",
        "What is the distance between #nope and #road-1?",
        "What is the area of #lake-1 in hectares?",
    ]
    q = tmp_path / "q.txt"
    q.write_text("\n".join(qs) + "\n")
    out = tmp_path / "answers.jsonl"
    res = runner.invoke(app, ["ask", "--questions", str(q), "--objects", str(TOWN), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # strict JSON: no NaN
    assert [r["question"] for r in rows] == qs
    assert not rows[0].get("error") and rows[0]["answer"] == 2
    for r, must in zip(rows[1:4], ["Why", "latitude 95", "1e+300"]):
        assert r.get("error") and must in r["error"], r
    assert rows[4]["abstained"] and "nope" in rows[4]["reason"]  # an unknown id abstains
    assert not rows[5].get("error") and rows[5]["answer"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_json_output_is_strict_json(tmp_path: Path):
    res = runner.invoke(app, ["ask", "What is the area of #lake-1?", "--objects", str(TOWN), "--json"])
    assert res.exit_code == 0
    json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_finite_row_turns_nan_into_an_error():
    from georeason.runstate import finite_row

    row = {"question": "q", "answer": 1.0, "details": {"d": [1.0, float("inf")]}}
    got = finite_row(row)
    assert got["error"] and "details.d[1]=inf" in got["error"] and got["answer"] is None
    json.dumps(got, allow_nan=False)


def test_debug_shows_a_traceback_when_asked(tmp_path: Path):
    res = runner.invoke(app, ["--debug", "ask", "Why?", "--objects", str(TOWN)])
    assert res.exit_code == 2 and "Traceback" in res.output and "georeason: error:" in res.output


def test_internal_errors_are_one_line(monkeypatch: pytest.MonkeyPatch):
    import georeason.pipeline as pipeline

    def boom(*a, **k):
        raise KeyError("surprise")

    # a bug while a question is answered (the one pipeline executes compiled programs)
    monkeypatch.setattr(pipeline, "answer_program", boom)
    res = runner.invoke(app, ["ask", Q, "--objects", str(TOWN)])
    assert res.exit_code == 1 and "internal error: KeyError" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["--debug", "ask", Q, "--objects", str(TOWN)])
    assert res.exit_code == 1 and "internal error: KeyError" in res.output and "Traceback" in res.output


def test_all_nodata_and_nan_float_rasters_do_not_crash(tmp_path: Path):
    """Held-out kinds that are valid rasters: an answer or an abstention, never a traceback."""
    with rasterio.open(SAMPLE / "sample_scene.tif") as s:
        prof, data = s.profile, s.read()
    nan = data.astype("float32")
    nan[:, 500:520, :] = np.nan
    p_nan = tmp_path / "nan.tif"
    with rasterio.open(p_nan, "w", **(prof | {"dtype": "float32", "nodata": None})) as d:
        d.write(nan)
    p_nd = _tif(tmp_path / "nodata.tif", data=np.zeros((4, 64, 64), "uint16"), nodata=0)
    for p in (p_nan, p_nd):
        res = runner.invoke(app, ["ask", Q, "--raster", str(p), "--json"])
        assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
        assert "Traceback" not in res.output
        assert res.exit_code in (0, 2), res.output
        if res.exit_code == 0:
            json.loads(res.stdout)


# --------------------------------------------------------------------------- hypothesis


def _town():
    from georeason.geo.vector.scene import read_scene

    return read_scene(TOWN)


_SCENE = None


def _scene():
    global _SCENE
    if _SCENE is None:
        _SCENE = _town()
    return _SCENE


def _only_project_outcomes(q: str) -> None:
    from georeason.geo.language.english import ask

    try:
        ans = ask(q, _scene())
    except GeoreasonError:
        return
    from georeason.runstate import finite_row

    # what reaches any JSON output (ask --json/--questions, answers.jsonl): finite numbers or an error row
    json.dumps(finite_row(ans.to_json()), allow_nan=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_strings_to_the_question_parser(text: str) -> None:
    _only_project_outcomes(text)


_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from([0, -0.0, 1e-320, 5e-324, 1e308, 1.7976931348623157e308, 20037.5, 2500, 2500.001]),
)
_TEMPLATES = [
    "How many buildings are within {} m of #road-1?",
    "Which buildings are within {} km of #road-1?",
    "How far is #lake-1 from ({}, {})?",
    "How many buildings are inside [{}, {}, {}, {}]?",
    "Is #well-1 within {} m of #lake-1?",
    "Which pixels are water within {} m of #road-1?",
    "What is the distance between #lake-1 and #road-1 in km?",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_TEMPLATES), st.lists(_NUMBERS, min_size=4, max_size=4))
def test_templated_questions_with_extreme_numbers(template: str, nums: list) -> None:
    def fmt(x) -> str:
        if isinstance(x, float) and not math.isfinite(x):
            return str(x)
        return repr(x) if isinstance(x, float) else str(x)

    _only_project_outcomes(template.format(*[fmt(n) for n in nums]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text_to_the_recorded_outputs_reader(text: str) -> None:
    import tempfile

    from georeason.models.backends.recorded import read_outputs

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rec.jsonl"
        p.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else p.write_bytes(
            b"\xff"
        )
        try:
            read_outputs(p)
        except GeoreasonError:
            pass


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _parse_formats() -> list[str]:
    """Every registered model-output format (and auto-detection)."""
    from georeason.models.parsers import FORMATS

    return list(FORMATS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=300),
    st.sampled_from(_parse_formats()),
)
def test_random_text_to_every_model_output_parser(text: str, fmt: str) -> None:
    from georeason.models.parsers import parse_output

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dets = parse_output(text, fmt, (64, 48))
        except GeoreasonError:
            return
    for d in dets:
        assert 0.0 <= d.score <= 1.0 and d.kind in ("box", "polygon", "mask", "point")


def test_grounder_exception_of_any_type_is_a_tile_failure(tmp_path: Path):
    """A KeyError inside a grounder is a tile failure (one line), never a traceback."""
    from georeason.models.registry import register

    class KeyErrorGrounder:
        name = "keyerror"
        config: dict = {}

        def ground(self, pixels, tile, classes, bands):
            raise KeyError("band 'nir'")

    register("keyerror", lambda cfg: KeyErrorGrounder(), lambda label: True)
    res = runner.invoke(
        app, ["ask", Q, "--raster", str(SAMPLE / "sample_scene.tif"), "--grounder", "keyerror"]
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    # one pipeline, one tile-failure policy (issue 9): `ask --raster` abstains like `run`,
    # naming the failed tile and the grounder's own error
    assert res.exit_code == 0 and "failed to ground" in res.output and "KeyError" in res.output


def test_missing_weights_fail_before_any_tile_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`run --grounder qwen2.5-vl` without weights: exit 2 at once, naming what was tried."""
    import time

    import georeason.geo.raster.tiling as tiling

    def no_reads(*a, **k):
        raise AssertionError("a tile was read before the weights were checked")

    monkeypatch.setattr(tiling, "read_tile", no_reads)
    t0 = time.monotonic()
    res = runner.invoke(app, ["run", "--grounder", "qwen2.5-vl", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in res.output and "never downloads" in res.output
    assert time.monotonic() - t0 < 20 and not (tmp_path / "out").exists()
