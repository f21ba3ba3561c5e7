"""geo/raster/grid.py: the one grid type, read once, used for pixel answers and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import CRS

from georeason.geo.raster.grid import RasterGrid

SAMPLE = Path(__file__).resolve().parents[1] / "data_catalog" / "sample" / "sample_scene.tif"


def test_grid_matches_rasterio():
    g = RasterGrid.read(SAMPLE)
    with rasterio.open(SAMPLE) as src:
        assert g.transform == src.transform
        assert g.shape == (src.height, src.width)
        assert g.crs == CRS.from_wkt(src.crs.to_wkt())
        assert g.nodata == src.nodata
        assert len(g.bands) == src.count
        # pixel corners, as rasterio's xy(offset="ul") gives them
        fn, crs = g.pixel
        xy = fn(np.array([[0.0, 0.0], [7.0, 3.0]]))
        assert tuple(xy[1]) == src.xy(3, 7, offset="ul")
        assert crs == g.crs
        l, b, r, t = src.bounds
    assert g.bounds == (l, b, r, t)


def test_mask_writer_writes_on_the_grid(tmp_path):
    g = RasterGrid.read(SAMPLE)
    writer = g.mask_writer(lambda sid: tmp_path / f"{sid}.tif")
    with rasterio.open(SAMPLE) as src:
        assert src.dataset_mask()[1000:1010, 1000:1010].all()  # valid data there
        x0, y1 = src.xy(1000, 1000, offset="ul")
    square = shapely.box(x0, y1 - 100, x0 + 100, y1)  # pixels rows/cols 1000-1009 (10 m pixels)
    path, n = writer(square, g.crs, "s1")
    assert n == 100
    with rasterio.open(path) as m:
        assert m.transform == g.transform and (m.height, m.width) == g.shape
        data = m.read(1)
        assert int((data == 1).sum()) == 100 and data[1000:1010, 1000:1010].all()
