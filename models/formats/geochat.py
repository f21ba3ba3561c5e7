"""GeoChat: ``<p>phrase</p>{<x1><y1><x2><y2>|<θ>}``, percentages (0..100), θ in degrees.

GeoChat's demo (``geochat_demo.py``, ``bbox_and_angle_to_polygon``) rotates the box
corners about the centre with ``[[cos θ, -sin θ], [sin θ, cos θ]]`` in image coordinates;
that is the sense used here. Caveat: the same demo *draws* with
``cv2.getRotationMatrix2D(centre, θ)``, which turns the other way. The two agree for
θ = 0, 90, 180 (almost every real GeoChat answer says ``|<90>``) and on the bounds of any
unclipped box; they differ for other angles on a box clipped by the image edge.
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
from georeason.models.formats.registry import Case, Convention, Format, register

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


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "GeoChat caption published in a user's script (GitHub, code search id 1356136426), "
            "two boxes joined by <delim>, angles 1 and 90; no image size given, "
            "GeoChat's 504x504 input used; GeoChat demo post-processing (geochat_demo.py visualize_all_bbox_together: x / 100 * side, "
            "then rotate_bbox = cv2.getRotationMatrix2D(centre, angle))"
        ),
        text=(
            "In the satellite image, there are <p>some buildings</p> "
            "{<40><77><52><85>|<1>}<delim>{<45><64><57><72>|<90>}  located close to each other at the bottom of the scene."
        ),
        image_size=(504, 504),
        expected=((201.253, 387.555, 262.427, 428.925), (236.88, 312.48, 277.2, 372.96)),
        labels=("some buildings", "some buildings"),
    ),
    Case(
        source=(
            "GeoChat-7B (4-bit) raw answers recorded in a project's measurement table (GitHub, "
            "code search id 57491032703, 11760.jpg, "
            "'[refer] where is the buildings?'): three boxes concatenated as '}{'; image size not given, "
            "504x504 used; GeoChat demo post-processing (geochat_demo.py visualize_all_bbox_together: x / 100 * side, "
            "then rotate_bbox = cv2.getRotationMatrix2D(centre, angle))"
        ),
        text="{<10><13><18><21>|<90>}{<16><10><20><14>|<90>}{<10><10><14><14>|<90>}",
        image_size=(504, 504),
        expected=((50.4, 65.52, 90.72, 105.84), (80.64, 50.4, 100.8, 70.56), (50.4, 50.4, 70.56, 70.56)),
    ),
    Case(
        source=(
            "Same table (11760.jpg, '[refer] give me the location of the buildings'), "
            "a single 90-degree box; 504x504; GeoChat demo post-processing (geochat_demo.py visualize_all_bbox_together: x / 100 * side, "
            "then rotate_bbox = cv2.getRotationMatrix2D(centre, angle))"
        ),
        text="{<5><12><13><24>|<90>}",
        image_size=(504, 504),
        expected=((15.12, 70.56, 75.6, 110.88),),
    ),
    Case(
        source=(
            "GeoChat answers on DOTA tiles (1024x1024, "
            "IMAGE_SIZE = 1024 in the script) kept in a user's script (GitHub, "
            "code search id 62855519551), "
            "cut off mid-box by the generation limit; the cut box is dropped with a warning; GeoChat demo post-processing (geochat_demo.py visualize_all_bbox_together: x / 100 * side, "
            "then rotate_bbox = cv2.getRotationMatrix2D(centre, angle))"
        ),
        text=(
            "<p>1 white plane</p> "
            "{<49><48><57><56>|<90>}<delim>{<35><54><43><62>|<90>}<delim>{<24><56><32><64>|<90>}<delim>{<18><60><26><68>|<90>}<delim>{<13><63><21><71>|<90>}  at the center\n"
            "<p>1 silver large-vehicle</p> {<70><93><74><97>|<90>} at the bottom\n"
            "<p>1 white large-vehicle</p> {<70><90><74><94>|<90>} at the bottom\n"
            "<p>1 white large-vehicle</p> {<70><87><74><91>|<90>} at the bottom\n"
            "<p>1 white large-vehicle</p> {<70><8"
        ),
        image_size=(1024, 1024),
        expected=(
            (501.76, 491.52, 583.68, 573.44),
            (358.4, 552.96, 440.32, 634.88),
            (245.76, 573.44, 327.68, 655.36),
            (184.32, 614.4, 266.24, 696.32),
            (133.12, 645.12, 215.04, 727.04),
            (716.8, 952.32, 757.76, 993.28),
            (716.8, 921.6, 757.76, 962.56),
            (716.8, 890.88, 757.76, 931.84),
        ),
        labels=(
            "1 white plane",
            "1 white plane",
            "1 white plane",
            "1 white plane",
            "1 white plane",
            "1 silver large-vehicle",
            "1 white large-vehicle",
            "1 white large-vehicle",
        ),
        warns=("truncated",),
    ),
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
        cases=CASES,
    )
)
