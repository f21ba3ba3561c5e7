"""What answering needs from a raster grid, as types only (no rasterio import).

The language layer (:mod:`georeason.geo.language.executor`) takes these callables; a
:class:`georeason.geo.raster.grid.RasterGrid` makes them. Kept apart from ``grid`` so
that answering questions about vector files never imports rasterio (``ask`` start-up).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

__all__ = ["PixelTransform", "MaskWriter"]

#: Maps raster (col, row) pixel coordinates to (x, y) in ``crs``: ``(fn, crs)``.
PixelTransform = tuple[Callable[[np.ndarray], np.ndarray], CRS]
#: Writes a pixel answer: ``(geometry, its CRS, step id) -> (path, pixel count)``.
MaskWriter = Callable[[BaseGeometry, CRS, str], tuple[str, int]]
