"""Group queries over 100k objects: STRtree-backed georeason vs a naive per-pair loop.

Run from the repo root:

    python benchmarks/group_queries.py            # 100k objects, naive loop on a 5k subset
    python benchmarks/group_queries.py --n 20000 --subset 2000

What it measures, side by side in one process (so machine noise hits both alike):

- ``within``: count buildings within 500 m of a reference lake;
- ``nearest``: the 5 buildings nearest to the reference;
- ``largest``: the largest building by geodesic area.

georeason runs each query over all N objects; the naive baseline (one
``distance_m``/``area_m2`` call per object, which is what a per-pair Python loop over
the scene costs) runs over a subset and is scaled linearly to N. Both give the same
answers on the subset (checked). Results are printed as seconds and as the ratio
naive/georeason; they go in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import shapely

from georeason.geo.vector import group
from georeason.geo.vector.measure import area_m2, distance_m
from georeason.geo.vector.scene import Scene


def make_scene(n: int, seed: int = 0) -> Scene:
    """n small rectangular buildings scattered over ~40 x 40 km around (10E, 50N), plus one lake."""
    rng = np.random.default_rng(seed)
    lon = 10 + rng.uniform(-0.28, 0.28, n)
    lat = 50 + rng.uniform(-0.18, 0.18, n)
    w = rng.uniform(0.00008, 0.0003, n)
    h = rng.uniform(0.00006, 0.0002, n)
    geoms = shapely.box(lon - w / 2, lat - h / 2, lon + w / 2, lat + h / 2)
    lake = shapely.Point(10.0, 50.0).buffer(0.01)
    ids = [f"b{i}" for i in range(n)] + ["lake-1"]
    labels = ["building"] * n + ["lake"]
    return Scene(ids, labels, list(geoms) + [lake], "EPSG:4326")


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--subset", type=int, default=5_000)
    args = ap.parse_args()

    scene = make_scene(args.n)
    t0 = time.perf_counter()
    _ = scene.lonlat  # per-scene set-up, done once: lon/lat copy and its STRtree
    _ = scene.lonlat_tree
    t_setup = time.perf_counter() - t0
    ref = scene.lonlat[scene.index("lake-1")]
    bld = scene.of_class("building")
    sub = bld[: args.subset]
    scale = len(bld) / len(sub)

    rows = []

    t_g, got = timed(lambda: group.within_distance(scene, bld, ref, 500.0))
    t_n, naive = timed(lambda: [i for i in sub if distance_m(scene.lonlat[i], ref) <= 500.0], repeat=1)
    sub_got = set(group.within_distance(scene, sub, ref, 500.0).idx.tolist())
    assert sub_got == set(naive), "within: georeason and the naive loop disagree"
    rows.append(("within 500 m (count)", t_g, t_n * scale, len(got.idx)))
    # A cheaper (inexact) naive loop: one planar shapely.distance per object in a fixed
    # projection, as quick scripts do. Still a per-pair Python loop, still far slower.
    from georeason.geo.vector.crs import LONLAT, aeqd_crs, reproject

    proj = aeqd_crs(10.0, 50.0)
    planar = reproject(scene.lonlat[bld], LONLAT, proj)
    ref_p = reproject(ref, LONLAT, proj)
    t_p, _ = timed(
        lambda: [i for i, g in enumerate(planar[: len(sub)]) if g.distance(ref_p) <= 500.0], repeat=1
    )
    rows.append(("within 500 m, planar loop baseline", t_g, t_p * scale, "(inexact baseline)"))

    t_g, got = timed(lambda: group.nearest(scene, bld, ref, 5))
    t_n, naive = timed(
        lambda: sorted(sub, key=lambda i: (distance_m(scene.lonlat[i], ref), scene.ids[i]))[:5], repeat=1
    )
    assert list(group.nearest(scene, sub, ref, 5).idx) == list(naive), "nearest: disagree"
    rows.append(("nearest 5", t_g, t_n * scale, ",".join(scene.ids[got.idx])))

    t_g, got = timed(lambda: group.extreme(scene, bld, "area", largest=True))
    t_n, naive = timed(lambda: max(sub, key=lambda i: area_m2(scene.lonlat[i])), repeat=1)
    assert group.extreme(scene, sub, "area", largest=True).idx[0] == naive, "largest: disagree"
    rows.append(("largest by area", t_g, t_n * scale, scene.ids[got.idx[0]]))

    print(f"objects: {args.n:,} buildings + 1 lake; naive loop timed on {len(sub):,} and scaled x{scale:.1f}")
    print(f"per-scene set-up (lon/lat copy + STRtree, once, not in the query times): {t_setup:.3f} s")
    print(f"{'query':<36}{'georeason s':>13}{'naive s (est.)':>16}{'naive/georeason':>17}  answer")
    for name, tg, tn, ans in rows:
        print(f"{name:<36}{tg:>13.3f}{tn:>16.2f}{tn / tg:>17.1f}  {ans}")


if __name__ == "__main__":
    main()
