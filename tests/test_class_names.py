"""Class names keep their meaning: plural questions ground and prompt with the singular.

"lakes" -> "lake", "trees" -> "tree", "houses" -> "house", "buses" -> "bus",
"geese" -> "goose" (by inflect), in what a model grounder is asked, in the logs, and in
how answers resolve the grounded objects.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import shapely

from georeason.geo.grounding.detections import Detection
from georeason.geo.vector.classnames import class_forms, singular
from georeason.models.base import ModelGrounder
from georeason.models.registry import register
from georeason.pipeline import Pipeline, canonical_class

SAMPLE = Path(__file__).resolve().parents[1] / "data_catalog" / "sample" / "sample_scene.tif"
WORDS = {"lakes": "lake", "trees": "tree", "houses": "house", "buses": "bus", "geese": "goose"}


def test_singulars_by_inflect():
    assert {w: singular(w) for w in WORDS} == WORDS
    # singular words stay as they are, including those ending in s
    for w in [*WORDS.values(), "grass", "gas", "status", "water", "forest"]:
        assert singular(w) == w, w
    assert singular("water bodies") == "water body"
    assert class_forms("geese") == ["geese", "goose"]
    assert {w: canonical_class(w.upper(), lambda c: True) for w in WORDS} == WORDS


class PromptRecorder(ModelGrounder):
    """A model grounder that records the classes each model call is prompted with and
    finds one object of each class in the middle of every tile."""

    prompts: list[list[str]] = []

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        PromptRecorder.prompts.append(list(classes))
        out = []
        for img in images:
            h, w = img.shape[:2]
            box = shapely.box(w / 2 - 5, h / 2 - 5, w / 2 + 5, h / 2 + 5)
            out.append([Detection(c, 0.9, "box", box) for c in classes])
        return out


def test_prompts_logs_and_answers_use_the_singular(caplog):
    register("prompt-recorder", lambda cfg: PromptRecorder(cfg), lambda label: True)
    PromptRecorder.prompts = []
    questions = [f"How many {w} are there?" for w in WORDS]
    with caplog.at_level(logging.INFO, logger="georeason.pipeline"):
        result = Pipeline("prompt-recorder", tile_px=2048, overlap_px=0).run(questions, raster=str(SAMPLE))
    want = list(WORDS.values())
    assert PromptRecorder.prompts and all(p == want for p in PromptRecorder.prompts)
    assert f"grounding {', '.join(want)} on 1 tiles" in caplog.text
    assert not any(f" {w}" in caplog.text for w in ("lak,", "tre,", "hous,", "buse", "gees"))
    assert sorted(set(result.scene.labels)) == sorted(want)
    # one tile, one object of each class in it: each plural question finds its one object ...
    answers = dict(zip(WORDS, result.answers))
    assert all(answers[w].value == 1 for w in WORDS if w != "trees")
    # ... except trees: a tree is smaller than a 10 m pixel, which the fitness check says
    # about "a tree" (it knows the class by its singular), so the count abstains
    assert answers["trees"].abstained and "a tree" in answers["trees"].reason
