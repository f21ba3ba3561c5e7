"""The pandas-free readers give the same scene as the GDAL/geopandas path."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from georeason.geo.vector import scene as scene_mod
from georeason.geo.vector.scene import read_scene

REPO = Path(__file__).resolve().parents[1]


def _slow(path: Path, monkeypatch) -> scene_mod.Scene:
    with monkeypatch.context() as m:
        m.setattr(scene_mod, "_read_fast", lambda p, layer: None)
        return read_scene(path)


def _same(a: scene_mod.Scene, b: scene_mod.Scene) -> None:
    assert a.crs == b.crs
    assert a.ids.tolist() == b.ids.tolist()
    assert a.labels.tolist() == b.labels.tolist()
    assert all(shapely.equals_exact(a.geoms, b.geoms, 0.0))
    assert a.scores.tolist() == b.scores.tolist()
    assert a.attrs == b.attrs


@pytest.mark.parametrize(
    "rel",
    [
        "examples/town.geojson",
        "data_catalog/sample/sample_truth.geojson",
        "data_catalog/sample/sample_roads.geojson",
    ],
)
def test_geojson_fast_path_equals_gdal(rel, monkeypatch):
    path = REPO / rel
    assert scene_mod._read_fast(path, None) is not None  # the fast path is taken
    _same(read_scene(path), _slow(path, monkeypatch))


def test_geojson_with_legacy_crs_and_attributes(tmp_path, monkeypatch):
    feats = [
        {
            "type": "Feature",
            "properties": {
                "name": f"n{i}",
                "class": "tank",
                "height": 1.5 * i,
                "floors": i,
                "ok": i % 2 == 0,
            },
            "geometry": {"type": "Point", "coordinates": [500_000 + i, 5_000_000 + i]},
        }
        for i in range(5)
    ]
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": feats,
    }
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps(doc))
    fast = read_scene(path)
    assert fast.crs.to_epsg() == 32633
    assert fast.ids.tolist() == [f"n{i}" for i in range(5)]  # first unique field
    gdf = pyogrio.read_dataframe(path)
    assert gdf.crs.to_epsg() == 32633
    assert [a["height"] for a in fast.attrs] == gdf["height"].tolist()
    assert [a["floors"] for a in fast.attrs] == gdf["floors"].tolist()


def test_geojson_the_fast_path_declines(tmp_path):
    """A feature id not repeated in the properties, nulls and date-like strings go to GDAL."""
    base = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}
    for feat in (
        {**base, "id": 7, "properties": {"class": "a"}},
        {**base, "properties": {"class": None}},
        {**base, "properties": {"class": "a", "when": "2024-05-01"}},
    ):
        path = tmp_path / "x.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
        assert scene_mod._read_fast(path, None) is None


def test_geoparquet_fast_path_equals_geopandas(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    geoms = shapely.points(rng.uniform(0, 1000, (50, 2)))
    gdf = gpd.GeoDataFrame(
        {"id": [f"p{i}" for i in range(50)], "class": ["tree"] * 50, "score": rng.uniform(0, 1, 50)},
        geometry=geoms,
        crs="EPSG:32632",
    )
    path = tmp_path / "s.parquet"
    gdf.to_parquet(path)
    assert scene_mod._read_fast(path, None) is not None
    _same(read_scene(path), _slow(path, monkeypatch))
