"""models/spectral.py and geo/grounding/detections.py: indices, per-scene thresholds, objects in metres."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from grounding_helpers import ground_raster
from rasterio.warp import Resampling, calculate_default_transform, reproject

from georeason.errors import InputError
from georeason.geo.grounding.detections import (
    Detection,
    Grounder,
    config_key,
    to_crs_geometry,
    world_to_pixel,
)
from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.geo.vector.crs import to_lonlat
from georeason.geo.vector.measure import area_m2
from georeason.models.spectral import (
    SpectralGrounder,
    band_roles,
    compute_index,
    fit_thresholds,
    otsu_threshold,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_catalog" / "sample" / "sample_scene.tif"
TRUTH = ROOT / "data_catalog" / "sample" / "sample_truth.gpkg"
LANDSAT = ROOT / "data_catalog" / "landsat" / "landsat_rgb_utm18n.tif"

WATER = (600, 500, 300, 150)
LAND = (800, 1000, 1200, 2000)


@pytest.fixture(scope="module")
def sample_grounder():
    return SpectralGrounder.from_raster(SAMPLE, min_area_m2=2000)


def iou(a, b):
    return a.intersection(b).area / a.union(b).area


def test_grounder_protocol_and_config():
    g = SpectralGrounder({"ndwi": 0.1}, min_area_m2=100, simplify_m=5)
    assert isinstance(g, Grounder)
    assert json.loads(json.dumps(g.config)) == g.config
    assert config_key(g) == config_key(SpectralGrounder({"ndwi": 0.1}, min_area_m2=100, simplify_m=5))
    assert config_key(g) != config_key(SpectralGrounder({"ndwi": 0.2}, min_area_m2=100, simplify_m=5))
    assert g.supports("reservoir") and not g.supports("car")


def test_unknown_class_and_missing_brightness_threshold():
    px = np.ma.MaskedArray(np.ones((4, 8, 8), "uint16"))
    tile = next(iter(_one_tile()))
    with pytest.raises(InputError, match="car"):
        SpectralGrounder().ground(px, tile, ["car"], ["blue", "green", "red", "nir"])
    with pytest.raises(InputError, match="fit_thresholds"):
        SpectralGrounder().ground(px, tile, ["bright"], ["red", "green", "blue", "x"])


def _one_tile(tmp=None):
    import tempfile

    d = Path(tempfile.mkdtemp())
    p = d / "one.tif"
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(10, 0, 5e5, 0, -10, 5e6),
    ) as ds:
        ds.write(np.ones((1, 8, 8), "uint8"))
    return plan_tiles(p, 8, 0)


def test_indices_and_otsu():
    px = np.ma.MaskedArray(np.array(WATER, float).reshape(4, 1, 1))
    roles = band_roles(["blue", "green", "red", "nir"])
    assert compute_index("ndwi", px, roles)[0, 0] > 0.5
    assert compute_index("ndvi", px, roles)[0, 0] < 0
    zero = np.ma.MaskedArray(np.zeros((4, 1, 1)))
    assert compute_index("ndwi", zero, roles).mask.all()  # 0/0 is masked, not nan
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(-0.5, 0.05, 5000), rng.normal(0.5, 0.05, 1000)])
    assert -0.3 < otsu_threshold(v) < 0.3


def test_sample_thresholds_separate_classes():
    t = fit_thresholds(SAMPLE)
    assert set(t) == {"ndwi", "ndvi", "brightness", "brightness_high"}
    assert -0.2 < t["ndwi"] < 0.5  # water ~ +0.54, land < -0.2
    assert 0.3 < t["ndvi"] < 0.8  # fitted on non-water pixels: bare/dry land vs forest
    # built-up is the upper mode of the bright pixels: between bare fields (visible mean
    # ~1600) and roofs (~2900), so fields are "bare" but not "building"
    assert 1000 < t["brightness"] < 1600 < t["brightness_high"] < 2900


def test_sample_lakes_and_river_found(sample_grounder):
    truth = gpd.read_file(TRUTH)
    objs = ground_raster(
        SAMPLE, sample_grounder, ["lake", "river"], tile_px=512, overlap_px=64, min_area_m2=2000
    )
    # the grounder finds water; the pipeline keeps compact bodies as lakes, long thin ones as rivers
    assert sorted(o.label for o in objs) == ["lake", "lake", "lake", "river"]
    for _, row in truth[truth["class"].isin(["lake", "river"])].iterrows():
        geoms = [o.geometry for o in objs if o.label == row["class"]]
        best = max(iou(row.geometry, g) for g in geoms)
        assert best > 0.85, (row["id"], best)
    lakes_only = ground_raster(
        SAMPLE, sample_grounder, ["lake"], tile_px=512, overlap_px=64, min_area_m2=2000
    )
    assert len(lakes_only) == 3  # asked for lakes, the river is not one
    largest = max(objs, key=lambda o: o.geometry.area if o.label == "lake" else 0)
    lake1 = truth.loc[truth["id"] == "lake-1", "geometry"].iloc[0]
    assert iou(largest.geometry, lake1) > 0.95
    assert all(0.5 <= o.score <= 1 for o in objs)


def test_sample_vegetation_and_buildings(sample_grounder):
    truth = gpd.read_file(TRUTH)
    objs = ground_raster(
        SAMPLE, sample_grounder, ["forest", "building"], tile_px=1024, overlap_px=128, min_area_m2=2000
    )
    veg = [o.geometry for o in objs if o.label == "forest"]
    bright = shapely.union_all([o.geometry for o in objs if o.label == "building"])
    assert len(veg) == 6
    for g in truth[truth["class"] == "vegetation"].geometry:
        assert max(iou(g, v) for v in veg) > 0.85
    for g in truth[truth["class"] == "building"].geometry:
        assert bright.intersection(g).area > 0.5 * g.area
    # bare fields are bright but not built-up: no building object overlaps a field
    assert len([o for o in objs if o.label == "building"]) == (truth["class"] == "building").sum()
    for g in truth[truth["class"] == "field"].geometry:
        assert bright.intersection(g).area < 0.01 * g.area


def _write_blobs(path):
    """UTM raster: water squares of 4x4 px (1600 m2) and 12x12 px (14400 m2) on land."""
    arr = np.empty((4, 120, 160), "uint16")
    arr[:] = np.array(LAND, "uint16")[:, None, None]
    for r, c, s in [(10, 10, 4), (10, 60, 4), (70, 20, 4), (40, 100, 12), (90, 120, 12)]:
        arr[:, r : r + s, c : c + s] = np.array(WATER, "uint16")[:, None, None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=160,
        height=120,
        count=4,
        dtype="uint16",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 5_000_000),
        nodata=0,
    ) as d:
        d.write(arr)
        for i, n in enumerate(("blue", "green", "red", "nir"), 1):
            d.set_band_description(i, n)
    return path


def _to_4326(src_path, dst_path):
    with rasterio.open(src_path) as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        prof = src.profile | {"crs": "EPSG:4326", "transform": t, "width": w, "height": h}
        with rasterio.open(dst_path, "w", **prof) as dst:
            for b in range(1, 5):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.nearest)
                dst.set_band_description(b, src.descriptions[b - 1])
    return dst_path


@pytest.mark.parametrize("tile_px", [64, 512])
def test_min_area_in_metres_same_in_utm_and_4326(tmp_path, tile_px):
    utm = _write_blobs(tmp_path / "utm.tif")
    geo = _to_4326(utm, tmp_path / "geo.tif")
    g = SpectralGrounder({"ndwi": 0.0}, min_area_m2=5000)
    found = {}
    for name, p in (("utm", utm), ("geo", geo)):
        with rasterio.open(p) as src:
            crs = src.crs
        objs = ground_raster(p, g, ["water"], tile_px=tile_px, overlap_px=16, min_area_m2=5000)
        areas = sorted(area_m2(to_lonlat(o.geometry, crs)) for o in objs)
        found[name] = areas
    assert len(found["utm"]) == len(found["geo"]) == 2
    for a, b in zip(found["utm"], found["geo"]):
        assert abs(a - 14400) / 14400 < 0.02 and abs(b - 14400) / 14400 < 0.15
    # without the minimum all five are found in both
    g0 = SpectralGrounder({"ndwi": 0.0})
    assert len(ground_raster(utm, g0, ["water"], tile_px=tile_px, overlap_px=16)) == 5
    assert len(ground_raster(geo, g0, ["water"], tile_px=tile_px, overlap_px=16)) == 5


def test_detections_never_cover_nodata(tmp_path):
    arr = np.empty((4, 64, 64), "uint16")
    arr[:] = np.array(WATER, "uint16")[:, None, None]
    arr[:, :, 40:] = 0  # nodata on the right
    p = tmp_path / "nd.tif"
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=4,
        dtype="uint16",
        crs="EPSG:32633",
        transform=Affine(10, 0, 5e5, 0, -10, 5e6),
        nodata=0,
    ) as d:
        d.write(arr)
    g = SpectralGrounder({"ndwi": 0.0})
    with rasterio.open(p) as src:
        (tile,) = list(plan_tiles(src, 128, 0))
        dets = g.ground(read_tile(src, tile), tile, ["water"], ["blue", "green", "red", "nir"])
    assert len(dets) == 1 and dets[0].kind == "polygon"
    assert dets[0].geometry.bounds == (0, 0, 40, 64)  # pixel coords: stops at the nodata
    world = to_crs_geometry(dets[0], tile)
    assert world.bounds == (5e5, 5e6 - 640, 5e5 + 400, 5e6)
    assert world_to_pixel(world, tile).equals(dets[0].geometry)


def test_mask_detection_to_crs():
    tile = next(iter(_one_tile()))
    m = np.zeros((8, 8), bool)
    m[2:4, 2:6] = True
    g = to_crs_geometry(Detection("x", 1.0, "mask", m), tile)
    assert g.area == 8 * 100
    with pytest.raises(InputError):
        Detection("x", 1.0, "blob", m)


def test_landsat_water_found():
    g = SpectralGrounder.from_raster(LANDSAT, ["water"], min_area_m2=1e6)
    assert g.thresholds.keys() == {"vis_water"}
    objs = ground_raster(LANDSAT, g, ["water"], tile_px=256, overlap_px=32, min_area_m2=1e6)
    assert objs and {o.label for o in objs} == {"water"}
    with rasterio.open(LANDSAT) as src:
        t = src.transform
        valid_area = (src.dataset_mask() > 0).sum() * abs(t.a * t.e)
        nodata_corner = shapely.Point(t @ (3, 3))
        shallow_bank = shapely.Point(t @ (100.5, 450.5))  # turquoise shallows west of the island
    water = shapely.union_all([o.geometry for o in objs])
    assert water.contains(shallow_bank)
    assert not water.intersects(nodata_corner)
    assert 0.15 < water.area / valid_area < 0.7
    assert max(o.geometry.area for o in objs) > 1e9  # the shallow banks: > 1000 km2
