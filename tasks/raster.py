"""Prefect tasks for the raster half: ground tile batches, and the Prefect :data:`Mapper`.

Thin wrappers around :mod:`georeason.pipeline`: :func:`prefect_map` is the ``map`` the
flow gives :class:`~georeason.pipeline.Pipeline`, so the flow grounds through the same
path as ``georeason ask`` — only the fan-out differs (``task.map`` on the flow's task
runner: threads, or Dask through prefect-dask). With a
:class:`~georeason.workers.WorkerPool` (the flow's default on a machine with more than one
core) the task runs stay in the flow's threads — states, retries, names, the tile cache —
while the grounding itself runs in the pool's processes: every core, and nothing but the
job, the tiles and the detections crosses a process boundary. Retries only where I/O happens.

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

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prefect import get_run_logger, task, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from georeason.errors import TileReadError
from georeason.geo.export.names import slug
from georeason.geo.raster.io import release_heap
from georeason.geo.raster.tiling import Tile
from georeason.pipeline import BatchResult, GroundJob, Mapper, TileFailure, TileProgress, ground_job_batch
from georeason.progress import reporter
from georeason.runstate import verify_raster_checksum
from georeason.tilecache import TileCache, job_batch_key
from georeason.workers import WorkerPool

__all__ = ["BatchFailed", "ground_tiles", "batch_run_name", "prefect_map", "register_pool", "unregister_pool"]

#: Worker pools of this process by key: a ``ground-tiles`` task names its pool by key (a
#: small string parameter); a task run in another process (a Dask worker) finds none there
#: and grounds in its own process.
_POOLS: dict[str, WorkerPool] = {}


def register_pool(pool: WorkerPool) -> str:
    """Make ``pool`` available to ``ground-tiles`` runs of this process; returns its key."""
    key = f"{os.getpid()}-{id(pool)}"
    _POOLS[key] = pool
    return key


def unregister_pool(key: str) -> None:
    """Forget a pool registered with :func:`register_pool` (it is not closed)."""
    _POOLS.pop(key, None)


GROUND_RETRIES = 2


class BatchFailed(TileReadError):
    """Some tiles of a batch failed (the task fails so that it is retried and not cached).

    ``failures`` are the :class:`~georeason.pipeline.TileFailure` of the last attempt.
    """

    def __init__(self, message: str, failures: tuple[TileFailure, ...] = ()):
        super().__init__(message)
        self.message = message
        self.failures = failures

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # keep ``failures`` through pickling (results, Dask)
        return (type(self), (self.message, self.failures))


@task(
    name="ground-tiles",
    retries=GROUND_RETRIES,
    retry_delay_seconds=[1, 5],
    cache_policy=NO_CACHE,  # cached as data in TileCache, never through Prefect's (pickle) store
    persist_result=False,
)
def ground_tiles(
    job: GroundJob, tiles: list[Tile], cache_dir: str | None = None, pool: str | None = None
) -> BatchResult:
    """Ground one batch of tiles (:func:`georeason.pipeline.ground_job_batch`), or read it
    from the :class:`~georeason.tilecache.TileCache` in ``cache_dir`` (keyed on the raster's
    content; no cache without ``job.raster_sha256``). ``pool`` names a
    :class:`~georeason.workers.WorkerPool` (:func:`register_pool`) that grounds the batch in
    a worker process; without one (or in a process that does not hold it) the batch is
    grounded here.

    A tile that fails triggers a task retry (I/O is often transient); if it still fails
    on the last attempt, the task fails, is not cached, and :func:`prefect_map` re-runs
    that batch tile by tile so only the tiles that really fail are lost.
    """
    key = job_batch_key(job, tiles) if cache_dir else None
    cache = TileCache(cache_dir) if cache_dir and key else None
    if cache is not None and key:
        hit = cache.get(key, tiles, job.cells)
        if hit is not None:
            get_run_logger().info("cached: %d tiles of %s (%s)", len(tiles), job.raster, key[:12])
            return hit
    workers = _POOLS.get(pool) if pool else None
    ahead = workers is not None and workers.has_ahead(job, tiles)
    result = workers.ground(job, tiles) if workers is not None else ground_job_batch(job, tiles)
    if result.failures:
        ctx = TaskRunContext.get()
        attempt = ctx.task_run.run_count if ctx else 1
        first = result.failures[0]
        raise BatchFailed(
            f"{len(result.failures)} of {len(tiles)} tiles of {job.raster} failed (attempt {attempt}); "
            f"first: tile {first.index}: {first.error}",
            result.failures,
        )
    n = sum(len(d) for _, d in result.results)
    get_run_logger().info(
        "grounded %d tiles of %s: %d detections%s",
        len(tiles),
        job.raster,
        n,
        " (submitted ahead: while Prefect started, or while the previous item was answered)" if ahead else "",
    )
    if cache is not None and key:
        cache.put(key, result, job.cells)
    return result


def batch_run_name(item: str) -> Callable[[], str]:
    """Run name of a tile batch: the item and the batch's tile range (tile grid row, col),
    e.g. ``sample: ground tiles (0, 0)..(0, 2) (3)``."""

    def name() -> str:
        from prefect.runtime import task_run

        tiles = task_run.parameters.get("tiles") or []
        if not tiles:
            return f"{item}: ground tiles"
        first, last = tuple(tiles[0].index), tuple(tiles[-1].index)
        span = f"tile {first}" if len(tiles) == 1 else f"tiles {first}..{last} ({len(tiles)})"
        return f"{item}: ground {span}"

    return name


#: Seconds between updates of an item's progress artifact (the last batch always updates it).
PROGRESS_EVERY_S = 1.0


def prefect_map(results_dir: str | Path | None = None, pool: str | None = None) -> Mapper:
    """The Prefect :data:`~georeason.pipeline.Mapper`: ``ground_tiles.map`` on the flow's runner.

    ``pool``: the key of a registered :class:`~georeason.workers.WorkerPool` that grounds
    the batches in worker processes (:func:`register_pool`).

    Call inside a flow. The raster's content is first checked against the catalog's
    checksum (the tile cache under ``results_dir`` is keyed on it; a ``CatalogError``
    names an edited file). Task runs are named by item and tile range; a progress artifact
    per item (``georeason-progress-<item>``) and a terminal bar (:func:`georeason.progress.reporter`)
    follow the batches as they finish. A batch whose task fails is re-run tile by tile; a
    tile that still fails becomes a :class:`~georeason.pipeline.TileFailure` carrying the
    grounder's own error, exactly as :func:`georeason.pipeline.local_map` reports it.
    """
    cache_dir = str(results_dir) if results_dir else None

    def map_batches(
        job: GroundJob, batches: list[list[Tile]], tiles_done: TileProgress | None = None
    ) -> Iterator[BatchResult]:
        log = get_run_logger()
        item = job.item or Path(job.raster).stem
        # the tile cache is keyed on the raster's content: check the file is what the catalog says
        verify_raster_checksum(SimpleNamespace(id=item, sha256=job.raster_sha256, raster_path=job.raster))
        mapped = ground_tiles.with_options(task_run_name=batch_run_name(item))
        total = sum(len(b) for b in batches)
        progress_id: Any = create_progress_artifact(
            0.0,
            key=f"georeason-progress-{slug(item, fallback='item')}",
            description=f"{item}: tiles grounded ({total} tiles in {len(batches)} batches)",
        )
        bar, bar_key = reporter(), f"tiles:{item}"
        bar.start(bar_key, f"{item}: grounding tiles", total=total)
        done = 0
        shown = time.monotonic()
        # results are yielded in batch order and not kept here: the pipeline merges each
        # batch as it comes and lets its detections go
        futures: list[Any] = list(mapped.map(unmapped(job), batches, unmapped(cache_dir), unmapped(pool)))
        for i, batch in enumerate(batches):
            fut, futures[i] = futures[i], None
            fut.wait()
            done += len(batch)
            # one API call (and its events) per PROGRESS_EVERY_S, and the last one: batches
            # grounded ahead finish together, and the UI needs no more
            if done == total or time.monotonic() - shown >= PROGRESS_EVERY_S:
                update_progress_artifact(progress_id, 100.0 * done / max(1, total))
                shown = time.monotonic()
            bar.advance(bar_key, len(batch))
            if tiles_done is not None:
                tiles_done(len(batch))
            if fut.state.is_completed():
                yield fut.result()
                # merged: the batch's detections, its pickle and its cache file's bytes were
                # freed in this thread or the task's; their heap goes back to the system
                release_heap()
                continue
            log.warning("batch of %d tiles of %s failed; retrying tile by tile", len(batch), job.raster)
            singles = mapped.map(unmapped(job), [[t] for t in batch], unmapped(cache_dir), unmapped(pool))
            for t, f in zip(batch, singles):
                f.wait()
                if f.state.is_completed():
                    yield f.result()
                    continue
                err = f.result(raise_on_failure=False)
                lost = getattr(err, "failures", None) or (
                    TileFailure(
                        (int(t.index[0]), int(t.index[1])), f"{type(err).__name__}: {err}", t.core_bounds
                    ),
                )
                yield BatchResult((), tuple(lost))

    return map_batches
