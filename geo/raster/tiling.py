"""Cutting a raster into overlapping tiles whose cores partition it.

Layout
------
Tiles are laid on a grid of stride ``S`` pixels starting at the raster's top-left pixel
(row 0, column 0, whatever the sign of the transform's ``e``). Tile ``(i, j)`` reads the
window of ``tile_px x tile_px`` pixels whose top-left pixel is ``(row i*S, col j*S)``; so
neighbouring windows share ``tile_px - S`` pixels (the overlap).

* **Edges**: along each axis there are ``n = 1 + ceil((N - tile_px) / S)`` tiles (1 when
  ``N <= tile_px``), so the last window reaches or passes the raster's end. Windows are
  never shrunk or dropped: the part outside the raster is padding, read as masked
  nodata by :func:`read_tile`. A raster smaller than one tile is one (padded) tile.
* **Core**: the part of its window a tile *owns*. Between tiles ``j-1`` and ``j`` the
  boundary is the middle of their overlap, column ``j*S + h`` with
  ``h = (tile_px - S) // 2``; the first core starts at 0 and the last ends at the raster
  edge. So the cores partition the raster: every pixel lies in exactly one core, and
  every core lies inside its window with at least ``h`` pixels of context on each inner
  side. Seam merging (:mod:`georeason.geo.grounding.seams`) keeps from each tile only what falls in
  its core.
* **Stride**: ``S = tile_px - overlap_px``. With ``align_to_blocks=True`` (default) and a
  raster stored in square internal blocks of ``B`` pixels (tiled GeoTIFF/COG, not strips)
  where ``B`` divides ``tile_px``, ``S`` is rounded down to a multiple of ``B`` when that
  at most doubles the overlap (``S - S' <= overlap_px``) and leaves ``S' >= B``. Every
  window then starts and ends on block boundaries, so each block is decoded by as few
  tiles as possible. The overlap is never made smaller than asked. Example: 1024 px tiles,
  128 px overlap, 256 px blocks -> stride 768 (overlap 256); with 512 px blocks the
  stride stays 896.
* **Nodata skipping** (``skip_nodata=True``): a tile is skipped when its *core* holds no
  valid pixel (a tile whose core is nodata contributes nothing after seam clipping).
  Grounding does not use it: it plans every tile and skips, in the worker, a tile whose
  core :func:`core_has_valid` finds empty in the data it reads anyway (no plan-time pass
  over the file; :mod:`georeason.pipeline`). The plan-time scan stays for other callers.
  Each core's dataset mask is first read at reduced resolution (at most 64 x 64 values,
  nearest sampling; GDAL serves it from overviews where the file has them). That read is
  trusted one way only: if it shows a valid pixel the tile is kept. Decimation can miss
  isolated valid pixels (nearest sampling steps over them; averaging an 8-bit mask rounds
  one valid pixel in many down to 0), so a core that looks empty is confirmed by a
  full-resolution mask read of that core alone before the tile is skipped: skipping never
  loses a valid pixel. For kept tiles the check decodes blocks that :func:`read_tile`
  needs next anyway (GDAL's block cache serves them again); skipped tiles cost one mask
  read of their core. Datasets whose masks say "all valid" (no nodata value, no mask
  band) skip nothing and read no mask.

* **Reading** (:func:`read_tile`): a window that spans several columns of a tiled file's
  blocks is read in parts, left to right: its first block column, the columns between, its
  last block column. Tiles are read in row-major order, and the block column a tile reads
  last is the one the next tile of its row reads first (with 512 px blocks the stride stays
  896, so neighbours share a block column, not just their overlap): it is then the most
  recently used in GDAL's block cache, and a cache of one block column
  (:data:`georeason.workers.WORKER_GDAL_CACHEMAX_MB`) decodes it once instead of twice.
  Read whole, a window's blocks go through the cache row by row, and the shared column is
  evicted unless the cache holds the whole window (then, as in the main process's 64 MB
  cache, the window is one read). The 8000^2 scene's 81 tiles (512 px blocks, 4 bands
  uint16): 3.04 CPU-s of ``read_tile`` with a 4 MB cache, 2.12 in parts with 8 MB
  (benchmarks/RESULTS.md, "Re-run 11"); decoding every block once is 1.45.

Memory stays bounded by a few tiles whatever the raster size: no whole-raster array is
ever allocated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.enums import MaskFlags
from rasterio.env import get_gdal_config
from rasterio.errors import RasterioError
from rasterio.windows import Window

from georeason.errors import InputError, TileReadError
from georeason.geo.raster.io import as_dataset, to_pyproj_crs

__all__ = [
    "Tile",
    "plan_tiles",
    "read_tile",
    "block_column_edges",
    "core_has_valid",
    "tile_grid",
    "tile_layout",
    "stride_px",
]


@dataclass(frozen=True)
class Tile:
    """One tile of a raster.

    Attributes
    ----------
    index : tuple[int, int]
        ``(tile_row, tile_col)`` in the tile grid (row-major order of :func:`plan_tiles`).
    window : rasterio.windows.Window
        The full ``tile_px x tile_px`` window read, in raster pixels; it may extend past
        the raster's right/bottom edge (that part is padding).
    core : rasterio.windows.Window
        The part of ``window`` this tile owns; always inside the raster. The cores of
        all tiles of a plan partition the raster (see module docstring).
    transform : affine.Affine
        Pixel -> CRS transform of the full tile: pixel ``(col, row)`` of the tile array
        maps to ``transform @ (col, row)`` (corner convention: ``(0, 0)`` is the top-left
        corner of the tile's first pixel).
    bounds : tuple
        ``(left, bottom, right, top)`` of the full window (padding included), CRS units.
    crs : pyproj.CRS
        The raster CRS.
    raster_transform : affine.Affine
        The raster's own transform (so global pixel coordinates are exact integers:
        global ``col = window.col_off + tile col``).
    raster_shape : tuple[int, int]
        ``(height, width)`` of the raster.
    """

    index: tuple[int, int]
    window: Window
    core: Window
    transform: Affine
    bounds: tuple[float, float, float, float]
    crs: CRS
    raster_transform: Affine
    raster_shape: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the tile array (padding included)."""
        return int(self.window.height), int(self.window.width)

    @property
    def core_in_tile(self) -> Window:
        """The core as a window in tile pixel coordinates."""
        return Window(
            self.core.col_off - self.window.col_off,
            self.core.row_off - self.window.row_off,
            self.core.width,
            self.core.height,
        )

    @property
    def core_bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the core, CRS units."""
        return _bounds(self.core, self.raster_transform)

    @property
    def valid_window(self) -> Window:
        """The part of ``window`` inside the raster (raster pixel coordinates)."""
        h, w = self.raster_shape
        return Window(
            self.window.col_off,
            self.window.row_off,
            max(0, min(self.window.width, w - self.window.col_off)),
            max(0, min(self.window.height, h - self.window.row_off)),
        )


def _bounds(window: Window, transform: Affine) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of ``window``'s four corners under ``transform``.

    The corners are mapped with the arithmetic of :func:`~georeason.geo.raster.io.apply_transform`
    (``x = col * a + row * b + c``, in that order, in float64), on Python floats: the same
    values without four small numpy arrays per tile (25 -> 3 us)."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    c0, r0 = window.col_off, window.row_off
    c1, r1 = float(c0 + window.width), float(r0 + window.height)
    c0, r0 = float(c0), float(r0)
    corners = ((c0, r0), (c1, r0), (c0, r1), (c1, r1))
    xs = [col * a + row * b + c for col, row in corners]
    ys = [col * d + row * e + f for col, row in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _translated(t: Affine, col: int, row: int) -> Affine:
    """``t @ Affine.translation(col, row)``: affine's own arithmetic, term for term (the
    same floats), without making the translation and reading both through ``attrs``
    tuples (10 -> 2 us a tile)."""
    sa, sb, sc, sd, se, sf = t.a, t.b, t.c, t.d, t.e, t.f
    oc, of = float(col), float(row)
    return type(t)(
        sa * 1.0 + sb * 0.0,
        sa * 0.0 + sb * 1.0,
        sa * oc + sb * of + sc,
        sd * 1.0 + se * 0.0,
        sd * 0.0 + se * 1.0,
        sd * oc + se * of + sf,
    )


def stride_px(
    tile_px: int, overlap_px: int, block_shape: tuple[int, int] | None = None, align: bool = True
) -> int:
    """The stride used for ``tile_px``/``overlap_px`` on a raster with ``block_shape`` blocks.

    See the module docstring for the alignment rule.

    Examples
    --------
    >>> stride_px(1024, 128), stride_px(1024, 128, (256, 256)), stride_px(1024, 128, (512, 512))
    (896, 768, 896)
    >>> stride_px(256, 32, (256, 256))
    224
    """
    if tile_px <= 0:
        raise InputError(f"tile_px must be positive, got {tile_px}")
    if not 0 <= overlap_px < tile_px:
        raise InputError(f"overlap_px must be in [0, tile_px={tile_px}), got {overlap_px}")
    s = tile_px - overlap_px
    if align and block_shape is not None:
        bh, bw = block_shape
        if bh == bw and bh > 1 and tile_px % bh == 0 and s % bh:
            s2 = (s // bh) * bh
            if s2 >= bh and s - s2 <= overlap_px:
                s = s2
    return s


def _axis(n: int, tile_px: int, s: int) -> list[tuple[int, int, int]]:
    """``(window_start, core_start, core_stop)`` for each tile along an axis of n pixels."""
    count = 1 if n <= tile_px else 1 + math.ceil((n - tile_px) / s)
    h = (tile_px - s) // 2
    out = []
    for j in range(count):
        start = j * s
        c0 = 0 if j == 0 else start + h
        c1 = n if j == count - 1 else (j + 1) * s + h
        out.append((start, c0, c1))
    return out


def tile_grid(height: int, width: int, tile_px: int, stride: int) -> tuple[list, list]:
    """Row and column layouts: lists of ``(window_start, core_start, core_stop)``.

    Examples
    --------
    >>> rows, cols = tile_grid(1000, 2000, 1024, 896)
    >>> rows, cols
    ([(0, 0, 1000)], [(0, 0, 960), (896, 960, 1856), (1792, 1856, 2000)])
    """
    return _axis(height, tile_px, stride), _axis(width, tile_px, stride)


def tile_layout(src: Any, tile_px: int, overlap_px: int, align_to_blocks: bool = True) -> tuple[list, list]:
    """The row and column layouts (:func:`tile_grid`) :func:`plan_tiles` uses on the open
    dataset ``src``: the stride aligned to its internal blocks where that divides nicely
    (before any tile is skipped as nodata)."""
    block = tuple(src.block_shapes[0]) if _is_tiled(src) else None
    return tile_grid(src.height, src.width, tile_px, stride_px(tile_px, overlap_px, block, align_to_blocks))


def _is_tiled(src) -> bool:
    """Internally tiled (blocks narrower than the raster), as opposed to stored in strips."""
    bh, bw = src.block_shapes[0]
    return bw < src.width


def _all_valid(src) -> bool:
    return all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums)


def _core_has_valid(src, core: Window, sample_px: int = 64, chunk_rows: int = 1024) -> bool:
    """Whether a core window holds a valid pixel: a decimated mask read first, then, if it
    saw nothing, a full-resolution read (in row chunks, bounded memory) to be sure."""
    try:
        h, w = int(core.height), int(core.width)
        if src.dataset_mask(window=core, out_shape=(min(sample_px, h), min(sample_px, w))).any():
            return True
        if h <= sample_px and w <= sample_px:
            return False  # that read was at full resolution
        for r in range(0, h, chunk_rows):
            win = Window(core.col_off, core.row_off + r, core.width, min(chunk_rows, h - r))
            if src.dataset_mask(window=win).any():
                return True
    except RasterioError as exc:
        raise TileReadError(f"raster {src.name}: reading the mask of window {core} failed ({exc})") from exc
    return False


def plan_tiles(
    src_or_path: Any,
    tile_px: int = 1024,
    overlap_px: int = 128,
    skip_nodata: bool = True,
    *,
    align_to_blocks: bool = True,
) -> Iterator[Tile]:
    """Yield the tiles of a raster in row-major order.

    Parameters
    ----------
    src_or_path : rasterio dataset, path or URL
        Opened and checked with :func:`georeason.geo.raster.io.open_raster` if a path.
    tile_px : int
        Tile side in pixels (square tiles). Default 1024.
    overlap_px : int
        Pixels shared by neighbouring tiles (before block alignment, which may only grow
        it). The default 128 gives each core at least 64 px of context on every inner
        side, enough for objects up to about that size to be seen whole by the tile that
        owns their centre.
    skip_nodata : bool
        Skip tiles whose core has no valid pixel (conservative, see module docstring).
    align_to_blocks : bool
        Round the stride to the internal block size where that divides nicely.

    Yields
    ------
    Tile
        Edge tiles included (padded), never dropped; a raster smaller than one tile
        yields one tile.

    Raises
    ------
    InputError, NotGeoreferencedError, RotatedRasterError, RasterReadError

    Examples
    --------
    >>> import numpy as np, rasterio, tempfile, os
    >>> from rasterio.transform import from_origin
    >>> p = os.path.join(tempfile.mkdtemp(), "t.tif")
    >>> with rasterio.open(p, "w", driver="GTiff", width=300, height=200, count=1, dtype="uint8",
    ...                    crs="EPSG:32633", transform=from_origin(500000, 5e6, 10, 10)) as d:
    ...     d.write(np.ones((1, 200, 300), "uint8"))
    >>> [(t.index, t.core.col_off, t.core.width) for t in plan_tiles(p, 128, 32)]  # doctest: +ELLIPSIS
    [((0, 0), 0, 112), ((0, 1), 112, 96), ((0, 2), 208, 92), ((1, 0), 0, 112), ...]
    """
    with as_dataset(src_or_path) as src:
        rows, cols = tile_layout(src, tile_px, overlap_px, align_to_blocks)
        crs = to_pyproj_crs(src.crs)
        t = src.transform
        check = skip_nodata and not _all_valid(src)
        for i, (r_start, r0, r1) in enumerate(rows):
            for j, (c_start, c0, c1) in enumerate(cols):
                core = Window(c0, r0, c1 - c0, r1 - r0)
                if check and not _core_has_valid(src, core):
                    continue
                window = Window(c_start, r_start, tile_px, tile_px)
                yield Tile(
                    index=(i, j),
                    window=window,
                    core=core,
                    transform=_translated(t, c_start, r_start),
                    bounds=_bounds(window, t),
                    crs=crs,
                    raster_transform=t,
                    raster_shape=(src.height, src.width),
                )


def core_has_valid(pixels: np.ma.MaskedArray, tile: Tile) -> bool:
    """Whether the core of ``tile`` holds a valid pixel in ``pixels``, the tile as
    :func:`read_tile` read it: a pixel of the core not masked in at least one band (GDAL's
    dataset mask: valid where any band is). The check grounding makes on the data it reads
    anyway, instead of a plan-time scan of the file (``plan_tiles(skip_nodata=True)``).

    Examples
    --------
    >>> import numpy as np
    >>> from rasterio.windows import Window
    >>> t = Tile((0, 1), Window(96, 0, 128, 128), Window(112, 0, 96, 128), None, (0, 0, 0, 0), None, None, (128, 300))
    >>> a = np.ma.MaskedArray(np.zeros((2, 128, 128)), mask=True)
    >>> core_has_valid(a, t)
    False
    >>> a.mask[1, 5, 15] = False  # a valid pixel of band 2 left of the core (tile column 15 < 16)
    >>> core_has_valid(a, t)
    False
    >>> a.mask[1, 5, 16] = False  # and one in it
    >>> core_has_valid(a, t)
    True
    """
    m = np.ma.getmask(pixels)
    if m is np.ma.nomask:
        return True
    c = tile.core_in_tile
    r0, c0 = int(c.row_off), int(c.col_off)
    return not bool(np.asarray(m)[:, r0 : r0 + int(c.height), c0 : c0 + int(c.width)].all())


def block_column_edges(src: Any, band: int, col_off: int, width: int) -> list[int]:
    """The column bounds at which a read of columns ``[col_off, col_off + width)`` of
    ``band`` is split: its first column of the file's blocks, the columns between, its last
    block column (at most three reads; fewer when the window spans fewer block columns).
    ``[col_off, col_off + width]`` when the read fits in one block column or the file is
    not tiled (strips as wide as the raster).

    Examples
    --------
    >>> class Src:
    ...     width, block_shapes = 8000, [(512, 512)]
    >>> block_column_edges(Src(), 1, 896, 1024)
    [896, 1024, 1536, 1920]
    >>> block_column_edges(Src(), 1, 1024, 2048)
    [1024, 1536, 2560, 3072]
    >>> block_column_edges(Src(), 1, 1024, 1024), block_column_edges(Src(), 1, 0, 300)
    ([1024, 1536, 2048], [0, 300])
    """
    bw = int(src.block_shapes[band - 1][1])
    if bw <= 0 or bw >= int(src.width):
        return [col_off, col_off + width]
    inner = range((col_off // bw + 1) * bw, col_off + width, bw)
    if not inner:
        return [col_off, col_off + width]
    return sorted({col_off, inner[0], inner[-1], col_off + width})


def _cache_holds_window(src: Any, band: int, window: Window) -> bool:
    """Whether GDAL's block cache (its size now, ``GDAL_CACHEMAX``) can hold every block
    ``window`` touches (all the file's bands: a pixel-interleaved block carries them all)."""
    cache = get_gdal_config("GDAL_CACHEMAX")  # rasterio answers GDAL's cache size, in bytes
    if not isinstance(cache, int) or cache <= 0:
        return True
    bh, bw = (int(v) for v in src.block_shapes[band - 1])
    r0, c0 = int(window.row_off), int(window.col_off)
    rows = -(-(r0 + int(window.height)) // bh) - r0 // bh
    cols = -(-(c0 + int(window.width)) // bw) - c0 // bw
    block = bh * bw * np.dtype(src.dtypes[band - 1]).itemsize * int(src.count)
    return cache >= rows * cols * block


def _read_parts(src: Any, band: int, window: Window) -> list[int] | None:
    """Where a read of ``window`` is split (:func:`block_column_edges`), or ``None`` for one
    read: the window lies in one block column, the file is not tiled, or GDAL's block cache
    holds all the window's blocks (then the previous tile's are all still there). Parts, left
    to right: the first block column alone (the previous tile of the row read it last: its
    blocks are still cached), the columns between, the last alone (so that the next tile
    finds its blocks cached); GDAL reads each read's blocks row by row, which would evict a
    shared column read together with the others. Each read costs a call of its own (~30 us;
    4% of reading a 5000^2 uint8 raster's tiles from the cache), hence ``None`` where the
    parts save no decoding."""
    edges = block_column_edges(src, band, int(window.col_off), int(window.width))
    if len(edges) <= 2 or _cache_holds_window(src, band, window):
        return None
    return edges


def _read_into(src: Any, idx: list[int], window: Window, out: np.ndarray, edges: list[int]) -> None:
    """Read ``window`` of bands ``idx`` into ``out`` (shape ``(len(idx), h, w)``, a view may
    be strided), in the parts between ``edges`` (:func:`_read_parts`), left to right."""
    c0, r0, h = int(window.col_off), int(window.row_off), int(window.height)
    for a, b in zip(edges[:-1], edges[1:]):
        src.read(idx, window=Window(a, r0, b - a, h), out=out[:, :, a - c0 : b - c0])


def read_tile(src_or_path: Any, tile: Tile, indexes: list[int] | None = None) -> np.ma.MaskedArray:
    """Read a tile as a masked array of shape ``(bands, tile_px, tile_px)``.

    Pixels that are nodata (per-band masks: nodata value, mask band or alpha) are masked,
    and so is the padding past the raster's right/bottom edge, whose data value is the
    nodata value (0 when the raster has none). The dtype is the raster's. A tile of a
    raster whose bands are all valid (no nodata, no mask band) and that needs no padding
    carries ``np.ma.nomask`` rather than an all-False array: read masks with
    ``np.ma.getmaskarray``.

    Raises
    ------
    TileReadError
        The window could not be read (names the file and the tile).
    """
    with as_dataset(src_or_path, check_read=False) as src:
        idx = list(indexes) if indexes is not None else list(range(1, src.count + 1))
        th, tw = tile.shape
        valid = tile.valid_window
        vh, vw = int(valid.height), int(valid.width)
        enums = src.mask_flag_enums  # one GDAL query for all bands
        flags = [enums[i - 1] for i in idx]
        by_value = [f == [MaskFlags.nodata] for f in flags]
        # Masks that are just "value == nodata" are computed from the data (GDAL would
        # read the band a second time); mask bands and alpha are read from GDAL.
        from_gdal = any(not v and f != [MaskFlags.all_valid] for f, v in zip(flags, by_value))
        fill = src.nodata if src.nodata is not None else 0
        dtype = src.dtypes[idx[0] - 1]
        padded = (vh, vw) != (th, tw)
        # Padding of zero bits is left to ``np.zeros`` (calloc: fresh pages are zero and
        # are not written, so the part of a tile past the raster is not touched here).
        zeroed = bool(fill == 0) and math.copysign(1.0, float(fill)) > 0  # not -0.0
        make = np.zeros if zeroed else np.empty
        if not (vh and vw):  # wholly outside the raster: all padding
            return np.ma.MaskedArray(
                np.full((len(idx), th, tw), fill, dtype=dtype), mask=np.ones((len(idx), th, tw), dtype=bool)
            )
        try:
            parts = None if from_gdal else _read_parts(src, idx[0], valid)
            if from_gdal:
                arr = src.read(idx, window=valid, masked=True)
            elif padded:  # read straight into the padded tile (no second copy)
                arr = make((len(idx), th, tw), dtype=dtype)
                if parts is None:
                    src.read(idx, window=valid, out=arr[:, :vh, :vw])
                else:
                    _read_into(src, idx, valid, arr[:, :vh, :vw], parts)
            elif parts is None:
                arr = src.read(idx, window=valid)
            else:
                arr = np.empty((len(idx), th, tw), dtype=dtype)
                _read_into(src, idx, valid, arr, parts)
        except RasterioError as exc:
            raise TileReadError(
                f"raster {src.name}: tile {tile.index} (window {tile.window}) could not be read ({exc})"
            ) from exc
        data = np.ma.getdata(arr)
        inside = data[:, :vh, :vw]  # the read pixels (all of them when not padded)
        # the mask of the read pixels; None: nothing masked
        m: np.ndarray | None = np.ma.getmaskarray(arr) if from_gdal else None
        if not from_gdal and any(by_value):
            m = np.zeros(inside.shape, bool)
            for k, v in enumerate(by_value):
                if v:
                    nd = src.nodatavals[idx[k] - 1]
                    m[k] = np.isnan(inside[k]) if nd is not None and np.isnan(nd) else inside[k] == nd
        if data.dtype.kind == "f":  # np.floating
            # undeclared NaN/inf pixels are nodata too (a float raster without a nodata value)
            bad = ~np.isfinite(inside)
            if bad.any():
                m = bad if m is None else m | bad
        if not padded:  # interior tile: no padding, no copy
            return np.ma.MaskedArray(data, mask=np.ma.nomask if m is None else m)
        if from_gdal:  # GDAL's read is the valid part only: place it in a full tile
            full = make((len(idx), th, tw), dtype=dtype)
            full[:, :vh, :vw] = data
            data = full
        if not zeroed:
            data[:, vh:, :] = fill
            data[:, :vh, vw:] = fill
        mask = np.zeros((len(idx), th, tw), dtype=bool)
        if m is not None:
            mask[:, :vh, :vw] = m
        mask[:, vh:, :] = True
        mask[:, :vh, vw:] = True
        return np.ma.MaskedArray(data, mask=mask)
