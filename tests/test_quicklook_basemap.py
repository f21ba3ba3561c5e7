"""The quicklook's basemap: block means of a raster without overviews, read in strips.

Expected values: a plain per-block loop over the whole array (masked pixels left out), and
GDAL's own average resampling (which rounds to the band's integer type: within 0.5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
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


@pytest.mark.parametrize(
    ("dtype", "nodata", "high", "k", "block"),
    [
        ("uint16", 0, 4000, 5, None),
        ("uint16", 7, 4000, 4, None),  # a nonzero nodata value
        ("uint16", None, 4000, 3, None),  # no nodata: every pixel valid
        ("uint8", 255, 255, 6, None),
        ("uint16", 0, 65535, 20, None),  # block sums above 2**24: the general float32 path
        ("int16", -1, 4000, 4, None),  # signed: the general path
        # tiled files: windows a block row high and whole blocks wide (columns chunked)
        ("uint16", 0, 4000, 5, 16),
        ("uint16", 7, 4000, 3, 16),
        ("uint16", 0, 65535, 16, 32),  # windows whose sums take the float32 path
    ],
)
def test_integer_block_means_equal_the_float32_path_byte_for_byte(
    tmp_path, monkeypatch, dtype, nodata, high, k, block
):
    """Unsigned bands are read once and summed in integers; the result is the general
    (masked read, float32 sums, full-width strips) path's, bit for bit, so the quicklooks
    do not change."""
    import georeason.geo.export.quicklook as ql

    rng = np.random.default_rng(3)
    data = rng.integers(0, high, size=(3, 131, 177), dtype=dtype, endpoint=True)
    if nodata is not None:
        data[:, 5:30, 10:70] = nodata
        data[0, 100, 3] = nodata
    profile = dict(
        driver="GTiff", width=177, height=131, count=3, dtype=dtype, nodata=nodata,
        crs="EPSG:32618", transform=Affine(10, 0, 500000, 0, -10, 4500000),
    )  # fmt: skip
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    strip = 0.001 if block else 0.01  # strips thinner than a block row: tile-aligned windows
    path = tmp_path / "r.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        assert (ql._validity_by_value(src, [1, 2, 3]) is not None) == dtype.startswith("uint")
        fast = _block_mean(src, [1, 2, 3], k, strip_mpx=strip)
        monkeypatch.setattr(ql, "_validity_by_value", lambda src, idx: None)
        general = _block_mean(src, [1, 2, 3], k, strip_mpx=strip)
    assert fast.dtype == general.dtype == np.float32
    assert np.array_equal(np.ma.getmaskarray(fast), np.ma.getmaskarray(general))
    assert fast.filled(0).tobytes() == general.filled(0).tobytes()
    # and both are the mean of the valid pixels of each block (independently, per block)
    r, c = 100 // k, 120 // k  # outside the nodata patch
    block = data[1, r * k : (r + 1) * k, c * k : (c + 1) * k].astype(float)
    valid = block[block != nodata] if nodata is not None else block.ravel()
    assert abs(float(fast[1, r, c]) - valid.mean()) < 1e-3 * max(1.0, valid.mean())
