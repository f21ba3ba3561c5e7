"""The temporary Prefect server's boot: its settings vs Prefect's defaults, interleaved.

    python benchmarks/server_boot.py --reps 3

Each rep starts a :class:`georeason.prefect_server.TemporaryServer` (the server of
``georeason run`` when no ``PREFECT_API_URL`` is set) once per variant, in alternating
order: ``temporary`` (:data:`~georeason.prefect_server.TEMPORARY_SERVER_SETTINGS`, started
with :data:`~georeason.prefect_server.SERVE_WITHOUT_GC`: what ``run`` does),
``blocks-and-gc`` (the same but block registration's memo on and ``python -m uvicorn``:
the server before boot2) and ``prefect-defaults`` (Prefect's defaults for every setting
changed, ``python -m uvicorn``). Per variant: wall seconds from start to its health check,
the server process's CPU seconds then and ``--idle`` seconds later (its services' work at
start, the first request included), the wall time of the first API request (FastAPI builds
its route table then; ``georeason run`` sends it from a thread as soon as the server
answers), RSS and PSS. All variants share the environment's ``PREFECT_HOME`` (a first,
untimed boot migrates a new one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import urllib.request

import psutil

from georeason.prefect_server import TEMPORARY_SERVER_SETTINGS, WARM_PATH, TemporaryServer, _health

#: Prefect's defaults for the settings the temporary server changes.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "true",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "true",
}

#: The temporary server before boot2: its settings then (block registration memoized).
BEFORE = {
    **TEMPORARY_SERVER_SETTINGS,
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "true",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "true",
}


def pss_mb(proc: psutil.Process) -> float:
    """Proportional set size of ``proc`` in MB (``/proc/PID/smaps_rollup``)."""
    return float(proc.memory_full_info().pss) / 2**20


def boot(env: dict[str, str], idle_s: float, gc_pause: bool = True) -> tuple[float, ...]:
    """(wall to health, CPU at health, CPU after idle_s, first request s, RSS MB, PSS MB)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = TemporaryServer(warm=False, gc_pause=gc_pause)  # the first request is timed here
        t0 = time.perf_counter()
        server.start()
        assert server.process is not None
        proc = psutil.Process(server.process.pid)
        while not _health(server.api_url, 1.0):
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        c = proc.cpu_times()
        cpu = c.user + c.system
        t1 = time.perf_counter()
        with urllib.request.urlopen(server.api_url + WARM_PATH, timeout=60) as resp:
            resp.read()
        first = time.perf_counter() - t1
        time.sleep(idle_s)
        c = proc.cpu_times()
        rss = proc.memory_info().rss / 2**20
        pss = pss_mb(proc)
        server.stop()
        return wall, cpu, c.user + c.system, first, rss, pss
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--idle", type=float, default=4.0, help="seconds after the health check (default 4)")
    args = ap.parse_args()
    variants = {
        "temporary": (dict(TEMPORARY_SERVER_SETTINGS), True),
        "blocks-and-gc": (BEFORE, False),
        "prefect-defaults": (PREFECT_DEFAULTS, False),
    }
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    boot(dict(TEMPORARY_SERVER_SETTINGS), 0.0)  # migrations of a new PREFECT_HOME (untimed)
    res: dict[str, list[tuple[float, ...]]] = {k: [] for k in variants}
    for rep in range(args.reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in order:
            env, gc_pause = variants[name]
            r = boot(env, args.idle, gc_pause)
            res[name].append(r)
            print(
                f"rep {rep} {name:16s} health {r[0]:5.2f} s  cpu {r[1]:5.2f} s  cpu +{args.idle:.0f}s "
                f"{r[2]:5.2f} s  first request {r[3]:5.2f} s  rss {r[4]:4.0f} MB  pss {r[5]:4.0f} MB",
                flush=True,
            )
    for name, rs in res.items():
        med = [statistics.median(r[i] for r in rs) for i in range(6)]
        print(
            f"{name:16s} median: health {med[0]:.2f} s wall, {med[1]:.2f} CPU-s; +{args.idle:.0f} s: "
            f"{med[2]:.2f} CPU-s; first request {med[3]:.2f} s; RSS {med[4]:.0f} MB, PSS {med[5]:.0f} MB"
        )
    for other in ("blocks-and-gc", "prefect-defaults"):
        for i, label in ((0, "wall to health"), (2, f"CPU-s at +{args.idle:.0f} s"), (5, "PSS")):
            ratios = [round(a[i] / b[i], 3) for a, b in zip(res["temporary"], res[other])]
            print(f"temporary / {other} {label}: median {statistics.median(ratios):.3f} (pairs {ratios})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
