"""geo/raster/io.py: refusals, path forms, raster_info, checksums, pixel sizes."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from georeason.errors import NotGeoreferencedError, RasterReadError, RotatedRasterError
from georeason.geo.raster.io import (
    band_names,
    file_sha256,
    normalize_path,
    open_raster,
    pixel_size_m,
    raster_info,
)

UTM = Affine(10, 0, 500000, 0, -10, 5_000_000)


def write(path, arr, transform=UTM, crs="EPSG:32633", nodata=None, **kw):
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    profile = dict(
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        transform=transform,
        nodata=nodata,
        **kw,
    )
    if crs is not None:
        profile["crs"] = crs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as d:
            d.write(arr)
    return path


def test_no_crs_refused_with_fix(tmp_path):
    p = write(tmp_path / "nocrs.tif", np.ones((8, 8), "uint8"), crs=None)
    with pytest.raises(NotGeoreferencedError) as ei:
        with open_raster(p):
            pass
    msg = str(ei.value)
    assert "nocrs.tif" in msg and "gdal_edit.py -a_srs" in msg
    assert isinstance(ei.value, ValueError)


def test_identity_transform_refused(tmp_path):
    p = write(tmp_path / "plain.tif", np.ones((8, 8), "uint8"), transform=Affine.identity())
    with pytest.raises(NotGeoreferencedError, match="plain.tif.*identity"):
        with open_raster(p):
            pass


def test_rotated_refused(tmp_path):
    rot = Affine(10, 2, 500000, 2, -10, 5_000_000)
    p = write(tmp_path / "rot.tif", np.ones((8, 8), "uint8"), transform=rot)
    with pytest.raises(RotatedRasterError, match="rot.tif"):
        with open_raster(p):
            pass


@pytest.mark.parametrize("frac", [0.3, 0.7, 0.95])
def test_truncated_refused(tmp_path, frac):
    rng = np.random.default_rng(0)
    p = write(
        tmp_path / "full.tif",
        rng.integers(0, 5000, (2, 512, 512)).astype("uint16"),
        tiled=True,
        blockxsize=128,
        blockysize=128,
        compress="deflate",
    )
    data = p.read_bytes()
    q = tmp_path / f"cut_{frac}.tif"
    q.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(RasterReadError) as ei:
        with open_raster(q):
            pass
    assert f"cut_{frac}.tif" in str(ei.value)
    assert isinstance(ei.value, OSError)


def test_garbage_and_missing_refused(tmp_path):
    g = tmp_path / "garbage.tif"
    g.write_bytes(b"this is not a tiff" * 100)
    with pytest.raises(RasterReadError, match="garbage.tif"):
        with open_raster(g):
            pass
    with pytest.raises(RasterReadError, match="nope.tif"):
        with open_raster(tmp_path / "nope.tif"):
            pass


def test_path_forms(tmp_path):
    p = write(tmp_path / "a b.tif", np.ones((8, 8), "uint8"))
    url = p.as_uri()  # file:///.../a%20b.tif
    assert normalize_path(url) == str(p)
    with open_raster(url) as src:
        assert src.width == 8
    # GDAL virtual paths (/vsimem/ here, /vsicurl/ in real use) go through the same code.
    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:32633", transform=UTM
        ) as d:
            d.write(np.ones((1, 4, 4), "uint8"))
        assert mem.name.startswith("/vsimem/")
        with open_raster(mem.name) as src:
            assert src.count == 1


def test_raster_info_and_checksum(tmp_path):
    arr = np.arange(3 * 20 * 30, dtype="uint16").reshape(3, 20, 30)
    p = write(tmp_path / "i.tif", arr, nodata=0)
    with rasterio.open(p, "r+") as d:
        d.set_band_description(1, "Blue")
    info = raster_info(p, checksum=True)
    assert (info.width, info.height, info.count, info.dtype, info.nodata) == (30, 20, 3, "uint16", 0)
    assert info.crs.to_epsg() == 32633
    assert info.bounds == (500000, 5_000_000 - 200, 500300, 5_000_000)
    assert info.band_names[0] == "blue"
    assert info.sha256 == hashlib.sha256(p.read_bytes()).hexdigest() == file_sha256(p)
    lon, lat = info.footprint_lonlat.centroid.coords[0]
    assert 14 < lon < 16 and 44 < lat < 46
    assert abs(info.res_m[0] - 10) < 0.01


def test_band_names_fall_back_to_colorinterp(tmp_path):
    p = write(tmp_path / "rgb.tif", np.ones((3, 4, 4), "uint8"), photometric="RGB")
    with rasterio.open(p) as src:
        assert band_names(src) == ("red", "green", "blue")
    p = write(tmp_path / "two.tif", np.ones((2, 4, 4), "uint8"))
    with rasterio.open(p) as src:
        assert band_names(src) == ("band1", "band2")


def test_pixel_size_m_geographic_vs_utm():
    w, h = pixel_size_m(Affine(1e-4, 0, 15, 0, -1e-4, 0.00005), "EPSG:4326")
    assert abs(w - 11.13) < 0.01 and abs(h - 11.06) < 0.01  # equator
    w60, _ = pixel_size_m(Affine(1e-4, 0, 15, 0, -1e-4, 60.00005), "EPSG:4326")
    assert abs(w60 / w - 0.5) < 0.01  # cos(60)
    wu, hu = pixel_size_m(UTM, "EPSG:32633")
    assert abs(wu - 10) < 0.01 and abs(hu - 10) < 0.01


def test_gdal_cache_size_from_the_environment():
    from georeason.geo.raster.io import DEFAULT_GDAL_CACHEMAX_MB, gdal_cache_mb

    assert gdal_cache_mb({}) == DEFAULT_GDAL_CACHEMAX_MB
    assert gdal_cache_mb({"GEOREASON_GDAL_CACHEMAX_MB": "48"}) == 48
    with pytest.warns(UserWarning, match="GEOREASON_GDAL_CACHEMAX_MB"):
        assert gdal_cache_mb({"GEOREASON_GDAL_CACHEMAX_MB": "lots"}) == DEFAULT_GDAL_CACHEMAX_MB


def test_gdal_cache_is_bounded_in_a_fresh_process(tmp_path):
    """Importing the raster module sets GDAL_CACHEMAX (when unset) before GDAL sizes its cache."""
    import os
    import subprocess
    import sys

    code = (
        "import os, georeason.geo.raster.io as io, rasterio\n"
        "from rasterio.env import get_gdal_config\n"
        "print(os.environ['GDAL_CACHEMAX'], get_gdal_config('GDAL_CACHEMAX'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GDAL_CACHEMAX", "GEOREASON_GDAL_CACHEMAX_MB")}
    env["GEOREASON_GDAL_CACHEMAX_MB"] = "40"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["40MB", str(40 * 1024 * 1024)]  # GDAL reports its size in bytes
