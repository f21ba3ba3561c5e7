"""English questions answered end to end on a hand-built scene.

The scene is laid out so that every answer is known by construction: buildings at chosen
offsets from a well, two lakes of very different size, a short river along a parallel, a
park with a hole, a two-part forest. Expected metres come from :class:`pyproj.Geod` on the
known nearest points; expected ids and counts from the layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from shapely import LineString, MultiPolygon, Point, Polygon, box

from georeason.errors import (
    GeometryRepairedWarning,
    InputError,
    InvalidGeometryError,
    MissingCRSError,
    QuestionParseError,
)
from georeason.geo.language.english import SUPPORTED_FORMS, ask, compile_question
from georeason.geo.vector.scene import Scene

G = Geod(ellps="WGS84")
REL = 1e-3


def inv(lon1, lat1, lon2, lat2) -> float:
    return G.inv(lon1, lat1, lon2, lat2)[2]


def az(lon1, lat1, lon2, lat2) -> float:
    return G.inv(lon1, lat1, lon2, lat2)[0] % 360.0


def ring_area(b) -> float:
    x, y = b.exterior.coords.xy
    return abs(G.polygon_area_perimeter(list(x), list(y))[0])


def ring_perimeter(b) -> float:
    x, y = b.exterior.coords.xy
    return G.polygon_area_perimeter(list(x), list(y))[1]


def geodesic_midpoint(lon1, lat1, lon2, lat2):
    a, _, d = G.inv(lon1, lat1, lon2, lat2)
    lon, lat, _ = G.fwd(lon1, lat1, a, d / 2)
    return lon, lat


def circ_diff(a, b) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# ---------------------------------------------------------------------------------------
# the scene
# ---------------------------------------------------------------------------------------
W1 = (10.0, 50.0)
# buildings: 0.0002-degree squares; nearest point to the well given alongside
B1 = box(10.0019, 49.9999, 10.0021, 50.0001)  # east,  nearest (10.0019, 50.0)   ~136 m
B2 = box(9.9999, 50.0109, 10.0001, 50.0111)  # north, nearest (10.0, 50.0109)   ~1.2 km
B3 = box(9.9479, 49.9999, 9.9481, 50.0001)  # west,  nearest (9.9481, 50.0)    ~3.7 km
B4 = box(9.9999, 49.8999, 10.0001, 49.9001)  # south, nearest (10.0, 49.9001)   ~11 km
SHED = box(10.0021, 49.9999, 10.0023, 50.0001)  # shares B1's east edge
LAKE_BIG = box(10.02, 50.02, 10.05, 50.04)
LAKE_SMALL = box(10.06, 49.98, 10.065, 49.985)
WETLAND = box(10.045, 50.035, 10.055, 50.045)  # overlaps LAKE_BIG's NE corner
RIVER = LineString([(9.98, 50.005), (10.02, 50.005)])
ROAD1 = LineString([(10.003, 49.995), (10.003, 50.015)])  # crosses the river
ROAD2 = LineString([(10.2, 50.2), (10.2, 50.21)])
ROAD3 = LineString([(10.3, 50.3), (10.305, 50.3)])
PARK_OUT = box(9.97, 49.97, 9.99, 49.99)
PARK_HOLE = box(9.975, 49.975, 9.985, 49.985)
PARK = Polygon(PARK_OUT.exterior.coords, [PARK_HOLE.exterior.coords])
STATUE = (9.98, 49.98)  # in the park's hole
BENCH = (9.972, 49.972)  # in the park
FOREST_A, FOREST_B = box(10.1, 50.1, 10.11, 50.11), box(10.12, 50.1, 10.13, 50.11)
FOREST = MultiPolygon([FOREST_A, FOREST_B])
# masts at known azimuths from the well, 1 km away
MAST_AZ = {"m30": 30.0, "m40": 40.0, "m50": 50.0, "m70": 70.0}
MASTS = {k: G.fwd(*W1, a, 1000.0)[:2] for k, a in MAST_AZ.items()}

OBJECTS = [
    ("w1", "well", Point(W1)),
    ("b1", "building", B1),
    ("b2", "building", B2),
    ("b3", "building", B3),
    ("b4", "building", B4),
    ("sh1", "shed", SHED),
    ("lake-big", "lake", LAKE_BIG),
    ("lake-small", "lake", LAKE_SMALL),
    ("wl1", "wetland", WETLAND),
    ("r1", "river", RIVER),
    ("road-1", "road", ROAD1),
    ("road-2", "road", ROAD2),
    ("road-3", "road", ROAD3),
    ("park", "park", PARK),
    ("statue", "statue", Point(STATUE)),
    ("bench", "bench", Point(BENCH)),
    ("f1", "forest", FOREST),
] + [(k, "mast", Point(v)) for k, v in MASTS.items()]


@pytest.fixture(scope="module")
def scene():
    ids, labels, geoms = zip(*OBJECTS)
    return Scene(ids, labels, geoms, "EPSG:4326", source="hand-built")


def value(scene, question, **kw):
    ans = ask(question, scene, **kw)
    assert not ans.abstained, f"{question!r} abstained: {ans.reason}"
    return ans


# ---------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------
D_W1_B1 = inv(*W1, 10.0019, 50.0)


@pytest.mark.parametrize(
    "question",
    [
        "What is the distance between #w1 and #b1?",
        "What is the distance between #b1 and #w1?",
        "what's the distance between object w1 and object b1",
        "Distance from #w1 to #b1?",
        "What is the minimum distance from #b1 to #w1?",
        "How far is #b1 from #w1?",
        "How far away is #b1 from #w1?",
        "How far apart are #w1 and #b1?",
        "How far is it from #w1 to #b1?",
        "How far is building #b1 from the well?",
        "How far is #b1 from the region POINT (10 50)?",
        "How far is #b1 from (10, 50)?",
    ],
)
def test_distance_paraphrases(scene, question):
    ans = value(scene, question)
    assert ans.kind == "scalar" and ans.unit == "m"
    assert ans.value == pytest.approx(D_W1_B1, rel=REL)
    assert 130 < ans.value < 140


@pytest.mark.parametrize(
    "question",
    [
        "What is the distance between #w1 and #b1 in km?",
        "How far is #b1 from #w1 in kilometres?",
        "How far is #b1 from #w1, in kilometers?",
    ],
)
def test_distance_in_km(scene, question):
    ans = value(scene, question)
    assert ans.unit == "km"
    assert ans.value == pytest.approx(D_W1_B1 / 1000, rel=REL)


@pytest.mark.parametrize(
    "oid, near",
    [("b2", (10.0, 50.0109)), ("b3", (9.9481, 50.0)), ("b4", (10.0, 49.9001))],
)
def test_distance_to_each_building(scene, oid, near):
    assert value(scene, f"How far is #{oid} from #w1?").value == pytest.approx(inv(*W1, *near), rel=REL)


def test_distance_between_centres(scene):
    ans = value(scene, "What is the distance between the centres of #w1 and #b2?")
    assert ans.value == pytest.approx(inv(*W1, 10.0, 50.011), rel=REL)
    assert ans.details["mode"] == "centroid"
    ans = value(scene, "How far is the centre of #b1 from #w1?")
    assert ans.value == pytest.approx(inv(*W1, 10.002, 50.0), rel=REL)


def test_distance_to_the_river(scene):
    # the well lies on the perpendicular bisector of the river segment: the nearest point
    # is the segment's geodesic midpoint
    mid = geodesic_midpoint(9.98, 50.005, 10.02, 50.005)
    assert value(scene, "How far is the river from #w1?").value == pytest.approx(inv(*W1, *mid), rel=REL)


def test_distance_to_wkt_and_coordinate_list(scene):
    assert value(scene, "How far is #w1 from POINT (10 50.02)?").value == pytest.approx(
        inv(*W1, 10, 50.02), rel=1e-6
    )
    # polyline given as a coordinate list: nearest point is its east end
    ans = value(scene, "What is the distance between #w1 and [[9.9, 50.0], [9.95, 50.0]]?")
    assert ans.value == pytest.approx(inv(*W1, 9.95, 50.0), rel=REL)
    # a bbox: nearest point on its west edge (a meridian) at the well's latitude
    ans = value(scene, "How far is #w1 from [10.01, 49.99, 10.02, 50.01]?")
    assert ans.value == pytest.approx(inv(*W1, 10.01, 50.0), rel=REL)


def test_distance_to_geometry_in_another_crs(scene):
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    x, y = utm.transform(10.0, 50.02)
    ans = value(scene, f"How far is #w1 from POINT ({x:.3f} {y:.3f}) (EPSG:32632)?")
    assert ans.value == pytest.approx(inv(*W1, 10.0, 50.02), rel=1e-6)


def test_intersecting_objects_are_zero_apart(scene):
    assert value(scene, "How far is #b1 from #sh1?").value == 0.0
    assert value(scene, "What is the distance between the river and #road-1?").value == 0.0


# ---------------------------------------------------------------------------------------
# direction and bearing
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question, expected",
    [
        ("In which direction is #b1 from #w1?", "E"),
        ("In which direction is #b2 from #w1?", "N"),
        ("In which direction is #b3 from #w1?", "W"),
        ("Which direction is #b4 from #w1?", "S"),
        ("What is the direction from #w1 to #m30?", "NE"),
        ("What is the direction of #w1 from #m30?", "SW"),
        ("What is the 16-point direction from #w1 to #m30?", "NNE"),
        ("In which 16-point direction is #m70 from #w1?", "ENE"),
        ("Where is #b1 relative to #w1?", "E"),
        ("In which direction is #w1 from #b1?", "W"),
    ],
)
def test_direction(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "categorical"
    assert ans.value == expected


@pytest.mark.parametrize("mast", list(MAST_AZ))
def test_bearing_to_masts(scene, mast):
    ans = value(scene, f"What is the bearing from #w1 to #{mast}?")
    assert ans.unit == "deg"
    assert ans.value == pytest.approx(MAST_AZ[mast], abs=1e-6)
    back = value(scene, f"What is the azimuth of #w1 from #{mast}?").value
    assert back == pytest.approx(az(*MASTS[mast], *W1), abs=1e-6)


def test_bearing_between_polygons(scene):
    got = value(scene, "What is the bearing from #w1 to #b2?").value
    assert 0.0 <= got < 360.0
    assert circ_diff(got, az(*W1, 10.0, 50.011)) < 0.05
    got = value(scene, "What is the bearing from #b1 to #b3?").value
    assert circ_diff(got, az(10.002, 50.0, 9.948, 50.0)) < 0.05


@pytest.mark.parametrize(
    "question, expected",
    [
        # cardinal names: +-45 degrees
        ("Is #m40 north of #w1?", True),
        ("Is #m50 north of #w1?", False),
        ("Is #m70 east of #w1?", True),
        ("Is #b1 east of #w1?", True),
        ("Is #b1 west of #w1?", False),
        ("Is #b4 south of #w1?", True),
        # intercardinal names: +-22.5 degrees
        ("Is #m30 northeast of #w1?", True),
        ("Is #m30 to the north-east of #w1?", True),
        ("Is #m70 northeast of #w1?", False),
        ("Is #m50 NE of #w1?", True),
        ("Is #w1 southwest of #m30?", True),
        ("Does #w1 lie to the south-west of #m50?", True),
        ("Is #w1 northwest of #m30?", False),
        # 16-point names: +-11.25 degrees
        ("Is #m30 NNE of #w1?", True),
        ("Is #m40 NNE of #w1?", False),
        ("Is #m70 ENE of #w1?", True),
    ],
)
def test_is_direction(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "boolean"
    assert ans.value is expected


# ---------------------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question, pair, expected",
    [
        ("What is the topological relation between #bench and #park?", (Point(BENCH), PARK), "within"),
        ("What is the relation between #park and #bench?", (PARK, Point(BENCH)), "contains"),
        ("What is the relationship between #statue and #park?", (Point(STATUE), PARK), "disjoint"),
        ("What is the spatial relation between #b1 and #sh1?", (B1, SHED), "touches"),
        ("What is the relation between #road-1 and the river?", (ROAD1, RIVER), "crosses"),
        ("How does #lake-big relate to #wl1?", (LAKE_BIG, WETLAND), "overlaps"),
        ("What is the relation of #b1 to #b1?", (B1, B1), "equals"),
        ("What is the DE-9IM relation between #w1 and #b1?", (Point(W1), B1), "disjoint"),
    ],
)
def test_relation(scene, question, pair, expected):
    ans = value(scene, question)
    assert ans.kind == "categorical"
    assert ans.value == expected
    assert ans.details["de9im"] == shapely.relate(*pair)


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Is #bench inside #park?", True),
        ("Is #bench within #park?", True),
        ("Is #statue inside #park?", False),  # in the hole
        ("Is #statue completely contained in #park?", False),
        ("Is #statue disjoint from #park?", True),
        ("Does #park contain #bench?", True),
        ("Does #park contain #statue?", False),
        ("Does #park cover #bench?", True),
        ("Does #road-1 cross the river?", True),
        ("Does the river intersect #road-1?", True),
        ("Does #b1 touch #sh1?", True),
        ("Does #b1 overlap #sh1?", False),
        ("Does #lake-big overlap #wl1?", True),
        ("Do #b1 and #sh1 touch?", True),
        ("Do #b1 and #b2 intersect?", False),
        ("Are #b1 and #b2 disjoint?", True),
        ("Are #b1 and #sh1 the same?", False),
        ("Is #b1 equal to #b1?", True),
        ("Is #b1 covered by #park?", False),
        ("Is the largest lake within #wl1?", False),
    ],
)
def test_predicates(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "boolean"
    assert ans.value is expected


# ---------------------------------------------------------------------------------------
# counts and sets
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question, expected",
    [
        ("How many buildings are within 500 m of #w1?", 1),
        ("How many buildings are within 2 km of #w1?", 2),
        ("How many buildings are within 5 km of #w1?", 3),
        ("How many buildings are within 20 km of #w1?", 4),
        ("How many buildings are within 1000 feet of #w1?", 1),  # 304.8 m
        ("How many buildings are within 3 miles of #w1?", 3),  # 4828 m
        ("How many buildings are within 137 m of #w1?", 1),
        ("How many buildings are within 135 m of #w1?", 0),
        ("How many buildings are there within 1 km of the river?", 2),
        ("How many buildings are within 0 m of #sh1?", 1),  # b1 touches the shed
        (
            "How many buildings are inside the region POLYGON ((9.99 49.99, 10.01 49.99, 10.01 50.02, 9.99 50.02, 9.99 49.99))?",
            2,
        ),
        ("How many buildings are inside [9.9, 49.95, 10.1, 50.05]?", 3),
        ("How many benches are inside #park?", 1),
        ("How many statues are inside #park?", 0),
        ("How many lakes are there?", 2),
        ("How many lakes?", 2),
        ("How many lakes are in the image?", 2),
        ("How many buildings are there in the scene?", 4),
        ("Count the buildings", 4),
        ("What is the number of masts?", 4),
        ("How many masts are within 1.0001 km of #w1?", 4),
    ],
)
def test_counts(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "count"
    assert ans.value == expected


def test_count_threshold_is_geodesic(scene):
    # b1's nearest point is D_W1_B1 (~136.4 m) away: thresholds either side of it
    below, above = D_W1_B1 * 0.999, D_W1_B1 * 1.001
    assert value(scene, f"How many buildings are within {below:.3f} m of #w1?").value == 0
    assert value(scene, f"How many buildings are within {above:.3f} m of #w1?").value == 1


def test_show_within_sorted_by_distance(scene):
    ans = value(scene, "Show all buildings within 5 km of #w1.")
    assert ans.value == ["b1", "b2", "b3"]
    assert ans.kind == "region"
    dist = ans.details["distances_m"]
    assert dist["b1"] == pytest.approx(D_W1_B1, rel=REL)
    assert dist["b2"] == pytest.approx(inv(*W1, 10.0, 50.0109), rel=REL)
    assert value(scene, "Which buildings are within 2 km of #w1?").value == ["b1", "b2"]
    assert value(scene, "List the buildings within 10 m of #w1").value == []


def test_show_inside(scene):
    assert value(scene, "Show all buildings inside [9.9, 49.95, 10.1, 50.05]").value == ["b1", "b2", "b3"]
    assert value(scene, "Which masts are inside the region [10.0, 50.0, 10.02, 50.01]?").value == [
        "m30",
        "m40",
        "m50",
        "m70",
    ]
    assert value(
        scene, "List all lakes within the region POLYGON ((10 50, 10.1 50, 10.1 50.1, 10 50.1, 10 50))"
    ).value == ["lake-big"]


# ---------------------------------------------------------------------------------------
# nearest / farthest and extremes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which building is nearest to #w1?", "b1"),
        ("Which building is closest to #w1?", "b1"),
        ("What is the closest building to #w1?", "b1"),
        ("Which building is farthest from #w1?", "b4"),
        ("Which building is the furthest from #w1?", "b4"),
        ("What is the most distant building from #w1?", "b4"),
        ("Which building is nearest to the largest lake?", "b2"),
        ("Which building is nearest to the river?", "b1"),
        ("Which lake is closest to #w1?", "lake-big"),
        ("Which lake is farthest from #w1?", "lake-small"),
    ],
)
def test_nearest_farthest(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "object"
    assert ans.value == expected


def test_nearest_tie_abstains(scene):
    # the four masts are all exactly 1 km from the well: no single answer
    ans = ask("Which mast is nearest to (10.0, 50.0)?", scene)
    assert ans.abstained and "equally" in ans.reason
    ans = ask("Which mast is farthest from #w1?", scene)
    assert ans.abstained


def test_nearest_reports_distance(scene):
    ans = value(scene, "Which building is nearest to #w1?")
    assert ans.details["distances_m"]["b1"] == pytest.approx(D_W1_B1, rel=REL)
    # the reference object is never its own nearest neighbour
    assert value(scene, "Which building is nearest to #b1?").value == "b2"


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which is the largest lake?", "lake-big"),
        ("Which is the biggest lake?", "lake-big"),
        ("Which lake is the largest?", "lake-big"),
        ("Which is the smallest lake?", "lake-small"),
        ("Find the largest lake", "lake-big"),
        ("Which is the longest road?", "road-1"),
        ("Which is the shortest road?", "road-3"),
        ("Which road is the longest?", "road-1"),
        # equal 0.0002-degree squares: the one nearest the equator is the largest
        ("Which is the largest building?", "b4"),
        ("Which is the smallest building?", "b2"),
    ],
)
def test_extremes(scene, question, expected):
    ans = value(scene, question)
    assert ans.kind == "object"
    assert ans.value == expected


# ---------------------------------------------------------------------------------------
# area and length
# ---------------------------------------------------------------------------------------
A_BIG = ring_area(LAKE_BIG)
A_SMALL = ring_area(LAKE_SMALL)


@pytest.mark.parametrize(
    "question, expected, unit",
    [
        ("What is the area of #lake-big?", A_BIG, "m2"),
        ("What is the area of the largest lake?", A_BIG, "m2"),
        ("What is the area of the largest lake in km2?", A_BIG / 1e6, "km2"),
        ("What is the area of #lake-big in square kilometres?", A_BIG / 1e6, "km2"),
        ("What is the area of #lake-big in hectares?", A_BIG / 1e4, "ha"),
        ("How big is the smallest lake?", A_SMALL, "m2"),
        ("How large is #lake-small in m2?", A_SMALL, "m2"),
        ("What is the area of #park?", ring_area(PARK_OUT) - ring_area(PARK_HOLE), "m2"),
        ("What is the area of #f1?", ring_area(FOREST_A) + ring_area(FOREST_B), "m2"),
        ("What is the area of the forest?", ring_area(FOREST_A) + ring_area(FOREST_B), "m2"),
        ("What is the area of [10.0, 50.0, 10.01, 50.01]?", ring_area(box(10.0, 50.0, 10.01, 50.01)), "m2"),
        (
            "What is the area of [[10, 50], [10.01, 50], [10.01, 50.01], [10, 50.01], [10, 50]]?",
            ring_area(box(10.0, 50.0, 10.01, 50.01)),
            "m2",
        ),
        ("What is the area of the lake at [10.06, 49.98, 10.065, 49.986]?", A_SMALL, "m2"),
        ("What is the area of #w1?", 0.0, "m2"),
    ],
)
def test_area(scene, question, expected, unit):
    ans = value(scene, question)
    assert ans.unit == unit
    assert ans.value == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize(
    "question, expected, unit",
    [
        ("What is the length of the river?", inv(9.98, 50.005, 10.02, 50.005), "m"),
        ("How long is the river?", inv(9.98, 50.005, 10.02, 50.005), "m"),
        ("How long is the river in km?", inv(9.98, 50.005, 10.02, 50.005) / 1000, "km"),
        ("What is the length of #road-1?", inv(10.003, 49.995, 10.003, 50.015), "m"),
        ("What is the length of the longest road?", inv(10.003, 49.995, 10.003, 50.015), "m"),
        ("What is the perimeter of #lake-big?", ring_perimeter(LAKE_BIG), "m"),
        ("What is the perimeter of #park?", ring_perimeter(PARK_OUT) + ring_perimeter(PARK_HOLE), "m"),
        (
            "How long is the line [[10, 50], [10, 50.1], [10.1, 50.1]]?",
            inv(10, 50, 10, 50.1) + inv(10, 50.1, 10.1, 50.1),
            "m",
        ),
        (
            "What is the length of the polyline [[10, 50], [10.1, 50]] in km?",
            inv(10, 50, 10.1, 50) / 1000,
            "km",
        ),
    ],
)
def test_length(scene, question, expected, unit):
    ans = value(scene, question)
    assert ans.unit == unit
    assert ans.value == pytest.approx(expected, rel=REL)


def test_total_area(scene):
    assert value(scene, "What is the total area of lakes?").value == pytest.approx(A_BIG + A_SMALL, rel=REL)
    assert value(scene, "What is the total area covered by all the lakes in km2?").value == pytest.approx(
        (A_BIG + A_SMALL) / 1e6, rel=REL
    )
    # the region cuts the big lake at lon 10.035 and misses the small one
    clipped = ring_area(box(10.02, 50.02, 10.035, 50.04))
    ans = value(scene, "What is the total area of lakes inside [10.0, 50.0, 10.035, 50.05]?")
    assert ans.value == pytest.approx(clipped, rel=REL)
    ans = value(
        scene, "What is the total area of the lakes within the region [10.0, 49.9, 10.1, 50.1] in hectares?"
    )
    assert ans.unit == "ha"
    assert ans.value == pytest.approx((A_BIG + A_SMALL) / 1e4, rel=REL)


def test_total_area_counts_overlap_once(scene):
    # area of a set (lake-big and the overlapping wetland): their union
    steps = [
        {"id": "s", "op": "select", "args": {"ids": ["lake-big", "wl1"]}},
        {"id": "x", "op": "area", "args": {"of": "$s"}},
        {"id": "out", "op": "answer", "args": {"value": "$x"}},
    ]
    from georeason.geo.language.executor import execute

    overlap = ring_area(box(10.045, 50.035, 10.05, 50.04))
    expected = A_BIG + ring_area(WETLAND) - overlap
    assert execute(steps, scene).value == pytest.approx(expected, rel=REL)


# ---------------------------------------------------------------------------------------
# references: the <class> at <geometry>, pixels
# ---------------------------------------------------------------------------------------
def test_the_class_at_bbox_picks_best_overlap(scene):
    ans = value(scene, "How far is the lake at [10.06, 49.98, 10.065, 49.986] from #w1?")
    assert ans.value == pytest.approx(inv(*W1, 10.06, 49.985), rel=REL)
    assert "lake-small" in {e.id for e in ans.evidence}


def test_the_class_at_bbox_barely_overlapping_abstains(scene):
    ans = ask("What is the area of the lake at [10.064, 49.984, 10.07, 49.99]?", scene)
    assert ans.abstained
    assert "IoU" in ans.reason and "lake-small" in ans.reason


def test_the_class_at_bbox_overlapping_nothing_abstains(scene):
    ans = ask("What is the area of the lake at [11, 51, 11.1, 51.1]?", scene)
    assert ans.abstained


AFF = Affine(0.0001, 0.0, 9.9, 0.0, -0.0001, 50.1)  # lon/lat raster, 0.0001-degree pixels


def _apply(aff, col, row):
    return aff.a * col + aff.b * row + aff.c, aff.d * col + aff.e * row + aff.f


def _pixel_fn(aff):
    def fn(c):
        x, y = _apply(aff, c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    return fn


def test_pixel_coordinates(scene):
    pixel = (_pixel_fn(AFF), CRS.from_epsg(4326))
    # column 1000, row 800 -> lon 10.0, lat 50.02
    ans = value(scene, "How far is #w1 from (1000, 800) in pixels?", pixel=pixel)
    assert ans.value == pytest.approx(inv(*W1, 10.0, 50.02), rel=1e-6)
    ans = value(scene, "What is the area of [1000, 900, 1100, 1000] in pixels?", pixel=pixel)
    assert ans.value == pytest.approx(ring_area(box(10.0, 50.0, 10.01, 50.01)), rel=REL)
    ans = value(
        scene,
        "How many buildings are inside the region [900, 800, 1100, 1100] in pixel coordinates?",
        pixel=pixel,
    )
    assert ans.value == 2  # lon 9.99..10.01, lat 49.99..50.02: b1, b2


def test_pixel_coordinates_of_a_utm_raster(scene):
    utm = CRS.from_epsg(32632)
    tr = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    aff = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_600_000.0)
    x, y = _apply(aff, 250, 4000)
    lon, lat = tr.transform(x, y)
    ans = value(scene, "How far is #w1 from (250, 4000) in pixels?", pixel=(_pixel_fn(aff), utm))
    assert ans.value == pytest.approx(inv(*W1, lon, lat), rel=1e-6)


def test_pixel_coordinates_without_raster_is_an_input_error(scene):
    with pytest.raises(InputError, match="pixel"):
        ask("How far is #w1 from (1000, 800) in pixels?", scene)


# ---------------------------------------------------------------------------------------
# abstentions and parse errors
# ---------------------------------------------------------------------------------------
def test_ambiguous_class_abstains(scene):
    ans = ask("How far is the lake from #w1?", scene)
    assert ans.abstained and ans.value is None
    assert "2 objects match" in ans.reason and "lake-big" in ans.reason
    assert ans.kind == "scalar"


def test_unknown_id_abstains(scene):
    ans = ask("How far is #nope from #w1?", scene)
    assert ans.abstained
    assert "'nope'" in ans.reason


def test_unknown_class_abstains(scene):
    ans = ask("Which volcano is nearest to #w1?", scene)
    assert ans.abstained and "volcano" in ans.reason
    assert ans.kind == "object"
    ans = ask("How many volcanoes are there?", scene)
    assert ans.abstained


def test_selector_on_unknown_class_abstains(scene):
    assert ask("What is the area of the largest crater?", scene).abstained


@pytest.mark.parametrize("question", ["Tell me a joke", "Why is the sky blue?", "distance", ""])
def test_unparseable_question(question):
    with pytest.raises(QuestionParseError) as info:
        compile_question(question)
    msg = str(info.value)
    assert "Supported forms" in msg
    for form in SUPPORTED_FORMS:
        assert form in msg


def test_unparseable_question_is_a_value_error(scene):
    with pytest.raises(ValueError):
        ask("Please summarise the image", scene)


# ---------------------------------------------------------------------------------------
# the antimeridian
# ---------------------------------------------------------------------------------------
ISLAND = MultiPolygon([box(179.9, -0.1, 180.0, 0.1), box(-180.0, -0.1, -179.9, 0.1)])


@pytest.fixture(scope="module")
def pacific():
    return Scene(
        ["p0", "s1", "s2", "s3", "isl", "pseam"],
        ["buoy", "ship", "ship", "ship", "island", "beacon"],
        [
            Point(179.99, 0.0),
            Point(-179.99, 0.0),
            Point(179.95, 0.0),
            Point(-179.8, 0.05),
            ISLAND,
            Point(180.0, 0.05),
        ],
        "EPSG:4326",
    )


def test_antimeridian_distance(pacific):
    ans = value(pacific, "How far is #s1 from #p0?")
    assert ans.value == pytest.approx(inv(179.99, 0, -179.99, 0), rel=1e-9)
    assert 2_000 < ans.value < 2_500


def test_antimeridian_nearest_and_farthest(pacific):
    ans = value(pacific, "Which ship is nearest to #p0?")
    assert ans.value == "s1"  # 2.2 km across the antimeridian, not s2 (4.5 km) on the same side
    assert ans.details["distances_m"]["s1"] == pytest.approx(inv(179.99, 0, -179.99, 0), rel=1e-6)
    assert value(pacific, "Which ship is farthest from #p0?").value == "s3"
    assert value(pacific, "How many ships are within 3 km of #p0?").value == 1
    assert value(pacific, "Show all ships within 5 km of #p0").value == ["s1", "s2"]


def test_antimeridian_direction(pacific):
    assert value(pacific, "In which direction is #s1 from #p0?").value == "E"
    assert value(pacific, "Is #s2 west of #p0?").value is True
    assert value(pacific, "What is the bearing from #p0 to #s1?").value == pytest.approx(90.0, abs=1e-6)


def test_antimeridian_island_contains_points(pacific):
    assert value(pacific, "Is #s1 inside #isl?").value is True
    assert value(pacific, "Is #s2 within #isl?").value is True
    assert value(pacific, "Is #s3 inside #isl?").value is False
    assert value(pacific, "How many ships are inside #isl?").value == 2
    assert value(pacific, "Show all ships inside #isl").value == ["s1", "s2"]
    assert value(pacific, "How many ships are inside the region [179.5, -1, 180, 1]?").value == 1


def test_antimeridian_region_written_past_180(pacific):
    # a bbox across the antimeridian can only be written with a longitude past +-180
    assert value(pacific, "How many ships are inside [179.9, -0.1, 180.1, 0.1]?").value == 2
    assert value(pacific, "Show all ships inside [-180.02, -0.1, -179.7, 0.1]").value == ["s1", "s3"]
    assert value(pacific, "Is #s1 inside [179.9, -0.1, 180.1, 0.1]?").value is True
    assert value(pacific, "How far is #s1 from [179.9, -0.1, 180.1, 0.1]?").value == 0.0


def test_antimeridian_point_on_the_seam_is_inside(pacific):
    # lon 180 is interior to the island on the Earth: the split is only a representation
    assert value(pacific, "Is #pseam inside #isl?").value is True
    assert value(pacific, "What is the relation between #pseam and #isl?").value == "within"
    assert value(pacific, "How many beacons are inside #isl?").value == 1


def test_antimeridian_island_measures(pacific):
    # by symmetry about the axis, the same box centred on lon 0
    expected = ring_area(box(-0.1, -0.1, 0.1, 0.1))
    assert value(pacific, "What is the area of #isl?").value == pytest.approx(expected, rel=REL)
    assert value(pacific, "How far is #s3 from #isl?").value == pytest.approx(
        inv(-179.8, 0.05, -179.9, 0.05), rel=REL
    )
    assert value(pacific, "How far is #p0 from #isl?").value == 0.0


# ---------------------------------------------------------------------------------------
# bad input: invalid geometry, missing CRS
# ---------------------------------------------------------------------------------------
BOWTIE = Polygon([(10, 50), (10.01, 50.01), (10.01, 50), (10, 50.01), (10, 50)])


def test_invalid_geometry_is_repaired_with_a_warning():
    with pytest.warns(GeometryRepairedWarning, match="'bowtie'"):
        s = Scene(
            ["ok", "bowtie"],
            ["field", "field"],
            [box(0, 0, 1, 1), BOWTIE],
            "EPSG:4326",
            source="fields.geojson",
        )
    g = s.geoms[s.index("bowtie")]
    assert g.is_valid and g.geom_type == "MultiPolygon"
    # the two triangles of the bowtie
    t1 = Polygon([(10, 50), (10.005, 50.005), (10, 50.01)])
    t2 = Polygon([(10.01, 50), (10.01, 50.01), (10.005, 50.005)])
    ans = value(s, "What is the area of #bowtie?")
    assert ans.value == pytest.approx(ring_area(t1) + ring_area(t2), rel=REL)


def test_invalid_geometry_refused_on_request():
    with pytest.raises(InvalidGeometryError, match="'bowtie'"):
        Scene(["bowtie"], ["field"], [BOWTIE], "EPSG:4326", on_invalid="error")


def test_empty_geometry_refused():
    with pytest.raises(InvalidGeometryError, match="'e'"):
        Scene(["e"], ["field"], [Polygon()], "EPSG:4326")


def test_missing_crs():
    with pytest.raises(MissingCRSError):
        Scene(["a"], ["x"], [Point(0, 0)], None)


def test_duplicate_ids_refused():
    with pytest.raises(InputError, match="twice"):
        Scene(["a", "a"], ["x", "x"], [Point(0, 0), Point(1, 1)], "EPSG:4326")


# ---------------------------------------------------------------------------------------
# the README's question-forms table is generated from the grammar's examples
# ---------------------------------------------------------------------------------------
def test_readme_forms_table_is_generated_from_the_grammar():
    from pathlib import Path

    from georeason.geo.language.english import forms_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- forms-table:start -->\n") + len("<!-- forms-table:start -->\n")
    end = readme.index("<!-- forms-table:end -->")
    assert readme[start:end] == forms_table(), "regenerate the README table with forms_table()"


def test_every_grammar_example_compiles_and_validates():
    from georeason.geo.language.english import compiled_examples
    from georeason.geo.language.program import validate_program

    examples = compiled_examples()
    assert len(examples) >= 50
    for question, steps in examples:
        assert validate_program(steps).steps[-1].op == "answer", question


@pytest.mark.parametrize(
    "question, value",
    [
        ("How far is #w1 from (50.0, 95.0)?", "latitude 95"),
        ("How far is #w1 from POINT (500000 5280000)?", r"latitude 5\.28e\+06"),
        ("How far is #w1 from [400, 10, 410, 20]?", "longitude 4[01]0"),
    ],
)
def test_lonlat_out_of_range_is_an_input_error_naming_the_value(scene, question, value):
    from georeason.errors import ProgramValidationError

    with pytest.raises(ProgramValidationError, match=value):
        ask(question, scene)
