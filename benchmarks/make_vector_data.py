"""Write the vector benchmark data: 100k buildings + 1k references, and 2000 questions.

Run from the repo root (about 5 s):

    python benchmarks/make_vector_data.py /tmp/gr-bench          # default sizes
    python benchmarks/make_vector_data.py /tmp/gr-bench --n 20000 --refs 200

Writes into the folder:

- ``scene.parquet``: GeoParquet in EPSG:32632 (UTM 32N). ``n`` rotated rectangles
  (class ``building``, ids ``b0``...) and ``refs`` references (class ``site``, ids ``r0``...;
  every fourth a small polygon, the rest points), scattered over a 20 x 20 km square
  80-100 km east of the zone's central meridian, where the UTM scale factor is 0.99970-0.99972:
  a planar distance in the file's CRS is 0.03% short of the geodesic one, so counts
  "within 200 m" in UTM are wrong for some references (the benchmark counts them).
- ``questions.txt``: 2 questions per reference, ``How many buildings are within 200 m of
  #rN?`` and ``Which building is nearest to #rN?`` (2000 for 1000 references).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import shapely


def make(n: int, n_refs: int, seed: int = 0):
    """Geometries (EPSG:32632), ids and classes of the benchmark scene."""
    rng = np.random.default_rng(seed)
    x0, y0 = 500_000.0 + 80_000.0, 5_540_000.0  # ~50 N, ~10.1 E
    cx = x0 + rng.uniform(0, 20_000, n)
    cy = y0 + rng.uniform(0, 20_000, n)
    w = rng.uniform(8, 30, n)
    h = rng.uniform(6, 20, n)
    ang = rng.uniform(0, np.pi, n)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float) / 2
    dx = corners[None, :, 0] * w[:, None]
    dy = corners[None, :, 1] * h[:, None]
    ca, sa = np.cos(ang)[:, None], np.sin(ang)[:, None]
    xs = cx[:, None] + dx * ca - dy * sa
    ys = cy[:, None] + dx * sa + dy * ca
    rings = np.stack([xs, ys], axis=-1)
    buildings = shapely.polygons(rings)
    rx = x0 + 500 + rng.uniform(0, 19_000, n_refs)
    ry = y0 + 500 + rng.uniform(0, 19_000, n_refs)
    refs = shapely.points(rx, ry).astype(object)
    poly = np.arange(n_refs) % 4 == 0
    refs[poly] = shapely.buffer(refs[poly], rng.uniform(10, 60, poly.sum()), quad_segs=4)
    geoms = np.concatenate([buildings, refs])
    ids = [f"b{i}" for i in range(n)] + [f"r{i}" for i in range(n_refs)]
    classes = ["building"] * n + ["site"] * n_refs
    return geoms, ids, classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--refs", type=int, default=1_000)
    args = ap.parse_args()
    import geopandas as gpd

    geoms, ids, classes = make(args.n, args.refs)
    args.out.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame({"id": ids, "class": classes}, geometry=geoms, crs="EPSG:32632")
    gdf.to_parquet(args.out / "scene.parquet")
    lines = []
    for i in range(args.refs):
        lines.append(f"How many buildings are within 200 m of #r{i}?")
        lines.append(f"Which building is nearest to #r{i}?")
    (args.out / "questions.txt").write_text("\n".join(lines) + "\n")
    print(
        f"wrote {args.out / 'scene.parquet'} ({args.n} buildings, {args.refs} references) and {len(lines)} questions"
    )


if __name__ == "__main__":
    main()
