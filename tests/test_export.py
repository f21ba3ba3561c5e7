"""Exports: RFC 7946 GeoJSON that GIS tools open as is, GeoPackage/GeoParquet in the source CRS,
atomic writes."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer

from georeason.errors import ExportError
from georeason.geo.export.layers import atomic_path, write_answer
from georeason.geo.language.english import ask
from georeason.geo.vector.scene import Scene


def _ring_is_ccw(ring) -> bool:
    """Shoelace sign, computed here independently of shapely's orientation helpers."""
    xy = np.asarray(ring, dtype=float)
    x, y = xy[:, 0], xy[:, 1]
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])) > 0


def check_rfc7946(doc: dict) -> None:
    """The parts of RFC 7946 a GIS client relies on: no `crs` member, lon/lat ranges,
    exterior rings counter-clockwise and holes clockwise (section 3.1.6), closed rings."""
    assert "crs" not in doc
    assert doc["type"] == "FeatureCollection"
    for feat in doc["features"]:
        assert feat["type"] == "Feature"
        g = feat["geometry"]
        polys = (
            [g["coordinates"]]
            if g["type"] == "Polygon"
            else g["coordinates"]
            if g["type"] == "MultiPolygon"
            else []
        )
        for rings in polys:
            for k, ring in enumerate(rings):
                assert ring[0] == ring[-1]
                assert _ring_is_ccw(ring) == (k == 0), f"ring {k} of {feat['id']} has the wrong winding"
        coords = np.asarray(shapely.get_coordinates(shapely.geometry.shape(g)))
        assert (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()


@pytest.fixture
def utm_scene() -> Scene:
    """Objects in UTM 33N; the park has a hole and its exterior is written clockwise."""
    park = shapely.Polygon(
        [(500000, 5000000), (500000, 5000400), (500400, 5000400), (500400, 5000000)],
        [[(500100, 5000100), (500300, 5000100), (500300, 5000300), (500100, 5000300)]],
    )
    assert not _ring_is_ccw(park.exterior.coords)
    return Scene(
        ["park-1", "b1", "b2"],
        ["park", "building", "building"],
        [park, shapely.box(500150, 5000150, 500250, 5000250), shapely.box(501000, 5000000, 501050, 5000050)],
        "EPSG:32633",
    )


def test_geojson_is_rfc7946_and_reads_back(utm_scene, tmp_path):
    ans = ask("Show all buildings within 700 m of #park-1.", utm_scene)
    out = write_answer(ans, tmp_path / "a.geojson")
    doc = json.loads(out.read_text())
    check_rfc7946(doc)
    ids = [f["properties"]["id"] for f in doc["features"]]
    assert set(ids) == {"park-1", "b1", "b2"}
    assert all(f["properties"]["question"] == ans.question for f in doc["features"])
    gdf = pyogrio.read_dataframe(out)
    assert CRS.from_user_input(gdf.crs) == CRS.from_epsg(4326)
    # geometry survives: back in UTM every vertex is where it was, to the 1e-7 degree
    # rounding RFC 7946 recommends (about 1 cm)
    park = gdf.loc[gdf["id"] == "park-1", "geometry"].iloc[0]
    t = Transformer.from_crs(4326, 32633, always_xy=True)
    back = shapely.transform(park, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))
    assert shapely.hausdorff_distance(back, utm_scene.geoms[0]) < 0.02


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
def test_gpkg_and_geoparquet_keep_the_source_crs(utm_scene, tmp_path, suffix):
    ans = ask("Which building is nearest to #park-1?", utm_scene)
    out = write_answer(ans, tmp_path / f"a{suffix}")
    # a GeoPackage holds one layer per geometry type (here polygons) and an answer record layer
    gdf = (
        gpd.read_parquet(out)
        if suffix == ".parquet"
        else pyogrio.read_dataframe(out, layer="evidence_polygons")
    )
    assert CRS.from_user_input(gdf.crs) == CRS.from_epsg(32633)
    assert set(gdf["id"]) == {"park-1", "b1"}
    b1 = gdf.loc[gdf["id"] == "b1", "geometry"].iloc[0]
    if suffix == ".gpkg":  # one geometry type per GeoPackage layer: Multi
        assert b1.geom_type == "MultiPolygon" and len(shapely.get_parts(b1)) == 1
    assert shapely.get_parts(b1)[0].equals_exact(utm_scene.geoms[1], tolerance=1e-6)


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path):
    target = tmp_path / "answers.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["answers.jsonl"]


def test_unknown_suffix_is_a_clear_error(utm_scene, tmp_path):
    ans = ask("How many buildings are there?", utm_scene)
    with pytest.raises(ExportError, match=r"\.geojson, \.gpkg or \.parquet"):
        write_answer(ans, tmp_path / "a.kml")
