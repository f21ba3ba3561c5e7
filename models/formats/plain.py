"""Plain number lists: ``[x1, y1, x2, y2]``, lists of them, ``(x, y)`` points."""

from __future__ import annotations

import math
import re
from typing import Any

from georeason.errors import InputError
from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    Builder,
    add_leaves,
    as_text,
    check_size,
    find_leaves,
    guard,
    nothing,
)
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_boxes", "FORMAT"]


def _parse_plain(text: Any, relative: float | None, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    leaves = find_leaves(text, b)
    if not leaves:
        if not re.fullmatch(r"\s*\[\s*\]\s*", text):
            nothing(b, text)
        return b.out
    scale = relative
    if scale is None:
        vals = [v for leaf in leaves for v in leaf if math.isfinite(v)]
        if vals and all(0.0 <= v <= 1.0 for v in vals) and any(v != int(v) for v in vals):
            scale = 1.0
    if scale is not None:
        b.mapx = lambda v: v * b.w / scale
        b.mapy = lambda v: v * b.h / scale
    add_leaves(leaves, b, "item")
    return b.out


def parse_boxes(
    text: str, image_size: tuple[int, int], label: str | None = None, relative: float | None = None
) -> list[Detection]:
    """Detections from plain number lists: ``[x1, y1, x2, y2]``, lists of them, points.

    Every innermost bracketed list of numbers is read: four numbers are a box, two
    (``(x, y)`` or ``[x, y]``) a point; anything else is dropped with a warning.

    Parameters
    ----------
    relative : float, optional
        The coordinate scale: ``1000`` for 0..1000, ``100`` for percentages, ``1`` for
        fractions (``x * width / relative``). ``None``: pixels of the image — unless every
        coordinate lies in [0, 1] and one has a fractional part, in which case they are
        read as fractions (a sub-pixel box would make no sense).

    Examples
    --------
    >>> [d.geometry.bounds for d in parse_boxes("boxes: [[1, 2, 3, 4], [5, 6, 7, 8]]", (10, 10))]
    [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    >>> d, = parse_boxes("[0.1, 0.2, 0.5, 0.6]", (200, 100)); d.geometry.bounds
    (20.0, 20.0, 100.0, 60.0)
    >>> d, = parse_boxes("the well is at (120, 40)", (256, 256)); d.kind, d.geometry.wkt
    ('point', 'POINT (120 40)')
    """
    size = check_size(image_size)
    if relative is not None:
        try:
            relative = float(relative)
        except (TypeError, ValueError):
            raise InputError(f"relative must be a positive number or None, got {relative!r}") from None
        if not (math.isfinite(relative) and relative > 0):
            raise InputError(f"relative must be a positive number or None, got {relative!r}")
    return guard("plain", _parse_plain, text, relative, Builder("plain", size, label))


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "NVlabs/VILA issue #128: the box VILA replied with, "
            "quoted by the reporter as 'normalized_bbox = [0.34, 0.7, 0.46, "
            "0.78]' (fractions read as 0-1 because all lie in [0, "
            "1] with fractions); the issue's image size is not given, 1000x750 used"
        ),
        text="[0.34, 0.7, 0.46, 0.78]",
        image_size=(1000, 750),
        expected=((340, 525, 460, 585),),
    ),
    Case(
        source=(
            "A bare 0-1000 answer recorded in a test suite as real describer output (GitHub, "
            "code search id 68306764114, 'comfy' describer on t2i_002, 832x1024), "
            "read with relative=1000"
        ),
        text="[435, 68, 799, 487]",
        image_size=(832, 1024),
        expected=((361.92, 69.632, 664.768, 498.688),),
        options={"relative": 1000},
    ),
    Case(
        source=(
            "THUDM/CogVLM issue #165: the CogVLM grounding answer the reporter quotes ('The returned "
            "result is [[881,448,975,521]]'); the maintainer's reply: relative coordinates 000-999, "
            "x / 1000 * width, read with relative=1000; the screenshot's size is not given, "
            "1920x1080 assumed"
        ),
        text="[[881,448,975,521]]",
        image_size=(1920, 1080),
        expected=((1691.52, 483.84, 1872.0, 562.68),),
        options={"relative": 1000},
    ),
    Case(
        source="CONSTRUCTED: pixel boxes in prose",
        text="boxes: [[1, 2, 3, 4], [5, 6, 7, 8]]",
        image_size=(10, 10),
        expected=((1, 2, 3, 4), (5, 6, 7, 8)),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="plain",
        family="any model asked for bare number lists",
        aliases=("boxes", "json"),
        convention=Convention(
            "pixels of the original image (or relative=...)",
            "x-first",
            ("box", "point"),
            "unchanged; x * width / relative when relative is given",
        ),
        prompt="Give the bounding box of every {label} in the image as [x1, y1, x2, y2] in pixels.",
        parse=parse_boxes,
        options=("relative",),
        cases=CASES,
    )
)
