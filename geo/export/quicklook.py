"""Quicklook PNG: a decimated true-colour view of a raster with object outlines burnt in.

Bounded memory: the raster is read once at reduced resolution (``max_px`` on the long
side). Bands are picked by name (red, green, blue; else the first three, else the first
band as grey) and stretched per band between the 2nd and 98th percentiles of the valid
pixels. Outlines: grounded/vector objects in yellow, answer evidence in magenta (objects
smaller than 2 x 2 display pixels are not outlined: they would only be specks).
Written with GDAL's PNG driver (no imaging dependency), atomically.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import rasterize

from georeason.geo.export.layers import atomic_path
from georeason.geo.raster.io import as_dataset, band_names

__all__ = ["write_quicklook", "rgb_band_indexes", "stretch_to_uint8"]

YELLOW = (255, 220, 0)
MAGENTA = (255, 0, 200)


def rgb_band_indexes(bands) -> list[int]:
    """0-based indexes of the bands to show as red, green, blue: by name, else the first
    three, else the first band as grey."""
    names = [str(b).lower() for b in bands]
    if all(n in names for n in ("red", "green", "blue")):
        return [names.index(n) for n in ("red", "green", "blue")]
    return [0, 1, 2] if len(names) >= 3 else [0, 0, 0]


def stretch_to_uint8(band: np.ma.MaskedArray, lo_pct: float = 2.0, hi_pct: float = 98.0) -> np.ndarray:
    """A band stretched linearly between percentiles of its valid pixels to 0-255; masked pixels 0."""
    band = np.ma.asarray(band)
    valid = band.compressed()
    if valid.size == 0:
        return np.zeros(band.shape, dtype=np.uint8)
    lo, hi = np.percentile(valid, [lo_pct, hi_pct])
    hi = hi if hi > lo else lo + 1
    out = np.clip((band.filled(lo).astype("float64") - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    out[np.ma.getmaskarray(band)] = 0
    return out


def write_quicklook(raster, path: str | Path, objects=(), evidence=(), max_px: int = 1024) -> Path:
    """Write a PNG quicklook of ``raster`` with outlines of ``objects`` and ``evidence``.

    ``objects`` and ``evidence`` are geometries in the raster's CRS.
    """
    path = Path(path)
    with as_dataset(raster, check_read=False) as src:
        scale = max(1.0, max(src.width, src.height) / max_px)
        w, h = max(1, int(round(src.width / scale))), max(1, int(round(src.height / scale)))
        idx = [i + 1 for i in rgb_band_indexes(band_names(src))]
        data = src.read(idx, out_shape=(3, h, w), resampling=Resampling.average, masked=True)
        transform = src.transform @ Affine.scale(src.width / w, src.height / h)
    rgb = np.stack([stretch_to_uint8(data[i]) for i in range(3)])
    # outlines of objects smaller than 2 x 2 display pixels would only be specks: skipped
    min_side = 2.0 * max(abs(transform.a), abs(transform.e))
    for geoms, colour in ((objects, YELLOW), (evidence, MAGENTA)):
        geoms = [g for g in geoms if g is not None and not g.is_empty]
        geoms = [
            g
            for g in geoms
            if g.geom_type in ("Point", "MultiPoint", "LineString", "MultiLineString")
            or max(g.bounds[2] - g.bounds[0], g.bounds[3] - g.bounds[1]) >= min_side
        ]
        lines = [shapely.boundary(g) if g.geom_type.endswith("Polygon") else g for g in geoms]
        lines = [g for g in lines if not g.is_empty]
        if not lines:
            continue
        burn = rasterize(
            ((g, 1) for g in lines),
            out_shape=(h, w),
            transform=transform,
            fill=0,
            dtype="uint8",
            all_touched=True,
        ).astype(bool)
        for i, c in enumerate(colour):
            rgb[i][burn] = c
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # a PNG picture, no georef
        with rasterio.open(tmp, "w", driver="PNG", width=w, height=h, count=3, dtype="uint8") as dst:
            dst.write(rgb)
        aux = Path(str(tmp) + ".aux.xml")
        if aux.exists():
            aux.unlink()
    return path
