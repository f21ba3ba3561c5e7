"""The temporary Prefect server's boot: its settings vs Prefect's defaults, interleaved.

    python benchmarks/server_boot.py --reps 3

Each rep starts a :class:`georeason.prefect_server.TemporaryServer` (the server of
``georeason run`` when no ``PREFECT_API_URL`` is set) once with
:data:`~georeason.prefect_server.TEMPORARY_SERVER_SETTINGS` (triggers and the event vacuum
off) and once with Prefect's defaults for those settings, in alternating order, and prints
per variant: wall seconds from start to its health check, the server process's CPU
seconds then and ``--idle`` seconds later (its services' work at start), the wall time
of the first API request (FastAPI builds its route table then; ``georeason run`` sends it
from a thread as soon as the server answers), and RSS.
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
}


def boot(env: dict[str, str], idle_s: float) -> tuple[float, float, float, float, float]:
    """(wall to health, CPU at health, CPU after idle_s, first request s, RSS MB)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = TemporaryServer(warm=False)  # the first request is timed here
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
        server.stop()
        return wall, cpu, c.user + c.system, first, rss
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
    variants = {"temporary": dict(TEMPORARY_SERVER_SETTINGS), "prefect-defaults": PREFECT_DEFAULTS}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    res: dict[str, list[tuple[float, float, float, float, float]]] = {k: [] for k in variants}
    for rep in range(args.reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in order:
            r = boot(variants[name], args.idle)
            res[name].append(r)
            print(
                f"rep {rep} {name:16s} health {r[0]:5.2f} s  cpu {r[1]:5.2f} s  cpu +{args.idle:.0f}s "
                f"{r[2]:5.2f} s  first request {r[3]:5.2f} s  rss {r[4]:4.0f} MB",
                flush=True,
            )
    for name, rs in res.items():
        med = [statistics.median(r[i] for r in rs) for i in range(5)]
        print(
            f"{name:16s} median: health {med[0]:.2f} s wall, {med[1]:.2f} CPU-s; +{args.idle:.0f} s: "
            f"{med[2]:.2f} CPU-s; first request {med[3]:.2f} s; {med[4]:.0f} MB"
        )
    for i, label in ((0, "wall to health"), (2, f"CPU-s at +{args.idle:.0f} s")):
        ratios = [a[i] / b[i] for a, b in zip(res["temporary"], res["prefect-defaults"])]
        print(
            f"temporary / prefect-defaults {label}: median {statistics.median(ratios):.3f} (pairs {ratios})"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
