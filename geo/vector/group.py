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

from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import NamedTuple

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from georeason.geo.vector.crs import LONLAT, aeqd_crs, reproject, spherical_mean_lonlat, transformer
from georeason.geo.vector.measure import GEOD, area_m2, distance_m, length_m
from georeason.geo.vector.regions import iter_union_parts_from, union_where_overlapping
from georeason.geo.vector.scene import Scene
from georeason.geo.vector.topology import merge_seam

__all__ = [
    "Ranked",
    "within_distance",
    "within_distance_many",
    "nearest_many",
    "PlanarFrame",
    "planar_frame",
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
    return np.array([distance_m(g, ref_lonlat) for g in scene.lonlat_of(idx)], dtype=float)


def within_distance(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, distance: float) -> Ranked:
    """Objects among ``idx`` whose minimum geodesic distance to the reference is <= ``distance`` m.

    Returns the matching indices sorted by distance, with their distances in metres.
    Objects that intersect the reference are at 0 m and match. One reference of
    :func:`within_distance_many`.
    """
    return within_distance_many(scene, idx, np.array([ref_lonlat], dtype=object), distance)[0]


def _within_one(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, distance: float) -> Ranked:
    """Per-reference path (AEQD frame centred on the reference), for what the planar frame cannot serve."""
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


def _ranked_one(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, k: int, far: bool) -> Ranked:
    """Per-reference path (AEQD frame centred on the reference); farthest always takes it."""
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

    Ties are broken by object id, so results are deterministic. One reference of
    :func:`nearest_many`.
    """
    return nearest_many(scene, idx, np.array([ref_lonlat], dtype=object), k)[0]


def farthest(scene: Scene, idx: np.ndarray, ref_lonlat: BaseGeometry, k: int = 1) -> Ranked:
    """The ``k`` objects among ``idx`` farthest from the reference (minimum geodesic distance)."""
    return _ranked_one(scene, idx, ref_lonlat, k, far=True)


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


#: Parts of a dissolved class reprojected back to lon/lat and measured at a time in
#: :func:`total_area_m2`.
AREA_CHUNK = 256


def total_area_m2(scene: Scene, idx: np.ndarray, region_lonlat: BaseGeometry | None = None) -> float:
    """Geodesic area (m²) covered by the objects in ``idx``, optionally clipped to a region.

    Overlapping objects are counted once: the objects are dissolved in an AEQD plane
    (:func:`~georeason.geo.vector.regions.iter_union_parts_from`: unioned only where they
    overlap or share an edge) and the parts measured on the ellipsoid as they come,
    :data:`AREA_CHUNK` at a time, each added to one running sum in the collection's order.
    A part that is an object's polygon as it is (most parts: a raster grounder's objects
    rarely overlap) is measured on the object's own lon/lat vertices; a union (or, with a
    region, a clipped part) on its AEQD vertices reprojected back. So the total is the
    geodesic area of the objects' own vertices wherever nothing was unioned, without the
    dissolved collection or a reprojected copy of it (on the 20000² scene's vegetation,
    3949 polygons of 2.9 M vertices, those were ~250 MB at once), and without reprojecting
    the parts kept as they are back to lon/lat (0.25 s of the 8000² scene's two
    total-area answers).
    """
    idx = np.asarray(idx, dtype=np.intp)
    if len(idx) == 0:
        return 0.0
    lonlat = scene.lonlat[idx]
    lonlat = lonlat[shapely.get_dimensions(lonlat) == 2]
    center_geoms = [region_lonlat] if region_lonlat is not None else lonlat
    proj = aeqd_crs(*spherical_mean_lonlat(center_geoms))
    del center_geoms
    planar = reproject(lonlat, LONLAT, proj)
    if region_lonlat is not None:
        region_p = reproject(region_lonlat, LONLAT, proj)
        tree = STRtree(planar)
        planar = shapely.intersection(planar[tree.query(region_p, predicate="intersects")], region_p)
        del tree
        lonlat = None  # clipped: every part is measured from the plane
    if len(planar) == 0:
        return 0.0
    parts = iter_union_parts_from(planar)
    del planar  # the generator keeps what it needs
    total = 0.0
    while True:
        chunk = list(islice(parts, AREA_CHUNK))
        if not chunk:
            break
        back = [g for at, g in chunk if at is None or lonlat is None]
        arr = np.empty(len(back), dtype=object)
        arr[:] = back
        unprojected = iter(reproject(arr, proj, LONLAT)) if len(back) else iter(())
        del back, arr
        # area_m2 of a collection adds its parts' area_m2 in order, starting from 0.0
        for at, _ in chunk:
            if at is None or lonlat is None:
                g = next(unprojected)
            else:
                own = lonlat[at[0]]
                g = own if shapely.get_type_id(own) == 3 else shapely.get_geometry(own, at[1])
            total += area_m2(g)
        del chunk
    return float(total)


#: (kept under its old name: the tests and callers of this module use it)
_union_where_overlapping = union_where_overlapping


# ---------------------------------------------------------------------------------------
# Batched queries in a planar frame: exact answers at the cost of STRtree queries
# ---------------------------------------------------------------------------------------
#
# A Transverse Mercator (TM) plane is conformal: its scale factor k is the same in every
# direction at a point, so for two points whose geodesic, and the straight segment between
# their images, stay where k_min <= k <= k_max, the planar distance d_p and the geodesic
# distance d_g satisfy d_p / k_max <= d_g <= d_p / k_min (a curve of ellipsoidal length s
# has planar length between k_min s and k_max s; the segment and the geodesic are the
# shortest curves in their spaces). On the ellipsoid TM's k is k0 on the central meridian
# and grows with the distance u = |x - x0| from it as k0 cosh(u / (k0 sqrt(rho nu))) to
# within 1e-10 (checked against pyproj's get_factors in the tests); sqrt(rho nu) lies in
# [6,356,752, 6,399,594] m on WGS84, so cosh with the radii below bounds k from both sides.
#
# Shapes add an absolute slack: their edges are straight in this plane, in the AEQD plane
# :func:`~georeason.geo.vector.measure.distance_m` measures in, and (for its test of
# intersection) in lon/lat; the three differ by at most L^2 (u + L) / R^2 and
# L^2 (1 + tan|lat|) / (2 R) for shapes of extent L (sagitta of the image of a straight
# edge under the change of plane, with a factor 4-8 of margin). Pairs whose bounds straddle
# the threshold (or the k-th distance, for nearest) are measured again: vectorised, as the
# geodesic between their nearest points in this plane (Geod.inv), and the few still too
# close to call with distance_m itself. The answer is the answer of distance_m on every pair.

_R_MIN = 6_356_000.0  # m, below the smallest sqrt(rho nu) of WGS84 (b, at the equator)
_R_MAX = 6_400_000.0  # m, above the largest (a^2 / b, at the poles)
_K_MARGIN = 1e-8  # relative, on both k bounds (the cosh form is good to ~1e-10)
_X_MAX = 800_000.0  # m from the central meridian a frame serves (k - k0 <= 0.8%)
_LAT_MAX = 88.0  # degrees: references reaching farther poleward take the per-reference path
_D_MAX = 100_000.0  # m: farther reaches take the per-reference path
_BIG_REF = 256  # vertices: larger references are measured through an STRtree of boundary pieces
_PIECE = 32  # vertices per boundary piece of a large reference
_WGS84_A, _WGS84_RF = 6_378_137.0, 298.257223563


@dataclass(frozen=True, eq=False)
class PlanarFrame:
    """A scene's geometries in a conformal Transverse Mercator plane, with its scale bounds.

    ``geoms`` are the scene's geometries in ``crs`` (the scene's own when it is a TM on
    the WGS84/GRS80 ellipsoid, e.g. UTM; else a TM with k0 = 1 centred on the scene).
    ``k0`` and ``x0`` (false easting, metres) give the scale factor bounds of
    :meth:`k_bounds`. Built once per scene by :func:`planar_frame`.
    """

    crs: CRS
    k0: float
    x0: float
    geoms: np.ndarray
    to_frame: Transformer  # lon/lat -> frame
    to_lonlat: Transformer  # frame -> lon/lat

    def k_bounds(self, xmin: np.ndarray, xmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the scale factor over the strips ``xmin <= x <= xmax``."""
        a, b = np.abs(xmin - self.x0), np.abs(xmax - self.x0)
        straddle = (xmin <= self.x0) & (self.x0 <= xmax)
        u_lo = np.where(straddle, 0.0, np.minimum(a, b))
        u_hi = np.maximum(a, b)
        k_min = self.k0 * np.cosh(u_lo / (self.k0 * _R_MAX)) * (1 - _K_MARGIN)
        k_max = self.k0 * np.cosh(u_hi / (self.k0 * _R_MIN)) * (1 + _K_MARGIN)
        return k_min, k_max

    def project(self, lonlat_geoms: np.ndarray) -> np.ndarray:
        """Lon/lat geometries in this frame (vectorised)."""

        def _xy(c: np.ndarray) -> np.ndarray:
            x, y = self.to_frame.transform(c[:, 0], c[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(np.asarray(lonlat_geoms, dtype=object), _xy)


@lru_cache(maxsize=64)
def _tm_crs(lon0: float) -> CRS:
    return CRS.from_proj4(
        f"+proj=tmerc +lat_0=0 +lon_0={lon0:.6f} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )


def _tm_params(crs: CRS) -> tuple[float, float] | None:
    """``(k0, false easting)`` of a metre TM CRS on the WGS84/GRS80 ellipsoid, else ``None``."""
    if not crs.is_projected or crs.coordinate_operation is None:
        return None
    op = crs.coordinate_operation
    ell = crs.ellipsoid
    if op.method_name != "Transverse Mercator" or ell is None:
        return None
    # GRS80 differs from WGS84 by 0.1 mm in the semi-minor axis: a relative 2e-11
    if abs(ell.semi_major_metre - _WGS84_A) > 1e-3 or abs(ell.inverse_flattening - _WGS84_RF) > 1e-5:
        return None
    if any(ax.unit_conversion_factor != 1.0 for ax in crs.axis_info[:2]):
        return None
    p = {q.name: q.value for q in op.params}
    try:
        return float(p["Scale factor at natural origin"]), float(p["False easting"])
    except KeyError:
        return None


def _build_frame(scene: Scene) -> PlanarFrame | None:
    if len(scene) == 0:
        return None
    tm = _tm_params(scene.crs)
    if tm is not None:
        k0, x0 = tm
        crs, geoms = scene.crs, scene.geoms
    else:
        lon0, _ = spherical_mean_lonlat(scene.lonlat)
        k0, x0, crs = 1.0, 0.0, _tm_crs(round(lon0, 6))
        geoms = np.asarray(reproject(scene.lonlat, LONLAT, crs), dtype=object)
    b = shapely.bounds(geoms)
    if not np.isfinite(b).all() or np.abs(b[:, [0, 2]] - x0).max() > _X_MAX:
        return None
    return PlanarFrame(crs, k0, x0, geoms, transformer(LONLAT, crs), transformer(crs, LONLAT))


def planar_frame(scene: Scene) -> PlanarFrame | None:
    """The scene's :class:`PlanarFrame` (built once, kept on the scene), or ``None`` when the
    scene reaches farther than 800 km from any one central meridian (queries then take the
    per-reference AEQD path)."""
    return scene.cached("planar_frame", lambda: _build_frame(scene))


class _Sel(NamedTuple):
    tree: STRtree
    sel: np.ndarray  # scene indices of the tree's geometries
    geoms: np.ndarray  # their frame geometries
    extent: float  # largest bounding-box diagonal among them (m, frame units)


def _sel_entry(frame: PlanarFrame, sel: np.ndarray) -> _Sel:
    g = frame.geoms[sel]
    b = shapely.bounds(g)
    ext = float(np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).max()) if len(g) else 0.0
    return _Sel(STRtree(g), sel, g, ext)


def _selection(scene: Scene, frame: PlanarFrame, idx: np.ndarray) -> tuple[_Sel, np.ndarray | None]:
    """An STRtree holding ``idx`` (cached per class, or per exact selection), and a mask of
    the scene's objects in the tree but not in ``idx`` (``None`` when there are none).

    A selection that is a class less a few objects (a class without the reference) shares
    the class's tree; the few are masked out of the results.
    """
    for cls in scene.classes:  # the class's own (shared) selection: no O(n) checks
        if scene.__dict__.get("_derived", {}).get(("of_class", cls)) is idx:
            return scene.cached(("frame_tree", cls), lambda: _sel_entry(frame, idx)), None
    codes = scene.label_codes[idx]
    if codes.min() == codes.max():
        cls = scene.classes[int(codes[0])]
        full = scene.of_class(cls)
        if len(full) - len(idx) <= 64:
            entry = scene.cached(("frame_tree", cls), lambda: _sel_entry(frame, full))
            if len(full) == len(idx):
                return entry, None
            bad = np.zeros(len(scene), dtype=bool)
            bad[full] = True
            bad[idx] = False
            return entry, bad
    key = ("frame_tree_sel", len(idx), int(idx.sum()), int(idx[0]), int(idx[-1]))
    entry = scene.cached(key, lambda: _sel_entry(frame, idx.copy()))
    if not np.array_equal(entry.sel, idx):  # same key, other selection: do not cache
        entry = _sel_entry(frame, idx)
    return entry, None


def _fast_refs(frame: PlanarFrame, refs: np.ndarray, reach_m: np.ndarray):
    """Frame copies of the references, which of them the frame serves, their latitude
    bound (degrees) and extent (m)."""
    refs_p = frame.project(refs)
    bll = shapely.bounds(refs)
    lat_hi = np.maximum(np.abs(bll[:, 1]), np.abs(bll[:, 3])) + reach_m / 110_574.0
    bp = shapely.bounds(refs_p)
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(bp).all(axis=1)
            & (lat_hi <= _LAT_MAX)
            & (reach_m <= _D_MAX)
            & (np.abs(bp[:, [0, 2]] - frame.x0).max(axis=1) + reach_m <= _X_MAX)
        )
    ext = np.hypot(bp[:, 2] - bp[:, 0], bp[:, 3] - bp[:, 1])
    return refs_p, ok, np.minimum(lat_hi, _LAT_MAX), np.where(np.isfinite(ext), ext, 0.0)


def _bounds(
    frame: PlanarFrame,
    refs_p: np.ndarray,
    reach_m: np.ndarray,
    lat_hi: np.ndarray,
    ext: np.ndarray,
    cand_ext: float,
):
    """k bounds over each reference's neighbourhood, and the absolute slack (m)."""
    bp = shapely.bounds(refs_p)
    grow = 1.02 * reach_m + 1000.0  # the geodesic's image strays < 1 km from the segment
    k_min, k_max = frame.k_bounds(bp[:, 0] - grow, bp[:, 2] + grow)
    u_hi = np.maximum(np.abs(bp[:, 0] - grow - frame.x0), np.abs(bp[:, 2] + grow - frame.x0))
    L = ext + cand_ext
    slack = 1e-3 + L**2 * ((u_hi + L) / _R_MIN**2 + (1.0 + np.tan(np.radians(lat_hi))) / (2 * _R_MIN))
    return k_min, k_max, slack


def _pieces(g: BaseGeometry) -> np.ndarray:
    """Boundary of a large geometry cut into pieces of at most ``_PIECE`` vertices (points stay points)."""
    out = []
    for part in shapely.get_parts(g):
        tid = shapely.get_type_id(part)
        if tid == 0:
            out.append(part)
            continue
        lines = shapely.get_parts(shapely.boundary(part)) if tid == 3 else [part]
        for line in lines:
            c = shapely.get_coordinates(line)
            if len(c) == 1:
                out.append(shapely.points(c[0]))
                continue
            starts = range(0, max(len(c) - 1, 1), _PIECE - 1)
            out.extend(shapely.linestrings(c[s : s + _PIECE]) for s in starts)
    return np.array(out, dtype=object)


def _pair_geometry(cands: np.ndarray, refs_p: np.ndarray, r: np.ndarray, big: np.ndarray, want_lines: bool):
    """Planar distances (and nearest-point lines) between ``cands[i]`` and ``refs_p[r[i]]``.

    References with more than ``_BIG_REF`` vertices are measured against an STRtree of
    their boundary pieces (0 where the candidate intersects the reference), so no pair
    walks the whole reference.
    """
    d = np.empty(len(cands))
    lines = np.empty(len(cands), dtype=object)
    small = ~big[r]
    if small.any():
        d[small] = shapely.distance(cands[small], refs_p[r[small]])
        if want_lines:
            lines[small] = shapely.shortest_line(cands[small], refs_p[r[small]])
    for j in np.unique(r[~small]):
        at = np.flatnonzero(r == j)
        ref = refs_p[j]
        pieces = _pieces(ref)
        shapely.prepare(ref)
        inter = shapely.intersects(ref, cands[at])
        nearest, dist = STRtree(pieces).query_nearest(cands[at], return_distance=True, all_matches=False)
        dd = np.empty(len(at))
        dd[nearest[0]] = dist
        dd[inter] = 0.0
        d[at] = dd
        if want_lines:
            piece = np.empty(len(at), dtype=object)
            piece[nearest[0]] = pieces[nearest[1]]
            ln = shapely.shortest_line(cands[at], piece)
            if inter.any():  # a zero-length line at a shared point
                p = shapely.get_coordinates(
                    shapely.point_on_surface(shapely.intersection(cands[at][inter], ref))
                )
                ln[inter] = shapely.linestrings(np.stack([p, p], axis=1))
            lines[at] = ln
    return d, (lines if want_lines else None)


def _geodesic_of_lines(frame: PlanarFrame, lines: np.ndarray) -> np.ndarray:
    """Geodesic length (m) between the two ends of planar lines (vectorised Geod.inv)."""
    if len(lines) == 0:
        return np.empty(0)
    c = shapely.get_coordinates(lines)
    lon, lat = frame.to_lonlat.transform(c[:, 0], c[:, 1])
    return np.asarray(GEOD.inv(lon[0::2], lat[0::2], lon[1::2], lat[1::2])[2], dtype=float)


def _lonlat_margin(lat_hi: float, reach_m: float) -> tuple[float, float]:
    """Degrees of latitude and longitude that points within ``reach_m`` can differ by
    (poleward of no more than ``lat_hi``), as in :func:`near_candidates`."""
    rho = _A_POLAR * np.cos(np.radians(min(lat_hi, 89.9)))
    if reach_m >= 2 * rho:
        return reach_m / _M_DEG_LAT, 360.0
    return reach_m / _M_DEG_LAT, float(np.degrees(2 * np.arcsin(reach_m / (2 * rho))))


def _exact_pairs(
    scene: Scene, obj: np.ndarray, refs: np.ndarray, r: np.ndarray, reach_m: np.ndarray
) -> np.ndarray:
    """``distance_m`` of each pair; a large reference is first clipped to the neighbourhood
    (``reach_m``, an upper bound of the distance) of the candidate, which leaves the
    minimum distance and the intersection test unchanged."""
    out = np.empty(len(obj))
    lls = scene.lonlat_of(obj)
    for n, (g, j, reach) in enumerate(zip(lls, r, reach_m)):
        ref = refs[j]
        if shapely.get_num_coordinates(ref) > _BIG_REF:
            gx0, gy0, gx1, gy1 = g.bounds
            rx0, _, rx1, _ = ref.bounds
            lat_hi = max(abs(gy0), abs(gy1)) + reach / _M_DEG_LAT + 1e-6
            dlat, dlon = _lonlat_margin(lat_hi, reach + 1.0)
            if gx1 - gx0 <= 180.0 and rx1 - rx0 <= 180.0 and lat_hi < 89.0 and dlon < 10.0:
                box = (gx0 - dlon, gy0 - dlat, gx1 + dlon, gy1 + dlat)
                if box[0] >= -180.0 and box[2] <= 180.0:
                    clipped = shapely.clip_by_rect(ref, *box)
                    if not clipped.is_empty:
                        ref = clipped
        out[n] = distance_m(g, ref)
    return out


def _ll_intersects(scene: Scene, obj: np.ndarray, refs: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Whether each pair intersects in lon/lat as given (the test distance_m starts with)."""
    lls = scene.lonlat_of(obj)
    a, b = shapely.bounds(lls), shapely.bounds(refs[r])
    span = np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])
    out = np.zeros(len(obj), dtype=bool)
    plain = span <= 180.0
    out[plain] = shapely.intersects(lls[plain], refs[r[plain]])
    for n in np.flatnonzero(~plain):  # across the antimeridian: distance_m decides
        out[n] = distance_m(lls[n], refs[r[n]]) == 0.0
    return out


def _group(
    r: np.ndarray, n: int, obj: np.ndarray, vals: np.ndarray, scene: Scene | None = None
) -> list[Ranked]:
    """Split pairs (sorted by reference, then value[, then id]) into one Ranked per reference."""
    if scene is not None:
        order = np.lexsort((scene.ids[obj].astype(str), vals, r))
    else:
        order = np.lexsort((vals, r))
    r, obj, vals = r[order], obj[order], vals[order]
    cuts = np.searchsorted(r, np.arange(1, n))
    return [Ranked(o, v) for o, v in zip(np.split(obj, cuts), np.split(vals, cuts))]


def within_distance_many(
    scene: Scene, idx: np.ndarray, refs_lonlat: np.ndarray, distance: float
) -> list[Ranked]:
    """:func:`within_distance` for many references at once: one :class:`Ranked` per reference.

    In the scene's :class:`PlanarFrame`, one STRtree query finds every candidate pair
    within the distance grown by the frame's scale and slack bounds (no pair within the
    distance is missed), one vectorised ``shapely.distance`` classifies most pairs, and
    only those whose bounds straddle the threshold are measured on the ellipsoid
    (vectorised Geod.inv on their nearest points, then ``distance_m`` for pairs still within
    its error of the threshold). References the frame cannot serve (farther than 800 km
    from its central meridian, beyond 88 degrees of latitude, distances over 100 km)
    take the per-reference AEQD path. Values are geodesic distances in metres (within
    1e-6 relative of ``distance_m``, exactly its value near the threshold).
    """
    refs = np.asarray(refs_lonlat, dtype=object).ravel()
    idx = np.asarray(idx, dtype=np.intp)
    n = len(refs)
    if len(idx) == 0 or n == 0:
        return [Ranked(idx[:0], np.array([], dtype=float)) for _ in range(n)]
    out: list[Ranked | None] = [None] * n
    frame = planar_frame(scene)
    fast = np.zeros(n, dtype=bool)
    if frame is not None:
        reach = np.full(n, float(distance))
        refs_p, fast, lat_hi, ext = _fast_refs(frame, refs, reach)
    if frame is not None and fast.any():
        f = np.flatnonzero(fast)
        entry, bad = _selection(scene, frame, idx)
        for j, rk in zip(
            f, _within_fast(scene, frame, entry, bad, refs[f], refs_p[f], lat_hi[f], ext[f], float(distance))
        ):
            out[j] = rk
    for j in np.flatnonzero(~fast):
        out[j] = _within_one(scene, idx, refs[j], distance)
    return out  # type: ignore[return-value]


def _within_fast(scene, frame, entry: _Sel, bad, refs, refs_p, lat_hi, ext, distance: float) -> list[Ranked]:
    n = len(refs)
    reach = np.full(n, distance)
    k_min, k_max, slack = _bounds(frame, refs_p, reach, lat_hi, ext, entry.extent)
    reach_p = k_max * (distance + slack)
    r, t = _box_query(entry.tree, refs_p, reach_p)
    obj = entry.sel[t]
    if bad is not None:
        keep = ~bad[obj]
        r, t, obj = r[keep], t[keep], obj[keep]
    big = shapely.get_num_coordinates(refs_p) > _BIG_REF
    dp, _ = _pair_geometry(entry.geoms[t], refs_p, r, big, want_lines=False)
    keep = dp <= reach_p[r]
    r, t, obj, dp = r[keep], t[keep], obj[keep], dp[keep]
    lo = dp / k_max[r] - slack[r]
    hi = dp / k_min[r] + slack[r]
    border = (lo <= distance) & (hi > distance)
    near0 = lo <= slack[r]  # may intersect in lon/lat (distance_m says 0)
    # value: planar distance over the local scale factor (TM's k to second order)
    lat_mid = shapely.bounds(refs)[:, [1, 3]].mean(axis=1)
    vals = dp / _k_local(frame, entry.geoms[t], refs_p[r], lat_mid[r])
    # where the bounding-box centres may sit far enough from the nearest points for the
    # local k to be off by more than 3e-7, measure on the ellipsoid like the border pairs
    u_ref = np.abs(shapely.bounds(refs_p)[:, [0, 2]] - frame.x0).max(axis=1)
    coarse = 0.5 * (ext[r] + entry.extent) * (u_ref[r] + distance) / _R_MIN**2 > 3e-7
    if coarse.any():
        c = np.flatnonzero(coarse & ~border)
        _, lines = _pair_geometry(entry.geoms[t[c]], refs_p, r[c], big, want_lines=True)
        vals[c] = _geodesic_of_lines(frame, lines)
    if border.any():
        b = np.flatnonzero(border)
        _, lines = _pair_geometry(entry.geoms[t[b]], refs_p, r[b], big, want_lines=True)
        e = _geodesic_of_lines(frame, lines)
        w = dp[b] + ext[r[b]] + entry.extent
        u = np.abs(shapely.bounds(refs_p[r[b]])[:, [0, 2]] - frame.x0).max(axis=1) + w
        eps = 1e-4 + dp[b] * (u + w) * w / _R_MIN**2 + (slack[r[b]] - 1e-3)
        vals[b] = e
        close = (np.abs(e - distance) <= eps) | (e <= slack[r[b]] + eps)
        if close.any():
            c = b[close]
            vals[c] = _exact_pairs(scene, obj[c], refs, r[c], hi[c] + 1.0)
    z = near0 & ~border
    if z.any():
        zi = np.flatnonzero(z)
        inter = _ll_intersects(scene, obj[zi], refs, r[zi])
        vals[zi[inter]] = 0.0
        rest = zi[~inter]
        if len(rest):
            vals[rest] = _exact_pairs(scene, obj[rest], refs, r[rest], hi[rest] + 1.0)
    keep = vals <= distance
    return _group(r[keep], n, obj[keep], vals[keep])


def _k_local(frame: PlanarFrame, cands: np.ndarray, refs_p: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Mean TM scale factor along the segment joining each pair's box centres, to second
    order in the distance from the central meridian (radius sqrt(rho nu) at the latitude given)."""
    if len(cands) == 0:
        return np.empty(0)
    a = shapely.bounds(cands)[:, [0, 2]].mean(axis=1) - frame.x0
    b = shapely.bounds(refs_p)[:, [0, 2]].mean(axis=1) - frame.x0
    # k grows as x^2: its mean along the segment takes the mean of x^2 over it, not the
    # square of the midpoint (which is off by (b - a)^2 / 12: 1e-6 relative at 37 km)
    u = np.sqrt((a * a + a * b + b * b) / 3.0)
    e2 = 1 / _WGS84_RF * (2 - 1 / _WGS84_RF)
    s2 = np.sin(np.radians(lat)) ** 2
    rho_nu = _WGS84_A**2 * (1 - e2) / (1 - e2 * s2) ** 2
    return frame.k0 * np.cosh(u / (frame.k0 * np.sqrt(rho_nu)))


def nearest_many(scene: Scene, idx: np.ndarray, refs_lonlat: np.ndarray, k: int = 1) -> list[Ranked]:
    """:func:`nearest` for many references at once: one :class:`Ranked` per reference.

    In the scene's :class:`PlanarFrame`: ``STRtree.query_nearest`` (and, for k > 1, a few
    growing ``dwithin`` queries) give each reference's k-th planar distance; every object
    whose lower bound on the geodesic distance is within the k-th upper bound is a
    contender (no true answer is missed); contenders are measured on the ellipsoid
    (vectorised Geod.inv on nearest points), and ``distance_m`` settles those whose order
    could change within its error. Ties are broken by object id. References the frame
    cannot serve take the per-reference path.
    """
    refs = np.asarray(refs_lonlat, dtype=object).ravel()
    idx = np.asarray(idx, dtype=np.intp)
    n = len(refs)
    if len(idx) == 0 or k <= 0 or n == 0:
        return [Ranked(idx[:0], np.array([], dtype=float)) for _ in range(n)]
    k = min(k, len(idx))
    out: list[Ranked | None] = [None] * n
    frame = planar_frame(scene)
    done = np.zeros(n, dtype=bool)
    if frame is not None:
        entry, bad = _selection(scene, frame, idx)
        n_bad = 0 if bad is None else int(bad[entry.sel].sum())
        kk = k + n_bad
        if kk <= len(entry.sel):
            refs_p, ok, lat_hi, ext = _fast_refs(frame, refs, np.zeros(n))
            f = np.flatnonzero(ok)
            if len(f):
                res = _nearest_fast(scene, frame, entry, bad, refs[f], refs_p[f], lat_hi[f], ext[f], k, kk)
                for j, rk in zip(f, res):
                    if rk is not None:
                        out[j] = rk
                        done[j] = True
    for j in np.flatnonzero(~done):
        out[j] = _ranked_one(scene, idx, refs[j], k, far=False)
    return out  # type: ignore[return-value]


def _box_query(tree: STRtree, refs_p: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``(reference, tree position)`` pairs whose boxes meet the references' boxes grown by
    ``reach``: every pair within ``reach`` and some farther (filtered by the caller with
    the distances it computes anyway, cheaper than a ``dwithin`` predicate on each)."""
    b = shapely.bounds(refs_p)
    boxes = shapely.box(b[:, 0] - reach, b[:, 1] - reach, b[:, 2] + reach, b[:, 3] + reach)
    return tree.query(boxes)


def _kth_planar(tree: STRtree, refs_p: np.ndarray, kk: int) -> np.ndarray:
    """Each reference's kk-th smallest planar distance to the tree's geometries (with repeats)."""
    n = len(refs_p)
    (ri, _), dn = tree.query_nearest(refs_p, return_distance=True, all_matches=True)
    d1 = np.full(n, np.inf)
    np.minimum.at(d1, ri, dn)
    if kk == 1:
        return d1
    dk = np.full(n, np.inf)
    radius = 2.0 * d1 + 1.0
    todo = np.arange(n)
    while len(todo):
        r, t = tree.query(refs_p[todo], predicate="dwithin", distance=radius[todo])
        d = shapely.distance(tree.geometries[t], refs_p[todo][r])
        order = np.lexsort((d, r))
        r, d = r[order], d[order]
        counts = np.bincount(r, minlength=len(todo))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        enough = counts >= kk
        dk[todo[enough]] = d[starts[enough] + kk - 1]
        todo = todo[~enough]
        radius[todo] *= 4.0
        if len(todo) and np.all(radius[todo] > 4 * _D_MAX):
            break  # the rest: the per-reference path
    return dk


def _nearest_fast(
    scene, frame, entry: _Sel, bad, refs, refs_p, lat_hi, ext, k: int, kk: int
) -> list[Ranked | None]:
    n = len(refs)
    dk = _kth_planar(entry.tree, refs_p, kk)
    # reach: upper bound of the k-th geodesic distance, k_min >= 0.9 k0 anywhere in a frame
    reach = np.where(np.isfinite(dk), dk / (0.9 * frame.k0) + 1.0, np.inf)
    _, ok, _, _ = _fast_refs(frame, refs, np.where(np.isfinite(reach), reach, 2 * _D_MAX))
    k_min, k_max, slack = _bounds(frame, refs_p, np.where(ok, reach, 0.0), lat_hi, ext, entry.extent)
    radius = np.where(ok, k_max * (dk / k_min + 2 * slack) + 1e-9, 0.0)
    f = np.flatnonzero(ok)
    r, t = _box_query(entry.tree, refs_p[f], radius[f])
    r = f[r]
    obj = entry.sel[t]
    if bad is not None:
        keep = ~bad[obj]
        r, t, obj = r[keep], t[keep], obj[keep]
    big = shapely.get_num_coordinates(refs_p) > _BIG_REF
    dp, _ = _pair_geometry(entry.geoms[t], refs_p, r, big, want_lines=False)
    keep = dp <= radius[r]
    r, t, obj = r[keep], t[keep], obj[keep]
    dp, lines = _pair_geometry(entry.geoms[t], refs_p, r, big, want_lines=True)
    e = _geodesic_of_lines(frame, lines)
    hi = dp / k_min[r] + slack[r]
    w = dp + ext[r] + entry.extent
    u = np.abs(shapely.bounds(refs_p[r])[:, [0, 2]] - frame.x0).max(axis=1) + w
    eps = 1e-4 + dp * (u + w) * w / _R_MIN**2 + (slack[r] - 1e-3)
    # order by the estimate; pairs whose order (or zero distance) distance_m could change: exact
    order = np.lexsort((e, r))
    r_s, e_s, eps_s = r[order], e[order], eps[order]
    same = r_s[1:] == r_s[:-1]
    tight = same & (e_s[1:] - e_s[:-1] <= eps_s[1:] + eps_s[:-1])
    mark = np.zeros(len(order), dtype=bool)
    mark[1:] |= tight
    mark[:-1] |= tight
    vals = e.copy()
    near0 = e_s <= slack[r_s] + eps_s  # may intersect in lon/lat: distance_m says 0 if so
    if near0.any():
        z = order[near0]
        inter = _ll_intersects(scene, obj[z], refs, r[z])
        vals[z[inter]] = 0.0
        pos = np.flatnonzero(near0)
        mark[pos[~inter]] = True
        mark[pos[inter]] = False  # exactly 0, as distance_m says: settled
    if mark.any():
        m = order[mark]
        vals[m] = _exact_pairs(scene, obj[m], refs, r[m], hi[m] + 1.0)
    ranked = _group(r, n, obj, vals, scene)
    res: list[Ranked | None] = []
    for j in range(n):
        if not ok[j] or len(ranked[j].idx) < k:
            res.append(None)
        else:
            res.append(Ranked(ranked[j].idx[:k], ranked[j].values[:k]))
    return res
