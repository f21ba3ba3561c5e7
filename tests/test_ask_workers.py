"""``georeason ask`` grounding in worker processes: the same answers as in-process grounding,
and the rule that picks the number of processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from georeason.cli_ask import MIN_POOL_TILES, ask_command, ask_workers
from georeason.errors import InputError

QUESTIONS = [
    "How many lakes are there?",
    "What is the total area of lakes in km2?",
    "What is the area of the largest lake in hectares?",
    "What is the distance between the largest lake and the river?",
    "How many lakes are within 1 km of the river?",
    "What is the total area of vegetation in km2?",
    "Which pixels are water within 300 m of the river?",
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory, write_scene) -> tuple[Path, Path]:
    """A 1536 px synthetic 4-band scene (benchmarks/make_scene.py) and its questions."""
    d = tmp_path_factory.mktemp("askpool")
    raster = d / "scene.tif"
    write_scene(raster, 1536)
    questions = d / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    return raster, questions


def _ask(raster: Path, questions: Path, out: Path, workers: int | None) -> None:
    ask_command(
        raster=raster,
        questions=questions,
        out=out / "answers.jsonl",
        mask=out / "mask.tif",
        tile_px=384,
        overlap_px=64,
        workers=workers,
    )


def test_ask_in_worker_processes_answers_byte_identically(scene, tmp_path):
    raster, questions = scene
    # 5 x 5 tiles of 384 px with 64 px overlap: a pool of one process per CPU by default
    assert ask_workers(None, raster, "spectral", 384, 64) == (_cpus() if _cpus() > 1 else 1)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _ask(raster, questions, one, 1)
    _ask(raster, questions, two, 2)
    a = (one / "answers.jsonl").read_bytes()
    b = (two / "answers.jsonl").read_bytes()
    rows = [json.loads(line) for line in a.decode().splitlines()]
    assert len(rows) == len(QUESTIONS)
    assert rows[0]["answer"] > 0, rows[0]  # lakes were grounded and counted
    assert a.replace(b"/one/", b"/x/") == b.replace(b"/two/", b"/x/")
    masks = sorted(p.name for p in one.glob("mask-*.tif"))
    assert masks and masks == sorted(p.name for p in two.glob("mask-*.tif"))
    for name in masks:
        with rasterio.open(one / name) as x, rasterio.open(two / name) as y:
            assert np.array_equal(x.read(), y.read())


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def test_worker_rule(scene, monkeypatch):
    raster, _ = scene
    import georeason.workers as workers

    monkeypatch.setattr(workers, "default_workers", lambda: 2)
    # 25 tiles of 384 px (stride 320): a pool; 4 tiles of 1024 px: not worth a pool's start
    assert ask_workers(None, raster, "spectral", 384, 64) == 2
    assert ask_workers(None, raster, "spectral", 1024, 128) == 1
    assert MIN_POOL_TILES > 4
    # no raster (vector files only), or one CPU: in this process
    assert ask_workers(None, None, "spectral", 384, 64) == 1
    monkeypatch.setattr(workers, "default_workers", lambda: 1)
    assert ask_workers(None, raster, "spectral", 384, 64) == 1
    # --workers is taken as given
    assert ask_workers(3, raster, "spectral", 1024, 128) == 3
    assert ask_workers(1, raster, "spectral", 384, 64) == 1
    assert ask_workers(2, None, "spectral", 384, 64) == 1  # no raster: no pool to start
    with pytest.raises(InputError, match="--workers 0"):
        ask_workers(0, raster, "spectral", 384, 64)


def test_bad_workers_is_one_line_and_exit_2(scene, tmp_path):
    raster, _ = scene
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "georeason.cli",
            "ask",
            "How many lakes are there?",
            "--raster",
            str(raster),
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers 0" in lines[0], proc.stderr
