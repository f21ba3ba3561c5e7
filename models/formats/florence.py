"""Florence-2: ``<loc_N>`` tokens, 1000 bins per side, read at the bin centre.

Sources: Florence-2's ``CoordinatesQuantizer`` (mode ``floor``, 1000 bins) quantises
with ``floor(x / (size / 1000))`` and dequantises to the bin centre
``(N + 0.5) * size / 1000`` (transformers ``processing_florence2.py``); we keep the float
centre, where recent transformers truncate it to an integer (under 1 px apart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from georeason.errors import InputError
from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, as_text, check_size, guard, nothing, short
from georeason.models.formats.registry import Convention, Format, register

__all__ = ["FLORENCE_TASKS", "parse_florence", "guess_florence_task", "FORMAT"]

_BOX_TASKS = (
    "<OD>",
    "<CAPTION_TO_PHRASE_GROUNDING>",
    "<OPEN_VOCABULARY_DETECTION>",
    "<DENSE_REGION_CAPTION>",
    "<REGION_PROPOSAL>",
)
_POLYGON_TASKS = ("<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>")
_QUAD_TASKS = ("<OCR_WITH_REGION>",)
#: Florence-2 tasks :func:`parse_florence` understands.
FLORENCE_TASKS = _BOX_TASKS + _POLYGON_TASKS + _QUAD_TASKS


_FLORENCE_TOKEN_RE = re.compile(r"<loc_(\d+)>|(<sep>|<poly>|</poly>)|(<[^<>]*>)|([^<]+)|(<)")


def _norm_task(task: Any) -> str:
    t = str(task).strip().upper()
    if not t.startswith("<"):
        t = f"<{t}>"
    if t not in FLORENCE_TASKS:
        raise InputError(f"unsupported Florence-2 task {task!r}; supported: {', '.join(FLORENCE_TASKS)}")
    return t


def _florence_text(text: str, task: str, b: Builder) -> None:
    text = text.replace("<s>", "").replace("</s>", "").replace("<pad>", "")
    # groups: (phrase, instances); an instance is a list of rings, a ring a list of bins
    groups: list[tuple[str | None, list[list[list[int]]], bool]] = []
    phrase: str | None = None
    cur: list[list[list[int]]] | None = None
    marked = False  # <poly>/<sep> seen in the current group

    def close():
        nonlocal cur, marked
        if cur is not None and any(r for inst in cur for r in inst):
            groups.append((phrase, cur, marked))
        cur, marked = None, False

    for m in _FLORENCE_TOKEN_RE.finditer(text):
        loc, mark, _tag, words, _lt = m.groups()
        if words is not None:
            if words.strip():
                close()
                phrase = words.strip()
            continue
        if loc is not None:
            if cur is None:
                cur = [[[]]]
            cur[-1][-1].append(int(loc))
        elif mark is not None:
            if cur is None:
                cur = [[[]]]
            marked = True
            if mark == "<sep>":
                cur[-1].append([])
            elif mark == "<poly>":
                if any(cur[-1]):
                    cur.append([[]])
    close()
    if not groups:
        nothing(b, text)
        return
    polygon_task = task in _POLYGON_TASKS
    nbox = npoly = 0
    for phrase, instances, has_marks in groups:
        for inst in instances:
            rings = [r for r in inst if r]
            if not rings:
                continue
            if polygon_task or has_marks:
                npoly += 1
                b.polygon(rings, f"polygon {npoly}", phrase)
                continue
            bins = [v for r in rings for v in r]
            if task in _QUAD_TASKS:  # a text line: x1, y1, ..., x4, y4
                for i in range(0, len(bins) - len(bins) % 8, 8):
                    npoly += 1
                    b.polygon([bins[i : i + 8]], f"quad {npoly}", phrase)
                if len(bins) % 8:
                    b.warn(f"dropped {len(bins) % 8} stray <loc_> token(s) after {phrase or 'a quad'!r}")
                continue
            for i in range(0, len(bins) - len(bins) % 4, 4):
                nbox += 1
                b.box(bins[i : i + 4], f"box {nbox}", phrase)
            if len(bins) % 4:
                b.warn(f"dropped {len(bins) % 4} stray <loc_> token(s) after {phrase or 'a box'!r}")


def _florence_dict(result: Mapping, task: str, b: Builder) -> None:
    inner: Any = result
    keys = [k for k in result if isinstance(k, str) and k.strip().startswith("<")]
    if len(keys) == 1:
        inner = result[keys[0]]
        key_task = keys[0].strip().upper()
        if isinstance(inner, str):  # {"<OD>": "car<loc_1>..."}: raw text under the task key
            _florence_text(inner, key_task if key_task in FLORENCE_TASKS else task, b)
            return
    if not isinstance(inner, Mapping):
        b.warn(f"dropped Florence-2 result {short(repr(result))}: expected {{task: {{'bboxes': ..}}}}")
        return
    bboxes, polys, scores = inner.get("bboxes"), inner.get("polygons"), inner.get("scores")
    quads = inner.get("quad_boxes")
    if isinstance(quads, (list, tuple)):
        qlabels = inner.get("labels")
        for k, q in enumerate(quads):
            lab = qlabels[k] if isinstance(qlabels, (list, tuple)) and k < len(qlabels) else None
            if isinstance(lab, str):
                lab = lab.replace("</s>", "").replace("<s>", "").strip()
            if isinstance(q, (list, tuple)) and len(q) == 8:
                b.polygon([list(q)], f"quad {k + 1}", lab, mapped=True)
            else:
                b.warn(f"quad {k + 1}: dropped {q!r}: expected 8 numbers x1, y1, ..., x4, y4")
        if not isinstance(bboxes, (list, tuple)) and not isinstance(polys, (list, tuple)):
            return
    if not isinstance(bboxes, (list, tuple)) and not isinstance(polys, (list, tuple)):
        b.warn(f"dropped Florence-2 result {short(repr(dict(inner)))}: no 'bboxes' or 'polygons'")
        return
    if not bboxes and not polys:
        b.warn("Florence-2 result has no boxes or polygons; no detections")
        return
    labels = inner.get("bboxes_labels", inner.get("labels"))
    for k, bx in enumerate(bboxes or []):
        tag = f"box {k + 1}"
        lab = labels[k] if isinstance(labels, (list, tuple)) and k < len(labels) else None
        sc = b.score(scores[k], tag) if isinstance(scores, (list, tuple)) and k < len(scores) else 1.0
        if isinstance(bx, (list, tuple)):
            b.box(bx, tag, lab, sc, mapped=True)
        else:
            b.warn(f"{tag}: dropped {bx!r}: expected 4 numbers")
    labels = inner.get("polygons_labels", inner.get("labels"))
    for k, inst in enumerate(polys or []):
        tag = f"polygon {k + 1}"
        lab = labels[k] if isinstance(labels, (list, tuple)) and k < len(labels) else None
        if isinstance(inst, (list, tuple)) and inst and not any(isinstance(v, (list, tuple)) for v in inst):
            inst = [inst]  # one flat polygon instead of a list of them
        if not isinstance(inst, (list, tuple)) or not inst:
            b.warn(f"{tag}: dropped {inst!r}: expected a list of [x, y, x, y, ...] polygons")
            continue
        b.polygon(list(inst), tag, lab, mapped=True)


def _parse_florence(text_or_dict: Any, task: str, b: Builder) -> list[Detection]:
    if isinstance(text_or_dict, Mapping):
        _florence_dict(text_or_dict, task, b)
        return b.out
    text = as_text(text_or_dict, b.fmt)
    if text is None:
        return []
    _florence_text(text, task, b)
    return b.out


def parse_florence(
    text_or_dict: str | Mapping, task: str, image_size: tuple[int, int], label: str | None = None
) -> list[Detection]:
    """Detections from Florence-2 output: raw ``<loc_N>`` text or the post-processed dict.

    Raw text: each location token ``<loc_N>`` (N in 0..999) is the centre of bin N of
    1000 equal bins over the side, ``(N + 0.5) * size / 1000`` (Florence-2's
    ``floor``-mode quantiser). Box tasks (``<OD>``, ``<CAPTION_TO_PHRASE_GROUNDING>``,
    ``<OPEN_VOCABULARY_DETECTION>``, ``<DENSE_REGION_CAPTION>``, ``<REGION_PROPOSAL>``):
    a phrase followed by four tokens per box, possibly several boxes per phrase.
    Polygon tasks (``<REFERRING_EXPRESSION_SEGMENTATION>``, ``<REGION_TO_SEGMENTATION>``):
    ``x, y`` token pairs; ``<sep>`` separates the polygons of one object, ``<poly>..</poly>``
    delimits objects; each object is one detection (a MultiPolygon when it has several
    parts). Groups marked with ``<poly>``/``<sep>`` are polygons in any task.

    A dict (``processor.post_process_generation``'s result, ``{task: {...}}`` or the
    inner dict) is read as pixels of the image already: ``bboxes`` with ``labels`` or
    ``bboxes_labels``, ``polygons`` (per object, a list of flat ``[x, y, ...]`` lists)
    with ``labels`` or ``polygons_labels``. Empty labels fall back to ``label``.

    Raises
    ------
    InputError
        ``task`` is not one of :data:`FLORENCE_TASKS` (a caller error, not model text).

    Examples
    --------
    >>> out = "</s><s>car<loc_52><loc_333><loc_932><loc_774>door handle<loc_1><loc_2><loc_3><loc_4></s>"
    >>> [(d.label, d.geometry.bounds) for d in parse_florence(out, "<OD>", (1000, 1000))]
    [('car', (52.5, 333.5, 932.5, 774.5)), ('door handle', (1.5, 2.5, 3.5, 4.5))]
    """
    size = check_size(image_size)
    t = _norm_task(task)
    w, h = size
    return guard(
        "florence",
        _parse_florence,
        text_or_dict,
        t,
        Builder("florence", size, label, lambda v: (v + 0.5) * w / 1000.0, lambda v: (v + 0.5) * h / 1000.0),
    )


def guess_florence_task(text: Any) -> str:
    """The Florence-2 task a result most likely answers (a dict's key; ``<poly>`` marks; else ``<OD>``)."""
    if isinstance(text, Mapping):
        for k in text:
            if isinstance(k, str) and k.strip().upper() in FLORENCE_TASKS:
                return k.strip().upper()
        if "quad_boxes" in text:
            return "<OCR_WITH_REGION>"
        return "<OD>"
    s = str(text)
    if "<poly>" in s or "<sep>" in s:
        return "<REFERRING_EXPRESSION_SEGMENTATION>"
    words = re.sub(r"<[^<>]*>", "", s).strip()
    if not words and len(re.findall(r"<loc_\d+>", s)) > 4:
        return "<REFERRING_EXPRESSION_SEGMENTATION>"
    return "<OD>"


def _parse(
    text: Any, image_size: tuple[int, int], task: str | None = None, label: str | None = None
) -> list[Detection]:
    return parse_florence(text, task or guess_florence_task(text), image_size, label=label)


def _parse_ocr(text: Any, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    return parse_florence(text, "<OCR_WITH_REGION>", image_size, label=label)


FORMAT = register(
    Format(
        name="florence",
        family="Florence-2 (detection, grounding, segmentation tasks)",
        aliases=("florence2", "florence-2"),
        convention=Convention(
            "1000 bins",
            "x-first",
            ("box", "polygon"),
            "(N + 0.5) * width / 1000 (bin centre)",
        ),
        prompt="<OPEN_VOCABULARY_DETECTION>{label}",
        parse=_parse,
        options=("task",),
        models=(r"florence-?2",),
        marker=r"<loc_\d+>",
        specificity=80,
        cases=(),
    )
)

OCR_FORMAT = register(
    Format(
        name="florence-ocr",
        family="Florence-2 <OCR_WITH_REGION> (text lines as quadrilaterals)",
        aliases=("florence-ocr-with-region", "ocr-with-region"),
        convention=Convention(
            "1000 bins",
            "x-first",
            ("quad",),
            "(N + 0.5) * width / 1000; 8 tokens x1,y1,...,x4,y4 per text line",
        ),
        prompt="<OCR_WITH_REGION>",
        parse=_parse_ocr,
        cases=(),
    )
)
