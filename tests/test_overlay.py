"""Visual-overlay references: a red outline drawn on an RGB image is a region to ask about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod

from georeason.models.overlay import find_markers


def _scene(path: Path) -> Path:
    """200 x 200 px RGB at 10 m (UTM 33N): grey land, a red square outline (cols 40-79,
    rows 60-99, 2 px stroke) and a second, open red stroke that encloses nothing."""
    img = np.full((3, 200, 200), 110, np.uint8)
    img[:, 60:100, 40:80] = 110
    red = np.array([255, 0, 0], np.uint8)[:, None, None]
    img[:, 60:62, 40:80] = red
    img[:, 98:100, 40:80] = red
    img[:, 60:100, 40:42] = red
    img[:, 60:100, 78:80] = red
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=200,
        height=200,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 5_000_000),
    ) as dst:
        dst.write(img)
        for i, n in enumerate(("red", "green", "blue"), 1):
            dst.set_band_description(i, n)
    return path


def test_outline_becomes_the_enclosed_region(tmp_path):
    with rasterio.open(_scene(tmp_path / "s.tif")) as src:
        dets = find_markers(np.ma.asarray(src.read()), ["red", "green", "blue"])
    assert len(dets) == 1
    assert dets[0].geometry.bounds == (40.0, 60.0, 80.0, 100.0)
    assert dets[0].geometry.area == 40 * 40  # filled: the stroke and everything inside


def test_ask_about_the_marked_region_on_a_raster(tmp_path):
    tif = _scene(tmp_path / "s.tif")
    exe = Path(sys.executable).with_name("georeason")
    r = subprocess.run(
        [
            str(exe),
            "ask",
            "What is the area of the marked region?",
            "--raster",
            str(tif),
            "--json",
            "--tile-px",
            "128",
            "--overlap-px",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    # independent value: the 400 m x 400 m square, measured on the ellipsoid from its corners
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    xs, ys = [500400, 500800, 500800, 500400], [4999400, 4999400, 4999000, 4999000]
    lon, lat = t.transform(xs, ys)
    want = abs(Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)[0])
    assert abs(d["answer"] - want) / want < 1e-3
