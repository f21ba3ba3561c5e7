"""The per-tile fast paths of the spectral grounder give exactly what the plain formulas give:
the in-place normalised difference, the scores over member pixels only, and a whole tile's
detections against a plain re-implementation of the steps (one ``shapes`` call over the
whole label raster, plain per-label means)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import shape

from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.models.spectral import SpectralGrounder, _nd, component_scores

BANDS = ["blue", "green", "red", "nir"]


@pytest.mark.parametrize("seed", range(4))
def test_nd_equals_the_where_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 50, (64, 80)).astype(np.float32)
    b = rng.integers(0, 50, (64, 80)).astype(np.float32)
    a[0, :5] = b[0, :5] = 0  # 0 / 0
    a[1, :3] = np.inf  # undeclared bad pixels of a float raster
    b[2, :3] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        s = a + b
        ref = np.where(s != 0, (a - b) / np.where(s != 0, s, 1), np.nan)
    got = _nd(a, b)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)  # NaN where NaN, every other value bit for bit


@pytest.mark.parametrize("seed", range(4))
def test_scores_over_members_equal_scores_over_all_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.2, 0.3, (90, 70)).astype(np.float32)
    member = values > 0.25
    labels, n = ndimage.label(member)
    c_all, s_all = component_scores(labels, n, values, 0.25, 0.2)
    c_mem, s_mem = component_scores(labels, n, values, 0.25, 0.2, member)
    np.testing.assert_array_equal(c_mem[1:], c_all[1:])
    np.testing.assert_array_equal(s_mem, s_all)  # the same sums in the same order: identical
    # and both are the plain per-label mean of the clipped pixel scores
    conf = np.clip(0.5 + (values.astype(np.float64) - 0.25) / 0.4, 0, 1)
    plain = [conf[labels == k].mean() for k in range(1, n + 1)]
    np.testing.assert_allclose(s_mem, plain, rtol=1e-6)


def _write(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((2, h, w)), 5)
    water = field[0] > 0.1
    veg = (field[1] > 0.0) & ~water
    px = np.empty((4, h, w))
    px[:] = np.array([1100, 1400, 1800, 2300])[:, None, None]
    px[:, veg] = np.array([380, 750, 330, 3300])[:, None]
    px[:, water] = np.array([650, 760, 420, 160])[:, None]
    px *= 1 + 0.2 * rng.standard_normal(px.shape)  # ragged edges, holes, specks
    data = np.clip(px, 1, 60000).astype(np.uint16)
    data[:, :15, :30] = 0  # nodata
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=4,
        dtype="uint16",
        crs="EPSG:32633",
        transform=from_origin(500000, 5300000, 10, 10),
        nodata=0,
    ) as dst:
        dst.write(data)
        dst.descriptions = tuple(BANDS)
    return data


def _plain_tile(pixels: np.ma.MaskedArray, index: str, t: float, min_px: float) -> list[tuple[str, float]]:
    """The grounder's steps written plainly: index, threshold, label, drop small interior
    components, one ``shapes`` call over the whole label raster, plain means."""
    d = np.ma.getdata(pixels).astype(np.float32)
    bad = np.ma.getmaskarray(pixels).any(axis=0)
    b, g, r, n = d
    with np.errstate(divide="ignore", invalid="ignore"):
        a, c = (g, n) if index == "ndwi" else (n, r)
        v = np.where(a + c != 0, (a - c) / np.where(a + c != 0, a + c, 1), np.nan).astype(np.float32)
    member = (v > t) & ~bad & np.isfinite(v)
    labels, count = ndimage.label(member)
    edge = np.zeros(count + 1, bool)
    for e in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[e] = True
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = (sizes >= min_px) | edge
    keep[0] = False
    conf = np.clip(np.float32(0.5) + (v - np.float32(t)) / np.float32(0.4), 0, 1)
    out = []
    found = shapes(labels.astype(np.int32), mask=keep[labels], transform=Affine.translation(3, 3))
    for geom, value in found:
        k = int(value)
        g_ = shapely.transform(shape(geom), lambda xy: xy - 3)
        if not g_.is_valid:
            g_ = shapely.make_valid(g_)
        out.append((g_.wkt, float(conf[labels == k].astype(np.float64).mean())))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_tile_detections_equal_the_plain_steps(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "s.tif"
    _write(path, 300, 260, seed)
    thresholds = {"ndwi": 0.2, "ndvi": 0.35}
    # min area: 3 pixels of 100 m2; the grounder drops interior components < half of it (1.5 px)
    grounder = SpectralGrounder(thresholds, min_area_m2=300.0)
    with rasterio.open(path) as src:
        tiles = list(plan_tiles(src, 128, 16))
        assert len(tiles) > 4
        for tile in tiles:
            pixels = read_tile(src, tile)
            dets = grounder.ground(pixels, tile, ["water", "vegetation"], BANDS)
            got_w = [(d.geometry.wkt, d.score) for d in dets if d.label == "water"]
            got_v = [(d.geometry.wkt, d.score) for d in dets if d.label == "vegetation"]
            for got, index in ((got_w, "ndwi"), (got_v, "ndvi")):
                ref = _plain_tile(pixels, index, thresholds[index], 1.5)
                assert [g for g, _ in got] == [g for g, _ in ref]  # same polygons, same order
                np.testing.assert_allclose([s for _, s in got], [s for _, s in ref], rtol=1e-6)
