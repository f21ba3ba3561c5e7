"""The ``georeason`` console script: ``ask`` without typer when its arguments are plain.

``georeason ask "QUESTION" --objects FILE [--json] ...`` is the command people run most and
wait on; building typer's command tree (typer, its click, pydantic type adapters for every
option of every command) costs about 60 ms of a 0.44 s answer. :func:`main` reads such a
command line itself and calls :func:`georeason.cli_ask.ask_command`, the same code the typer
command calls; anything else (other commands, ``--help``, any option not listed below,
a repeated option, a value starting with ``-``, ``--``) goes to :func:`georeason.cli.main`
untouched, so every message and exit status of an unusual command line is typer's.

Taken here: the global ``--quiet/-q``, ``--verbose/-v``, ``--debug`` before ``ask``; then
the question and ``--objects/-o``, ``--crs``, ``--id-field``, ``--class-field``, ``--out``,
``--mask``, ``--questions``, ``--query`` (``--opt VALUE`` or ``--opt=VALUE``), ``--json``,
``--evidence-geometry`` / ``--no-evidence-geometry``.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "fast_ask_args"]

_GLOBAL_FLAGS = {
    "--quiet": "quiet",
    "-q": "quiet",
    "--verbose": "verbose",
    "-v": "verbose",
    "--debug": "debug",
}
_VALUE_OPTIONS = {
    "--objects": "objects",
    "-o": "objects",
    "--crs": "crs",
    "--id-field": "id_field",
    "--class-field": "class_field",
    "--out": "out",
    "--mask": "mask",
    "--questions": "questions",
    "--query": "query",
}
_PATH_VALUES = frozenset({"objects", "out", "mask", "questions", "query"})
_FLAGS = {
    "--json": ("as_json", True),
    "--evidence-geometry": ("evidence_geometry", True),
    "--no-evidence-geometry": ("evidence_geometry", False),
}


def fast_ask_args(argv: list[str]) -> tuple[dict[str, bool], dict[str, Any]] | None:
    """``(global flags, ask keyword arguments)`` of a plain ``ask`` command line, or
    ``None`` when typer must read it (see the module's docstring).

    Examples
    --------
    >>> fast_ask_args(["-q", "ask", "How many lakes are there?", "--objects=t.geojson", "--json"])
    ({'quiet': True}, {'question': 'How many lakes are there?', 'objects': PosixPath('t.geojson'), 'as_json': True})
    >>> fast_ask_args(["ask", "How many lakes are there?", "--raster", "x.tif"]) is None
    True
    """
    flags: dict[str, bool] = {}
    i = 0
    while i < len(argv) and argv[i] != "ask":
        name = _GLOBAL_FLAGS.get(argv[i])
        if name is None or name in flags:
            return None
        flags[name] = True
        i += 1
    if i == len(argv) or (flags.get("quiet") and flags.get("verbose")):
        return None
    kwargs: dict[str, Any] = {}
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        arg = rest[j]
        j += 1
        if not arg.startswith("-"):
            if "question" in kwargs:
                return None
            kwargs["question"] = arg
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FLAGS and not eq:
            key, flag = _FLAGS[name]
            if key in kwargs:
                return None
            kwargs[key] = flag
            continue
        if name not in _VALUE_OPTIONS or _VALUE_OPTIONS[name] in kwargs:
            return None
        key = _VALUE_OPTIONS[name]
        if not eq:
            if j == len(rest):
                return None
            value = rest[j]
            j += 1
        if not value or value.startswith("-"):
            return None
        kwargs[key] = Path(value) if key in _PATH_VALUES else value
    return flags, kwargs


def main() -> None:
    """The ``georeason`` command: a plain ``ask`` here, everything else through typer."""
    parsed = fast_ask_args(sys.argv[1:])
    if parsed is None:
        # before any thread: run's threads and processes share fewer C heap arenas
        from georeason.heap import bound_malloc_arenas

        bound_malloc_arenas()
        from georeason.cli import main as typer_main

        typer_main()
        return
    flags, kwargs = parsed
    from georeason.cli_ask import DEBUG, ask_command
    from georeason.progress import Verbosity, set_verbosity

    DEBUG["on"] = flags.get("debug", False)
    set_verbosity(
        Verbosity.QUIET
        if flags.get("quiet")
        else Verbosity.VERBOSE
        if flags.get("verbose")
        else Verbosity.NORMAL
    )
    try:
        ask_command(**kwargs)
    except KeyboardInterrupt:  # as typer: exit 130, no traceback
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # a closed pipe (``georeason ask ... | head``): exit 1 quietly, as typer does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
