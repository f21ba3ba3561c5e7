"""Task levels: turn any grounding into the object, region or pixel answer a question needs.

RemoteReasoner frames geospatial answers at three levels, and models ground at whatever
level they were trained for; this module is the one place that converts between them:

============  =================  ==================================================
level         detection kind     from a ...
============  =================  ==================================================
``object``    ``box``            mask or polygon: its bounds (:func:`to_box`)
``region``    ``polygon``        box: the segmenter's mask outline, else the box
                                 itself; mask: its outline (:func:`to_region`)
``pixel``     ``mask``           box or polygon: burnt at pixel centres
                                 (:func:`to_mask`); box with a segmenter: its mask
============  =================  ==================================================

All geometry is in the tile's pixel ``(col, row)`` space (corner convention, see
:mod:`georeason.geo.grounding.detections`); masks are ``(rows, cols)`` boolean arrays. A point covers
the pixel it falls in: its box and region are that pixel's square, its mask that pixel.
Every function returns a **new** :class:`~georeason.geo.grounding.detections.Detection` of the target
kind with the same label and score, and never changes its input.

A *segmenter* is any callable ``segmenter(image, boxes) -> list of masks``: ``image`` is
the tile image (``(rows, cols, 3)`` uint8), ``boxes`` a list of ``(x1, y1, x2, y2)`` pixel
boxes (SAM's box-prompt format), and it returns one ``(rows, cols)`` mask per box. The
model wrapper (e.g. SAM) lives elsewhere; this module only calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError, ModelError
from georeason.geo.grounding.detections import Detection, mask_to_polygons, pixel_rasterize
from georeason.models.parsenotes import parse_warning

__all__ = [
    "LEVELS",
    "LEVEL_KINDS",
    "Segmenter",
    "to_box",
    "to_region",
    "to_mask",
    "mask_to_region",
    "detections_to_level",
]

#: The answer levels, coarse to fine.
LEVELS = ("object", "region", "pixel")
#: The detection kind each level is answered with.
LEVEL_KINDS = {"object": "box", "region": "polygon", "pixel": "mask"}

Segmenter = Callable[[np.ndarray, list[tuple[float, float, float, float]]], Sequence[np.ndarray]]


def _like(det: Detection, kind: str, geometry) -> Detection:
    return Detection(det.label, det.score, kind, geometry, notes=det.notes)


def _pixel_of(point: BaseGeometry) -> tuple[int, int]:
    """``(col, row)`` of the pixel a point falls in (a point on the far edge: the last pixel)."""
    return int(math.floor(point.x)), int(math.floor(point.y))


def _pixel_square(point: BaseGeometry) -> BaseGeometry:
    c, r = _pixel_of(point)
    return shapely.box(c, r, c + 1, r + 1)


def _check_shape(shape) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be (rows, cols), got {shape!r}") from None
    if rows <= 0 or cols <= 0:
        raise InputError(f"shape must be (rows, cols) with positive sides, got {shape!r}")
    return rows, cols


def _mask_geometry(mask: np.ndarray) -> BaseGeometry:
    polys = mask_to_polygons(np.asarray(mask, dtype=bool))
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.union_all(polys)


# ---------------------------------------------------------------------------------------
def to_box(det: Detection) -> Detection:
    """The detection as an axis-aligned box (``object`` level): its bounds.

    A mask's box runs from its first to just past its last ``True`` row and column, so a
    rectangle of pixels gives back exactly its pixel edges.

    Raises
    ------
    InputError
        The mask or geometry is empty (no box to give).

    Examples
    --------
    >>> m = np.zeros((6, 8), bool); m[1:4, 2:7] = True
    >>> to_box(Detection("roof", 0.9, "mask", m)).geometry.bounds
    (2.0, 1.0, 7.0, 4.0)
    """
    if det.kind == "mask":
        m = np.asarray(det.geometry, dtype=bool)
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if rows.size == 0:
            raise InputError(f"an empty {det.label!r} mask has no bounding box")
        return _like(det, "box", shapely.box(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
    geom = det.geometry
    if geom.is_empty:
        raise InputError(f"an empty {det.label!r} {det.kind} has no bounding box")
    if det.kind == "point":
        return _like(det, "box", _pixel_square(geom))
    return _like(det, "box", shapely.box(*geom.bounds))


def mask_to_region(det: Detection) -> Detection:
    """A mask detection as a polygon (``region`` level): the outline of its ``True`` pixels.

    One polygon per 4-connected component (:func:`georeason.geo.grounding.detections.mask_to_polygons`),
    combined into a MultiPolygon when there are several; holes are kept.

    Raises
    ------
    InputError
        ``det`` is not a mask, or the mask is empty.

    Examples
    --------
    >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
    >>> mask_to_region(Detection("pond", 1.0, "mask", m)).geometry.wkt
    'POLYGON ((1 1, 1 3, 3 3, 3 1, 1 1))'
    """
    if det.kind != "mask":
        raise InputError(f"mask_to_region needs a 'mask' detection, got {det.kind!r} (use to_region)")
    geom = _mask_geometry(det.geometry)
    if geom.is_empty:
        raise InputError(f"an empty {det.label!r} mask has no region")
    return _like(det, "polygon", geom)


def _segment(
    segmenter: Segmenter, image: np.ndarray | None, boxes: list[tuple[float, float, float, float]]
) -> list[np.ndarray]:
    if image is None:
        raise InputError("a segmenter needs the tile image: pass image=")
    shape = np.asarray(image).shape[:2]
    masks = list(segmenter(image, boxes))
    if len(masks) != len(boxes):
        raise ModelError(f"the segmenter returned {len(masks)} masks for {len(boxes)} boxes")
    out = []
    for k, m in enumerate(masks):
        m = np.asarray(m)
        if m.ndim == 3 and m.shape[0] == 1:  # SAM-style (1, rows, cols)
            m = m[0]
        if m.shape != shape:
            raise ModelError(f"the segmenter's mask {k} has shape {m.shape}, the image {tuple(shape)}")
        out.append(m.astype(bool))
    return out


def _box_tuple(det: Detection) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in to_box(det).geometry.bounds)  # type: ignore[return-value]


def to_region(
    det: Detection, segmenter: Segmenter | None = None, image: np.ndarray | None = None
) -> Detection:
    """The detection as a polygon (``region`` level).

    A box becomes the outline of the segmenter's mask for it when ``segmenter`` (and the
    tile ``image``) are given — the box itself otherwise, or when the segmenter returns
    an empty mask (with a :class:`~georeason.errors.ParseWarning`). A mask becomes its
    outline (:func:`mask_to_region`), a polygon is copied, a point becomes its pixel.

    Examples
    --------
    >>> import shapely
    >>> to_region(Detection("tank", 0.8, "box", shapely.box(2, 2, 6, 5))).geometry.bounds
    (2.0, 2.0, 6.0, 5.0)
    >>> def seg(image, boxes):          # a stand-in for SAM: the left half of each box
    ...     masks = []
    ...     for x1, y1, x2, y2 in boxes:
    ...         m = np.zeros(image.shape[:2], bool); m[int(y1):int(y2), int(x1):int((x1 + x2) / 2)] = True
    ...         masks.append(m)
    ...     return masks
    >>> img = np.zeros((8, 8, 3), np.uint8)
    >>> to_region(Detection("tank", 0.8, "box", shapely.box(2, 2, 6, 5)), seg, img).geometry.bounds
    (2.0, 2.0, 4.0, 5.0)
    """
    if det.kind == "mask":
        return mask_to_region(det)
    if det.kind == "point":
        return _like(det, "polygon", _pixel_square(det.geometry))
    if det.kind == "polygon":
        return _like(det, "polygon", det.geometry)
    if segmenter is not None:
        (mask,) = _segment(segmenter, image, [_box_tuple(det)])
        return _region_from_mask(det, mask)
    return _like(det, "polygon", det.geometry)  # shapely geometries are immutable: sharing is safe


def _region_from_mask(det: Detection, mask: np.ndarray) -> Detection:
    geom = _mask_geometry(mask)
    if geom.is_empty:
        parse_warning(
            f"the segmenter found nothing in the {det.label!r} box {det.geometry.bounds}; "
            "kept the box as the region",
            stacklevel=3,
        )
        return _like(det, "polygon", det.geometry)
    return _like(det, "polygon", geom)


def to_mask(det: Detection, shape: tuple[int, int]) -> Detection:
    """The detection as a boolean pixel mask of ``shape`` = ``(rows, cols)`` (``pixel`` level).

    Boxes and polygons are burnt with ``rasterio.features.rasterize`` in pixel space: a
    pixel is in when its centre is (so a box with whole-pixel edges gives exactly its
    pixels). A geometry too thin to cover any pixel centre is burnt with
    ``all_touched=True`` instead, so an object never vanishes. A point sets the pixel it
    falls in; a mask is copied (its shape must be ``shape``). Parts outside the grid
    are cut off; a geometry wholly outside gives an all-``False`` mask.

    Examples
    --------
    >>> import shapely
    >>> to_mask(Detection("car", 1.0, "box", shapely.box(1, 0, 3, 2)), (3, 4)).geometry.astype(int)
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    rows, cols = _check_shape(shape)
    if det.kind == "mask":
        m = np.asarray(det.geometry, dtype=bool)
        if m.shape != (rows, cols):
            raise InputError(f"the {det.label!r} mask has shape {m.shape}, expected {(rows, cols)}")
        return _like(det, "mask", m.copy())
    out = np.zeros((rows, cols), dtype=bool)
    geom = det.geometry
    if geom.is_empty:
        return _like(det, "mask", out)
    if det.kind == "point":
        c, r = _pixel_of(geom)
        c = cols - 1 if c == cols and geom.x == cols else c  # a point on the far edge
        r = rows - 1 if r == rows and geom.y == rows else r
        if 0 <= r < rows and 0 <= c < cols:
            out[r, c] = True
        return _like(det, "mask", out)
    for all_touched in (False, True):
        burnt = pixel_rasterize([geom], (rows, cols), all_touched=all_touched)
        if burnt.any():
            break
    return _like(det, "mask", burnt.astype(bool))


def detections_to_level(
    dets: Sequence[Detection],
    level: str,
    shape: tuple[int, int] | None = None,
    segmenter: Segmenter | None = None,
    image: np.ndarray | None = None,
) -> list[Detection]:
    """All detections at one answer level: ``object`` (boxes), ``region`` (polygons) or
    ``pixel`` (masks).

    With a ``segmenter`` (and ``image``), boxes are segmented in one batched call and the
    masks used for ``region`` (their outline) and ``pixel`` (the mask itself) — finer than
    the box. ``shape`` (``(rows, cols)``) is needed for ``pixel``; it defaults to the
    image's. Detections that end up empty (an empty mask, a geometry wholly outside the
    grid) are dropped with a :class:`~georeason.errors.ParseWarning`; order is kept.

    Examples
    --------
    >>> import shapely
    >>> dets = [Detection("a", 1.0, "box", shapely.box(0, 0, 2, 2)), Detection("b", 0.5, "point", shapely.Point(3.5, 1.2))]
    >>> [d.geometry.bounds for d in detections_to_level(dets, "object")]
    [(0.0, 0.0, 2.0, 2.0), (3.0, 1.0, 4.0, 2.0)]
    >>> [int(d.geometry.sum()) for d in detections_to_level(dets, "pixel", (4, 4))]
    [4, 1]
    """
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    if level == "pixel":
        if shape is None and image is not None:
            shape = np.asarray(image).shape[:2]
        if shape is None:
            raise InputError("the pixel level needs shape=(rows, cols) (or the image)")
        shape = _check_shape(shape)
    dets = list(dets)
    segmented: dict[int, np.ndarray] = {}
    if segmenter is not None and level in ("region", "pixel"):
        idx = [i for i, d in enumerate(dets) if d.kind == "box" and not d.geometry.is_empty]
        if idx:
            masks = _segment(segmenter, image, [_box_tuple(dets[i]) for i in idx])
            segmented = dict(zip(idx, masks))
    out: list[Detection] = []
    for i, d in enumerate(dets):
        if _is_empty(d):
            parse_warning(f"dropped the empty {d.kind} detection {d.label!r}", stacklevel=2)
            continue
        if level == "object":
            new = to_box(d)
        elif level == "region":
            new = _region_from_mask(d, segmented[i]) if i in segmented else to_region(d)
        else:
            if i in segmented and segmented[i].any():
                m = segmented[i]
                if m.shape != shape:
                    raise ModelError(f"the segmenter's mask has shape {m.shape}, expected {shape}")
                new = _like(d, "mask", m)
            else:
                if i in segmented:
                    parse_warning(
                        f"the segmenter found nothing in the {d.label!r} box {d.geometry.bounds}; "
                        "burnt the box instead",
                        stacklevel=2,
                    )
                assert shape is not None  # checked above for the pixel level
                new = to_mask(d, shape)
            if not new.geometry.any():
                parse_warning(
                    f"dropped {d.label!r}: its {d.kind} covers no pixel of the {shape} grid", stacklevel=2
                )
                continue
        out.append(new)
    return out


def _is_empty(det: Detection) -> bool:
    if det.kind == "mask":
        return not np.asarray(det.geometry, dtype=bool).any()
    return det.geometry.is_empty
