"""English questions to query programs, through a grammar (no model needed).

:func:`compile_question` parses a question with the grammar of
:mod:`georeason.geo.language.grammar` and compiles it into a program (see :mod:`.program`);
:func:`ask` compiles, validates against the scene and executes it. A question the grammar
does not understand raises :class:`~georeason.errors.QuestionParseError` naming the words
it did not understand and listing the supported forms. A class name the scene does not
have gives an abstention saying so (the words are reported, never guessed at).

References (A, B below) may be:

- an object id: ``#b12``, ``b12`` (an id with a digit), ``building b12``, ``object b12``;
- a class with a selector: ``the river`` (must be the only river), ``the largest lake``
  (also smallest, longest, shortest, biggest), optionally with constraints (``the largest
  lake within 5 km of #w1``);
- explicit geometry, in lon/lat unless tagged ``pixel`` (then image column/row of
  ``--raster``) or with a CRS as ``(EPSG:32633)``: WKT (``POINT (10 50)``), a bbox
  ``[minx, miny, maxx, maxy]``, a point ``(x, y)``, or a polyline/polygon as a coordinate
  list ``[[x, y], [x, y], ...]`` (closed lists are polygons; say ``line``/``polygon`` to
  force one); ``the region <geometry>`` is that geometry itself;
- ``the <class> at <geometry>``: the object of that class that best overlaps the geometry
  (IoU >= 0.5), else the question abstains;
- chains: ``the nearest well to the lake``, ``its nearest well``, ``the building east of
  the road that is closest to it``; ``it`` is the reference named last.
"""

from __future__ import annotations

import atexit
import json
import re
from functools import lru_cache
from typing import Any

from georeason.errors import QuestionParseError
from georeason.geo.language import shapes
from georeason.geo.language.answer import Answer
from georeason.geo.language.executor import MaskWriter, PixelTransform, answer_program
from georeason.geo.language.program import Program, validate_program
from georeason.geo.vector.scene import Scene

__all__ = [
    "compile_question",
    "compile_program",
    "ask",
    "SUPPORTED_FORMS",  # noqa: F822 - built on first use (module __getattr__)
    "forms_table",
    "compiled_examples",
]

# The grammar (and lark) are imported where a question is parsed, not here: a question of a
# shape compiled before comes from the program cache (:mod:`.shapes`) without them.


def __getattr__(name: str) -> Any:
    if name == "SUPPORTED_FORMS":
        return _supported_forms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=1)
def _supported_forms() -> list[str]:
    """``SUPPORTED_FORMS``: one line per question form (name: description, e.g. first
    example); quoted in parse errors."""
    from georeason.geo.language.grammar import FORMS

    return [f"{f.name}: {f.describe} (e.g. {f.examples[0]!r})" for f in FORMS]


def compile_question(question: str) -> list[dict[str, Any]]:
    """Compile an English question to a program (a list of step dicts), not yet validated.

    Raises :class:`QuestionParseError` naming the words not understood (and listing the
    supported forms) when the grammar does not cover the question.

    Examples
    --------
    >>> [s["op"] for s in compile_question("How far is #a from #b?")]
    ['object', 'object', 'distance', 'answer']
    >>> [s["op"] for s in compile_question("How many buildings lie within 0.5 km of A?")]
    ['object', 'select', 'within_distance', 'count', 'answer']
    """
    return json.loads(_compiled_json(question))


def _compiled_json(question: str) -> str:
    """The program of a question as JSON: from the program of a question of the same shape
    (the same text but for its ``#ids``) when one has been compiled, in this process or
    (kept on disk by :mod:`.shapes`) in an earlier one, else parsed."""
    cached = _from_disk(question)
    if cached is not None:
        return cached
    shape = _id_shape(question)
    if shape is None:
        program = _parsed_json(question)  # raises for a question not understood: nothing learnt
        if _plain(question):
            _remember(question, program)
        return program
    text, ids = shape
    hit = _BY_SHAPE.get(text)
    if hit is not None:
        return _with_ids(hit, _PLACE_A, ids)
    program = _parsed_json(question)  # raises for a question not understood: nothing learnt
    _learn_shape(text, ids, program)
    return program


def _plain(question: str) -> bool:
    """A question without ids and brackets: its program is kept by its exact text."""
    return "#" not in question and not _NOT_RESHAPED.search(question)


#: the program cache's file, read once: (HASHID pattern, {shape or plain text: program})
_DISK: dict[str, tuple[re.Pattern[str] | None, dict[str, str]]] = {}
#: shapes learnt by this process, added to the file at exit
_LEARNT: dict[str, str] = {}


def _from_disk(question: str) -> str | None:
    """The program of ``question`` from the program cache of earlier processes, if its
    shape (or, without ids, its text) is there."""
    if "disk" not in _DISK:
        hashid, programs = shapes.load()
        _DISK["disk"] = (re.compile(hashid) if hashid else None, programs)
    pattern, programs = _DISK["disk"]
    if pattern is None or not programs or _NOT_RESHAPED.search(question):
        return None
    if "#" not in question:
        return programs.get(question)
    shape = _id_shape(question, pattern)
    if shape is None:
        return None
    text, ids = shape
    hit = programs.get(text)
    return None if hit is None else _with_ids(hit, _PLACE_A, ids)


def _remember(text: str, program: str) -> None:
    """Keep ``program`` (of a shape or a plain question) for later processes: written to
    the program cache when this process exits."""
    if not _LEARNT:
        atexit.register(_save_learnt)
    _LEARNT.pop(text, None)  # the newest last
    _LEARNT[text] = program
    if len(_LEARNT) > shapes.MAX_SHAPES:
        del _LEARNT[next(iter(_LEARNT))]


def _save_learnt() -> None:
    shapes.save(_hashid().pattern, _LEARNT)


#: Programs of questions by their text with the ``#ids`` replaced by placeholders
#: (``How many buildings are within 200 m of #r1?`` and ``... of #r2?`` share one); each
#: holds the placeholders of :data:`_PLACE_A` where the ids go.
_BY_SHAPE: dict[str, str] = {}
_BY_SHAPE_MAX = 4096
#: Two sets of placeholder ids: a shape is learnt only when its program is the same with
#: either (and with the question's own ids) but for the ids themselves. The second set is
#: upper case, so a program that changed the ids' case is not learnt.
_PLACE_A = ("gqa{}z", "#gqa{}z")
_PLACE_B = ("GQB{}Z", "#GQB{}Z")
#: The grammar's own terminals only: text with brackets or quotes (geometry literals,
#: quoted names) is not reshaped, as a '#' inside them is not an id.
_NOT_RESHAPED = re.compile(r"[\[\](){}\"'`]")


@lru_cache(maxsize=1)
def _hashid() -> re.Pattern[str]:
    """The grammar's ``HASHID`` terminal (an id like ``#b7``) as a regular expression."""
    from georeason.geo.language.grammar import parser

    return re.compile(parser().get_terminal("HASHID").pattern.to_regexp())


def _id_shape(question: str, hashid: re.Pattern[str] | None = None) -> tuple[str, list[str]] | None:
    """The question with its ``#ids`` (``hashid``: the grammar's) replaced by placeholders
    (the same id, the same placeholder), and the ids in placeholder order; ``None`` without
    ids or with brackets."""
    if "#" not in question or _NOT_RESHAPED.search(question):
        return None
    ids: list[str] = []

    def place(m: re.Match[str]) -> str:
        oid = m.group(0)[1:]
        if oid not in ids:
            ids.append(oid)
        return _PLACE_A[1].format(ids.index(oid))

    text = (hashid or _hashid()).sub(place, question)
    return (text, ids) if ids else None


def _with_ids(program: str, place: tuple[str, str], ids: list[str]) -> str:
    """``program`` (JSON) with the placeholder ids of ``place`` replaced by ``ids``."""
    for k, oid in enumerate(ids):
        program = program.replace(json.dumps(place[0].format(k)), json.dumps(oid))
    return program


def _learn_shape(text: str, ids: list[str], program: str) -> None:
    """Keep the program of ``text`` (a question with placeholder ids) for questions of its
    shape, if compiling it with two sets of placeholders gives this question's program but
    for the ids (the compiled program depends on the ids only by naming them)."""
    if len(_BY_SHAPE) >= _BY_SHAPE_MAX:
        return
    with_b = text
    for k in range(len(ids)):
        with_b = with_b.replace(_PLACE_A[1].format(k), _PLACE_B[1].format(k))
    try:
        a, b = _parsed_json(text), _parsed_json(with_b)
    except Exception:  # noqa: BLE001 - not learnt; each question of this shape is parsed
        return
    b_ids = [_PLACE_B[0].format(k) for k in range(len(ids))]
    if _with_ids(a, _PLACE_A, b_ids) == b and _with_ids(a, _PLACE_A, ids) == program:
        _BY_SHAPE[text] = a
        _remember(text, a)


@lru_cache(maxsize=1024)
def _parsed_json(question: str) -> str:
    """The program of a question as JSON, parsed (cached: a run compiles each question more than once)."""
    from georeason.geo.language.grammar import compile_tree, parse

    try:
        return json.dumps(compile_tree(parse(question)))
    except QuestionParseError as exc:
        raise QuestionParseError(
            f"cannot parse the question {question.strip()!r}: {exc}. Supported forms:\n  - "
            + "\n  - ".join(_supported_forms())
        ) from None


def compiled_examples() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every example question of the grammar's forms with its compiled program."""
    from georeason.geo.language.grammar import FORMS

    return [(q, compile_question(q)) for f in FORMS for q in f.examples]


def forms_table() -> str:
    """The README's question-forms table (Markdown), generated from the grammar's examples."""
    from georeason.geo.language.grammar import FORMS

    lines = ["| form | what it asks | examples | program ops |", "| --- | --- | --- | --- |"]
    for f in FORMS:
        ops: list[str] = []
        for q in f.examples:
            for step in compile_question(q):
                if step["op"] not in ops and step["op"] != "answer":
                    ops.append(step["op"])
        examples = " / ".join(q.replace("|", "\\|") for q in f.examples)
        lines.append(f"| {f.name} | {f.describe.replace('|', '/')} | {examples} | {', '.join(ops)} |")
    return "\n".join(lines) + "\n"


def compile_program(question: str) -> Program:
    """Compile an English question to a validated :class:`Program` (the one compilation).

    Raises :class:`QuestionParseError` when the grammar does not cover the question; a
    program that fails validation is a grammar bug and raises :class:`ProgramValidationError`.

    Examples
    --------
    >>> compile_program("How many lakes are there?").steps[-1].op
    'answer'
    """
    return validate_program(compile_question(question))


def ask(
    question: str,
    scene: Scene,
    pixel: PixelTransform | None = None,
    mask_writer: MaskWriter | None = None,
) -> Answer:
    """Answer an English question about a scene: compile and validate once, then execute.

    A reference to an id or class the scene does not have gives an abstention (the
    reference matches no object), not an error; for a class, the reason names the words.
    """
    return answer_program(
        compile_program(question), scene, question=question, pixel=pixel, mask_writer=mask_writer
    )
