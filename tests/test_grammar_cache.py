"""The built question parser cached on disk (geo/language/grammar.py ``parser``): ``ask``
start-up. Each case runs in fresh processes (the in-process parser is built once)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


BAD = [
    "What is the distance between #b1 and",
    "How many buildings are within of the river?",
    "zork How far is #b1 from #b2?",
]

ERRORS = (
    "import json, sys\n"
    "from georeason.errors import QuestionParseError\n"
    "from georeason.geo.language.grammar import parse\n"
    "out = []\n"
    "for q in json.loads(sys.argv[1]):\n"
    "    try:\n"
    "        parse(q)\n"
    "    except QuestionParseError as exc:\n"
    "        out.append(str(exc))\n"
    "print(json.dumps(out))\n"
)


def _errors(cache: Path) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-c", ERRORS, json.dumps(BAD)],
        capture_output=True,
        text=True,
        env=dict(os.environ, GEOREASON_CACHE_DIR=str(cache)),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_error_messages_name_keywords_with_a_loaded_parser(tmp_path: Path) -> None:
    """A parser loaded from the file skips making the grammar text, which also names the
    keyword terminals for error messages: the messages must be those of a built parser."""
    built = _errors(tmp_path)  # empty cache: built (and written)
    assert len(list(tmp_path.iterdir())) == 1
    loaded = _errors(tmp_path)
    assert loaded == built and len(built) == len(BAD)
    assert "'a', 'an', 'area'" in built[0]  # keywords by their words, not K_..._n names
    assert "K_" not in "".join(built)


LOADED = (
    "import json, re, sys\n"
    "from georeason.geo.language import grammar as g\n"
    "p = g.parser()\n"
    "lexer = p.parser.lexer\n"
    "syms = [s for r in p.rules for s in (r.origin, *r.expansion)]\n"
    "mres = lexer._scanner._mres if lexer._scanner is not None else []\n"
    "print(json.dumps({\n"
    "    'scanner_built': lexer._scanner is not None,\n"
    "    'regex_imported': 'regex' in sys.modules,\n"
    "    'same_regex': [m == re.compile(m.pattern, m.flags) for m in mres],\n"
    "    'objects': len({id(s) for s in syms}),\n"
    "    'symbols': len({(type(s).__name__, s.name, getattr(s, 'filter_out', None)) for s in syms}),\n"
    "}))\n"
)


def test_loaded_parser_has_its_scanner_and_one_object_per_symbol(tmp_path: Path) -> None:
    def run() -> dict:
        r = subprocess.run(
            [sys.executable, "-c", LOADED],
            capture_output=True,
            text=True,
            env=dict(os.environ, GEOREASON_CACHE_DIR=str(tmp_path)),
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    built, loaded = run(), run()
    for out in (built, loaded):
        assert out["scanner_built"]
        assert out["same_regex"] == [True]  # the lexer's one expression, equal to re.compile's
        assert out["objects"] == out["symbols"] > 100
        assert not out["regex_imported"]


def test_regex_module_is_importable_after_the_grammar() -> None:
    """lark is imported with the optional ``regex`` module hidden; it is not hidden after."""
    code = (
        "import importlib.util, sys\n"
        "import georeason.geo.language.grammar\n"
        "assert 'regex' not in sys.modules, 'regex imported'\n"
        "if importlib.util.find_spec('regex') is not None:\n"
        "    import regex\n"
        "    assert regex.match('a+', 'aaa').group(0) == 'aaa'\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize(
    ("pattern", "flags"),
    [
        (r"(?P<A>a+)|(?P<B>b\d*)", 0),
        (r"(?i:what(?![\w\-]))|(?P<W>[A-Za-z]{2,})", 0),
        (r"#[\w][\w.:\-]*(?<![.:])", re.IGNORECASE),
        (r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?![\w])", 0),
    ],
)
def test_regex_from_its_code_equals_re_compile(pattern: str, flags: int) -> None:
    from georeason.geo.language import grammar as g

    reference = re.compile(pattern, flags)
    args = g._regex_code(reference)
    assert args is not None
    got = g._compiled_regex(*args)
    assert got == reference and got.groupindex == reference.groupindex
    for text in ("aaa", "b12", "WHAT", "what-", "#b1.", "-1,000.5", "Lake"):
        m1, m2 = got.match(text), reference.match(text)
        assert (m1 and (m1.group(0), m1.lastgroup)) == (m2 and (m2.group(0), m2.lastgroup))


def test_refused_regex_code_compiles_the_text() -> None:
    from georeason.geo.language import grammar as g

    reference = re.compile(r"(?P<A>a+)|b")
    args = g._regex_code(reference)
    assert args is not None
    bad = (args[0], args[1], [999, 1, 2], *args[3:])  # not SRE code: the engine refuses it
    assert g._compiled_regex(*bad) == reference


def test_every_form_example_and_broken_variants_equal_an_uncached_parser(tmp_path: Path) -> None:
    """Trees and error messages of a parser loaded from the file (scanner kept, symbols
    interned, the lexer's expression from its code) against a parser lark builds afresh."""
    code = (
        "import json, sys\n"
        "from lark import Lark\n"
        "from lark.exceptions import UnexpectedInput\n"
        "from georeason.errors import QuestionParseError\n"
        "from georeason.geo.language import grammar as g\n"
        "qs = [e for f in g.FORMS for e in f.examples]\n"
        "qs += [' '.join(q.split()[: len(q.split()) // 2]) for q in qs] + [q + ' banana (' for q in qs]\n"
        "if sys.argv[1] == 'fresh':\n"
        "    p = Lark(g._grammar_text(), start='start', parser='earley', lexer='basic', ambiguity='resolve')\n"
        "    def one(q):\n"
        "        try:\n"
        "            return str(p.parse(g._preprocess(q)))\n"
        "        except UnexpectedInput as exc:\n"
        "            return 'error: ' + g._explain(g._preprocess(q), exc)\n"
        "else:\n"
        "    def one(q):\n"
        "        try:\n"
        "            return str(g.parse(q))\n"
        "        except QuestionParseError as exc:\n"
        "            return 'error: ' + str(exc)\n"
        "print(json.dumps([one(q) for q in qs if g._preprocess(q)]))\n"
    )

    def run(mode: str) -> list[str]:
        r = subprocess.run(
            [sys.executable, "-c", code, mode],
            capture_output=True,
            text=True,
            env=dict(os.environ, GEOREASON_CACHE_DIR=str(tmp_path)),
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    run("cached")  # builds and writes the file
    loaded, fresh = run("cached"), run("fresh")
    assert loaded == fresh
    assert (
        sum(x.startswith("error: ") for x in fresh) > 50
        and sum(not x.startswith("error") for x in fresh) > 50
    )
