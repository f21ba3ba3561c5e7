"""Group queries over many objects, indexed with :class:`shapely.STRtree`.

Each query works on a subset of a :class:`~georeason.geo.vector.scene.Scene` (an index array) and
a reference geometry. Candidates are found in an AEQD projection centred on the reference
(vectorised shapely calls and an STRtree, never a per-pair Python loop over the scene);
only the few objects whose projected value lies within the projection's error band of a
decision threshold are re-measured exactly on the ellipsoid with
:func:`georeason.geo.vector.measure.distance_m`. Results are therefore the same as measuring every
pair geodesically, at the cost of an index query.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from georeason.geo.vector.crs import LONLAT, aeqd_crs, reproject, spherical_mean_lonlat
from georeason.geo.vector.measure import area_m2, distance_m, length_m
from georeason.geo.vector.scene import Scene
from georeason.geo.vector.topology import merge_seam

__all__ = [
    "Ranked",
    "within_distance",
    "inside",
    "nearest",
    "farthest",
    "extreme",
    "total_area_m2",
    "metric_values",
]

_R_EARTH = 6_371_008.8


class Ranked(NamedTuple):
    """Scene indices and the metric value (metres or m²) that ranked or selected them."""

    idx: np.ndarray
    values: np.ndarray


def _frame(ref_lonlat: BaseGeometry):
    proj = aeqd_crs(*spherical_mean_lonlat([ref_lonlat]))
    return proj, reproject(ref_lonlat, LONLAT, proj)


def _tolerance(ref_p: BaseGeometry, reach_m: float) -> float:
    """Relative error bound of AEQD distances out to ``reach_m`` from the reference."""
    xmin, ymin, xmax, ymax = ref_p.bounds
    r = float(np.hypot(max(abs(xmin), abs(xmax)), max(abs(ymin), abs(ymax)))) + reach_m
    return max(2e-3, 2.0 * (r / _R_EARTH) ** 2)


def _slack(ref_p: BaseGeometry, tol: float) -> float:
    """Absolute error bound (m) of projected distances that does not shrink with the distance.

    The reference's edges are straight in the AEQD plane but geodesics on the ellipsoid;
    for a reference of extent L the two differ by up to ~L (L / R)**2, metres for a
    one-degree polygon, which matters for thresholds of a few metres. Plus 1 mm for the
    rounding error of projected copies of touching shapes.
    """
    xmin, ymin, xmax, ymax = ref_p.bounds
    return 1e-3 + tol * float(np.hypot(xmax - xmin, ymax - ymin))


_A_POLAR = 6_356_752.0  # m; every point is at least a*cos(lat) >= this*cos(lat) from the axis
_M_DEG_LAT = 110_574.0  # m per degree of latitude, its minimum (at the equator)


def near_candidates(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, radius_m: float) -> np.ndarray:
    """Indices among ``idx`` that may lie within ``radius_m`` of the reference (a superset).

    Queries the scene's lon/lat STRtree with the reference's bounding box grown by bounds
    that can only over-estimate: a latitude gap of ``dlat`` degrees is at least
    ``dlat * 110.574 km`` of geodesic distance (the meridian is the shortest path between
    two parallels), and a longitude gap ``dlon`` between points poleward of at most
    ``lat_max`` is at least the chord ``2 * 6356.752 km * cos(lat_max) * sin(dlon / 2)``.
    Near a pole, or for radii that reach half-way round, no filter is applied. Boxes are
    wrapped across the antimeridian. Only these candidates are then projected.
    """
    idx = np.asarray(idx, dtype=np.intp)
    minx, miny, maxx, maxy = ref_lonlat.bounds
    dlat = radius_m / _M_DEG_LAT
    lat_lo, lat_hi = miny - dlat, maxy + dlat
    if lat_lo <= -89.0 or lat_hi >= 89.0 or maxx - minx > 180.0:
        return idx
    rho = _A_POLAR * np.cos(np.radians(max(abs(lat_lo), abs(lat_hi))))
    if radius_m >= 2 * rho:
        return idx
    dlon = float(np.degrees(2 * np.arcsin(radius_m / (2 * rho))))
    if dlon >= 180.0:
        return idx
    boxes = [shapely.box(minx - dlon, lat_lo, maxx + dlon, lat_hi)]
    if minx - dlon < -180.0:
        boxes.append(shapely.box(minx - dlon + 360.0, lat_lo, 180.0, lat_hi))
    if maxx + dlon > 180.0:
        boxes.append(shapely.box(-180.0, lat_lo, maxx + dlon - 360.0, lat_hi))
    hits = np.unique(np.concatenate([scene.lonlat_tree.query(b) for b in boxes]))
    return idx[np.isin(idx, hits)]


def _exact(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry) -> np.ndarray:
    return np.array([distance_m(scene.lonlat[i], ref_lonlat) for i in idx], dtype=float)


def within_distance(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, distance: float) -> Ranked:
    """Objects among ``idx`` whose minimum geodesic distance to the reference is <= ``distance`` m.

    Returns the matching indices sorted by distance, with their distances in metres.
    Objects that intersect the reference are at 0 m and match.
    """
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0:
        return Ranked(idx, np.array([], dtype=float))
    proj, ref_p = _frame(ref_lonlat)
    tol = _tolerance(ref_p, distance)
    slack = _slack(ref_p, tol)
    idx = near_candidates(scene, idx, ref_lonlat, distance * (1 + tol) + slack)
    cand = reproject(scene.lonlat[idx], LONLAT, proj)
    tree = STRtree(cand)
    hits = tree.query(ref_p, predicate="dwithin", distance=distance * (1 + tol) + slack)
    d = shapely.distance(cand[hits], ref_p)
    border = np.abs(d - distance) <= distance * tol + slack
    if border.any():
        d = d.copy()
        d[border] = _exact(scene, idx[hits[border]], ref_lonlat)
    keep = d <= distance
    order = np.argsort(d[keep], kind="stable")
    return Ranked(idx[hits[keep]][order], d[keep][order])


def _unwrap_all(region: BaseGeometry, geoms: np.ndarray):
    """Shift negative longitudes by 360 in both when a lon/lat region spans the antimeridian."""
    xmin, _, xmax, _ = region.bounds
    if xmax - xmin <= 180 and -180 <= xmin and xmax <= 180:
        return region, geoms
    # the region spans +-180, either split (parts near both ends) or written past it (e.g.
    # a bbox [179.5, y0, 180.5, y1]): work in longitudes [0, 360) for region and objects

    def _shift(c):
        c = c.copy()
        c[:, 0] = np.where(c[:, 0] < 0, c[:, 0] + 360.0, c[:, 0])
        return c

    region, geoms = shapely.transform(region, _shift), shapely.transform(geoms, _shift)
    # parts split at +-180 now share an edge on lon 180: merge them so it is not boundary
    geoms = np.asarray(geoms, dtype=object).copy()
    for i in np.flatnonzero((shapely.get_type_id(geoms) == 6) & ~shapely.is_valid(geoms)):
        geoms[i] = merge_seam(geoms[i])
    return merge_seam(region), geoms


def inside(scene: Scene, idx: np.ndarray, region: BaseGeometry, mode: str = "within") -> np.ndarray:
    """Objects among ``idx`` inside ``region`` (given in the scene's CRS).

    ``mode="within"``: entirely inside (the object is within the region);
    ``mode="intersects"``: at least partly inside. Indices are returned in scene order.
    """
    if mode not in ("within", "intersects"):
        raise ValueError(f"mode must be 'within' or 'intersects', got {mode!r}")
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0:
        return idx
    geoms = scene.geoms[idx]
    if scene.is_geographic:
        region, geoms = _unwrap_all(region, geoms)
    tree = STRtree(geoms)
    pred = "contains" if mode == "within" else "intersects"
    hits = tree.query(region, predicate=pred)
    return idx[np.sort(hits)]


def _ranked_by_distance(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, k: int, far: bool) -> Ranked:
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0 or k <= 0:
        return Ranked(idx[:0], np.array([], dtype=float))
    k = min(k, len(idx))
    proj, ref_p = _frame(ref_lonlat)
    if not far:
        # Grow a search radius until it holds k objects; only the objects the lon/lat index
        # finds near the reference are projected. Anything outside the final radius is
        # farther than the k-th candidate, so the result is exact.
        xmin, ymin, xmax, ymax = ref_p.bounds
        radius = max(100.0, 0.1 * float(np.hypot(xmax - xmin, ymax - ymin)))
        while True:
            sub = near_candidates(scene, idx, ref_lonlat, radius)
            cand = reproject(scene.lonlat[sub], LONLAT, proj)
            d = shapely.distance(cand, ref_p)
            tol = _tolerance(ref_p, radius)
            inside_r = d <= radius / (1 + tol) - _slack(ref_p, tol)
            if inside_r.sum() >= k or len(sub) == len(idx):
                break
            radius *= 4.0
        kth = np.sort(d)[k - 1]
        tol = _tolerance(ref_p, kth)
        keep = d <= kth * (1 + tol) + _slack(ref_p, tol)
        idx, hits = sub, np.flatnonzero(keep)
    else:
        cand = reproject(scene.lonlat[idx], LONLAT, proj)
        hits = np.arange(len(idx))
        d_all = shapely.distance(cand, ref_p)
        kth = np.sort(d_all)[::-1][k - 1]
        tol = _tolerance(ref_p, float(d_all.max()))
        hits = hits[d_all >= kth * (1 - tol) - _slack(ref_p, tol)]
    exact = _exact(scene, idx[hits], ref_lonlat)
    order = np.lexsort((scene.ids[idx[hits]].astype(str), -exact if far else exact))[:k]
    return Ranked(idx[hits][order], exact[order])


def nearest(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, k: int = 1) -> Ranked:
    """The ``k`` objects among ``idx`` nearest to the reference (minimum geodesic distance).

    Ties are broken by object id, so results are deterministic.
    """
    return _ranked_by_distance(scene, idx, ref_lonlat, k, far=False)


def farthest(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, k: int = 1) -> Ranked:
    """The ``k`` objects among ``idx`` farthest from the reference (minimum geodesic distance)."""
    return _ranked_by_distance(scene, idx, ref_lonlat, k, far=True)


def metric_values(scene: Scene, idx: np.ndarray, by: str) -> np.ndarray:
    """Geodesic area (m²) or length (m) of each object in ``idx``."""
    fn = {"area": area_m2, "length": length_m}[by]
    return np.array([fn(scene.lonlat[i]) for i in idx], dtype=float)


def extreme(scene: Scene, idx: np.ndarray, by: str = "area", largest: bool = True, k: int = 1) -> Ranked:
    """The ``k`` largest (or smallest) objects among ``idx`` by geodesic area or length.

    A vectorised planar pre-ranking in an AEQD projection centred on the objects picks the
    candidates (those within the projection's error band of the k-th value); only those are
    measured on the ellipsoid.
    """
    if by not in ("area", "length"):
        raise ValueError(f"by must be 'area' or 'length', got {by!r}")
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0:
        return Ranked(idx, np.array([], dtype=float))
    k = min(k, len(idx))
    proj = aeqd_crs(*spherical_mean_lonlat(scene.lonlat[idx]))
    planar = reproject(scene.lonlat[idx], LONLAT, proj)
    approx = (
        shapely.area(planar)
        if by == "area"
        else shapely.length(np.where(shapely.get_dimensions(planar) == 2, shapely.boundary(planar), planar))
    )
    if not np.isfinite(approx).all():  # extreme extents where AEQD breaks down: measure all
        cand = np.arange(len(idx))
    else:
        ext = shapely.total_bounds(planar)
        rel = 0.05 + 4.0 * (float(np.hypot(*np.abs(ext).reshape(2, 2).max(axis=0))) / _R_EARTH) ** 2
        kth = np.sort(approx)[::-1][k - 1] if largest else np.sort(approx)[k - 1]
        if largest:
            cand = np.flatnonzero(approx >= kth * (1 - rel))
        else:
            cand = np.flatnonzero(approx <= kth * (1 + rel))
    vals = metric_values(scene, idx[cand], by)
    order = np.lexsort((scene.ids[idx[cand]].astype(str), -vals if largest else vals))[:k]
    return Ranked(idx[cand][order], vals[order])


def total_area_m2(scene: Scene, idx: np.ndarray, region_lonlat: BaseGeometry | None = None) -> float:
    """Geodesic area (m²) covered by the objects in ``idx``, optionally clipped to a region.

    Overlapping objects are counted once (their union is measured).
    """
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0:
        return 0.0
    center_geoms = [region_lonlat] if region_lonlat is not None else scene.lonlat[idx]
    proj = aeqd_crs(*spherical_mean_lonlat(center_geoms))
    planar = reproject(scene.lonlat[idx], LONLAT, proj)
    planar = planar[shapely.get_dimensions(planar) == 2]
    if region_lonlat is not None:
        region_p = reproject(region_lonlat, LONLAT, proj)
        tree = STRtree(planar)
        planar = shapely.intersection(planar[tree.query(region_p, predicate="intersects")], region_p)
    if len(planar) == 0:
        return 0.0
    union = shapely.union_all(planar)
    return area_m2(reproject(union, proj, LONLAT))
