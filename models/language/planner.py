"""A chat model as planner: questions the English templates do not cover, written as query programs.

The model never answers; it *writes the program*, which is validated against the scene
(:func:`georeason.geo.language.program.validate_program`) before anything runs, and the executor
computes the answer exactly as for a template question. Protocol:

1. The prompt gives the program's JSON Schema (:func:`program_json_schema`, always in the
   prompt), the scene's classes and (some) ids, and a few worked examples compiled from
   English questions (the question grammar's own examples, one per form) with
   :func:`georeason.geo.language.english.compile_question`. Servers that
   support it also get the schema as ``response_format={"type": "json_schema", ...}``
   (constrained decoding in vLLM, llama.cpp, Ollama, OpenAI); the root is an object
   ``{"steps": [...]}`` because some servers only accept object roots.
2. The reply is parsed (the first JSON value in it, code fences allowed) and validated.
   Class names the scene does not have are first mapped with
   :func:`georeason.models.language.classmap.map_program_classes` ("houses" -> ``building``);
   what that could not map fails validation like any other error.
3. An invalid program is sent back **once** with the validation error for repair.
4. Still invalid: the answer is an abstention whose reason is the error. A program that
   was not validated is never executed.

The answer records ``details["planner"] = {"attempts": n, "raw": [reply texts],
"errors": [...], "class_map": {...}}``.

``chat`` is any callable ``chat(messages) -> str`` (OpenAI-style message dicts); a
:class:`georeason.models.backends.remote.ChatClient` is one, and :func:`chat_client` builds it
with the ``response_format`` set.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from georeason.errors import ProgramValidationError, QuestionParseError
from georeason.geo.language import executor as _executor
from georeason.geo.language.answer import Answer
from georeason.geo.language.grammar import FORMS
from georeason.geo.language.program import Program, program_json_schema, validate_program

__all__ = [
    "EXAMPLE_QUESTIONS",
    "plan_and_answer",
    "planner_messages",
    "response_format",
    "extract_program",
    "chat_client",
    "answer_with_fallback",
]

log = logging.getLogger(__name__)

Chat = Callable[[list[dict]], str]

#: English questions compiled into the prompt's worked examples: the first example of each
#: form of the question grammar (so the examples follow the grammar and its ops).
EXAMPLE_QUESTIONS = tuple(f.examples[0] for f in FORMS if f.name not in ("pixel answers",))

_SYSTEM = """You translate questions about a geographic scene into query programs for an exact geometry engine.
You never answer the question yourself: you write the program, and the engine computes the answer.
A program is a JSON array of steps {"id": ..., "op": ..., "args": {...}}. Arguments are literals or
references "$<id>" to EARLIER steps. The last step (and only the last) is {"op": "answer"}.
Use only the classes and object ids listed for the scene. Output only JSON: {"steps": [...]}, no prose."""


def response_format() -> dict[str, Any]:
    """The OpenAI ``response_format`` constraining replies to ``{"steps": <program>}``."""
    prog = program_json_schema()
    defs = prog.pop("$defs", {})
    schema = {
        "type": "object",
        "properties": {"steps": prog},
        "required": ["steps"],
        "additionalProperties": False,
        "$defs": defs,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "georeason_query_program", "schema": schema, "strict": False},
    }


def _examples(questions: Sequence[str]) -> list[tuple[str, list[dict]]]:
    from georeason.geo.language.english import compile_question

    out = []
    for q in questions:
        try:
            out.append((q, compile_question(q)))
        except QuestionParseError:  # an example that no longer compiles is skipped, not fatal
            log.warning("planner example %r no longer compiles; skipped", q)
    return out


def _scene_summary(scene, max_ids: int = 40) -> str:
    if scene is None:
        return "(no scene given)"
    from collections import Counter

    counts = Counter(str(lab) for lab in scene.labels)
    lines = [f"classes (count): {', '.join(f'{c} ({n})' for c, n in sorted(counts.items())) or '(none)'}"]
    ids = [str(i) for i in scene.ids[:max_ids]]
    more = f" ... ({len(scene) - max_ids} more)" if len(scene) > max_ids else ""
    lines.append(f"object ids: {', '.join(ids)}{more}")
    crs = getattr(scene, "crs", None)
    if crs is not None:
        lines.append(f"CRS: {crs.to_string() if hasattr(crs, 'to_string') else crs}")
    return "\n".join(lines)


def planner_messages(
    question: str, scene=None, examples: Sequence[str] = EXAMPLE_QUESTIONS, schema: dict | None = None
) -> list[dict]:
    """The chat messages asking for ``question``'s program (system + user)."""
    schema = schema if schema is not None else program_json_schema()
    parts = [
        "JSON Schema of a program:",
        json.dumps(schema, separators=(",", ":")),
        "",
        "Scene:",
        _scene_summary(scene),
        "",
        "Examples:",
    ]
    for q, steps in _examples(examples):
        parts.append(f"Question: {q}\nProgram: {json.dumps({'steps': steps}, separators=(',', ':'))}")
    parts += ["", f"Question: {question}", "Program:"]
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_program(text: str) -> Any:
    """The first JSON array or object in a reply (code fences and surrounding prose allowed).

    Raises :class:`ProgramValidationError` when there is none.

    >>> extract_program('Sure: ```json\\n{"steps": [1]}\\n``` done')
    {'steps': [1]}
    """
    if not isinstance(text, str):
        raise ProgramValidationError(f"the reply is not text ({type(text).__name__})")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    dec = json.JSONDecoder()
    for cand in candidates:
        for i, ch in enumerate(cand):
            if ch in "[{":
                try:
                    value, _ = dec.raw_decode(cand, i)
                except json.JSONDecodeError:
                    continue
                return value
    raise ProgramValidationError(f"the reply holds no JSON program: {text[:200]!r}")


def _check(text: str, scene, class_map: dict) -> Program:
    raw = extract_program(text)
    steps = raw.get("steps") if isinstance(raw, dict) else raw
    if scene is not None and isinstance(steps, list):
        from georeason.models.language.classmap import map_program_classes

        steps, mapping = map_program_classes(steps, scene.classes)
        class_map.update({k: v for k, v in mapping.items() if v["method"] != "exact"})
    return validate_program(steps, scene)


def plan_and_answer(
    question: str,
    scene,
    chat: Chat,
    *,
    examples: Sequence[str] = EXAMPLE_QUESTIONS,
    repairs: int = 1,
    pixel=None,
    mask_writer=None,
) -> Answer:
    """Ask ``chat`` for ``question``'s program, validate it (repairing once), run it.

    Returns the executed :class:`Answer`, or an abstention whose reason is the last
    validation error; ``details["planner"]`` records the attempts and raw replies.
    Errors of ``chat`` itself (server unreachable) propagate as they are.
    """
    messages = planner_messages(question, scene, examples)
    raw: list[str] = []
    errors: list[str] = []
    class_map: dict[str, dict] = {}
    program: Program | None = None
    for attempt in range(1 + max(0, int(repairs))):
        text = chat(copy.deepcopy(messages))
        text = text if isinstance(text, str) else str(text)
        raw.append(text)
        try:
            program = _check(text, scene, class_map)
            break
        except ProgramValidationError as exc:
            errors.append(str(exc))
            log.info("planner attempt %d for %r invalid: %s", attempt + 1, question, exc)
            messages = messages + [
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That program is invalid: {exc}\n"
                    'Return the corrected program, JSON only: {"steps": [...]}',
                },
            ]
    info: dict[str, Any] = {"attempts": len(raw), "raw": raw, "errors": errors}
    if class_map:
        info["class_map"] = class_map
    if program is None:
        ans = Answer.abstain(
            f"the planner's program is invalid after {len(raw)} attempts: {errors[-1]}", question=question
        )
    else:
        ans = _executor.execute(program, scene, question=question, pixel=pixel, mask_writer=mask_writer)
    ans.details = dict(ans.details or {})
    ans.details["planner"] = info
    return ans


def chat_client(base_url: str, model: str | None = None, *, constrained: bool = True, **kw):
    """A :class:`~georeason.models.backends.remote.ChatClient` for planning (``response_format`` set when ``constrained``)."""
    from georeason.models.backends.remote import ChatClient

    kw.setdefault("max_tokens", 2048)
    return ChatClient(base_url, model, response_format=response_format() if constrained else None, **kw)


def answer_with_fallback(question: str, scene, chat: Chat | None, *, pixel=None, mask_writer=None) -> Answer:
    """Templates first; the planner only when no template understands the question."""
    from georeason.geo.language.english import ask, compile_question

    try:
        compile_question(question)
    except QuestionParseError:
        if chat is None:
            raise
        return plan_and_answer(question, scene, chat, pixel=pixel, mask_writer=mask_writer)
    return ask(question, scene, pixel=pixel, mask_writer=mask_writer)
