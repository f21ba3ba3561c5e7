"""Terminal progress: rich progress bars (count, elapsed, ETA) on stderr, only for a person.

Bars show when standard output is a terminal and the user did not ask for ``--quiet``;
piped or redirected output (scripts, CI logs, ``--json > file``) gets none, so nothing but
the answers lands in files. Bars are drawn on standard error, never mixed into stdout.

Code that does long work reports through :func:`task` (a context manager yielding an
``advance(n)`` callable) or :func:`reporter` (a process-wide sink the Prefect flow calls
from its threads); both are no-ops when bars are off.

Examples
--------
>>> with task("tiles", total=3) as advance:  # no terminal in doctests: silent
...     for _ in range(3):
...         advance(1)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum

__all__ = ["Verbosity", "set_verbosity", "verbosity", "enabled", "task", "Reporter", "reporter", "live"]


class Verbosity(int, Enum):
    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


_state = {"verbosity": Verbosity.NORMAL}
_lock = threading.Lock()


def set_verbosity(level: Verbosity) -> None:
    """Set by the CLI from ``--quiet`` / ``--verbose``."""
    _state["verbosity"] = level


def verbosity() -> Verbosity:
    return _state["verbosity"]


def enabled() -> bool:
    """Whether bars are drawn: stdout is a terminal and not ``--quiet``."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and verbosity() > Verbosity.QUIET


def _progress(transient: bool = False):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
    )


@contextmanager
def task(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar for one piece of work; yields ``advance(n=1, total=None)`` (``total``
    sets the count when it is known only once the work has started)."""
    if not enabled():
        yield lambda n=1, total=None: None
        return
    with _progress(transient=total is None) as prog:  # a bar without a count goes when done
        tid = prog.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            if total is not None:
                prog.update(tid, total=total)
            prog.advance(tid, n)

        yield advance


class Reporter:
    """Named bars updated from any thread (the flow's tasks): ``start(key, description,
    total)``, ``advance(key, n)``, ``total(key, n)``."""

    def __init__(self, progress=None) -> None:
        self._progress = progress
        self._ids: dict[str, int] = {}

    def start(self, key: str, description: str, total: int | None) -> None:
        if self._progress is None:
            return
        with _lock:
            if key not in self._ids:
                self._ids[key] = self._progress.add_task(description, total=total)
            else:
                self._progress.update(self._ids[key], total=total, description=description)

    def advance(self, key: str, n: int = 1) -> None:
        if self._progress is None or key not in self._ids:
            return
        with _lock:
            self._progress.advance(self._ids[key], n)


_reporter: list[Reporter] = [Reporter()]


def reporter() -> Reporter:
    """The process-wide reporter (a no-op unless :func:`live` is active)."""
    return _reporter[-1]


@contextmanager
def live() -> Iterator[Reporter]:
    """Make :func:`reporter` draw bars (when :func:`enabled`) for the duration."""
    if not enabled():
        yield reporter()
        return
    with _progress() as prog:
        rep = Reporter(prog)
        _reporter.append(rep)
        try:
            yield rep
        finally:
            _reporter.remove(rep)
