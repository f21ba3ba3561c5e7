"""Model text -> pixel-space detections: one module per grounding output format.

Every format module registers a :class:`Format` (name and aliases, coordinate
:class:`Convention`, the prompt that asks a model for it, its parser, the model names
that print it, and published real outputs as test :class:`Case` objects). Parsers take the
raw text a model generated (or, for Florence-2, the dict ``post_process_generation``
returns) and the ``(width, height)`` of the *original* tile image, and return
:class:`~georeason.geo.grounding.detections.Detection` objects in that image's pixel
``(col, row)`` coordinates (corner convention: ``(0, 0)`` is the top-left corner of the
first pixel).

Parsers never raise on model text: whatever cannot be used (garbage, truncated or broken
JSON, impossible values, five-number boxes, swapped corners, boxes outside the image) is
repaired or dropped, each time with a :class:`~georeason.errors.ParseWarning` naming it;
whole objects of a broken list are kept. Only a wrong *argument* (image size, unknown
format or Florence task) raises :class:`~georeason.errors.InputError`.

Adding a format is one module: write its parser, build a :class:`Format` with its cases,
``register`` it, and import the module below.
"""

from __future__ import annotations

from georeason.models.formats import (  # noqa: F401  (each module registers its format)
    deepseek_vl2,
    earthdial,
    florence,
    gemini,
    geochat,
    internvl,
    kimi_vl,
    kosmos2,
    paligemma,
    plain,
    qwen2,
    qwen3,
    qwen3_html,
    qwen25,
    qwen25_html,
    qwen_vl,
    r1,
    remotereasoner,
)
from georeason.models.formats.florence import FLORENCE_TASKS, parse_florence
from georeason.models.formats.geochat import parse_geochat
from georeason.models.formats.plain import parse_boxes
from georeason.models.formats.qwen2 import parse_qwen2_boxes
from georeason.models.formats.qwen3 import parse_qwen3
from georeason.models.formats.qwen25 import parse_qwen25
from georeason.models.formats.registry import (
    Case,
    Convention,
    Format,
    ParseResult,
    choose_format,
    detect_format,
    format_for_model,
    format_table,
    formats,
    get_format,
    normalize_format,
    parse_output,
    register,
)
from georeason.models.formats.remotereasoner import parse_remotereasoner
from georeason.models.formats.resize import smart_resize

#: Format names accepted by :func:`parse_output` (``"auto"`` chooses one of the others).
FORMATS: tuple[str, ...] = (*(f.name for f in formats()), "auto")

__all__ = [
    "FORMATS",
    "FLORENCE_TASKS",
    "Case",
    "Convention",
    "Format",
    "ParseResult",
    "choose_format",
    "detect_format",
    "format_for_model",
    "format_table",
    "formats",
    "get_format",
    "normalize_format",
    "parse_output",
    "register",
    "smart_resize",
    "parse_qwen25",
    "parse_qwen3",
    "parse_qwen2_boxes",
    "parse_remotereasoner",
    "parse_florence",
    "parse_geochat",
    "parse_boxes",
]
