"""The C heap's arena cap (georeason.heap): glibc's own report counts the arenas."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# eight threads that each allocate; then glibc prints one "Arena N:" block per arena
_THREADS = """
import ctypes, os, subprocess, sys, threading
import numpy as np
cap = {call}
def work():
    xs = [np.ones(5000) for _ in range(100)]
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
child = subprocess.run(
    [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"],
    capture_output=True, text=True,
).stdout.strip()
print(cap, os.environ.get("MALLOC_ARENA_MAX"), child)
sys.stdout.flush()
ctypes.CDLL(None).malloc_stats()
"""


def _run(call: str, env_extra: dict[str, str] | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, "-c", _THREADS.format(call=call)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    arenas = sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))
    return done.stdout.strip(), arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_the_cap_bounds_the_arenas_of_this_process_and_reaches_its_children() -> None:
    out, arenas = _run("__import__('georeason.heap', fromlist=['x']).bound_malloc_arenas(2)")
    assert out == "2 2 2"  # the cap, this process's environment, a child's
    assert arenas == 2
    # without it, glibc gives the eight threads arenas of their own
    out, arenas = _run("None")
    assert out == "None None None"
    assert arenas > 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_stats")
def test_a_users_setting_is_left_as_it_is() -> None:
    out, arenas = _run(
        "__import__('georeason.heap', fromlist=['x']).bound_malloc_arenas(2)", {"MALLOC_ARENA_MAX": "3"}
    )
    assert out == "None 3 3"
    assert arenas == 3


def test_commands_other_than_a_plain_ask_cap_the_arenas_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import georeason.cli
    import georeason.heap
    from georeason import cli_entry

    calls: list[str] = []
    monkeypatch.setattr(georeason.heap, "bound_malloc_arenas", lambda: calls.append("cap"))
    monkeypatch.setattr(georeason.cli, "main", lambda: calls.append("typer"))
    monkeypatch.setattr(sys, "argv", ["georeason", "run", "--help"])
    cli_entry.main()
    assert calls == ["cap", "typer"]
