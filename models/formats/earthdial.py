"""EarthDial: ``[[x1, y1, x2, y2, θ], ...]`` on a 0..100 grid, θ in degrees.

EarthDial (CVPR 2025, an InternVL2 fine-tune for remote sensing) does **not** answer in
InternVL's ``<ref>..</ref><box>[[x1, y1, x2, y2]]</box>`` 0-1000 form: its published
evaluation answers (``src/earthdial/eval/*/results/*.jsonl`` in
``akshaydudhane16/EarthDial``) are GeoChat-style rotated boxes written as five-number
lists, all values on 0..100 (the largest in 5,000+ published boxes is 100, one stray
101), either comma-separated inside one list (``[[31, 31, 35, 36, 0], [42, ...]]``) or
concatenated (``[[18, 21, 22, 25, 90]][[18, 18, 22, 22, 90]]``), bare or inside prose.
Its training data wraps the same boxes as ``<ref>label</ref> <box>[[[x1, y1, x2, y2,
θ]]]</box>``; a ``<ref>`` before a box labels it here.

EarthDial's own evaluation (``rs_detection/eval.py``: ``parse_bboxes`` and
``get_rotated_box_vertices``) rotates the corners about the centre **on the 0..100
grid**, ``(corners - centre) @ [[cos θ, -sin θ], [sin θ, cos θ]] + centre``; this parser
does the same and only then scales each vertex to pixels (``x * width / 100``). On a
non-square image that is a different quadrilateral from GeoChat's demo, which scales
first and rotates in pixels.
"""

from __future__ import annotations

import math
import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
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

__all__ = ["parse_earthdial", "FORMAT"]

#: a ``<ref>label</ref>``, an innermost ``[...]`` list, or an unclosed list at the very end
_TOKEN_RE = re.compile(r"<ref>(?P<ref>.*?)</ref>|\[(?P<box>[^\[\]]*)(?P<end>\]|$)", re.DOTALL)


def _parse_earthdial(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    label: str | None = None
    nbox = 0
    for m in _TOKEN_RE.finditer(text):
        if m.group("ref") is not None:
            label = m.group("ref").strip() or None
            continue
        inner = m.group("box")
        nums = NUM_RE.findall(inner)
        if not nums:
            continue  # "[refer]", "[]" or other bracketed prose: not a box
        nbox += 1
        where = f"box {nbox}"
        if not m.group("end"):
            b.warn(f"{where}: output is truncated inside [...]; dropped {short(inner)}")
            continue
        vals = [float(v) for v in nums]
        if len(vals) == 4:
            vals.append(0.0)  # no angle: axis-aligned
        if len(vals) != 5:
            b.warn(f"{where}: dropped [{inner.strip()}]: expected 5 numbers x1, y1, x2, y2, angle")
            continue
        _earthdial_box(vals[:4], vals[4], where, label, b)
    if nbox == 0:
        nothing(b, text)
    return b.out


def _earthdial_box(nums: list[float], angle_deg: float, where: str, label: str | None, b: Builder) -> None:
    if not all(math.isfinite(v) for v in (*nums, angle_deg)):
        b.warn(f"{where}: dropped box {fmt_values([*nums, angle_deg])}: non-finite value")
        return
    if angle_deg % 360.0 == 0.0:
        b.box(nums, where, label)
        return
    if b.impossible(nums, where, "box"):
        return
    x1, y1, x2, y2 = nums
    if x2 < x1 or y2 < y1:
        b.warn(f"{where}: box {fmt_values(nums)} has swapped corners; reordered them")
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    if not (x2 - x1) * (y2 - y1) > 0:
        b.warn(f"{where}: dropped box {fmt_values(nums)}: zero area")
        return
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    ring: list[float] = []
    for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        dx, dy = x - cx, y - cy
        # row vector (dx, dy) times [[c, -s], [s, c]], as EarthDial's eval.py does
        ring += [b.mapx(cx + dx * c + dy * s), b.mapy(cy - dx * s + dy * c)]
    b.polygon([ring], where, label, mapped=True)


def parse_earthdial(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from EarthDial ``[[x1, y1, x2, y2, θ], ...]`` (0..100 grid, θ in degrees).

    Coordinates are percentages of the side (``x * width / 100``); a value outside
    0..100 makes the box impossible (dropped with a warning naming it). θ = 0 (or a
    multiple of 360, or a four-number box) gives a ``box`` detection; any other angle a
    ``polygon``, rotated on the 0..100 grid as EarthDial's evaluation does. Text around
    the boxes is ignored; a ``<ref>label</ref>`` names the boxes after it.

    Examples
    --------
    >>> out = "[[31, 31, 35, 36, 0], [42, 21, 46, 26, 0]]"
    >>> [d.geometry.bounds for d in parse_earthdial(out, (1000, 1000), label="building")]
    [(310.0, 310.0, 350.0, 360.0), (420.0, 210.0, 460.0, 260.0)]
    >>> d, = parse_earthdial("a ship [[40, 40, 60, 50, 90]]", (100, 100))
    >>> d.kind, [round(v, 6) for v in d.geometry.bounds]
    ('polygon', [45.0, 35.0, 55.0, 55.0])
    """
    size = check_size(image_size)
    w, h = size
    b = Builder("earthdial", size, label, lambda v: v * w / 100.0, lambda v: v * h / 100.0, limit=100)
    return guard("earthdial", _parse_earthdial, text, b)


_SRC = (
    "akshaydudhane16/EarthDial @ 1515c6df26db0b5ebe0367bece469479f5e9ce12, "
    "src/earthdial/eval/{path} line {line} (EarthDial-4B's published evaluation answer); "
)
_XBD = "xBD image, 1024x1024 like every xBD tile; boxes by EarthDial's eval.py (parse_bboxes, get_rotated_box_vertices) on the 0-100 grid, then x * 1024 / 100"
_HIT = (
    "HIT-UAV thermal image, 640x512 like every HIT-UAV frame; boxes by EarthDial's eval.py "
    "(get_rotated_box_vertices on the 0-100 grid), then x * 640 / 100, y * 512 / 100"
)

#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=_SRC.format(path="rs_change_detection/results/xBD_object_detection.jsonl", line=1)
        + "'Locate all large <ref>buildings</ref> in the post-disaster image'; "
        + _XBD,
        text="[[31, 31, 35, 36, 0], [42, 21, 46, 26, 0], [79, 17, 83, 21, 0], [79, 78, 83, 82, 0], [79, 21, 83, 25, 0]]",
        image_size=(1024, 1024),
        expected=(
            (317.44, 317.44, 358.4, 368.64),
            (430.08, 215.04, 471.04, 266.24),
            (808.96, 174.08, 849.92, 215.04),
            (808.96, 798.72, 849.92, 839.68),
            (808.96, 215.04, 849.92, 256.0),
        ),
        options={"label": "building"},
        labels=("building",) * 5,
    ),
    Case(
        source=_SRC.format(path="rs_change_detection/results/xBD_referred_object_detection.jsonl", line=4)
        + "'Identify the <ref>destroyed building</ref> at top left of the post-disaster image'; "
        + _XBD,
        text="[[3, 7, 11, 16, 0]]",
        image_size=(1024, 1024),
        expected=((30.72, 71.68, 112.64, 163.84),),
    ),
    Case(
        source=_SRC.format(path="rs_grounding_description/results/HIT_UAV.jsonl", line=1)
        + "a [grounding] description with boxes in the prose, θ = 90; "
        + _HIT
        + "; the second box reaches y = -5.12 px and is clipped to the image",
        text=(
            "In the satellite image, there are some buildings [[81, 1, 93, 13, 90], [81, 0, 93, 10, 90]]  "
            "located close to each other at the top right part of the scene. These buildings are likely "
            "part of a city or urban area, and their presence indicates a high degree of human activity in "
            "the region. The presence of buildings can also provide insight into the economic and social "
            "development of the area, as well as its infrastructure and transportation networks."
        ),
        image_size=(640, 512),
        expected=((518.4, 5.12, 595.2, 66.56), (524.8, 0.0, 588.8, 56.32)),
        warns=("clipped",),
    ),
    Case(
        source=_SRC.format(path="rs_grounding_description/results/HIT_UAV.jsonl", line=57)
        + "θ = 63 on a non-square image; "
        + _HIT,
        text=(
            "In the satellite image, there are two gray large cars [[62, 35, 66, 37, 63], [62, 33, 66, 35, 63]]  "
            "positioned close to each other at the center of the scene."
        ),
        image_size=(640, 512),
        expected=((398.0865, 172.8717, 421.1135, 195.7683), (398.0865, 162.6317, 421.1135, 185.5283)),
    ),
    Case(
        source=_SRC.format(path="rs_grounding_description/results/HIT_UAV.jsonl", line=171)
        + "a malformed answer: y1 = 101 is off the 0-100 grid (and y1 > y2, zero width); both copies "
        "dropped with a warning naming 101; " + _HIT,
        text=(
            "In the satellite image, there are two gray ships [[25, 101, 25, 100, 90], [25, 101, 25, 100, 90]]  "
            "positioned close to each other at the bottom left."
        ),
        image_size=(640, 512),
        expected=(),
        warns=("101",),
    ),
    Case(
        source=_SRC.format(path="rs_grounding_description/results/HIT_UAV.jsonl", line=44)
        + "a malformed answer: four boxes of zero height (y1 = y2), each dropped with a warning; "
        + _HIT,
        text=(
            "In the satellite image, there are two gray small cars [[1, 35, 5, 35, 63], [3, 35, 7, 35, 63]]  "
            "and two white small cars [[1, 33, 5, 33, 63], [3, 33, 7, 33, 63]]  positioned close to each "
            "other on the left side of the image."
        ),
        image_size=(640, 512),
        expected=(),
        warns=("zero area",),
    ),
)

FORMAT = register(
    Format(
        name="earthdial",
        family="EarthDial (InternVL2 fine-tune for remote sensing; GeoChat-style boxes)",
        aliases=("earth-dial",),
        convention=Convention(
            "0-100",
            "x-first",
            ("box", "rotated box"),
            "x * width / 100, after rotating the corners by θ (degrees) on the 0-100 grid",
        ),
        prompt="[refer] [hr_rgb_0.5] Give me the location of <ref>{label}</ref>",
        parse=parse_earthdial,
        models=(r"earth-?dial",),
        marker=r"\[\s*\[\s*\d+(?:\s*,\s*\d+){4}\s*\]",
        specificity=65,
        cases=CASES,
    )
)
