"""Model grounders load once per worker, not once per tile: time and peak RSS.

For each backend, builds the tiny random model of ``tests/test_model_backends.py`` (saved
with ``save_pretrained`` in a temporary folder; no download), writes a small RGB
GeoTIFF, and in a fresh subprocess per run (so peak RSS is per run) measures:

* ``import``: importing torch + transformers (RSS after it is the floor);
* ``load``: ``build_grounder(spec)`` + the first ``ensure_loaded()`` (processor + weights);
* ``ground``: ``--tiles`` tiles in batches of ``--batch`` as each Prefect task does it
  (``georeason.pipeline.ground_job_batch``: ``build_grounder(spec)`` then ``ground_batch``) --
  the model is loaded once;
* ``per-tile``: the anti-pattern, a new grounder (a new load) for every tile.

Then ``--workers`` processes (spawned, as Dask/Prefect process workers are) each ground a
share of the batches; every worker reports its own load count: one each.

Usage::

    python benchmarks/model_loading.py                       # 4 backends, 16 tiles
    python benchmarks/model_loading.py --backends owlv2 --tiles 32 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Current resident set size (``VmRSS``), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tiny():
    sys.path.insert(0, str(ROOT / "tests"))
    import test_model_backends as tiny  # the tiny-model builders the tests use

    return tiny


def build(args) -> None:
    """Parent side: build the tiny models and the raster (in a subprocess: RSS stays clean)."""
    import warnings

    tiny = _tiny()
    out = Path(args.workdir)
    side = args.tile * int(args.tiles**0.5 + 0.999)
    tiny.geotiff(out / "scene.tif", width=side, height=side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.backends:
            tiny.BUILDERS[name](out / name)


def child(args) -> dict:
    import warnings

    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    t_import = time.perf_counter() - t0
    rss_import = rss_mb()
    import rasterio

    from georeason.errors import ParseWarning
    from georeason.geo.raster.io import band_names
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.backends import hf
    from georeason.models.registry import GrounderSpec, build_grounder
    from georeason.pipeline import GroundJob, ground_batch, ground_job_batch, plan_batches

    warnings.simplefilter("ignore", ParseWarning)
    torch.set_num_threads(1 if args.mode == "worker" else torch.get_num_threads())
    work = Path(args.workdir)
    cfg = {
        "model_path": str(work / args.backend),
        "batch_size": args.batch,
        "max_new_tokens": 8,
        "num_beams": 1,
        "device": "cpu",
    }
    spec = GrounderSpec.of(args.backend, cfg)
    with rasterio.open(work / "scene.tif") as src:
        tiles = list(plan_tiles(src, args.tile, 0))[: args.tiles]
        bands = list(band_names(src))
        batches = plan_batches(tiles, max_batches=max(1, -(-len(tiles) // args.batch)))
        if args.mode == "worker":
            batches = batches[args.worker :: args.workers]
        res: dict = {
            "backend": args.backend,
            "mode": args.mode,
            "tiles": sum(len(b) for b in batches),
            "batches": len(batches),
            "import_s": round(t_import, 2),
            "rss_import_mb": round(rss_import, 1),
        }
        t1 = time.perf_counter()
        if args.mode in ("cached", "worker"):
            g = build_grounder(spec)
            g.ensure_loaded()
            res["load_s"] = round(time.perf_counter() - t1, 3)
            res["rss_loaded_mb"] = round(rss_mb(), 1)
            t2 = time.perf_counter()
            n = 0
            job = GroundJob(str(work / "scene.tif"), spec, ("building",), tuple(bands))
            for batch in batches:
                # as the pipeline's map does for each batch (a loop in `ask`, a Prefect task in
                # flows): build_grounder(spec) returns the cached instance, no new load
                r = ground_job_batch(job, batch)
                assert not r.failures, r.failures
                n += sum(len(d) for _, d in r.results)
            res["ground_s"] = round(time.perf_counter() - t2, 3)
            res["detections"] = n
        else:  # per-tile: a new grounder and a new load for every tile
            g = None
            for batch in batches:
                for tile in batch:
                    g = hf.BACKENDS[args.backend](cfg)
                    r = ground_batch(src, [tile], g, ["building"], bands)
                    assert not r.failures, r.failures
            res["ground_s"] = round(time.perf_counter() - t1, 3)
        res["loads"] = hf.load_counts.get(args.backend, 0)
        res["peak_rss_mb"] = round(peak_mb(), 1)
        res["pid"] = os.getpid()
    return res


def run_child(args, backend: str, mode: str, worker: int = 0) -> subprocess.Popen:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--workdir",
        args.workdir,
        "--backend",
        backend,
        "--mode",
        mode,
        "--tiles",
        str(args.tiles),
        "--tile",
        str(args.tile),
        "--batch",
        str(args.batch),
        "--workers",
        str(args.workers),
        "--worker",
        str(worker),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate()
    if p.returncode:
        raise SystemExit(f"child failed ({p.returncode}): {out}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["qwen2.5-vl", "florence-2", "owlv2", "grounding-dino"])
    ap.add_argument("--tiles", type=int, default=16)
    ap.add_argument("--tile", type=int, default=32, help="tile side, px")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch (batch_size and Prefect batch)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="cached", help=argparse.SUPPRESS)
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.build:
        build(args)
        return
    with tempfile.TemporaryDirectory(prefix="georeason-model-bench-") as work:
        args.workdir = work
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--build",
                "--workdir",
                work,
                "--tiles",
                str(args.tiles),
                "--tile",
                str(args.tile),
                "--backends",
                *args.backends,
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        print(
            f"{args.tiles} tiles of {args.tile} px, batches of {args.batch}, CPU, torch threads default; "
            f"tiny random models (tests/test_model_backends.py)"
        )
        print(
            "| backend | import s | RSS after import MB | load s | RSS loaded MB | ground s (loads) "
            "| peak RSS MB | per-tile loads: ground s (loads) | peak RSS MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.backends:
            c = result(run_child(args, name, "cached"))
            p = result(run_child(args, name, "per-tile"))
            print(
                f"| {name} | {c['import_s']} | {c['rss_import_mb']} | {c['load_s']} | {c['rss_loaded_mb']} | "
                f"{c['ground_s']} ({c['loads']}) | {c['peak_rss_mb']} | {p['ground_s']} ({p['loads']}) | "
                f"{p['peak_rss_mb']} |"
            )
        print()
        print(f"{args.workers} spawned workers, batches dealt round-robin, torch threads 1 each:")
        print(
            "| backend | worker pid | batches | tiles | loads in worker | load s | ground s | peak RSS MB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in args.backends:
            procs = [run_child(args, name, "worker", w) for w in range(args.workers)]
            for r in map(result, procs):
                print(
                    f"| {name} | {r['pid']} | {r['batches']} | {r['tiles']} | {r['loads']} | {r['load_s']} | "
                    f"{r['ground_s']} | {r['peak_rss_mb']} |"
                )


if __name__ == "__main__":
    main()
