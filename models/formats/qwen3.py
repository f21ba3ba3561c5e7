"""Qwen3-VL JSON grounding: ``bbox_2d`` relative, 0..1000, whatever the input size."""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_qwen3", "FORMAT"]


def parse_qwen3(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen3-VL JSON grounding output (coordinates relative, 0..1000).

    Same JSON shapes and repairs as :func:`parse_qwen25`. Qwen3-VL normalises
    coordinates to the 0..1000 range whatever the input size; a value of 1000 is read as
    999 (the grid has 1000 steps, 0..999), then ``x * width / 1000``,
    ``y * height / 1000``. Values beyond 1000 or below 0 are clipped with a warning.

    Examples
    --------
    >>> d, = parse_qwen3('[{"bbox_2d": [100, 250, 500, 1000], "label": "lake"}]', (2000, 400))
    >>> d.label, d.geometry.bounds
    ('lake', (200.0, 100.0, 1000.0, 399.6))
    """
    size = check_size(image_size)
    w, h = size

    def rel(v: float, side: int) -> float:
        return (999.0 if 999.0 < v <= 1000.0 else v) * side / 1000.0

    return guard(
        "qwen3",
        parse_json_grounding,
        text,
        Builder("qwen3", size, label, lambda v: rel(v, w), lambda v: rel(v, h)),
    )


FORMAT = register(
    Format(
        name="qwen3",
        family="Qwen3-VL",
        aliases=("qwen3-vl", "qwen3_vl"),
        convention=Convention("0-1000", "x-first", ("box", "point"), "min(x, 999) * width / 1000"),
        prompt="Locate every {label} in the image and output the bbox coordinates of each in JSON format "
        'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...].',
        parse=parse_qwen3,
        models=(r"qwen3(-|_)?vl",),
        marker=r"bbox_2d|point_2d",
        specificity=55,
        cases=(),
    )
)
