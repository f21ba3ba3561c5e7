"""End to end: ``georeason run`` (Prefect) vs the same pipeline without Prefect, side by side.

``python benchmarks/end_to_end.py CATALOG --item scene8000 --reps 3 --workers 1 2 --stages``

``CATALOG`` and its ``questions.txt`` come from ``benchmarks/make_scene.py``. Each rep runs,
in interleaved order, whole processes of:

- ``ask``: ``georeason ask --item ITEM --catalog CATALOG --questions Q --out X.jsonl`` (the
  one pipeline with ``local_map``: grounding and answers in one process, no Prefect);
- ``run``: ``georeason run --catalog CATALOG --item ITEM --questions Q --out DIR`` (the
  ``answer`` flow with its default runner and a temporary Prefect server);
- ``noprefect``: the same work as ``run`` without Prefect, the fair baseline of the
  ``run`` <= 1.15x target: ``benchmarks/orchestration.py --baseline`` (the flow's pipeline
  from :func:`georeason.workers.run_pipeline`, grounding in the same
  :class:`~georeason.workers.WorkerPool` of one worker process per CPU, the same exports
  and ``answers.jsonl``; Prefect never imported). ``ask`` and ``--stages`` ground in one
  process (``local_map``), so they are not that baseline on a machine with 2 cores;
- ``run-started``: ``run`` against a started Prefect server (``prefect server start``, the
  setting the README recommends for scheduled jobs watched in the UI), which this script
  starts once, on 127.0.0.1 with its own ``PREFECT_HOME``, before the reps and stops after;
  the run finds it through ``PREFECT_API_URL`` and starts no temporary server. The server is
  not part of the run's process tree: its CPU while each run is served is printed beside
  the run's own (``server CPU``), and its memory once;
- ``run-wN`` for each ``--workers N``: ``run`` with N worker processes, through the option
  the CLI has (``--workers`` when it exists, else ``--dask-workers``).

For each it prints wall, CPU (user + system of the whole process tree, reaped children
included), peak memory of the process tree sampled every 50 ms: PSS (what the memory
target is judged on: each page shared by forked processes counted once, split among
them) and summed RSS next to it (counts shared pages once per process), and Mpx/s (raster
pixels / wall); then medians, min, max and the ratios the issue's targets are about.
``--stages`` adds one in-process run of the same pipeline with timers around each stage
(reading, indices, thresholding, labelling, vectorising, seam merge, fitness, answers,
export; exclusive: a timed call inside another counts only once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

TARGETS = {
    "mpx_s": 4.0,  # 8000^2 end to end, Mpx/s on 2 cores
    "rss_mb": 600.0,  # peak RSS of that run
    "run_vs_ask": 1.15,  # run <= 1.15x the same work without Prefect (noprefect; ask is one process)
    "w2_vs_w1": 1.7,  # 2 workers >= 1.7x one worker
}


def raster_of(catalog: Path, item: str) -> tuple[Path, int]:
    """The item's raster and its pixel count."""
    import rasterio

    from georeason.catalog import list_items

    info = next(i for i in list_items(catalog) if i.id == item)
    with rasterio.open(info.raster_path) as src:
        return Path(info.raster_path), src.width * src.height


def worker_flag(n: int) -> list[str]:
    """The ``run`` option giving ``n`` worker processes, whichever this CLI has."""
    helptext = subprocess.run(
        ["georeason", "run", "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    ).stdout
    if "--workers" in helptext.replace("--dask-workers", ""):
        return ["--workers", str(n)]
    return ["--dask-workers", str(n)]


class StartedServer:
    """``prefect server start`` on a free loopback port with its own ``PREFECT_HOME`` (a
    context manager): what a team runs once and points its jobs at."""

    def __init__(self, home: Path) -> None:
        from georeason.prefect_server import _free_port

        self.port = _free_port()
        self.home = home
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StartedServer:
        from georeason.prefect_server import _health

        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        beside = Path(sys.executable).parent / "prefect"  # this interpreter's, else the PATH's
        prefect = str(beside) if beside.exists() else shutil.which("prefect") or "prefect"
        cmd = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _health(self.api_url, 2.0):
                return self
            time.sleep(0.5)
        self.__exit__()
        raise SystemExit(f"prefect server start did not answer on {self.api_url} within 120 s")

    def _sum(self, of: Any) -> float:
        """``of(process)`` summed over the server's process tree (processes gone meanwhile skipped)."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += of(p)
        return total

    def cpu(self) -> float:
        """CPU seconds the server's process tree has used so far."""
        return self._sum(lambda p: sum(p.cpu_times()[:2]))

    def pss_mb(self) -> float:
        """The server's process tree's PSS now (RSS where the OS has no PSS), MB."""

        def pss(p: psutil.Process) -> float:
            mem = p.memory_full_info()
            return float(getattr(mem, "pss", mem.rss))

        return self._sum(pss) / 2**20

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cost(r: dict[str, float], key: str) -> float:
    """A rep's ``key`` (wall or cpu); its CPU plus the started server's CPU while it served
    that rep (``server_cpu``, run-started only)."""
    return r[key] + (r.get("server_cpu", 0.0) if key == "cpu" else 0.0)


def measure(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd``; wall s, CPU s (tree), peak RSS MB and peak PSS MB (each summed over the
    tree at one sample, sampled every 50 ms), exit code.

    Summed RSS counts a page shared by forked processes (the forkserver's preloaded
    modules, copy-on-write in its workers) once per process; PSS (proportional set size)
    splits each shared page among the processes that map it, so the tree's summed PSS is
    the memory the run really holds. The memory target is judged on PSS; RSS is printed
    next to it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        ps = psutil.Process(proc.pid)
        peak = peak_pss = 0
        live_cpu: dict[int, float] = {}
        while proc.poll() is None:
            total = total_pss = 0
            try:
                procs = [ps, *ps.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    mem = p.memory_full_info()  # rss, and pss where the OS has it (Linux)
                    total += mem.rss
                    total_pss += getattr(mem, "pss", mem.rss)
                    t = p.cpu_times()
                    live_cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, total)
            peak_pss = max(peak_pss, total_pss)
            time.sleep(0.05)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # children the tree did not reap (a detached server killed by its own parent is reaped
    # by it and counted above); never less than what was seen live
    cpu = max(cpu, sum(live_cpu.values()))
    return {"wall": wall, "cpu": cpu, "rss_mb": peak / 2**20, "pss_mb": peak_pss / 2**20, "rc": float(rc)}


def stage_profile(catalog: Path, item: str, questions: Path, out: Path) -> dict[str, float]:
    """One in-process run of the pipeline (local_map, no Prefect) with a timer per stage."""
    import georeason.geo.grounding.seams as seams_mod
    import georeason.geo.raster.tiling as tiling_mod
    import georeason.models.spectral as spectral
    import georeason.pipeline as pipeline_mod
    from georeason.catalog import list_items
    from georeason.config import read_questions
    from georeason.geo.export.layers import answer_stem
    from georeason.models import registry

    times: dict[str, float] = defaultdict(float)
    inner: list[float] = []  # time spent in timed calls nested in the running ones

    def timed(owner: Any, name: str, stage: str) -> None:
        """Time ``owner.name`` (a module function or a class method) under ``stage``. Patched
        where it is looked up at call time; a name that moved fails here, loudly."""
        fn = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            inner.append(0.0)
            try:
                return fn(*a, **k)
            finally:
                spent = time.perf_counter() - t
                nested = inner.pop()
                times[stage] += spent - nested  # exclusive: a timed call inside counts once
                if inner:
                    inner[-1] += spent

        setattr(owner, name, wrapper)

    # the pipeline imports these inside its functions (from their modules, at call time)
    timed(tiling_mod, "read_tile", "reading")
    timed(registry, "prepare_spec", "threshold fit")
    timed(spectral, "compute_index", "indices")
    timed(spectral, "classify", "thresholding")
    timed(spectral, "label_components", "labelling")
    timed(spectral, "component_scores", "labelling")
    timed(spectral, "vectorise_labels", "vectorising")
    timed(seams_mod.SeamMerger, "add", "seam merge")
    timed(seams_mod.SeamMerger, "finish", "seam merge")
    timed(seams_mod, "assign_ids", "seam merge")
    timed(pipeline_mod, "relabel_water", "seam merge")
    timed(pipeline_mod, "assess", "fitness")
    timed(pipeline_mod, "answer_questions", "answers")

    info = next(i for i in list_items(catalog) if i.id == item)
    qs = [s.question for s in read_questions(questions)]
    item_out = out / item
    t0 = time.perf_counter()
    p = pipeline_mod.Pipeline()
    result = p.run(
        qs,
        raster=str(info.raster_path),
        item=item,
        mask_path=lambda n, q: item_out / "masks" / f"{answer_stem(n, q)}.tif",
        item_bands=info.bands,
    )
    t = time.perf_counter()
    pipeline_mod.export_item_outputs(item, str(info.raster_path), result.answers, result.scene, str(item_out))
    times["export"] += time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    times["other"] = times["total"] - sum(v for k, v in times.items() if k != "total")
    times["objects"] = len(result.scene.ids)
    return dict(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--item", required=True)
    ap.add_argument("--questions", type=Path, help="default: CATALOG/questions.txt")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=[], help="worker counts for run-wN")
    ap.add_argument(
        "--modes",
        default="ask,run",
        help="comma list among ask, run, run-started, noprefect (run-wN come from --workers)",
    )
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another mode, interleaved with the others (COMMAND may hold {out}); e.g. the same ask "
        "on an older checkout",
    )
    ap.add_argument("--stages", action="store_true", help="also one in-process run with per-stage times")
    ap.add_argument("--stage-json", type=Path, help=argparse.SUPPRESS)  # internal: child of --stages
    ap.add_argument("--keep", type=Path, help="keep outputs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    questions = args.questions or args.catalog / "questions.txt"

    if args.stage_json:  # the child process of --stages
        out = Path(tempfile.mkdtemp(prefix="e2e-stages-"))
        try:
            args.stage_json.write_text(json.dumps(stage_profile(args.catalog, args.item, questions, out)))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return 0

    raster, npx = raster_of(args.catalog, args.item)
    work = args.keep or Path(tempfile.mkdtemp(prefix="e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    base_run = ["georeason", "run", "--catalog", str(args.catalog), "--item", args.item]
    base_run += (
        ["--questions", str(questions), "--quiet"] if _has_quiet() else ["--questions", str(questions)]
    )
    modes: dict[str, list[str]] = {}
    for m in args.modes.split(","):
        m = m.strip()
        if m == "ask":
            modes["ask"] = ["georeason", "ask", "--item", args.item, "--catalog", str(args.catalog)]
            modes["ask"] += [
                "--questions",
                str(questions),
                "--out",
                "{out}.jsonl",
                "--mask",
                "{out}-mask.tif",
            ]
        elif m in ("run", "run-started"):
            modes[m] = [*base_run, "--out", "{out}"]
        elif m == "noprefect":
            modes["noprefect"] = [
                sys.executable,
                str(Path(__file__).resolve().parent / "orchestration.py"),
                "--baseline",
                "--catalog",
                str(args.catalog),
                "--item",
                args.item,
                "--questions",
                str(questions),
                "--out",
                "{out}",
            ]
        elif m:
            print(f"--modes: unknown mode {m!r}; use ask, run, run-started, noprefect", file=sys.stderr)
            return 2
    for n in args.workers:
        modes[f"run-w{n}"] = [*base_run, *worker_flag(n), "--out", "{out}"]
    for spec in args.extra:
        name, _, command = spec.partition("=")
        if not name or not command:
            print(f"--extra {spec!r}: give NAME=COMMAND", file=sys.stderr)
            return 2
        modes[name.strip()] = shlex.split(command)

    print(f"raster {raster} ({npx / 1e6:.1f} Mpx), questions {questions}, {args.reps} reps")
    print(f"load average at start: {os.getloadavg()}")
    for name, cmd in modes.items():
        print(f"  {name}: {' '.join(cmd)}")
    res: dict[str, list[dict[str, float]]] = defaultdict(list)
    with contextlib.ExitStack() as stack:
        started = (
            stack.enter_context(StartedServer(work / "prefect-home")) if "run-started" in modes else None
        )
        if started is not None:
            print(f"  started server: {started.api_url}, PSS {started.pss_mb():.0f} MB after its start")
        for rep in range(args.reps):
            order = list(modes) if rep % 2 == 0 else list(reversed(modes))
            for name in order:
                out = work / f"{name}-{rep}"
                shutil.rmtree(out, ignore_errors=True)
                cmd = [c.replace("{out}", str(out)) for c in modes[name]]
                env = None
                if name == "run-started" and started is not None:
                    env = {**os.environ, "PREFECT_API_URL": started.api_url}
                    cpu0 = started.cpu()
                r = measure(cmd, work / f"{name}-{rep}.log", env=env)
                r["load"] = os.getloadavg()[0]
                extra = ""
                if env is not None and started is not None:
                    r["server_cpu"] = started.cpu() - cpu0
                    extra = f"  (+ server CPU {r['server_cpu']:.2f} s)"
                res[name].append(r)
                print(
                    f"rep {rep} {name:8s} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  peak PSS "
                    f"{r['pss_mb']:7.1f} MB (RSS {r['rss_mb']:7.1f})  {npx / 1e6 / r['wall']:5.2f} Mpx/s  "
                    f"rc {int(r['rc'])}  load {r['load']:.1f}{extra}",
                    flush=True,
                )
                if r["rc"] not in (0.0, 1.0):
                    print(f"    failed: see {work / f'{name}-{rep}.log'}", flush=True)
        if started is not None:
            print(f"  started server: PSS {started.pss_mb():.0f} MB after the reps (not in any run's tree)")

    print(
        "\n| mode | wall s median (min-max) | CPU s median | peak PSS MB median (max) "
        "| peak RSS MB median (max) | Mpx/s median | Mpx per CPU-s |"
    )
    print("|---|---|---|---|---|---|---|")
    med: dict[str, dict[str, float]] = {}
    for name, rs in res.items():
        m = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mb", "pss_mb")}
        med[name] = m
        walls = [r["wall"] for r in rs]
        print(
            f"| {name} | {m['wall']:.2f} ({min(walls):.2f}-{max(walls):.2f}) | {m['cpu']:.2f} | "
            f"{m['pss_mb']:.0f} ({max(r['pss_mb'] for r in rs):.0f}) | "
            f"{m['rss_mb']:.0f} ({max(r['rss_mb'] for r in rs):.0f}) | {npx / 1e6 / m['wall']:.2f} | "
            f"{npx / 1e6 / m['cpu']:.2f} |"
        )
    print()

    def verdict(ok: bool) -> str:
        return "HIT" if ok else "MISSED"

    for name, m in med.items():
        mpx = npx / 1e6 / m["wall"]
        print(
            f"{name}: {mpx:.2f} Mpx/s (target >= {TARGETS['mpx_s']}: {verdict(mpx >= TARGETS['mpx_s'])}); "
            f"peak PSS {m['pss_mb']:.0f} MB (target <= {TARGETS['rss_mb']:.0f}: "
            f"{verdict(m['pss_mb'] <= TARGETS['rss_mb'])}; summed RSS {m['rss_mb']:.0f} MB)"
        )
    if "run" in res and "ask" in res:
        ratios = sorted(r["wall"] / a["wall"] for r, a in zip(res["run"], res["ask"]))
        ratio = statistics.median(ratios)
        print(
            f"run / ask wall (per rep: {', '.join(f'{x:.2f}' for x in ratios)}): median {ratio:.2f}x "
            "(ask grounds in one process: the target is judged against noprefect)"
        )
    # pairwise (same rep): wall, and CPU of the whole process tree on both sides (the
    # command, its temporary server, forkserver and worker processes; reaped children);
    # run-started: plus the started server's CPU while it served that run (_cost)
    for run_mode in ("run", "run-started"):
        if run_mode not in res or "noprefect" not in res:
            continue
        for key, label in (("wall", "wall"), ("cpu", "CPU (process tree, + server's)")):
            ratios = sorted(_cost(r, key) / b[key] for r, b in zip(res[run_mode], res["noprefect"]))
            ratio = statistics.median(ratios)
            print(
                f"{run_mode} / noprefect {label} (per rep: {', '.join(f'{x:.2f}' for x in ratios)}): median "
                f"{ratio:.2f}x (target <= {TARGETS['run_vs_ask']}: {verdict(ratio <= TARGETS['run_vs_ask'])})"
            )
    if len(args.workers) >= 2:
        w1, w2 = f"run-w{args.workers[0]}", f"run-w{args.workers[1]}"
        ratios = sorted(a["wall"] / b["wall"] for a, b in zip(res[w1], res[w2]))
        ratio = statistics.median(ratios)
        print(
            f"{w1} / {w2} wall (speed-up; per rep {', '.join(f'{x:.2f}' for x in ratios)}): median {ratio:.2f}x "
            f"(target >= {TARGETS['w2_vs_w1']}: {verdict(ratio >= TARGETS['w2_vs_w1'])})"
        )

    if args.stages:
        sj = work / "stages.json"
        cmd = [
            sys.executable,
            __file__,
            str(args.catalog),
            "--item",
            args.item,
            "--questions",
            str(questions),
        ]
        r = measure([*cmd, "--stage-json", str(sj)], work / "stages.log")
        st = json.loads(sj.read_text())
        print(
            f"\nstages (one in-process run, no Prefect, local_map; wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s, "
            f"peak RSS {r['rss_mb']:.0f} MB, {int(st.pop('objects'))} objects):"
        )
        total = st.pop("total")
        for k, v in sorted(st.items(), key=lambda kv: -kv[1]):
            print(f"  {k:14s} {v:7.2f} s  {100 * v / total:5.1f}%")
        print(f"  {'total':14s} {total:7.2f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _has_quiet() -> bool:
    h = subprocess.run(["georeason", "run", "--help"], capture_output=True, text=True).stdout
    return "--quiet" in h


if __name__ == "__main__":
    raise SystemExit(main())
