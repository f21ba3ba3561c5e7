"""Make a large synthetic 4-band scene for the end-to-end benchmark, in bounded memory.

``python benchmarks/make_scene.py OUT_DIR --size 8000`` writes ``OUT_DIR`` as a STAC catalog
(``georeason catalog add``) with one item, ``scene<size>``: a blue/green/red/near-infrared
uint16 GeoTIFF (UTM 33N, 10 m pixels, 512 px tiles, DEFLATE with the horizontal predictor)
and ``OUT_DIR/questions.txt`` (7 questions over the spectral classes: counts, areas,
distances, a pixel mask).

The scene is procedural, so any size is written strip by strip (256 rows at a time,
whatever ``--size``): memory stays bounded (~250 MB at 20000 px) and the file is the same
for the same arguments (seeded). What is in it:

- **lakes**: ellipses with wobbly shores (0.4-2 km across), one per ~16 km² (about 8% of
  the area: a spectral index's Otsu split needs a water mode that large), plus small ponds;
- **a river**: a meandering band ~60 m wide crossing the scene west to east;
- **vegetation**: smooth noise above a threshold (forest and fields, many patches);
- **buildings**: bright 2-4 px roofs in a few towns (where a town noise field is high);
- **bare ground**: everything else; every pixel has sensor noise.

Reflectances (digital numbers, x10 000) are typical of each cover: water is dark in the
near-infrared (NDWI > 0), vegetation bright in it (NDVI ~0.8), roofs bright in every band.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy import ndimage

PIXEL_M = 10.0
STRIP = 256
BLOCK = 512
#: no lake reaches further than this from its centre (px)
R = 140
#: cover -> (blue, green, red, nir) mean digital numbers
COVER = {
    "bare": (1100, 1400, 1800, 2300),
    "vegetation": (380, 750, 330, 3300),
    "water": (650, 760, 420, 160),
    "roof": (2700, 2750, 2850, 2950),
}
QUESTIONS = [
    "How many lakes are there?",
    "What is the total area of lakes in km2?",
    "What is the area of the largest lake in hectares?",
    "What is the distance between the largest lake and the river?",
    "How many lakes are within 1 km of the river?",
    "What is the total area of vegetation in km2?",
    "Which pixels are water within 300 m of the river?",
]


class Field:
    """Smooth noise: a coarse random lattice (``cell`` px apart) interpolated cubically."""

    def __init__(self, rng: np.random.Generator, size: int, cell: int):
        self.cell = cell
        n = size // cell + 4
        self.lattice = ndimage.spline_filter(rng.standard_normal((n, n)).astype(np.float64), order=3)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values at pixel centres ``rows x cols`` (1-D arrays), shape ``(len(rows), len(cols))``."""
        r = (rows[:, None] + 0.5) / self.cell + 1
        c = (cols[None, :] + 0.5) / self.cell + 1
        rr, cc = np.broadcast_arrays(r, c)
        return ndimage.map_coordinates(
            self.lattice, [rr.ravel(), cc.ravel()], order=3, prefilter=False
        ).reshape(rr.shape)


class Scene:
    """Everything that decides a pixel's cover, sampled strip by strip."""

    def __init__(self, size: int, seed: int):
        self.size = size
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.veg = Field(rng, size, 160)
        self.veg_fine = Field(rng, size, 40)
        self.town = Field(rng, size, 900)
        self.shore = Field(rng, size, 30)
        # lakes: one per ~4 km2 (400x400 px) plus as many ponds
        n_lakes = max(3, size * size // 160_000)
        self.lakes = np.column_stack(
            [
                rng.uniform(0, size, n_lakes),  # centre row
                rng.uniform(0, size, n_lakes),  # centre col
                rng.uniform(30, 110, n_lakes),  # semi-axis a (px)
                rng.uniform(20, 75, n_lakes),  # semi-axis b (px)
                rng.uniform(0, math.pi, n_lakes),  # orientation
            ]
        )
        ponds = np.column_stack(
            [
                rng.uniform(0, size, n_lakes),
                rng.uniform(0, size, n_lakes),
                rng.uniform(3, 7, n_lakes),
                rng.uniform(3, 7, n_lakes),
                rng.uniform(0, math.pi, n_lakes),
            ]
        )
        self.lakes = np.vstack([self.lakes, ponds])
        self.river_row = size * rng.uniform(0.35, 0.65)
        self.river_amp = [size * 0.06, size * 0.015]
        self.river_wl = [size / 2.3, size / 9.1]
        self.river_phase = rng.uniform(0, 2 * math.pi, 2)
        # no lake on the river: a lake the river runs through would make the river one
        # compact water body, and "the river" would not be found
        clear = np.abs(self.lakes[:, 0] - self.river_centre(self.lakes[:, 1])) > self.lakes[:, 2] * 1.3 + 40
        self.lakes = self.lakes[clear]

    def river_centre(self, cols: np.ndarray) -> np.ndarray:
        y = np.full(cols.shape, self.river_row, float)
        for a, wl, ph in zip(self.river_amp, self.river_wl, self.river_phase):
            y += a * np.sin(2 * math.pi * cols / wl + ph)
        return y

    def strip(self, row0: int, nrows: int) -> np.ndarray:
        """The 4-band uint16 pixels of rows ``row0 .. row0 + nrows``."""
        size = self.size
        rows = np.arange(row0, row0 + nrows, dtype=float)
        cols = np.arange(size, dtype=float)
        rr = rows[:, None] + 0.5
        cc = cols[None, :] + 0.5
        cover = np.zeros((nrows, size), np.uint8)  # 0 bare, 1 vegetation, 2 water, 3 roof
        veg = self.veg.sample(rows, cols) + 0.35 * self.veg_fine.sample(rows, cols)
        cover[veg > 0.25] = 1
        # towns: roofs on a jittered 9 px grid where the town field is high, on bare land
        town = self.town.sample(rows, cols) > 1.1
        if town.any():
            gr, gc = np.floor(rr / 9), np.floor(cc / 9)
            h = _hash(gr, gc, self.seed)
            w = 2 + (h % 3)  # roof 2-4 px wide
            hgt = 2 + ((h // 3) % 3)
            r_in, c_in = rr - gr * 9, cc - gc * 9
            roof = town & ((h % 5) < 2) & (r_in > 2) & (r_in < 2 + hgt) & (c_in > 2) & (c_in < 2 + w)
            cover[roof] = 3
        # lakes (ellipses with a noisy shore) and the river
        shore = 0.18 * self.shore.sample(rows, cols)
        near = (self.lakes[:, 0] + R > row0) & (self.lakes[:, 0] - R < row0 + nrows)
        water = np.zeros((nrows, size), bool)
        for r0, c0, a, b, th in self.lakes[near]:
            c_lo, c_hi = max(0, int(c0 - R)), min(size, int(c0 + R))
            if c_hi <= c_lo:
                continue
            dr, dc = rr - r0, cc[:, c_lo:c_hi] - c0
            u = dc * math.cos(th) + dr * math.sin(th)
            v = -dc * math.sin(th) + dr * math.cos(th)
            water[:, c_lo:c_hi] |= (u / a) ** 2 + (v / b) ** 2 < 1 + shore[:, c_lo:c_hi]
        centre = self.river_centre(cols + 0.5)
        water |= np.abs(rr - centre[None, :]) < 4 + 0.8 * np.sin(cc / 37.0) + shore * 5
        cover[water] = 2
        # sensor noise, deterministic per strip
        noise = np.random.default_rng([self.seed, row0]).standard_normal((4, nrows, size)).astype(np.float32)
        table = np.array([COVER["bare"], COVER["vegetation"], COVER["water"], COVER["roof"]], np.float32)
        out = np.empty((4, nrows, size), np.uint16)
        for b in range(4):
            v = table[cover, b] * (1 + 0.01 * noise[b])
            np.clip(v, 1, 65535, out=v)
            out[b] = v
        return out


def _hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    x = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (seed * 83492791)
    x = (x ^ (x >> 13)) * 1274126177
    return np.abs(x ^ (x >> 16)) % 1_000_003


def write_scene(path: Path, size: int, seed: int = 7) -> None:
    """Write the ``size`` x ``size`` scene to ``path``, one strip of rows at a time."""
    scene = Scene(size, seed)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000.0, 5_300_000.0, PIXEL_M, PIXEL_M),
        "nodata": 0,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "predictor": 2,
        "BIGTIFF": "IF_SAFER",
    }
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(tmp, "w", **profile) as dst:
        dst.descriptions = ("blue", "green", "red", "nir")
        # whole blocks per write (a partial block written twice is appended twice), each
        # computed in strips of STRIP rows (bounded memory)
        for row0 in range(0, size, BLOCK):
            n = min(BLOCK, size - row0)
            parts = [scene.strip(r, min(STRIP, row0 + n - r)) for r in range(row0, row0 + n, STRIP)]
            dst.write(np.concatenate(parts, axis=1), window=Window(0, row0, size, n))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="catalog folder to create (or replace the item in)")
    p.add_argument("--size", type=int, default=8000, help="width = height in pixels (default 8000)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.size < 512:
        print(f"--size {args.size}: use at least 512 px", file=sys.stderr)
        return 2
    item = f"scene{args.size}"
    folder = args.out / item
    folder.mkdir(parents=True, exist_ok=True)
    tif = folder / f"{item}.tif"
    t0 = time.perf_counter()
    write_scene(tif, args.size, args.seed)
    print(f"wrote {tif} ({tif.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    (args.out / "questions.txt").write_text("\n".join(QUESTIONS) + "\n")
    cmd = ["georeason", "catalog", "add", str(tif), "--catalog", str(args.out), "--id", item, "--replace"]
    cmd += ["--bands", "blue,green,red,nir"]
    subprocess.run(cmd, check=True)
    print(f"catalog {args.out}, item {item}, questions {args.out / 'questions.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
