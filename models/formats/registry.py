"""The format registry: one :class:`Format` per way a model writes geometry.

A format module builds a :class:`Format` (name, aliases, coordinate :class:`Convention`,
the prompt that asks a model for it, its parser, the model names that print it, the
markers that betray it, and published :class:`Case` outputs) and passes it to
:func:`register`. :func:`parse_output` is the one entry other modules use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from georeason.errors import InputError
from georeason.geo.grounding.detections import Detection
from georeason.models.parsenotes import parse_warning

__all__ = [
    "Convention",
    "Case",
    "Format",
    "ParseResult",
    "register",
    "formats",
    "get_format",
    "normalize_format",
    "format_for_model",
    "detect_format",
    "choose_format",
    "parse_output",
    "format_table",
]


@dataclass(frozen=True)
class Convention:
    """How a format writes coordinates.

    ``scale`` is one of ``"pixels of the original image"``, ``"pixels of the resized
    model input"``, ``"0-1000"``, ``"0-999"``, ``"0-100"``, ``"0-1"``, ``"1024 bins"``,
    ``"1000 bins"``, ``"32x32 patch grid"``; ``order`` is ``"x-first"`` or ``"y-first"``;
    ``shapes`` lists what it can hold (``box``, ``rotated box``, ``polygon``, ``quad``,
    ``point``); ``to_pixels`` says how a value becomes a pixel of the original image.
    """

    scale: str
    order: str
    shapes: tuple[str, ...]
    to_pixels: str

    def key(self) -> tuple[str, str]:
        """Two formats read the same numbers the same way iff their keys are equal."""
        return (self.scale, self.order)


@dataclass(frozen=True)
class Case:
    """One model output and the boxes its source (or its documented post-processing) gives.

    ``expected`` holds ``(x1, y1, x2, y2)`` pixel bounds of the original image in the
    order the parser returns detections; ``real`` is False for constructed cases, which
    must say so in ``source``. ``warns`` are substrings the ParseWarnings must contain
    (e.g. the dropped value); ``options`` go to the parser (``input_size``, ``task``).
    """

    source: str
    text: Any
    image_size: tuple[int, int]
    expected: tuple[tuple[float, float, float, float], ...]
    labels: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    warns: tuple[str, ...] = ()
    real: bool = True


@dataclass(frozen=True)
class Format:
    """One output format: how to ask for it, how to read it, what it looks like."""

    name: str
    family: str
    convention: Convention
    prompt: str
    parse: Callable[..., list[Detection]]
    aliases: tuple[str, ...] = ()
    #: keyword options the parser takes besides ``label``
    options: tuple[str, ...] = ()
    #: regular expressions (searched, case-insensitive) on model names that print this format
    models: tuple[str, ...] = ()
    #: a regular expression whose match in the text suggests this format, and how specific it is
    marker: str | None = None
    specificity: int = 0
    cases: tuple[Case, ...] = ()
    #: another output form of the family of this format (``qwen3-html`` of ``qwen3``): a
    #: model name picks the family's main format unless this one's marker is in the text
    variant_of: str | None = None
    #: formats whose parsers also read this format's marked text, with a convention that
    #: gives other pixels (the base model decides which is right); when the text alone
    #: chose this format, ``auto`` says so (a ParseWarning naming them) and records them
    also_read_by: tuple[str, ...] = ()
    #: how to tell them apart, for that warning
    also_read_note: str = ""

    def example(self) -> str:
        """A short output of this format for the README: the first real case, else a constructed one (marked)."""
        for real in (True, False):
            for case in self.cases:
                if case.real == real and isinstance(case.text, str):
                    text = " ".join(case.text.split())
                    return text if real else f"(constructed) {text}"
        return ""


class ParseResult(list):  # type: ignore[type-arg]
    """A list of :class:`Detection` that also says which format read it, and why.

    ``format``: the format used (``None`` when auto-detection refused to guess);
    ``reason``: how it was chosen (named by the caller, by the model name, by a marker in
    the text); ``ambiguous``: other formats the text also fits, whose conventions give
    different pixels.
    """

    format: str | None
    reason: str
    ambiguous: tuple[str, ...]

    def __init__(
        self,
        detections: Sequence[Detection] = (),
        format: str | None = None,
        reason: str = "",
        ambiguous: tuple[str, ...] = (),
    ):
        super().__init__(detections)
        self.format = format
        self.reason = reason
        self.ambiguous = ambiguous

    @property
    def metadata(self) -> dict[str, Any]:
        return {"format": self.format, "reason": self.reason, "ambiguous": list(self.ambiguous)}


_REGISTRY: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}


def _canon(name: str) -> str:
    return re.sub(r"[\s_]+", "-", str(name).strip().lower())


def register(fmt: Format) -> Format:
    """Add a format (its name and aliases must be new)."""
    for n in (fmt.name, *fmt.aliases):
        c = _canon(n)
        if _ALIASES.get(c) == fmt.name:
            continue
        if c in _ALIASES or c == "auto":
            raise InputError(f"output format name {n!r} is already taken by {_ALIASES.get(c, 'auto')!r}")
        _ALIASES[c] = fmt.name
    _REGISTRY[fmt.name] = fmt
    return fmt


def formats() -> tuple[Format, ...]:
    """Every registered format, in registration order."""
    return tuple(_REGISTRY.values())


def normalize_format(fmt: str) -> str:
    """The canonical name of an output format, or ``"auto"``.

    Raises
    ------
    InputError
        ``fmt`` names no known format.

    Examples
    --------
    >>> from georeason.models.formats import normalize_format
    >>> normalize_format("Qwen2.5-VL"), normalize_format("florence-2"), normalize_format("qwen3_vl")
    ('qwen2.5', 'florence', 'qwen3')
    """
    c = _canon(fmt)
    if c == "auto":
        return "auto"
    for cand in (c, *(c[: -len(s)] for s in ("-vl", "vl") if c.endswith(s) and c != s)):
        cand = cand.rstrip("-")
        if cand in _ALIASES:
            return _ALIASES[cand]
    known = ", ".join([*_REGISTRY, "auto"])
    raise InputError(f"unknown model output format {fmt!r}; known: {known}")


def get_format(fmt: str) -> Format:
    """The :class:`Format` for a name or alias (not ``auto``)."""
    name = normalize_format(fmt)
    if name == "auto":
        raise InputError("'auto' is not one format; use detect_format or parse_output")
    return _REGISTRY[name]


def format_for_model(model: str) -> str | None:
    """The format a model (``Qwen/Qwen2.5-VL-7B-Instruct``, ``gemini-2.5-flash``) prints, if known.

    >>> from georeason.models.formats import format_for_model
    >>> format_for_model("Qwen/Qwen2.5-VL-7B-Instruct"), format_for_model("deepseek-ai/deepseek-vl2-tiny")
    ('qwen2.5', 'deepseek-vl2')
    >>> format_for_model("some/unknown-model") is None
    True
    """
    family = _model_family(model)
    return family[0] if family else None


def _model_family(model: str | None) -> tuple[str, ...]:
    """Every format the model's name matches best (its family: ``qwen3`` JSON, ``qwen3-html``...).

    The first is the family's default (registration order); the others are its other
    output forms, told apart by their markers in the text.
    """
    text = str(model or "")
    best = 0
    names: list[str] = []
    for f in _REGISTRY.values():
        found = [len(m.group(0)) for p in f.models if (m := re.search(p, text, re.IGNORECASE))]
        if not found:
            continue
        if max(found) > best:
            best, names = max(found), [f.name]
        elif max(found) == best:
            names.append(f.name)
    names.sort(key=lambda n: _REGISTRY[n].variant_of is not None)  # main formats first (stable)
    return tuple(names)


def choose_format(text: Any, model: str | None = None) -> tuple[str | None, str, tuple[str, ...]]:
    """``(format, reason, ambiguous)`` for a model answer: the format ``auto`` would use.

    The model name decides when it is known: its family's main format, or another form of
    the same family (``variant_of``, e.g. ``qwen3-html``) when that form's marker is in the
    text. Otherwise the most specific marker found in
    the text does; when several formats share it and read the same numbers differently
    (``bbox_2d`` JSON: Qwen2.5-VL resized-input pixels, Qwen3-VL 0-1000, Kimi-VL 0-1),
    the format is ``None`` (refused) unless the values themselves settle it (all in
    [0, 1] with fractions: only the 0-1 reading makes sense).
    """
    if model:
        family = _model_family(model)
        if len(family) > 1 and isinstance(text, str):
            marked = [
                _REGISTRY[n]
                for n in family[1:]
                if _REGISTRY[n].marker and re.search(_REGISTRY[n].marker or "", text, re.IGNORECASE)
            ]
            if marked:
                f = max(marked, key=lambda g: g.specificity)
                return (
                    f.name,
                    f"model {model!r} prints {family[0]}, and {f.name} when its marker is in the text",
                    (),
                )
        if family:
            return family[0], f"model {model!r} prints {family[0]}", ()
    if isinstance(text, Mapping):
        return "florence", "a dict: Florence-2's post_process_generation result", ()
    if not isinstance(text, str):
        return "plain", f"not text ({type(text).__name__})", ()
    hits = [
        f
        for f in _REGISTRY.values()
        if f.marker and f.specificity > 0 and re.search(f.marker, text, re.IGNORECASE)
    ]
    if not hits:
        if _PAIRS_RE.search(text):
            return (
                "plain",
                "no format marker; '(x1,y1),(x2,y2)' pairs read as pixels, but Qwen2-VL or Qwen-VL text "
                "decoded without its special tokens means 0-1000 (name the format if so)",
                ("qwen2", "qwen-vl"),
            )
        return "plain", "no format marker in the text: plain number lists", ()
    top = max(f.specificity for f in hits)
    best = [f for f in hits if f.specificity == top]
    if len(best) == 1:
        f = best[0]
        reason = f"marker {f.marker!r} of {f.name} in the text"
        if f.also_read_by:
            reason += f"; {', '.join(f.also_read_by)} would read it differently: {f.also_read_note}"
        return f.name, reason, f.also_read_by
    names = tuple(f.name for f in best)
    if len({f.convention.key() for f in best}) == 1:
        return best[0].name, f"marker shared by {', '.join(names)}, which read it alike", ()
    unit = [f for f in best if f.convention.scale == "0-1"]
    if unit and _all_unit_fractions(text):
        others = tuple(n for n in names if n != unit[0].name)
        return (
            unit[0].name,
            f"{', '.join(names)} share the marker; every coordinate lies in [0, 1] with fractions, "
            f"which only {unit[0].name}'s 0-1 convention reads as a real box",
            others,
        )
    return None, f"{', '.join(names)} share the marker but map it to different pixels", names


_PAIRS_RE = re.compile(
    r"\(\s*\d+(?:\.\d+)?\s*,\s*\d+(?:\.\d+)?\s*\)\s*,\s*\(\s*\d+(?:\.\d+)?\s*,\s*\d+(?:\.\d+)?\s*\)"
)


def _all_unit_fractions(text: str) -> bool:
    lists = re.findall(r"\[\s*([-+.\deE]+(?:\s*,\s*[-+.\deE]+){1,3})\s*\]", text)
    vals: list[float] = []
    for inner in lists:
        try:
            vals += [float(v) for v in inner.split(",")]
        except ValueError:
            return False
    return bool(vals) and all(0.0 <= v <= 1.0 for v in vals) and any(v != int(v) for v in vals)


def detect_format(text: Any, model: str | None = None) -> str | None:
    """The format ``auto`` would use for a text (``None``: ambiguous, name the model).

    >>> from georeason.models.formats import detect_format
    >>> detect_format('[{"box_2d": [1, 2, 3, 4]}]'), detect_format("car<loc_1><loc_2><loc_3><loc_4>")
    ('gemini', 'florence')
    >>> detect_format('[{"bbox_2d": [10, 20, 30, 40]}]') is None    # Qwen2.5 or Qwen3 or Kimi?
    True
    >>> detect_format('[{"bbox_2d": [10, 20, 30, 40]}]', model="Qwen/Qwen3-VL-8B-Instruct")
    'qwen3'
    """
    return choose_format(text, model)[0]


def parse_output(
    text: Any,
    fmt: str,
    image_size: tuple[int, int],
    *,
    model: str | None = None,
    **kw: Any,
) -> ParseResult:
    """Detections from a model answer, by format name; ``fmt="auto"`` chooses one.

    ``kw`` goes to the parser (``label``; ``input_size`` for formats in pixels of the
    resized input; ``task`` for Florence-2). With ``auto``, the format comes from
    ``model`` (a model name) when given, else from markers in the text
    (:func:`choose_format`); keywords the chosen parser does not take are ignored. The
    result records the format and the reason (:attr:`ParseResult.metadata`); a choice
    between formats that give different pixels is never made silently: when the text and
    the model name cannot settle it, nothing is parsed and a ParseWarning says which
    formats were possible and how to name one.

    Raises
    ------
    InputError
        ``fmt`` names no format, or the image size is not two positive integers.

    Examples
    --------
    >>> from georeason.models.formats import parse_output
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):  # auto warns: r1 would read it on 0-1000
    ...     r = parse_output("<answer>[5, 5, 20, 30]</answer>", "auto", (64, 64))
    >>> [d.geometry.bounds for d in r], r.format, r.ambiguous
    ([(5.0, 5.0, 20.0, 30.0)], 'remotereasoner', ('r1',))
    """
    name = normalize_format(fmt)
    if name != "auto":
        f = _REGISTRY[name]
        return ParseResult(f.parse(text, image_size, **kw), f.name, f"named by the caller ({fmt!r})")
    chosen, reason, ambiguous = choose_format(text, model)
    if chosen is None:
        from georeason.models.formats.core import check_size

        check_size(image_size)
        parse_warning(
            f"auto: refused to guess the output format: {reason}. Name it with format="
            f"{'|'.join(ambiguous)} or give the model name",
            stacklevel=2,
        )
        return ParseResult([], None, f"refused: {reason}", ambiguous)
    f = _REGISTRY[chosen]
    accepted = {"label", *f.options}
    kw = {k: v for k, v in kw.items() if k in accepted}
    if ambiguous:
        parse_warning(f"auto: read the output as {chosen}: {reason}", stacklevel=2)
    return ParseResult(f.parse(text, image_size, **kw), chosen, f"auto: {reason}", ambiguous)


def format_table() -> str:
    """The README's table of formats (Markdown), generated from the registry."""
    rows = [
        "| format (aliases) | family | coordinates | order | shapes | to pixels | example output |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in _REGISTRY.values():
        c = f.convention
        names = f"`{f.name}`" + (f" ({', '.join(f'`{a}`' for a in f.aliases)})" if f.aliases else "")
        ex = f.example()
        if len(ex) > 80:
            ex = ex[:77] + "..."
        cells = [
            names,
            f.family,
            c.scale,
            c.order,
            ", ".join(c.shapes),
            c.to_pixels,
            f"`{ex.replace('`', chr(39))}`",
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
