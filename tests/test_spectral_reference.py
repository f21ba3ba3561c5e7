"""The spectral grounder's fast path (bands converted once, bincount scores, one vectorising
pass per tile, bulk polygon building, one seam union for names sharing a mask) gives the
same objects as a straightforward reference: per-pixel index formulas in numpy, scipy's
labelling, each component's polygon as the union of its pixel squares (shapely, no
rasterio), and each component's score as a plain mean over its pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from grounding_helpers import ground_raster
from rasterio.transform import from_origin
from scipy import ndimage

from georeason.geo.grounding.detections import pixel_to_world
from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.models.spectral import SpectralGrounder

BANDS = ["blue", "green", "red", "nir"]
T = {"ndwi": 0.2, "ndvi": 0.35}


def _scene(path: Path, h: int = 150, w: int = 170, seed: int = 3) -> np.ndarray:
    """Smooth random water/vegetation/bare patches with noise and a nodata corner (uint16)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((2, h, w)), 4)
    water = field[0] > 0.12
    veg = (field[1] > 0.05) & ~water
    px = np.empty((4, h, w), np.float64)
    px[:] = np.array([1100, 1400, 1800, 2300])[:, None, None]
    px[:, veg] = np.array([380, 750, 330, 3300])[:, None]
    px[:, water] = np.array([650, 760, 420, 160])[:, None]
    px *= 1 + 0.15 * rng.standard_normal(px.shape)  # noise: ragged edges, holes, specks
    data = np.clip(px, 1, 60000).astype(np.uint16)
    data[:, :20, :25] = 0  # nodata
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


def _reference(data: np.ndarray, index: str, t: float) -> list[tuple[shapely.Geometry, float]]:
    """Components of ``index > t`` as (union of pixel squares in pixel coords, mean score)."""
    b, g, r, n = (data[i].astype(np.float32) for i in range(4))
    valid = (data != 0).all(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (g - n) / (g + n) if index == "ndwi" else (n - r) / (n + r)
    member = (v > t) & valid & np.isfinite(v)
    labels, count = ndimage.label(member)  # 4-connectivity
    out = []
    for k in range(1, count + 1):
        rows, cols = np.nonzero(labels == k)
        geom = shapely.union_all(shapely.box(cols, rows, cols + 1, rows + 1))
        score = float(np.mean(np.clip(0.5 + (v[rows, cols].astype(np.float64) - t) / 0.4, 0, 1)))
        out.append((shapely.normalize(shapely.simplify(geom, 0)), score))  # no collinear vertices
    return out


def _match(found, expected):
    assert len(found) == len(expected)
    exp = {shapely.to_wkb(g): s for g, s in expected}
    for g, s in found:
        key = shapely.to_wkb(shapely.normalize(shapely.simplify(g, 0)))
        assert key in exp, f"a polygon the reference does not have: {g.wkt[:120]}"
        assert s == pytest.approx(exp[key], abs=1e-5)


def test_tile_detections_equal_the_reference(tmp_path):
    path = tmp_path / "s.tif"
    data = _scene(path)
    g = SpectralGrounder(T)
    tile = next(iter(plan_tiles(path, 512, 0)))  # the whole scene as one tile
    dets = g.ground(read_tile(path, tile), tile, ["water", "lake", "vegetation"], BANDS)
    for label, index in (("water", "ndwi"), ("lake", "ndwi"), ("vegetation", "ndvi")):
        found = [(d.geometry, d.score) for d in dets if d.label == label]
        assert all(d.kind == "polygon" for d in dets)
        _match(found, _reference(data, index, T[index]))
    assert len({d.label for d in dets}) == 3


def test_merged_objects_equal_the_reference_whatever_the_tiling(tmp_path):
    path = tmp_path / "s.tif"
    data = _scene(path)
    with rasterio.open(path) as src:
        transform = src.transform
    for tile_px, overlap in ((48, 8), (64, 0), (512, 0)):
        objs = ground_raster(
            path, SpectralGrounder(T), ["water", "lake", "vegetation"], tile_px=tile_px, overlap_px=overlap
        )
        for label, index in (("water", "ndwi"), ("lake", "ndwi"), ("vegetation", "ndvi")):
            ref = {
                shapely.to_wkb(shapely.normalize(pixel_to_world(geom, transform)))
                for geom, _ in _reference(data, index, T[index])
            }
            got = {shapely.to_wkb(shapely.normalize(o.geometry)) for o in objs if o.label == label}
            assert got == ref, (tile_px, label, len(got), len(ref))
