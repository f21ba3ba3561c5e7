"""Kosmos-2: ``<phrase>text</phrase><object><patch_index_UL><patch_index_LR></object>`` on a 32x32 grid.

Post-processing as transformers' ``Kosmos2Processor`` does it
(``patch_index_to_coordinate``): cell index ``i`` is column ``i % 32``, row ``i // 32``;
a box whose two corner cells differ in both row and column spans the *centres* of the
two cells, ``(col + 0.5) / 32``; when they share a row or a column (or are the same
cell) it spans from the first cell's top-left *corner* to the second's bottom-right
corner. Several boxes of one phrase are separated by ``</delimiter_of_multi_objects/>``.
"""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, as_text, check_size, guard, nothing
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_kosmos2", "patch_box", "FORMAT"]

_GRID = 32
_ENTITY_RE = re.compile(r"(?:<phrase>([^<]*)</phrase>)?<object>(.*?)(?:</object>|$)", re.DOTALL)
_PATCH_RE = re.compile(r"<patch_index_(\d+)>")


def patch_box(ul: int, lr: int, grid: int = _GRID) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` in 0..1 of two corner cells, as transformers' Kosmos-2 processor.

    >>> patch_box(44, 863)
    (0.390625, 0.046875, 0.984375, 0.828125)
    """
    cell = 1.0 / grid
    ux, uy, lx, ly = ul % grid, ul // grid, lr % grid, lr // grid
    if ul == lr or ux == lx or uy == ly:
        return ux * cell, uy * cell, lx * cell + cell, ly * cell + cell
    return ux * cell + cell / 2, uy * cell + cell / 2, lx * cell + cell / 2, ly * cell + cell / 2


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    n = 0
    for m in _ENTITY_RE.finditer(text):
        phrase = (m.group(1) or "").strip() or None
        if not m.group(0).endswith("</object>"):
            b.warn(f"output is truncated inside <object> of {phrase or 'an entity'!r}; dropped it")
            continue
        for pair in m.group(2).split("</delimiter_of_multi_objects/>"):
            idx = [int(v) for v in _PATCH_RE.findall(pair)]
            n += 1
            tag = f"box {n}" + (f" ({phrase!r})" if phrase else "")
            if len(idx) != 2:
                b.warn(f"{tag}: dropped {pair.strip()!r}: expected 2 <patch_index_N> tokens")
                continue
            bad = [v for v in idx if v >= _GRID * _GRID]
            if bad:
                b.warn(f"{tag}: dropped {idx}: impossible patch index {bad[0]} on a 32x32 grid (0-1023)")
                continue
            x1, y1, x2, y2 = patch_box(*idx)
            b.box([x1 * b.w, y1 * b.h, x2 * b.w, y2 * b.h], tag, phrase, mapped=True)
    if n == 0:
        nothing(b, text)
    return b.out


def parse_kosmos2(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Kosmos-2 ``<patch_index_N>`` pairs (32x32 grid, transformers' post-processing).

    Examples
    --------
    >>> out = "<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object>"
    >>> [(d.label, d.geometry.bounds) for d in parse_kosmos2(out, (640, 640))]
    [('a snowman', (250.0, 30.0, 630.0, 530.0))]
    """
    size = check_size(image_size)
    return guard("kosmos-2", _parse, text, Builder("kosmos-2", size, label))


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "huggingface/transformers tests/models/kosmos2/test_modeling_kosmos2.py, "
            "test_snowman_image_captioning: EXPECTED_PROCESSED_TEXT and EXPECTED_ENTITIES (fractions, "
            "from processor.post_process_generation) scaled to the 224x224 model input"
        ),
        text=(
            "<grounding> An image of<phrase> "
            "a snowman</phrase><object><patch_index_0044><patch_index_0863></object> "
            "warming himself by<phrase> "
            "a fire</phrase><object><patch_index_0005><patch_index_0911></object>."
        ),
        image_size=(224, 224),
        expected=((87.5, 10.5, 220.5, 185.5), (38.5, 3.5, 108.5, 199.5)),
        labels=("a snowman", "a fire"),
    ),
    Case(
        source=(
            "huggingface/transformers tests/models/kosmos2/test_modeling_kosmos2.py, "
            "test_snowman_image_captioning (detailed caption): EXPECTED_PROCESSED_TEXT_LONG and EXPECTED_ENTITIES_LONG scaled to 640x640"
        ),
        text=(
            "<grounding> "
            "Describe this image in detail: The image features a snowman sitting by<phrase> "
            "a campfire</phrase><object><patch_index_0005><patch_index_1007></object> "
            "in the snow. He is wearing<phrase> "
            "a hat</phrase><object><patch_index_0048><patch_index_0250></object>,<phrase> "
            "scarf</phrase><object><patch_index_0240><patch_index_0604></object>, and<phrase> "
            "gloves</phrase><object><patch_index_0400><patch_index_0532></object>, with<phrase> "
            "a pot</phrase><object><patch_index_0610><patch_index_0872></object> "
            "nearby and<phrase> "
            "a cup</phrase><object><patch_index_0796><patch_index_1023></object> "
            "placed nearby. The snowman appears to be enjoying the warmth of the fire, "
            "and it appears to have a warm and cozy atmosphere."
        ),
        image_size=(640, 640),
        expected=(
            (110, 10, 310, 630),
            (330, 30, 530, 150),
            (330, 150, 570, 370),
            (330, 250, 410, 330),
            (50, 390, 170, 550),
            (570, 490, 630, 630),
        ),
        labels=("a campfire", "a hat", "scarf", "gloves", "a pot", "a cup"),
    ),
    Case(
        source=(
            "Kosmos-2 run published in project notes (GitHub, code search id 11124389236, "
            "Italian notes on evaluating Kosmos-2): the raw text and the printed entities [('God', "
            "(0, 3), [(0.578125, 0.296875, 0.734375, "
            "0.515625)])] scaled to the 224x224 model input (the source gives no image size)"
        ),
        text=(
            "<grounding><phrase> God</phrase><object><patch_index_0306><patch_index_0535></object> "
            "bless the bathroom"
        ),
        image_size=(224, 224),
        expected=((129.5, 66.5, 164.5, 115.5),),
        labels=("God",),
    ),
)

FORMAT = register(
    Format(
        name="kosmos-2",
        family="Kosmos-2 (microsoft/kosmos-2-patch14-224)",
        aliases=("kosmos2", "kosmos"),
        convention=Convention(
            "32x32 patch grid",
            "x-first",
            ("box",),
            "cell i = (i % 32, i // 32); box between cell centres (corners when sharing a row/column)",
        ),
        prompt="<grounding><phrase> {label}</phrase>",
        parse=parse_kosmos2,
        models=(r"kosmos-?2(?!\.5)",),
        marker=r"<patch_index_\d+>",
        specificity=80,
        cases=CASES,
    )
)
