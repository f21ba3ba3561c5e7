"""Pixel answers: burning a large polygon answer into a mask on an 8000 x 8000 grid.

    python benchmarks/pixel_mask.py              # 8000 px, ~100k-vertex answer, 3 interleaved reps
    python benchmarks/pixel_mask.py --px 4000 --reps 1

Side by side in one process (interleaved, median of the reps):

- **georeason**: ``write_mask`` (parts of the answer clipped per super-block, then per
  block, before ``rasterize``; a one-pass COG: ZSTD intermediate, overviews sampled from
  the burnt rows, GDAL's COG driver only lays them out);
- **previous**: the previous ``write_mask`` (same clipping, DEFLATE intermediate, then
  GDAL's COG driver computing NEAREST overviews and compressing with DEFLATE);
- **whole** (``--whole``, slow): the loop before that, which handed every geometry
  touching a block, whole, to ``rasterize`` for each block (same COG conversion);

the masks are compared pixel by pixel (they must be identical). Wall and CPU seconds
(``time.process_time``, all threads) are printed: on a loaded machine CPU is the steadier
number. Target: georeason <= 1 s wall.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.features import rasterize
from rasterio.windows import Window

from georeason.geo.raster.grid import RasterGrid
from georeason.geo.raster.masks import write_mask


def water(px: int, seed: int = 0) -> shapely.Geometry:
    """A union of random blobs covering ~30% of the grid: one multipolygon of ~100k vertices at 8000 px."""
    rng = np.random.default_rng(seed)
    n = int(2500 * (px / 8000) ** 2) + 50
    c = rng.uniform(0, px * 10.0, (n, 2))
    r = rng.uniform(50, 900, n) * (px / 8000) ** 0.5
    blobs = shapely.buffer(shapely.points(c + [500_000.0, 5_000_000.0]), r, quad_segs=24)
    return shapely.union_all(blobs)


def before(geom, grid: RasterGrid, path: Path, block_px: int = 512) -> int:
    """The previous write_mask loop: whole geometries per block."""
    geoms = np.array([geom], dtype=object)
    tree = shapely.STRtree(geoms)
    profile = dict(
        driver="GTiff",
        width=grid.width,
        height=grid.height,
        count=1,
        dtype="uint8",
        crs=grid.crs.to_wkt(),
        transform=grid.transform,
        nodata=255,
        tiled=True,
        blockxsize=block_px,
        blockysize=block_px,
        compress="deflate",
    )
    total = 0
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, grid.height, block_px):
            for col in range(0, grid.width, block_px):
                win = Window(col, row, min(block_px, grid.width - col), min(block_px, grid.height - row))
                out = np.zeros((int(win.height), int(win.width)), dtype=np.uint8)
                l, b, r, t = rasterio.windows.bounds(win, grid.transform)
                hits = tree.query(shapely.box(min(l, r), min(b, t), max(l, r), max(b, t)))
                if len(hits):
                    out = rasterize(
                        ((g, 1) for g in geoms[hits]),
                        out_shape=out.shape,
                        transform=rasterio.windows.transform(win, grid.transform),
                        fill=0,
                        dtype="uint8",
                    )
                total += int((out == 1).sum())
                dst.write(out, 1, window=win)
    from rasterio.shutil import copy as rio_copy

    cog = path.with_name(path.stem + ".cog.tif")
    rio_copy(path, cog, driver="COG", compress="deflate")
    cog.replace(path)
    return total


def previous(geom, grid: RasterGrid, path: Path, block_px: int = 512) -> int:
    """The previous write_mask: clipped burning into a DEFLATE (level 1) tiled GeoTIFF,
    then GDAL's COG driver (NEAREST overviews, DEFLATE)."""
    from rasterio.shutil import copy as rio_copy

    from georeason.geo.raster.masks import _Blocks

    parts = shapely.get_parts(np.array([geom], dtype=object))
    blocks = _Blocks(parts, grid.transform, block_px)
    profile = dict(
        driver="GTiff",
        width=grid.width,
        height=grid.height,
        count=1,
        dtype="uint8",
        crs=grid.crs.to_wkt(),
        transform=grid.transform,
        nodata=255,
        tiled=True,
        blockxsize=block_px,
        blockysize=block_px,
        compress="deflate",
        zlevel=1,
    )
    total = 0
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, grid.height, block_px):
            for col in range(0, grid.width, block_px):
                win = Window(col, row, min(block_px, grid.width - col), min(block_px, grid.height - row))
                out = np.zeros((int(win.height), int(win.width)), dtype=np.uint8)
                pieces = blocks.pieces(win)
                if len(pieces):
                    out = rasterize(
                        ((g, 1) for g in pieces),
                        out_shape=out.shape,
                        transform=rasterio.windows.transform(win, grid.transform),
                        fill=0,
                        dtype="uint8",
                    )
                total += int((out == 1).sum())
                dst.write(out, 1, window=win)
    cog = path.with_name(path.stem + ".cog.tif")
    rio_copy(
        path, cog, driver="COG", compress="deflate", overview_resampling="nearest", num_threads="all_cpus"
    )
    cog.replace(path)
    return total


def _timed(fn, *args, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--px", type=int, default=8000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--whole", action="store_true", help="also time the whole-geometry loop (slow)")
    args = ap.parse_args()
    grid = RasterGrid(
        Affine(10.0, 0, 500_000.0, 0, -10.0, 5_000_000.0 + args.px * 10.0),
        args.px,  # height
        args.px,  # width
        CRS.from_epsg(32633),
    )
    geom = water(args.px)
    print(
        f"grid {args.px}x{args.px}, answer: {shapely.get_num_geometries(geom)} parts, "
        f"{shapely.get_num_coordinates(geom):,} vertices"
    )
    runs: dict[str, list[tuple[float, float]]] = {"georeason": [], "previous": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: Path(tmp) / f"{k}.tif" for k in runs}
        for _ in range(args.reps):  # interleaved
            res, w, c = _timed(write_mask, [geom], grid, paths["georeason"])
            runs["georeason"].append((w, c))
            n_prev, w, c = _timed(previous, geom, grid, paths["previous"])
            runs["previous"].append((w, c))
            if args.whole:
                n_whole, w, c = _timed(before, geom, grid, paths["whole"])
                runs["whole"].append((w, c))
        with rasterio.open(paths["georeason"]) as ra, rasterio.open(paths["previous"]) as rb:
            same = bool((ra.read(1) == rb.read(1)).all())
            layout = ra.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
            if args.whole:
                with rasterio.open(paths["whole"]) as rc:
                    same = same and bool((ra.read(1) == rc.read(1)).all())
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in runs.items()
        if v
    }
    for k, v in runs.items():
        if v:
            print(
                f"{k:10s} wall {med[k][0]:.2f} s  cpu {med[k][1]:.2f} s   "
                f"(median of {len(v)}: wall {', '.join(f'{w:.2f}' for w, _ in v)})"
            )
    print(
        f"pixels set: {res.pixels:,} vs previous {n_prev:,}; masks identical: {same}; georeason LAYOUT={layout}"
    )
    tn, tp = med["georeason"][0], med["previous"][0]
    print(f"previous/georeason: wall {tp / tn:.2f}x, cpu {med['previous'][1] / med['georeason'][1]:.2f}x")
    print(f"target georeason <= 1 s wall: {'HIT' if tn <= 1.0 else 'MISSED'} ({tn:.2f} s)")


if __name__ == "__main__":
    main()
