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
    """Write the item's GeoPackage (objects + answer evidence, raster CRS), GeoJSON of
    all objects (RFC 7946) and a quicklook PNG."""
    import shapely

    from georeason.geo.export.layers import feature_collection, rfc7946_geometry, write_geojson, write_table
    from georeason.geo.export.quicklook import write_quicklook

    out = Path(out_dir)
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
    evidence = []
    for r in rows:
        for e in r.get("evidence") or []:
            evidence.append(shapely.geometry.shape(e["geometry"]))
    from georeason.geo.vector.crs import LONLAT, reproject

    ev_native = [reproject(g, LONLAT, scene.crs) for g in evidence]
    files["quicklook"] = str(
        write_quicklook(raster, out / "quicklook.png", objects=list(scene.geoms), evidence=ev_native)
    )
    return files
