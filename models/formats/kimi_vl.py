"""Kimi-VL: JSON ``bbox_2d`` normalised to 0..1 floats (``x * width``).

The same key means resized-input pixels for Qwen2.5-VL and 0..1000 for Qwen3-VL: name the
model or the format; ``auto`` only reads it as Kimi-VL when every coordinate is a
fraction in [0, 1].
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Case, Convention, Format, register

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


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "MoonshotAI/Kimi-VL issue #56 ('predicted bbox seems to be normalized'): a Kimi-VL-Instruct answer quoted by its user; the issue gives no image size, "
            "so the fractions are scaled to 1000x750"
        ),
        text='{"bbox_2d": [0.280, 0.500, 0.520, 0.700]}',
        image_size=(1000, 750),
        expected=((280, 375, 520, 525),),
    ),
    Case(
        source=(
            "0-1 bbox_2d answers 'measured live' from a remote describer model (not named by the source) and recorded verbatim in a test suite (GitHub, "
            "code search id 68306764114, MEASURED t2i_001, "
            "896x1152); same 0-1 convention as Kimi-VL, x * width"
        ),
        text='{"bbox_2d": [0.431, 0.306, 0.571, 0.430]}',
        image_size=(896, 1152),
        expected=((386.176, 352.512, 511.616, 495.36),),
    ),
    Case(
        source=(
            "0-1 bbox_2d answers 'measured live' from a remote describer model (not named by the source) and recorded verbatim in a test suite (GitHub, "
            "code search id 68306764114, MEASURED t2i_002, "
            "832x1024); same 0-1 convention as Kimi-VL, x * width"
        ),
        text='{"bbox_2d": [0.387, 0.052, 0.777, 0.429]}',
        image_size=(832, 1024),
        expected=((321.984, 53.248, 646.464, 439.296),),
    ),
    Case(
        source=(
            "0-1 bbox_2d answers 'measured live' from a remote describer model (not named by the source) and recorded verbatim in a test suite (GitHub, "
            "code search id 68306764114, MEASURED t2i_003, "
            "1024x1024); same 0-1 convention as Kimi-VL, x * width"
        ),
        text='{"bbox_2d": [0.349,0.070,0.694,0.533]}',
        image_size=(1024, 1024),
        expected=((357.376, 71.68, 710.656, 545.792),),
    ),
)

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
        cases=CASES,
    )
)
