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

import json
from functools import lru_cache
from typing import Any

from georeason.errors import ProgramValidationError, QuestionParseError
from georeason.geo.language.grammar import FORMS, compile_tree, parse

__all__ = ["compile_question", "ask", "SUPPORTED_FORMS", "forms_table", "compiled_examples"]

#: One line per question form (name: description, e.g. first example); quoted in parse errors.
SUPPORTED_FORMS = [f"{f.name}: {f.describe} (e.g. {f.examples[0]!r})" for f in FORMS]


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


@lru_cache(maxsize=1024)
def _compiled_json(question: str) -> str:
    """The program of a question as JSON (cached: a run compiles each question more than once)."""
    try:
        return json.dumps(compile_tree(parse(question)))
    except QuestionParseError as exc:
        raise QuestionParseError(
            f"cannot parse the question {question.strip()!r}: {exc}. Supported forms:\n  - "
            + "\n  - ".join(SUPPORTED_FORMS)
        ) from None


def compiled_examples() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every example question of the grammar's forms with its compiled program."""
    return [(q, compile_question(q)) for f in FORMS for q in f.examples]


def forms_table() -> str:
    """The README's question-forms table (Markdown), generated from the grammar's examples."""
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


def ask(question: str, scene, pixel=None, mask_writer=None):
    """Answer an English question about a scene: compile, validate, execute.

    A reference to an id or class the scene does not have gives an abstention (the
    reference matches no object), not an error; for a class, the reason names the words.
    """
    from georeason.geo.language.answer import Answer
    from georeason.geo.language.executor import _expected_kind, execute
    from georeason.geo.language.program import validate_program

    steps = compile_question(question)
    program = validate_program(steps)  # structure and types: a failure here is a grammar bug
    try:
        validate_program(steps, scene)
    except ProgramValidationError as exc:
        reason = f"the question refers to something not in the scene: {exc}"
        if exc.arg == "cls":
            step = next(s for s in steps if s["id"] == exc.step)
            words = step["args"]["cls"]
            reason = (
                f"the words {words!r} name no class in this scene's vocabulary "
                f"(classes: {', '.join(scene.classes) or '(none)'}); not understood: {words!r}"
            )
        return Answer.abstain(
            reason,
            kind=_expected_kind(program),
            query=json.loads(json.dumps(program.to_json())),
            question=question,
        )
    return execute(program, scene, question=question, pixel=pixel, mask_writer=mask_writer)
