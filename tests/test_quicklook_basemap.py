"""The quicklook's basemap: block means of a raster without overviews, read in strips.

Expected values: a plain per-block loop over the whole array (masked pixels left out), and
GDAL's own average resampling (which rounds to the band's integer type: within 0.5).
"""

from __future__ import annotations

import math

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from georeason.geo.export.quicklook import _block_mean, read_basemap


def _raster(path, width, height, nodata=0):
    rng = np.random.default_rng(7)
    data = rng.integers(1, 4000, size=(3, height, width), dtype="uint16")
    data[:, 10:40, 20:90] = nodata  # a nodata patch covering whole blocks and parts of others
    profile = dict(
        driver="GTiff", width=width, height=height, count=3, dtype="uint16", nodata=nodata,
        crs="EPSG:32618", transform=Affine(10, 0, 500000, 0, -10, 4500000), tiled=True,
        blockxsize=64, blockysize=64,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def test_block_mean_equals_a_plain_loop_over_blocks(tmp_path):
    path = tmp_path / "r.tif"
    data = _raster(path, 203, 157)  # not a multiple of k: partial blocks at the right and bottom
    k = 5
    with rasterio.open(path) as src:
        got = _block_mean(src, [1, 2, 3], k, strip_mpx=0.002)  # many strips
    h, w = math.ceil(157 / k), math.ceil(203 / k)
    assert got.shape == (3, h, w)
    for b in range(3):
        for r in range(h):
            for c in range(w):
                block = data[b, r * k : (r + 1) * k, c * k : (c + 1) * k]
                valid = block[block != 0]
                if valid.size == 0:
                    assert got.mask[b, r, c]
                else:
                    assert not got.mask[b, r, c]
                    assert abs(float(got[b, r, c]) - valid.mean()) < 1e-3


def test_basemap_matches_gdal_average_and_its_grid(tmp_path):
    path = tmp_path / "r.tif"
    _raster(path, 400, 240)
    base = read_basemap(path, max_px=100)  # k = 4, whole blocks
    with rasterio.open(path) as src:
        gdal = src.read([1, 2, 3], out_shape=(3, 60, 100), resampling=Resampling.average, masked=True)
        assert base.transform == src.transform @ Affine.scale(4, 4)
        ours = _block_mean(src, [1, 2, 3], 4)
    assert base.rgb.shape == (60, 100, 3)
    both = ~np.ma.getmaskarray(gdal) & ~np.ma.getmaskarray(ours)
    assert both.sum() > 0.9 * both.size
    assert np.abs(gdal.data[both].astype("f8") - ours.data[both].astype("f8")).max() <= 0.5
