"""Gemini: JSON ``box_2d`` = ``[ymin, xmin, ymax, xmax]`` on 0..1000, **y first**.

Google's "Bounding box detection" guide and the Gemini cookbook's spatial-understanding
notebook convert with ``ymin / 1000 * height``, ``xmin / 1000 * width``; 1000 is a valid
value (the far edge). Points (``"point": [y, x]``) are y-first on 0..1000 too. Gemini often
writes prose before and after a fenced ``json`` block; both are skipped.
"""

from __future__ import annotations

from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    Builder,
    as_text,
    check_size,
    guard,
    json_items,
    json_objects,
    nothing,
)
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_gemini", "FORMAT"]

_Y_FIRST_BOX = ("box_2d", "bbox_2d", "bbox", "box")
_Y_FIRST_POINT = ("point", "point_2d")


def _swap(value: Any, n: int) -> Any:
    """``[y1, x1, y2, x2]`` -> ``[x1, y1, x2, y2]`` (and ``[y, x]`` -> ``[x, y]``), nested lists too."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [_swap(v, n) for v in value]
    if isinstance(value, list) and len(value) == n:
        return [value[1], value[0], value[3], value[2]] if n == 4 else [value[1], value[0]]
    return value  # wrong length: the builder drops it with a warning


def _x_first(item: Any) -> Any:
    if isinstance(item, list):
        if len(item) in (2, 4) and not any(isinstance(v, (list, dict)) for v in item):
            return _swap(item, len(item))
        return [_x_first(v) for v in item]
    if not isinstance(item, dict):
        return item
    out = {}
    for k, v in item.items():
        lk = str(k).lower()
        if lk in _Y_FIRST_BOX:
            out["bbox_2d"] = _swap(v, 4)
        elif lk in _Y_FIRST_POINT:
            out["point_2d"] = _swap(v, 2)
        elif isinstance(v, (dict, list)) and lk not in ("names",):
            out[k] = _x_first(v)
        else:
            out[k] = v
    return out


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    items = json_items(text, b)
    if items is None:
        nothing(b, text)
        return b.out
    json_objects([_x_first(it) for it in items], b)
    return b.out


def parse_gemini(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Gemini's ``[{"box_2d": [ymin, xmin, ymax, xmax], "label": ..}]`` (0..1000).

    Examples
    --------
    >>> out = 'Here you go:\\n```json\\n[{"box_2d": [100, 250, 500, 1000], "label": "lake"}]\\n```\\nDone.'
    >>> [(d.label, d.geometry.bounds) for d in parse_gemini(out, (2000, 400))]
    [('lake', (500.0, 40.0, 2000.0, 200.0))]
    """
    size = check_size(image_size)
    w, h = size
    return guard(
        "gemini",
        _parse,
        text,
        Builder("gemini", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0, limit=1000),
    )


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "google-gemini/cookbook quickstarts/Spatial_understanding.ipynb @ 0f26ec88 (gemini-2.0-flash, "
            "'Socks.jpg'; the cell prints the image size (640, "
            "482)); boxes by the notebook's plot_bounding_boxes: int(y / 1000 * height), "
            "int(x / 1000 * width)"
        ),
        text=(
            '```json\n[\n  {"box_2d": [53, 248, 388, 527], "label": "sock with face"},\n'
            '  {"box_2d": [236, 662, 653, 862], "label": "sock with face"}\n]\n```'
        ),
        image_size=(640, 482),
        expected=((158, 25, 337, 187), (423, 113, 551, 314)),
        labels=("sock with face", "sock with face"),
    ),
    Case(
        source=(
            "google-gemini/cookbook quickstarts/Spatial_understanding.ipynb @ 0f26ec88 ('Spill.jpg', "
            "prose before and after the fenced JSON, "
            "a value of 1000; the plotting cell prints (640, 480)); same post-processing"
        ),
        text=(
            'Here are the bounding box detections:\n```json\n[\n  {"box_2d": [447, 0, 1000, 418], '
            '"label": "pink cloth"},\n  {"box_2d": [197, 300, 510, 514], "label": "sugar bowl"},\n'
            '  {"box_2d": [433, 607, 664, 871], "label": "spill"},\n  {"box_2d": [0, 465, 325, '
            '807], "label": "sugar container"}\n]\n```\nHere\'s how to clean the table:\n\n'
            "1.  **Grab the pink cloth**: Use the pink cloth to wipe up the spill.\n"
            "2.  **Wipe the spill**: Gently wipe the spill, "
            "starting from the outside and working your way inward to prevent spreading it further.\n"
            "3.  **Clean the area**: Once you've removed the majority of the spill, use a clean, "
            "damp cloth or sponge with a mild dish soap to clean the affected area.\n"
            "4.  **Rinse**: Rinse the area with a clean, damp cloth to remove any soap residue.\n"
            "5.  **Dry**: Dry the surface thoroughly with a clean towel.\n"
        ),
        image_size=(640, 480),
        expected=((0, 214, 267, 480), (192, 94, 328, 244), (388, 207, 557, 318), (297, 0, 516, 156)),
        labels=("pink cloth", "sugar bowl", "spill", "sugar container"),
    ),
    Case(
        source=(
            "google-gemini/cookbook quickstarts/Spatial_understanding.ipynb @ 07c72f7f (gemini-2.5-flash, "
            "thinking_budget=0, 'Socks.jpg', printed size (640, 482)); same post-processing"
        ),
        text=(
            '```json\n[\n  {"box_2d": [46, 246, 385, 526], '
            '"label": "light blue sock with cat face on left"},\n  {"box_2d": [233, 661, 650, '
            '862], "label": "light blue and grey sock with cat face on right"}\n]\n```'
        ),
        image_size=(640, 482),
        expected=((157, 22, 336, 185), (423, 112, 551, 313)),
    ),
)

FORMAT = register(
    Format(
        name="gemini",
        family="Google Gemini 2.x (API, Vertex AI)",
        aliases=("gemini-2", "box-2d", "box_2d"),
        convention=Convention(
            "0-1000", "y-first", ("box", "point"), "ymin * height / 1000, xmin * width / 1000"
        ),
        prompt="Detect every {label} in the image. Output a JSON list where each entry contains the 2D "
        'bounding box in "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 and a text label in "label".',
        parse=parse_gemini,
        models=(r"gemini",),
        marker=r"\"box_2d\"|'box_2d'",
        specificity=60,
        cases=CASES,
    )
)
