"""CPU of the passes over a raster that ``georeason run`` makes before and after grounding:
the grounder fit plus the tile plan (:meth:`georeason.pipeline.Pipeline.plan_ground`, on the
command line's main thread before the flow starts), and the quicklook basemap read
(:func:`georeason.geo.export.quicklook.read_basemap`, the pass the export no longer makes
when the basemap is summed from the tiles). Run it with each checkout's interpreter,
alternating, and compare (``benchmarks/RESULTS.md``, "onepass"):

    python benchmarks/plan_passes.py /tmp/e2e/c8k/scene8000/scene8000.tif
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raster")
    ap.add_argument("--classes", default="lake,vegetation")
    ap.add_argument("--bands", default="blue,green,red,nir")
    args = ap.parse_args(argv)
    from georeason.geo.export.quicklook import read_basemap
    from georeason.geo.raster.grid import RasterGrid
    from georeason.workers import run_pipeline

    p = run_pipeline(
        "spectral",
        {"bands": args.bands.split(",")},
        tile_px=1024,
        overlap_px=128,
        max_task_runs=200,
        parallel=2,
    )
    grid = RasterGrid.read(args.raster)
    t0, c0 = time.perf_counter(), time.process_time()
    _, tiles, _ = p.plan_ground(args.raster, args.classes.split(","), grid=grid)
    t1, c1 = time.perf_counter(), time.process_time()
    read_basemap(args.raster)
    t2, c2 = time.perf_counter(), time.process_time()
    out = {
        "plan_wall_s": t1 - t0,
        "plan_cpu_s": c1 - c0,
        "tiles": len(tiles),
        "basemap_wall_s": t2 - t1,
        "basemap_cpu_s": c2 - c1,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
