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
from georeason.models.formats.registry import Convention, Format, register

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
        cases=(),
    )
)
