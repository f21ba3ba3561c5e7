"""Batched group queries in the planar frame against brute force with distance_m.

Expected answers come from ``distance_m`` on every pair (the per-pair geodesic definition),
never from the batched code. Scenes are random, in several UTM zones (north and south, far
from the central meridian), in lon/lat at high latitude and across the antimeridian, with
points, lines, rotated rectangles and references of more than 256 vertices.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Proj, Transformer

from georeason.geo.vector import group
from georeason.geo.vector.measure import distance_m
from georeason.geo.vector.scene import Scene

G = Geod(ellps="WGS84")
SET = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (CRS of the scene, centre lon, centre lat): UTM zones N and S, an Arctic zone, zone 60
# and lon/lat scenes straddling the antimeridian and at 80 N
PLACES = [
    ("EPSG:32632", 14.5, 50.0),  # ~390 km east of the central meridian (9 E)
    ("EPSG:32756", 150.2, -33.8),
    ("EPSG:32606", -150.0, 70.5),
    ("EPSG:32660", 179.9, -16.0),  # zone 60, objects on both sides of +-180
    ("EPSG:4326", 179.95, 65.0),
    ("EPSG:4326", 20.0, 80.0),
    ("EPSG:4326", -3.0, 0.5),
]


def _wrap(lon):
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def _shape(rng, lon, lat, kind):
    """A lon/lat geometry around (lon, lat): point, line, rotated rectangle or a big polygon."""
    if kind == "point":
        return shapely.Point(lon, lat)
    if kind == "line":
        az = rng.uniform(0, 360)
        lon2, lat2, _ = G.fwd(lon, lat, az, rng.uniform(5, 300))
        return shapely.LineString([(lon, lat), (_wrap(lon2), lat2)])
    if kind == "big":  # a ring of 400 vertices, radius 150-600 m, wobbly
        n = 400
        az = np.linspace(0, 360, n, endpoint=False)
        dist = rng.uniform(150, 600) * (1 + 0.2 * np.sin(np.radians(az) * 7))
        lo, la, _ = G.fwd(np.full(n, lon), np.full(n, lat), az, dist)
        lo = _wrap(lo)
        if lo.max() - lo.min() > 180:  # keep the ring continuous across +-180
            lo = np.where(lo < 0, lo + 360, lo)
        return shapely.Polygon(np.column_stack([lo, la]))
    w, h, a = rng.uniform(5, 60), rng.uniform(5, 40), rng.uniform(0, 180)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    pts = []
    for dx, dy in corners:
        az = np.degrees(np.arctan2(dx, dy)) + a
        lo, la, _ = G.fwd(lon, lat, az, float(np.hypot(dx, dy)))
        pts.append((float(_wrap(lo)), la))
    lo = np.array([p[0] for p in pts])
    if lo.max() - lo.min() > 180:
        pts = [(x + 360 if x < 0 else x, y) for x, y in pts]
    return shapely.Polygon(pts)


def _scene(seed: int, place, n_obj: int, n_ref: int, spread_m: float):
    crs, lon0, lat0 = place
    rng = np.random.default_rng(seed)
    geoms, labels = [], []
    for i in range(n_obj + n_ref):
        az, d = rng.uniform(0, 360), rng.uniform(0, spread_m)
        lon, lat, _ = G.fwd(lon0, lat0, az, d)
        lon = float(_wrap(lon))
        if i < n_obj:
            kind = rng.choice(["point", "line", "box", "box"])
        else:
            kind = rng.choice(["point", "box", "big"])
        geoms.append(_shape(rng, lon, lat, kind))
        labels.append("building" if i < n_obj else "site")
    ll = np.array(geoms, dtype=object)
    if crs != "EPSG:4326":
        tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        geoms_crs = shapely.transform(
            shapely.transform(ll, lambda c: np.column_stack([_wrap(c[:, 0]), c[:, 1]])),
            lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])),
        )
    else:
        geoms_crs = ll
    ids = [f"o{i:03d}" for i in range(len(ll))]
    return Scene(ids, labels, list(geoms_crs), crs)


def _brute(scene: Scene, objs: np.ndarray, ref) -> np.ndarray:
    return np.array([distance_m(scene.lonlat[i], ref) for i in objs])


@SET
@given(st.integers(0, 10_000), st.sampled_from(PLACES), st.sampled_from([300.0, 3_000.0]))
def test_within_and_nearest_many_match_brute_force(seed, place, spread):
    scene = _scene(seed, place, 40, 4, spread)
    objs, refs_i = scene.of_class("building"), scene.of_class("site")
    refs = scene.lonlat[refs_i]
    frame = group.planar_frame(scene)
    assert frame is not None  # these scenes are served by the planar frame
    truth = [_brute(scene, objs, ref) for ref in refs]
    # thresholds: a round value, and one 0.5 mm beyond an actual distance (a border case)
    rng = np.random.default_rng(seed)
    for dist in (100.0, float(truth[0][rng.integers(len(objs))] + 5e-4)):
        got = group.within_distance_many(scene, objs, refs, dist)
        for d, r in zip(truth, got):
            want = objs[d <= dist]
            assert sorted(r.idx.tolist()) == sorted(want.tolist())
            # values: within 1e-6 relative + 2 mm (the edges of a shape are straight in the
            # frame, in distance_m's AEQD plane about the pair: they differ by ~L^2 u / R^2)
            np.testing.assert_allclose(r.values, d[np.searchsorted(objs, r.idx)], rtol=1e-6, atol=2e-3)
    for k in (1, 3):
        got = group.nearest_many(scene, objs, refs, k)
        for d, r in zip(truth, got):
            order = np.lexsort((scene.ids[objs].astype(str), d))[:k]
            assert r.idx.tolist() == objs[order].tolist()
            np.testing.assert_allclose(r.values, d[order], rtol=1e-6, atol=2e-3)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_single_reference_functions_and_exclusion_agree_with_brute_force(seed):
    """nearest()/within_distance() with the reference in the selection's class (excluded by
    the caller, as the executor does): the class tree is shared, the reference masked."""
    scene = _scene(seed, PLACES[0], 50, 0, 2_000.0)
    objs = scene.of_class("building")
    ref_i = objs[seed % len(objs)]
    rest = objs[objs != ref_i]
    ref = scene.lonlat[ref_i]
    d = _brute(scene, rest, ref)
    near = group.nearest(scene, rest, ref, 2)
    assert near.idx.tolist() == rest[np.lexsort((scene.ids[rest].astype(str), d))[:2]].tolist()
    w = group.within_distance(scene, rest, ref, 400.0)
    assert sorted(w.idx.tolist()) == rest[d <= 400.0].tolist()


def test_planar_answers_in_utm_are_wrong_where_the_batched_ones_are_not():
    """Far from a UTM zone's central meridian the scale factor is not 1: a planar count
    within a threshold in the file's CRS differs from the geodesic one, the batched one not."""
    # EPSG:32632 at x = 900 km east of the false easting: k ~ 1.0098
    x0, y0 = 500_000.0 + 700_000.0, 5_540_000.0
    pts = [shapely.Point(x0 + 199.0 + 0.1 * i, y0) for i in range(20)]  # 199.0 .. 200.9 m planar
    scene = Scene(
        [f"p{i}" for i in range(21)], ["b"] * 20 + ["r"], pts + [shapely.Point(x0, y0)], "EPSG:32632"
    )
    objs = np.arange(20)
    ref = scene.lonlat[20]
    d = _brute(scene, objs, ref)
    planar = np.array([p.distance(shapely.Point(x0, y0)) for p in pts])
    assert (planar <= 200.0).sum() != (d <= 200.0).sum()  # the planar count is wrong here
    got = group.within_distance_many(scene, objs, np.array([ref]), 200.0)[0]
    assert sorted(got.idx.tolist()) == np.flatnonzero(d <= 200.0).tolist()


@pytest.mark.parametrize("epsg", [32632, 32756, 25833])
def test_frame_scale_bounds_hold_against_pyproj_factors(epsg):
    """k_bounds brackets pyproj's own scale factor (get_factors) over random points."""
    crs = CRS.from_epsg(epsg)
    scene = Scene(["a"], ["x"], [shapely.Point(crs.area_of_use.bounds[0] + 1, 10)], "EPSG:4326")
    k0, x0 = group._tm_params(crs)
    proj = Proj(crs)
    rng = np.random.default_rng(epsg)
    lon0 = crs.coordinate_operation.params[1].value
    lon = lon0 + rng.uniform(-9, 9, 20_000)
    lat = rng.uniform(-85, 85, 20_000)
    x, y = proj(lon, lat)
    keep = np.abs(x - x0) < 800_000
    k = np.asarray(proj.get_factors(lon[keep], lat[keep]).meridional_scale)
    frame = group.PlanarFrame(crs, k0, x0, np.array([]), None, None)  # type: ignore[arg-type]
    lo, hi = frame.k_bounds(x[keep], x[keep])
    assert np.all(lo <= k) and np.all(k <= hi)
    assert scene is not None


def test_scene_too_wide_for_one_frame_takes_the_per_reference_path():
    pts = [shapely.Point(0, 0), shapely.Point(30, 0), shapely.Point(0.001, 0)]
    scene = Scene(["a", "b", "c"], ["x", "x", "x"], pts, "EPSG:4326")
    assert group.planar_frame(scene) is None
    r = group.within_distance(scene, np.array([1, 2]), pts[0], 200.0)
    assert r.idx.tolist() == [2]
    assert r.values[0] == pytest.approx(G.inv(0, 0, 0.001, 0)[2], rel=1e-9)


def test_scene_caches_stay_behind_when_pickled():
    """Workers get the scene without its indexes and projections, and rebuild them."""
    import pickle

    scene = _scene(3, PLACES[0], 20, 2, 500.0)
    objs, refs = scene.of_class("building"), scene.lonlat[scene.of_class("site")]
    before = group.nearest_many(scene, objs, refs, 1)
    assert "_derived" in scene.__dict__
    copy = pickle.loads(pickle.dumps(scene))
    assert "_derived" not in copy.__dict__
    after = group.nearest_many(copy, copy.of_class("building"), refs, 1)
    assert [r.idx.tolist() for r in after] == [r.idx.tolist() for r in before]
