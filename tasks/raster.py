"""Prefect tasks for the raster half: plan tiles, fit the grounder, ground tile batches, merge.

Thin wrappers around :mod:`georeason.pipeline`; retries only where I/O happens.

Caching that is right, not just on. The tile-batch task's cache key is the task's source
(:data:`prefect.cache_policies.TASK_SOURCE`) plus :class:`TileBatchKey`: the raster's
SHA-256 (content, not path: Prefect's ``INPUTS`` would hash the path string, so an edited
file would hit a stale cache), the tile windows, the grounder's name and configuration,
the classes and the band names. Results persist under the run's result folder
(``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, set by the flow from ``--results``), which is
what lets a rerun after a kill skip the batches that finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from georeason.errors import TileReadError
from georeason.geo.raster.io import as_dataset
from georeason.geo.raster.tiling import Tile, plan_tiles
from georeason.models.registry import GrounderSpec, build_grounder, prepare_spec
from georeason.pipeline import BatchResult, ground_batch, merge_batches

__all__ = ["TileBatchKey", "GROUND_CACHE", "plan_item_tiles", "fit_grounder", "ground_tiles", "merge_tiles"]

GROUND_RETRIES = 2


def _tile_key(t: Tile) -> tuple:
    w, c = t.window, t.core
    return (
        tuple(t.index),
        (w.col_off, w.row_off, w.width, w.height),
        (c.col_off, c.row_off, c.width, c.height),
    )


@dataclass
class TileBatchKey(CachePolicy):
    """Cache key from raster content, tile windows, grounder spec, classes and bands."""

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any):
        spec: GrounderSpec = inputs["spec"]
        return hash_objects(
            inputs["raster_sha256"],
            [_tile_key(t) for t in inputs["tiles"]],
            spec.name,
            spec.config_json,
            sorted(inputs["classes"]),
            list(inputs["bands"]),
            raise_on_failure=True,
        )


GROUND_CACHE = TASK_SOURCE + TileBatchKey()


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
    cache_policy=GROUND_CACHE,
    persist_result=True,
)
def ground_tiles(
    raster: str,
    raster_sha256: str,
    tiles: list[Tile],
    spec: GrounderSpec,
    classes: list[str],
    bands: list[str],
) -> BatchResult:
    """Ground one batch of tiles.

    A tile that fails to read triggers a task retry (I/O is often transient); if it still
    fails on the last attempt, the task fails, is not cached, and the flow re-runs that
    batch tile by tile so only the tiles that really fail are lost.
    """
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
