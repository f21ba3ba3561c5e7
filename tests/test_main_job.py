"""The main job: the `answer` flow on the shipped catalog and its questions file.

`georeason run` with no arguments runs exactly this (README, first command). The sample
item's answers must equal the same questions asked of its ground-truth vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from georeason.config import read_questions
from georeason.geo.vector.scene import read_scene

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "data_catalog"

pytestmark = pytest.mark.e2e


def test_shipped_questions_cover_every_kind():
    from georeason.geo.language.english import compile_question
    from georeason.geo.language.program import validate_program

    specs = read_questions(CATALOG / "questions.yaml")
    assert len(specs) >= 10
    kinds = set()
    for s in specs:
        program = validate_program(compile_question(s.question))
        last = program.steps[-1].args.value[1:]
        kinds.add(program.types()[last].value)
    assert {"count", "number", "object", "objects", "boolean", "string", "pixels"} <= kinds


def test_main_job_answers_the_sample_like_the_ground_truth(prefect_harness, tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from tests_flow_helpers import check_against_truth

    from georeason.flows.answer import answer

    out = tmp_path / "outputs"
    result = answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        out=str(out), results_dir=str(tmp_path / "results")
    )
    assert result["errors"] == 0 and result["failed_tiles"] == 0
    rows = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    specs = read_questions(CATALOG / "questions.yaml")
    assert len(rows) == len(specs)
    sample_qs = [s.question for s in specs if s.item == "sample"]
    truth = read_scene(CATALOG / "sample" / "sample_truth.geojson")
    check_against_truth([r for r in rows if r["item"] == "sample"], truth, sample_qs)
    # the ambiguous reference abstains with its reason instead of guessing
    amb = next(r for r in rows if r["question"] == "What is the area of the lake?")
    assert amb["abstained"] and "3 objects match" in amb["reason"]
    # Landsat: visible bands only; the water index measurably misses the dark deep water, so
    # water answers abstain naming it (georeason.models.fitness), with the confidence summary
    land = {r["question"]: r for r in rows if r["item"] == "landsat"}
    for q in ("What is the area of the largest water body in km2?", "Which pixels are water?"):
        assert land[q]["abstained"] and "misses dark open water" in land[q]["reason"], land[q]
        assert land[q]["details"]["confidence"]["blocked"]
        assert land[q]["details"]["abstained_value"] > 0  # what the index alone would have said
    for item in ("sample", "landsat"):
        for name in ("objects.gpkg", "quicklook.png", f"{item}.qgs"):
            assert (out / item / name).stat().st_size > 0
    # objects mixing polygons and lines (sample: roads) are one GeoJSON per geometry type
    assert any(p.stat().st_size > 0 for p in (out / "landsat").glob("objects*.geojson"))
    assert {p.name for p in (out / "sample").glob("objects*.geojson")} == {
        "objects.polygons.geojson",
        "objects.lines.geojson",
    }
    for r in rows:
        for v in (r.get("outputs") or {}).values():
            for p in [v] if isinstance(v, str) else v:
                assert not Path(p).is_absolute() and (out / p).exists(), p
        mask = (r.get("details") or {}).get("mask")  # a pixel answer's mask, relative too
        assert mask is None or (not Path(mask).is_absolute() and (out / mask).exists()), mask
