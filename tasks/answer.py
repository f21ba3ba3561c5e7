"""Prefect tasks for the reasoning half: load vector layers, export an item's answers."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georeason.geo.vector.scene import Scene
from georeason.pipeline import Outcome, export_item_outputs, read_vectors

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
    """Write an item's files from its :class:`~georeason.geo.language.answer.Answer` objects
    (:func:`georeason.pipeline.export_item_outputs`; pass ``answers`` and ``scene`` wrapped
    in Prefect's ``quote`` so that Prefect does not walk their geometries).

    Per answer its GIS layers (``q01-how-many-lakes.geojson``, RFC 7946, one file per
    geometry type; a null-geometry record for a question that failed); per item the
    objects, quicklooks (item and per answer), QGIS styles and project
    (:func:`georeason.geo.export.item.export_item_files`, evidence taken in its own CRS:
    no lon/lat round trip). Returns the ``answers.jsonl`` rows (with ``item`` and
    ``outputs``, absolute paths) and the item's files.
    """
    rows, item_files = export_item_outputs(item, raster, answers, scene, out_dir)
    log = get_run_logger()
    for r in rows:
        log.info("[%s] %s -> %s", item, r["question"], r.get("error") or r.get("reason") or r["answer"])
    return rows, item_files
