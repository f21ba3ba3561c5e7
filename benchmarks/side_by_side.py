"""Time two commands side by side as whole processes: A B A B ..., ratios pair by pair.

Usage::

    python benchmarks/side_by_side.py [-n RUNS] [--warmup W] --vs 'COMMAND_B' -- COMMAND_A [ARG ...]

Each run's CPU seconds (user + system) and peak RSS are the operating system's accounting
of the finished child and of the descendants it waited for (``os.wait4``); wall seconds
are a monotonic clock around start and reap. The two commands alternate (A B A B ...) so
that a drift in the machine's speed hits both alike, and A/B is taken per pair; the
report prints min, median and max of each figure: quote the median, and read a wide
min-max spread as a noisy machine. Output of the commands is discarded. ``COMMAND_B`` is
split as a shell splits words (``shlex``), without a shell.

This is the method of every whole-process ratio in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def _once(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, cpu s, peak MiB) of one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"side_by_side: {shlex.join(cmd)!r} exited {proc.returncode}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def _row(name: str, values: list[float]) -> str:
    return f"{name:<14}{min(values):>10.3f}{statistics.median(values):>12.3f}{max(values):>12.3f}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print(
            "usage: side_by_side.py [-n RUNS] [--warmup W] --vs 'COMMAND_B' -- COMMAND_A ...", file=sys.stderr
        )
        return 2
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5, help="counted runs of each command (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted runs of each first (default 1)")
    ap.add_argument("--vs", required=True, help="the baseline command B, one string")
    args = ap.parse_args(argv[:cut])
    a, b = argv[cut + 1 :], shlex.split(args.vs)
    for _ in range(args.warmup):
        _once(a), _once(b)
    ra, rb = [], []
    for _ in range(args.n):
        ra.append(_once(a))
        rb.append(_once(b))
    print(f"{'':<14}{'min':>10}{'median':>12}{'max':>12}   n: A {args.n}, B {args.n}; whole process")
    for label, runs in (("A", ra), ("B", rb)):
        print(_row(f"{label} cpu s", [r[1] for r in runs]))
        print(_row(f"{label} wall s", [r[0] for r in runs]))
        print(_row(f"{label} peak MiB", [r[2] for r in runs]))
    print(_row("A/B cpu", [x[1] / y[1] for x, y in zip(ra, rb, strict=True)]))
    print(_row("A/B wall", [x[0] / y[0] for x, y in zip(ra, rb, strict=True)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
