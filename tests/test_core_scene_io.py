"""Reading scenes from files: the same objects in GeoJSON (lon/lat), GeoPackage (UTM),
GeoParquet and Shapefile give the same answers; id field detection; missing CRS."""

from __future__ import annotations

import warnings

import geopandas as gpd  # noqa: E402
import numpy as np
import pyogrio  # noqa: E402,F401
import pytest
from pyproj import Geod
from shapely import LineString, Point, Polygon, box  # noqa: E402

from georeason.errors import InputError, MissingCRSError, VectorReadError  # noqa: E402
from georeason.geo.language.english import ask  # noqa: E402
from georeason.geo.language.executor import execute  # noqa: E402
from georeason.geo.vector.scene import read_scene  # noqa: E402

G = Geod(ellps="WGS84")
REL = 1e-3
UTM = "EPSG:32632"  # lon 6..12 E


def inv(lon1, lat1, lon2, lat2) -> float:
    return G.inv(lon1, lat1, lon2, lat2)[2]


def ring_area(poly) -> float:
    x, y = poly.exterior.coords.xy
    a = abs(G.polygon_area_perimeter(list(x), list(y))[0])
    for hole in poly.interiors:
        hx, hy = hole.coords.xy
        a -= abs(G.polygon_area_perimeter(list(hx), list(hy))[0])
    return a


B1 = box(10.0019, 49.9999, 10.0021, 50.0001)
B2 = box(9.9999, 50.0109, 10.0001, 50.0111)
B3 = box(9.9479, 49.9999, 9.9481, 50.0001)
LAKE_BIG = box(10.02, 50.02, 10.05, 50.04)
LAKE_SMALL = box(10.06, 49.98, 10.065, 49.985)
PARK = Polygon(
    box(9.97, 49.97, 9.99, 49.99).exterior.coords, [box(9.975, 49.975, 9.985, 49.985).exterior.coords]
)
RIVER = LineString([(9.98, 50.005), (10.02, 50.005)])

ROWS = [
    # id, class, name, code, height, score, geometry
    ("w1", "well", "Old well", "A", 3.0, 0.9, Point(10.0, 50.0)),
    ("b1", "building", "Mill", "A", 12.0, 0.8, B1),
    ("b2", "building", "Barn", "B", 8.0, 0.7, B2),
    ("b3", "building", "Church", "B", 30.0, None, B3),
    ("lake-big", "lake", "Big lake", "C", 0.0, 0.95, LAKE_BIG),
    ("lake-small", "lake", "Pond", "C", 0.0, 0.5, LAKE_SMALL),
    ("park", "park", "Town park", "D", 0.0, 0.6, PARK),
    ("bench", "bench", "Bench", "D", 1.0, 0.6, Point(9.972, 49.972)),
    ("r1", "river", "Brook", "E", 0.0, 0.99, RIVER),
]


def _gdf(crs="EPSG:4326"):
    ids, classes, names, codes, heights, scores, geoms = zip(*ROWS)
    gdf = gpd.GeoDataFrame(
        {
            "id": ids,
            "class": classes,
            "name": names,
            "code": codes,
            "height": heights,
            "score": [np.nan if s is None else s for s in scores],
        },
        geometry=list(geoms),
        crs="EPSG:4326",
    )
    return gdf.to_crs(crs) if crs != "EPSG:4326" else gdf


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    out = {}
    out["geojson"] = d / "objects.geojson"
    _gdf().to_file(out["geojson"], driver="GeoJSON")
    out["gpkg"] = d / "objects_utm.gpkg"
    _gdf(UTM).to_file(out["gpkg"], driver="GPKG", layer="objects")
    out["parquet"] = d / "objects_utm.parquet"
    _gdf(UTM).to_parquet(out["parquet"])
    return out


@pytest.fixture(scope="module")
def scenes(files):
    return {k: read_scene(p) for k, p in files.items()}


def test_scenes_read_with_their_crs(scenes):
    assert scenes["geojson"].crs.to_epsg() == 4326
    assert scenes["gpkg"].crs.to_epsg() == 32632
    assert scenes["parquet"].crs.to_epsg() == 32632
    for s in scenes.values():
        assert list(s.ids) == [r[0] for r in ROWS]
        assert list(s.labels) == [r[1] for r in ROWS]
        assert len(s) == len(ROWS)


def test_attributes_and_scores(scenes):
    for s in scenes.values():
        i = s.index("b3")
        assert s.scores[s.index("b1")] == pytest.approx(0.8)
        assert s.scores[i] is None  # NaN score -> None
        assert s.attrs[i]["name"] == "Church"
        assert s.attrs[i]["height"] == pytest.approx(30.0)
        assert "id" not in s.attrs[i] and "class" not in s.attrs[i]


def test_lonlat_copy_matches_source(scenes):
    for s in scenes.values():
        g = s.lonlat[s.index("w1")]
        assert g.x == pytest.approx(10.0, abs=1e-7) and g.y == pytest.approx(50.0, abs=1e-7)


# question -> expected (numbers: metres/m², compared with rel 0.1 %)
QUESTIONS = [
    ("How far is #b1 from #w1?", inv(10.0, 50.0, 10.0019, 50.0)),
    ("What is the distance between the centres of #w1 and #b2?", inv(10.0, 50.0, 10.0, 50.011)),
    ("What is the area of the largest lake?", ring_area(LAKE_BIG)),
    ("What is the area of #park?", ring_area(PARK)),
    ("How long is the river?", inv(9.98, 50.005, 10.02, 50.005)),
    ("What is the total area of lakes?", ring_area(LAKE_BIG) + ring_area(LAKE_SMALL)),
    ("What is the bearing from #w1 to #b1?", G.inv(10.0, 50.0, 10.002, 50.0)[0]),
    ("How many buildings are within 2 km of #w1?", 2),
    (
        "How many buildings are inside the region POLYGON ((9.99 49.99, 10.01 49.99, 10.01 50.02, 9.99 50.02, 9.99 49.99))?",
        2,
    ),
    ("How many lakes are there?", 2),
    ("Which building is nearest to #w1?", "b1"),
    ("Which building is farthest from #w1?", "b3"),
    ("Which is the smallest lake?", "lake-small"),
    ("Which building is nearest to the largest lake?", "b2"),
    ("Show all buildings within 5 km of #w1", ["b1", "b2", "b3"]),
    ("Is #bench inside #park?", True),
    ("Is #b1 east of #w1?", True),
    ("Is #b2 south of #w1?", False),
    ("What is the relation between #bench and #park?", "within"),
    ("In which direction is #b3 from #w1?", "W"),
]


@pytest.mark.parametrize("question, expected", QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_same_answers_from_every_format(scenes, question, expected):
    answers = {k: ask(question, s) for k, s in scenes.items()}
    for fmt, ans in answers.items():
        assert not ans.abstained, (fmt, ans.reason)
        if isinstance(expected, float):
            assert ans.value == pytest.approx(expected, rel=REL, abs=0.05 if "bearing" in question else 0), (
                fmt
            )
        else:
            assert ans.value == expected, fmt
    # and the formats agree with one another
    ref = answers["geojson"].value
    for fmt, ans in answers.items():
        if isinstance(ref, float):
            assert ans.value == pytest.approx(ref, rel=REL), fmt
        else:
            assert ans.value == ref, fmt


def test_attribute_filter_program(scenes):
    prog = [
        {"id": "s", "op": "select", "args": {"cls": "building", "where": {"code": "B"}}},
        {"id": "c", "op": "count", "args": {"objects": "$s"}},
        {"id": "out", "op": "answer", "args": {"value": "$c"}},
    ]
    for s in scenes.values():
        assert execute(prog, s).value == 2


def test_evidence_geometry_is_reported_in_lonlat(scenes):
    ans = ask("Which building is nearest to #w1?", scenes["gpkg"])
    ev = {e.id: e for e in ans.evidence}
    geo = ev["b1"].to_json()["geometry"]
    xs = [c[0] for c in geo["coordinates"][0]]
    assert min(xs) == pytest.approx(10.0019, abs=1e-6)


# ---------------------------------------------------------------------------------------
# Shapefile, GeoParquet in lon/lat
# ---------------------------------------------------------------------------------------
def test_shapefile_polygons(tmp_path):
    gdf = _gdf(UTM)
    gdf = gdf[gdf.geometry.geom_type == "Polygon"]
    path = tmp_path / "polys.shp"
    gdf.to_file(path)
    s = read_scene(path)
    assert s.crs.to_epsg() == 32632
    assert list(s.ids) == ["b1", "b2", "b3", "lake-big", "lake-small", "park"]
    assert ask("Which is the largest lake?", s).value == "lake-big"
    assert ask("What is the area of #park?", s).value == pytest.approx(ring_area(PARK), rel=REL)
    assert ask("How far is #b1 from #b3?", s).value == pytest.approx(
        inv(9.9481, 50.0, 10.0019, 50.0), rel=REL
    )


def test_geoparquet_lonlat(tmp_path):
    path = tmp_path / "objects.parquet"
    _gdf().to_parquet(path)
    s = read_scene(path)
    assert s.crs.to_epsg() == 4326
    assert ask("How many buildings are within 500 m of #w1?", s).value == 1


# ---------------------------------------------------------------------------------------
# id field detection
# ---------------------------------------------------------------------------------------
def _write(tmp_path, columns: dict, geoms, name="f.geojson"):
    path = tmp_path / name
    gpd.GeoDataFrame(columns, geometry=geoms, crs="EPSG:4326").to_file(path)
    return path


PTS = [Point(10, 50), Point(10.01, 50), Point(10.02, 50)]


def test_id_field_named_id(tmp_path):
    path = _write(tmp_path, {"code": ["x", "y", "z"], "ID": ["p1", "p2", "p3"], "class": ["tree"] * 3}, PTS)
    assert list(read_scene(path).ids) == ["p1", "p2", "p3"]


def test_id_from_first_unique_field(tmp_path):
    # 'kind' (class) and 'zone' repeat; 'name' is the first field with unique values
    path = _write(
        tmp_path,
        {
            "zone": ["n", "n", "s"],
            "kind": ["tree", "tree", "rock"],
            "name": ["oak", "elm", "big rock"],
            "ref": ["1", "2", "3"],
        },
        PTS,
    )
    s = read_scene(path)
    assert list(s.ids) == ["oak", "elm", "big rock"]
    assert list(s.labels) == ["tree", "tree", "rock"]
    assert ask("How far is #oak from #elm?", s).value == pytest.approx(inv(10, 50, 10.01, 50), rel=1e-9)
    assert ask("How far is object elm from the rock?", s).value == pytest.approx(
        inv(10.01, 50, 10.02, 50), rel=1e-9
    )


def test_id_from_position_when_nothing_is_unique(tmp_path):
    path = _write(tmp_path, {"zone": ["n", "n", "n"]}, PTS)
    s = read_scene(path)
    assert list(s.ids) == ["0", "1", "2"]
    assert list(s.labels) == ["object"] * 3


def test_explicit_id_and_class_fields(tmp_path):
    path = _write(tmp_path, {"id": ["a", "b", "c"], "code": ["q", "r", "s"], "what": ["x", "y", "y"]}, PTS)
    s = read_scene(path, id_field="code", class_field="what")
    assert list(s.ids) == ["q", "r", "s"]
    assert list(s.labels) == ["x", "y", "y"]
    with pytest.raises(InputError, match="nope"):
        read_scene(path, id_field="nope")


def test_duplicate_ids_in_file(tmp_path):
    path = _write(tmp_path, {"id": ["a", "a", "b"]}, PTS)
    with pytest.raises(InputError, match="twice"):
        read_scene(path)


# ---------------------------------------------------------------------------------------
# CRS handling and read errors
# ---------------------------------------------------------------------------------------
def _no_crs_shapefile(tmp_path):
    gdf = _gdf(UTM)
    gdf = gdf[gdf.geometry.geom_type == "Polygon"].copy()
    gdf = gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=list(gdf.geometry), crs=None)
    path = tmp_path / "nocrs.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided": on purpose
        gdf.to_file(path)
    assert not (tmp_path / "nocrs.prj").exists()
    return path


def test_file_without_crs_is_refused(tmp_path):
    path = _no_crs_shapefile(tmp_path)
    with pytest.raises(MissingCRSError, match="nocrs.shp"):
        read_scene(path)


def test_file_without_crs_with_crs_given(tmp_path):
    path = _no_crs_shapefile(tmp_path)
    s = read_scene(path, crs=UTM)
    assert s.crs.to_epsg() == 32632
    assert ask("What is the area of the largest lake?", s).value == pytest.approx(
        ring_area(LAKE_BIG), rel=REL
    )


def test_crs_given_that_contradicts_the_file(files):
    with pytest.raises(InputError, match="EPSG:4326"):
        read_scene(files["gpkg"], crs="EPSG:4326")
    # naming the file's own CRS is fine
    assert len(read_scene(files["gpkg"], crs=UTM)) == len(ROWS)


def test_missing_file(tmp_path):
    with pytest.raises(VectorReadError, match="does not exist"):
        read_scene(tmp_path / "nothing.geojson")


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text("{ this is not json")
    with pytest.raises(VectorReadError, match="broken.geojson"):
        read_scene(path)


def test_invalid_geometry_in_file(tmp_path):
    from georeason.errors import GeometryRepairedWarning, InvalidGeometryError

    bowtie = Polygon([(10, 50), (10.01, 50.01), (10.01, 50), (10, 50.01), (10, 50)])
    path = _write(tmp_path, {"id": ["ok", "bt"]}, [box(10, 50, 10.001, 50.001), bowtie])
    with pytest.warns(GeometryRepairedWarning, match="'bt'"):
        s = read_scene(path)
    assert s.geoms[s.index("bt")].is_valid
    with pytest.raises(InvalidGeometryError, match="'bt'"):
        read_scene(path, on_invalid="error")
