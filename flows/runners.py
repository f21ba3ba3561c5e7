"""Task runners: threads by default, Dask (prefect-dask) to scale out without code changes."""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from georeason.errors import InputError

__all__ = ["task_runner"]


def task_runner(dask_address: str | None = None, dask_workers: int | None = None, threads: int = 4) -> Any:
    """The task runner for a run.

    - ``dask_address``: an existing Dask scheduler (``tcp://host:8786``) — a cluster;
    - ``dask_workers``: a temporary local Dask cluster of that many worker processes
      (one thread each: GDAL and numpy release the GIL, processes sidestep what does not);
    - neither: a thread pool of ``threads`` workers in this process.
    """
    if dask_address and dask_workers:
        raise InputError("give either --dask-address or --dask-workers, not both")
    if dask_address or dask_workers:
        from prefect_dask import DaskTaskRunner  # dask is heavy: imported only when asked for

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": int(dask_workers or 1),
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return ThreadPoolTaskRunner(max_workers=max(1, int(threads)))
