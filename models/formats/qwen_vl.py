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
from georeason.models.formats.registry import Case, Convention, Format, register

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


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "QwenLM/Qwen-VL README (Qwen-VL-Chat / Qwen-VL quick start): 2nd dialogue turn '框出图中击掌的位置' on demo.jpeg; the README does not state the image size, "
            "the relative 0-1000 boxes are scaled to an assumed 2048x1365 by the tokenizer's int(x / 1000 * w)"
        ),
        text="<ref>击掌</ref><box>(536,509),(588,602)</box>",
        image_size=(2048, 1365),
        expected=((1097, 694, 1204, 821),),
        labels=("击掌",),
    ),
    Case(
        source="QwenLM/Qwen-VL README (Qwen-VL-Chat / Qwen-VL quick start): Qwen-VL pretrained 'Generate the caption in English with grounding:' on demo.jpeg (decoded with special tokens); size assumed 2048x1365 as above",
        text=(
            "<img>https://qianwen-res.oss-cn-beijing.aliyuncs.com/Qwen-VL/assets/demo.jpeg</img>Generate the caption in English with grounding:<ref> "
            "Woman</ref><box>(451,379),(731,806)</box> and<ref> "
            "her dog</ref><box>(219,424),(576,896)</box> playing on the beach<|endoftext|>"
        ),
        image_size=(2048, 1365),
        expected=((923, 517, 1497, 1100), (448, 578, 1179, 1223)),
        labels=("Woman", "her dog"),
    ),
    Case(
        source=(
            "A Qwen-VL-Chat response recorded in a user's grounding script (GitHub, "
            "code search id 352935440: '# response = \"<ref> "
            "man</ref><box>(241,354),(707,999)</box>\"'); image size not given, scaled to 1000x1000"
        ),
        text="<ref> man</ref><box>(241,354),(707,999)</box>",
        image_size=(1000, 1000),
        expected=((241, 354, 707, 999),),
        labels=("man",),
    ),
)

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
        cases=CASES,
    )
)
