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
from georeason.models.formats.core import Builder, as_text, check_size, guard, nothing, short, warn
from georeason.models.formats.registry import Case, Convention, Format, register

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
    if task is None:
        task = guess_florence_task(text)
        if task == "<OD>" and isinstance(text, str) and _looks_like_quads(text):
            warn(
                "florence: guessed the task <OD> (no task given), but every run of <loc_> tokens "
                "holds a multiple of 8, which <OCR_WITH_REGION> reads as text quads, not pairs of "
                "boxes: pass task= (or format='florence-ocr')"
            )
    return parse_florence(text, task, image_size, label=label)


def _looks_like_quads(text: str) -> bool:
    runs = [len(re.findall(r"<loc_\d+>", r)) for r in re.findall(r"(?:<loc_\d+>)+", text)]
    return bool(runs) and all(n % 8 == 0 for n in runs)


def _parse_ocr(text: Any, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    return parse_florence(text, "<OCR_WITH_REGION>", image_size, label=label)


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "huggingface/transformers tests/models/florence2/test_modeling_florence2.py, "
            "test_base_model_batching_inference_sdpa: '<OD>' on the car image (640x480); expected = the test's EXPECTED_PARSED_ANSWER (post_process_generation, "
            "bin centres truncated to int)"
        ),
        text="</s><s>car<loc_53><loc_333><loc_933><loc_774>door handle<loc_425><loc_503><loc_474><loc_515>wheel<loc_709><loc_576><loc_865><loc_772><loc_150><loc_584><loc_309><loc_773></s><pad><pad><pad>",
        image_size=(640, 480),
        expected=((34, 160, 597, 371), (272, 241, 303, 247), (454, 276, 553, 370), (96, 280, 198, 371)),
        labels=("car", "door handle", "wheel", "wheel"),
        options={"task": "<OD>"},
    ),
    Case(
        source=(
            "huggingface/transformers tests/models/florence2/test_modeling_florence2.py, "
            "test_large_model_batching_inference_eager: '<REGION_PROPOSAL>' on the street image; size 1300x876 recovered from the parsed answer (loc_999 -> "
            "1299, loc_675 -> 591); expected = EXPECTED_PARSED_ANSWER_0"
        ),
        text="</s><s><s><s><loc_0><loc_0><loc_999><loc_675><loc_0><loc_0><loc_310><loc_671><loc_763><loc_0><loc_999><loc_663><loc_524><loc_544><loc_921><loc_762><loc_163><loc_132><loc_363><loc_422><loc_802><loc_674><loc_890><loc_758><loc_566><loc_677><loc_646><loc_760></s>",
        image_size=(1300, 876),
        expected=(
            (0, 0, 1299, 591),
            (0, 0, 403, 588),
            (992, 0, 1299, 581),
            (681, 476, 1197, 667),
            (212, 116, 472, 370),
            (1043, 590, 1157, 664),
            (736, 593, 840, 666),
        ),
        options={"task": "<REGION_PROPOSAL>"},
    ),
    Case(
        source=(
            "huggingface/transformers tests/models/florence2/test_modeling_florence2.py, "
            "test_large_model_batching_inference_eager: '<OPEN_VOCABULARY_DETECTION>car' on the car image (640x480); expected = EXPECTED_PARSED_ANSWER_1"
        ),
        text="</s><s>car<loc_52><loc_334><loc_932><loc_774></s><pad><pad><pad>",
        image_size=(640, 480),
        expected=((33, 160, 596, 371),),
        labels=("car",),
        options={"task": "<OPEN_VOCABULARY_DETECTION>"},
    ),
)

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
        cases=CASES,
    )
)

#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
OCR_CASES: tuple[Case, ...] = (
    Case(
        source=(
            "huggingface/transformers tests/models/florence2/test_modeling_florence2.py, "
            "test_large_model_batching_inference_sdpa: '<OCR_WITH_REGION>' on the street image (1300x876); expected = bounds of the test's EXPECTED_PARSED_ANSWER quad_boxes"
        ),
        text="</s><s><s><s>中新中<loc_533><loc_68><loc_653><loc_68><loc_653><loc_128><loc_533><loc_128>88<loc_1><loc_103><loc_19><loc_103><loc_19><loc_125><loc_1><loc_125>DAT<loc_132><loc_186><loc_177><loc_188><loc_177><loc_214><loc_132><loc_213>STOP<loc_177><loc_226><loc_345><loc_224><loc_345><loc_327><loc_177><loc_331>KUO<loc_961><loc_371><loc_992><loc_371><loc_992><loc_397><loc_961><loc_397>OPTUS<loc_120><loc_414><loc_192><loc_415><loc_192><loc_450><loc_120><loc_448>OD COUKT<loc_438><loc_399><loc_486><loc_399><loc_486><loc_413><loc_438><loc_413>yes<loc_21><loc_439><loc_64><loc_437><loc_65><loc_482><loc_21><loc_484>88<loc_859><loc_435><loc_880><loc_435><loc_880><loc_460><loc_859><loc_460></s>",
        image_size=(1300, 876),
        expected=(
            (693, 60, 849, 112),
            (1, 90, 25, 109),
            (172, 163, 230, 187),
            (230, 196, 449, 290),
            (1249, 325, 1290, 348),
            (156, 363, 250, 394),
            (570, 349, 632, 362),
            (27, 383, 85, 424),
            (1117, 381, 1144, 403),
        ),
        labels=("中新中", "88", "DAT", "STOP", "KUO", "OPTUS", "OD COUKT", "yes", "88"),
    ),
    Case(
        source=(
            "Florence-2 model card sample (microsoft/Florence-2-large, "
            "'CUDA for engineers' cover) as quoted in a published script (GitHub, "
            "code search id 40972683268): the post_process_generation dict; size 403x500 recovered by inverting the bin centres (N + 0.5) * size / 1000; expected = the quads' own bounds"
        ),
        text={
            "<OCR_WITH_REGION>": {
                "quad_boxes": [
                    [
                        167.0435028076172,
                        50.25,
                        375.7974853515625,
                        50.25,
                        375.7974853515625,
                        114.75,
                        167.0435028076172,
                        114.75,
                    ],
                    [
                        144.8784942626953,
                        120.75,
                        375.7974853515625,
                        120.75,
                        375.7974853515625,
                        149.25,
                        144.8784942626953,
                        149.25,
                    ],
                    [
                        115.86249542236328,
                        165.25,
                        376.6034851074219,
                        166.25,
                        376.6034851074219,
                        184.25,
                        115.86249542236328,
                        183.25,
                    ],
                    [
                        239.9864959716797,
                        184.25,
                        376.6034851074219,
                        186.25,
                        376.6034851074219,
                        204.25,
                        239.9864959716797,
                        202.25,
                    ],
                    [
                        266.1814880371094,
                        441.25,
                        376.6034851074219,
                        441.25,
                        376.6034851074219,
                        456.25,
                        266.1814880371094,
                        456.25,
                    ],
                    [
                        252.0764923095703,
                        460.25,
                        376.6034851074219,
                        460.25,
                        376.6034851074219,
                        475.25,
                        252.0764923095703,
                        475.25,
                    ],
                ],
                "labels": [
                    "</s>CUDA",
                    "FOR ENGINEERS",
                    "An Introduction to High-Performance",
                    "Parallel Computing",
                    "DUANE STORTI",
                    "METE YURTOGLU",
                ],
            }
        },
        image_size=(403, 500),
        expected=(
            (167.044, 50.25, 375.797, 114.75),
            (144.878, 120.75, 375.797, 149.25),
            (115.862, 165.25, 376.603, 184.25),
            (239.986, 184.25, 376.603, 204.25),
            (266.181, 441.25, 376.603, 456.25),
            (252.076, 460.25, 376.603, 475.25),
        ),
        labels=(
            "CUDA",
            "FOR ENGINEERS",
            "An Introduction to High-Performance",
            "Parallel Computing",
            "DUANE STORTI",
            "METE YURTOGLU",
        ),
    ),
    Case(
        source=(
            "Florence-2 run published in a tutorial README (GitHub, code search id 2976352176, "
            "'Task 9: OCR with region', "
            "the 'I CAN HAS CHEEZBURGER' image); size 273x398 recovered by inverting the bin centres; expected = the quads' bounds"
        ),
        text={
            "<OCR_WITH_REGION>": {
                "quad_boxes": [
                    [
                        62.653499603271484,
                        10.54699993133545,
                        196.96949768066406,
                        10.54699993133545,
                        196.96949768066406,
                        38.80500030517578,
                        62.653499603271484,
                        38.80500030517578,
                    ],
                    [
                        28.528499603271484,
                        48.755001068115234,
                        234.09750366210938,
                        48.755001068115234,
                        234.09750366210938,
                        78.6050033569336,
                        28.528499603271484,
                        78.6050033569336,
                    ],
                    [
                        2.5935001373291016,
                        386.6570129394531,
                        163.3905029296875,
                        386.6570129394531,
                        163.3905029296875,
                        396.60699462890625,
                        2.5935001373291016,
                        396.60699462890625,
                    ],
                ],
                "labels": ["</s>I CAN HAS", "CHEEZBURGER?", "ICANHASCHEEZEURGER.COM C"],
            }
        },
        image_size=(273, 398),
        expected=(
            (62.653, 10.547, 196.969, 38.805),
            (28.528, 48.755, 234.098, 78.605),
            (2.594, 386.657, 163.391, 396.607),
        ),
        labels=("I CAN HAS", "CHEEZBURGER?", "ICANHASCHEEZEURGER.COM C"),
    ),
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
        cases=OCR_CASES,
    )
)
