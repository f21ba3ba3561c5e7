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
  tile-by-tile fallback apply as for any failed batch;
* grounding can start *ahead* (:meth:`WorkerPool.prefetch`, :func:`ground_ahead`): ``georeason
  run`` plans the first item's tile batches (the same job and batches the flow will plan:
  :func:`run_pipeline`, :meth:`georeason.pipeline.Pipeline.plan_item`) and submits them while
  its Prefect server boots and Prefect is imported; it hands the pool to the flow
  (:func:`offer_pool`, :func:`take_offered_pool`), whose ``ground-tiles`` task runs then take
  the results that are ready (or wait for them) instead of grounding again. Only the
  submission moves earlier: each batch is still a task run, a batch that failed ahead is
  grounded again by the task's retry, and a plan that differs is simply not used.

No Prefect here: :func:`georeason.tasks.raster.prefect_map` sends its ``ground-tiles`` task
bodies to a pool when the flow has one, and a plain loop could do the same.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from georeason.errors import TileReadError
from georeason.geo.raster.io import env_mb, gdal_cache_mb, release_heap, usable_cpus
from georeason.geo.raster.tiling import Tile
from georeason.models.fitness import DEFAULT_MIN_CONFIDENCE
from georeason.pipeline import (
    BatchResult,
    CompiledQuestion,
    GroundJob,
    Mapper,
    Pipeline,
    TileFailure,
    TileProgress,
    compile_questions,
    ground_job_batch,
    local_map,
)

__all__ = [
    "WorkerPool",
    "default_workers",
    "pool_map",
    "release_after",
    "PRELOAD",
    "WORKER_GDAL_CACHEMAX_MB",
    "worker_gdal_cache_mb",
    "BATCHES_PER_WORKER",
    "MAX_BATCH_TILES",
    "run_pipeline",
    "ground_ahead",
    "prefetch_item",
    "next_item_ahead",
    "offer_pool",
    "take_offered_pool",
    "take_compiled",
    "take_plans",
]

log = logging.getLogger(__name__)

#: Tile batches per grounding worker: a few large batches, not one task run per tile (each
#: task run costs API calls and state changes), yet enough to even out uneven tiles.
BATCHES_PER_WORKER = 3

#: ... and at most this many tiles in a batch (:attr:`georeason.pipeline.Pipeline.max_batch_tiles`):
#: a batch's detections and basemap shares are held by its worker until the batch ends and
#: then arrive in the flow process at once, so a 20000^2 scene in 6 batches of 88 tiles
#: peaked higher on both sides than in batches of at most 24 (benchmarks/RESULTS.md,
#: "flowmem2"). The 8000^2 scene (81 tiles, 6 batches of 13-14) is not affected.
MAX_BATCH_TILES = 24

#: Modules the forkserver imports once, so forked workers start ready.
PRELOAD = ["georeason.pipeline", "georeason.models.spectral"]


def default_workers() -> int:
    """The number of worker processes by default: the CPUs this process may run on.

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    return usable_cpus()


#: GDAL's block cache (MB) in each grounding worker (:func:`worker_gdal_cache_mb`). A worker
#: reads each of its tiles once, in order: the cache only saves the blocks a tile shares with
#: the next one in its row, one column of blocks (a 1024 px tile of 512 px blocks, 4 bands
#: uint16: 3 blocks of 2 MB), which :func:`georeason.geo.raster.tiling.read_tile` reads last
#: and the next tile reads first. 8 MB holds that column: the 8000^2 scene's tiles read in
#: 2.12 CPU-s instead of 3.04 with 4 MB (which holds less than one column; benchmarks/
#: RESULTS.md, "Re-run 11"), for 4 MB more per worker. (16 MB in "lean", 64 MB before;
#: 4 MB from "flowmem2", when tiles were read whole and no cache short of a whole tile's
#: blocks kept the shared column.) ``GEOREASON_WORKER_GDAL_CACHEMAX_MB`` sets another size.
WORKER_GDAL_CACHEMAX_MB = 8


def worker_gdal_cache_mb() -> int | None:
    """The block cache (MB) the grounding workers are given: ``GEOREASON_WORKER_GDAL_CACHEMAX_MB``
    when it is a positive integer, else :data:`WORKER_GDAL_CACHEMAX_MB`; ``None`` (the
    workers keep what they inherit) when the user sized the cache for the whole run
    (``GEOREASON_GDAL_CACHEMAX_MB``, or a ``GDAL_CACHEMAX`` other than georeason's default)."""
    mb = env_mb("GEOREASON_WORKER_GDAL_CACHEMAX_MB", f"the workers use {WORKER_GDAL_CACHEMAX_MB}")
    if mb is not None:
        return mb
    if (
        os.environ.get("GEOREASON_GDAL_CACHEMAX_MB")
        or os.environ.get("GDAL_CACHEMAX") != f"{gdal_cache_mb()}MB"
    ):
        return None
    return WORKER_GDAL_CACHEMAX_MB


def _init_worker(cache_mb: int | None) -> None:
    """Run once in each worker process, before its first task: GDAL's block cache bounded
    (GDAL sizes it at the first block read, which has not happened in this process), and the
    objects inherited from the forkserver moved out of the cycle collector's reach
    (``gc.freeze``: a collection would write to every object's header and so copy the
    forkserver's pages, shared until then, into this worker)."""
    if cache_mb:
        os.environ["GDAL_CACHEMAX"] = f"{int(cache_mb)}MB"
    gc.freeze()


def _warm() -> int:
    import georeason.models.spectral  # noqa: F401 - already preloaded by the forkserver; cheap

    return os.getpid()


def _ground_in_worker(job: GroundJob, tiles: list[Tile]) -> BatchResult:
    """:func:`georeason.pipeline.ground_job_batch`, then the heap the batch freed handed back
    to the system (:func:`georeason.geo.raster.io.release_heap`): a worker waiting for its
    next batch holds its imports and GDAL's cache, not the last batch's freed arrays."""
    try:
        return ground_job_batch(job, tiles)
    finally:
        release_heap()


def _batch_id(job: GroundJob, tiles: Sequence[Tile]) -> Hashable:
    """What identifies a batch's result: the job (raster, fitted grounder spec, classes,
    bands, content hash; not the item label) and the tiles' windows."""

    def win(w: Any) -> tuple[float, ...]:
        return (float(w.col_off), float(w.row_off), float(w.width), float(w.height))

    return (
        job.raster,
        job.spec,
        job.classes,
        job.bands,
        job.raster_sha256,
        tuple((tuple(t.index), win(t.window), win(t.core)) for t in tiles),
    )


def _stop_forkserver() -> None:
    """Stop this process's multiprocessing forkserver if it runs (``ForkServer._stop``: the
    standard library's own way, private, hence guarded; ``ensure_running`` starts a new one
    for a later pool)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - memory only: a forkserver left running is harmless
            log.debug("forkserver not stopped: %s: %s", type(exc).__name__, exc)


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
        _OPEN.add(self)
        #: questions compiled by :func:`ground_ahead`, by text, for the flow that takes this pool
        self.compiled: dict[str, CompiledQuestion] = {}
        #: the plans :func:`ground_ahead` made (grounder fitted, tiles planned), for the flow's
        #: pipeline (:attr:`georeason.pipeline.Pipeline.plans`, :func:`take_plans`)
        self.plans: dict[Hashable, Any] = {}
        #: batches submitted ahead (:meth:`prefetch`), by :func:`_batch_id`
        self._ahead: dict[Hashable, tuple[ProcessPoolExecutor, Future[BatchResult]]] = {}

    def _new_executor(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(worker_gdal_cache_mb(),),
        )

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
        with self._lock:
            ahead = self._ahead.pop(_batch_id(job, tiles), None)
        if ahead is not None:
            executor, future = ahead
        else:
            executor = self._executor
        try:
            if ahead is None:
                future = executor.submit(_ground_in_worker, job, list(tiles))
            return future.result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._executor is executor:  # the first thread to see it rebuilds the pool
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
            raise TileReadError(
                f"a grounding worker process died while grounding {len(tiles)} tile(s) of {job.raster} "
                f"({exc}); the batch is retried"
            ) from exc

    def prefetch(self, job: GroundJob, batches: Sequence[Sequence[Tile]]) -> int:
        """Submit ``batches`` now (returns at once); :meth:`ground` of the same job and
        tiles then takes the result instead of grounding again. Returns the number of
        batches submitted (those not already waiting)."""
        n = 0
        with self._lock:
            for tiles in batches:
                key = _batch_id(job, tiles)
                if key not in self._ahead:
                    future = self._executor.submit(_ground_in_worker, job, list(tiles))
                    self._ahead[key] = (self._executor, future)
                    n += 1
        return n

    def has_ahead(self, job: GroundJob, tiles: Sequence[Tile]) -> bool:
        """Whether this batch was submitted ahead (:meth:`prefetch`) and not taken yet."""
        with self._lock:
            return _batch_id(job, tiles) in self._ahead

    def close(self, stop_forkserver: bool = False) -> None:
        """Stop the workers (waits for running batches; batches submitted ahead and never
        taken are cancelled or dropped). Closing twice is harmless.

        ``stop_forkserver``: also stop this process's forkserver (it holds the preloaded
        grounding stack, ~100 MB) when no other pool is open; a later pool starts a new one.
        It cannot go sooner, once the workers run: each worker's exit status reaches the
        executor through a pipe from the forkserver, so its end reads as every worker's
        death (a broken pool), and the standard library's stop waits for the workers to exit.
        """
        with self._lock:
            self._ahead.clear()
            self.plans = {}
        if self in _OFFERED:
            _OFFERED.remove(self)
        self._executor.shutdown(wait=True, cancel_futures=True)
        _OPEN.discard(self)
        if stop_forkserver and not _OPEN:
            _stop_forkserver()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def release_after(mapper: Mapper, release: Callable[[], None]) -> Mapper:
    """``mapper``, calling ``release`` once its batches are all consumed (or it stops early):
    how ``ask`` and the flow let their worker processes go as soon as the last batch is
    merged, instead of keeping them idle through the answers."""

    def map_batches(
        job: GroundJob, batches: list[list[Tile]], tiles_done: TileProgress | None = None
    ) -> Iterator[BatchResult]:
        try:
            yield from mapper(job, batches, tiles_done)
        finally:
            release()

    return map_batches


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
                del result
                release_heap()  # merged: the batch's unpickled detections are freed; hand their heap back

    return map_batches


def run_pipeline(
    grounder: str,
    grounder_options: dict[str, Any] | None,
    *,
    tile_px: int,
    overlap_px: int,
    max_task_runs: int,
    parallel: int,
    map: Mapper = local_map,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Pipeline:
    """The :class:`~georeason.pipeline.Pipeline` of a ``georeason run`` (the ``answer`` flow
    and :func:`ground_ahead` build it here, so they plan the same batches).

    ``grounder_options`` may carry ``bands`` (the raster's band names, ``--bands``) and
    ``min_confidence`` (the answers' confidence floor): they are not grounder settings.
    ``parallel``: the workers grounding batches (0: unknown, e.g. Dask), which sets the
    number of batches (:data:`BATCHES_PER_WORKER` per worker, more where a batch would hold
    more than :data:`MAX_BATCH_TILES` tiles; at most ``max_task_runs``).
    """
    options = dict(grounder_options or {})
    bands = options.pop("bands", None)
    min_confidence = options.pop("min_confidence", None)
    pipeline = Pipeline(
        grounder=grounder,
        grounder_options=options,
        bands=bands,
        min_confidence=DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence),
        on_unusable_bands="abstain",
        tile_px=tile_px,
        overlap_px=overlap_px,
        max_batches=min(max_task_runs, BATCHES_PER_WORKER * parallel) if parallel else max_task_runs,
        max_batch_tiles=MAX_BATCH_TILES if parallel else 0,
        batch_limit=max_task_runs,
        map=map,
        basemap=True,  # the run's quicklooks: basemap summed from the tiles, not read again
    )
    if logger is not None:
        pipeline.logger = logger
    return pipeline


#: Pools of this process not closed yet (the forkserver is stopped only when none is left).
_OPEN: weakref.WeakSet[WorkerPool] = weakref.WeakSet()

#: Pools handed from the command line to the flow of the same process (:func:`offer_pool`).
_OFFERED: list[WorkerPool] = []


def offer_pool(pool: WorkerPool) -> None:
    """Offer ``pool`` (started, perhaps grounding ahead) to the next flow of this process
    that wants a pool of its size (:func:`take_offered_pool`). The offerer still closes it
    (closing twice is harmless) in case no flow takes it."""
    _OFFERED.append(pool)


def take_offered_pool(workers: int) -> WorkerPool | None:
    """An offered pool of ``workers`` processes, now the caller's to close; else ``None``."""
    for pool in _OFFERED:
        if pool.workers == workers:
            _OFFERED.remove(pool)
            return pool
    return None


def take_compiled(texts: Sequence[str], pool: WorkerPool | None = None) -> list[CompiledQuestion]:
    """``texts`` compiled (:func:`georeason.pipeline.compile_questions`), taking those
    :func:`ground_ahead` compiled and left with ``pool`` (the pool a flow took with
    :func:`take_offered_pool`: compiling is an Earley parse per question, not done twice).
    Each is handed over once: a later call compiles anew."""
    ready = pool.compiled if pool is not None else {}
    handed = {t: ready.pop(t) for t in dict.fromkeys(texts) if t in ready}
    todo = [t for t in dict.fromkeys(texts) if t not in handed]
    handed.update(zip(todo, compile_questions(todo)))
    return [handed[t] for t in texts]


def take_plans(pipeline: Pipeline, pool: WorkerPool | None) -> None:
    """Give ``pipeline`` the plans :func:`ground_ahead` made and left with ``pool`` (the pool
    a flow took with :func:`take_offered_pool`): its :meth:`~georeason.pipeline.Pipeline.ground`
    then takes the fitted grounder and the planned tiles instead of doing both again (on
    an 8000^2 scene: a threshold fit and a nodata scan, each a read of the whole file). A
    plan is used only for the same inputs (:meth:`~georeason.pipeline.Pipeline.plan_ground`),
    and once."""
    if pool is not None and pool.plans:
        pipeline.plans.update(pool.plans)
        pool.plans = {}


def ground_ahead(
    pool: WorkerPool,
    pipeline: Pipeline,
    *,
    catalog: str | Path | None,
    questions: str | Path | None,
    items: Sequence[str] | None = None,
    objects: Sequence[str | Path] = (),
    results_dir: str | Path | None = None,
) -> int:
    """Submit the first item's tile batches to ``pool`` now, as the ``answer`` flow will
    plan them with ``pipeline`` (:func:`run_pipeline` with the flow's settings), so that
    they ground while Prefect starts. Returns the number of batches submitted.

    Best effort: whatever goes wrong here (a bad input, an unreadable file) returns 0 and
    is left to the flow, which reports it; batches already in the tile cache under
    ``results_dir`` are not submitted.
    """
    from georeason.catalog import default_catalog_dir, list_items
    from georeason.config import read_questions

    try:
        cat_dir = Path(catalog) if catalog else default_catalog_dir()
        specs = read_questions(Path(questions) if questions else cat_dir / "questions.yaml")
        infos = [i for i in list_items(cat_dir) if not items or i.id in items]
        for info in infos:
            texts = [s.question for s in specs if s.item in (None, info.id)]
            if texts:
                break
        else:
            return 0
        compiled = compile_questions(texts)
        pool.compiled = dict(zip(texts, compiled))  # handed to the flow with the pool
        try:
            return prefetch_item(pool, pipeline, info, compiled, objects=objects, results_dir=results_dir)
        finally:
            pool.plans = pipeline.plans  # handed to the flow's pipeline with the pool: not fitted twice
    except Exception as exc:  # noqa: BLE001 - best effort: the flow does the work and reports errors
        log.debug("grounding ahead skipped: %s: %s", type(exc).__name__, exc)
        return 0


def prefetch_item(
    pool: WorkerPool,
    pipeline: Pipeline,
    info: Any,
    compiled: Sequence[CompiledQuestion],
    *,
    objects: Sequence[str | Path] = (),
    results_dir: str | Path | None = None,
    max_tiles: int | None = None,
) -> int:
    """Plan one catalog item (``info``: an :class:`~georeason.catalog.ItemInfo`) as
    ``pipeline`` will (its fitted grounder and tiles kept in :attr:`Pipeline.plans`, not done
    twice) and submit its tile batches to ``pool``, in order, as long as they hold at most
    ``max_tiles`` tiles together (at least one batch; all with ``None``); batches already
    in the tile cache under ``results_dir`` are not submitted. Returns the number
    submitted. Raises what reading the item raises (callers are best effort)."""
    from georeason.pipeline import read_vectors
    from georeason.tilecache import TileCache, job_batch_key

    vector_paths = info.vector_sources(objects)
    vectors = read_vectors(vector_paths) if vector_paths else None
    plan = pipeline.plan_item(compiled, vectors=vectors, **info.raster_inputs())
    if plan is None:
        return 0
    job, batches = plan
    if results_dir:
        cache = TileCache(results_dir)

        def cached(tiles: list[Tile]) -> bool:
            key = job_batch_key(job, tiles)
            return key is not None and cache.path(key).exists()

        batches = [b for b in batches if not cached(b)]
    if max_tiles is not None:
        sizes = np.cumsum([len(b) for b in batches])
        batches = batches[: max(1, int(np.searchsorted(sizes, max_tiles, side="right")))]
    return pool.prefetch(job, batches)


def next_item_ahead(
    pool: WorkerPool,
    pipeline: Pipeline,
    info: Any,
    compiled: Sequence[CompiledQuestion],
    *,
    objects: Sequence[str | Path] = (),
    results_dir: str | Path | None = None,
) -> threading.Thread:
    """Start grounding the next item while this one is answered: a thread plans ``info``
    (:func:`prefetch_item`) and submits its first tile batches, which the workers, idle once
    an item is grounded, ground meanwhile; the flow's task runs for those batches then take
    the results (:meth:`WorkerPool.ground`), as for :func:`ground_ahead`. At most
    :data:`MAX_BATCH_TILES` tiles per worker go ahead (a small item whole, a large one a
    full batch per worker): the results wait in this process until the next item merges
    them, so memory holds at most that many tiles' detections more. Best effort (a failure
    is left to the flow, which plans the item again and reports it). Join the thread before
    the next item starts: the plan it keeps is read there."""

    def work() -> None:
        try:
            prefetch_item(
                pool,
                pipeline,
                info,
                compiled,
                objects=objects,
                results_dir=results_dir,
                max_tiles=MAX_BATCH_TILES * pool.workers,
            )
        except Exception as exc:  # noqa: BLE001 - best effort: the flow does the work and reports errors
            log.debug("next item ahead skipped: %s: %s", type(exc).__name__, exc)

    thread = threading.Thread(target=work, name="georeason-next-item", daemon=True)
    thread.start()
    return thread
