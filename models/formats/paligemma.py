"""PaliGemma / PaliGemma 2: four ``<locYYYY>`` tokens per box, **y first**, 1024 bins, then the label.

``<loc0256><loc0128><loc0768><loc0896> car ; <loc...> ...``: ``ymin, xmin, ymax, xmax``,
each an integer 0..1023; the big_vision / Hugging Face examples map ``y / 1024 * height``
and ``x / 1024 * width``. Segmentation answers add 16 ``<segNNN>`` tokens after the box
(ignored here: the box is kept).
"""

from __future__ import annotations

import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, as_text, check_size, guard, nothing
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_paligemma", "FORMAT"]

_DET_RE = re.compile(r"((?:<loc\d+>\s*)+)((?:<seg\d+>\s*)*)([^<;]*)")
_LOC_RE = re.compile(r"<loc(\d+)>")


def _parse(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    n = 0
    for m in _DET_RE.finditer(text):
        locs = [int(v) for v in _LOC_RE.findall(m.group(1))]
        lab = m.group(3).strip() or None
        for i in range(0, len(locs) - len(locs) % 4, 4):
            n += 1
            y1, x1, y2, x2 = locs[i : i + 4]
            b.box([x1, y1, x2, y2], f"box {n}" + (f" ({lab!r})" if lab else ""), lab)
        if len(locs) % 4:
            b.warn(f"dropped {len(locs) % 4} stray <loc> token(s) before {lab or 'the end'!r}")
    if n == 0 and not re.search(r"<loc\d+>", text):
        nothing(b, text)
    return b.out


def parse_paligemma(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from PaliGemma ``<locYYYY>`` x4 + label (y first, 1024 bins: ``v / 1024 * side``).

    Examples
    --------
    >>> d, = parse_paligemma("<loc0256><loc0512><loc0768><loc1023> cloud", (1024, 512))
    >>> d.label, d.geometry.bounds
    ('cloud', (512.0, 128.0, 1023.0, 384.0))
    """
    size = check_size(image_size)
    w, h = size
    return guard(
        "paligemma",
        _parse,
        text,
        Builder("paligemma", size, label, lambda v: v * w / 1024.0, lambda v: v * h / 1024.0, limit=1023),
    )


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "huggingface/transformers tests/models/paligemma/test_modeling_paligemma.py, "
            "test_integration_detection_bug ('detect shoe', "
            "google/paligemma-3b-pt-224); no image size in the test, "
            "scaled to the 224x224 model input with the big_vision convention y / 1024 * height"
        ),
        text="detect shoe\n<loc0051><loc0309><loc0708><loc0646> shoe",
        image_size=(224, 224),
        expected=((67.594, 11.156, 141.312, 154.875),),
        labels=("shoe",),
    ),
    Case(
        source=(
            "modelscope/ms-swift tests (test_paligemma: 'detect cat' on AI-ModelScope/paligemma-3b-mix-224, "
            "asserted response); scaled to 224x224"
        ),
        text="<loc0000><loc0000><loc1022><loc1022> cat",
        image_size=(224, 224),
        expected=((0, 0, 223.562, 223.562),),
        labels=("cat",),
    ),
    Case(
        source=(
            "PaliGemma2 grounding log published in a project's notes (GitHub, "
            "code search id 60907638702: raw_output '<loc0000><loc0000><loc1011><loc1022> "
            "gray basket<eos>', image 224x224)"
        ),
        text="<loc0000><loc0000><loc1011><loc1022> gray basket<eos>",
        image_size=(224, 224),
        expected=((0, 0, 223.562, 221.156),),
        labels=("gray basket",),
    ),
)

FORMAT = register(
    Format(
        name="paligemma",
        family="PaliGemma, PaliGemma 2 (mix / detection fine-tunes)",
        aliases=("paligemma2", "pali-gemma", "loc-tokens"),
        convention=Convention("1024 bins", "y-first", ("box",), "ymin / 1024 * height, xmin / 1024 * width"),
        prompt="detect {label}",
        parse=parse_paligemma,
        models=(r"pali-?gemma",),
        marker=r"<loc\d{4}>",
        specificity=80,
        cases=CASES,
    )
)
