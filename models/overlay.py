"""Visual-overlay references: a coloured outline drawn on an RGB image marks a region.

Benchmarks such as EarthSpatialBench refer to places by drawing on the image ("the region
outlined in red"). :func:`find_markers` finds such outlines in one tile and returns the
*enclosed* region (outline included) as polygon detections in tile pixel coordinates, so
the marked region becomes an object that questions can reference (``the marked region``).

Colour matching works on 8-bit RGB values (the overlay is drawn on an 8-bit picture): a
pixel belongs to the outline when it is within ``tolerance`` of the marker colour in every
channel. Holes enclosed by the outline are filled (``scipy.ndimage.binary_fill_holes``).
A marker is a whole object, not a piece of a region: a tile keeps only the markers that
do not touch its window's edge, and seam merging keeps each marker from
the tile whose core holds its centre (``Detection.whole``), so a marker smaller than the
tile overlap comes back whole whatever the tiling. An open curve yields just its stroke.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from georeason.geo.grounding.detections import Detection, mask_to_polygons

__all__ = ["MARKER_CLASSES", "COLOURS", "is_marker_class", "find_markers"]

#: Class names that mean "the region drawn on the image".
MARKER_CLASSES = frozenset(
    {
        "marker",
        "markers",
        "marked region",
        "marked area",
        "outlined region",
        "outlined area",
        "highlighted region",
        "highlighted area",
        "overlay",
        "annotation",
        "drawn region",
        "box drawn",
    }
)

#: Named marker colours (8-bit RGB).
COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
}


def is_marker_class(label: str) -> bool:
    """Whether a class name refers to a drawn overlay.

    Examples
    --------
    >>> is_marker_class("the marked region".removeprefix("the ")), is_marker_class("lake")
    (True, False)
    """
    return " ".join(label.lower().split()) in MARKER_CLASSES


def _rgb8(pixels: np.ma.MaskedArray, bands: Sequence[str]) -> np.ndarray | None:
    names = [b.lower() for b in bands]
    if not all(c in names for c in ("red", "green", "blue")):
        if len(names) < 3:
            return None
        idx = [0, 1, 2]
    else:
        idx = [names.index(c) for c in ("red", "green", "blue")]
    rgb = np.stack([np.ma.getdata(pixels[i]) for i in idx]).astype(np.float64)
    if pixels.dtype != np.uint8:  # scale other integer types to 8 bit by their range
        top = float(np.iinfo(pixels.dtype).max) if np.issubdtype(pixels.dtype, np.integer) else 1.0
        rgb = rgb / top * 255.0
    return rgb


def find_markers(
    pixels: np.ma.MaskedArray,
    bands: Sequence[str],
    label: str = "marker",
    colour: str | tuple[int, int, int] = "red",
    tolerance: int = 40,
    min_pixels: int = 4,
    whole_tile: bool = False,
) -> list[Detection]:
    """Regions enclosed by outlines of ``colour`` in a tile, as polygon detections.

    ``whole_tile=True`` keeps components that touch the window edge too (for an image that
    is not a tile of something larger).

    Examples
    --------
    >>> img = np.zeros((3, 20, 20), np.uint8); img[0, 5, 5:15] = img[0, 14, 5:15] = 255
    >>> img[0, 5:15, 5] = img[0, 5:15, 14] = 255
    >>> [d.geometry.bounds for d in find_markers(np.ma.asarray(img), ["red", "green", "blue"])]
    [(5.0, 5.0, 15.0, 15.0)]
    """
    rgb = _rgb8(np.ma.asarray(pixels), bands)
    if rgb is None:
        return []
    target = np.array(COLOURS[colour] if isinstance(colour, str) else colour, dtype=np.float64)[:, None, None]
    stroke = (np.abs(rgb - target) <= tolerance).all(axis=0) & ~np.ma.getmaskarray(pixels).any(axis=0)
    if stroke.sum() < min_pixels:
        return []
    filled = ndimage.binary_fill_holes(stroke)
    lab, n = ndimage.label(filled)
    # components cut by the window edge are partial: another tile sees them whole (a marker
    # cut off by the raster's own edge is partial too, and dropped; masked padding is not data)
    data_mask = ~np.ma.getmaskarray(pixels).all(axis=0)
    edge = np.zeros_like(filled)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    cut = np.unique(lab[edge & data_mask])
    out = []
    for k in range(1, n + 1):
        comp = lab == k
        if comp.sum() < min_pixels or (k in cut and not whole_tile):
            continue
        for poly in mask_to_polygons(comp):
            out.append(Detection(label=label, score=1.0, kind="polygon", geometry=poly, whole=True))
    return out
