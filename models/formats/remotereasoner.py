"""RemoteReasoner: ``<think>..</think><answer>[[x1, y1, x2, y2], ...]</answer>`` in image pixels.

What the model prints, from 1e12Leon/RemoteReasoner itself: ``RemoteReasoner.py`` @
cdd1bd5 asks for "[[x1,y1,x2,y2],...,[x1,y1,x2,y2]]", "integers representing pixel
positions", "[]" when nothing matches, thinking in ``<think>`` and the list in ``<answer>``;
its ``_parse_bboxes`` (``ast.literal_eval``, a flat list wrapped, 4-number lists kept) hands
the boxes unchanged to SAM on the original image; ``convert_dataset.py`` trains on the same
shape. So the answer is the R1 tags of :mod:`.r1` around Qwen2.5-VL-style pixel lists. It is
not an alias of ``r1``: that format's convention is Qwen2-VL's 0-1000 (a pair of points per
box); ``parse_r1(text, size, scale=None)`` reads a RemoteReasoner answer to the same pixels,
``parse_r1(text, size)`` does not. Because both parsers read ``<answer>[[..]]</answer>``,
``auto`` picks this format from the text but says so (``also_read_by``).
"""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    Builder,
    add_leaves,
    as_text,
    check_size,
    find_leaves,
    guard,
    nothing,
)
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_remotereasoner", "FORMAT"]


_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def _parse_remotereasoner(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    m = _ANSWER_RE.search(text)
    if m is not None:
        answer = m.group(1)
    elif "</think>" in text:
        answer = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        b.warn("output has <think> but neither </think> nor <answer>; no answer to read")
        return []
    else:
        answer = text
    if re.fullmatch(r"\s*\[\s*(\[\s*\]\s*)?\]\s*", answer):  # "[]": no object matches
        return []
    leaves = find_leaves(answer, b)
    if not leaves:
        nothing(b, answer)
    add_leaves(leaves, b, "box")
    return b.out


def parse_remotereasoner(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from RemoteReasoner's ``<think>..</think><answer>[[x1,y1,x2,y2], ...]</answer>``.

    Coordinates are integer pixels of the image, used as they are. ``[]`` is the model's
    "nothing matches" (no warning). A missing ``</think>`` or ``</answer>``, spaces and a
    single flat box ``[x1, y1, x2, y2]`` are tolerated; without ``<answer>`` the text
    after ``</think>`` is read.

    Examples
    --------
    >>> out = "<think>Two storage tanks near the pier.</think><answer>[[10, 20, 50, 60], [70,80,90,100]]</answer>"
    >>> [d.geometry.bounds for d in parse_remotereasoner(out, (128, 128), label="tank")]
    [(10.0, 20.0, 50.0, 60.0), (70.0, 80.0, 90.0, 100.0)]
    >>> parse_remotereasoner("<think>none</think><answer>[]</answer>", (128, 128))
    []
    """
    size = check_size(image_size)
    return guard("remotereasoner", _parse_remotereasoner, text, Builder("remotereasoner", size, label))


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source="CONSTRUCTED after the RemoteReasoner paper's answer format (pixel boxes in <answer>[[..]]</answer>); no published raw answer found",
        text=(
            "<think>Two storage tanks near the pier.</think><answer>[[10, 20, 50, 60], "
            "[70,80,90,100]]</answer>"
        ),
        image_size=(128, 128),
        expected=((10, 20, 50, 60), (70, 80, 90, 100)),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: 'no object' answer",
        text="<think>none</think><answer>[]</answer>",
        image_size=(128, 128),
        expected=(),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: single flat box, no closing </answer>",
        text="<think>a ship</think><answer>[5, 5, 20, 30]",
        image_size=(64, 64),
        expected=((5, 5, 20, 30),),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="remotereasoner",
        family="RemoteReasoner (Qwen2.5-VL fine-tune, GRPO)",
        aliases=("remote-reasoner", "remote_reasoner"),
        convention=Convention("pixels of the original image", "x-first", ("box",), "unchanged"),
        prompt="Find every {label} in this remote sensing image. Think in <think></think>, then "
        "give the boxes as <answer>[[x1, y1, x2, y2], ...]</answer>.",
        parse=parse_remotereasoner,
        models=(r"remote-?reasoner",),
        marker=r"</?answer>|</?think>",
        specificity=58,
        cases=CASES,
        also_read_by=("r1",),
        also_read_note="R1-style answers hold pixels when the fine-tune's base is Qwen2.5-VL "
        "(RemoteReasoner, read so here) and 0-1000 when it is Qwen2-VL (name format r1 then)",
    )
)
