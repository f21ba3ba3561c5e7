"""Prefect tasks for the reasoning half: load vector layers, export an item's answers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georeason.geo.export.layers import relative_outputs
from georeason.geo.vector.scene import Scene
from georeason.pipeline import ItemExport, Outcome, read_vectors
from georeason.runstate import finite_row

__all__ = ["load_vectors", "answer_item", "relative_row"]


@task(retries=2, retry_delay_seconds=[1, 5], name="load-vectors", cache_policy=NO_CACHE)
def load_vectors(paths: list[str]) -> Scene | None:
    """Objects from an item's vector assets (and ``--objects``) (:func:`georeason.pipeline.read_vectors`).

    Ids come from each file's ``id`` field (else its first unique field), so questions
    can say ``#id``.
    """
    scene = read_vectors(paths)
    if scene is not None:
        get_run_logger().info("loaded %d vector objects from %s", len(scene), ", ".join(paths))
    return scene


@task(name="answer-export", cache_policy=NO_CACHE)  # no retries: the answers are consumed once
def answer_item(
    item: str,
    raster: str,
    answers: Iterable[Outcome],
    scene: Scene,
    out_dir: str,
    rows: str,
    base: str,
    basemap: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Answer an item's questions and export each answer as it comes (pass ``answers``, an
    iterator such as :attr:`georeason.pipeline.ItemStream.stream`, and ``scene`` wrapped in
    Prefect's ``quote``): its files are written and its ``answers.jsonl`` line appended to
    ``rows`` (paths relative to ``base``, the folder of ``answers.jsonl``) at once, then the
    answer is dropped, while the item's objects are written in a background thread
    (:class:`georeason.pipeline.ItemExport`). (No task takes the answers as a list: the
    flow has no such step, and :func:`georeason.pipeline.export_item_outputs` does it
    without Prefect.)

    ``basemap`` (wrapped in ``quote``): the quicklook basemap summed from the grounded tiles
    (:attr:`georeason.pipeline.Grounding.basemap`), else it is read from ``raster``.

    Returns the rows without their evidence (for the run's summary and artifacts; absolute
    paths) and the item's files. Same files, byte for byte, as
    :func:`georeason.pipeline.export_item_outputs` of the answers held in a list.
    """
    log = get_run_logger()
    slim: list[dict[str, Any]] = []
    with (
        ItemExport(item, raster, scene, out_dir, basemap=basemap) as export,
        open(rows, "w", encoding="utf-8") as fh,
    ):
        for outcome in answers:
            r = finite_row(export.add(outcome))
            del outcome
            fh.write(json.dumps(relative_row(r, Path(base)), allow_nan=False) + "\n")
            log.info("[%s] %s -> %s", item, r["question"], r.get("error") or r.get("reason") or r["answer"])
            slim.append({k: v for k, v in r.items() if k != "evidence"})
        return slim, export.finish()


def relative_row(row: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``row`` with its file paths (``outputs`` and a pixel answer's ``details.mask``) made
    relative to ``out_dir``, the folder of ``answers.jsonl``."""
    if row.get("outputs"):
        row = {**row, "outputs": relative_outputs(row["outputs"], out_dir)}
    details = row.get("details")
    if isinstance(details, dict) and isinstance(details.get("mask"), str):
        row = {**row, "details": {**details, "mask": relative_outputs({"m": details["mask"]}, out_dir)["m"]}}
    return row
