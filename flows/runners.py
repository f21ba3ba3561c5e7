"""Task runners: worker processes by default, threads, or Dask (prefect-dask) without code changes."""

from __future__ import annotations

from typing import Any, NamedTuple

from prefect.task_runners import ThreadPoolTaskRunner

from georeason.errors import InputError
from georeason.models.registry import prefers_processes
from georeason.workers import default_workers

__all__ = ["task_runner", "runner_for", "Runner", "RUNNERS"]

RUNNERS = ("process", "thread", "dask")


class Runner(NamedTuple):
    """A run's Prefect task runner and the number of grounding worker processes (the
    ``answer`` flow's ``processes``; 0: grounding runs in the task runner's workers)."""

    task_runner: Any
    processes: int
    name: str


def task_runner(
    dask_address: str | None = None,
    dask_workers: int | None = None,
    threads: int = 4,
    runner: str | None = None,
    workers: int | None = None,
) -> Any:
    """The Prefect task runner of :func:`runner_for` (the ``answer`` flow starts its own
    worker processes when its task runner is a thread pool)."""
    return runner_for(dask_address, dask_workers, threads, runner, workers).task_runner


def runner_for(
    dask_address: str | None = None,
    dask_workers: int | None = None,
    threads: int = 4,
    runner: str | None = None,
    workers: int | None = None,
    grounder: str = "spectral",
) -> Runner:
    """The task runner for a run, and its grounding worker processes.

    - ``runner="process"`` (the default when this process may use more than one CPU and
      the grounder is GIL-bound Python, :func:`georeason.models.registry.prefers_processes`):
      task runs in a thread pool of ``workers`` threads, grounding in a
      :class:`~georeason.workers.WorkerPool` of ``workers`` processes (default: one per
      CPU): grounding is GIL-bound Python, processes use every core;
    - ``runner="thread"`` (the default on one CPU, or for a model grounder): a thread pool of ``threads`` workers,
      grounding in those threads (model backends that release the GIL: torch, a remote API);
    - ``runner="dask"`` or ``dask_address``/``dask_workers``: an existing Dask scheduler
      (``tcp://host:8786``) or a temporary local Dask cluster of ``dask_workers`` worker
      processes (one thread each).
    """
    if dask_address and dask_workers:
        raise InputError("give either --dask-address or --dask-workers, not both")
    if runner is not None and runner not in RUNNERS:
        raise InputError(f"--runner {runner!r} is not a runner; use one of {', '.join(RUNNERS)}")
    if (dask_address or dask_workers) and runner in ("process", "thread"):
        raise InputError(f"--runner {runner} cannot be used with --dask-address/--dask-workers; drop one")
    if runner is None:
        if dask_address or dask_workers:
            runner = "dask"
        else:
            runner = "process" if default_workers() > 1 and prefers_processes(grounder) else "thread"
    if runner == "dask":
        from prefect_dask import DaskTaskRunner  # dask is heavy: imported only when asked for

        if dask_address:
            return Runner(DaskTaskRunner(address=dask_address), 0, "dask")
        return Runner(
            DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": int(dask_workers or workers or default_workers()),
                    "threads_per_worker": 1,
                    "processes": True,
                    "dashboard_address": None,
                }
            ),
            0,
            "dask",
        )
    if runner == "process":
        n = max(1, int(workers or default_workers()))
        return Runner(ThreadPoolTaskRunner(max_workers=n), n, "process")
    return Runner(ThreadPoolTaskRunner(max_workers=max(1, int(threads))), 0, "thread")
