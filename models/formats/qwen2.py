"""Qwen2-VL box tokens: ``<|object_ref_start|>..<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, 0..1000."""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    NUM,
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

__all__ = ["parse_qwen2_boxes", "FORMAT"]


_QWEN2_TOKEN_RE = re.compile(
    r"<\|object_ref_start\|>(?P<ref>.*?)(?:<\|object_ref_end\|>|(?=<\|)|$)"
    r"|<\|box_start\|>(?P<box>.*?)(?P<end><\|box_end\|>|(?=<\|box_start\|>|<\|object_ref_start\|>)|$)",
    re.DOTALL,
)
_QWEN2_PLAIN_RE = re.compile(
    rf"\(\s*({NUM})\s*,\s*({NUM})\s*\)\s*,?\s*\(\s*({NUM})\s*,\s*({NUM})\s*\)", re.IGNORECASE
)


def _parse_qwen2(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    current, nbox = None, 0
    for m in _QWEN2_TOKEN_RE.finditer(text):
        if m.group("ref") is not None:
            current = m.group("ref")
            continue
        nbox += 1
        nums = [float(v) for v in NUM_RE.findall(m.group("box"))]
        tag = f"box {nbox}"
        if not m.group("end") and len(nums) < 4:
            b.warn(f"{tag}: output is truncated inside <|box_start|>; dropped {short(m.group('box'))}")
            continue
        if not nums:
            b.warn(f"{tag}: dropped {short(m.group('box'))}: no coordinates")
            continue
        for i in range(0, len(nums) - len(nums) % 4, 4):
            b.box(nums[i : i + 4], tag, current)
        if len(nums) % 4:
            b.warn(
                f"{tag}: dropped {len(nums) % 4} stray coordinate(s) {fmt_values(nums[-(len(nums) % 4) :])}"
            )
    if nbox == 0:  # decoded with skip_special_tokens: "building(100,200),(300,400)"
        matches = list(_QWEN2_PLAIN_RE.finditer(text))
        for k, m in enumerate(matches, 1):
            b.box([float(g) for g in m.groups()], f"box {k}")
        if not matches:
            nothing(b, text)
    return b.out


def parse_qwen2_boxes(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen2-VL box tokens (coordinates relative, 0..1000).

    ``<|object_ref_start|>building<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``;
    several boxes may follow one reference (they share its label). Coordinates map with
    ``x * width / 1000``. Text decoded without special tokens (``building(10,20),(30,40)``)
    is read too, with the default label.

    Examples
    --------
    >>> out = ("<|object_ref_start|>the pool<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
    ...        "<|box_start|>(500,500),(600,700)<|box_end|>")
    >>> [(d.label, d.geometry.bounds) for d in parse_qwen2_boxes(out, (1000, 500))]
    [('the pool', (100.0, 100.0, 300.0, 200.0)), ('the pool', (500.0, 250.0, 600.0, 350.0))]
    """
    size = check_size(image_size)
    w, h = size
    return guard(
        "qwen2",
        _parse_qwen2,
        text,
        Builder("qwen2", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0),
    )


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "Qwen2-VL grounding example ('the eyes on a giraffe') as quoted from the Qwen2-VL release material in a published study note (code search id 57180298048); no image size given, "
            "scaled to 1000x667"
        ),
        text="<|object_ref_start|>the eyes on a giraffe<|object_ref_end|><|box_start|>(176,106),(232,160)<|box_end|>",
        image_size=(1000, 667),
        expected=((176, 70.702, 232, 106.72),),
        labels=("the eyes on a giraffe",),
    ),
    Case(
        source=(
            "OS-Copilot/OS-Atlas README.md @ f143174 (since cbddd9e): OS-Atlas-Base-7B (a Qwen2-VL "
            "fine-tune) answer printed with skip_special_tokens=False for "
            "examples/images/web_6f93090a-81f6-489e-bb35-1a2838b18c01.png, 2560x1440 (read from the PNG "
            "in the repository); Qwen2-VL's 0-1000 convention, x / 1000 * width"
        ),
        text=(
            "<|object_ref_start|>language switch<|object_ref_end|><|box_start|>(576,12),(592,42)"
            "<|box_end|><|im_end|>"
        ),
        image_size=(2560, 1440),
        expected=((1474.56, 17.28, 1515.52, 60.48),),
        labels=("language switch",),
    ),
    Case(
        source=(
            "A Qwen2-VL fine-tune's answer served by vLLM, recorded in a project's session notes as "
            "'Model Output (raw)' (GitHub, code search id 61809419099, 'qwen2vl-nutrition-detection-r4-joint', "
            "2026-01-03); Qwen2-VL's 0-1000 convention; the image size is not given, 1200x900 assumed"
        ),
        text="<|object_ref_start|>nutrition-table<|object_ref_end|><|box_start|>(273,494),(732,620)<|box_end|>",
        image_size=(1200, 900),
        expected=((327.6, 444.6, 878.4, 558.0),),
        labels=("nutrition-table",),
    ),
    Case(
        source=(
            "CONSTRUCTED: Qwen2-VL box tokens decoded with skip_special_tokens=True (the tokens vanish, "
            "the text stays); no published raw example found"
        ),
        text="the eyes on a giraffe(176,106),(232,160)",
        image_size=(1000, 667),
        expected=((176, 70.702, 232, 106.72),),
        real=False,
    ),
    Case(
        source=(
            "CONSTRUCTED: two boxes after one reference, "
            "a shape the Qwen2-VL technical report describes; no published raw example found"
        ),
        text="<|object_ref_start|>cars<|object_ref_end|><|box_start|>(10,20),(110,220)<|box_end|><|box_start|>(500,500),(600,700)<|box_end|>",
        image_size=(2000, 1000),
        expected=((20, 20, 220, 220), (1000, 500, 1200, 700)),
        labels=("cars", "cars"),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="qwen2",
        family="Qwen2-VL",
        aliases=("qwen2-vl", "qwen2_vl"),
        convention=Convention("0-1000", "x-first", ("box",), "x * width / 1000"),
        prompt="Detect every {label} in the image. Output <|object_ref_start|>{label}<|object_ref_end|> "
        "<|box_start|>(x1,y1),(x2,y2)<|box_end|> for each.",
        parse=parse_qwen2_boxes,
        models=(r"qwen2(-|_)?vl",),
        marker=r"<\|box_start\|>|<\|object_ref_start\|>",
        specificity=90,
        cases=CASES,
    )
)
