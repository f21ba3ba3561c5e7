"""georeason eval: question generation, oracle self-check, grounded/recorded/direct modes,
instance-vs-cover abstention, fitness checks, confidence and --bands.

Expected values are computed here independently: hand-worked geometry, pyproj.Geod on
points, the label CSV's line count; never by the code under test.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from test_model_remote import FakeOpenAI

from georeason.evaluation import load_input, run_eval
from georeason.geo.evaluation.questions import REF_MODES, generate
from georeason.geo.evaluation.score import detection_metrics, parse_free_text, score
from georeason.geo.evaluation.truth import Truth, compass8, relation_name

ROOT = Path(__file__).resolve().parents[1]
NEON = ROOT / "data_catalog" / "neon"
EXE = Path(sys.executable).with_name("georeason")


def georeason(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=timeout)


# -- the independent side ----------------------------------------------------------------------


def test_truth_measures_against_hand_worked_values():
    t = Truth("EPSG:32633")
    a, b = shapely.box(500000, 5000000, 500100, 5000100), shapely.box(500400, 5000000, 500500, 5000100)
    ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    # nearest points: the facing edges, 300 m apart in UTM (scale factor ~0.9996 at the central meridian)
    (x1, y1), (x2, y2) = ll.transform(500100, 5000050), ll.transform(500400, 5000050)
    want = Geod(ellps="WGS84").inv(x1, y1, x2, y2)[2]
    assert t.distance_m(a, b) == pytest.approx(want, rel=1e-6)
    assert 90 - 1 < t.bearing_deg(a, b) < 90 + 1
    assert compass8(t.bearing_deg(a, b)) == "E"
    assert relation_name(a, shapely.box(500100, 5000000, 500200, 5000100)) == "touches"
    assert relation_name(shapely.box(0, 0, 1, 1), shapely.box(0, 0, 2, 2)) == "within"


def test_scoring_rules():
    q = {"kind": "metric", "unit": "m", "expected": 1000.0}
    assert score(q, 1009.0, False)["correct"] and not score(q, 1011.0, False)["correct"]
    assert score({"kind": "metric", "unit": "deg", "expected": 359.0}, 1.0, False)[
        "rel_err"
    ] == pytest.approx(2 / 360)
    assert score({"kind": "abstain", "expected": None}, None, True)["correct"]
    assert not score({"kind": "count", "expected": 3}, None, True)["correct"]
    m = detection_metrics([shapely.box(0, 0, 10, 10)] * 2, [shapely.box(0, 0, 10, 10)])
    assert (m["tp"], m["precision"], m["recall"]) == (
        1,
        0.5,
        1.0,
    )  # one-to-one: a duplicate is a false positive
    assert parse_free_text("roughly 1.2 km", {"kind": "metric", "unit": "m"})[0] == pytest.approx(1200)
    assert parse_free_text("It lies to the south-east.", {"kind": "categorical"})[0] == "SE"
    assert parse_free_text("I cannot answer this.", {"kind": "count"})[1] is True


# -- oracle: the self-check -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_oracle():
    return run_eval(load_input(item="sample"), modes=["oracle"], n=150, seed=3)


def test_oracle_on_sample_is_exact_in_every_category_and_reference_mode(sample_oracle):
    rows = sample_oracle["rows"]
    assert len(rows) == 150
    wrong = [(r["question"], r["expected"], r["answer"], r["reason"]) for r in rows if not r["correct"]]
    assert wrong == []
    assert {r["category"] for r in rows} == {"distance", "direction", "topology", "group", "unanswerable"}
    assert {r["ref_mode"] for r in rows} == set(REF_MODES)  # overlay included
    errs = [r["rel_err"] for r in rows if r["rel_err"] is not None]
    assert len(errs) > 20 and max(errs) < 1e-3
    tasks = {r["task"] for r in rows}
    for t in (
        "min",
        "centroid",
        "closer",
        "within",
        "beyond",
        "compass",
        "bearing",
        "yesno",
        "relation",
        "predicate",
        "count",
        "nearest",
        "farthest",
        "largest",
        "aggregate",
        "absent",
        "ambiguous",
    ):
        assert t in tasks, t
    o = sample_oracle["tables"]["oracle"]["overall"]
    assert o["abstention_precision"] == 1.0 and o["abstention_recall"] == 1.0


def test_overlay_questions_use_a_drawn_copy_found_by_the_overlay_grounder(tmp_path):
    inp = load_input(item="neon")
    rep = run_eval(inp, modes=["oracle"], n=60, seed=1, out=tmp_path)
    over = [r for r in rep["rows"] if r["ref_mode"] == "overlay"]
    assert over and all(r["correct"] for r in over)
    copies = sorted((tmp_path / "overlays").glob("*.tif"))
    assert copies
    box = [int(v) for v in re.findall(r"\d+", copies[0].stem)]
    with rasterio.open(copies[0]) as src:
        img = src.read()
    c0, r0, c1, r1 = box
    assert (img[:, r0, c0:c1] == np.array([255, 0, 0])[:, None]).all()  # the red stroke is there
    assert (tmp_path / "report.md").is_file() and (tmp_path / "accuracy-oracle.png").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["questions"] == 60


def test_questions_are_deterministic_and_thresholds_are_not_coin_flips():
    inp = load_input(item="neon")
    from georeason.geo.raster.grid import RasterGrid

    g = RasterGrid.read(inp.raster)
    from georeason.evaluation import _truth_objects

    args = (_truth_objects(inp.truth), g.crs, g.transform, (g.height, g.width))
    a, b = generate(*args, n=40, seed=7), generate(*args, n=40, seed=7)
    assert [q.text for q in a] == [q.text for q in b]
    assert [q.text for q in a] != [q.text for q in generate(*args, n=40, seed=8)]


# -- NEON: instances vs cover -----------------------------------------------------------------------


def _csv_boxes() -> int:
    with open(NEON / "OSBS_029.csv", newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def test_neon_tree_count_spectral_abstains_recorded_counts_the_labels():
    r = georeason("ask", "How many trees are there?", "--item", "neon", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["abstained"] and d["answer"] is None
    assert "cover" in d["reason"] and "instance grounder" in d["reason"]
    r = georeason(
        "ask",
        "How many trees are there?",
        "--item",
        "neon",
        "--grounder",
        "recorded",
        "--outputs",
        str(NEON / "recorded_outputs.jsonl"),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["answer"] == _csv_boxes() == 61
    assert d["details"]["confidence"]["score"] >= 0.3


def test_neon_eval_reports_detection_for_both_grounders():
    rep = run_eval(load_input(item="neon"), modes=["grounded", "recorded"], n=60, seed=2)
    g = rep["grounding"]
    rec, spec = g["recorded"]["classes"]["tree"], g["grounded"]["classes"]["tree"]
    assert rec["extent"] == "instance" and rec["truth"] == 61 and rec["f1"] > 0.95
    assert spec["extent"] == "cover" and spec["f1"] < 0.5 and 0 <= spec["iou"] <= 1
    counted = [
        r for r in rep["rows"] if r["mode"] == "grounded" and r["task"] in ("count", "nearest", "farthest")
    ]
    assert (
        counted
        and all(r["abstained"] for r in counted if "cover" in (r["reason"] or ""))
        and any("cover" in (r["reason"] or "") for r in counted)
    )
    assert rep["tables"]["recorded"]["overall"]["accuracy"] > 0.8


# -- direct mode against a fake OpenAI-compatible VLM -------------------------------------------------


class OracleVLM(FakeOpenAI):
    """Answers in free text from a table of expected answers (units and wording varied)."""

    def __init__(self, questions):
        super().__init__("fake-vlm")
        self.by_text = {q.text: q for q in questions}
        self.images: list[str] = []

    def answer(self, body):
        parts = body["messages"][-1]["content"]
        self.images.append(next(p["image_url"]["url"] for p in parts if p["type"] == "image_url"))
        text = next(p["text"] for p in parts if p["type"] == "text")
        q = next(q for t, q in self.by_text.items() if text.startswith(t))
        if q.kind == "abstain":
            return "I cannot answer that from this image."
        if q.kind == "metric" and q.unit == "m":
            return f"The distance is about {q.expected / 1000:.6f} km."
        if q.kind == "metric":
            return f"{q.expected:.6f} {q.unit}"
        if q.kind == "boolean":
            return "Yes, it is." if q.expected else "No."
        if q.kind == "object":
            return f"The box is {q.expected_px_box}."
        return f"Answer: {q.expected}"


def test_direct_mode_end_to_end_against_a_fake_openai_server():
    inp = load_input(item="neon")
    from georeason.evaluation import _truth_objects
    from georeason.geo.raster.grid import RasterGrid

    g = RasterGrid.read(inp.raster)
    qs = generate(_truth_objects(inp.truth), g.crs, g.transform, (g.height, g.width), n=50, seed=5)
    srv = OracleVLM(qs).start()
    try:
        rep = run_eval(inp, modes=["direct"], n=50, seed=5, vlm_url=srv.base_url)
    finally:
        srv.stop()
    rows = rep["rows"]
    assert rows and all(r["mode"] == "direct" for r in rows)
    assert [r["question"] for r in rows if not r["correct"]] == []
    assert len(srv.images) == len(rows) and all(u.startswith("data:image/png;base64,") for u in srv.images)
    assert len(set(srv.images)) > 1  # overlay questions see the marked copy


# -- fitness and confidence ---------------------------------------------------------------------------


def test_low_confidence_grounding_abstains_and_the_summary_is_in_json_and_export(tmp_path):
    raster = ROOT / "data_catalog" / "sample" / "sample_scene.tif"
    base = ["ask", "What is the area of the largest lake in hectares?", "--raster", str(raster), "--json"]
    out = tmp_path / "a.geojson"
    r = georeason(*base, "--out", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert not d["abstained"]
    conf = d["details"]["confidence"]
    assert 0 < conf["score"] <= 1 and conf["evidence_scores"] and conf["notes"]
    exported = json.loads(out.read_text())
    assert "confidence" in json.dumps(exported)
    # buildings of the 10 m sample are ~1.5 pixels across by the class's typical size: the
    # fitness factor is 0.75, so a threshold above it abstains, naming why
    q = ["ask", "How many buildings are within 200 m of #road-1?", "--item", "sample", "--json"]
    d = json.loads(georeason(*q).stdout)
    assert not d["abstained"] and d["details"]["confidence"]["fitness_factor"] == 0.75
    r = georeason(*q, "--min-confidence", "0.8")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["abstained"] and d["answer"] is None
    assert (
        "confidence 0.75 < 0.80" in d["reason"]
        and "pixels" in d["reason"]
        and "--min-confidence" in d["reason"]
    )


def test_buildings_on_300m_pixels_abstain():
    r = georeason("ask", "How many buildings are there?", "--item", "landsat", "--json")
    d = json.loads(r.stdout)
    assert d["abstained"] and "pixel" in d["reason"] and "cannot be resolved" in d["reason"]


def _unnamed(path: Path, count: int, transform: Affine | None = None) -> Path:
    """A real int16 image without band names (Landsat pixels; ``transform`` may make them finer)."""
    with rasterio.open(ROOT / "data_catalog" / "landsat" / "landsat_rgb_utm18n.tif") as src:
        data = src.read()[:count].astype("int16")
        crs, tf, w, h = src.crs, transform or src.transform, src.width, src.height
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype="int16",
        crs=crs,
        transform=tf,
        nodata=0,
        photometric="MINISBLACK",
    ) as dst:
        dst.write(data)
    return path


def test_unnamed_bands_error_advice_works_when_followed(tmp_path):
    tif = _unnamed(tmp_path / "unnamed.tif", 3)
    q = "What is the total area of bare soil in km2?"
    r = georeason("ask", q, "--raster", str(tif), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    advice = re.search(r"pass (--bands \S+)", r.stderr)
    assert advice, r.stderr
    flag, value = advice.group(1).split()
    r = georeason("ask", q, "--raster", str(tif), flag, value, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answer"] > 0
    # and recorded in the catalog once, used by ask --item and run
    cat = tmp_path / "cat"
    r = georeason("catalog", "add", str(tif), "--catalog", str(cat), "--id", "u", "--bands", "red,green,blue")
    assert r.returncode == 0, r.stderr
    r = georeason("ask", q, "--item", "u", "--catalog", str(cat), "--json")
    assert r.returncode == 0, r.stderr
    r = georeason("catalog", "add", str(tif), "--catalog", str(cat), "--id", "v", "--bands", "red,green")
    assert r.returncode == 2 and "3 band" in r.stderr


def test_single_band_error_advice_works_when_followed(tmp_path):
    tif = _unnamed(tmp_path / "pan.tif", 1, Affine(0.5, 0, 500000, 0, -0.5, 2_800_000))  # 0.5 m panchromatic
    r = georeason("ask", "How many buildings are there?", "--raster", str(tif), "--json")
    assert r.returncode == 2 and "single-band" in r.stderr and "--grounder remote" in r.stderr
    srv = FakeOpenAI().start()  # its model finds bright blobs and answers Qwen2.5 boxes
    try:
        r = georeason(
            "ask",
            "How many buildings are there?",
            "--raster",
            str(tif),
            "--grounder",
            "remote",
            "--grounder-option",
            f"base_url={srv.base_url}",
            "--json",
        )
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout)["answer"], int)


def test_eval_cli_json_and_files(tmp_path):
    r = georeason("eval", "--item", "neon", "--mode", "oracle", "--n", "30", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["neon"]["oracle"]["accuracy"] == 1.0
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "answers.jsonl").is_file()
    r = georeason("eval", "--item", "neon", "--mode", "direct", "--n", "5", "--out", str(tmp_path))
    assert r.returncode == 2 and "--vlm-url" in r.stderr


def test_evaluate_flow_writes_summary_and_artifacts(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client

    from georeason.flows.evaluate import evaluate

    reports = evaluate(items=["neon"], out=str(tmp_path), modes=["oracle"], n=20, seed=4)
    assert reports["neon"]["tables"]["oracle"]["overall"]["accuracy"] == 1.0
    assert "| neon | oracle | 20 | 100.0% |" in (tmp_path / "summary.md").read_text()

    async def keys():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as c:
            arts = await c.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["georeason-eval-summary", "georeason-eval-overall"])
                )
            )
            return {a.key for a in arts}

    import asyncio

    assert asyncio.run(keys()) == {"georeason-eval-summary", "georeason-eval-overall"}


def test_run_bands_option_names_unnamed_bands(prefect_harness, tmp_path):
    from georeason.flows.answer import answer

    tif = _unnamed(tmp_path / "u.tif", 3)
    cat = tmp_path / "cat"
    r = georeason("catalog", "add", str(tif), "--catalog", str(cat), "--id", "u")
    assert r.returncode == 0, r.stderr
    qf = tmp_path / "q.txt"
    qf.write_text("What is the total area of water in km2?\n")

    def run(options):
        from georeason.runstate import result_of

        state = answer(
            catalog=str(cat),
            questions=str(qf),
            out=str(tmp_path / "out"),
            grounder_options=options,
            results_dir=str(tmp_path / "res"),
            return_state=True,
        )
        return result_of(state)["rows"][0]  # a run with tile failures ends Failed, rows kept

    without = run({})  # eo:bands are band1..band3: no index can be computed
    assert without["abstained"] and "--bands" in json.dumps(without)
    named = run({"bands": ["red", "green", "blue"]})  # what `georeason run --bands red,green,blue` passes
    # the bands are understood: the answer is now judged on the imagery itself (the Landsat
    # pixels' dark water is measurably missed by the visible-band index, so it abstains saying so)
    assert named["abstained"] and "misses dark open water" in named["reason"]
    assert named["details"]["abstained_value"] > 0
