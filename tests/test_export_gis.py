"""GIS-ready exports: one geometry type per layer, records for abstentions, GeoPackage 1.3,
each object once, readable names, relative paths, QGIS styles and projects, quicklooks."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET

import numpy as np
import pyogrio
import pytest
import shapely
from grounding_helpers import geotiff
from pyproj import CRS

from georeason.geo.export.item import export_item_files
from georeason.geo.export.layers import (
    answer_stem,
    dedupe_classes,
    relative_outputs,
    write_answer_files,
    write_error_record,
    write_table,
)
from georeason.geo.export.quicklook import write_quicklook
from georeason.geo.language.english import ask
from georeason.geo.vector.scene import Scene

UTM = "EPSG:32633"


@pytest.fixture
def town() -> Scene:
    road = shapely.LineString([(500000, 5000500), (501000, 5000500)])
    lake = shapely.Point(500500, 5000800).buffer(100)
    return Scene(
        ["road-1", "road-2", "b1", "b2", "b3", "lake-1", "water-1"],
        ["road", "road", "building", "building", "building", "lake", "water"],
        [
            road,
            shapely.LineString([(500000, 5000000), (500000, 5001000)]),
            shapely.box(500100, 5000550, 500120, 5000570),
            shapely.box(500400, 5000420, 500420, 5000440),
            shapely.box(500900, 5000100, 500920, 5000120),
            lake,
            lake,  # the same water body found under a second class name
        ],
        UTM,
    )


def test_mixed_evidence_is_one_geojson_per_geometry_type(town, tmp_path):
    ans = ask("Show all buildings within 100 m of #road-1.", town)
    files = write_answer_files(ans, tmp_path / "q01.geojson")
    names = sorted(f.name for f in files)
    assert names == ["q01.lines.geojson", "q01.polygons.geojson"]
    info = {f.name: pyogrio.read_info(f) for f in files}
    # GDAL sees exactly one geometry type per file (Unknown would mean mixed)
    assert info["q01.polygons.geojson"]["geometry_type"] == "MultiPolygon"
    assert info["q01.lines.geojson"]["geometry_type"] == "MultiLineString"
    # b1 (50 m north) and b2 (60 m south of the road) are within 100 m; b3 is 380 m away
    assert info["q01.polygons.geojson"]["features"] == 2
    assert info["q01.lines.geojson"]["features"] == 1
    for f in files:
        assert CRS.from_user_input(info[f.name]["crs"]) == CRS.from_epsg(4326)


def test_abstention_is_a_record_with_reason_and_crs(town, tmp_path):
    ans = ask("Which building is nearest to the river?", town)  # no river: abstains
    assert ans.abstained
    (path,) = write_answer_files(ans, tmp_path / "a.geojson")
    df = pyogrio.read_dataframe(path)
    assert len(df) == 1 and df.geometry.iloc[0] is None
    assert df["status"].iloc[0] == "abstained"
    assert df["question"].iloc[0] == "Which building is nearest to the river?"
    assert df["reason"].iloc[0] == ans.reason and ans.reason
    assert CRS.from_user_input(pyogrio.read_info(path)["crs"]) == CRS.from_epsg(4326)


def test_error_record(tmp_path):
    path = write_error_record("Frobnicate the lake?", "no template understands this", tmp_path / "e.geojson")
    df = pyogrio.read_dataframe(path)
    assert list(df["status"]) == ["error"] and df["reason"].iloc[0] == "no template understands this"


def test_geopackage_is_version_1_3_with_one_layer_per_type(town, tmp_path):
    path = write_table(
        [{"id": i} for i in town.ids], list(town.geoms), town.crs, tmp_path / "o.gpkg", layer="objects"
    )
    con = sqlite3.connect(path)
    app_id, version = (
        con.execute("pragma application_id").fetchone()[0],
        con.execute("pragma user_version").fetchone()[0],
    )
    con.close()
    assert app_id == int.from_bytes(b"GPKG", "big") and version == 10300  # GeoPackage 1.3.0
    layers = {name: gtype for name, gtype in pyogrio.list_layers(path)}
    assert layers == {"objects_polygons": "MultiPolygon", "objects_lines": "MultiLineString"}
    assert pyogrio.read_info(path, layer="objects_polygons")["features"] == 5
    assert pyogrio.read_info(path, layer="objects_lines")["features"] == 2


def test_each_geometry_once_under_its_most_specific_class(town):
    keep, also = dedupe_classes(town.ids, town.labels, town.geoms)
    kept = [town.ids[i] for i in keep]
    assert "water-1" not in kept and "lake-1" in kept
    assert also[kept.index("lake-1")] == ["water"]
    # area by class no longer double-counts: the total equals the union's area
    total = sum(town.geoms[i].area for i in keep if town.geoms[i].geom_type == "Polygon")
    union = shapely.union_all([g for g in town.geoms if g.geom_type == "Polygon"]).area
    assert total == pytest.approx(union)


@pytest.mark.parametrize(
    "question",
    [
        "What is the topological relation between #road-1 and #road-2?",
        "How many buildings are within 200 m of the big long winding river that crosses #road-1 near #b-17?",
    ],
)
def test_file_names_keep_whole_words_and_ids(question):
    stem = answer_stem(7, question)
    assert stem.startswith("q07-")
    words = set(re.findall(r"[a-z0-9]+", question.lower()))
    assert set(stem[4:].split("-")) <= words  # whole words only: no word cut
    for ident in re.findall(r"#([\w-]+)", question):
        assert ident.lower() in stem
    assert answer_stem(9, "Is #road-1 north of #road-2?") != answer_stem(9, "Is #road-2 north of #road-1?")


def test_relative_outputs(tmp_path):
    out = {"geojson": str(tmp_path / "sample" / "q01.geojson"), "parts": [str(tmp_path / "a" / "b.geojson")]}
    assert relative_outputs(out, tmp_path) == {"geojson": "sample/q01.geojson", "parts": ["a/b.geojson"]}


def _raster(path):
    """A 200 x 150 RGB scene under the town (grounding_helpers.geotiff: the same random
    pixels, UTM 33N, 10 m)."""
    return geotiff(path, 200, 150, origin=(499900, 5001100))


def test_item_export_writes_styles_and_a_project(town, tmp_path):
    raster = _raster(tmp_path / "scene.tif")
    out = tmp_path / "out" / "town"
    ans = ask("Show all buildings within 100 m of #road-1.", town)
    files = write_answer_files(ans, out / f"{answer_stem(1, ans.question or '')}.geojson")
    written = {"geojson": str(files[0]), "parts": [str(f) for f in files]}
    res = export_item_files(
        out, raster, town.ids, town.labels, town.geoms, town.crs, [ans], [written], item="town"
    )
    assert {"gpkg", "objects_polygons_geojson", "objects_lines_geojson", "quicklook", "project"} <= set(res)
    assert res["answer_quicklooks"][0] and (out / "q01-show-all-buildings-within-100-m-road-1.png").exists()
    for f in files:
        qml = ET.parse(f.with_suffix(".qml")).getroot()
        assert qml.tag == "qgis" and qml.find("renderer-v2") is not None
    proj = ET.parse(res["project"]).getroot()
    sources = [e.text for e in proj.iter("datasource")]
    assert all(s and not s.startswith("/") for s in sources)  # relative: the folder can move
    assert any("objects.gpkg|layername=objects_polygons" in s for s in sources)
    assert any(s.endswith("scene.tif") for s in sources)
    cats = proj.find(".//maplayer/renderer-v2[@type='categorizedSymbol']")
    assert cats is not None and {c.get("value") for c in cats.iter("category")} >= {"building", "lake"}
    objs = json.loads((out / "objects.polygons.geojson").read_text())
    assert [f["id"] for f in objs["features"]].count("lake-1") == 1
    assert "water-1" not in [f["id"] for f in objs["features"]]


def test_quicklook_is_readable_size_with_title_and_legend(town, tmp_path):
    from PIL import Image

    raster = _raster(tmp_path / "scene.tif")
    png = write_quicklook(
        raster,
        tmp_path / "q.png",
        objects=list(town.geoms),
        classes=list(town.labels),
        evidence=[town.geoms[2]],
        title="How many buildings?",
        subtitle="Answer: 3",
    )
    img = np.asarray(Image.open(png).convert("RGB"))
    h, w, _ = img.shape
    assert w == 1000 and h > 750  # a 200 x 150 raster enlarged to 1000 px, plus title and legend
    top = img[:40]
    assert (top < 100).all(axis=-1).sum() > 200  # dark title text on the white band
    magenta = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] > 150)
    assert magenta.sum() > 20  # evidence outline (and its legend swatch)
