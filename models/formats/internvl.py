"""InternVL (2 / 2.5 / 3) and its fine-tunes (EarthDial...): ``<ref>label</ref><box>[[x1, y1, x2, y2]]</box>``, 0..1000.

InternVL's grounding evaluation and demo map ``x / 1000 * width``.
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard
from georeason.models.formats.qwen_vl import parse_ref_boxes
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["parse_internvl", "FORMAT"]


def parse_internvl(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from InternVL ``<ref>..</ref><box>[[x1, y1, x2, y2], ...]</box>`` (0..1000).

    Examples
    --------
    >>> out = "<ref>Quick & Easy</ref><box>[[125, 261, 199, 312]]</box>"
    >>> [(d.label, d.geometry.bounds) for d in parse_internvl(out, (2000, 1000))]
    [('Quick & Easy', (250.0, 261.0, 398.0, 312.0))]
    """
    size = check_size(image_size)
    w, h = size
    b = Builder("internvl", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0, limit=1000)
    return guard("internvl", parse_ref_boxes, text, b, False)


FORMAT = register(
    Format(
        name="internvl",
        family="InternVL 2 / 2.5 / 3 and fine-tunes (EarthDial, GeoGround...)",
        aliases=("internvl2", "internvl2.5", "internvl3", "earthdial"),
        convention=Convention("0-1000", "x-first", ("box",), "x * width / 1000"),
        prompt="Please provide the bounding box coordinate of the region this sentence describes: <ref>{label}</ref>",
        parse=parse_internvl,
        models=(r"internvl", r"earthdial"),
        marker=r"<box>\s*\[",
        specificity=70,
        cases=(),
    )
)
