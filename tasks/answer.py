"""Prefect tasks for the reasoning half: load vector layers, export an item's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georeason.geo.export.layers import (
    feature_collection,
    rfc7946_geometry,
    write_answer,
    write_geojson,
    write_table,
)
from georeason.geo.export.names import answer_stem
from georeason.geo.export.quicklook import write_quicklook
from georeason.geo.language.answer import Answer
from georeason.geo.raster.grid import RasterGrid
from georeason.geo.vector.crs import reproject
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
    item: str, answers: list[Outcome], scene: Scene, grid: RasterGrid | None, out_dir: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Write an item's files from its :class:`~georeason.geo.language.answer.Answer` objects.

    Per answer a GeoJSON of its evidence (``q01-how-many-lakes.geojson``, RFC 7946); per
    item a GeoPackage of all objects (raster CRS), their GeoJSON and a quicklook PNG with
    the evidence outlined (evidence geometry taken in its own CRS, reprojected to the
    raster's: no lon/lat round trip). Returns the ``answers.jsonl`` rows (with ``item``
    and ``outputs``) and the item's files.
    """
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for n, a in enumerate(answers, 1):
        row = outcome_row(a, item)
        if isinstance(a, Answer):
            outputs = {"geojson": str(write_answer(a, out / f"{answer_stem(n, a.question or '')}.geojson"))}
            if "mask" in a.details:
                outputs["mask"] = str(a.details["mask"])
            row["outputs"] = outputs
        rows.append(row)
    files: dict[str, str] = {}
    props = [
        {
            "id": str(scene.ids[i]),
            "class": str(scene.labels[i]),
            "score": None if scene.scores[i] is None else float(scene.scores[i]),
            "source": scene.attrs[i].get("source", "vector"),
        }
        for i in range(len(scene))
    ]
    if len(scene):
        files["gpkg"] = str(
            write_table(props, list(scene.geoms), scene.crs, out / "objects.gpkg", layer="objects")
        )
    fc = feature_collection(
        {"type": "Feature", "id": p["id"], "properties": p, "geometry": rfc7946_geometry(g, scene.crs)}
        for p, g in zip(props, scene.geoms)
    )
    files["objects_geojson"] = str(write_geojson(fc, out / "objects.geojson"))
    if grid is not None and grid.path is not None:
        evidence = [
            reproject(e.geometry, e.crs, grid.crs)
            for a in answers
            if isinstance(a, Answer)
            for e in a.evidence
        ]
        files["quicklook"] = str(
            write_quicklook(grid.path, out / "quicklook.png", objects=list(scene.geoms), evidence=evidence)
        )
    log = get_run_logger()
    for r in rows:
        log.info("[%s] %s -> %s", item, r["question"], r.get("error") or r.get("reason") or r["answer"])
    return rows, files
