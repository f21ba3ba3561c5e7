"""The recorded-outputs grounder: file validation, lookups, and the sample questions through the flow.

``data_catalog/sample/recorded_outputs.jsonl`` holds what a perfect model prints for the
sample scene (``data_catalog/make_recorded.py``): Qwen2.5-VL JSON and RemoteReasoner
boxes for buildings, Florence-2 ``<loc_N>`` polygons for lakes, the river, water and
vegetation. Run through the ``answer`` flow with the same tile plan, the answers must be
those of the ground truth: parsing, quantisation, seam merging (NMS for boxes, core clip
+ union for polygons) and deduplication across the two building sources all hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely

from georeason.errors import InputError, ModelError
from georeason.geo.vector.scene import read_scene

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
RECORDED = SAMPLE / "recorded_outputs.jsonl"
RASTER = SAMPLE / "sample_scene.tif"


def _sample_questions() -> list[str]:
    from georeason.config import read_questions

    return [
        s.question for s in read_questions(REPO / "data_catalog" / "questions.yaml") if s.item == "sample"
    ]


def test_shipped_file_is_small_valid_and_reproducible(tmp_path):
    from georeason.models.backends.recorded import read_outputs

    assert RECORDED.stat().st_size < 300_000
    entries = read_outputs(RECORDED)
    assert {e.format for e in entries} == {"qwen2.5", "remotereasoner", "florence"}
    assert {e.cls for e in entries} >= {"building", "lake", "river", "water", "vegetation"}
    # the generator is deterministic and the shipped file is its output
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_recorded", REPO / "data_catalog" / "make_recorded.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text() == RECORDED.read_text()


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


GOOD = {
    "item": "s",
    "tile": [0, 0],
    "window": [0, 0, 64, 64],
    "class": "building",
    "format": "qwen2.5",
    "input_size": [56, 56],
    "text": '[{"bbox_2d": [7, 7, 21, 14], "label": "building"}]',
}


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("{not json", "line 2 is not valid JSON"),
        ({k: v for k, v in GOOD.items() if k != "window"}, "line 2: missing field(s) window"),
        ({**GOOD, "window": [0, 0, 64]}, "line 2: 'window' must be a list of 4 integers"),
        ({**GOOD, "format": "gpt-9"}, "line 2: unknown model output format 'gpt-9'"),
        ({**GOOD, "format": "florence"}, "line 2: a florence entry needs 'task'"),
        ({**GOOD, "class": "building"}, "line 2: duplicate entry"),
        ({**GOOD, "text": 5}, "line 2: 'text' must be"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, bad, needle):
    from georeason.models.backends.recorded import read_outputs

    p = _write(tmp_path / "rec.jsonl", [GOOD, bad])
    with pytest.raises(InputError) as e:
        read_outputs(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_prepare_checks_item_and_adds_content_hash(tmp_path):
    from georeason.models.registry import prepare_spec

    spec = prepare_spec("recorded", str(RASTER), {"outputs": str(RECORDED), "item": "sample"})
    cfg = spec.config
    assert cfg["item"] == "sample" and len(cfg["outputs_sha256"]) == 64
    with pytest.raises(InputError, match="no entries for item 'nope'.*items: sample"):
        prepare_spec("recorded", str(RASTER), {"outputs": str(RECORDED), "item": "nope"})
    with pytest.raises(InputError, match="--outputs"):
        prepare_spec("recorded", str(RASTER), {})
    # one item in the file: it is the default
    assert prepare_spec("recorded", str(RASTER), {"outputs": str(RECORDED)}).config["item"] == "sample"


def _tiles(tile_px=1024, overlap_px=128):
    from georeason.geo.raster.tiling import plan_tiles

    return list(plan_tiles(str(RASTER), tile_px, overlap_px))


def _grounder(**opts):
    from georeason.models.registry import build_grounder, prepare_spec

    return build_grounder(
        prepare_spec("recorded", str(RASTER), {"outputs": str(RECORDED), "item": "sample", **opts})
    )


def test_lookup_by_window_labels_with_the_class_asked():
    from georeason.geo.raster.tiling import read_tile

    g = _grounder()
    tile = next(t for t in _tiles() if tuple(t.index) == (1, 1))
    px = read_tile(str(RASTER), tile)
    dets = g.ground(px, tile, ["building"], ["blue", "green", "red", "nir"])
    assert dets and all(d.kind == "box" and d.label == "building" for d in dets)
    # free-text class names reach the recorded class through the class map
    houses = g.ground(px, tile, ["house"], [])
    assert len(houses) == len(dets) and {d.label for d in houses} == {"house"}
    # a recorded window without an entry for the class: no detections (tile (0, 2) has no lake)
    t02 = next(t for t in _tiles() if tuple(t.index) == (0, 2))
    assert g.ground(read_tile(str(RASTER), t02), t02, ["lake"], []) == []


def test_class_never_recorded_and_other_tile_plan_are_errors_not_silence():
    from georeason.geo.raster.tiling import read_tile

    g = _grounder()
    tile = _tiles()[0]
    with pytest.raises(ModelError, match="no entries for class 'aircraft'"):
        g.ground(read_tile(str(RASTER), tile), tile, ["aircraft"], [])
    other = _tiles(512, 64)[1]
    with pytest.raises(ModelError, match="same --tile-px and --overlap-px"):
        g.ground(read_tile(str(RASTER), other), other, ["building"], [])


def test_recorded_objects_match_truth_geometry():
    """Every truth building comes back once (two sources, seams), lakes as polygons."""
    from georeason.pipeline import Pipeline

    pipeline = Pipeline("recorded", {"outputs": str(RECORDED)}, tile_px=1024, overlap_px=128)
    grounding = pipeline.ground(str(RASTER), ["building", "lake"], item="sample")
    found, failures = grounding.objects, grounding.failures
    assert failures == []
    truth = read_scene(SAMPLE / "sample_truth.gpkg")
    tb = [g for g, lab in zip(truth.geoms, truth.labels) if lab == "building"]
    gb = [o.geometry for o in found if o.label == "building"]
    assert len(gb) == len(tb) == 32
    for t in tb:  # each truth building has exactly one match, a close one
        ious = [shapely.area(shapely.intersection(t, g)) / shapely.area(shapely.union(t, g)) for g in gb]
        assert sorted(ious)[-1] > 0.6 and sorted(ious)[-2] < 0.1
    lakes = [o for o in found if o.label == "lake"]
    assert len(lakes) == 3 and all(o.kind == "polygon" for o in lakes)
    assert any(len(o.tiles) > 1 for o in lakes), "no lake crossed a seam: the merge was not exercised"


@pytest.mark.e2e
def test_flow_with_recorded_outputs_answers_like_the_truth(prefect_harness, tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from tests_flow_helpers import check_against_truth

    from georeason.flows.answer import answer

    questions = _sample_questions()
    assert len(questions) >= 10
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"question": q, "item": "sample"}) + "\n" for q in questions))
    result = answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        questions=str(qfile),
        out=str(tmp_path / "out"),
        results_dir=str(tmp_path / "results"),
        items=["sample"],
        grounder="recorded",
        grounder_options={"outputs": str(RECORDED)},
        tile_px=1024,
        overlap_px=128,
    )
    assert result["errors"] == 0 and result["failed_tiles"] == 0
    from georeason.runstate import answer_rows

    rows = answer_rows(result["answers"])  # the flow returns a summary; answers are in the file
    assert len(rows) == len(questions)
    truth = read_scene(SAMPLE / "sample_truth.geojson")
    check_against_truth(rows, truth, questions)
    answered = [r for r in rows if not r["abstained"]]
    assert len(answered) >= len(questions) - 1  # only "the lake" (there are three) abstains


@pytest.mark.e2e
def test_flow_with_another_tile_plan_abstains_naming_the_plan(prefect_harness, tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.flows.answer import answer

    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps({"question": "How many lakes are there?", "item": "sample"}) + "\n")
    from georeason.runstate import RunFailedError

    with pytest.raises(RunFailedError, match="1 tile"):  # the run ends Failed, answers still written
        answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
            questions=str(qfile),
            out=str(tmp_path / "out"),
            results_dir=str(tmp_path / "results"),
            items=["sample"],
            grounder="recorded",
            grounder_options={"outputs": str(RECORDED)},
            tile_px=2048,
            overlap_px=128,  # one tile, whose window was never recorded
        )
    (row,) = [json.loads(x) for x in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert row["abstained"] and "--tile-px" in row["reason"]


@pytest.mark.e2e
def test_cli_run_with_recorded_outputs(prefect_harness, tmp_path):
    """``georeason run --grounder recorded --outputs FILE --item sample --tile-px 1024 --overlap-px 128``."""
    from tests_flow_helpers import check_against_truth
    from typer.testing import CliRunner

    from georeason.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--grounder",
            "recorded",
            "--outputs",
            str(RECORDED),
            "--item",
            "sample",
            "--tile-px",
            "1024",
            "--overlap-px",
            "128",
            "--out",
            str(out),
            "--results",
            str(tmp_path / "results"),
        ],
    )
    assert res.exit_code == 0, res.output[-3000:]
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    questions = _sample_questions()
    assert [r["question"] for r in rows] == questions
    check_against_truth(rows, read_scene(SAMPLE / "sample_truth.geojson"), questions)
