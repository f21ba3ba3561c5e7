"""Prefect tasks for the raster half: plan tiles, fit the grounder, ground tile batches, merge.

Thin wrappers around :mod:`georeason.pipeline`; retries only where I/O happens.

Caching that is right, and safe. Tile-batch results do not go through Prefect's result
store (which unpickles whatever serializer a stored file names: a planted file would run
code). ``ground-tiles`` looks batches up in :class:`georeason.tilecache.TileCache`, JSON
files with WKB geometry under the run's results folder, keyed by
:func:`georeason.tilecache.batch_key`: the raster's content SHA-256 (verified against the
file before the run), the tile windows, the grounder's name and configuration, the
classes and the band names. A corrupt or foreign cache file is recomputed, not trusted;
a rerun after a kill skips the batches that finished.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from georeason.errors import TileReadError
from georeason.geo.raster.io import as_dataset
from georeason.geo.raster.tiling import Tile, plan_tiles
from georeason.models.registry import GrounderSpec, build_grounder, prepare_spec
from georeason.pipeline import BatchResult, ground_batch, merge_batches
from georeason.tilecache import TileCache, batch_key

__all__ = ["plan_item_tiles", "fit_grounder", "ground_tiles", "merge_tiles"]

GROUND_RETRIES = 2


@task(retries=2, retry_delay_seconds=[1, 5], name="plan-tiles", cache_policy=NO_CACHE)
def plan_item_tiles(raster: str, tile_px: int, overlap_px: int) -> list[Tile]:
    """The tile plan of a raster (all-nodata tiles skipped)."""
    with as_dataset(raster) as src:
        tiles = list(plan_tiles(src, tile_px, overlap_px))
    get_run_logger().info("%s: %d tiles of %d px (overlap %d)", raster, len(tiles), tile_px, overlap_px)
    return tiles


@task(retries=2, retry_delay_seconds=[1, 5], name="fit-grounder", cache_policy=NO_CACHE)
def fit_grounder(raster: str, name: str, options: dict[str, Any]) -> GrounderSpec:
    """Per-scene grounder set-up (e.g. spectral thresholds) as a spec for the workers."""
    spec = prepare_spec(name, raster, options)
    get_run_logger().info("grounder %s config %s", spec.name, spec.config_json[:300])
    return spec


@task(
    name="ground-tiles",
    retries=GROUND_RETRIES,
    retry_delay_seconds=[1, 5],
    cache_policy=NO_CACHE,  # cached as data in TileCache, never through Prefect's (pickle) store
    persist_result=False,
)
def ground_tiles(
    raster: str,
    raster_sha256: str,
    tiles: list[Tile],
    spec: GrounderSpec,
    classes: list[str],
    bands: list[str],
    cache_dir: str | None = None,
) -> BatchResult:
    """Ground one batch of tiles.

    A tile that fails to read triggers a task retry (I/O is often transient); if it still
    fails on the last attempt, the task fails, is not cached, and the flow re-runs that
    batch tile by tile so only the tiles that really fail are lost.
    """
    cache = TileCache(cache_dir) if cache_dir else None
    key = batch_key(raster_sha256, tiles, spec.name, spec.config_json, classes, bands)
    if cache is not None:
        hit = cache.get(key, tiles)
        if hit is not None:
            get_run_logger().info("cached: %d tiles of %s (%s)", len(tiles), raster, key[:12])
            return hit
    grounder = build_grounder(spec)
    with as_dataset(raster, check_read=False) as src:
        result = ground_batch(src, tiles, grounder, classes, bands)
    if result.failures:
        ctx = TaskRunContext.get()
        attempt = ctx.task_run.run_count if ctx else 1
        first = result.failures[0]
        raise TileReadError(
            f"{len(result.failures)} of {len(tiles)} tiles of {raster} failed (attempt {attempt}); "
            f"first: tile {first.index}: {first.error}"
        )
    n = sum(len(d) for _, d in result.results)
    get_run_logger().info("grounded %d tiles of %s: %d detections", len(tiles), raster, n)
    if cache is not None:
        cache.put(key, result)
    return result


@task(name="merge-seams", cache_policy=NO_CACHE)
def merge_tiles(batches: list[BatchResult], classes: list[str], spec: GrounderSpec):
    """Seam-merge the batches of one raster into objects (see :func:`merge_batches`)."""
    cfg = spec.config
    objects, failures = merge_batches(
        batches,
        classes,
        min_area_m2=float(cfg.get("min_area_m2", 0.0)),
        simplify_m=float(cfg.get("simplify_m", 0.0)),
    )
    get_run_logger().info("merged into %d objects (%d tile failures)", len(objects), len(failures))
    return objects, failures
