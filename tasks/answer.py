"""Prefect tasks for the reasoning half: load vectors, build the scene, answer, export."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from georeason.geo.vector.scene import Scene, read_scene
from georeason.pipeline import answer_questions, grounded_scene

__all__ = ["load_vectors", "answer_item", "export_item"]


@task(retries=2, retry_delay_seconds=[1, 5], name="load-vectors", cache_policy=NO_CACHE)
def load_vectors(paths: list[str], crs_wkt: str) -> Scene | None:
    """Objects from an item's vector assets (and ``--objects``), reprojected to the raster CRS.

    Ids come from each file's ``id`` field (else its first unique field), so questions
    can say ``#id``.
    """
    scene: Scene | None = None
    for p in paths:
        s = read_scene(p)
        scene = s if scene is None else scene.extend(s)
    if scene is not None:
        from pyproj import CRS

        from georeason.geo.vector.crs import reproject

        target = CRS.from_wkt(crs_wkt)
        scene = Scene(
            scene.ids,
            scene.labels,
            reproject(scene.geoms, scene.crs, target),
            target,
            scores=scene.scores,
            attrs=scene.attrs,
            source=scene.source,
        )
        get_run_logger().info("loaded %d vector objects from %s", len(scene), ", ".join(paths))
    return scene


@task(name="answer-questions", cache_policy=NO_CACHE)
def answer_item(
    item: str,
    raster: str,
    crs_wkt: str,
    objects,
    failures,
    vectors: Scene | None,
    questions: list[str],
    grounded: list[str],
    out_dir: str,
    grounder: str | None = None,
    bands: list[str] | None = None,
    min_confidence: float | None = None,
) -> tuple[list[dict], Scene]:
    """Build the item's scene and answer its questions; writes per-answer GeoJSON and masks.

    With ``grounder``, grounded objects are marked instance or cover and every answer from
    them gets its confidence summary (abstaining below ``min_confidence``), as in ``ask``.
    """
    from pyproj import CRS

    scene = grounded_scene(objects, CRS.from_wkt(crs_wkt), vectors, source=f"item {item}")
    post = None
    if grounder is not None and grounded:
        from georeason.models.fitness import DEFAULT_MIN_CONFIDENCE, annotate_scene, apply_confidence, assess

        fitness = assess(raster, grounder, grounded, bands)
        annotate_scene(scene, fitness, grounder)
        floor = DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)

        def post(answer):
            return apply_confidence(answer, scene, fitness, floor)

    rows = answer_questions(
        scene,
        questions,
        Path(out_dir),
        raster=raster,
        grounded=grounded,
        failures=failures,
        item=item,
        post=post,
    )
    log = get_run_logger()
    for r in rows:
        log.info("[%s] %s -> %s", item, r["question"], r.get("error") or r.get("reason") or r["answer"])
    return rows, scene


@task(retries=1, name="export-item", cache_policy=NO_CACHE)
def export_item(item: str, raster: str, scene: Scene, rows: list[dict], out_dir: str) -> dict[str, str]:
    """Write the item's objects (GeoPackage + RFC 7946 GeoJSON), quicklooks (item and per
    answer), QGIS styles and project; adds each answer's quicklook to its row's outputs."""
    from georeason.geo.export.item import export_item_files

    return export_item_files(
        out_dir,
        raster,
        [str(i) for i in scene.ids],
        [str(lab) for lab in scene.labels],
        list(scene.geoms),
        scene.crs,
        rows,
        scores=list(scene.scores),
        sources=[a.get("source", "vector") for a in scene.attrs],
        item=item,
    )
