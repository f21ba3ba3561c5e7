"""Metric measurements on the ellipsoid against independent references.

Every expected value here comes from :class:`pyproj.Geod` applied directly to hand-chosen
points (the nearest points are known analytically for the shapes used), never from the
function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from shapely import LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon, box

from georeason.geo.language.executor import execute
from georeason.geo.vector.measure import (
    COMPASS_8,
    COMPASS_16,
    area_m2,
    azimuth_matches,
    bearing_deg,
    centroid_distance_m,
    centroid_lonlat,
    compass_point,
    direction,
    distance_m,
    length_m,
)
from georeason.geo.vector.scene import Scene

G = Geod(ellps="WGS84")
REL = 1e-3  # the 0.1 % accuracy bound


def inv(lon1, lat1, lon2, lat2) -> float:
    return G.inv(lon1, lat1, lon2, lat2)[2]


def geodesic_midpoint(lon1, lat1, lon2, lat2) -> tuple[float, float]:
    az, _, d = G.inv(lon1, lat1, lon2, lat2)
    lon, lat, _ = G.fwd(lon1, lat1, az, d / 2)
    return lon, lat


# ---------------------------------------------------------------------------------------
# point to point
# ---------------------------------------------------------------------------------------
POINT_PAIRS = [
    pytest.param((0, 0), (0, 1), id="equator-meridian"),
    pytest.param((0, 0), (1, 0), id="equator-east"),
    pytest.param((10.0, 50.0), (10.01, 50.01), id="mid-latitude-short"),
    pytest.param((-73.99, 40.75), (-0.12, 51.5), id="new-york-london"),
    pytest.param((151.2, -33.9), (174.8, -36.8), id="sydney-auckland"),
    pytest.param((0, 89.5), (180, 89.5), id="across-north-pole"),
    pytest.param((45, 89.5), (46, 89.5), id="near-north-pole"),
    pytest.param((-120, -89.5), (60, -89.6), id="across-south-pole"),
    pytest.param((0, 90), (45, 89.5), id="at-the-pole"),
    pytest.param((179.99, 0), (-179.99, 0), id="antimeridian-equator"),
    pytest.param((179.99, 65), (-179.99, 65.01), id="antimeridian-north"),
    pytest.param((-179.5, -16.0), (179.5, -17.0), id="antimeridian-fiji"),
    pytest.param((5.999, 50.0), (6.001, 50.0), id="utm-zone-edge-31-32"),
    pytest.param((-0.001, 10.0), (0.001, 10.0), id="utm-zone-edge-prime-meridian"),
    pytest.param((2.0, 0.0), (2.0, 0.0001), id="tiny-11m"),
]


@pytest.mark.parametrize("p, q", POINT_PAIRS)
def test_point_distance_matches_geod(p, q):
    expected = inv(*p, *q)
    got = distance_m(Point(p), Point(q))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # symmetric, and the centroid distance of points is the same number
    assert distance_m(Point(q), Point(p)) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert centroid_distance_m(Point(p), Point(q)) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_same_point_is_zero():
    assert distance_m(Point(10, 50), Point(10, 50)) == 0.0


def test_antimeridian_points_are_2_km_apart_not_40000():
    d = distance_m(Point(179.99, 0), Point(-179.99, 0))
    assert 2_200 < d < 2_250
    assert d == pytest.approx(inv(179.99, 0, -179.99, 0), rel=1e-9)


def test_empty_geometry_is_refused():
    with pytest.raises(ValueError, match="empty"):
        distance_m(Point(), Point(0, 0))


# ---------------------------------------------------------------------------------------
# polygon / line to point: nearest points known analytically
# ---------------------------------------------------------------------------------------
# (box, point, nearest point on the box): the point lies on the perpendicular bisector of
# one edge, so by symmetry the nearest point is that edge's geodesic midpoint; or the point
# lies due east/west of a meridian edge (a meridian is a geodesic) at the same latitude.
def _north_of_top_edge(lon0, lat0, lon1, lat1, dlat):
    lon_mid = (lon0 + lon1) / 2
    near = geodesic_midpoint(lon0, lat1, lon1, lat1)
    return box(lon0, lat0, lon1, lat1), (lon_mid, lat1 + dlat), near


BOX_POINT_CASES = [
    pytest.param(*_north_of_top_edge(10.0, 50.0, 10.01, 50.01, 0.05), id="mid-lat-north-of-top-edge"),
    pytest.param(*_north_of_top_edge(-70.2, -33.5, -70.1, -33.4, 0.02), id="south-hemisphere-north"),
    pytest.param(*_north_of_top_edge(0.0, 89.0, 1.0, 89.3, 0.2), id="near-pole-lat-89.5"),
    pytest.param(*_north_of_top_edge(20.0, -89.6, 30.0, -89.55, 0.3), id="near-south-pole"),
    pytest.param(*_north_of_top_edge(-0.5, -0.5, 0.5, 0.0, 0.5), id="equator"),
    # east of the east edge (a meridian) at mid latitude: nearest point at the same latitude
    pytest.param(box(5.99, 50.0, 5.999, 50.01), (6.001, 50.005), (5.999, 50.005), id="utm-zone-edge"),
    pytest.param(box(179.9, -0.1, 180.0, 0.1), (-179.95, 0.0), (180.0, 0.0), id="antimeridian-east"),
    pytest.param(
        MultiPolygon([box(179.9, -0.1, 180.0, 0.1), box(-180.0, -0.1, -179.9, 0.1)]),
        (-179.8, 0.0),
        (-179.9, 0.0),
        id="antimeridian-split-multipolygon",
    ),
    pytest.param(box(-180.0, 10.0, -179.95, 10.1), (179.97, 10.05), (-180.0, 10.05), id="antimeridian-west"),
]


@pytest.mark.parametrize("poly, pt, near", BOX_POINT_CASES)
def test_polygon_point_min_distance(poly, pt, near):
    expected = inv(*pt, *near)
    got = distance_m(poly, Point(pt))
    assert got == pytest.approx(expected, rel=REL)
    assert distance_m(Point(pt), poly) == pytest.approx(got, rel=1e-9)
    # never longer than the distance to a point that lies on the shape's boundary
    assert got <= expected * (1 + 1e-6)


def test_polygon_point_far_apart_thousands_of_km():
    # point 20 degrees north of the middle of the top edge of a 2-degree box at the equator
    poly = box(-1, -1, 1, 1)
    near = geodesic_midpoint(-1, 1, 1, 1)
    expected = inv(0, 21, *near)
    assert distance_m(poly, Point(0, 21)) == pytest.approx(expected, rel=REL)


def test_line_line_min_distance():
    # A: a meridian segment (a geodesic). B: starts 0.1 deg east of A at mid latitude and
    # goes further east, so B's west end is the nearest point of B, and its foot on the
    # meridian is (10, 50.5) to within a metre (second order).
    a = LineString([(10.0, 50.0), (10.0, 51.0)])
    b = LineString([(10.1, 50.5), (10.2, 50.5)])
    expected = inv(10.1, 50.5, 10.0, 50.5)
    got = distance_m(a, b)
    assert got == pytest.approx(expected, rel=REL)
    assert got <= expected * (1 + 1e-6)


def test_line_line_end_to_end():
    # two collinear equator segments with a gap: nearest points are the inner ends
    a = LineString([(0.0, 0.0), (1.0, 0.0)])
    b = LineString([(1.5, 0.0), (3.0, 0.0)])
    assert distance_m(a, b) == pytest.approx(inv(1.0, 0.0, 1.5, 0.0), rel=REL)


def test_multilinestring_nearest_part():
    ml = MultiLineString([[(0, 0), (0, 1)], [(5, 0), (5, 1)]])
    # a point on the equator 0.2 deg east of the second part: nearest is (5, 0)
    assert distance_m(ml, Point(5.2, 0)) == pytest.approx(inv(5.2, 0, 5, 0), rel=REL)


def test_polygon_polygon_across_utm_zone_edge():
    # facing meridian edges; they converge northward so the closest pair is the top corners
    a = box(5.99, 50.0, 5.999, 50.01)
    b = box(6.001, 50.0, 6.01, 50.01)
    expected = inv(5.999, 50.01, 6.001, 50.01)
    assert distance_m(a, b) == pytest.approx(expected, rel=REL)


def test_polygon_polygon_across_antimeridian():
    a = box(179.98, 0.0, 179.99, 0.01)
    b = box(-179.99, 0.0, -179.98, 0.01)
    expected = inv(179.99, 0.01, -179.99, 0.01)
    got = distance_m(a, b)
    assert got == pytest.approx(expected, rel=REL)
    assert got < 3_000


@pytest.mark.parametrize(
    "a, b",
    [
        pytest.param(box(0, 0, 1, 1), box(0.5, 0.5, 2, 2), id="overlapping-boxes"),
        pytest.param(box(0, 0, 1, 1), box(1, 0, 2, 1), id="touching-boxes"),
        pytest.param(box(0, 0, 1, 1), Point(0.5, 0.5), id="point-inside"),
        pytest.param(box(0, 0, 1, 1), Point(1, 0.5), id="point-on-edge"),
        pytest.param(LineString([(0, 0), (1, 1)]), LineString([(0, 1), (1, 0)]), id="crossing-lines"),
        pytest.param(box(0, 0, 1, 1), LineString([(-1, 0.5), (2, 0.5)]), id="line-through-box"),
        pytest.param(
            MultiPolygon([box(179.9, -0.1, 180.0, 0.1), box(-180.0, -0.1, -179.9, 0.1)]),
            Point(-179.95, 0.0),
            id="antimeridian-point-inside",
        ),
        pytest.param(box(179.9, -0.1, 180, 0.1), box(-180, -0.1, -179.9, 0.1), id="antimeridian-touching"),
    ],
)
def test_intersecting_geometries_are_zero_apart(a, b):
    assert distance_m(a, b) == 0.0
    assert distance_m(b, a) == 0.0


# ---------------------------------------------------------------------------------------
# centroids
# ---------------------------------------------------------------------------------------
def test_centroid_of_symmetric_shapes():
    # symmetric about the equator and about a meridian: centroid is the centre (to within
    # a few metres: the planar centroid is taken in an AEQD projection, an approximation)
    c = centroid_lonlat(box(-1, -1, 1, 1))
    assert c.x == pytest.approx(0.0, abs=1e-4) and c.y == pytest.approx(0.0, abs=1e-4)
    c = centroid_lonlat(LineString([(20, 0), (22, 0)]))
    assert c.x == pytest.approx(21.0, abs=1e-6) and c.y == pytest.approx(0.0, abs=1e-6)


def test_centroid_across_antimeridian_is_at_180_not_0():
    split = MultiPolygon([box(179.9, -0.1, 180.0, 0.1), box(-180.0, -0.1, -179.9, 0.1)])
    c = centroid_lonlat(split)
    assert abs(c.x) == pytest.approx(180.0, abs=1e-4)
    assert c.y == pytest.approx(0.0, abs=1e-4)


def test_centroid_distance_boxes():
    a, b = box(-1, -1, 1, 1), box(9, -1, 11, 1)
    assert centroid_distance_m(a, b) == pytest.approx(inv(0, 0, 10, 0), rel=REL)
    # min distance differs: the facing edges are 8 degrees apart (nearest on the equator-
    # symmetric edges is at the corners at |lat| = 1, where meridians converge)
    assert distance_m(a, b) == pytest.approx(inv(1, 1, 9, 1), rel=REL)
    assert distance_m(a, b) < centroid_distance_m(a, b)


def test_centroid_distance_across_antimeridian():
    a = LineString([(179.98, 0), (179.99, 0)])  # centroid (179.985, 0)
    b = LineString([(-179.99, 0), (-179.98, 0)])  # centroid (-179.985, 0)
    assert centroid_distance_m(a, b) == pytest.approx(inv(179.985, 0, -179.985, 0), rel=REL)


# ---------------------------------------------------------------------------------------
# bearings and compass names
# ---------------------------------------------------------------------------------------
BEARING_PAIRS = [
    ((0, 0), (0, 1)),
    ((0, 0), (1, 0)),
    ((0, 0), (0, -1)),
    ((0, 0), (-1, 0)),
    ((10, 50), (10.01, 50.01)),
    ((10, 50), (9.99, 49.99)),
    ((-73.99, 40.75), (-0.12, 51.5)),
    ((179.99, 0), (-179.99, 0)),
    ((-179.99, 0), (179.99, 0)),
    ((0, 89.5), (90, 89.5)),
    ((5.999, 50), (6.001, 50.001)),
]


@pytest.mark.parametrize("p, q", BEARING_PAIRS)
def test_bearing_matches_geod_forward_azimuth(p, q):
    az = G.inv(*p, *q)[0] % 360.0
    got = bearing_deg(Point(p), Point(q))
    assert 0.0 <= got < 360.0
    diff = abs((got - az + 180.0) % 360.0 - 180.0)
    assert diff < 1e-9


def test_bearing_cardinal_values():
    assert bearing_deg(Point(0, 0), Point(0, 1)) == pytest.approx(0.0, abs=1e-9)
    assert bearing_deg(Point(0, 0), Point(1, 0)) == pytest.approx(90.0, abs=1e-9)
    assert bearing_deg(Point(0, 0), Point(0, -1)) == pytest.approx(180.0, abs=1e-9)
    assert bearing_deg(Point(0, 0), Point(-1, 0)) == pytest.approx(270.0, abs=1e-9)
    # across the antimeridian: east, not west
    assert bearing_deg(Point(179.99, 0), Point(-179.99, 0)) == pytest.approx(90.0, abs=1e-6)


def test_bearing_between_polygon_centroids():
    a, b = box(-1, -1, 1, 1), box(-1, 9, 1, 11)  # centroids (0, 0) and (0, 10)
    assert bearing_deg(a, b) == pytest.approx(0.0, abs=1e-4)
    assert direction(a, b).compass == "N"


def test_bearing_of_coinciding_centroids_is_nan():
    assert math.isnan(bearing_deg(Point(1, 1), Point(1, 1)))
    poly = box(0, 0, 2, 2)
    assert math.isnan(bearing_deg(poly, poly))
    with pytest.raises(ValueError):
        compass_point(float("nan"))


@pytest.mark.parametrize(
    "az, name",
    [
        (0.0, "N"),
        (22.49, "N"),
        (22.5, "NE"),
        (45.0, "NE"),
        (67.49, "NE"),
        (67.5, "E"),
        (90.0, "E"),
        (112.5, "SE"),
        (157.49, "SE"),
        (157.5, "S"),
        (180.0, "S"),
        (202.5, "SW"),
        (247.5, "W"),
        (292.49, "W"),
        (292.5, "NW"),
        (337.49, "NW"),
        (337.5, "N"),
        (359.99, "N"),
        (360.0, "N"),
        (-10.0, "N"),
        (-22.6, "NW"),
        (450.0, "E"),
    ],
)
def test_compass_8_sector_boundaries(az, name):
    assert compass_point(az, 8) == name


@pytest.mark.parametrize(
    "az, name",
    [
        (0.0, "N"),
        (11.24, "N"),
        (11.25, "NNE"),
        (22.5, "NNE"),
        (33.74, "NNE"),
        (33.75, "NE"),
        (56.25, "ENE"),
        (78.75, "E"),
        (101.25, "ESE"),
        (123.75, "SE"),
        (146.25, "SSE"),
        (168.75, "S"),
        (191.25, "SSW"),
        (213.75, "SW"),
        (236.25, "WSW"),
        (258.75, "W"),
        (281.25, "WNW"),
        (303.75, "NW"),
        (326.25, "NNW"),
        (348.74, "NNW"),
        (348.75, "N"),
    ],
)
def test_compass_16_sector_boundaries(az, name):
    assert compass_point(az, 16) == name


def test_compass_sectors_are_centred_on_names():
    for i, name in enumerate(COMPASS_16):
        assert compass_point(i * 22.5, 16) == name
    for i, name in enumerate(COMPASS_8):
        assert compass_point(i * 45.0, 8) == name
        assert compass_point(i * 45.0 + 22.0, 8) == name
        assert compass_point(i * 45.0 - 22.0, 8) == name
    assert [compass_point(a, 4) for a in (0, 44.9, 45, 135, 225, 315)] == ["N", "N", "E", "S", "W", "N"]


def test_compass_points_argument_checked():
    with pytest.raises(ValueError, match="4, 8 or 16"):
        compass_point(10.0, 32)


def test_direction_returns_azimuth_and_name():
    d = direction(Point(0, 0), Point(1, 1), points=16)
    az = G.inv(0, 0, 1, 1)[0]
    assert d.azimuth_deg == pytest.approx(az, abs=1e-9)
    assert d.compass == "NE"


@pytest.mark.parametrize(
    "az, name, ok",
    [
        # cardinal names +-45
        (0.0, "N", True),
        (45.0, "N", True),
        (45.01, "N", False),
        (315.0, "N", True),
        (314.99, "N", False),
        (359.0, "N", True),
        (90.0, "E", True),
        (135.0, "E", True),
        (180.0, "S", True),
        (224.0, "S", True),
        (270.0, "W", True),
        (200.0, "W", False),
        # intercardinal +-22.5
        (45.0, "NE", True),
        (22.5, "NE", True),
        (67.5, "NE", True),
        (22.49, "NE", False),
        (67.51, "NE", False),
        (30.0, "NE", True),
        (70.0, "NE", False),
        (225.0, "SW", True),
        (315.0, "NW", True),
        (340.0, "NW", False),
        (135.0, "SE", True),
        # 16-point names +-11.25
        (22.5, "NNE", True),
        (11.25, "NNE", True),
        (33.75, "NNE", True),
        (34.0, "NNE", False),
        (350.0, "NNW", False),
        (337.5, "NNW", True),
        # case-insensitive
        (10.0, "n", True),
        (50.0, "ne", True),
    ],
)
def test_azimuth_matches(az, name, ok):
    assert azimuth_matches(az, name) is ok


def test_azimuth_matches_unknown_name():
    with pytest.raises(ValueError, match="compass"):
        azimuth_matches(10.0, "up")


# ---------------------------------------------------------------------------------------
# area and length
# ---------------------------------------------------------------------------------------
def geod_ring_area(coords) -> float:
    lons, lats = zip(*coords)
    return abs(G.polygon_area_perimeter(lons, lats)[0])


def geod_ring_perimeter(coords) -> float:
    lons, lats = zip(*coords)
    return G.polygon_area_perimeter(lons, lats)[1]


def test_area_of_box():
    coords = [(10, 50), (10.1, 50), (10.1, 50.1), (10, 50.1)]
    assert area_m2(Polygon(coords)) == pytest.approx(geod_ring_area(coords), rel=1e-9)
    # orientation does not matter
    assert area_m2(Polygon(coords[::-1])) == pytest.approx(geod_ring_area(coords), rel=1e-9)


def test_area_with_hole():
    outer = [(10, 50), (10.1, 50), (10.1, 50.1), (10, 50.1)]
    hole = [(10.02, 50.02), (10.05, 50.02), (10.05, 50.06), (10.02, 50.06)]
    expected = geod_ring_area(outer) - geod_ring_area(hole)
    assert area_m2(Polygon(outer, [hole])) == pytest.approx(expected, rel=1e-9)
    # hole orientation given the "wrong" way round still subtracts
    assert area_m2(Polygon(outer, [hole[::-1]])) == pytest.approx(expected, rel=1e-9)


def test_multipolygon_area_sums_parts():
    p1 = [(0, 0), (1, 0), (1, 1), (0, 1)]
    p2 = [(10, 60), (10.5, 60), (10.5, 60.2), (10, 60.2)]
    hole = [(10.1, 60.05), (10.2, 60.05), (10.2, 60.1), (10.1, 60.1)]
    mp = MultiPolygon([Polygon(p1), Polygon(p2, [hole])])
    expected = geod_ring_area(p1) + geod_ring_area(p2) - geod_ring_area(hole)
    assert area_m2(mp) == pytest.approx(expected, rel=1e-9)


def test_points_and_lines_have_zero_area():
    assert area_m2(Point(0, 0)) == 0.0
    assert area_m2(LineString([(0, 0), (1, 1)])) == 0.0
    assert area_m2(MultiPoint([(0, 0), (1, 1)])) == 0.0


def test_area_near_pole():
    coords = [(0, 89.5), (90, 89.5), (180, 89.5), (270, 89.5)]
    lon_lat = [(0, 89.5), (90, 89.5), (180, 89.5), (-90, 89.5)]
    assert area_m2(Polygon(lon_lat)) == pytest.approx(geod_ring_area(coords), rel=1e-9)


def test_antimeridian_split_multipolygon_area():
    split = MultiPolygon([box(179.5, -1, 180, 1), box(-180, -1, -179.5, 1)])
    # the ellipsoid is symmetric about its axis: the same box centred on lon 0
    expected = geod_ring_area([(-0.5, -1), (0.5, -1), (0.5, 1), (-0.5, 1)])
    assert area_m2(split) == pytest.approx(expected, rel=REL)


def test_line_length_is_sum_of_geodesic_segments():
    pts = [(10, 50), (10.5, 50.2), (11, 49.9), (11.2, 51)]
    expected = sum(inv(*pts[i], *pts[i + 1]) for i in range(len(pts) - 1))
    assert length_m(LineString(pts)) == pytest.approx(expected, rel=1e-9)


def test_multiline_length_sums_parts():
    a = [(0, 0), (0, 1)]
    b = [(179.9, 10), (-179.9, 10)]  # crosses the antimeridian the short way
    expected = inv(*a[0], *a[1]) + inv(*b[0], *b[1])
    assert length_m(MultiLineString([a, b])) == pytest.approx(expected, rel=1e-9)
    assert inv(*b[0], *b[1]) < 30_000


def test_polygon_perimeter_counts_every_ring():
    outer = [(10, 50), (10.1, 50), (10.1, 50.1), (10, 50.1)]
    hole = [(10.02, 50.02), (10.05, 50.02), (10.05, 50.06), (10.02, 50.06)]
    expected = geod_ring_perimeter(outer) + geod_ring_perimeter(hole)
    assert length_m(Polygon(outer, [hole])) == pytest.approx(expected, rel=1e-9)


def test_point_length_is_zero():
    assert length_m(Point(1, 1)) == 0.0


# ---------------------------------------------------------------------------------------
# the same objects in EPSG:4326 and in UTM give the same metres through the executor
# ---------------------------------------------------------------------------------------
UTM33 = CRS.from_epsg(32633)
LONLAT_OBJECTS = {
    "a": box(15.0, 48.0, 15.01, 48.01),
    "b": box(15.05, 48.0, 15.06, 48.01),
    "p": Point(15.1, 48.2),
    "r": LineString([(14.9, 47.9), (15.0, 48.1), (15.2, 48.15)]),
    "h": Polygon(
        [(15.3, 48.3), (15.4, 48.3), (15.4, 48.4), (15.3, 48.4)],
        [[(15.32, 48.32), (15.35, 48.32), (15.35, 48.36), (15.32, 48.36)]],
    ),
}


def _scenes():
    ids = list(LONLAT_OBJECTS)
    labels = ["building", "building", "well", "river", "park"]
    geoms = list(LONLAT_OBJECTS.values())
    tr = Transformer.from_crs("EPSG:4326", UTM33, always_xy=True)

    def fwd(c):
        x, y = tr.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    utm = [shapely.transform(g, fwd) for g in geoms]
    return Scene(ids, labels, geoms, "EPSG:4326"), Scene(ids, labels, utm, UTM33)


def _run(scene, *steps):
    prog = list(steps) + [{"id": "out", "op": "answer", "args": {"value": "$x"}}]
    ans = execute(prog, scene)
    assert not ans.abstained, ans.reason
    return ans.value


def _obj(sid, oid):
    return {"id": sid, "op": "object", "args": {"id": oid}}


@pytest.mark.parametrize(
    "steps, expected",
    [
        pytest.param(
            [_obj("a", "a"), _obj("b", "b"), {"id": "x", "op": "distance", "args": {"a": "$a", "b": "$b"}}],
            # facing meridian edges converge northward: closest at the top corners
            inv(15.01, 48.01, 15.05, 48.01),
            id="distance-min",
        ),
        pytest.param(
            [
                _obj("a", "a"),
                _obj("p", "p"),
                {"id": "x", "op": "distance", "args": {"a": "$a", "b": "$p", "mode": "centroid"}},
            ],
            inv(15.005, 48.005, 15.1, 48.2),
            id="distance-centroid",
        ),
        pytest.param(
            [_obj("r", "r"), {"id": "x", "op": "length", "args": {"of": "$r"}}],
            inv(14.9, 47.9, 15.0, 48.1) + inv(15.0, 48.1, 15.2, 48.15),
            id="length",
        ),
        pytest.param(
            [_obj("h", "h"), {"id": "x", "op": "area", "args": {"of": "$h"}}],
            geod_ring_area([(15.3, 48.3), (15.4, 48.3), (15.4, 48.4), (15.3, 48.4)])
            - geod_ring_area([(15.32, 48.32), (15.35, 48.32), (15.35, 48.36), (15.32, 48.36)]),
            id="area-with-hole",
        ),
        pytest.param(
            [_obj("h", "h"), {"id": "x", "op": "length", "args": {"of": "$h"}}],
            geod_ring_perimeter([(15.3, 48.3), (15.4, 48.3), (15.4, 48.4), (15.3, 48.4)])
            + geod_ring_perimeter([(15.32, 48.32), (15.35, 48.32), (15.35, 48.36), (15.32, 48.36)]),
            id="perimeter",
        ),
    ],
)
def test_lonlat_and_utm_scenes_agree(steps, expected):
    ll, utm = _scenes()
    got_ll = _run(ll, *steps)
    got_utm = _run(utm, *steps)
    assert got_ll == pytest.approx(expected, rel=REL)
    assert got_utm == pytest.approx(expected, rel=REL)
    assert got_utm == pytest.approx(got_ll, rel=REL)


def test_lonlat_and_utm_scenes_agree_on_bearing():
    ll, utm = _scenes()
    steps = [_obj("a", "a"), _obj("p", "p"), {"id": "x", "op": "bearing", "args": {"a": "$a", "b": "$p"}}]
    az = G.inv(15.005, 48.005, 15.1, 48.2)[0] % 360
    assert _run(ll, *steps) == pytest.approx(az, abs=0.05)
    assert _run(utm, *steps) == pytest.approx(az, abs=0.05)


def test_utm_literal_geometry_in_lonlat_is_reprojected():
    _, utm = _scenes()
    steps = [
        _obj("p", "p"),
        {"id": "g", "op": "geometry", "args": {"wkt": "POINT (15.1 48.3)"}},
        {"id": "x", "op": "distance", "args": {"a": "$p", "b": "$g", "unit": "km"}},
    ]
    assert _run(utm, *steps) == pytest.approx(inv(15.1, 48.2, 15.1, 48.3) / 1000, rel=1e-6)


@pytest.mark.parametrize("s", [0.5, 5.0, 50.0, 5_000.0])
@pytest.mark.parametrize("lat", [0.5, 1.5, 2.5])
def test_small_distance_to_a_long_edge(lat, s):
    # a point `s` metres due east of the east edge (a meridian, 333 km long) of a large box:
    # the geodesic leaving a meridian at azimuth 90 is perpendicular to it, so the minimum
    # distance is exactly `s` (the nearest point is the start point on the edge)
    lon, la, _ = G.fwd(2.0, lat, 90.0, s)
    assert distance_m(box(0, 0, 2, 3), Point(lon, la)) == pytest.approx(s, rel=REL)


@pytest.mark.parametrize("seed", range(6))
def test_area_equals_pyproj_geometry_area_to_the_last_bit(seed):
    """area_m2 reads ring coordinates in bulk; the area is still pyproj's own
    ``Geod.geometry_area_perimeter`` of the oriented polygon, bit for bit (holes, multi-part,
    either ring orientation, near the poles and across the antimeridian)."""
    from shapely.geometry import polygon as shp_polygon

    from georeason.geo.vector.measure import area_m2

    geod = Geod(ellps="WGS84")
    rng = np.random.default_rng(seed)
    lon0 = [10.0, 179.9, -60.0, 0.0, 120.0, -179.95][seed]
    lat0 = [45.0, -10.0, 78.0, 0.0, -65.0, 30.0][seed]
    parts = []
    for _ in range(4):
        c = shapely.Point(lon0 + rng.uniform(-0.05, 0.05), lat0 + rng.uniform(-0.05, 0.05))
        outer = c.buffer(rng.uniform(0.004, 0.02), quad_segs=int(rng.integers(2, 12)))
        holes = [c.buffer(0.001 * (k + 1), quad_segs=3).exterior for k in range(int(rng.integers(0, 3)))]
        poly = Polygon(outer.exterior.coords[::-1] if rng.random() < 0.5 else outer.exterior.coords, holes)
        if poly.is_valid:
            parts.append(poly)
    want = sum(abs(geod.geometry_area_perimeter(shp_polygon.orient(p, 1.0))[0]) for p in parts)
    assert area_m2(MultiPolygon(parts)) == want
    for p in parts:
        assert area_m2(p) == abs(geod.geometry_area_perimeter(shp_polygon.orient(p, 1.0))[0])
