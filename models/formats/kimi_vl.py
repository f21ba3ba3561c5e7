"""Kimi-VL: JSON ``bbox_2d`` normalised to 0..1 floats (``x * width``).

The same key means resized-input pixels for Qwen2.5-VL and 0..1000 for Qwen3-VL: name the
model or the format; ``auto`` only reads it as Kimi-VL when every coordinate is a
fraction in [0, 1].
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_kimi_vl", "FORMAT"]


def parse_kimi_vl(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Kimi-VL ``{"bbox_2d": [0.28, 0.5, 0.52, 0.7]}`` (fractions of the sides).

    Examples
    --------
    >>> d, = parse_kimi_vl('{"bbox_2d": [0.280, 0.500, 0.520, 0.700]}', (1000, 500))
    >>> d.geometry.bounds
    (280.0, 250.0, 520.0, 350.0)
    """
    size = check_size(image_size)
    w, h = size
    b = Builder("kimi-vl", size, label, lambda v: v * w, lambda v: v * h, limit=1.0)
    return guard("kimi-vl", parse_json_grounding, text, b)


FORMAT = register(
    Format(
        name="kimi-vl",
        family="Kimi-VL (Moonshot AI)",
        aliases=("kimi", "kimivl"),
        convention=Convention("0-1", "x-first", ("box", "point"), "x * width"),
        prompt="Locate every {label} in the image and output the bbox coordinates of each in JSON format "
        'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...], coordinates relative to the image size (0-1).',
        parse=parse_kimi_vl,
        models=(r"kimi[-_]?vl",),
        marker=r"bbox_2d|point_2d",
        specificity=55,
        cases=(),
    )
)
