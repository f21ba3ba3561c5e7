"""Property tests (hypothesis) for the geodesic measures and the DE-9IM relations."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Transformer
from shapely import LineString, MultiPoint, Point, Polygon, box

from georeason.geo.vector.measure import bearing_deg, distance_m
from georeason.geo.vector.topology import PREDICATES, RELATIONS, de9im, predicate, relate, relation

G = Geod(ellps="WGS84")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lons = st.floats(-180.0, 180.0, allow_nan=False, allow_infinity=False)
lats = st.floats(-85.0, 85.0, allow_nan=False, allow_infinity=False)
azimuths = st.floats(0.0, 360.0, allow_nan=False, exclude_max=True)


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


@st.composite
def small_geometry(draw, lon0, lat0):
    """A point, line or box within ~20 km of (lon0, lat0), longitudes wrapped to [-180, 180)."""
    kind = draw(st.sampled_from(["point", "line", "box"]))
    az = draw(azimuths)
    dist = draw(st.floats(0.0, 20_000.0))
    lon, lat, _ = G.fwd(lon0, lat0, az, dist)
    if kind == "point":
        return Point(_wrap(lon), lat)
    size = draw(st.floats(1e-4, 0.05))
    if kind == "line":
        az2 = draw(azimuths)
        lon2, lat2, _ = G.fwd(lon, lat, az2, size * 100_000)
        return LineString([(_wrap(lon), lat), (_wrap(lon2), lat2)])
    x0 = _wrap(lon)
    x1 = x0 + size
    if x1 > 180.0:  # keep each box on one side of the antimeridian
        x0, x1 = x0 - size, x0
    return box(x0, lat, x1, lat + size)


@st.composite
def geometry_pair(draw):
    lon0 = draw(st.one_of(lons, st.floats(179.8, 180.0), st.floats(-180.0, -179.8)))
    lat0 = draw(st.floats(-80.0, 80.0))
    return draw(small_geometry(lon0, lat0)), draw(small_geometry(lon0, lat0))


@SETTINGS
@given(geometry_pair())
def test_distance_symmetric_and_non_negative(pair):
    a, b = pair
    d_ab = distance_m(a, b)
    d_ba = distance_m(b, a)
    assert d_ab >= 0.0
    assert np.isfinite(d_ab)
    assert d_ab == pytest.approx(d_ba, rel=1e-6, abs=1e-3)
    # the pair was drawn within ~20 km of one place plus a box or line of <= ~5.6 km
    assert d_ab < 60_000


@SETTINGS
@given(geometry_pair())
def test_distance_bounded_by_any_vertex_pair(pair):
    """The minimum distance is at most the geodesic distance between any two vertices."""
    a, b = pair
    ca, cb = shapely.get_coordinates(a), shapely.get_coordinates(b)
    best = min(G.inv(x1, y1, x2, y2)[2] for x1, y1 in ca for x2, y2 in cb)
    assert distance_m(a, b) <= best * (1 + 1e-6) + 1e-6


@SETTINGS
@given(
    lon=lons,
    lat=st.floats(-70.0, 70.0),
    az=azimuths,
    dist=st.floats(5.0, 10_000.0),
)
def test_bearing_reverses_by_180_on_short_distances(lon, lat, az, dist):
    lon2, lat2, _ = G.fwd(lon, lat, az, dist)
    a, b = Point(lon, lat), Point(_wrap(lon2), lat2)
    fwd = bearing_deg(a, b)
    back = bearing_deg(b, a)
    assert 0.0 <= fwd < 360.0 and 0.0 <= back < 360.0
    assert abs((fwd - az + 180.0) % 360.0 - 180.0) < 1e-6  # the forward azimuth we walked
    diff = abs((back - fwd) % 360.0 - 180.0)
    assert diff < 0.5


@SETTINGS
@given(
    lon=lons,
    lat=st.floats(-70.0, 70.0),
    az=azimuths,
    dist=st.floats(200.0, 10_000.0),
    half=st.floats(5.0, 50.0),
)
def test_bearing_between_small_boxes_reverses(lon, lat, az, dist, half):
    """Centroid bearings of two small squares (built around known centres) also reverse."""
    lon2, lat2, _ = G.fwd(lon, lat, az, dist)
    d = half / 111_000.0

    def square(x, y):
        x = _wrap(x)
        dx = d / np.cos(np.radians(y))
        if x + dx > 180 or x - dx < -180:
            return Point(x, y)
        return box(x - dx, y - d, x + dx, y + d)

    a, b = square(lon, lat), square(lon2, lat2)
    fwd, back = bearing_deg(a, b), bearing_deg(b, a)
    assert abs((fwd - az + 180.0) % 360.0 - 180.0) < 0.5
    assert abs((back - fwd) % 360.0 - 180.0) < 0.5


# ---------------------------------------------------------------------------------------
# topology: a small integer grid provokes every relation (equal, touching, shared edges)
# ---------------------------------------------------------------------------------------
grid = st.integers(0, 4)


@st.composite
def grid_geometry(draw):
    kind = draw(st.sampled_from(["point", "line", "box", "box", "poly", "multipoint"]))
    if kind == "point":
        return Point(draw(grid), draw(grid))
    if kind == "multipoint":
        pts = draw(st.lists(st.tuples(grid, grid), min_size=2, max_size=3, unique=True))
        return MultiPoint(pts)
    if kind == "line":
        pts = draw(st.lists(st.tuples(grid, grid), min_size=2, max_size=3, unique=True))
        return LineString(pts)
    if kind == "box":
        x0, x1 = sorted(draw(st.lists(grid, min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(grid, min_size=2, max_size=2, unique=True)))
        return box(x0, y0, x1, y1)
    # a triangle
    pts = draw(st.lists(st.tuples(grid, grid), min_size=3, max_size=3, unique=True))
    poly = Polygon(pts)
    assume(poly.is_valid and poly.area > 0)
    return poly


@settings(max_examples=100, deadline=None)
@given(grid_geometry(), grid_geometry())
def test_within_iff_reverse_contains(a, b):
    assert predicate(a, b, "within") == predicate(b, a, "contains")
    assert predicate(a, b, "covered_by") == predicate(b, a, "covers")
    assert predicate(a, b, "intersects") != predicate(a, b, "disjoint")
    # symmetric predicates
    for name in ("equals", "intersects", "touches", "overlaps", "disjoint"):
        assert predicate(a, b, name) == predicate(b, a, name)


@settings(max_examples=100, deadline=None)
@given(grid_geometry(), grid_geometry())
def test_exactly_one_named_relation(a, b):
    rel = relate(a, b)
    assert rel.name in RELATIONS
    assert rel.name == relation(a, b)
    assert rel.de9im == shapely.relate(a, b) == de9im(a, b)
    assert len(rel.de9im) == 9
    # the named relation holds ...
    assert bool(getattr(shapely, rel.name)(a, b))
    # ... and no relation before it in the order of precedence does
    for earlier in RELATIONS[: RELATIONS.index(rel.name)]:
        assert not getattr(shapely, earlier)(a, b), (earlier, rel.name)
    # the matrix agrees with the name (independent check with DE-9IM patterns)
    if rel.name == "disjoint":
        assert shapely.relate_pattern(a, b, "FF*FF****")
    else:
        assert not shapely.relate_pattern(a, b, "FF*FF****")
    if rel.name == "within":
        assert shapely.relate_pattern(a, b, "T*F**F***")
    if rel.name == "contains":
        assert shapely.relate_pattern(a, b, "T*****FF*")
    # the inverse pair's relation mirrors within <-> contains
    back = relation(b, a)
    mirror = {"within": "contains", "contains": "within"}
    assert back == mirror.get(rel.name, rel.name)


@settings(max_examples=60, deadline=None)
@given(grid_geometry(), grid_geometry(), st.integers(-2, 2))
def test_relation_is_invariant_across_the_antimeridian(a, b, shift_seed):
    """Shapes placed so that they straddle lon 180 (negative longitudes wrapped) relate
    exactly as the same shapes placed away from it."""
    base = relation(a, b)
    offset = 178.0 + shift_seed * 0.25  # grid spans 0..4 degrees -> 178..182 (wrapped)

    def move(g):
        def f(c):
            c = c.copy()
            x = c[:, 0] + offset
            c[:, 0] = np.where(x > 180.0, x - 360.0, x)
            return c

        return shapely.transform(g, f)

    ma, mb = move(a), move(b)
    # a shape cut by the seam would need splitting into parts; keep those out
    for g, _m in ((a, ma), (b, mb)):
        xs = shapely.get_coordinates(g)[:, 0] + offset
        assume(not (xs.min() < 180.0 < xs.max()) or g.geom_type in ("Point", "MultiPoint"))
    assert relation(ma, mb, geographic=True) == base


def test_predicates_listed_are_all_accepted():
    a, b = box(0, 0, 2, 2), box(1, 1, 3, 3)
    for name in PREDICATES:
        assert isinstance(predicate(a, b, name), bool)
    with pytest.raises(ValueError, match="unknown predicate"):
        predicate(a, b, "near")


# ---------------------------------------------------------------------------------------
# geodesic vs projected (UTM) distances for pairs < 10 km
# ---------------------------------------------------------------------------------------
def _utm_crs(lon: float, lat: float) -> CRS:
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@settings(max_examples=60, deadline=None)
@given(
    lon=st.floats(-179.0, 179.0),
    lat=st.floats(-79.0, 83.0),
    az=azimuths,
    dist=st.floats(50.0, 9_000.0),
    size_a=st.floats(5.0, 300.0),
    size_b=st.floats(5.0, 300.0),
)
def test_geodesic_and_utm_distance_agree(lon, lat, az, dist, size_a, size_b):
    """Squares built in the UTM zone of the pair; their UTM (planar) distance and the
    geodesic distance of the same squares in lon/lat agree within 0.5 % (UTM scale factor
    is within 0.9996 .. 1.001 inside a zone and a few km beyond it)."""
    utm = _utm_crs(lon, lat)
    to_utm = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    to_ll = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    lon2, lat2, _ = G.fwd(lon, lat, az, dist)
    xa, ya = to_utm.transform(lon, lat)
    xb, yb = to_utm.transform(lon2, lat2)
    sq_a = box(xa - size_a, ya - size_a, xa + size_a, ya + size_a)
    sq_b = box(xb - size_b, yb - size_b, xb + size_b, yb + size_b)
    planar = shapely.distance(sq_a, sq_b)
    assume(planar > 50.0)

    def ll(g):
        def f(c):
            x, y = to_ll.transform(c[:, 0], c[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(g, f)

    geodesic = distance_m(ll(sq_a), ll(sq_b))
    assert geodesic == pytest.approx(planar, rel=5e-3)


# ---------------------------------------------------------------------------------------
# group queries (STRtree + projected pre-filter) agree with brute-force geodesic distances
# ---------------------------------------------------------------------------------------
from georeason.geo.vector import group  # noqa: E402
from georeason.geo.vector.scene import Scene  # noqa: E402


@st.composite
def point_cloud(draw):
    """A reference point and 5..40 points around it within `spread` metres (any place)."""
    lon0 = draw(st.one_of(lons, st.floats(179.5, 180.0), st.floats(-180.0, -179.5)))
    lat0 = draw(st.floats(-85.0, 85.0))
    spread = draw(st.sampled_from([2_000.0, 50_000.0, 2_000_000.0, 15_000_000.0]))
    n = draw(st.integers(5, 40))
    pts = []
    for _ in range(n):
        a = draw(azimuths)
        d = draw(st.floats(0.0, spread))
        lon, lat, _ = G.fwd(lon0, lat0, a, d)
        pts.append((_wrap(lon), lat))
    return (lon0, lat0), pts


def _point_scene(pts):
    ids = [f"p{i:02d}" for i in range(len(pts))]
    return Scene(ids, ["pt"] * len(pts), [Point(p) for p in pts], "EPSG:4326")


@settings(max_examples=40, deadline=None)
@given(point_cloud(), st.floats(0.05, 0.95))
def test_within_distance_matches_brute_force(cloud, frac):
    ref, pts = cloud
    scene = _point_scene(pts)
    d = np.array([G.inv(*ref, *p)[2] for p in pts])
    radius = float(np.quantile(d, frac))
    # keep away from the threshold by more than rounding noise
    assume(np.all(np.abs(d - radius) > 1e-6 * max(radius, 1.0)))
    r = group.within_distance(scene, np.arange(len(pts)), Point(ref), radius)
    expected = np.flatnonzero(d <= radius)
    assert sorted(r.idx.tolist()) == sorted(expected.tolist())
    np.testing.assert_allclose(r.values, d[r.idx], rtol=1e-6, atol=1e-3)
    assert np.all(np.diff(r.values) >= 0)  # sorted by distance


@settings(max_examples=40, deadline=None)
@given(point_cloud(), st.integers(1, 4))
def test_nearest_and_farthest_match_brute_force(cloud, k):
    ref, pts = cloud
    scene = _point_scene(pts)
    # same argument order as the code under test (candidate, reference): bit-identical ties
    d = np.array([G.inv(*p, *ref)[2] for p in pts])
    k = min(k, len(pts))
    idx = np.arange(len(pts))
    order = np.lexsort((idx, d))  # ties broken by id (p00, p01, ... sort like positions)
    far_order = np.lexsort((idx, -d))
    near = group.nearest(scene, np.arange(len(pts)), Point(ref), k)
    assert near.idx.tolist() == order[:k].tolist()
    np.testing.assert_allclose(near.values, d[order[:k]], rtol=1e-6, atol=1e-3)
    far = group.farthest(scene, np.arange(len(pts)), Point(ref), k)
    assert far.idx.tolist() == far_order[:k].tolist()
    np.testing.assert_allclose(far.values, d[far_order[:k]], rtol=1e-6, atol=1e-3)


@st.composite
def box_set(draw):
    lon0 = draw(st.floats(-179.0, 170.0))
    lat0 = draw(st.floats(-80.0, 75.0))
    spread = draw(st.sampled_from([0.05, 1.0, 5.0]))
    n = draw(st.integers(2, 15))
    boxes = []
    for _ in range(n):
        x = lon0 + draw(st.floats(0, spread))
        y = lat0 + draw(st.floats(0, spread))
        w = draw(st.floats(1e-4, spread / 2 + 1e-4))
        h = draw(st.floats(1e-4, spread / 2 + 1e-4))
        boxes.append(box(x, y, x + w, y + h))
    return boxes


@settings(max_examples=40, deadline=None)
@given(box_set(), st.booleans())
def test_extreme_area_matches_geod(boxes, largest):
    areas = np.array([abs(G.geometry_area_perimeter(b)[0]) for b in boxes])
    s = np.sort(areas)
    assume(np.all(np.diff(s) > 1e-6 * s[-1]))
    scene = Scene([f"b{i:02d}" for i in range(len(boxes))], ["box"] * len(boxes), boxes, "EPSG:4326")
    r = group.extreme(scene, np.arange(len(boxes)), by="area", largest=largest, k=1)
    want = int(np.argmax(areas) if largest else np.argmin(areas))
    assert r.idx.tolist() == [want]
    assert r.values[0] == pytest.approx(areas[want], rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    lon0=st.floats(-170.0, 160.0),
    lat0=st.floats(-70.0, 65.0),
    width=st.floats(0.01, 3.0),
    height=st.floats(0.01, 3.0),
    offsets=st.lists(st.floats(0.0, 50.0), min_size=3, max_size=12),
    threshold=st.floats(0.0, 50.0),
)
def test_within_distance_of_a_large_polygon_near_the_threshold(lon0, lat0, width, height, offsets, threshold):
    """Points placed `s` metres due east of the box's east edge (a meridian, so a geodesic
    leaving it at azimuth 90 is perpendicular: the minimum distance is exactly `s`), tested
    against thresholds of a few metres: the projected pre-filter of a large reference must
    not decide them wrongly."""
    ref = box(lon0, lat0, lon0 + width, lat0 + height)
    pts = []
    for k, s in enumerate(offsets):
        lat = lat0 + height * (k + 0.5) / len(offsets)
        lon, la, _ = G.fwd(lon0 + width, lat, 90.0, s)
        pts.append(Point(lon, la))
    offsets = np.array(offsets)
    assume(np.all(np.abs(offsets - threshold) > 1e-3 + 1e-4 * threshold))
    scene = _point_scene([(p.x, p.y) for p in pts])
    r = group.within_distance(scene, np.arange(len(pts)), ref, threshold)
    assert sorted(r.idx.tolist()) == np.flatnonzero(offsets <= threshold).tolist()
    np.testing.assert_allclose(r.values, offsets[r.idx], rtol=1e-3, atol=1e-3)
