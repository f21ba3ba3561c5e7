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
from georeason.models.formats.registry import Case, Convention, Format, register

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
            shown = open_tail.group(0).strip().replace("nan", "<runaway>")
            b.warn(f"{where}: dropped the {cut} box {short(shown, 40)}")
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


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "deepseek-ai/DeepSeek-VL2 README (single-image visual grounding example, "
            "'<|ref|>The giraffe at the back.<|/ref|>.' on images/visual_grounding_1.jpeg), "
            "the answer as the README prints it; the README gives no image size, "
            "so the 0-999 box is scaled to an assumed 1000x667 by DeepSeek's int(x / 999 * w)"
        ),
        text=(
            "<|ref|>The giraffe at the back.<|/ref|><|det|>[[580, 270, 999, "
            "900]]<|/det|><｜end▁of▁sentence｜>"
        ),
        image_size=(1000, 667),
        expected=((580, 180, 1000, 600),),
        labels=("The giraffe at the back.",),
    ),
    Case(
        source=(
            "deepseek-ai/DeepSeek-VL2 issue #96 (comment by erdongchendou, "
            "2025-02-26): a 9999 on the 0-999 grid, "
            "then a five-number box running into endless 9s; neither box is valid, "
            "each is named in a warning"
        ),
        text=(
            "<|Assistant|>:: <|ref|>head without helmet<|/ref|><|det|>[[0, 50, 55, 9999], [0, 5, "
            "533, 17, "
            "9999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999"
        ),
        image_size=(999, 999),
        expected=(),
        warns=("impossible value 9999", "runaway number"),
    ),
    Case(
        source="deepseek-ai/DeepSeek-VL2 issue #123 (deepseek-vl2-tiny/small answers on RefCOCO quoted by the reporter): '99999' on the 0-999 grid; the box is dropped with a warning naming the value",
        text=(
            "<|ref|>A girl in stands between two boys, focused on game.<|/ref|><|det|>[[2, 311, "
            "99999, 98]]<|/det|><｜end▁of▁sentence｜>"
        ),
        image_size=(999, 999),
        expected=(),
        warns=("impossible value 99999",),
    ),
    Case(
        source="deepseek-ai/DeepSeek-VL2 issue #123 (deepseek-vl2-tiny/small answers on RefCOCO quoted by the reporter): a one-number box '[[470,]]'",
        text=(
            "<|ref|>The decorated cake sits the table, "
            "ready for the celebration.<|/ref|><|det|>[[470,]]<|/det|><｜end▁of▁sentence｜>"
        ),
        image_size=(999, 999),
        expected=(),
        warns=("[470]",),
    ),
    Case(
        source="deepseek-ai/DeepSeek-VL2 issue #123 (deepseek-vl2-tiny/small answers on RefCOCO quoted by the reporter): a five-number box with 5329/5310/99999",
        text=(
            "<|ref|>Individual at the workstation on the workstation banana in their hand<|/ref|><|det|>[[0, "
            "5329, 5310, 9, 99999]]<|/det|><｜end▁of▁sentence｜>"
        ),
        image_size=(999, 999),
        expected=(),
        warns=("5 numbers",),
    ),
    Case(
        source=(
            "DeepSeek-OCR output published in transformers' test suite (tests/models/deepseek_ocr2, "
            "EXPECTED_DECODED_TEXT, same <|ref|>/<|det|> 0-999 format); no image size in the test, "
            "scaled to 999x999"
        ),
        text="<|ref|>title<|/ref|><|det|>[[330, 198, 559, 230]]<|/det|>\n# R",
        image_size=(999, 999),
        expected=((330, 198, 559, 230),),
        labels=("title",),
    ),
    Case(
        source=(
            "CONSTRUCTED (no published example found): a box cut by a nested <|ref|>, "
            "shaped after the malformations of issues #96/#123; the whole box before and after is kept, "
            "the cut one is named"
        ),
        text=(
            "<|ref|>car<|/ref|><|det|>[[100, 200, 300, 400], [512, 37, "
            "<|ref|>truck<|/ref|><|det|>[[600, 600, 900, 800]]<|/det|>"
        ),
        image_size=(999, 999),
        expected=((100, 200, 300, 400), (600, 600, 900, 800)),
        labels=("car", "truck"),
        warns=("[512, 37",),
        real=False,
    ),
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
        cases=CASES,
    )
)
