"""Pixel-level answers: masks on the source raster's grid, written in bounded memory.

A mask is burnt block by block (``rasterio.features.rasterize`` per window, with only the
parts of the answer that touch the window, clipped to it), so memory is one row of blocks
whatever the raster size — never a whole-raster array. Values: 1 = in the answer, 0 =
not; nodata of the source (outside its valid footprint) is 255, a value valid for the
uint8 output. Writes are atomic.

Masks of at least ``cog_min_px`` on a side are Cloud-Optimised GeoTIFFs (ZSTD level 1,
NEAREST overviews), made in one pass: each row of blocks goes to a ZSTD intermediate and
every overview level is sampled from it by indexing (the pixels GDAL's NEAREST would pick,
level from level); GDAL's COG driver then only lays out the finished levels (via a VRT
listing them as overviews) and compresses them once. Smaller masks are tiled DEFLATE
GeoTIFFs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window
from shapely import STRtree

from georeason.errors import ExportError
from georeason.geo.export.layers import atomic_path

if TYPE_CHECKING:
    from georeason.geo.raster.grid import RasterGrid

__all__ = ["MaskResult", "ValidCells", "write_mask", "MASK_NODATA"]

MASK_NODATA = 255

#: GDAL's block cache (MB) while a mask is written. The writer reads each block of the
#: source once (its nodata) and writes each output block once: a cache only holds blocks
#: nothing reads again, and the run's cache (64 MB by default) filled with them at the end
#: of a 20000^2 run, its peak (benchmarks/RESULTS.md, re-run 8). A cache already smaller is
#: kept.
MASK_GDAL_CACHEMAX_MB = 16


@contextmanager
def _bounded_block_cache() -> Iterator[None]:
    """GDAL's block cache at most :data:`MASK_GDAL_CACHEMAX_MB` inside, what it was after.

    Through rasterio's ``set_gdal_config``, which resizes GDAL's cache at once
    (``GDALSetCacheMax64``), and not a ``rasterio.Env``: an ``Env`` opened inside another
    one does not restore the cache size when it closes (it re-applies only the outer
    ``Env``'s own options), so the run would have kept the small cache."""
    from rasterio.env import get_gdal_config, set_gdal_config

    want = MASK_GDAL_CACHEMAX_MB << 20
    current = get_gdal_config("GDAL_CACHEMAX")
    if not isinstance(current, int) or 0 < current <= want:
        yield
        return
    set_gdal_config("GDAL_CACHEMAX", want)
    try:
        yield
    finally:
        set_gdal_config("GDAL_CACHEMAX", current)


@dataclass(frozen=True, eq=False)
class ValidCells:
    """Which ``k x k`` cells of a raster's pixels are known to hold only valid pixels, by
    the nodata values of its bands: ``known[i, j]`` says that in cell ``(i, j)`` (pixels
    ``[i*k, (i+1)*k) x [j*k, (j+1)*k)``) some band differs from its nodata value at every
    pixel, so GDAL's dataset mask of a raster whose bands' masks are their nodata values
    (:func:`_nodata_reader`) is valid there. False says nothing (not known, or not so).

    Grounding reads every pixel of a raster once; the quicklook's cell sums count, per
    display band and cell, the pixels that are valid
    (:meth:`georeason.geo.export.quicklook.BasemapSums.valid_cells`). A mask written later
    on the same grid then reads the source's nodata only in the blocks that touch a cell
    not known valid (the edges of the footprint): on a raster valid almost everywhere, the
    mask needs almost no read of it (the 8000^2 scene: 1.5 s of a 1.9 s mask).

    Examples
    --------
    >>> v = ValidCells(4, np.array([[True, True], [True, False]]))
    >>> v.covers(Window(0, 0, 8, 4)), v.covers(Window(0, 0, 8, 5)), v.covers(Window(2, 5, 2, 3))
    (True, False, True)
    """

    k: int
    known: np.ndarray

    def covers(self, win: Window) -> bool:
        """Whether every pixel of ``win`` (a window of whole pixels) is in a known-valid cell."""
        k = self.k
        r0, c0 = int(win.row_off), int(win.col_off)
        r1, c1 = r0 + int(win.height), c0 + int(win.width)
        if r0 < 0 or c0 < 0 or r1 > self.known.shape[0] * k or c1 > self.known.shape[1] * k:
            return False
        return bool(self.known[r0 // k : -(-r1 // k), c0 // k : -(-c1 // k)].all())


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
    known_valid: ValidCells | None = None,
) -> MaskResult:
    """Burn ``geoms`` (in ``grid.crs``) into a uint8 mask GeoTIFF aligned to ``grid``.

    ``valid_source``: a raster on the same grid whose dataset mask marks valid pixels;
    pixels invalid there are written as nodata (255). ``known_valid``: the cells of
    ``valid_source`` known to be valid (:class:`ValidCells`); where the source's masks are
    its bands' nodata values, a block inside them is not read.
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
    total = 0
    valid = rasterio.open(valid_source) if valid_source is not None else None
    invalid_in = _nodata_reader(valid) if valid is not None else None
    try:
        with atomic_path(path) as tmp, ExitStack() as stack:
            stack.enter_context(_bounded_block_cache())
            if to_cog:
                # one pass: the blocks go to a fast intermediate (ZSTD level 1) and every
                # overview level is sampled from them by striding (nearest, as GDAL's
                # NEAREST takes the first pixel of each 2^k x 2^k cell); the COG driver
                # then only lays the finished levels out and compresses them once
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".mask.", dir=tmp.parent)))
                base = work / "base.tif"
                dst = stack.enter_context(
                    rasterio.open(base, "w", **_intermediate(profile, grid.width, grid.height))
                )
                levels = _Overviews(work, profile, grid.width, grid.height, block_px, stack)
            else:
                dst = stack.enter_context(rasterio.open(tmp, "w", **profile))
                levels = None
            for row in range(0, grid.height, block_px):
                bh = min(block_px, grid.height - row)
                strip = np.zeros((bh, grid.width), dtype=np.uint8)
                for col in range(0, grid.width, block_px):
                    win = Window(col, row, min(block_px, grid.width - col), bh)
                    if blocks is not None:
                        pieces = blocks.pieces(win)
                        if len(pieces):
                            strip[:, col : col + int(win.width)] = rasterize(
                                ((g, 1) for g in _geojson(pieces)),
                                out_shape=(bh, int(win.width)),
                                transform=rasterio.windows.transform(win, grid.transform),
                                fill=0,
                                dtype="uint8",
                                all_touched=all_touched,
                            )
                swin = Window(0, row, grid.width, bh)
                if valid is not None:
                    if invalid_in is None:
                        strip[valid.dataset_mask(window=swin) == 0] = MASK_NODATA
                    else:  # block by block: every band read once, a few MB at a time
                        for col in range(0, grid.width, block_px):
                            win = Window(col, row, min(block_px, grid.width - col), bh)
                            if known_valid is not None and known_valid.covers(win):
                                continue  # every pixel valid: nothing to read
                            strip[:, col : col + int(win.width)][invalid_in(win)] = MASK_NODATA
                total += int(np.count_nonzero(strip == 1))
                dst.write(strip, 1, window=swin)
                if levels is not None:
                    levels.add(strip, row)
            if to_cog:
                assert levels is not None
                dst.close()
                levels.close()
                vrt = work / "mask.vrt"
                vrt.write_text(levels.vrt(base, profile))
                rio_copy(
                    vrt,
                    tmp,
                    driver="COG",
                    compress="zstd",
                    level=1,
                    blocksize=block_px,
                    overviews="FORCE_USE_EXISTING",
                    num_threads="all_cpus",
                )
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise ExportError(f"could not write mask {str(path)!r}: {exc}") from exc
    finally:
        if valid is not None:
            valid.close()
    return MaskResult(path, total)


def _nodata_reader(src: Any) -> Callable[[Window], np.ndarray] | None:
    """``win -> bool array``, True where ``src.dataset_mask(window=win)`` is 0, computed
    from one read of all bands; ``None`` when the dataset's mask is not plain per-band nodata.

    For a dataset whose bands' masks come from a nodata value only, GDAL's dataset mask is
    valid where any band differs from its nodata value (compared in the band's type). GDAL
    builds it band by band, each band decoding the pixel-interleaved block again: on a
    20000-pixel-wide 4-band raster a row of blocks (80 MB decoded) outgrows a 64 MB block
    cache and every block is decoded four times. Integer bands only (GDAL compares floats
    with a tolerance); an internal mask, an alpha band, a nodata the band type cannot hold
    or mixed band types keep GDAL's path.
    """
    from rasterio.enums import MaskFlags

    if src.count == 0 or len(set(src.dtypes)) != 1:
        return None
    if any(list(f) != [MaskFlags.nodata] for f in src.mask_flag_enums):
        return None
    dtype = np.dtype(src.dtypes[0])
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    nodata = []
    for v in src.nodatavals:
        if v is None or not np.isfinite(v) or v != int(v) or not info.min <= v <= info.max:
            return None
        nodata.append(int(v))
    nd = np.array(nodata, dtype=dtype).reshape(-1, 1, 1)

    def invalid(win: Window) -> np.ndarray:
        return np.all(src.read(window=win) == nd, axis=0)

    return invalid


def _geojson(geoms: np.ndarray) -> list[Any]:
    """GeoJSON-like shapes of ``geoms`` for ``rasterize``: polygons (multi-part geometries
    split into parts, as ``rasterize`` itself does) built from one coordinate array, not
    vertex by vertex through ``__geo_interface__``; other parts are passed as they are."""
    parts = shapely.get_parts(geoms)
    poly = shapely.get_type_id(parts) == 3
    out: list[Any] = list(parts[~poly])
    if poly.any():
        rings, owner = shapely.get_rings(parts[poly], return_index=True)
        ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
        xy = shapely.get_coordinates(rings).tolist()
        polys: list[list[Any]] = [[] for _ in range(int(poly.sum()))]
        start = 0
        for k, end in zip(owner.tolist(), ends, strict=True):
            polys[k].append(xy[start:end])
            start = end
        out.extend({"type": "Polygon", "coordinates": c} for c in polys)
    return out


def _intermediate(profile: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """The full-resolution intermediate of a COG: same grid and blocks, ZSTD level 1 (it
    is read once by the COG driver and deleted; DEFLATE would cost 4x the time)."""
    return dict(profile, compress="zstd", zstd_level=1)


def _near_index(n: int, n_ovr: int) -> np.ndarray:
    """Source pixel of each of ``n_ovr`` pixels resampled from ``n`` along an axis, as
    GDAL's NEAREST resampling picks it: ``round(i * n / n_ovr)`` (the first pixel of each
    cell when ``n_ovr`` divides ``n``)."""
    idx = np.floor(0.5 + np.arange(n_ovr) * (n / n_ovr)).astype(np.int64)
    return np.minimum(idx, n - 1)


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice when it is an arithmetic progression (a view, not a gather)."""
    if len(idx) > 1:
        step = int(idx[1] - idx[0])
        if step > 0 and bool((np.diff(idx) == step).all()):
            return slice(int(idx[0]), int(idx[-1]) + 1, step)
    return idx


def _level_index(n: int, sizes: list[int]) -> list[np.ndarray]:
    """Full-resolution pixel of each overview pixel along an axis, for levels of ``sizes``
    pixels: GDAL builds each level from the previous one, so the picks compose."""
    out, prev = [], np.arange(n)
    for size in sizes:
        prev = prev[_near_index(len(prev), size)]
        out.append(prev)
    return out


def overview_factors(width: int, height: int, block_px: int) -> list[int]:
    """Overview factors GDAL's COG driver makes by default: double the factor while the
    level (``n // factor`` pixels a side) is larger than one block.

    Examples
    --------
    >>> overview_factors(8000, 8000, 512), overview_factors(1025, 300, 128), overview_factors(1037, 10, 128)
    ([2, 4, 8, 16], [2, 4, 8], [2, 4, 8, 16])
    """
    out: list[int] = []
    f = 1
    while max(width // f, height // f) > block_px:
        f *= 2
        out.append(f)
    return out


class _Overviews:
    """Overview levels of a mask sampled from its full-resolution strips as they are burnt.

    Each level is written to its own uncompressed GeoTIFF beside the intermediate
    (a third of the mask's pixels in all, on disk; in memory one strip per level)."""

    def __init__(
        self,
        work: Path,
        profile: dict[str, Any],
        width: int,
        height: int,
        block_px: int,
        stack: ExitStack,
    ) -> None:
        self.levels: list[tuple[Path, Any, np.ndarray, np.ndarray]] = []
        factors = overview_factors(width, height, block_px)
        cols = _level_index(width, [max(1, width // f) for f in factors])
        rows = _level_index(height, [max(1, height // f) for f in factors])
        for f, ridx, cidx in zip(factors, rows, cols, strict=True):
            ow, oh = len(cidx), len(ridx)
            lp = work / f"ovr{f}.tif"
            prof = {
                k: v for k, v in profile.items() if k not in ("tiled", "blockxsize", "blockysize", "compress")
            }
            prof.update(
                width=ow,
                height=oh,
                transform=profile["transform"] @ Affine.scale(width / ow, height / oh),
            )
            ds = stack.enter_context(rasterio.open(lp, "w", **prof))
            self.levels.append((lp, ds, ridx, cidx))

    def add(self, strip: np.ndarray, row: int) -> None:
        """Add the full-resolution rows ``row .. row + len(strip)`` (full width)."""
        for _, ds, ridx, cidx in self.levels:
            i0, i1 = np.searchsorted(ridx, [row, row + strip.shape[0]])
            if i1 > i0:
                piece = strip[_as_slice(ridx[i0:i1] - row)][:, _as_slice(cidx)]
                ds.write(piece, 1, window=Window(0, int(i0), piece.shape[1], piece.shape[0]))

    def close(self) -> None:
        for _, ds, _, _ in self.levels:
            ds.close()

    def vrt(self, base: Path, profile: dict[str, Any]) -> str:
        """A VRT of ``base`` whose band lists the levels as its overviews."""
        ovr = "".join(
            f'<Overview><SourceFilename relativeToVRT="0">{escape(str(p))}</SourceFilename>'
            "<SourceBand>1</SourceBand></Overview>"
            for p, _, _, _ in self.levels
        )
        gt = ", ".join(repr(float(v)) for v in profile["transform"].to_gdal())
        return (
            f'<VRTDataset rasterXSize="{profile["width"]}" rasterYSize="{profile["height"]}">'
            f"<SRS>{escape(profile['crs'])}</SRS><GeoTransform>{gt}</GeoTransform>"
            '<VRTRasterBand dataType="Byte" band="1">'
            f"<NoDataValue>{MASK_NODATA}</NoDataValue>"
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(base))}</SourceFilename>'
            "<SourceBand>1</SourceBand></SimpleSource>"
            f"{ovr}</VRTRasterBand></VRTDataset>"
        )


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
