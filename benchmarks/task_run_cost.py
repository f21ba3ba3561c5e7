"""CPU of one Prefect task run, in the flow's process and in the temporary server.

    python benchmarks/task_run_cost.py [--tasks 41] [--reps 3]

Starts the temporary server of ``georeason run``
(:class:`georeason.prefect_server.TemporaryServer`, in a fresh ``PREFECT_HOME`` under the
system's temporary folder), then runs a flow mapping a trivial task over 1 and over
``--tasks`` inputs on the thread-pool task runner, interleaved, each followed by sending
Prefect's queued events and logs and a pause for the server to record them. The
difference, divided by the extra task runs, is the cost of one task run: the flow
process's CPU (``time.process_time``) and the server process's (psutil).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=41)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="task-run-cost-")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import psutil

    from georeason.prefect_server import TemporaryServer

    server = TemporaryServer().start()
    os.environ["PREFECT_API_URL"] = server.wait_ready()
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.cli import _drain_prefect

    @task(cache_policy=NO_CACHE, persist_result=False)
    def trivial(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def fan_out(n: int) -> int:
        return sum(f.result() for f in trivial.map(range(n)))

    assert server.process is not None
    proc = psutil.Process(server.process.pid)

    def server_cpu() -> float:
        c = proc.cpu_times()
        return float(c.user + c.system)

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    fan_out(1)  # warm-up
    _drain_prefect()
    res: dict[int, list[tuple[float, float]]] = {1: [], args.tasks: []}
    try:
        for rep in range(args.reps):
            for n in (1, args.tasks) if rep % 2 == 0 else (args.tasks, 1):
                time.sleep(1.0)
                c0, s0 = time.process_time(), server_cpu()
                fan_out(n)
                _drain_prefect()
                time.sleep(1.5)  # the server's task run recorder and event persister
                res[n].append((time.process_time() - c0, server_cpu() - s0))
    finally:
        server.stop()
    extra = args.tasks - 1
    flow_ms = [1000 * (a[0] - b[0]) / extra for a, b in zip(res[args.tasks], res[1])]
    server_ms = [1000 * (a[1] - b[1]) / extra for a, b in zip(res[args.tasks], res[1])]
    print(
        f"per task run: flow process {statistics.median(flow_ms):.1f} ms CPU "
        f"(pairs {[round(x, 1) for x in flow_ms]}), server {statistics.median(server_ms):.1f} ms CPU "
        f"(pairs {[round(x, 1) for x in server_ms]})"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
