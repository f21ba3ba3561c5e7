"""STAC metadata: acquisition time from the raster, gsd from the transform, STAC 1.1 bands,
and offline JSON-schema validation against the shipped schemas."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from georeason.catalog import add_item, validate_catalog
from georeason.stac_schemas import schema_problems, shipped_extensions

REPO = Path(__file__).resolve().parents[1]

CATALOG = REPO / "data_catalog"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("validation tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _tif(path, tags=None, res=10.0):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=20,
        height=10,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 5000000, res, res),
    ) as dst:
        dst.write(np.ones((3, 10, 20), dtype=np.uint8))
        dst.descriptions = ("red", "green", "blue")
        if tags:
            dst.update_tags(**tags)
    return path


def test_shipped_catalog_validates_against_shipped_schemas_offline(no_network):
    assert validate_catalog(CATALOG) == []
    for path in [CATALOG / "catalog.json", *CATALOG.glob("*/*.json")]:
        doc = json.loads(path.read_text())
        assert schema_problems(doc, str(path)) == []
        for url in doc.get("stac_extensions", []):
            assert url in shipped_extensions()


def test_schema_problems_name_the_extension_and_field(no_network):
    doc = json.loads((CATALOG / "sample" / "sample.json").read_text())
    doc["assets"]["image"]["bands"][0]["eo:common_name"] = "purple"  # not an EO common name
    doc["properties"]["proj:shape"] = [10]  # needs two numbers
    problems = schema_problems(doc, "sample.json")
    assert any("eo" in p and "purple" in p for p in problems), problems
    assert any("proj:shape" in p for p in problems), problems
    doc = json.loads((CATALOG / "sample" / "sample.json").read_text())
    doc["stac_extensions"].append("https://stac-extensions.github.io/sar/v1.0.0/schema.json")
    assert any("no shipped schema" in p and "sar" in p for p in schema_problems(doc, "x"))


def test_metadata_from_the_raster(tmp_path, no_network):
    cat = tmp_path / "cat"
    raster = _tif(tmp_path / "scene.tif", tags={"DATE_ACQUIRED": "2001-05-07"}, res=30.0)
    item = add_item(cat, raster, item_id="scene")
    props = item.properties
    assert props["datetime"] == "2001-05-07T00:00:00Z"
    assert props["georeason:datetime_source"] == "metadata:DATE_ACQUIRED"
    with rasterio.open(raster) as src:
        assert props["gsd"] == pytest.approx(abs(src.transform.a)) == 30.0  # the transform's pixel size
    asset = item.assets["image"].to_dict()
    assert "eo:bands" not in asset and "raster:bands" not in asset
    assert [b["name"] for b in asset["bands"]] == ["red", "green", "blue"]
    assert asset["bands"][0]["eo:common_name"] == "red" and asset["bands"][0]["data_type"] == "uint8"
    assert validate_catalog(cat) == []


def test_add_time_is_labelled_and_an_option_wins(tmp_path):
    cat = tmp_path / "cat"
    item = add_item(cat, _tif(tmp_path / "a.tif"), item_id="a")
    assert item.properties["georeason:datetime_source"] == "added"
    assert "acquisition unknown" in item.properties["title"]
    item = add_item(cat, _tif(tmp_path / "b.tif"), item_id="b", datetime="2020-03-04T05:06:07Z")
    assert item.properties["georeason:datetime_source"] == "given"
    assert item.properties["datetime"] == "2020-03-04T05:06:07Z" and "title" not in item.properties


def test_cli_validate_reports_a_schema_problem(tmp_path):
    from typer.testing import CliRunner

    from georeason.cli import app

    cat = tmp_path / "cat"
    shutil.copytree(CATALOG, cat, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = cat / "sample" / "sample.json"
    doc = json.loads(path.read_text())
    doc["properties"]["gsd"] = -1  # the schema wants a positive number
    path.write_text(json.dumps(doc))
    res = CliRunner().invoke(app, ["catalog", "validate", "--catalog", str(cat)])
    assert res.exit_code == 2
    assert "gsd" in (res.output + (res.stderr if res.stderr_bytes is not None else ""))
