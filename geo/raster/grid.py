"""The one grid type: a raster's transform, shape, CRS, nodata and band names.

A :class:`RasterGrid` is read once per item (one ``rasterio.open``) and then carried by
the answering context: it maps raster (col, row) pixels to the CRS for pixel answers
(:attr:`RasterGrid.pixel`) and writes pixel-answer masks aligned to the raster
(:meth:`RasterGrid.mask_writer`), so no step reopens the raster to learn its geometry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.geo.raster.io import apply_transform, as_dataset, band_names, pixel_size_m, to_pyproj_crs
from georeason.geo.raster.masks import ValidCells, write_mask
from georeason.geo.raster.pixels import MaskWriter, PixelTransform
from georeason.geo.vector.crs import reproject

__all__ = ["RasterGrid", "PixelTransform", "MaskWriter"]


@dataclass(frozen=True)
class RasterGrid:
    """A raster grid (pixel corner convention) and where it came from.

    ``shape`` is ``(rows, cols)``; ``bands`` are the band names
    (:func:`georeason.geo.raster.io.band_names`); ``path`` is the raster the grid was read
    from (its dataset mask marks the valid pixels of written masks), ``None`` for a grid
    built from numbers.

    Examples
    --------
    >>> g = RasterGrid(Affine(10, 0, 500000, 0, -10, 4100000), 3, 4, CRS.from_epsg(32633))
    >>> g.shape, g.bounds
    ((3, 4), (500000.0, 4099970.0, 500040.0, 4100000.0))
    """

    transform: Affine
    height: int
    width: int
    crs: CRS
    nodata: float | None = None
    bands: tuple[str, ...] = ()
    path: str | None = None

    @classmethod
    def of(cls, src: Any, path: str | None = None) -> RasterGrid:
        """The grid of an open rasterio dataset."""
        return cls(
            src.transform,
            int(src.height),
            int(src.width),
            to_pyproj_crs(src.crs),
            src.nodata,
            tuple(band_names(src)),
            path if path is not None else str(src.name),
        )

    @classmethod
    def read(cls, raster: str | os.PathLike[str]) -> RasterGrid:
        """Open ``raster`` once (metadata only) and return its grid.

        Raises the errors of :func:`georeason.geo.raster.io.open_raster` (not
        georeferenced, unreadable, rotated), naming the file.
        """
        with as_dataset(str(raster), check_read=False) as src:
            return cls.of(src, str(raster))

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the grid CRS, whatever the transform's signs."""
        xs, ys = apply_transform(self.transform, np.array([0.0, self.width]), np.array([0.0, self.height]))
        return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))

    @property
    def res_m(self) -> tuple[float, float]:
        """Pixel width and height on the ground, in metres, at the raster centre (WGS84)."""
        return pixel_size_m(self.transform, self.crs, self.width / 2, self.height / 2)

    @property
    def pixel(self) -> PixelTransform:
        """``(fn, crs)``: ``fn`` maps (col, row) arrays (pixel corners) to ``crs``."""
        tr = self.transform

        def fn(coords: np.ndarray) -> np.ndarray:
            x, y = apply_transform(tr, coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return fn, self.crs

    def mask_writer(
        self, path_for: Callable[[str], Path], known_valid: ValidCells | None = None
    ) -> MaskWriter:
        """A writer of pixel answers: burns the answer into a mask GeoTIFF on this grid.

        ``path_for(step_id)`` names the file; the geometry is reprojected to the grid CRS
        and burnt with :func:`georeason.geo.raster.masks.write_mask`, nodata where the
        source raster (:attr:`path`) has none (not read where ``known_valid`` says every
        pixel is valid).
        """

        def writer(geom: BaseGeometry, crs: CRS, sid: str) -> tuple[str, int]:
            res = write_mask(
                [reproject(geom, crs, self.crs)],
                self,
                path_for(sid),
                valid_source=self.path,
                known_valid=known_valid,
            )
            return str(res.path), res.pixels

        return writer
