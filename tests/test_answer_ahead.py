"""``iter_answers(ahead=True)``: the next question is answered in a background thread while
the consumer holds the current outcome. The outcomes, their order, the progress calls and
the errors are those of the plain stream; at most two outcomes are alive at a time; a
consumer that stops early stops the thread."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

import georeason.pipeline as pm
from georeason.geo.language.answer import Answer
from georeason.geo.vector.scene import Scene
from georeason.pipeline import AnswerContext, compile_questions, iter_answers

REPO = Path(__file__).resolve().parents[1]

QUESTIONS = [
    "How many lakes are there?",
    "What is the total area of lakes in km2?",
    "What is the area of the largest lake in hectares?",
    "How many buildings are within 500 m of the largest lake?",
    "Why is the sky blue?",  # no template: a QuestionError, in its place
    "What is the total area of buildings in km2?",
    "How many rivers are there?",  # no such class: an abstention
]


def _scene() -> Scene:
    rng = np.random.default_rng(7)
    ids, labels, geoms = [], [], []
    for i in range(200):  # buildings, 10-40 m boxes, UTM 32N around 500 km E, 5550 km N
        x, y = 500_000 + rng.uniform(0, 5000), 5_550_000 + rng.uniform(0, 5000)
        w = rng.uniform(10, 40)
        ids.append(f"b{i}")
        labels.append("building")
        geoms.append(shapely.box(x, y, x + w, y + w))
    for i in range(4):
        x, y = 500_000 + 1200 * i, 5_552_000
        ids.append(f"lake-{i}")
        labels.append("lake")
        geoms.append(shapely.Point(x, y).buffer(100 + 50 * i))
    return Scene(ids, labels, geoms, "EPSG:32632")


def _lines(outcomes) -> list[str]:
    return [json.dumps(o.to_json(), sort_keys=True) for o in outcomes]


def test_ahead_gives_the_plain_stream():
    scene = _scene()
    qs = compile_questions(QUESTIONS)
    seen: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    out = {}
    for ahead in (False, True):
        ctx = AnswerContext(answered=lambda n, total, a=ahead: seen[a].append((n, total)))
        out[ahead] = _lines(iter_answers(qs, scene, ctx, ahead=ahead))
    assert out[True] == out[False]
    assert len(out[True]) == len(QUESTIONS)
    assert json.loads(out[True][0])["answer"] == 4  # hand count: four lakes
    assert "error" in json.loads(out[True][4])  # the question no template reads, in its place
    assert seen[True] == seen[False] == [(1, len(QUESTIONS))] * len(QUESTIONS)


def test_ahead_answers_while_the_consumer_holds_an_outcome(monkeypatch):
    """The next question is being answered (in another thread) while the consumer works,
    and never more than one ahead: at most two outcomes alive."""
    scene = _scene()
    qs = compile_questions(QUESTIONS[:4])
    started: list[tuple[int, str]] = []
    real = pm._answer_one

    def answer_one(n, *a, **k):
        started.append((n, threading.current_thread().name))
        return real(n, *a, **k)

    monkeypatch.setattr(pm, "_answer_one", answer_one)
    stream = iter_answers(qs, scene, AnswerContext(), ahead=True)
    got = []
    for k, outcome in enumerate(stream, 1):
        deadline = time.monotonic() + 10
        while len(started) < min(k + 1, len(qs)) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # time for a (wrong) third one to start
        assert len(started) == min(k + 1, len(qs)), (k, started)
        got.append(outcome)
    assert [n for n, _ in started] == [1, 2, 3, 4]
    assert {name for _, name in started} == {"answer-ahead"}
    assert all(isinstance(o, Answer) for o in got)


def test_ahead_stops_when_the_consumer_stops():
    scene = _scene()
    before = {t.ident for t in threading.enumerate()}
    stream = iter_answers(compile_questions(QUESTIONS), scene, AnswerContext(), ahead=True)
    first = next(stream)
    assert isinstance(first, Answer)
    stream.close()
    left = [t for t in threading.enumerate() if t.ident not in before and t.name == "answer-ahead"]
    assert left == []


def test_ahead_raises_what_the_stream_raises(monkeypatch):
    """An error outside the per-question guard (here: the batch prefetch) reaches the consumer."""

    class Boom(RuntimeError):
        pass

    def prefetch(self, *a, **k):
        raise Boom("prefetch failed")

    monkeypatch.setattr(pm.GroupBatch, "prefetch", prefetch)
    with pytest.raises(Boom, match="prefetch failed"):
        list(iter_answers(compile_questions(QUESTIONS[:2]), _scene(), AnswerContext(), ahead=True))


def test_run_iter_streams_ahead_only_when_asked(monkeypatch):
    """Off by default; ``GEOREASON_ANSWER_AHEAD=1`` turns it on (more than one core)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.delenv("GEOREASON_ANSWER_AHEAD", raising=False)
    assert pm._answer_ahead_default() is False
    monkeypatch.setenv("GEOREASON_ANSWER_AHEAD", "1")
    assert pm._answer_ahead_default() is True
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert pm._answer_ahead_default() is False
