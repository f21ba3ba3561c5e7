"""Grounding in worker processes: every core, with each grounder built once per worker.

Grounding a tile is Python- and GIL-bound (labelling, vectorising, per-object shapely
calls), so threads share one core. :class:`WorkerPool` runs
:func:`georeason.pipeline.ground_job_batch` in a pool of worker processes instead:

* started from a ``forkserver`` that has already imported the grounding stack (workers
  are forked from it, ready, instead of each importing shapely/rasterio/scipy again), and
  never forked from the caller (which runs Prefect's threads and event loop);
* warmed at once (:meth:`WorkerPool.warm`): the workers start while the caller still
  reads vectors and fits the grounder;
* a worker builds a grounder once and reuses it for every batch
  (:func:`georeason.models.registry.build_grounder` caches per process, keyed on the
  :class:`~georeason.models.registry.GrounderSpec`);
* only small values cross the process boundary: the :class:`~georeason.pipeline.GroundJob`
  (paths and the spec), the tiles, and the batch's detections back;
* a worker that dies (killed, out of memory) breaks the pool: the pool is rebuilt and the
  batch fails with :class:`~georeason.errors.TileReadError`, so the caller's retry and
  tile-by-tile fallback apply as for any failed batch.

No Prefect here: :func:`georeason.tasks.raster.prefect_map` sends its ``ground-tiles`` task
bodies to a pool when the flow has one, and a plain loop could do the same.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from georeason.errors import TileReadError
from georeason.geo.raster.tiling import Tile
from georeason.pipeline import BatchResult, GroundJob, Mapper, TileFailure, TileProgress, ground_job_batch

__all__ = ["WorkerPool", "default_workers", "pool_map", "PRELOAD"]

#: Modules the forkserver imports once, so forked workers start ready.
PRELOAD = ["georeason.pipeline", "georeason.models.spectral"]


def default_workers() -> int:
    """The number of worker processes by default: the CPUs this process may run on.

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _warm() -> int:
    import georeason.models.spectral  # noqa: F401 - already preloaded by the forkserver; cheap

    return os.getpid()


class WorkerPool:
    """A pool of ``workers`` processes that ground tile batches (a context manager):
    ``with WorkerPool(2) as pool: result = pool.ground(job, tiles)``.

    The workers inherit the environment of the forkserver, which starts with the first
    pool of the process: environment changes made after that do not reach them.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {workers}")
        self.workers = int(workers)
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    def warm(self) -> list[Future[int]]:
        """Start the workers now (they import nothing more: the forkserver preloaded it);
        the futures give the workers' process ids."""
        return [self._executor.submit(_warm) for _ in range(self.workers)]

    def ground(self, job: GroundJob, tiles: Sequence[Tile]) -> BatchResult:
        """Ground one batch in a worker (:func:`georeason.pipeline.ground_job_batch`).

        Raises
        ------
        TileReadError
            When the worker died while grounding (the pool is rebuilt for the next batch).
        """
        executor = self._executor
        try:
            return executor.submit(ground_job_batch, job, list(tiles)).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._executor is executor:  # the first thread to see it rebuilds the pool
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
            raise TileReadError(
                f"a grounding worker process died while grounding {len(tiles)} tile(s) of {job.raster} "
                f"({exc}); the batch is retried"
            ) from exc

    def close(self) -> None:
        """Stop the workers (waits for running batches)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pool_map(pool: WorkerPool) -> Mapper:
    """A :data:`~georeason.pipeline.Mapper` without Prefect: the batches grounded in
    ``pool``'s processes, all at once, results yielded in batch order (each dropped here once
    handed on: the pipeline merges it and lets its detections go).

    A batch whose worker died is re-run once; if it fails again each of its tiles becomes
    a :class:`~georeason.pipeline.TileFailure` (the other batches carry on).
    """
    from concurrent.futures import ThreadPoolExecutor

    def run_batch(job: GroundJob, tiles: list[Tile]) -> BatchResult:
        for attempt in (1, 2):
            try:
                return pool.ground(job, tiles)
            except TileReadError as exc:
                if attempt == 2:
                    return BatchResult(
                        (),
                        tuple(
                            TileFailure(
                                (int(t.index[0]), int(t.index[1])),
                                f"{type(exc).__name__}: {exc}",
                                t.core_bounds,
                            )
                            for t in tiles
                        ),
                    )
        raise AssertionError("unreachable")

    def map_batches(
        job: GroundJob, batches: list[list[Tile]], tiles_done: TileProgress | None = None
    ) -> Iterator[BatchResult]:
        with ThreadPoolExecutor(max_workers=pool.workers) as threads:
            futures: list[Future[BatchResult] | None] = [threads.submit(run_batch, job, b) for b in batches]
            for i, b in enumerate(batches):
                fut = futures[i]
                assert fut is not None
                result = fut.result()
                futures[i] = fut = None  # handed on to the seam merge: not kept here
                if tiles_done is not None:
                    tiles_done(len(b))
                yield result

    return map_batches
