"""Direction between long or large objects: what a person sees on the map.

Default definition (``nearest_part``): the azimuth from the reference's point nearest to
the object to the object's point nearest to the reference. The centroid azimuth stays
available by name (``by centroid``). Expected values come from pyproj's Geod directly.
"""

from __future__ import annotations

import pytest
from pyproj import Geod
from shapely import LineString, Point, box

from georeason.geo.language.english import ask
from georeason.geo.vector.scene import Scene

G = Geod(ellps="WGS84")
LAT = 48.0
ROAD = LineString([(10.0, LAT), (10.27, LAT)])  # 20 km east-west
# a small lake whose north shore is 79 m south of the road, under its eastern part
_TOP = G.fwd(10.25, LAT, 180.0, 79.0)[1]
_BOTTOM = G.fwd(10.25, LAT, 180.0, 279.0)[1]
LAKE_SMALL = box(10.2485, _BOTTOM, 10.2515, _TOP)
LAKE_BIG = box(10.0, 47.90, 10.12, 47.95)
_X0 = G.fwd(10.12, 47.925, 90.0, 300.0)[0]
RIVER = LineString([(_X0, 47.925), (_X0, 48.05)])  # from beside the big lake, 14 km north


@pytest.fixture(scope="module")
def scene():
    return Scene(
        ["road-1", "lake-s", "lake-b", "river-1", "well-1"],
        ["road", "lake", "lake", "river", "well"],
        [ROAD, LAKE_SMALL, LAKE_BIG, RIVER, Point(10.05, 47.97)],
        "EPSG:4326",
    )


def _az(lon1, lat1, lon2, lat2):
    return G.inv(lon1, lat1, lon2, lat2)[0] % 360


def test_the_layout_is_what_the_test_says():
    # the lake's north shore is 79 m below the road
    assert G.inv(10.25, LAT, 10.25, _TOP)[2] == pytest.approx(79.0, abs=0.01)
    # seen from the road's centre, the lake's centre is almost due east (the centroid
    # definition says "east", not "south")
    c_road = (10.135, LAT)
    c_lake = (10.25, (_TOP + _BOTTOM) / 2)
    assert 85 < _az(*c_road, *c_lake) < 95


def test_small_lake_under_a_long_road_is_south(scene):
    ans = ask("Is the lake-s south of the road?".replace("the lake-s", "#lake-s"), scene)
    assert ans.value is True
    assert ans.details["direction_method"] == "nearest_part"
    assert "nearest" in ans.details["direction_definition"]
    # the azimuth is that of the 79 m segment, from the road down to the shore
    assert ans.details["azimuth_deg"] == pytest.approx(_az(10.25, LAT, 10.25, _TOP), abs=0.5)
    assert ask("Is the smallest lake south of road-1?", scene).value is True
    assert ask("In which direction is the smallest lake from the road?", scene).value == "S"
    assert ask("Is the road north of #lake-s?", scene).value is True


def test_centroid_definition_answers_by_name(scene):
    ans = ask("Is #lake-s south of road-1 by centroid?", scene)
    assert ans.value is False
    assert ans.details["direction_method"] == "centroid"
    c_lake = (10.25, (_TOP + _BOTTOM) / 2)
    assert ans.details["azimuth_deg"] == pytest.approx(_az(10.135, LAT, *c_lake), abs=0.5)
    assert ask("In which direction is #lake-s from road-1 by centroid?", scene).value == "E"
    # the bearing is centroid to centroid unless asked otherwise
    b = ask("What is the bearing from road-1 to #lake-s?", scene)
    assert b.details["direction_method"] == "centroid"
    assert b.value == pytest.approx(_az(10.135, LAT, *c_lake), abs=0.5)


def test_river_beside_a_large_lake_is_east(scene):
    ans = ask("Is the river east of the largest lake?", scene)
    assert ans.value is True
    assert ans.details["azimuth_deg"] == pytest.approx(_az(10.12, 47.925, _X0, 47.925), abs=0.5)
    assert ask("In which direction is the river from #lake-b?", scene).value == "E"
    assert ask("Is the largest lake west of the river?", scene).value is True
    # by centroid the river (centre 7 km north of the lake's centre) is north-east, not east
    c_lake, c_river = (10.06, 47.925), (_X0, (47.925 + 48.05) / 2)
    expected = _az(*c_lake, *c_river)
    assert 20 < expected < 45
    ans = ask("In which direction is the river from #lake-b by centroid?", scene)
    assert ans.value == "NE" and ans.details["azimuth_deg"] == pytest.approx(expected, abs=0.5)


def test_touching_objects_fall_back_to_centroids_and_say_so():
    road = LineString([(10.0, 48.0), (10.1, 48.0)])
    field = box(10.04, 48.0, 10.06, 48.01)  # touches the road along its south edge
    s = Scene(["r", "f"], ["road", "field"], [road, field], "EPSG:4326")
    ans = ask("Is #f north of #r?", s)
    assert ans.value is True
    assert ans.details["direction_method"] == "centroid (they touch or overlap)"


def test_sector_filter_uses_the_same_definition(scene):
    # lake-s (under the road) is south of it by nearest parts; the big lake (20 km wide
    # road's west half above it) too; the well lies between them
    ans = ask("Which lakes are south of the road?", scene)
    assert sorted(ans.value) == ["lake-b", "lake-s"]
    assert ans.details["direction_method"] == "nearest_part"
