"""Peak memory of a command's process tree, and of each process in it (PSS, psutil).

    python benchmarks/tree_memory.py [--log FILE] [--every S] -- COMMAND ...

Samples the proportional set size of the command and all its descendants every ``--every``
seconds (0.25) and prints the wall time, the children's CPU seconds, the tree's peak (and
when), the top process's peak (for ``georeason run``: the CLI/flow process) and the peak of
each process, each process at the tree's peak, then a coarse timeline. The command's output goes to ``--log`` (default: none).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import psutil


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", default=None)
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("give a command after --", file=sys.stderr)
        return 2
    out = open(args.log, "w") if args.log else subprocess.DEVNULL  # noqa: SIM115 - closed at exit
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    top = psutil.Process(p.pid)
    peak_tree, t_peak, peak_top = 0, 0.0, 0
    per: dict[tuple[int, str], int] = {}
    at_peak: dict[tuple[int, str], int] = {}
    timeline: list[tuple[float, int]] = []
    while p.poll() is None:
        try:
            procs = [top, *top.children(recursive=True)]
        except psutil.Error:
            break
        tree = 0
        now: dict[tuple[int, str], int] = {}
        for c in procs:
            try:
                pss = c.memory_full_info().pss >> 20
                name = "TOP" if c.pid == p.pid else " ".join(c.cmdline()[:3]).replace("\n", " ")[:60]
            except psutil.Error:
                continue
            tree += pss
            now[c.pid, name] = pss
            per[c.pid, name] = max(per.get((c.pid, name), 0), pss)
            if c.pid == p.pid:
                peak_top = max(peak_top, pss)
        if tree > peak_tree:
            peak_tree, t_peak, at_peak = tree, time.time() - t0, now
        timeline.append((round(time.time() - t0, 1), tree))
        time.sleep(args.every)
    wall = time.time() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"rc {p.returncode} wall {wall:.1f} s, CPU {ru.ru_utime + ru.ru_stime:.1f} s (waited-for children), "
        f"peak tree PSS {peak_tree} MB at {t_peak:.0f} s; top process peak {peak_top} MB"
    )
    for (pid, name), v in sorted(per.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {pid} {name}: {v} MB")
    print("at the tree's peak:", ", ".join(f"{pid} {v}" for (pid, _), v in at_peak.items()))
    step = max(1, len(timeline) // 40)
    print("timeline (s:MB):", " ".join(f"{t}:{m}" for t, m in timeline[::step]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
