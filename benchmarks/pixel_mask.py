"""Pixel answers: burning a large polygon answer into a mask on an 8000 x 8000 grid.

    python benchmarks/pixel_mask.py              # 8000 px, ~100k-vertex answer, 3 interleaved reps
    python benchmarks/pixel_mask.py --px 4000 --reps 1

Side by side in one process (interleaved, median of the reps):

- **georeason**: ``write_mask`` (parts of the answer clipped per super-block, then per
  block, before ``rasterize``), COG conversion included;
- **before**: the previous loop, which handed every geometry touching a block, whole, to
  ``rasterize`` for each block (same file options, same COG conversion);

both masks are compared pixel by pixel (they must be identical). Target: georeason <= 1 s.
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

from georeason.geo.raster.masks import Grid, write_mask


def water(px: int, seed: int = 0) -> shapely.Geometry:
    """A union of random blobs covering ~30% of the grid: one multipolygon of ~100k vertices at 8000 px."""
    rng = np.random.default_rng(seed)
    n = int(2500 * (px / 8000) ** 2) + 50
    c = rng.uniform(0, px * 10.0, (n, 2))
    r = rng.uniform(50, 900, n) * (px / 8000) ** 0.5
    blobs = shapely.buffer(shapely.points(c + [500_000.0, 5_000_000.0]), r, quad_segs=24)
    return shapely.union_all(blobs)


def before(geom, grid: Grid, path: Path, block_px: int = 512) -> int:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--px", type=int, default=8000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    grid = Grid(
        Affine(10.0, 0, 500_000.0, 0, -10.0, 5_000_000.0 + args.px * 10.0),
        args.px,
        args.px,
        CRS.from_epsg(32633),
    )
    geom = water(args.px)
    print(
        f"grid {args.px}x{args.px}, answer: {shapely.get_num_geometries(geom)} parts, "
        f"{shapely.get_num_coordinates(geom):,} vertices"
    )
    t_new, t_old, t_burn = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "new.tif", Path(tmp) / "old.tif"
        for _ in range(args.reps):
            t0 = time.perf_counter()
            res = write_mask([geom], grid, a)
            t_new.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_mask([geom], grid, Path(tmp) / "plain.tif", cog_min_px=10**9)
            t_burn.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            n_old = before(geom, grid, b)
            t_old.append(time.perf_counter() - t0)
        with rasterio.open(a) as ra, rasterio.open(b) as rb:
            same = bool((ra.read(1) == rb.read(1)).all())
    tn, to = statistics.median(t_new), statistics.median(t_old)
    print(f"georeason write_mask: {tn:.2f} s (median of {args.reps}: {', '.join(f'{t:.2f}' for t in t_new)})")
    print(f"  of which burning + tiled GeoTIFF (no COG copy): {statistics.median(t_burn):.2f} s")
    print(f"before (whole geometry per block): {to:.2f} s ({', '.join(f'{t:.2f}' for t in t_old)})")
    print(f"pixels set: {res.pixels:,} vs {n_old:,}; masks identical: {same}")
    print(
        f"speed-up {to / tn:.1f}x; target georeason <= 1 s: {'HIT' if tn <= 1.0 else 'MISSED'} ({tn:.2f} s)"
    )


if __name__ == "__main__":
    main()
