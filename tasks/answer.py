"""Prefect tasks for the reasoning half: load vector layers, export an item's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georeason.geo.export.item import export_item_files
from georeason.geo.export.layers import answer_stem, write_answer_files, write_error_record
from georeason.geo.language.answer import Answer
from georeason.geo.vector.scene import Scene
from georeason.pipeline import Outcome, outcome_row, read_vectors

__all__ = ["load_vectors", "export_item"]


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


@task(retries=1, name="export-item", cache_policy=NO_CACHE)
def export_item(
    item: str, raster: str, answers: list[Outcome], scene: Scene, out_dir: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write an item's files from its :class:`~georeason.geo.language.answer.Answer` objects.

    Per answer its GIS layers (``q01-how-many-lakes.geojson``, RFC 7946, one file per
    geometry type; a null-geometry record for a question that failed); per item the
    objects, quicklooks (item and per answer), QGIS styles and project
    (:func:`georeason.geo.export.item.export_item_files`, evidence taken in its own CRS:
    no lon/lat round trip). Returns the ``answers.jsonl`` rows (with ``item`` and
    ``outputs``, absolute paths) and the item's files.
    """
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for n, a in enumerate(answers, 1):
        row = outcome_row(a, item)
        path = out / f"{answer_stem(n, a.question or '')}.geojson"
        if isinstance(a, Answer):
            written = write_answer_files(a, path)
            files: dict[str, Any] = {"geojson": str(written[0])}
            if len(written) > 1:
                files["parts"] = [str(w) for w in written]
            if "mask" in a.details:
                files["mask"] = str(a.details["mask"])
        else:
            files = {"geojson": str(write_error_record(a.question, a.error, path))}
        row["outputs"] = files
        rows.append(row)
        outputs.append(files)
    item_files = export_item_files(
        out,
        raster,
        [str(i) for i in scene.ids],
        [str(lab) for lab in scene.labels],
        list(scene.geoms),
        scene.crs,
        [a if isinstance(a, Answer) else None for a in answers],
        outputs,
        scores=list(scene.scores),
        sources=[a.get("source", "vector") for a in scene.attrs],
        item=item,
    )
    for files, png in zip(outputs, item_files.pop("answer_quicklooks", None) or []):
        if png:
            files["quicklook"] = png
    log = get_run_logger()
    for r in rows:
        log.info("[%s] %s -> %s", item, r["question"], r.get("error") or r.get("reason") or r["answer"])
    return rows, item_files
