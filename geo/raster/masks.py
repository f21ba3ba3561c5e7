"""Pixel-level answers: masks on the source raster's grid, written in bounded memory.

A mask is burnt block by block (``rasterio.features.rasterize`` per window, with only the
geometries that touch the window), so memory is one block whatever the raster size —
never a whole-raster array. Values: 1 = in the answer, 0 = not; nodata of the source
(outside its valid footprint) is 255, a value valid for the uint8 output. Files larger
than ``cog_min_px`` on a side are converted to Cloud-Optimised GeoTIFF. Writes are atomic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely import STRtree

from georeason.errors import ExportError
from georeason.geo.export.layers import atomic_path

__all__ = ["Grid", "MaskResult", "write_mask"]

MASK_NODATA = 255


@dataclass(frozen=True)
class Grid:
    """A raster grid: transform, size and CRS (pixel corner convention)."""

    transform: Affine
    width: int
    height: int
    crs: CRS

    @classmethod
    def of(cls, src) -> Grid:
        return cls(src.transform, src.width, src.height, CRS.from_user_input(src.crs.to_wkt()))


@dataclass(frozen=True)
class MaskResult:
    path: Path
    pixels: int  # pixels set to 1
    area_px_m2: float | None = None


def write_mask(
    geoms,
    grid: Grid,
    path: str | Path,
    valid_source: str | Path | None = None,
    block_px: int = 512,
    cog_min_px: int = 4096,
    all_touched: bool = False,
) -> MaskResult:
    """Burn ``geoms`` (in ``grid.crs``) into a uint8 mask GeoTIFF aligned to ``grid``.

    ``valid_source``: a raster on the same grid whose dataset mask marks valid pixels;
    pixels invalid there are written as nodata (255).
    """
    path = Path(path)
    geoms = np.asarray(
        [g for g in np.atleast_1d(np.asarray(geoms, dtype=object)) if g is not None and not g.is_empty],
        dtype=object,
    )
    # single parts, indexed: a block sees only the parts near it, each clipped to the block
    # (plus one pixel) before burning, never the whole answer geometry
    parts = shapely.get_parts(geoms) if len(geoms) else geoms
    parts = parts[~shapely.is_empty(parts)] if len(parts) else parts
    blocks = _Blocks(parts, grid.transform, block_px) if len(parts) else None
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint8",
        "crs": grid.crs.to_wkt(),
        "transform": grid.transform,
        "nodata": MASK_NODATA,
        "tiled": True,
        "blockxsize": block_px,
        "blockysize": block_px,
        "compress": "deflate",
    }
    to_cog = max(grid.width, grid.height) >= cog_min_px
    if to_cog:  # an intermediate file: the COG copy compresses again
        profile["zlevel"] = 1
    total = 0
    valid = rasterio.open(valid_source) if valid_source is not None else None
    try:
        with atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                for row in range(0, grid.height, block_px):
                    for col in range(0, grid.width, block_px):
                        win = Window(
                            col, row, min(block_px, grid.width - col), min(block_px, grid.height - row)
                        )
                        wt = rasterio.windows.transform(win, grid.transform)
                        out = np.zeros((int(win.height), int(win.width)), dtype=np.uint8)
                        if blocks is not None:
                            pieces = blocks.pieces(win)
                            if len(pieces):
                                out = rasterize(
                                    ((g, 1) for g in pieces),
                                    out_shape=out.shape,
                                    transform=wt,
                                    fill=0,
                                    dtype="uint8",
                                    all_touched=all_touched,
                                )
                        if valid is not None:
                            ok = valid.dataset_mask(window=win) > 0
                            out[~ok] = MASK_NODATA
                        total += int((out == 1).sum())
                        dst.write(out, 1, window=win)
            if to_cog:
                from rasterio.shutil import copy as rio_copy

                cog = tmp.with_name(tmp.stem + ".cog.tif")
                # overviews of a 0/1/255 mask by nearest neighbour (the COG default, cubic,
                # invents values in between); compression on every core
                rio_copy(
                    tmp,
                    cog,
                    driver="COG",
                    compress="deflate",
                    overview_resampling="nearest",
                    num_threads="all_cpus",
                )
                cog.replace(tmp)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise ExportError(f"could not write mask {str(path)!r}: {exc}") from exc
    finally:
        if valid is not None:
            valid.close()
    return MaskResult(path, total)


class _Blocks:
    """Parts of an answer geometry clipped per block, in two levels.

    A super-block (``_SUPER`` x ``_SUPER`` blocks) clips the parts that touch it once; its
    blocks then clip those smaller pieces. A 100k-vertex polygon is thus walked about
    ``(blocks / _SUPER**2) + blocks * (vertices per super-block)`` times, not once per block.
    The clip rectangles are one pixel larger than the window, so every pixel of the window
    burns as it would with the whole geometry (pixel centres and, for ``all_touched``,
    pixel squares inside the window meet the clipped part exactly where they meet the part).
    """

    def __init__(self, parts: np.ndarray, transform: Affine, block_px: int) -> None:
        self.parts = parts
        self.tree = STRtree(parts)
        self.transform = transform
        self.block_px = block_px
        self._row = -1  # the super-block row whose pieces are cached (blocks go row by row)
        self._cache: dict[int, tuple[np.ndarray, STRtree]] = {}

    def _rect(self, col: int, row: int, width: int, height: int) -> tuple[float, float, float, float]:
        win = Window(col - 1, row - 1, width + 2, height + 2)
        l, b, r, t = rasterio.windows.bounds(win, self.transform)
        return min(l, r), min(b, t), max(l, r), max(b, t)

    @staticmethod
    def _clip(geoms: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        if len(geoms) == 0:
            return geoms
        out = shapely.clip_by_rect(geoms, *rect)
        return out[~shapely.is_empty(out)]

    def pieces(self, win: Window) -> np.ndarray:
        size = self.block_px * _SUPER
        col, row = int(win.col_off), int(win.row_off)
        srow, scol = row // size, col // size
        if srow != self._row:
            self._row, self._cache = srow, {}
        if scol not in self._cache:
            rect = self._rect(scol * size, srow * size, size, size)
            sup = self._clip(self.parts[self.tree.query(shapely.box(*rect))], rect)
            self._cache[scol] = (sup, STRtree(sup))
        sup, tree = self._cache[scol]
        rect = self._rect(col, row, int(win.width), int(win.height))
        return self._clip(sup[tree.query(shapely.box(*rect))], rect)


#: Blocks per side of a super-block in :class:`_Blocks`.
_SUPER = 4


def grid_of(raster) -> Grid:
    """The grid of a georeferenced raster (refused, naming it, when not georeferenced)."""
    from georeason.geo.raster.io import as_dataset

    with as_dataset(str(raster), check_read=False) as src:
        return Grid.of(src)


def pixel_transform(grid: Grid):
    """``(fn, crs)``: ``fn`` maps raster (col, row) arrays (pixel corner convention) to ``crs``."""
    tr = grid.transform

    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = tr * (coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return fn, grid.crs


def mask_writer(raster, grid: Grid, path_for):
    """A writer for pixel answers (see ``georeason.geo.language.executor.MaskWriter``).

    ``path_for(step_id) -> Path`` names the mask file; the answer's geometry is
    reprojected to the grid's CRS and burnt with :func:`write_mask`, nodata where the
    source raster has none.
    """
    from georeason.geo.vector.crs import reproject

    def writer(geom, crs, sid):
        res = write_mask([reproject(geom, crs, grid.crs)], grid, path_for(sid), valid_source=str(raster))
        return str(res.path), res.pixels

    return writer
