"""Peak memory and throughput of plan_tiles + read_tile against a raw rasterio loop.

Creates, in a temporary directory, single-band uint8 GeoTIFFs (tiled 256 x 256, DEFLATE,
written strip by strip so this script stays bounded too) of each ``--sizes`` side, then
for each raster runs, in a fresh subprocess each (so peak RSS is per run):

* ``georeason``: ``for t in plan_tiles(src, tile, overlap): read_tile(src, t)``
  (masked arrays, padding to full tile size, nodata check);
* ``raw``: ``src.read(1, window=w)`` over exactly the same (clipped) windows.

GDAL's block cache is capped (``GDAL_CACHEMAX``, default 64 MB here) so that it does
not grow with the raster and hide what the code itself holds.

Usage::

    python benchmarks/tiling_memory.py                 # 5000 and 20000 px
    python benchmarks/tiling_memory.py --sizes 5000 --tile 512 --overlap 64
    python benchmarks/tiling_memory.py --sizes 5000 --repeat 5 --interleave 21  # + A B A B timing

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in each child (``vmhwm_mb``,
from ``/proc/self/status``, cross-checks it on Linux). The rasters are generated in a
separate subprocess, because a child inherits its parent's ``ru_maxrss`` on Linux.
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


def make_raster(path: Path, size: int, block: int = 256, nodata: bool = False) -> None:
    """Tiled DEFLATE uint8 raster written strip by strip. With ``nodata``: nodata=0 and a
    zero collar on the left quarter (so nodata tiles are skipped and masks are read)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 5_000_000, 10, 10),
        tiled=True,
        blockxsize=block,
        blockysize=block,
        compress="deflate",
        predictor=2,
        nodata=0 if nodata else None,
    )
    rng = np.random.default_rng(0)
    xx = np.arange(size, dtype=np.int64)
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, block):
            h = min(block, size - r0)
            yy = np.arange(r0, r0 + h, dtype=np.int64)[:, None]
            strip = ((xx[None, :] // 16 + yy // 16) % 200 + 1 + rng.integers(0, 4, (h, size))).astype(
                np.uint8
            )
            if nodata:
                strip[:, : size // 4] = 0
            dst.write(strip, 1, window=Window(0, r0, size, h))


def child(mode: str, path: str, tile: int, overlap: int, repeat: int = 3) -> dict:
    import numpy as np  # noqa: F401  (imports counted in the baseline RSS)
    import rasterio

    from georeason.geo.raster.tiling import plan_tiles, read_tile

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    windows = []
    if mode == "raw":  # the same windows, planned outside the timed loop
        with rasterio.open(path) as src:
            windows = [t.valid_window for t in plan_tiles(src, tile, overlap)]
    best = best_cpu = float("inf")
    for _ in range(repeat):  # best of `repeat`: the same work each time
        t0, c0 = time.perf_counter(), time.process_time()
        n = px = 0
        with rasterio.open(path) as src:
            if mode == "georeason":
                for t in plan_tiles(src, tile, overlap):
                    read_tile(src, t)
                    n += 1
                    px += int(t.valid_window.width * t.valid_window.height)
            else:
                for w in windows:
                    a = src.read(1, window=w)
                    n += 1
                    px += a.shape[0] * a.shape[1]
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    dt = best
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "tiles": n,
        "seconds": round(dt, 3),
        "cpu_seconds": round(best_cpu, 3),
        "mpix_per_s": round(px / dt / 1e6, 1),
        "rss_after_imports_mb": round(rss0 / 1024, 1),
        "peak_rss_mb": round(rss1 / 1024, 1),
        "vmhwm_mb": _vmhwm_mb(),
    }


def interleaved(path: str, tile: int, overlap: int, reps: int) -> dict:
    """raw and georeason passes alternated in one process (raw, georeason, georeason, raw,
    ...), so that load from other processes, and going first, fall on both alike: medians
    and the median of the pair-by-pair ratios, wall and CPU."""
    import statistics

    import rasterio

    from georeason.geo.raster.tiling import plan_tiles, read_tile

    with rasterio.open(path) as src:
        windows = [t.valid_window for t in plan_tiles(src, tile, overlap)]

    def raw() -> None:
        with rasterio.open(path) as src:
            for w in windows:
                src.read(1, window=w)

    def geo() -> None:
        with rasterio.open(path) as src:
            for t in plan_tiles(src, tile, overlap):
                read_tile(src, t)

    wall: dict[str, list[float]] = {"raw": [], "georeason": []}
    cpu: dict[str, list[float]] = {"raw": [], "georeason": []}
    raw(), geo()  # warm-up (imports, first opens)
    for k in range(reps):  # A B B A: each goes first half of the time
        for name, f in (("raw", raw), ("georeason", geo))[:: 1 if k % 2 == 0 else -1]:
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    def pairs(d: dict[str, list[float]]) -> float:
        return statistics.median(g / r for g, r in zip(d["georeason"], d["raw"]))

    return {
        "reps": reps,
        "raw_s": round(statistics.median(wall["raw"]), 4),
        "georeason_s": round(statistics.median(wall["georeason"]), 4),
        "raw_cpu_s": round(statistics.median(cpu["raw"]), 4),
        "georeason_cpu_s": round(statistics.median(cpu["georeason"]), 4),
        "ratio_wall": round(pairs(wall), 3),
        "ratio_cpu": round(pairs(cpu), 3),
    }


def _vmhwm_mb() -> float | None:
    """Peak RSS of this process image from /proc (Linux); cross-checks ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--cache-mb", type=int, default=64, help="GDAL_CACHEMAX for the runs")
    ap.add_argument(
        "--nodata", action="store_true", help="nodata=0 with a nodata collar (exercises masks/skipping)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per run (best is reported)")
    ap.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="N",
        help="also time N raw/georeason pairs alternated in one process (medians, pairwise ratio)",
    )
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, path = args.child
        if mode == "make":
            make_raster(Path(path), args.sizes[0], nodata=args.nodata)
            return 0
        if mode == "both":
            print(json.dumps(interleaved(path, args.tile, args.overlap, args.interleave)))
            return 0
        print(json.dumps(child(mode, path, args.tile, args.overlap, args.repeat)))
        return 0
    env = dict(os.environ, GDAL_CACHEMAX=str(args.cache_mb))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"bench_{size}.tif"
            t0 = time.perf_counter()
            # In a subprocess: Linux children inherit the parent's ru_maxrss, so the parent
            # itself must stay small for the children's peak RSS to mean anything.
            subprocess.run(
                [sys.executable, __file__, "--sizes", str(size), "--child", "make", str(path)]
                + (["--nodata"] if args.nodata else []),
                env=env,
                check=True,
            )
            print(
                f"# {size} x {size} uint8: written in {time.perf_counter() - t0:.1f} s, "
                f"{path.stat().st_size / 1e6:.1f} MB on disk",
                flush=True,
            )
            res = {}
            for mode in ("raw", "georeason"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--tile",
                        str(args.tile),
                        "--overlap",
                        str(args.overlap),
                        "--repeat",
                        str(args.repeat),
                        "--child",
                        mode,
                        str(path),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps({"size": size, **res[mode]}), flush=True)
            if args.interleave:
                out = subprocess.run(
                    [sys.executable, __file__, "--tile", str(args.tile), "--overlap", str(args.overlap)]
                    + ["--interleave", str(args.interleave), "--child", "both", str(path)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res["interleaved"] = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps({"size": size, "interleaved": res["interleaved"]}), flush=True)
            rows.append((size, res))
            path.unlink()
    print()
    print(
        f"tile {args.tile} px, overlap {args.overlap} px, GDAL_CACHEMAX={args.cache_mb} MB, "
        f"nodata collar: {'yes' if args.nodata else 'no'}, best of {args.repeat}"
    )
    print(
        "| raster | tiles | raw s | georeason s | time ratio | raw cpu s | georeason cpu s | cpu ratio "
        "| raw peak RSS MB | georeason peak RSS MB | RSS ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, r in rows:
        a, b = r["raw"], r["georeason"]
        print(
            f"| {size}x{size} | {b['tiles']} | {a['seconds']} | {b['seconds']} | {b['seconds'] / a['seconds']:.2f} "
            f"| {a['cpu_seconds']} | {b['cpu_seconds']} | {b['cpu_seconds'] / a['cpu_seconds']:.2f} "
            f"| {a['peak_rss_mb']} | {b['peak_rss_mb']} | {b['peak_rss_mb'] / a['peak_rss_mb']:.2f} |"
        )
    for size, r in rows:
        a, b = r["raw"], r["georeason"]
        ratio = b["seconds"] / a["seconds"]
        print(f"{size}px: time ratio {ratio:.2f}, target <= 1.1: {'HIT' if ratio <= 1.1 else 'MISSED'}")
    for size, r in rows:
        if "interleaved" in r:
            i = r["interleaved"]
            print(
                f"{size}px interleaved ({i['reps']} pairs, medians): raw {i['raw_s']} s / {i['raw_cpu_s']} CPU-s, "
                f"georeason {i['georeason_s']} s / {i['georeason_cpu_s']} CPU-s; pairwise ratio "
                f"{i['ratio_wall']:.3f} wall, {i['ratio_cpu']:.3f} CPU; target <= 1.1: "
                f"{'HIT' if i['ratio_wall'] <= 1.1 else 'MISSED'} (wall), {'HIT' if i['ratio_cpu'] <= 1.1 else 'MISSED'} (CPU)"
            )
    if len(rows) > 1:
        (s0, r0), (s1, r1) = rows[0], rows[-1]
        print(
            f"\ngeoreason peak RSS {s1}px / {s0}px: {r1['georeason']['peak_rss_mb'] / r0['georeason']['peak_rss_mb']:.2f} "
            f"(raster {(s1 / s0) ** 2:.0f}x larger)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
