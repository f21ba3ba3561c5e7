"""Parse warnings as data: what a model's output lost reaches the answer, not only stderr.

Every :class:`~georeason.errors.ParseWarning` (a truncated answer whose unfinished object
was dropped, a box outside the image, a format refused) is raised through
:func:`parse_warning`. Besides the usual ``warnings.warn`` it appends the message to the
innermost active :func:`collect_parse_warnings` collector, so a grounder can attach the
messages to the detections of that output (:attr:`Detection.notes
<georeason.geo.grounding.detections.Detection.notes>`) and to the tile
(:class:`TileDetections`), the pipeline to the answers and the Prefect logs.

Collectors are context variables, not ``warnings.catch_warnings`` (which patches
process-wide state and is unsafe in threaded task runners): each thread or task sees only
its own. :func:`parsing` tags messages with the image (index in a model batch) and class
being parsed, so a batched model call can give each tile its own messages.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     with collect_parse_warnings() as sink:
...         with parsing(image=1, label="lake"):
...             parse_warning("qwen2.5: output is truncated")
>>> sink
[ParseNote(image=1, label='lake', message='qwen2.5: output is truncated')]
>>> notes_for(sink, 1), notes_for(sink, 0)
(('lake: qwen2.5: output is truncated',), ())
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

from georeason.errors import ParseWarning
from georeason.geo.grounding.detections import Detection

__all__ = [
    "ParseNote",
    "TileDetections",
    "parse_warning",
    "collect_parse_warnings",
    "parsing",
    "notes_for",
    "with_notes",
]


class ParseNote(NamedTuple):
    """One parse warning: the image of a batch (``None``: not known) and class it concerns."""

    image: int | None
    label: str | None
    message: str

    def text(self) -> str:
        """The message, prefixed with its class when known."""
        return f"{self.label}: {self.message}" if self.label else self.message


_SINK: ContextVar[list[ParseNote] | None] = ContextVar("georeason_parse_notes", default=None)
_SOURCE: ContextVar[tuple[int | None, str | None]] = ContextVar(
    "georeason_parse_source", default=(None, None)
)


def parse_warning(message: str, stacklevel: int = 1) -> None:
    """Warn with a :class:`~georeason.errors.ParseWarning` and record it in the active collector.

    ``stacklevel`` is as for ``warnings.warn`` called where this is called.
    """
    sink = _SINK.get()
    if sink is not None:
        image, label = _SOURCE.get()
        sink.append(ParseNote(image, label, str(message)))
    warnings.warn(message, ParseWarning, stacklevel=stacklevel + 1)


@contextmanager
def collect_parse_warnings() -> Iterator[list[ParseNote]]:
    """Collect the parse warnings raised in this context (this thread or task only).

    Nested collectors: the innermost gets the messages.
    """
    sink: list[ParseNote] = []
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


@contextmanager
def parsing(image: int | None = None, label: str | None = None) -> Iterator[None]:
    """Tag the parse warnings raised in this context with the batch image and class."""
    token = _SOURCE.set((image, label))
    try:
        yield
    finally:
        _SOURCE.reset(token)


def notes_for(sink: Iterable[ParseNote], image: int | None = None) -> tuple[str, ...]:
    """The distinct messages (class-prefixed) for one image of a batch, plus untagged ones."""
    return tuple(dict.fromkeys(n.text() for n in sink if n.image is None or n.image == image))


def with_notes(detections: Iterable[Detection], notes: Sequence[str]) -> list[Detection]:
    """The detections with ``notes`` added to their :attr:`~Detection.notes` (order kept)."""
    if not notes:
        return list(detections)
    return [dataclasses.replace(d, notes=tuple(dict.fromkeys((*d.notes, *notes)))) for d in detections]


class TileDetections(list):  # type: ignore[type-arg]
    """The detections of one tile (a list) plus ``notes``: every parse warning of the model
    outputs for that tile, including those about objects that were dropped (which no
    detection can carry)."""

    notes: tuple[str, ...]

    def __init__(self, detections: Iterable[Detection] = (), notes: Sequence[str] = ()):
        super().__init__(detections)
        self.notes = tuple(dict.fromkeys(notes))
