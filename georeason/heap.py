"""The C heap of a ``georeason`` command's processes: at most one ``malloc`` arena per CPU.

glibc gives each thread that allocates its own arena, up to 8 per core (16 on a 2-core
machine), and an arena's freed pages stay in it. A ``georeason run`` has many threads that
allocate: Prefect's task-run threads (each unpickles a batch of detections from a worker),
its event loop and log threads, the export's writer and basemap threads, GDAL's decoding
threads; and the temporary Prefect server's own. Each then holds heap the others cannot
reuse. :func:`bound_malloc_arenas` caps the arenas at the usable CPUs (at least 2), the
setting glibc documents for this (``M_ARENA_MAX``, ``MALLOC_ARENA_MAX``): threads beyond
that share arenas, and contend for one only when more of them allocate at once than there
are cores to run them. Measured on the 8000^2 scene (2 cores, benchmarks/RESULTS.md,
re-run 10): the run's process 50-65 MB less at its peak, the same wall time.

It applies to this process from the call on (arenas made before stay: call it before any
thread starts) and, through the environment, to every process it starts (the temporary
server, the worker processes). A ``MALLOC_ARENA_MAX`` the user set is left as it is; other C
libraries (no ``mallopt``) are left alone.
"""

from __future__ import annotations

import os

__all__ = ["ARENA_ENV", "M_ARENA_MAX", "bound_malloc_arenas"]

#: glibc's environment variable for the arena cap (read when a process starts).
ARENA_ENV = "MALLOC_ARENA_MAX"

#: glibc's ``mallopt`` parameter for the arena cap (``<malloc.h>``).
M_ARENA_MAX = -8


def bound_malloc_arenas(arenas: int | None = None) -> int | None:
    """Cap this process's and its children's ``malloc`` arenas at ``arenas`` (default: the
    usable CPUs, at least 2); the cap now in force, ``None`` when none was set here (the
    user's ``MALLOC_ARENA_MAX`` stands, or the C library has no ``mallopt``)."""
    if os.environ.get(ARENA_ENV):
        return None
    if arenas is None:
        from georeason.geo.cpus import usable_cpus

        arenas = max(2, usable_cpus())
    import ctypes

    try:
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except OSError:  # no C library to load symbols from
        return None
    if mallopt is None or mallopt(M_ARENA_MAX, int(arenas)) != 1:  # 1: glibc took it
        return None
    os.environ[ARENA_ENV] = str(int(arenas))  # the processes this one starts
    return int(arenas)
