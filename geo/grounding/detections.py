"""The one interface between pixels and objects: :class:`Grounder`.

A grounder (spectral indices now, vision-language models later) looks at one tile and
returns :class:`Detection` objects in that tile's *pixel* space. Everything after that
(pixel -> CRS, seam merging, reasoning) is shared code and does not care which grounder
ran.

Pixel coordinates are ``(col, row)`` = ``(x, y)`` with the corner convention of
rasterio: ``(0, 0)`` is the top-left corner of the tile's first pixel, ``(0.5, 0.5)`` its
centre, and ``(tile_px, tile_px)`` the bottom-right corner of the last one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import shapely
from affine import Affine
from rasterio.env import Env
from rasterio.features import rasterize, shapes
from shapely import affinity
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError
from georeason.geo.raster.tiling import Tile

__all__ = [
    "KINDS",
    "pixel_rasterize",
    "pixel_shapes",
    "pixel_polygons",
    "Detection",
    "Grounder",
    "GroundedObject",
    "to_crs_geometry",
    "to_grounded",
    "world_to_pixel",
    "pixel_to_world",
    "mask_to_polygons",
    "config_key",
]

Kind = Literal["box", "polygon", "mask", "point"]
KINDS = ("box", "polygon", "mask", "point")


@dataclass(frozen=True, eq=False)
class Detection:
    """One thing a grounder found in one tile, in that tile's pixel coordinates.

    ``geometry`` is a shapely geometry in ``(col, row)`` pixel coordinates for kinds
    ``box`` (an axis-aligned rectangle, e.g. ``shapely.box(c0, r0, c1, r1)``), ``polygon``
    and ``point``; for kind ``mask`` it is a boolean array of the tile's shape
    ``(rows, cols)``. ``score`` is in [0, 1]. Compared by identity (masks are arrays).
    """

    label: str
    score: float
    kind: Kind
    geometry: BaseGeometry | np.ndarray
    #: A polygon that is a whole object, not a piece of a region: like a box, it is kept by
    #: the tile whose core holds its centre and never clipped to cores (seam merge).
    whole: bool = False
    #: What went wrong in the model output this detection was parsed from (the
    #: :class:`~georeason.errors.ParseWarning` messages: e.g. the output was truncated and
    #: the unfinished object after this one dropped); empty when the parse was clean.
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"detection kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "mask":
            if not isinstance(self.geometry, np.ndarray) or self.geometry.ndim != 2:
                raise InputError("a 'mask' detection needs a 2-D boolean array as geometry")
        elif not isinstance(self.geometry, BaseGeometry):
            raise InputError(
                f"a {self.kind!r} detection needs a shapely geometry, got {type(self.geometry).__name__}"
            )


@runtime_checkable
class Grounder(Protocol):
    """Finds objects of the named classes in one tile.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"spectral"`` or a model id.
    config : Mapping
        Everything that changes the output (thresholds, model revision, prompt, ...),
        JSON-serialisable, so :func:`config_key` can key caches on it.
    """

    name: str
    config: Mapping

    def ground(
        self, pixels: np.ma.MaskedArray, tile: Tile, classes: list[str], bands: list[str]
    ) -> list[Detection]:
        """Detect ``classes`` in ``pixels`` (``(bands, rows, cols)``, nodata and padding
        masked) of ``tile``; ``bands`` names the bands in order (``["red", "green", ...]``).
        Returns detections in tile pixel coordinates; nothing over masked pixels."""
        ...


def config_key(grounder: Grounder) -> str:
    """Stable hex key of a grounder's name and config, for caches.

    Examples
    --------
    >>> class G:
    ...     name = "g"
    ...     config = {"b": 1, "a": [0.5, "x"]}
    >>> config_key(G())[:12]
    '2f3757d9b9f9'
    """
    payload = json.dumps({"name": grounder.name, "config": grounder.config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class GroundedObject:
    """A detected object in the raster CRS.

    ``tiles`` lists the indices of the tiles that contributed (one for a single
    detection, several for an object merged across seams); ``id`` is set by
    :func:`georeason.geo.grounding.seams.merge_detections` (``"water-1"``, ...).
    """

    label: str
    score: float
    geometry: BaseGeometry
    kind: Kind
    tile_index: tuple[int, int] | None = None
    tiles: tuple[tuple[int, int], ...] = field(default=())
    id: str = ""


def _gdal_to_shapely(t: Affine) -> list[float]:
    return [t.a, t.b, t.d, t.e, t.c, t.f]


def pixel_to_world(geom: BaseGeometry, transform: Affine) -> BaseGeometry:
    """Map a geometry from pixel ``(col, row)`` coordinates through ``transform``.

    Examples
    --------
    >>> from affine import Affine
    >>> from shapely import Point
    >>> pixel_to_world(Point(1, 2), Affine(10, 0, 500000, 0, -10, 5000000)).wkt
    'POINT (500010 4999980)'
    """
    return affinity.affine_transform(geom, _gdal_to_shapely(transform))


def world_to_pixel(geom: BaseGeometry, tile_or_transform: Tile | Affine) -> BaseGeometry:
    """Map a CRS geometry to pixel ``(col, row)`` coordinates of a tile (or a transform).

    Examples
    --------
    >>> from affine import Affine
    >>> from shapely import Point
    >>> world_to_pixel(Point(500010, 4999980), Affine(10, 0, 500000, 0, -10, 5000000)).wkt
    'POINT (1 2)'
    """
    t = tile_or_transform.transform if isinstance(tile_or_transform, Tile) else tile_or_transform
    return affinity.affine_transform(geom, _gdal_to_shapely(~t))


#: Pixel space for rasterio's ``shapes``/``rasterize`` without its NotGeoreferencedWarning:
#: an integer offset (exact in floating point) instead of the identity transform, undone on
#: the results. Unlike ``warnings.catch_warnings`` this is safe in threaded task runners.
PIXEL_OFFSET = 1.0
_PIXEL_TRANSFORM = Affine.translation(PIXEL_OFFSET, PIXEL_OFFSET)


def _shift(geom, d: float):
    return shapely.transform(geom, lambda xy: xy + d)


def pixel_shapes(
    array: np.ndarray, mask: np.ndarray | None = None, connectivity: int = 4
) -> list[tuple[BaseGeometry, float]]:
    """``rasterio.features.shapes`` in pixel ``(col, row)`` space: ``(shapely geometry, value)`` pairs."""
    found = shapes(array, mask=mask, connectivity=connectivity, transform=_PIXEL_TRANSFORM)
    return [(_shift(shape(g), -PIXEL_OFFSET), v) for g, v in found]


#: Fewer pixels than this between two bands of rows with unmasked pixels: one ``shapes`` call
#: for both (scanning masked pixels is cheaper than the fixed cost of another call).
_BAND_MERGE_PX = 65536


def _bands(
    mask: np.ndarray | None, shape: tuple[int, ...], merge_px: int | None = None
) -> list[tuple[int, int, int, int]]:
    """Row bands ``(r0, r1, c0, c1)`` of ``mask`` that hold all its unmasked pixels.

    Without a mask: the whole array of ``shape``, one band.

    Bands are separated by rows with no unmasked pixel, so no region crosses from one band
    to the next; each band is cut to the columns its unmasked pixels span. GDAL's
    polygonize scans every pixel of what it is given (~12 ns a pixel, masked or not), so
    vectorising the bands instead of the whole array skips the empty rows and columns.
    Bands come in row order and regions do not span them, so the polygons come out in the
    same order as from one call over the whole array. Bands whose gap is smaller than
    ``merge_px`` pixels (default :data:`_BAND_MERGE_PX`) are joined.

    Examples
    --------
    >>> m = np.zeros((10, 8), bool); m[1:3, 2:4] = True; m[7, 5] = True
    >>> _bands(m, m.shape, merge_px=0), _bands(m, m.shape), _bands(None, m.shape)
    ([(1, 3, 2, 4), (7, 8, 5, 6)], [(1, 8, 2, 6)], [(0, 10, 0, 8)])
    """
    if mask is None:
        return [(0, int(shape[0]), 0, int(shape[1]))]
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    width = mask.shape[1]
    merge_px = _BAND_MERGE_PX if merge_px is None else merge_px
    # a new band where the gap of empty rows before a row is large enough to skip
    gap = np.diff(rows) - 1
    starts = np.concatenate([[0], np.flatnonzero((gap > 0) & (gap * width >= merge_px)) + 1])
    ends = np.concatenate([starts[1:], [rows.size]])
    out = []
    for i, j in zip(starts.tolist(), ends.tolist()):
        r0, r1 = int(rows[i]), int(rows[j - 1]) + 1
        cols = np.flatnonzero(mask[r0:r1].any(axis=0))
        out.append((r0, r1, int(cols[0]), int(cols[-1]) + 1))
    return out


def pixel_polygons(
    array: np.ndarray, mask: np.ndarray | None = None, connectivity: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of the regions of equal value, in pixel ``(col, row)`` space, built in bulk.

    The same polygons as :func:`pixel_shapes` (one ``rasterio.features.shapes`` pass over
    the array), returned as ``(geometries, values)`` arrays: the rings' coordinates are
    gathered into one array and the polygons made by ``shapely.linearrings`` and
    ``shapely.polygons`` in one call each, instead of one ``shape()`` and one transform
    per polygon.

    Examples
    --------
    >>> a = np.zeros((4, 5), np.int32); a[1:3, 1:3] = 7; a[0, 4] = 9
    >>> geoms, values = pixel_polygons(a, mask=a > 0)
    >>> [g.wkt for g in geoms], values.tolist()
    (['POLYGON ((4 0, 4 1, 5 1, 5 0, 4 0))', 'POLYGON ((1 1, 1 3, 3 3, 3 1, 1 1))'], [9.0, 7.0])
    """
    found = []
    with Env.from_defaults():  # entered once here, not by ``shapes`` once per band
        for r0, r1, c0, c1 in _bands(mask, array.shape):
            found.extend(
                shapes(
                    array[r0:r1, c0:c1],
                    mask=None if mask is None else mask[r0:r1, c0:c1],
                    connectivity=connectivity,
                    transform=Affine.translation(PIXEL_OFFSET + c0, PIXEL_OFFSET + r0),
                )
            )
    if not found:
        return np.empty(0, dtype=object), np.empty(0, float)
    ring_len: list[int] = []
    ring_poly: list[int] = []
    for i, (g, _) in enumerate(found):
        for ring in g["coordinates"]:
            ring_len.append(len(ring))
            ring_poly.append(i)
    xy = np.fromiter(
        chain.from_iterable(chain.from_iterable(chain.from_iterable(g["coordinates"] for g, _ in found))),
        dtype=float,
        count=2 * sum(ring_len),
    ).reshape(-1, 2)
    xy -= PIXEL_OFFSET  # exact: integer pixel corners plus an integer offset
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(len(ring_len)), ring_len))
    polys = shapely.polygons(rings, indices=np.asarray(ring_poly))
    return polys, np.array([v for _, v in found], float)


def pixel_rasterize(geoms: Any, out_shape: tuple[int, int], all_touched: bool = False) -> np.ndarray:
    """Burn pixel-space geometries into a uint8 array of ``out_shape`` (1 inside, 0 outside)."""

    return rasterize(
        [(_shift(g, PIXEL_OFFSET), 1) for g in geoms],
        out_shape=out_shape,
        transform=_PIXEL_TRANSFORM,
        fill=0,
        dtype="uint8",
        all_touched=all_touched,
    )


def mask_to_polygons(
    mask: np.ndarray, transform: Affine = Affine.identity(), connectivity: int = 4
) -> list[BaseGeometry]:
    """Polygons of the ``True`` regions of a boolean mask (one per connected component).

    With the identity transform the result is in pixel ``(col, row)`` coordinates.
    Pixels that touch only at a corner are separate components (``connectivity=4``).

    Examples
    --------
    >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
    >>> [p.wkt for p in mask_to_polygons(m)]
    ['POLYGON ((1 1, 1 3, 3 3, 3 1, 1 1))']
    """
    mask = np.ascontiguousarray(mask, dtype=bool)
    if not mask.any():
        return []
    if transform.is_identity:
        return [
            g
            for g, value in pixel_shapes(mask.astype(np.uint8), mask=mask, connectivity=connectivity)
            if value
        ]
    found = shapes(mask.astype(np.uint8), mask=mask, connectivity=connectivity, transform=transform)
    return [shape(geom) for geom, value in found if value]


def to_crs_geometry(detection: Detection, tile: Tile) -> BaseGeometry:
    """The detection's geometry in the raster CRS (pixel -> world via ``tile.transform``).

    Boxes, polygons and points are mapped vertex by vertex; masks are vectorised (one
    polygon per 4-connected component, combined into one geometry).
    """
    if detection.kind == "mask":
        m = detection.geometry
        if m.shape != tile.shape:
            raise InputError(f"mask shape {m.shape} does not match tile {tile.index} shape {tile.shape}")
        polys = mask_to_polygons(m, tile.transform)
        if not polys:
            return shapely.Polygon()
        return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    return pixel_to_world(detection.geometry, tile.transform)


def to_grounded(detection: Detection, tile: Tile) -> GroundedObject:
    """A single detection as a :class:`GroundedObject` in the raster CRS (no merging)."""
    return GroundedObject(
        label=detection.label,
        score=float(detection.score),
        geometry=to_crs_geometry(detection, tile),
        kind=detection.kind,
        tile_index=tile.index,
        tiles=(tile.index,),
    )
