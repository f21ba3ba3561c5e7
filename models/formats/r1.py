"""R1-style reasoning answers: ``<think>..</think><answer>(x1,y1),(x2,y2)</answer>``.

GRPO fine-tunes of Qwen2-VL keep their base's box text, ``(x1,y1),(x2,y2)`` on 0..1000
(``x * width / 1000``). Fine-tunes of a base that answers in pixels need
``scale=None`` (pixels of the image) or ``input_size`` (pixels of the resized input).
Several pairs of points make several boxes; a lone pair is a point.
"""

from __future__ import annotations

import re
from typing import Any

from georeason.errors import InputError
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
)
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_r1", "FORMAT"]

_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    m = _ANSWER_RE.search(text)
    if m is None:
        if "</think>" in text:
            answer = text.rsplit("</think>", 1)[1]
        else:
            b.warn("no <answer> in the output; nothing to read")
            return []
    else:
        answer = m.group(1)
        if not re.search(r"</answer>", text, re.IGNORECASE):
            b.warn("output is truncated inside <answer>; read what is complete")
    leaves = [[float(v) for v in NUM_RE.findall(x.group(1))] for x in LEAF_RE.finditer(answer)]
    if not leaves:
        nothing(b, answer)
        return b.out
    k, n = 0, 0
    while k < len(leaves):
        leaf = leaves[k]
        n += 1
        if len(leaf) == 2 and k + 1 < len(leaves) and len(leaves[k + 1]) == 2:
            b.box(leaf + leaves[k + 1], f"box {n}")
            k += 2
            continue
        if len(leaf) == 4:
            b.box(leaf, f"box {n}")
        elif len(leaf) == 2:
            b.point(leaf, f"point {n}")
        else:
            b.warn(f"item {n}: dropped {fmt_values(leaf)}: expected (x1,y1),(x2,y2)")
        k += 1
    return b.out


def parse_r1(
    text: str,
    image_size: tuple[int, int],
    label: str | None = None,
    scale: float | None = 1000.0,
    input_size: tuple[int, int] | None = None,
) -> list[Detection]:
    """Detections from ``<think>..</think><answer>(x1,y1),(x2,y2)</answer>``.

    ``scale``: the coordinate range (1000: Qwen2-VL-based, the default; ``None``: pixels);
    ``input_size``: ``(w_in, h_in)`` when the coordinates are pixels of a resized input.

    Examples
    --------
    >>> out = "<think>The red car is at the lower left.</think><answer>(120,540),(360,880)</answer>"
    >>> [d.geometry.bounds for d in parse_r1(out, (1000, 500))]
    [(120.0, 270.0, 360.0, 440.0)]
    """
    size = check_size(image_size)
    w, h = size
    if input_size is not None:
        w_in, h_in = check_size(input_size)
        b = Builder("r1", size, label, lambda v: v * w / w_in, lambda v: v * h / h_in)
    elif scale is None:
        b = Builder("r1", size, label)
    else:
        try:
            s = float(scale)
        except (TypeError, ValueError):
            raise InputError(f"scale must be a positive number or None, got {scale!r}") from None
        if not s > 0:
            raise InputError(f"scale must be a positive number or None, got {scale!r}")
        b = Builder("r1", size, label, lambda v: v * w / s, lambda v: v * h / s, limit=s)
    return guard("r1", _parse, text, b)


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "AMAP-ML/UniVG-R1 issue #15 ('Model output meaningless boxes'): the reporter's raw "
            "UniVG-R1 (Qwen2-VL GRPO) output on a 506x505 image (size stated in the issue); the "
            "maintainer's reply: coordinates are on 0-1000 like Qwen2-VL, x / 1000 * w, y / 1000 * h"
        ),
        text=(
            "<think>To identify the differences between the two images, I will carefully compare each "
            "element in both images. First, I notice that the background and the hedgehog are similar in "
            "both images. Next, I focus on the objects on the hedgehog's back. In the first image, there is "
            "a red apple with a green leaf on top of the hedgehog. In the second image, the apple has changed "
            "to green. This change is the difference between the two images. To locate this difference within "
            "the relevant image, I will note the position of the apple in the first image.</think>\n"
            "<answer>(500,270),(710,480)</answer>"
        ),
        image_size=(506, 505),
        expected=((253.0, 136.35, 359.26, 242.4),),
    ),
    Case(
        source=(
            "Visual-RFT paper (Liu et al., arXiv 2503.01785), Figure 2 (c): the Qwen2-VL-based Visual-RFT "
            "reasoning-grounding answer for 'the pokeymon that can perform Thunderbolt', text as extracted "
            "from the paper (code search id 61159124823; the figure's two text columns rejoined, words "
            "unchanged); 0-1000 like its Qwen2-VL base; the image size is not given, 1024x768 assumed"
        ),
        text=(
            "<think>The instruction is to find the bounding box of the Pokémon that can perform Thunderbolt. "
            "Thunderbolt is a move that can be used by several Pokémon. In the image, there are several "
            "Pokémon, including Pikachu, which is known for its Thunderbolt move. Pikachu is located in the "
            "bottom right corner of the image.</think> <answer>(696,300),(999,999)</answer>"
        ),
        image_size=(1024, 768),
        expected=((712.704, 230.4, 1022.976, 767.232),),
    ),
    Case(
        source=(
            "Visual-RFT paper (arXiv 2503.01785), Figure 5 (reasoning grounding on LISA, Visual-RFT "
            "output for 'Detect the object that both teams are fighting for in a game of American "
            "football'), text as extracted from the paper (code search id 61159124823); 0-1000 like its "
            "Qwen2-VL base; the image size is not given, 640x480 assumed"
        ),
        text=(
            "<think> The object that both teams are fighting for in a game of American football is the "
            "ball. </think>\n\n<answer>(350,187),(574,612)</answer>"
        ),
        image_size=(640, 480),
        expected=((224.0, 89.76, 367.36, 293.76),),
    ),
    Case(
        source="CONSTRUCTED: the docstring example, a single pair of points on 0-1000 (kept beside the real cases above)",
        text="<think>The red car is at the lower left.</think><answer>(120,540),(360,880)</answer>",
        image_size=(1000, 500),
        expected=((120, 270, 360, 440),),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: two boxes as four pairs",
        text="<think>two ships</think>\n<answer>(10,20),(110,220), (500,500),(600,700)</answer>",
        image_size=(2000, 1000),
        expected=((20, 20, 220, 220), (1000, 500, 1200, 700)),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: answer without the closing tag (cut by the token limit)",
        text="<think>x</think><answer>(100,100),(200,300)",
        image_size=(1000, 1000),
        expected=((100, 100, 200, 300),),
        warns=("truncated",),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="r1",
        family="R1-style GRPO grounding fine-tunes of Qwen2-VL",
        aliases=("r1-style", "think-answer"),
        convention=Convention(
            "0-1000",
            "x-first",
            ("box", "point"),
            "x * width / 1000 (scale=None: pixels; input_size: resized-input pixels)",
        ),
        prompt="Find the {label} in the image. Think in <think></think>, then give its box as "
        "<answer>(x1,y1),(x2,y2)</answer>.",
        parse=parse_r1,
        options=("scale", "input_size"),
        marker=r"<answer>\s*\(",
        specificity=60,
        cases=CASES,
    )
)
