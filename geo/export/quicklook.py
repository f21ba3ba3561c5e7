"""Quicklook PNG: a map a person reads, of a raster with its objects and an answer.

Bounded memory: the raster is read once at reduced resolution (``max_px`` on the long
side), or not at all when grounding read every tile anyway: the workers sum each tile's
core into the basemap's cells (:func:`cell_sums`) and :class:`BasemapSums` adds them up
into the same picture (bit for bit for unsigned integer bands; see there for floats). Bands are picked by name (red, green, blue; else the first three, else the first
band as grey) and stretched per band between the 2nd and 98th percentiles of the valid
pixels. On it: objects outlined in their class colour, the answer's evidence in magenta,
an answer region filled in cyan; a title (the question and the answer), a legend, a scale
bar in metres (geodesic, measured across the map centre) and a north arrow (true north at
the map centre, so a rotated grid shows it). On a dense scene (more than
``dense_objects`` objects) only the evidence is drawn, with thin outlines. Objects smaller
than 2 x 2 display pixels are not outlined (they would only be specks). Drawn with Pillow,
written atomically.
"""

from __future__ import annotations

import contextlib
import math
import os
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from georeason.geo.export.layers import atomic_path
from georeason.geo.export.qgis import ANSWER, EVIDENCE, class_colour
from georeason.geo.raster.io import as_dataset, band_names
from georeason.geo.raster.masks import ValidCells
from georeason.geo.vector.crs import coordinate_chunks

__all__ = [
    "thumbnail_data_uri",
    "keep_thumbnails",
    "write_quicklook",
    "read_basemap",
    "Basemap",
    "rgb_band_indexes",
    "stretch_to_uint8",
    "nice_length_m",
    "Overlay",
    "BasemapCells",
    "basemap_cells",
    "CellSums",
    "cell_sums",
    "cell_sums_shape",
    "SUM_DTYPES",
    "COUNT_DTYPES",
    "BasemapSums",
    "basemap_or_read",
]

MAGENTA = EVIDENCE


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


def nice_length_m(target_m: float) -> float:
    """The largest 1, 2 or 5 x 10^k metres not above ``target_m`` (a scale bar length).

    Examples
    --------
    >>> nice_length_m(740.0), nice_length_m(3100.0), nice_length_m(19.0)
    (500.0, 2000.0, 10.0)
    """
    if target_m <= 0 or not math.isfinite(target_m):
        return 0.0
    k = 10.0 ** math.floor(math.log10(target_m))
    return max(m * k for m in (1.0, 2.0, 5.0) if m * k <= target_m)


def _length_label(m: float) -> str:
    return f"{m / 1000:g} km" if m >= 1000 else f"{m:g} m"


class Overlay:
    """Geometries (in the raster's CRS) drawn on a quicklook, with their legend entry."""

    def __init__(
        self,
        geoms: Sequence[BaseGeometry],
        label: str,
        colour: tuple[int, int, int],
        *,
        width_px: int = 1,
        fill_alpha: int = 0,
    ) -> None:
        self.geoms = [g for g in geoms if g is not None and not g.is_empty]
        self.label, self.colour, self.width_px, self.fill_alpha = label, colour, width_px, fill_alpha


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _draw_geoms(img, overlay: Overlay, inv: Affine, min_side: float) -> int:
    """Draw ``overlay`` on the RGBA image through the inverse display transform; return how
    many geometries were drawn."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    line = (*overlay.colour, 255)
    fill = (*overlay.colour, overlay.fill_alpha) if overlay.fill_alpha else None
    drawn = 0

    ia, ib, ic, id_, ie, if_ = inv.a, inv.b, inv.c, inv.d, inv.e, inv.f

    def px(coords) -> list[float]:
        # the affine map of ``inv @ (x, y)`` on all vertices at once (same operations in the
        # same order, so the same floats), flat [x0, y0, x1, y1, ...] as PIL takes it
        xy = np.asarray(coords, dtype=float).reshape(-1, len(coords[0]) if len(coords) else 2)[:, :2]
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([x * ia + y * ib + ic, x * id_ + y * ie + if_]).ravel().tolist()

    geoms = [
        g
        for g in overlay.geoms
        if not g.geom_type.endswith("Polygon")
        or max(g.bounds[2] - g.bounds[0], g.bounds[3] - g.bounds[1]) >= min_side
    ]
    for parts in _parts_in_chunks(geoms):
        drawn += _draw_parts(d, parts, overlay, line, fill, (ia, ib, ic, id_, ie, if_), px, inv)
    img.alpha_composite(layer)
    return drawn


#: Vertices drawn per step of :func:`_draw_geoms`: the pixel rings of a step are Python lists
#: of floats (~70 bytes a vertex), so an answer resting on a whole class is drawn a chunk of
#: its geometries at a time (the 20000² scene's vegetation evidence, 2.9 M vertices, held
#: ~300 MB of rings and parts at once). The same drawing calls, in the same order.
DRAW_CHUNK_COORDS = 50_000


def _parts_in_chunks(geoms: Sequence[BaseGeometry]) -> Iterator[list[np.ndarray]]:
    """The parts of each geometry, in order, for about :data:`DRAW_CHUNK_COORDS` vertices at a time."""
    for part in coordinate_chunks(geoms, DRAW_CHUNK_COORDS):
        yield [shapely.get_parts(g) for g in part]


def _draw_parts(
    d: Any,
    parts: list[np.ndarray],
    overlay: Overlay,
    line: tuple[int, ...],
    fill: tuple[int, ...] | None,
    inv6: tuple[float, ...],
    px: Callable[[Any], list[float]],
    inv: Affine,
) -> int:
    """Draw the parts of some geometries of ``overlay`` (one array of parts per geometry);
    return how many geometries were drawn."""
    drawn = 0
    polys = [p for ps in parts for p in ps if p.geom_type == "Polygon" and not p.is_empty]
    rings = iter(_pixel_rings(polys, inv6))
    for ps in parts:
        for part in ps:
            t = part.geom_type
            if t == "Polygon":
                pr = (
                    next(rings)
                    if not part.is_empty
                    else [px(r.coords) for r in (part.exterior, *part.interiors)]
                )
                if fill:
                    d.polygon(pr[0], fill=fill)
                    for hole in pr[1:]:
                        d.polygon(hole, fill=(0, 0, 0, 0))
                for ring in pr:
                    d.line(ring, fill=line, width=overlay.width_px)
            elif t in ("LineString", "LinearRing"):
                d.line(px(part.coords), fill=line, width=max(overlay.width_px, 2))
            elif t == "Point":
                x, y = inv @ (part.x, part.y)
                r = 3 + overlay.width_px
                d.ellipse((x - r, y - r, x + r, y + r), outline=(0, 0, 0, 255), fill=line)
        drawn += 1
    return drawn


def _pixel_rings(polys: Sequence[BaseGeometry], inv: tuple[float, ...]) -> list[list[list[float]]]:
    """The pixel rings ``[exterior, *holes]`` of each (non-empty) polygon, each ring flat
    ``[x0, y0, x1, y1, ...]`` as PIL takes it: one coordinate array and one affine map for
    all (the same operations per vertex as one ring at a time, so the same floats)."""
    if not polys:
        return []
    ia, ib, ic, id_, ie, if_ = inv
    arr = np.empty(len(polys), dtype=object)
    arr[:] = list(polys)
    rings, owner = shapely.get_rings(arr, return_index=True)  # exterior, then holes, per polygon
    xy = shapely.get_coordinates(rings)
    x, y = xy[:, 0], xy[:, 1]
    flat = np.column_stack([x * ia + y * ib + ic, x * id_ + y * ie + if_]).ravel().tolist()
    ends = (2 * np.cumsum(shapely.get_num_coordinates(rings))).tolist()
    out: list[list[list[float]]] = [[] for _ in polys]
    start = 0
    for k, end in zip(owner.tolist(), ends):
        out[k].append(flat[start:end])
        start = end
    return out


def _ground_m_per_px(transform: Affine, crs: CRS | None, w: int, h: int) -> float | None:
    """Geodesic metres per display pixel, measured along the map's centre row."""
    if crs is None:
        return None
    x0, y0 = transform @ (w / 2, h / 2)
    x1, y1 = transform @ (w / 2 + 1, h / 2)
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_ll.transform([x0, x1], [y0, y1])
    _, _, dist = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
    return float(dist) if math.isfinite(dist) and dist > 0 else None


def _north_angle(transform: Affine, crs: CRS | None, w: int, h: int) -> float:
    """Angle (radians, clockwise from image up) of true north at the map centre."""
    if crs is None:
        return 0.0
    x0, y0 = transform @ (w / 2, h / 2)
    to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
    from_ll = Transformer.from_crs(4326, crs, always_xy=True)
    lon, lat = to_ll.transform(x0, y0)
    xn, yn = from_ll.transform(lon, min(lat + 0.01, 89.9))
    c0, r0 = ~transform @ (x0, y0)
    c1, r1 = ~transform @ (xn, yn)
    return math.atan2(c1 - c0, -(r1 - r0))


class Basemap:
    """A raster read once for display: stretched RGB (``h x w x 3`` uint8), its display
    transform and CRS. Reused for every quicklook of an item."""

    def __init__(
        self,
        rgb: np.ndarray,
        transform: Affine,
        crs: CRS | None,
        bands: Sequence[int] = (1, 2, 3),
        stretch: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.rgb, self.transform, self.crs = rgb, transform, crs
        #: 1-based band numbers shown as red, green, blue, and each one's (low, high) stretch
        self.bands, self.stretch = tuple(bands), tuple(stretch)


def _block_mean(src: Any, idx: Sequence[int], k: int, strip_mpx: float = 1.0) -> np.ma.MaskedArray:
    """The mean of each k x k block of valid pixels of bands ``idx``: shape ``(3, ceil(H/k),
    ceil(W/k))``; a block without valid pixels is masked. Read in windows of about
    ``strip_mpx`` megapixels per band, so memory stays bounded whatever the raster's size.

    Unsigned integer bands whose validity is their nodata value (or all valid) are read once
    (a masked read decodes them twice: data and mask band) and summed exactly in integers;
    a block sum is then the float32 sum the general path computes (exact below 2**24, where
    the general path's float32 sum is exact too; a window with a larger sum takes it).

    A tiled file is read in windows at least one block row high and a whole number of
    blocks (and of k) wide: full-width strips k-aligned but thinner than a block row made
    GDAL decode each block row once per strip when the row did not fit its (bounded) block
    cache: 123 s instead of a few on a 20000² file of 512² deflate tiles."""
    h, w = math.ceil(src.height / k), math.ceil(src.width / k)
    out = np.ma.masked_all((len(idx), h, w), dtype="float32")
    rows = max(1, int(strip_mpx * 1e6) // (w * k * k))  # output rows per strip
    cols = w  # output columns per window
    by_value = _validity_by_value(src, idx)
    bh, bw = src.block_shapes[0] if src.block_shapes else (1, src.width)
    if by_value is not None and bw < src.width and bh > rows * k:
        # exact integer sums do not depend on the windows: tile-aligned windows are safe
        rows = math.ceil(bh / k)
        step = math.lcm(k, bw) // k  # output columns per window: whole blocks, whole k
        cols = min(w, step * max(1, int(strip_mpx * 1e6) // (rows * k * step * k)))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        y0, y1 = r0 * k, min(src.height, r1 * k)
        for c0 in range(0, w, cols):
            c1 = min(w, c0 + cols)
            x0, x1 = c0 * k, min(src.width, c1 * k)
            win = ((y0, y1), (x0, x1))
            pad = ((0, 0), (0, (r1 - r0) * k - (y1 - y0)), (0, (c1 - c0) * k - (x1 - x0)))
            shape = (len(idx), r1 - r0, k, c1 - c0, k)
            total: np.ndarray | None = None
            if by_value is not None:
                raw = src.read(list(idx), window=win)
                nodata = by_value[0]
                valid = raw != nodata if nodata is not None else np.ones(raw.shape, dtype=bool)
                if nodata is not None and nodata != 0:
                    raw = np.where(valid, raw, 0)
                if pad[1][1] or pad[2][1]:
                    raw, valid = np.pad(raw, pad), np.pad(valid, pad)
                exact = _block_sum(raw, shape)
                if int(exact.max(initial=0)) < 2**24:  # float32 sums of these are exact in any order
                    total = exact.astype("float32")
                    count = _block_sum(valid, shape).astype(np.int64)
            if total is None:
                a = src.read(list(idx), window=win, masked=True)
                valid = ~np.ma.getmaskarray(a)
                data = np.where(valid, np.ma.getdata(a), 0).astype("float32", copy=False)
                if pad[1][1] or pad[2][1]:  # partial blocks at the bottom / right edge
                    data, valid = np.pad(data, pad), np.pad(valid, pad)
                total = data.reshape(shape).sum(axis=(2, 4))
                count = valid.reshape(shape).sum(axis=(2, 4))
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, r0:r1, c0:c1] = np.ma.masked_array(total / count, mask=count == 0)
    return out


def _block_sum(a: np.ndarray, shape: tuple[int, int, int, int, int]) -> np.ndarray:
    """Exact sums (uint64) over the k x k blocks of the unsigned integer (or boolean) array
    ``a``, ``shape`` = (bands, rows, k, cols, k): the k pixel rows of a block row added as
    whole rows first (long contiguous adds), then each k adjacent columns."""
    b, r, k, w, _ = shape
    if a.dtype == bool:
        a = a.view(np.uint8)
    rows = a.reshape(b, r, k, w * k).sum(axis=2, dtype=np.uint32 if a.dtype.itemsize <= 2 else np.uint64)
    return rows.reshape(b, r, w, k).sum(axis=3, dtype=np.uint64)


def _validity_by_value(src: Any, idx: Sequence[int]) -> tuple[float | None] | None:
    """``(nodata,)`` when bands ``idx`` are unsigned integers whose only mask is their nodata
    value (``(None,)`` when all pixels are valid); ``None`` otherwise (alpha or per-dataset
    masks, floats, signed integers: the masked read decides)."""
    from rasterio.enums import MaskFlags

    if any(np.dtype(src.dtypes[i - 1]).kind != "u" for i in idx):
        return None
    flags = {tuple(src.mask_flag_enums[i - 1]) for i in idx}
    if flags == {(MaskFlags.all_valid,)}:
        return (None,)
    if flags == {(MaskFlags.nodata,)} and src.nodata is not None and float(src.nodata).is_integer():
        return (src.nodata,)
    return None


def _as_basemap(data: np.ma.MaskedArray, transform: Affine, crs: CRS | None, idx: Sequence[int]) -> Basemap:
    """The :class:`Basemap` of display values ``data`` (3 bands, masked where no pixel was valid)."""
    rgb = np.stack([stretch_to_uint8(data[i]) for i in range(3)], axis=-1)
    stretch = []
    for i in range(3):
        valid = np.ma.asarray(data[i]).compressed()
        lo, hi = np.percentile(valid, [2.0, 98.0]) if valid.size else (0.0, 1.0)
        stretch.append((float(lo), float(hi)))
    return Basemap(rgb, transform, crs, idx, stretch)


def read_basemap(raster: Any, max_px: int = 1000) -> Basemap:
    """Read ``raster`` at ``max_px`` on its long side (enlarged when smaller) as a :class:`Basemap`.

    Where the tiles of a grounding are read anyway, :class:`BasemapSums` makes the same
    basemap from them instead (:func:`basemap_cells` says when it can)."""
    with as_dataset(raster, check_read=False) as src:
        scale = max(src.width, src.height) / max_px  # below 1: a small raster is enlarged
        idx = [i + 1 for i in rgb_band_indexes(band_names(src))]
        crs = CRS.from_user_input(src.crs) if src.crs else None
        if scale > 1 and not src.overviews(idx[0]):
            # no overviews: GDAL's average resampling over the whole file cost 9.5 CPU-s on an
            # 8000^2 scene; block means over k x k pixels, read in strips, cost ~1 s
            k = math.ceil(scale)
            data = _block_mean(src, idx, k)
            transform = src.transform @ Affine.scale(k, k)
        else:
            w, h = max(1, int(round(src.width / scale))), max(1, int(round(src.height / scale)))
            how = Resampling.average if scale >= 1 else Resampling.nearest
            data = src.read(idx, out_shape=(3, h, w), resampling=how, masked=True)
            transform = src.transform @ Affine.scale(src.width / w, src.height / h)
    return _as_basemap(data, transform, crs, idx)


# --------------------------------------------------------------------------- the basemap from tiles


@dataclass(frozen=True)
class BasemapCells:
    """How :func:`read_basemap` would reduce a raster without overviews: ``k x k`` pixel
    cells (``k`` and the red, green, blue band numbers ``bands``, 1-based, as it chooses
    them) of a ``height x width`` raster with ``transform`` and CRS ``crs_wkt``. Small and
    hashable: a grounding job carries it to the workers, which sum each tile's core into
    these cells (:func:`cell_sums`) while they read it for grounding."""

    k: int
    bands: tuple[int, int, int]
    height: int
    width: int
    transform: Affine
    crs_wkt: str | None
    #: numpy dtype kind of the bands: ``u`` (exact integer sums), ``i`` or ``f``
    kind: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of cells: ``(ceil(height / k), ceil(width / k))``."""
        return -(-self.height // self.k), -(-self.width // self.k)

    @property
    def sum_dtype(self) -> type[np.generic]:
        """The dtype cell sums are exact or closest in: 64-bit unsigned or signed integers,
        else float64."""
        return {"u": np.uint64, "i": np.int64}.get(self.kind, np.float64)


def basemap_cells(src: Any, max_px: int = 1000) -> BasemapCells | None:
    """The :class:`BasemapCells` of the open dataset ``src`` when :func:`read_basemap` would
    compute block means of full-resolution pixels (a raster larger than ``max_px`` without
    overviews on its first display band, all bands of one numeric type); ``None`` when it
    would read otherwise (overviews, an enlarged small raster), so the basemap must be read.

    Examples
    --------
    >>> import numpy as np, rasterio, tempfile, os
    >>> from rasterio.transform import from_origin
    >>> p = os.path.join(tempfile.mkdtemp(), "b.tif")
    >>> with rasterio.open(p, "w", driver="GTiff", width=2500, height=900, count=1, dtype="uint8",
    ...                    crs="EPSG:32633", transform=from_origin(500000, 5e6, 10, 10)) as d:
    ...     d.write(np.ones((1, 900, 2500), "uint8"))
    >>> with rasterio.open(p) as src:
    ...     c = basemap_cells(src)
    >>> c.k, c.bands, c.shape, c.kind
    (3, (1, 1, 1), (300, 834), 'u')
    """
    scale = max(src.width, src.height) / max_px
    idx = [i + 1 for i in rgb_band_indexes(band_names(src))]
    if scale <= 1 or src.overviews(idx[0]) or len(set(src.dtypes)) != 1:
        return None
    kind = np.dtype(src.dtypes[0]).kind
    if kind not in "uif":
        return None
    return BasemapCells(
        k=math.ceil(scale),
        bands=(idx[0], idx[1], idx[2]),
        height=int(src.height),
        width=int(src.width),
        transform=src.transform,
        crs_wkt=src.crs.to_wkt() if src.crs else None,
        kind=kind,
    )


@dataclass(frozen=True, eq=False)
class CellSums:
    """One tile core's share of the basemap cells (:func:`cell_sums`): per display band, the
    sum of the valid pixels and their count in each cell the core touches. ``core`` is the
    core window ``(row, col, height, width)`` in raster pixels; ``counts`` is ``None`` when
    every pixel of the core is valid (the counts are then the cells' areas inside it)."""

    index: tuple[int, int]
    core: tuple[int, int, int, int]
    sums: np.ndarray
    counts: np.ndarray | None


def _cuts(start: int, stop: int, k: int) -> tuple[int, np.ndarray]:
    """The first cell of pixels ``[start, stop)`` along an axis and the offsets (from
    ``start``) where each of its cells begins there."""
    first, last = start // k, -(-stop // k)
    return first, np.concatenate([[0], np.arange(first + 1, last) * k - start]).astype(np.intp)


def cell_sums(
    cells: BasemapCells, index: tuple[int, int], core: Any, core_in_tile: Any, pixels: Any
) -> CellSums | None:
    """Sum the core of one tile, as read for grounding, into the basemap's cells.

    ``pixels`` is the tile (all the raster's bands, masked where not valid, as
    :func:`georeason.geo.raster.tiling.read_tile` reads it); ``core`` and ``core_in_tile``
    are its core window in raster and in tile pixels. Cells cut by the core's edges get
    the sums of their part in this core; the other cores that cut them add the rest
    (:class:`BasemapSums`). Unsigned and signed integers are summed exactly (64-bit
    integers), floats in float64. ``None`` when ``pixels`` does not hold the display bands.
    """
    if np.ndim(pixels) != 3 or max(cells.bands) > pixels.shape[0]:
        return None
    r0, c0, h, w = int(core.row_off), int(core.col_off), int(core.height), int(core.width)
    tr, tc = int(core_in_tile.row_off), int(core_in_tile.col_off)
    pos = [b - 1 for b in cells.bands]
    data = np.ma.getdata(pixels)[pos, tr : tr + h, tc : tc + w]
    m = np.ma.getmask(pixels)
    valid = None if m is np.ma.nomask else ~m[pos, tr : tr + h, tc : tc + w]
    if valid is not None and valid.all():
        valid = None
    if valid is not None:
        data = np.where(valid, data, 0)
    k = cells.k
    _, rcuts = _cuts(r0, r0 + h, k)
    _, ccuts = _cuts(c0, c0 + w, k)
    acc: Any = cells.sum_dtype
    if cells.kind == "u" and k * k * float(np.iinfo(data.dtype).max) < 2**32:
        acc = np.uint32  # exact too, and half the bytes back to the main process
    # columns first: the cuts along the contiguous axis, then whole rows added (4x faster
    # than rows first on a 1024 px tile)
    sums = np.add.reduceat(np.add.reduceat(data, ccuts, axis=2, dtype=acc), rcuts, axis=1, dtype=acc)
    counts = None
    if valid is not None:
        ct = np.uint16 if k * k < 2**16 else np.uint32
        ones = valid.view(np.uint8)
        counts = np.add.reduceat(np.add.reduceat(ones, ccuts, axis=2, dtype=ct), rcuts, axis=1, dtype=ct)
    return CellSums((int(index[0]), int(index[1])), (r0, c0, h, w), sums, counts)


#: The dtypes :func:`cell_sums` gives a tile's sums, by :attr:`BasemapCells.kind` (what a
#: stored :class:`CellSums`, :mod:`georeason.tilecache`, may hold), and its counts.
SUM_DTYPES: dict[str, tuple[str, ...]] = {"u": ("uint32", "uint64"), "i": ("int64",), "f": ("float64",)}
COUNT_DTYPES: tuple[str, ...] = ("uint16", "uint32")


def cell_sums_shape(cells: BasemapCells, core: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """The shape of :func:`cell_sums`'s arrays for the core window ``(row, col, height, width)``:
    three display bands by the cells the core touches.

    Examples
    --------
    >>> c = BasemapCells(10, (1, 2, 3), 100, 100, Affine.identity(), None, "u")
    >>> cell_sums_shape(c, (0, 0, 25, 10)), cell_sums_shape(c, (5, 15, 10, 10))
    ((3, 3, 1), (3, 2, 2))
    """
    r0, c0, h, w = core
    return 3, len(_cuts(r0, r0 + h, cells.k)[1]), len(_cuts(c0, c0 + w, cells.k)[1])


class BasemapSums:
    """The basemap summed from the tiles grounding reads (in the main process): each tile's
    :class:`CellSums` added as its batch comes back; :meth:`basemap` is then
    :func:`read_basemap`'s basemap without reading the file again.

    What it guarantees, against :func:`read_basemap` (its block means, ``_block_mean``):

    * **unsigned integers**: the same basemap, bit for bit. The sums are exact; the mean of
      a cell is its exact sum over its count, rounded once to float32, which is what
      ``_block_mean`` computes while a cell's sum stays below 2**24 (its float32 sums are
      then exact in any order). A cell at or above 2**24 gives ``None`` (read the file).
    * **signed integers and floats**: each cell's mean of the valid pixels (read_tile's
      validity: undeclared NaN and inf are not valid) from exact int64 or float64 sums,
      rounded once to float32: within float32 rounding of the exact mean, where
      ``_block_mean`` sums in float32 (and so may differ in the last bits, and a stretched
      display value by one level).

    Tiles are listed up front (``tiles``, their indexes); the basemap is ready when every
    one of them was added (:attr:`complete`: a tile that failed to read, or a batch taken
    from a tile cache entry stored without its sums, leaves it incomplete and the caller
    reads the file; :mod:`georeason.tilecache` keeps each tile's sums with its detections).
    A tile added twice (a retried batch) counts once. Memory: three 32-bit sums (64-bit
    where exact needs them) and three 16-bit counts per cell (1000 x 1000 cells: 18 MB).
    """

    def __init__(self, cells: BasemapCells, tiles: Iterable[tuple[int, int]]) -> None:
        self.cells = cells
        # as narrow as exact allows: a cell's total over the cores that cut it is at most k * k
        # pixels, so its count fits 16 bits below k = 256, and unsigned sums start in 32 bits
        # (what :func:`cell_sums` sends while k * k * the dtype's maximum is below 2**32),
        # widened by the first part summed in 64 (half the memory of 64-bit sums and 32-bit counts)
        self.sums: np.ndarray | None = np.zeros(
            (3, *cells.shape), dtype=np.uint32 if cells.kind == "u" else cells.sum_dtype
        )
        self.counts: np.ndarray | None = np.zeros(
            (3, *cells.shape), dtype=np.uint16 if cells.k * cells.k < 2**16 else np.uint32
        )
        self._waiting = {(int(i), int(j)) for i, j in tiles}

    @property
    def complete(self) -> bool:
        """Every listed tile was added."""
        return not self._waiting and self.sums is not None

    def add(self, part: CellSums) -> bool:
        """Add one tile's sums; ``False`` (and nothing added) for a tile not listed or added before."""
        if part.index not in self._waiting or self.sums is None or self.counts is None:
            return False
        self._waiting.discard(part.index)
        k = self.cells.k
        r0, c0, h, w = part.core
        row, rcuts = _cuts(r0, r0 + h, k)
        col, ccuts = _cuts(c0, c0 + w, k)
        at = (slice(None), slice(row, row + len(rcuts)), slice(col, col + len(ccuts)))
        if part.sums.dtype.itemsize > self.sums.dtype.itemsize:
            self.sums = self.sums.astype(np.result_type(self.sums, part.sums))
        self.sums[at] += part.sums
        if part.counts is not None:
            self.counts[at] += part.counts
        else:  # every pixel valid: the area of each cell inside the core
            heights = np.diff(np.append(rcuts, h)).astype(self.counts.dtype)
            widths = np.diff(np.append(ccuts, w)).astype(self.counts.dtype)
            self.counts[at] += np.outer(heights, widths)
        return True

    def valid_cells(self) -> ValidCells | None:
        """The cells known to hold only valid pixels (:class:`~georeason.geo.raster.masks.ValidCells`):
        those where some display band was valid at every pixel of the cell, as the tiles were
        read (by their bands' nodata values). ``None`` when not :attr:`complete` (a tile not
        summed here) or the bands are not integers (a float raster's undeclared NaN are
        invalid to the tiles, not to GDAL's dataset mask). Call it before :meth:`basemap`,
        which releases the sums.

        Examples
        --------
        >>> c = BasemapCells(2, (1, 2, 3), 3, 4, Affine.identity(), None, "u")
        >>> s = BasemapSums(c, [(0, 0)])
        >>> full = np.ones((3, 3, 4), bool)
        >>> part = full.copy(); part[:, 2, 3] = False  # one pixel of the last cell invalid in all bands
        >>> s.add(CellSums((0, 0), (0, 0, 3, 4), np.zeros((3, 2, 2), np.uint32),
        ...                np.add.reduceat(np.add.reduceat(part.view(np.uint8), [0, 2], axis=2, dtype=np.uint16),
        ...                                [0, 2], axis=1, dtype=np.uint16)))
        True
        >>> s.valid_cells().known.tolist()
        [[True, True], [True, False]]
        """
        if not self.complete or self.counts is None or self.cells.kind not in "ui":
            return None
        c = self.cells
        rows, cols = c.shape
        heights = np.minimum(c.k, c.height - np.arange(rows) * c.k)
        widths = np.minimum(c.k, c.width - np.arange(cols) * c.k)
        area = np.outer(heights, widths)
        return ValidCells(c.k, (self.counts == area).any(axis=0))

    def means(self) -> np.ma.MaskedArray:
        """Each cell's mean of valid pixels, float32 ``(3, rows, cols)``; masked where none."""
        if self.sums is None or self.counts is None:
            raise ValueError("the basemap sums were released")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.sums.astype(np.float64) / self.counts).astype(np.float32)
        return np.ma.masked_array(mean, mask=self.counts == 0)

    def basemap(self) -> Basemap | None:
        """The :class:`Basemap`, or ``None`` when it is not
        :func:`read_basemap`'s (not :attr:`complete`, or an unsigned cell sum at or above
        2**24, see the class docstring): read the file then. Either way the sums are
        released: call it once."""
        if not self.complete or self.sums is None:
            self.sums = self.counts = None
            return None
        if self.cells.kind == "u" and int(self.sums.max(initial=0)) >= 2**24:
            self.sums = self.counts = None
            return None
        data = self.means()
        self.sums = self.counts = None
        c = self.cells
        crs = CRS.from_user_input(c.crs_wkt) if c.crs_wkt else None
        return _as_basemap(data, c.transform @ Affine.scale(c.k, c.k), crs, list(c.bands))


def basemap_or_read(sums: BasemapSums | None, raster: Any, max_px: int = 1000) -> Basemap:
    """``sums``'s basemap when it has one (:meth:`BasemapSums.basemap`), else
    :func:`read_basemap` of ``raster``: the same picture either way (floats: see
    :class:`BasemapSums`)."""
    base = sums.basemap() if sums is not None and sums.cells.k == _k_for(sums.cells, max_px) else None
    return base if base is not None else read_basemap(raster, max_px)


def _k_for(cells: BasemapCells, max_px: int) -> int:
    return math.ceil(max(cells.width, cells.height) / max_px)


def write_quicklook(
    raster: Any,
    path: str | Path,
    objects: Sequence[BaseGeometry] = (),
    evidence: Sequence[BaseGeometry] = (),
    max_px: int = 1000,
    *,
    classes: Sequence[str] | None = None,
    region: Sequence[BaseGeometry] = (),
    title: str | None = None,
    subtitle: str | None = None,
    dense_objects: int = 300,
    basemap: Basemap | None = None,
) -> Path:
    """Write a PNG map of ``raster`` (``max_px`` on the map's long side) with overlays.

    Parameters
    ----------
    raster
        Path or open dataset.
    objects, classes
        Objects (raster CRS) and their class names (outlined in the class colour; one
        legend entry per class). Skipped on a dense scene (more than ``dense_objects``).
    evidence
        The answer's evidence (magenta outlines; thin on a dense scene).
    region
        An answer region (filled in translucent cyan).
    title, subtitle
        Drawn above the map: the question and the answer, wrapped.
    basemap
        The raster already read by :func:`read_basemap` (then ``raster`` and ``max_px``
        are not used): an item's quicklooks read it once.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    base = basemap if basemap is not None else read_basemap(raster, max_px)
    rgb, transform, crs = base.rgb, base.transform, base.crs
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb, "RGB").convert("RGBA")
    inv = ~transform
    min_side = 2.0 * max(abs(transform.a), abs(transform.e))
    dense = len(objects) > dense_objects
    legend: list[tuple[str, tuple[int, int, int], str]] = []
    if not dense and objects:
        labels = list(classes) if classes is not None else ["object"] * len(objects)
        for cls in dict.fromkeys(labels):
            geoms = [g for g, c in zip(objects, labels) if c == cls]
            if _draw_geoms(img, Overlay(geoms, cls, class_colour(cls)), inv, min_side):
                legend.append((cls, class_colour(cls), "outline"))
    if region:
        if _draw_geoms(
            img, Overlay(region, "answer region", ANSWER, width_px=2, fill_alpha=90), inv, min_side
        ):
            legend.append(("answer region", ANSWER, "fill"))
    if evidence:
        thin = dense or len(evidence) > 50
        if _draw_geoms(
            img, Overlay(evidence, "evidence", EVIDENCE, width_px=1 if thin else 3), inv, min_side
        ):
            legend.append(("evidence", EVIDENCE, "outline"))
    if dense:
        legend.append((f"{len(objects)} objects (not drawn: dense scene)", (200, 200, 200), "note"))

    unit = max(12, round(max(w, h) / 55))  # text size: ~18 px on a 1000 px map
    font, bold = _font(unit), _font(round(unit * 1.25))
    pad = unit // 2
    d0 = ImageDraw.Draw(img)
    # north arrow, top right of the map
    ang = _north_angle(transform, crs, w, h)
    cx, cy, r = w - 2.2 * unit, 3.4 * unit, 1.4 * unit
    d0.ellipse((cx - r - 4, cy - r - 4, cx + r + 4, cy + r + 4), fill=(255, 255, 255, 200))

    def rot(dx: float, dy: float) -> tuple[float, float]:
        return (cx + dx * math.cos(ang) - dy * math.sin(ang), cy + dx * math.sin(ang) + dy * math.cos(ang))

    d0.polygon(
        [rot(0, -r), rot(r * 0.55, r * 0.8), rot(0, r * 0.35), rot(-r * 0.55, r * 0.8)], fill=(0, 0, 0, 255)
    )
    nx, ny = rot(0, -r - unit * 0.9)
    d0.text(
        (nx, ny),
        "N",
        font=font,
        fill=(0, 0, 0, 255),
        anchor="mm",
        stroke_width=2,
        stroke_fill=(255, 255, 255),
    )
    # scale bar, bottom left of the map
    mpp = _ground_m_per_px(transform, crs, w, h)
    if mpp:
        length = nice_length_m(mpp * w / 4)
        bar = length / mpp
        x0, y0 = 1.5 * unit, h - 2.0 * unit
        d0.rectangle(
            (x0 - pad, y0 - 1.6 * unit, x0 + bar + pad + 3 * unit, y0 + pad + 4), fill=(255, 255, 255, 210)
        )
        d0.rectangle((x0, y0 - 6, x0 + bar / 2, y0), fill=(0, 0, 0, 255))
        d0.rectangle((x0 + bar / 2, y0 - 6, x0 + bar, y0), outline=(0, 0, 0, 255), fill=(255, 255, 255, 255))
        d0.text((x0, y0 - 10), "0", font=font, fill=(0, 0, 0, 255), anchor="ms")
        d0.text((x0 + bar, y0 - 10), _length_label(length), font=font, fill=(0, 0, 0, 255), anchor="ms")

    # title above, legend below: a white frame around the map
    width_chars = max(20, int(w / (unit * 0.55)))
    head = textwrap.wrap(title or path.stem, width_chars)[:3]
    sub = textwrap.wrap(subtitle or "", width_chars)[:4]
    head_h = pad + len(head) * round(unit * 1.5) + len(sub) * round(unit * 1.3) + pad
    cols = max(1, int(w // (unit * 14)))
    rows = math.ceil(len(legend) / cols) if legend else 0
    leg_h = (rows * round(unit * 1.5) + 2 * pad) if rows else 0
    page = Image.new("RGB", (w, head_h + h + leg_h), (255, 255, 255))
    page.paste(img.convert("RGB"), (0, head_h))
    d = ImageDraw.Draw(page)
    y = pad
    for line in head:
        d.text((pad, y), line, font=bold, fill=(0, 0, 0))
        y += round(unit * 1.5)
    for line in sub:
        d.text((pad, y), line, font=font, fill=(40, 40, 40))
        y += round(unit * 1.3)
    for k, (label, colour, style) in enumerate(legend):
        col, row = k % cols, k // cols
        x = pad + col * (w // cols)
        yy = head_h + h + pad + row * round(unit * 1.5)
        box = (x, yy + 2, x + unit, yy + unit + 2)
        if style == "fill":
            d.rectangle(box, fill=tuple(int(0.35 * c + 0.65 * 255) for c in colour), outline=colour, width=2)
        elif style == "outline":
            d.rectangle(box, outline=colour, width=3)
        d.text((x + (unit + pad if style != "note" else 0), yy), label, font=font, fill=(0, 0, 0))
    with atomic_path(path) as tmp:
        # level 1: ~1.7x faster to encode than 3 for ~8% more bytes (a 1000 px quicklook:
        # 0.12 vs 0.20 s); optimize=True: ~5 s a picture
        page.save(tmp, format="PNG", compress_level=1)
    _keep_thumbnail(path, page)
    return path


#: Thumbnails made by :func:`write_quicklook` while :func:`keep_thumbnails` is open, by
#: absolute path: (the file's size and mtime when written, ``max_px``, the data URI).
_THUMBS: dict[str, tuple[tuple[int, int], int, str]] | None = None
#: The size wanted for each picture (``keep_thumbnails``'s ``size_of``).
_SIZE_OF: Callable[[Path], int | None] | None = None
_THUMBS_LOCK = threading.Lock()


def _file_stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _keep_thumbnail(path: Path, page: Any) -> None:
    """Make ``page``'s thumbnail now, while it is in memory, when :func:`keep_thumbnails`
    asks for one (called once ``path`` is written)."""
    with _THUMBS_LOCK:
        size_of = _SIZE_OF
    max_px = size_of(Path(path)) if size_of is not None else None
    if max_px is None:
        return
    uri = _jpeg_data_uri(page.copy(), max_px, THUMBNAIL_QUALITY)
    key = os.path.abspath(path)
    stamp = _file_stamp(key)
    with _THUMBS_LOCK:
        if _THUMBS is not None and stamp is not None:
            _THUMBS[key] = (stamp, max_px, uri)


def _take_thumbnail(path: str | Path, max_px: int) -> str | None:
    """The thumbnail kept for ``path`` at ``max_px`` (removed from the store), or ``None``
    when none was kept or the file changed since it was written."""
    key = os.path.abspath(path)
    with _THUMBS_LOCK:
        kept = None if _THUMBS is None else _THUMBS.pop(key, None)
    if kept is None or kept[1] != max_px or kept[0] != _file_stamp(key):
        return None
    return kept[2]


@contextlib.contextmanager
def keep_thumbnails(size_of: Callable[[Path], int | None]) -> Iterator[None]:
    """While open, :func:`write_quicklook` also makes the thumbnail of each page it writes
    (``size_of(path)`` pixels on its long side; ``None``: none) from the page in memory,
    and keeps it (a data URI, tens of kB) until :func:`thumbnail_data_uri` asks for it:
    the PNG just written is not decoded again (~20 ms a 1000 px picture; the ``answer``
    flow's artifacts). The thumbnail is the same (PNG is lossless: the decoded file is
    the page). What is not taken is dropped on exit; not nested."""
    global _THUMBS, _SIZE_OF
    with _THUMBS_LOCK:
        _THUMBS, _SIZE_OF = {}, size_of
    try:
        yield
    finally:
        with _THUMBS_LOCK:
            _THUMBS, _SIZE_OF = None, None


#: JPEG quality of the thumbnails (:func:`thumbnail_data_uri`).
THUMBNAIL_QUALITY = 80


def _jpeg_data_uri(im: Any, max_px: int, quality: int) -> str:
    """``im`` (RGB; scaled in place) as a JPEG data URI, ``max_px`` on its long side."""
    import base64
    import io

    im.thumbnail((max_px, max_px))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_data_uri(path: str | Path, max_px: int = 640, quality: int = THUMBNAIL_QUALITY) -> str:
    """A ``data:image/jpeg;base64,...`` URI of a picture scaled to ``max_px`` on its long
    side: small enough (tens of kB) to embed in a Prefect markdown artifact, which the
    Prefect UI shows as an image (``file://`` links are refused by browsers). A quicklook
    written while :func:`keep_thumbnails` is open has it made already (taken once)."""
    from PIL import Image

    kept = _take_thumbnail(path, max_px) if quality == THUMBNAIL_QUALITY else None
    if kept is not None:
        return kept
    with Image.open(path) as src:
        im = src.convert("RGB")
    return _jpeg_data_uri(im, max_px, quality)
