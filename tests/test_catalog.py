"""The STAC scene catalog: add (with refusals), list, validate, relocation."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point
from typer.testing import CliRunner

from georeason.catalog import (
    add_item,
    default_catalog_dir,
    list_items,
    load_catalog,
    sha256_multihash,
    validate_catalog,
)
from georeason.cli_catalog import catalog_app
from georeason.errors import CatalogError, NotGeoreferencedError, RasterReadError

runner = CliRunner()

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)  # UTM 33N, 10 m pixels


def make_tif(
    path: Path, *, crs="EPSG:32633", transform=TRANSFORM, size=64, tiled=False, count=3, descriptions=None
):
    profile = dict(driver="GTiff", width=size, height=size, count=count, dtype="uint8")
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
    with dst:
        dst.write(rng.integers(0, 255, size=(count, size, size), dtype="uint8"))
        for i, d in enumerate(descriptions or ["red", "green", "blue", "nir"][:count], 1):
            dst.set_band_description(i, d)
    return path


def make_vectors(path: Path) -> Path:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "b1", "class": "building"},
                "geometry": {"type": "Point", "coordinates": [15.0, 45.1]},
            },
        ],
    }
    path.write_text(json.dumps(fc))
    return path


def tree_hash(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    } | {str(p.relative_to(folder)) + "/": "dir" for p in folder.rglob("*") if p.is_dir()}


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    return d


@pytest.fixture
def catalog(tmp_path, src):
    cat = tmp_path / "cat"
    add_item(cat, make_tif(src / "scene.tif"), vectors=[make_vectors(src / "roads.geojson")], item_id="scene")
    return cat


# ---------------------------------------------------------------------------- add


def test_add_ok_item_fields(tmp_path, src):
    raster = make_tif(src / "scene.tif")
    cat = tmp_path / "newcat"  # does not exist yet: created
    item = add_item(cat, raster, vectors=[make_vectors(src / "roads.geojson")], item_id="scene")
    assert (cat / "catalog.json").is_file() and (cat / "scene" / "scene.json").is_file()
    assert (cat / "scene" / "scene.tif").is_file() and (cat / "scene" / "roads.geojson").is_file()
    d = json.loads((cat / "scene" / "scene.json").read_text())
    assert d["properties"]["proj:code"] == "EPSG:32633"
    assert d["properties"]["proj:shape"] == [64, 64]
    assert d["properties"]["proj:transform"][:6] == list(TRANSFORM)[:6]
    assert d["properties"]["gsd"] == abs(TRANSFORM[0])  # the transform's pixel size (CRS in metres)
    assert d["assets"]["image"]["href"] == "./scene.tif"
    assert [b["name"] for b in d["assets"]["image"]["bands"]] == ["red", "green", "blue"]  # STAC 1.1
    assert d["assets"]["image"]["file:checksum"] == sha256_multihash(
        hashlib.sha256(raster.read_bytes()).hexdigest()
    )
    vec = d["assets"]["vector-roads"]
    assert (
        vec["type"] == "application/geo+json"
        and "vector" in vec["roles"]
        and vec["href"] == "./roads.geojson"
    )
    cat_json = json.loads((cat / "catalog.json").read_text())
    assert cat_json["type"] == "Catalog"
    assert all(not l["href"].startswith("/") for l in cat_json["links"])

    (info,) = list_items(cat)
    assert info.id == "scene" == item.id
    assert info.crs == "EPSG:32633"
    assert info.bands == ["red", "green", "blue"]
    assert info.sha256 == hashlib.sha256(raster.read_bytes()).hexdigest()
    assert info.raster_path == (cat / "scene" / "scene.tif").resolve() and info.raster_path.is_absolute()
    assert [p.name for p in info.vector_paths] == ["roads.geojson"]
    cx, cy = TRANSFORM @ (32, 32)
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(cx, cy)
    assert info.footprint.contains(Point(lon, lat))
    assert info.bbox[0] <= lon <= info.bbox[2] and info.bbox[1] <= lat <= info.bbox[3]
    assert validate_catalog(cat) == []
    assert load_catalog(cat).catalog_type.value == "SELF_CONTAINED"
    for f in (cat / "catalog.json", cat / "scene" / "scene.json", cat / "scene" / "scene.tif"):
        assert f.stat().st_mode & 0o044, f"{f} is not readable by others (temp-file mode leaked)"
    assert not list(cat.rglob("*.tmp"))


def test_add_second_item_and_default_id(catalog, src):
    add_item(
        catalog,
        make_tif(
            src / "Other Scene.tif",
            crs="EPSG:4326",
            transform=Affine(1e-4, 0, 15, 0, -1e-4, 45.0),
            count=1,
            descriptions=["pan"],
        ),
    )
    items = {i.id: i for i in list_items(catalog)}
    assert set(items) == {"scene", "Other-Scene"}
    assert items["Other-Scene"].crs == "EPSG:4326" and items["Other-Scene"].bands == ["pan"]
    assert 7 < items["Other-Scene"].gsd < 12  # metres, not degrees
    assert validate_catalog(catalog) == []


def test_cli_add_list_validate(tmp_path, src):
    cat = tmp_path / "cat"
    r = runner.invoke(
        catalog_app,
        [
            "add",
            str(make_tif(src / "a.tif")),
            "--catalog",
            str(cat),
            "--id",
            "a",
            "--vectors",
            str(make_vectors(src / "b.geojson")),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(catalog_app, ["list", "--catalog", str(cat)])
    assert r.exit_code == 0 and "EPSG:32633" in r.stdout and "b.geojson" in r.stdout and "red" in r.stdout
    r = runner.invoke(catalog_app, ["validate", "--catalog", str(cat)])
    assert r.exit_code == 0, r.output


def test_raster_inside_catalog_referenced_in_place(tmp_path):
    cat = tmp_path / "cat"
    (cat / "landsat").mkdir(parents=True)
    raster = make_tif(cat / "landsat" / "img.tif")
    vec = make_vectors(cat / "landsat" / "truth.geojson")
    before = sorted(p.name for p in (cat / "landsat").iterdir())
    add_item(cat, raster, vectors=[vec], item_id="landsat")
    assert sorted(p.name for p in (cat / "landsat").iterdir()) == sorted(before + ["landsat.json"])
    d = json.loads((cat / "landsat" / "landsat.json").read_text())
    assert d["assets"]["image"]["href"] == "./img.tif"
    # another item may reference a file of another folder in place, relatively
    add_item(cat, raster, item_id="again")
    assert (
        json.loads((cat / "again" / "again.json").read_text())["assets"]["image"]["href"]
        == "../landsat/img.tif"
    )
    assert validate_catalog(cat) == []


# ---------------------------------------------------------------------------- refusals


def _refused(cat: Path, args: list[str], needle: str):
    before = tree_hash(cat)
    r = runner.invoke(catalog_app, ["add", *args, "--catalog", str(cat)])
    assert r.exit_code == 2, r.output
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert tree_hash(cat) == before  # byte-for-byte unchanged
    return lines[0]


def test_refuse_no_crs(catalog, src):
    bad = make_tif(src / "nocrs.tif", crs=None)
    msg = _refused(catalog, [str(bad)], "nocrs.tif")
    assert "coordinate reference system" in msg
    with pytest.raises(NotGeoreferencedError):
        add_item(catalog, bad)


def test_refuse_identity_transform(catalog, src):
    bad = make_tif(src / "pixels.tif", transform=None)
    msg = _refused(catalog, [str(bad)], "pixels.tif")
    assert "identity" in msg
    with pytest.raises(NotGeoreferencedError):
        add_item(catalog, bad)


def test_refuse_truncated(catalog, src):
    good = make_tif(src / "trunc.tif", tiled=True, size=256)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    _refused(catalog, [str(good)], "trunc.tif")
    with pytest.raises(RasterReadError):
        add_item(catalog, good)


def test_refuse_truncated_cog_blocks(catalog, src):
    """IFD at the start (COG layout): the file opens, its last blocks are gone."""
    from rasterio.shutil import copy

    tiled = make_tif(src / "full.tif", tiled=True, size=256)
    cog = src / "cut_cog.tif"
    copy(tiled, cog, driver="COG", BLOCKSIZE=64)
    data = cog.read_bytes()
    cog.write_bytes(data[: len(data) // 2])
    msg = _refused(catalog, [str(cog)], "cut_cog.tif")
    assert "truncated" in msg


def test_refuse_not_a_raster_and_missing(catalog, src):
    junk = src / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    _refused(catalog, [str(junk)], "junk.tif")
    _refused(catalog, [str(src / "missing.tif")], "missing.tif")


def test_refuse_into_new_dir_creates_nothing(tmp_path, src):
    cat = tmp_path / "never"
    r = runner.invoke(catalog_app, ["add", str(make_tif(src / "x.tif", crs=None)), "--catalog", str(cat)])
    assert r.exit_code == 2 and not cat.exists()


def test_refuse_existing_id_unless_replace(catalog, src):
    other = make_tif(src / "scene2.tif", transform=Affine(20.0, 0, 600000.0, 0, -20.0, 5000000.0))
    _refused(catalog, [str(other), "--id", "scene"], "--replace")
    with pytest.raises(CatalogError, match="already exists"):
        add_item(catalog, other, item_id="scene")
    r = runner.invoke(
        catalog_app, ["add", str(other), "--id", "scene", "--replace", "--catalog", str(catalog)]
    )
    assert r.exit_code == 0, r.output
    (info,) = list_items(catalog)
    assert info.raster_path.name == "scene2.tif" and info.vector_paths == []
    assert validate_catalog(catalog) == []


def test_refuse_bad_vectors(catalog, src):
    raster = make_tif(src / "v.tif")
    broken = src / "broken.geojson"
    broken.write_text("{ this is not json")
    _refused(catalog, [str(raster), "--vectors", str(broken)], "broken.geojson")
    _refused(catalog, [str(raster), "--vectors", str(src / "nope.geojson")], "nope.geojson")


def test_refuse_bad_id(catalog, src):
    _refused(catalog, [str(make_tif(src / "ok.tif")), "--id", "../evil"], "../evil")


# ---------------------------------------------------------------------------- validate


def test_validate_detects_modified_raster(catalog):
    raster = catalog / "scene" / "scene.tif"
    with rasterio.open(raster, "r+") as dst:
        dst.write(np.zeros((64, 64), dtype="uint8"), 1)
    problems = validate_catalog(catalog)
    assert any("checksum" in p and "scene.tif" in p for p in problems), problems
    r = runner.invoke(catalog_app, ["validate", "--catalog", str(catalog)])
    assert r.exit_code == 2 and "checksum" in r.stderr


def test_validate_detects_missing_asset(catalog):
    (catalog / "scene" / "roads.geojson").unlink()
    problems = validate_catalog(catalog)
    assert any("missing" in p and "roads.geojson" in p for p in problems), problems
    r = runner.invoke(catalog_app, ["validate", "--catalog", str(catalog)])
    assert r.exit_code == 2 and "roads.geojson" in r.stderr


def test_validate_detects_missing_item_and_catalog(catalog, tmp_path):
    (catalog / "scene" / "scene.json").unlink()
    assert any("scene.json" in p for p in validate_catalog(catalog))
    assert validate_catalog(tmp_path / "nothing") != []
    with pytest.raises(CatalogError):
        list_items(tmp_path / "nothing")
    r = runner.invoke(catalog_app, ["list", "--catalog", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- relocation


def test_catalog_relocatable(catalog, tmp_path):
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(catalog, moved)
    shutil.rmtree(catalog)
    (info,) = list_items(moved)
    assert info.raster_path == (moved / "scene" / "scene.tif").resolve() and info.raster_path.is_file()
    assert all(p.is_file() for p in info.vector_paths)
    assert validate_catalog(moved) == []
    r = runner.invoke(catalog_app, ["list", "--catalog", str(moved)])
    assert r.exit_code == 0 and "scene" in r.stdout


# ---------------------------------------------------------------------------- shipped catalog


def test_shipped_catalog_valid():
    cat = default_catalog_dir()
    assert (cat / "catalog.json").is_file(), "the shipped catalog is missing"
    ids = {i.id for i in list_items(cat)}
    assert {"sample", "landsat"} <= ids
    assert validate_catalog(cat) == []
