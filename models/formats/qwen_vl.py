"""Qwen-VL (v1): ``<ref>label</ref><box>(x1,y1),(x2,y2)</box>``, relative 0..1000.

Qwen-VL's tokenizer (``tokenization_qwen.py``, ``draw_bbox_on_latest_picture``) maps
``int(x / 1000 * width)``. One reference may be followed by several ``<box>`` spans.
"""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    LEAF_RE,
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

__all__ = ["parse_qwen_vl", "parse_ref_boxes", "FORMAT"]

_TOKEN_RE = re.compile(
    r"<ref>(?P<ref>.*?)(?:</ref>|(?=<box>)|$)|<box>(?P<box>.*?)(?P<end></box>|(?=<ref>|<box>)|$)",
    re.DOTALL,
)


def parse_ref_boxes(text: Any, b: Builder, pairs: bool) -> list[Detection]:
    """``<ref>..</ref><box>..</box>`` spans: ``(x,y)`` pairs (Qwen-VL) or ``[x1,y1,x2,y2]`` lists (InternVL)."""
    text = as_text(text, b.fmt)
    if text is None:
        return []
    current, nbox = None, 0
    for m in _TOKEN_RE.finditer(text):
        if m.group("ref") is not None:
            current = m.group("ref").strip() or None
            continue
        nbox += 1
        where = f"box {nbox}" + (f" ({current!r})" if current else "")
        body = m.group("box")
        leaves = [[float(v) for v in NUM_RE.findall(x.group(1))] for x in LEAF_RE.finditer(body)]
        if not m.group("end"):
            b.warn(f"{where}: output is truncated inside <box>; dropped {short(body)}")
            continue
        if pairs and leaves and all(len(leaf) == 2 for leaf in leaves):
            leaves = [leaves[i] + leaves[i + 1] for i in range(0, len(leaves) - 1, 2)] + (
                [leaves[-1]] if len(leaves) % 2 else []
            )
        if not leaves:
            b.warn(f"{where}: dropped {short(body)}: no coordinates")
        for leaf in leaves:
            if len(leaf) == 4:
                b.box(leaf, where, current)
            else:
                b.warn(f"{where}: dropped {fmt_values(leaf)}: expected x1, y1, x2, y2")
    if nbox == 0:
        nothing(b, text)
    return b.out


def parse_qwen_vl(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen-VL ``<ref>..</ref><box>(x1,y1),(x2,y2)</box>`` (0..1000).

    Examples
    --------
    >>> out = "<ref> Woman</ref><box>(451,379),(731,806)</box> and<ref> her dog</ref><box>(219,424),(576,896)</box>"
    >>> [(d.label, d.geometry.bounds) for d in parse_qwen_vl(out, (1000, 500))]
    [('Woman', (451.0, 189.5, 731.0, 403.0)), ('her dog', (219.0, 212.0, 576.0, 448.0))]
    """
    size = check_size(image_size)
    w, h = size
    b = Builder("qwen-vl", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0, limit=1000)
    return guard("qwen-vl", parse_ref_boxes, text, b, True)


FORMAT = register(
    Format(
        name="qwen-vl",
        family="Qwen-VL / Qwen-VL-Chat (v1) and fine-tunes",
        aliases=("qwen-vl-chat", "qwen1-vl", "qwenvl"),
        convention=Convention("0-1000", "x-first", ("box",), "x * width / 1000"),
        prompt="Generate the bounding box of <ref>{label}</ref>",
        parse=parse_qwen_vl,
        models=(r"qwen[-_]vl(?![-_]?\d)(-chat)?(?![-_]?(max|plus))",),
        marker=r"<box>\s*\(",
        specificity=70,
        cases=(),
    )
)
