"""Exact geodesic group queries vs planar STRtree and geopandas sjoin (100k x 1k).

Run from the repo root (about 1 minute on a quiet 2-core machine):

    python benchmarks/group_queries.py                    # 100k buildings, 1k references
    python benchmarks/group_queries.py --n 20000 --refs 200 --reps 3 --check 50

The scene is ``benchmarks/make_vector_data.py``'s (EPSG:32632, 80-100 km east of the
central meridian, where UTM's scale factor is 0.9997). Each rep runs, interleaved:

- **georeason**: ``within_distance_many`` (200 m) + ``nearest_many`` (k=1) over all
  references, on a fresh Scene each rep (``cold``: frame, STRtree and all included) and
  again on the same Scene (``warm``: what every later question of a batch pays);
- **planar STRtree**: ``STRtree(buildings)`` in the file's CRS, one ``dwithin`` query
  (count per reference) and one ``query_nearest`` (cold: tree built in the rep; warm: not);
- **geopandas sjoin**: ``sjoin(predicate="dwithin")`` + ``sjoin_nearest`` on GeoDataFrames
  (built before the clock starts).

Correctness: georeason's answers (count and nearest id per reference) are compared with
``distance_m`` on every candidate pair for ``--check`` references (brute force: every
building within 600 m, which holds every true answer here), and the planar answers are
compared with georeason's for all references (the count of planar answers that are wrong).
Prints the ratio georeason / planar (median of the reps) and the target (<= 2x), HIT or MISSED.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_vector_data import make  # noqa: E402

from georeason.geo.vector import group  # noqa: E402
from georeason.geo.vector.measure import distance_m  # noqa: E402
from georeason.geo.vector.scene import Scene  # noqa: E402


def georeason_queries(scene: Scene, b: np.ndarray, r: np.ndarray):
    refs = scene.lonlat[r]
    w = group.within_distance_many(scene, b, refs, 200.0)
    nn = group.nearest_many(scene, b, refs, 1)
    return np.array([len(x.idx) for x in w]), np.array([x.idx[0] for x in nn]), w


def planar_queries(G: np.ndarray, R: np.ndarray, tree=None):
    tree = shapely.STRtree(G) if tree is None else tree
    pairs = tree.query(R, predicate="dwithin", distance=200.0)
    counts = np.bincount(pairs[0], minlength=len(R))
    near = tree.query_nearest(R, all_matches=False)
    nearest = np.empty(len(R), dtype=np.intp)
    nearest[near[0]] = near[1]
    return counts, nearest


def sjoin_queries(gb, gr):
    import geopandas as gpd

    j = gpd.sjoin(gr, gb, predicate="dwithin", distance=200.0)
    counts = j.groupby(level=0).size().reindex(gr.index, fill_value=0).to_numpy()
    nj = gpd.sjoin_nearest(gr, gb)
    nj = nj[~nj.index.duplicated()]
    return counts, nj["index_right"].to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--refs", type=int, default=1_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--check", type=int, default=100, help="references checked against brute force")
    args = ap.parse_args()
    import geopandas as gpd

    geoms, ids, classes = make(args.n, args.refs)
    b, r = np.arange(args.n), np.arange(args.n, args.n + args.refs)
    G, R = geoms[b], geoms[r]
    gb = gpd.GeoDataFrame(geometry=G, crs="EPSG:32632")
    gr = gpd.GeoDataFrame(geometry=R, crs="EPSG:32632")
    times: dict[str, list[float]] = {
        k: [] for k in ("georeason cold", "georeason warm", "planar cold", "planar warm", "sjoin")
    }
    tree = shapely.STRtree(G)
    for _ in range(args.reps):
        scene = Scene(ids, classes, geoms, "EPSG:32632")
        _ = scene.lonlat  # the executor's lon/lat copy of the references (not timed)
        t0 = time.perf_counter()
        g_counts, g_near, w = georeason_queries(scene, b, r)
        times["georeason cold"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        georeason_queries(scene, b, r)
        times["georeason warm"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p_counts, p_near = planar_queries(G, R)
        times["planar cold"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        planar_queries(G, R, tree)
        times["planar warm"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s_counts, s_near = sjoin_queries(gb, gr)
        times["sjoin"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}

    # brute force (distance_m on every pair within 600 m planar) for the first --check refs
    wrong = 0
    for j in range(min(args.check, args.refs)):
        cand = b[tree.query(R[j], predicate="dwithin", distance=600.0)]
        d = np.array([distance_m(scene.lonlat[i], scene.lonlat[r[j]]) for i in cand])
        want_count = int((d <= 200.0).sum())
        want_near = cand[np.lexsort((scene.ids[cand].astype(str), d))[0]]
        wrong += int(want_count != g_counts[j]) + int(want_near != g_near[j])
    planar_wrong_counts = int((p_counts != g_counts).sum())
    # a differing nearest is wrong when the planar choice is geodesically farther than
    # georeason's; else it is a tie (e.g. two buildings touching the reference) broken otherwise
    differ = np.flatnonzero(p_near != g_near)
    g_vals = group.nearest_many(scene, b, scene.lonlat[r[differ]], 1)
    farther = [
        distance_m(scene.lonlat[b[p_near[j]]], scene.lonlat[r[j]]) > gv.values[0] + 1e-9
        for j, gv in zip(differ, g_vals)
    ]
    planar_wrong_near = int(np.sum(farther))
    planar_ties = len(differ) - planar_wrong_near
    sjoin_wrong_counts = int((s_counts != g_counts).sum())

    print(
        f"{args.n:,} buildings x {args.refs:,} references (EPSG:32632, 80-100 km from the central meridian)"
    )
    print(f"medians of {args.reps} interleaved reps, seconds (within 200 m counts + nearest):")
    for k, v in med.items():
        print(f"  {k:<16} {v:7.3f}   ({', '.join(f'{x:.3f}' for x in times[k])})")
    print(
        f"georeason wrong vs brute force (distance_m, {min(args.check, args.refs)} refs x 2 answers): {wrong}"
    )
    print(
        f"planar STRtree answers that are wrong: counts {planar_wrong_counts}, nearest {planar_wrong_near} "
        f"(of {args.refs} each; {planar_ties} more nearest differ only by tie-breaking); "
        f"sjoin counts wrong: {sjoin_wrong_counts}"
    )
    for mode in ("cold", "warm"):
        ratio = med[f"georeason {mode}"] / med[f"planar {mode}"]
        print(
            f"ratio georeason/planar STRtree ({mode}): {ratio:.2f}x  target <= 2x: {'HIT' if ratio <= 2 else 'MISSED'}"
        )
    print(f"ratio georeason cold / geopandas sjoin: {med['georeason cold'] / med['sjoin']:.2f}x")


if __name__ == "__main__":
    main()
