"""What Prefect orchestration costs, and what a second worker buys (RESULTS.md section (b)).

Runs whole processes, interleaved (A B A B ...), each with a fresh output folder (so no
tile cache is reused), and prints min/median/max of wall seconds, CPU seconds (user +
system summed over the whole process tree: the command, the temporary server, the worker
processes; sampled with psutil every 0.1 s) and peak RSS (the largest single process):

* ``sample``: ``georeason run --item sample`` (its temporary Prefect server included)
  vs the same work without Prefect (``--baseline``, below), both with the default runner;
* ``big``: the same on a big scene, made by tiling the sample raster to
  ``--size`` x ``--size`` px and ``georeason catalog add``-ing it into a temporary catalog
  (questions about grounded classes only: the sample's road layer does not fit the copy);
* ``scaling``: ``georeason run`` on the big scene with ``--workers 1`` vs ``--workers 2``.

``--baseline`` is the same pipeline and the same exports with no Prefect at all (not
imported): the flow's :class:`georeason.pipeline.Pipeline` (built by the same
:func:`georeason.workers.run_pipeline`, run's default tiles and batches) with the
process-pool mapper (:func:`georeason.workers.pool_map`: the same
:class:`~georeason.workers.WorkerPool`, one worker per CPU as ``run`` has) or, with
``--workers 0``, the plain loop; then :func:`georeason.pipeline.export_item_outputs` and
``answers.jsonl``. ``benchmarks/end_to_end.py --modes run,noprefect`` runs it as its
``noprefect`` mode.

    python benchmarks/orchestration.py --what sample --reps 3
    python benchmarks/orchestration.py --what big --size 8000 --reps 3
    python benchmarks/orchestration.py --what scaling --size 8000 --reps 3
    python benchmarks/orchestration.py --what stages --size 8000 --reps 3   # grounding alone
    python benchmarks/orchestration.py --what stages --scene /tmp/e2e/c8k --reps 3  # on a make_scene.py scene
    python benchmarks/orchestration.py --what versions --other /tmp/base --reps 3

``versions``: the sample ``georeason run`` of this checkout vs the same command in another
checkout (``--other DIR``, e.g. ``git archive COMMIT | tar -x -C DIR`` with a virtualenv in
``DIR/.venv`` holding ``pip install -e DIR --no-deps``), run from that folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIG_QUESTIONS = [
    "How many lakes are there?",
    "Which is the largest lake?",
    "What is the area of the largest lake in hectares?",
    "How many buildings are there?",
    "Which building is nearest to the largest lake?",
    "What is the total area of vegetation in hectares?",
    "In which direction is the smallest lake from the largest lake?",
]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, int]:
    """(wall s, cpu s, peak RSS MiB, exit code) of one whole process tree.

    CPU is the sum over every process of the tree (the command, the temporary server, the
    forkserver and its worker processes, which the command never waits for) of its own
    user + system time, sampled every 0.1 s with psutil (the last sample of a process that
    ends between samples is up to 0.1 s short). Peak RSS is the largest single process.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    cpu: dict[tuple[int, float], float] = {}
    peak: dict[tuple[int, float], float] = {}
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    t = p.cpu_times()
                    cpu[key] = t.user + t.system
                    peak[key] = max(peak.get(key, 0.0), p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    reader.join()
    text = b"".join(err).decode(errors="replace")
    if proc.returncode != 0:
        print(f"  exit {proc.returncode}: {shlex.join(cmd)}\n{text[-1500:]}", file=sys.stderr)
    return wall, sum(cpu.values()), max(peak.values(), default=0.0), proc.returncode


def make_big(size: int, where: Path) -> tuple[Path, Path]:
    """A catalog with one item ``big``: the sample raster tiled to ``size`` x ``size``."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    src_path = REPO / "data_catalog" / "sample" / "sample_scene.tif"
    cat = where / f"catalog{size}"
    tif = where / f"big{size}.tif"
    qfile = where / "big_questions.txt"
    qfile.write_text("\n".join(BIG_QUESTIONS) + "\n", encoding="utf-8")
    if (cat / "catalog.json").exists():
        return cat, qfile
    with rasterio.open(src_path) as src:
        data = src.read()
        profile = src.profile | {
            "width": size,
            "height": size,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        h, w = data.shape[1:]
        with rasterio.open(tif, "w", **profile) as dst:
            for r in range(0, size, h):
                for c in range(0, size, w):
                    hh, ww = min(h, size - r), min(w, size - c)
                    dst.write(np.ascontiguousarray(data[:, :hh, :ww]), window=Window(c, r, ww, hh))
            dst.descriptions = src.descriptions
    subprocess.run(
        [
            sys.executable,
            "-m",
            "georeason.cli",
            "catalog",
            "add",
            str(tif),
            "--id",
            "big",
            "--catalog",
            str(cat),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return cat, qfile


def run_cmd(
    catalog: Path | None, item: str, questions: Path | None, out: Path, workers: int | None
) -> list[str]:
    cmd = [sys.executable, "-m", "georeason.cli", "--quiet", "run", "--item", item, "--out", str(out)]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    if questions is not None:
        cmd += ["--questions", str(questions)]
    if workers is not None:
        cmd += ["--workers", str(workers)] if workers > 0 else ["--runner", "thread"]
    return cmd


def baseline_cmd(
    catalog: Path | None, item: str, questions: Path | None, out: Path, workers: int | None
) -> list[str]:
    cmd = [sys.executable, __file__, "--baseline", "--item", item, "--out", str(out)]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    if questions is not None:
        cmd += ["--questions", str(questions)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd


def baseline(args: argparse.Namespace) -> None:
    """The same work as ``georeason run`` for one item, without Prefect."""
    from georeason.catalog import default_catalog_dir, list_items
    from georeason.config import read_questions
    from georeason.geo.export.layers import answer_stem, relative_outputs
    from georeason.pipeline import compile_questions, export_item_outputs, local_map, read_vectors
    from georeason.workers import BATCHES_PER_WORKER, WorkerPool, default_workers, pool_map, run_pipeline

    assert "prefect" not in sys.modules
    cat = Path(args.catalog) if args.catalog else default_catalog_dir()
    qpath = Path(args.questions) if args.questions else cat / "questions.yaml"
    out = Path(args.out).resolve()
    info = next(i for i in list_items(cat) if i.id == args.item)
    qs = compile_questions([s.question for s in read_questions(qpath) if s.item in (None, info.id)])
    workers = default_workers() if args.workers is None else args.workers
    pool = WorkerPool(workers) if workers > 0 else None
    if pool is not None:
        pool.warm()
    try:
        # the pipeline the flow builds (run_pipeline: same tiles, batches, confidence floor),
        # with run's defaults (1024 px tiles, 128 px overlap, at most 200 batches)
        pipeline = run_pipeline(
            "spectral",
            {},
            tile_px=1024,
            overlap_px=128,
            max_task_runs=200,
            parallel=workers,
            map=pool_map(pool) if pool is not None else local_map,
        )
        assert pipeline.max_batches == (min(200, BATCHES_PER_WORKER * workers) if workers else 200)
        vectors = read_vectors(info.vector_sources()) if info.vector_paths else None
        item_out = out / info.id
        # answered as the export consumes them (ItemStream.stream), as the flow's task does
        result = pipeline.run_iter(
            qs,
            vectors=vectors,
            mask_path=lambda n, q: item_out / "masks" / f"{answer_stem(n, q)}.tif",
            **info.raster_inputs(),
        )
        rows, _ = export_item_outputs(
            info.id,
            str(info.raster_path),
            result.stream,
            result.scene,
            str(item_out),
            basemap=result.grounding.basemap,  # as the flow: summed from the tiles
        )
    finally:
        if pool is not None:
            pool.close()
    lines = [{**r, "outputs": relative_outputs(r["outputs"], out)} for r in rows]
    (out / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")


def compare(name_a: str, make_a, name_b: str, make_b, reps: int, tmp: Path) -> None:
    rows: dict[str, list[tuple[float, float, float, int]]] = {name_a: [], name_b: []}
    for rep in range(reps):
        for name, make in ((name_a, make_a), (name_b, make_b)):
            out = tmp / f"out-{name}-{rep}".replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            rows[name].append(timed(make(out)))
            shutil.rmtree(out, ignore_errors=True)
    print(f"{'':28s} {'min':>8s} {'median':>8s} {'max':>8s}   ({reps} interleaved reps)")
    for name, runs in rows.items():
        for k, label in ((0, "wall s"), (1, "cpu s"), (2, "peak MiB")):
            vals = [r[k] for r in runs]
            print(
                f"{name + ' ' + label:28s} {min(vals):8.2f} {statistics.median(vals):8.2f} {max(vals):8.2f}"
            )
        bad = [r[3] for r in runs if r[3] != 0]
        if bad:
            print(f"{name}: exit codes {bad}")
    for k, label in ((0, "wall"), (1, "cpu")):
        ratios = [a[k] / b[k] for a, b in zip(rows[name_a], rows[name_b])]
        print(
            f"{name_a}/{name_b} {label:5s} ratio (pairwise): median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
    for k in (0, 1):
        rows[name_a].sort(key=lambda r: r[k])
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def _burn(n: int) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t


def control(reps: int) -> list[float]:
    """Can this machine give us two cores right now? The same pure-Python loop twice,
    serially vs in 2 processes (speed-ups, one per rep; 2.0 = two free cores)."""
    import multiprocessing

    out = []
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(2) as pool:
        pool.map(_burn, [1000, 1000])
        for _ in range(reps):
            n = 5_000_000
            t = time.perf_counter()
            _burn(n)
            _burn(n)
            serial = time.perf_counter() - t
            t = time.perf_counter()
            pool.map(_burn, [n, n])
            out.append(serial / (time.perf_counter() - t))
    return out


def stages(cat: Path, reps: int) -> None:
    """Grounding alone (the tile batches of the big scene), in-process, interleaved:
    1 worker process vs 2, pools started and warm before the clock."""
    from georeason.catalog import list_items
    from georeason.geo.raster.io import as_dataset
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.registry import prepare_spec
    from georeason.pipeline import GroundJob, plan_batches
    from georeason.workers import WorkerPool, pool_map

    (info,) = list_items(cat)
    raster = str(info.raster_path)
    bands = tuple(info.bands)
    classes = ("lake", "building", "river", "vegetation")
    t = time.perf_counter()
    spec = prepare_spec("spectral", raster, {"bands": list(bands), "item": info.id})
    print(f"grounder fit (prepare_spec, once per scene, in the caller): {time.perf_counter() - t:.2f} s")
    with as_dataset(raster) as src:
        tiles = list(plan_tiles(src, 1024, 128))
    job = GroundJob(raster, spec, classes, bands)
    times: dict[int, list[float]] = {1: [], 2: []}
    with WorkerPool(1) as p1, WorkerPool(2) as p2:
        for pool in (p1, p2):
            for f in pool.warm():
                f.result()
        for _ in range(reps):
            for n, pool in ((1, p1), (2, p2)):
                batches = plan_batches(tiles, 3 * n)
                t = time.perf_counter()
                out = list(pool_map(pool)(job, batches, None))  # a lazy iterator: consume it on the clock
                times[n].append(time.perf_counter() - t)
                assert not any(r.failures for r in out)
    for n, v in times.items():
        print(
            f"grounding {len(tiles)} tiles, {n} worker(s): median {statistics.median(v):.2f} s "
            f"(min {min(v):.2f}, max {max(v):.2f}; {reps} interleaved reps)"
        )
    ratios = [a / b for a, b in zip(times[1], times[2])]
    print(
        f"speed-up 2 workers vs 1 (pairwise): median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target >= 1.7x"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=["sample", "big", "scaling", "stages", "versions"], default="sample")
    ap.add_argument("--other", default=None, help="another checkout, for --what versions")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--size", type=int, default=4000, help="big scene side in px (a multiple of 2000 tiles evenly)"
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="worker processes (0: no pool; default: one per CPU)"
    )
    ap.add_argument(
        "--scene",
        default=None,
        help="--what stages on this one-item catalog (e.g. made by benchmarks/make_scene.py) "
        "instead of the built-in big scene",
    )
    ap.add_argument("--tmp", default=None, help="folder for scenes and outputs (default: a temporary one)")
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--catalog", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--item", default="sample", help=argparse.SUPPRESS)
    ap.add_argument("--questions", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        baseline(args)
        return
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="georeason-orch-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average before: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if args.what == "sample":
        api = os.environ.get("PREFECT_API_URL")
        server = f"the started Prefect server at {api}" if api else "its temporary Prefect server"
        print(f"sample: georeason run ({server}) vs the same work without Prefect")
        compare(
            "run",
            lambda o: run_cmd(None, "sample", None, o, args.workers),
            "no-prefect",
            lambda o: baseline_cmd(None, "sample", None, o, args.workers),
            args.reps,
            tmp,
        )
        return
    if args.what == "versions":
        if not args.other:
            ap.error("--what versions needs --other DIR (another checkout)")
        other = Path(args.other).resolve()
        py = other / ".venv" / "bin" / "python"
        other_py = str(py) if py.exists() else sys.executable

        def in_dir(where: Path, python: str):
            return lambda o: [
                "bash",
                "-c",
                f"cd {shlex.quote(str(where))} && exec {shlex.quote(python)} -m georeason.cli --quiet run "
                f"--item sample --out {shlex.quote(str(o))}",
            ]

        print(f"sample: georeason run, this checkout ({REPO}) vs {other}")
        compare("this", in_dir(REPO, sys.executable), "other", in_dir(other, other_py), args.reps, tmp)
        return
    if args.what == "stages" and args.scene:
        print(f"{args.scene}: grounding stage, 1 vs 2 worker processes")
        stages(Path(args.scene), args.reps)
        return
    cat, qfile = make_big(args.size, tmp)
    mpx = args.size * args.size / 1e6
    if args.what == "stages":
        print(f"big {args.size}x{args.size} ({mpx:.0f} Mpx): grounding stage, 1 vs 2 worker processes")
        stages(cat, args.reps)
        return
    if args.what == "big":
        print(
            f"big {args.size}x{args.size} ({mpx:.0f} Mpx, 4 bands): georeason run vs the same work without Prefect"
        )
        compare(
            "run",
            lambda o: run_cmd(cat, "big", qfile, o, args.workers),
            "no-prefect",
            lambda o: baseline_cmd(cat, "big", qfile, o, args.workers),
            args.reps,
            tmp,
        )
    else:
        print(f"big {args.size}x{args.size} ({mpx:.0f} Mpx): georeason run --workers 1 vs --workers 2")
        compare(
            "1 worker",
            lambda o: run_cmd(cat, "big", qfile, o, 1),
            "2 workers",
            lambda o: run_cmd(cat, "big", qfile, o, 2),
            args.reps,
            tmp,
        )


if __name__ == "__main__":
    main()
