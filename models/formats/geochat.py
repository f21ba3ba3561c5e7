"""GeoChat: ``<p>phrase</p>{<x1><y1><x2><y2>|<θ>}``, percentages (0..100), θ in degrees.

GeoChat's demo (``geochat_demo.py``, ``bbox_and_angle_to_polygon``) rotates the box
corners about the centre with ``[[cos θ, -sin θ], [sin θ, cos θ]]`` in image coordinates.
"""

from __future__ import annotations

import math
import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    NUM,
    NUM_RE,
    Builder,
    as_text,
    check_size,
    fmt_values,
    guard,
    nothing,
    short,
)
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_geochat", "FORMAT"]


_GEOCHAT_RE = re.compile(r"<p>(?P<phrase>.*?)</p>|\{(?P<box>[^{}]*)(?P<end>\}|$)", re.DOTALL)
_ANGLE_BRACKET_NUM_RE = re.compile(rf"<\s*({NUM})\s*>", re.IGNORECASE)


def _parse_geochat(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    current, nbox = None, 0
    for m in _GEOCHAT_RE.finditer(text):
        if m.group("phrase") is not None:
            current = m.group("phrase")
            continue
        inner = m.group("box")
        coords_part, _, angle_part = inner.partition("|")
        nums = [float(v) for v in _ANGLE_BRACKET_NUM_RE.findall(coords_part)]
        if not nums and not m.group("end"):
            continue  # a stray "{" in prose
        if not nums and "<" not in inner:
            continue  # "{...}" without any <n>: prose, not a box
        nbox += 1
        tag = f"box {nbox}"
        if not m.group("end"):
            b.warn(f"{tag}: output is truncated inside {{...}}; dropped {short(inner)}")
            continue
        if len(nums) != 4:
            b.warn(f"{tag}: dropped {{{inner}}}: expected 4 coordinates <x1><y1><x2><y2>")
            continue
        angle = 0.0
        if angle_part.strip():
            found = _ANGLE_BRACKET_NUM_RE.findall(angle_part) or NUM_RE.findall(angle_part)
            angle = float(found[0]) if found else math.nan
            if not math.isfinite(angle):
                b.warn(f"{tag}: dropped {{{inner}}}: unreadable angle {angle_part.strip()!r}")
                continue
        _geochat_box(nums, angle, tag, current, b)
    if nbox == 0:
        nothing(b, text)
    return b.out


def _geochat_box(nums: list[float], angle_deg: float, tag: str, label: str | None, b: Builder) -> None:
    if angle_deg % 360.0 == 0.0 or not all(math.isfinite(v) for v in nums):
        b.box(nums, tag, label)
        return
    x1, y1, x2, y2 = b.mapx(nums[0]), b.mapy(nums[1]), b.mapx(nums[2]), b.mapy(nums[3])
    if x2 < x1 or y2 < y1:
        b.warn(f"{tag}: box {fmt_values(nums)} has swapped corners; reordered them")
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        b.warn(f"{tag}: dropped box {fmt_values(nums)}: zero area")
        return
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    ring = []
    for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        ring += [cx + c * dx - s * dy, cy + s * dx + c * dy]
    b.polygon([ring], tag, label, mapped=True)


def parse_geochat(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from GeoChat ``<p>phrase</p>{<x1><y1><x2><y2>|<θ>}`` (relative, 0..100).

    Coordinates are percentages of the side (``x * width / 100``); θ is in degrees and
    may be missing (``{<10><20><30><40>}``: axis-aligned). Several boxes may follow one
    phrase (``{...}{...}``) and share its label.

    Rotated boxes become polygons: the box is scaled to pixels first (so it stays a
    rectangle on a non-square image), then its corners are rotated about its centre with
    ``[[cos θ, -sin θ], [sin θ, cos θ]]`` in image ``(col, row)`` coordinates — the
    matrix GeoChat's own demo (``bbox_and_angle_to_polygon``) uses. Rows grow downwards,
    so a **positive θ turns the box clockwise as seen on screen**. θ = 0 (or a multiple
    of 360) gives a plain ``box`` detection.

    Examples
    --------
    >>> d, = parse_geochat("<p>the airplane</p>{<10><20><30><40>|<0>}", (500, 500))
    >>> d.label, d.kind, d.geometry.bounds
    ('the airplane', 'box', (50.0, 100.0, 150.0, 200.0))
    >>> d, = parse_geochat("{<40><40><60><50>|<90>}", (100, 100))
    >>> d.kind, [round(v, 6) for v in d.geometry.bounds]
    ('polygon', [45.0, 35.0, 55.0, 55.0])
    """
    size = check_size(image_size)
    w, h = size
    return guard(
        "geochat",
        _parse_geochat,
        text,
        Builder("geochat", size, label, lambda v: v * w / 100.0, lambda v: v * h / 100.0),
    )


FORMAT = register(
    Format(
        name="geochat",
        family="GeoChat (LLaVA-1.5 fine-tune for remote sensing)",
        convention=Convention(
            "0-100",
            "x-first",
            ("box", "rotated box"),
            "x * width / 100; θ (degrees) rotates the pixel box about its centre",
        ),
        prompt="[refer] give me the location of every {label}",
        parse=parse_geochat,
        models=(r"geochat",),
        marker=r"\{\s*<\s*[-+.\d]|<p>[^<]*</p>\s*\{",
        specificity=50,
        cases=(),
    )
)
