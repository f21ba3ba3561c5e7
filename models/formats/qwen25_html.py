"""Qwen2.5-VL document parsing, "QwenVL HTML": ``<p data-bbox="x1 y1 x2 y2">..</p>``.

Coordinates are absolute pixels of the *resized* model input, like Qwen2.5-VL's JSON
grounding (the document-parsing cookbook's ``draw_bbox`` divides by
``resized_width / original_width``). The label is the element's ``data-label`` or
``class`` if it has one, else its tag name.
"""

from __future__ import annotations

import html
import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    NUM_RE,
    Builder,
    as_text,
    check_size,
    guard,
    nothing,
    short,
)
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_qwen25_html", "FORMAT"]

_TAG_RE = re.compile(r"<([A-Za-z][\w-]*)([^<>]*?)\bdata-bbox\s*=\s*([\"'])(.*?)\3([^<>]*)>", re.DOTALL)
_ATTR_RE = re.compile(r"\b(data-label|class)\s*=\s*([\"'])(.*?)\2", re.DOTALL)


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    n = 0
    for m in _TAG_RE.finditer(text):
        n += 1
        tag, attrs, raw = m.group(1).lower(), m.group(2) + " " + m.group(5), m.group(4)
        found = dict((k.lower(), v) for k, _, v in _ATTR_RE.findall(attrs))
        lab = html.unescape(found.get("data-label") or found.get("class") or tag)
        nums = NUM_RE.findall(raw)
        where = f"element {n} <{tag}>"
        if len(nums) != 4:
            b.warn(f"{where}: dropped data-bbox={short(raw, 40)}: expected 4 numbers x1 y1 x2 y2")
            continue
        b.box([float(v) for v in nums], where, lab)
    if n == 0:
        nothing(b, text)
    return b.out


def parse_qwen25_html(
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
    label: str | None = None,
) -> list[Detection]:
    """Detections from QwenVL HTML ``data-bbox="x1 y1 x2 y2"`` attributes (resized-input pixels).

    ``input_size`` is ``(w_in, h_in)`` of the image the model saw (``smart_resize``);
    ``None``: the coordinates are pixels of the original image.

    Examples
    --------
    >>> out = '<html><body><h1 data-bbox="309 96 658 127">Qwen2.5 Technical Report</h1></body></html>'
    >>> [(d.label, [round(v, 2) for v in d.geometry.bounds]) for d in parse_qwen25_html(out, (1014, 1532), (1008, 1540))]
    [('h1', [310.84, 95.5, 661.92, 126.34])]
    """
    size = check_size(image_size)
    w, h = size
    if input_size is None:
        b = Builder("qwen2.5-html", size, label)
    else:
        w_in, h_in = check_size(input_size)
        b = Builder("qwen2.5-html", size, label, lambda v: v * w / w_in, lambda v: v * h / h_in)
    return guard("qwen2.5-html", _parse, text, b)


FORMAT = register(
    Format(
        name="qwen2.5-html",
        family="Qwen2.5-VL document parsing (QwenVL HTML)",
        aliases=("qwenvl-html", "qwen25-html", "data-bbox"),
        convention=Convention(
            "pixels of the resized model input",
            "x-first",
            ("box",),
            "x * width / w_in, with (h_in, w_in) = smart_resize(height, width, min/max pixels)",
        ),
        prompt="QwenVL HTML",
        parse=parse_qwen25_html,
        options=("input_size",),
        marker=r"data-bbox\s*=",
        specificity=70,
        cases=(),
    )
)
