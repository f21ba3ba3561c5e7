"""DeepSeek-VL2 (and DeepSeek-OCR): ``<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>``, 0..999.

DeepSeek's own drawing code maps ``int(x / 999 * width)``. Real outputs are messy
(DeepSeek-VL2 issues #33, #96): values such as ``9999`` off the 0..999 grid, five-number
boxes, endless runs of 9s until the token limit, a box cut by a nested ``<|ref|>``, stray
numbers around a nested list. Each whole, possible box is kept; every other one is
dropped with a ParseWarning that names it.
"""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    LEAF_RE,
    NUM_RE,
    Builder,
    add_leaves,
    as_text,
    check_size,
    fmt_values,
    guard,
    nothing,
    short,
)
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_deepseek_vl2", "FORMAT"]

_TOKEN_RE = re.compile(
    r"<\|ref\|>(?P<ref>.*?)(?:<\|/ref\|>|(?=<\|)|$)"
    r"|<\|det\|>(?P<det>.*?)(?P<end><\|/det\|>|(?=<\|ref\|>|<\|det\|>)|$)",
    re.DOTALL,
)
# a number of more than 12 digits is a runaway ("99999...") whatever its value
_RUNAWAY_RE = re.compile(r"\d{13,}")


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    current, ndet = None, 0
    for m in _TOKEN_RE.finditer(text):
        if m.group("ref") is not None:
            current = m.group("ref").strip() or None
            continue
        ndet += 1
        body = m.group("det")
        where = f"det {ndet}" + (f" ({current!r})" if current else "")
        for run in _RUNAWAY_RE.findall(body):
            b.warn(f"{where}: dropped the runaway number {short(run, 24)} ({len(run)} digits) and its box")
        body = _RUNAWAY_RE.sub("nan", body)
        found = [[float(v) for v in NUM_RE.findall(x.group(1))] for x in LEAF_RE.finditer(body)]
        rest = LEAF_RE.sub(" ", body)
        open_tail = re.search(r"[\[(][^\[\]()]*$", rest)
        if open_tail and NUM_RE.search(open_tail.group(0)):
            cut = (
                "cut by a nested <|ref|>" if m.group("end") and m.group("end") != "<|/det|>" else "unfinished"
            )
            if not m.group("end"):
                cut = "truncated"
            b.warn(f"{where}: dropped the {cut} box {short(open_tail.group(0).strip(), 40)}")
            rest = rest[: open_tail.start()]
        stray = [v for v in NUM_RE.findall(rest) if v.lower() != "nan"]
        if stray:
            b.warn(f"{where}: ignored stray number(s) {', '.join(stray)} outside any box")
        for k, leaf in enumerate(found, 1):
            tag = f"{where} box {k}"
            if len(leaf) == 4:
                b.box(leaf, tag, current)
            elif any(v != v for v in leaf):  # runaway replaced by nan: already reported
                continue
            else:
                b.warn(
                    f"{tag}: dropped {fmt_values(leaf)}: {len(leaf)} numbers, a box has 4 (x1, y1, x2, y2)"
                )
    if ndet == 0:
        leaves_ = [[float(v) for v in NUM_RE.findall(x.group(1))] for x in LEAF_RE.finditer(text)]
        if leaves_:
            add_leaves(leaves_, b, "box")
        else:
            nothing(b, text)
    return b.out


def parse_deepseek_vl2(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from DeepSeek-VL2 ``<|ref|>..<|/ref|><|det|>[[x1,y1,x2,y2]]<|/det|>`` (0..999).

    Examples
    --------
    >>> out = "<|ref|>The giraffe at the back<|/ref|><|det|>[[580, 270, 999, 904]]<|/det|>"
    >>> [(d.label, [round(v, 1) for v in d.geometry.bounds]) for d in parse_deepseek_vl2(out, (999, 999))]
    [('The giraffe at the back', [580.0, 270.0, 999.0, 904.0])]
    """
    size = check_size(image_size)
    w, h = size
    return guard(
        "deepseek-vl2",
        _parse,
        text,
        Builder("deepseek-vl2", size, label, lambda v: v * w / 999.0, lambda v: v * h / 999.0, limit=999),
    )


FORMAT = register(
    Format(
        name="deepseek-vl2",
        family="DeepSeek-VL2, DeepSeek-OCR",
        aliases=("deepseek", "deepseek-vl", "deepseek-ocr", "deepseekvl2"),
        convention=Convention("0-999", "x-first", ("box",), "x * width / 999"),
        prompt="<|ref|>{label}<|/ref|>.",
        parse=parse_deepseek_vl2,
        models=(r"deepseek[-_]?(vl2?|ocr)",),
        marker=r"<\|det\|>|<\|ref\|>",
        specificity=90,
        cases=(),
    )
)
