"""InternVL (2 / 2.5 / 3) and its fine-tunes: ``<ref>label</ref><box>[[x1, y1, x2, y2]]</box>``, 0..1000.

InternVL's grounding evaluation and demo map ``x / 1000 * width``. Not every InternVL
fine-tune keeps this form: EarthDial answers in GeoChat-style ``[[x1, y1, x2, y2, θ]]``
on 0..100 (its own format, ``earthdial``).
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard
from georeason.models.formats.qwen_vl import parse_ref_boxes
from georeason.models.formats.registry import Case, Convention, Format, register

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


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "CONSTRUCTED after InternVL's documented grounding answer '<ref>..</ref><box>[[x1, y1, "
            "x2, y2]]</box>' (0-1000, "
            "evaluate_grounding.py divides by 1000); no published raw model answer found"
        ),
        text="<ref>tiger</ref><box>[[81, 160, 912, 870]]</box>",
        image_size=(1024, 683),
        expected=((82.944, 109.28, 933.888, 594.21),),
        labels=("tiger",),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: several boxes in one <box>, the shape InternVL's detection answers use",
        text="<ref>car</ref><box>[[10, 20, 110, 220], [500, 500, 600, 700]]</box>",
        image_size=(1000, 500),
        expected=((10, 10, 110, 110), (500, 250, 600, 350)),
        labels=("car", "car"),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: prose around the answer and a value of 1000 (the far edge)",
        text="The <ref>lake</ref><box>[[0, 250, 1000, 1000]]</box> covers the lower part.",
        image_size=(640, 480),
        expected=((0, 120, 640, 480),),
        labels=("lake",),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="internvl",
        family="InternVL 2 / 2.5 / 3 (and fine-tunes that keep its grounding form)",
        aliases=("internvl2", "internvl2.5", "internvl3"),
        convention=Convention("0-1000", "x-first", ("box",), "x * width / 1000"),
        prompt="Please provide the bounding box coordinate of the region this sentence describes: <ref>{label}</ref>",
        parse=parse_internvl,
        models=(r"internvl",),
        marker=r"<box>\s*\[",
        specificity=70,
        cases=CASES,
    )
)
