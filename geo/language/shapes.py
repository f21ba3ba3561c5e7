"""Compiled programs of question shapes, kept on disk between processes (``ask`` start-up).

:mod:`georeason.geo.language.english` learns, in a process, the program of a question
*shape*: its text with the ``#ids`` replaced by placeholders, kept only when the program
depends on the ids by naming them alone (checked by compiling it with two sets of
placeholders). This module keeps those programs, and those of questions without ids (by
their exact text), in one JSON file, so that a later process answering a question of a
known shape needs neither lark nor the grammar's parser: loading the cached parser,
building its lexer and parsing were about a third of one ``ask``.

The file is ``<cache dir>/programs-<key>.json``; the key hashes the source of the code
that makes programs (``grammar.py``, ``english.py``, ``geo/vector/measure.py``), lark's
``__init__.py`` (its version) and Python's version, so that any change to them starts a new
file. Like the parser cache it is read only when this user owns it and nobody else may
write it; it is JSON (never code), and a program read from it is validated like any
other. A missing, unreadable or foreign file is a miss; a cache folder that cannot be
written only costs the parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["cache_dir", "cache_path", "load", "save", "trusted_cache_file", "write_cache_file", "MAX_SHAPES"]

#: at most this many shapes in the file, the most recently learnt kept (every ``ask``
#: reads the whole file: 1024 shapes are ~0.4 MB, a few ms)
MAX_SHAPES = 1024

_HERE = Path(__file__).resolve().parent
#: the source files a compiled program depends on
_SOURCES = (_HERE / "grammar.py", _HERE / "english.py", _HERE.parent / "vector" / "measure.py")


def cache_dir() -> Path:
    """``$GEOREASON_CACHE_DIR``, else ``$XDG_CACHE_HOME/georeason``, else ``~/.cache/georeason``."""
    root = os.environ.get("GEOREASON_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "georeason"
    )
    return Path(root)


def _key() -> str | None:
    """Hash of the sources that make programs, lark's version and Python's; ``None`` when
    a source cannot be read (then nothing is cached)."""
    h = hashlib.sha256(sys.version.encode())
    try:
        spec = importlib.util.find_spec("lark")
        lark_init = spec.origin if spec is not None else None
        if lark_init is None:
            return None
        for path in (*_SOURCES, Path(lark_init)):
            h.update(b"\0" + path.read_bytes())
    except (OSError, ImportError, ValueError):
        return None
    return h.hexdigest()[:20]


_KEY: dict[str, str | None] = {}


def cache_path() -> Path | None:
    """Where this code's programs are kept (``None``: not cached)."""
    if "key" not in _KEY:
        _KEY["key"] = _key()
    key = _KEY["key"]
    return None if key is None else cache_dir() / f"programs-{key}.json"


def trusted_cache_file(fd: int) -> bool:
    """A cache file (this one or the grammar's parser) is read only if this user owns it
    and nobody else may write it."""
    st = os.fstat(fd)
    getuid = getattr(os, "getuid", None)
    return (getuid is None or st.st_uid == getuid()) and not (st.st_mode & 0o022)


def write_cache_file(path: Path, dump: Callable[[IO[bytes]], object]) -> None:
    """Write a cache file whole: ``dump`` writes a temporary file beside ``path`` (its
    folder created private to this user), which then replaces ``path``, so readers never
    see half a file. On any error the temporary file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            dump(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load() -> tuple[str | None, dict[str, str]]:
    """``(the grammar's HASHID pattern, {shape text: program JSON})`` from the file;
    ``(None, {})`` when there is none (or it is unreadable, malformed or not this user's)."""
    path = cache_path()
    if path is None:
        return None, {}
    try:
        with open(path, "rb") as fh:
            if not trusted_cache_file(fh.fileno()):
                return None, {}
            data = json.loads(fh.read())
        hashid, shapes = data["hashid"], data["shapes"]
        if isinstance(hashid, str) and isinstance(shapes, dict):
            return hashid, {str(k): v for k, v in shapes.items() if isinstance(v, str)}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None, {}


def save(hashid: str, learnt: dict[str, str]) -> None:
    """Add ``learnt`` (shape text -> program JSON) to the file: the last :data:`MAX_SHAPES`
    learnt are kept, newest first (written whole to a temporary file, then renamed: readers
    never see half a file)."""
    path = cache_path()
    if path is None or not learnt:
        return
    _, old = load()
    shapes = dict(reversed(list(learnt.items())[-MAX_SHAPES:]))
    for text, program in old.items():
        if len(shapes) >= MAX_SHAPES:
            break
        shapes.setdefault(text, program)
    data = json.dumps({"hashid": hashid, "shapes": shapes}).encode("utf-8")
    with contextlib.suppress(OSError):  # a cache folder that cannot be written: no cache
        write_cache_file(path, lambda fh: fh.write(data))
