"""The built question parser cached on disk (geo/language/grammar.py ``parser``): ``ask``
start-up. Each case runs in fresh processes (the in-process parser is built once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

QUESTIONS = [
    "What is the distance between #b1 and #lake-1?",
    "How many buildings are within 200 m of the river?",
    "In which direction is #b5 from the largest lake?",
]

PARSE = (
    "import json, sys\n"
    "from georeason.geo.language.grammar import parse, parser_cache_path\n"
    "print(json.dumps({'path': str(parser_cache_path()), "
    "'trees': [str(parse(q)) for q in json.loads(sys.argv[1])]}))\n"
)


def _run(cache: Path, seed: str = "0") -> dict:
    env = dict(os.environ, GEOREASON_CACHE_DIR=str(cache), PYTHONHASHSEED=seed)
    r = subprocess.run(
        [sys.executable, "-c", PARSE, json.dumps(QUESTIONS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cache_written_once_then_loaded_with_the_same_trees(tmp_path: Path) -> None:
    first = _run(tmp_path, seed="1")
    path = Path(first["path"])
    assert path.parent == tmp_path and path.is_file()
    stamp = path.stat().st_mtime_ns
    # another process, other string hashing: same grammar text, same key, file reused
    second = _run(tmp_path, seed="2")
    assert second["path"] == first["path"]
    assert path.stat().st_mtime_ns == stamp
    assert second["trees"] == first["trees"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_trees_equal_an_uncached_parser(tmp_path: Path) -> None:
    cached = _run(tmp_path)["trees"]
    code = (
        "import json, sys\n"
        "from georeason.geo.language import grammar as g\n"
        "from lark import Lark\n"
        "p = Lark(g._grammar_text(), start='start', parser='earley', lexer='basic', ambiguity='resolve')\n"
        "print(json.dumps([str(p.parse(g._preprocess(q))) for q in json.loads(sys.argv[1])]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, json.dumps(QUESTIONS)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == cached


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    path = Path(_run(tmp_path)["path"])
    good = _run(tmp_path)["trees"]
    path.write_bytes(b"not a pickle")
    assert _run(tmp_path)["trees"] == good
    assert path.read_bytes() != b"not a pickle"  # replaced by a good one


def test_unwritable_cache_folder_still_parses(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = _run(blocker / "cache")  # a folder cannot be made under a file
    assert len(out["trees"]) == len(QUESTIONS)
    assert blocker.read_text() == "x"


class _Planted:
    """Unpickles as ``os.system(<touch marker>)``: what an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_cache_file_is_not_executed_and_is_replaced(tmp_path: Path) -> None:
    """The cache is a pickle; loading resolves only the lark classes a parser is made of, so a
    planted file naming anything else (here ``os.system``) is refused and the parser rebuilt."""
    import pickle

    cache = tmp_path / "cache"
    path = Path(_run(cache)["path"])
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    os.chmod(path, 0o600)
    again = _run(cache)
    assert not marker.exists()
    assert again["trees"] == _run(tmp_path / "fresh")["trees"]
    assert b"posix" not in path.read_bytes() and b"system" not in path.read_bytes()  # rebuilt


def test_a_cache_file_others_may_write_is_not_read(tmp_path: Path) -> None:
    import pickle

    cache = tmp_path / "cache"
    path = Path(_run(cache)["path"])
    os.chmod(path, 0o666)
    before = path.read_bytes()
    assert pickle.loads(before) is not None  # a valid parser, only its permissions are wrong
    _run(cache)
    st = path.stat()
    assert not (st.st_mode & 0o022)  # replaced by a private file
