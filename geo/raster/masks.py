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
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window
from shapely import STRtree

from georeason.errors import ExportError
from georeason.geo.export.layers import atomic_path

if TYPE_CHECKING:
    from georeason.geo.raster.grid import RasterGrid

__all__ = ["MaskResult", "write_mask", "MASK_NODATA"]

MASK_NODATA = 255


@dataclass(frozen=True)
class MaskResult:
    path: Path
    pixels: int  # pixels set to 1
    area_px_m2: float | None = None


def write_mask(
    geoms: Any,
    grid: RasterGrid,
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
    tree = STRtree(geoms) if len(geoms) else None
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
                        if tree is not None:
                            l, b, r, t = rasterio.windows.bounds(win, grid.transform)
                            hits = tree.query(shapely.box(min(l, r), min(b, t), max(l, r), max(b, t)))
                            if len(hits):
                                out = rasterize(
                                    ((g, 1) for g in geoms[hits]),
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
            if max(grid.width, grid.height) >= cog_min_px:
                cog = tmp.with_name(tmp.stem + ".cog.tif")
                rio_copy(tmp, cog, driver="COG", compress="deflate")
                cog.replace(tmp)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise ExportError(f"could not write mask {str(path)!r}: {exc}") from exc
    finally:
        if valid is not None:
            valid.close()
    return MaskResult(path, total)
