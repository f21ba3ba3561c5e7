"""Settings and questions files."""

from __future__ import annotations

import json

import pytest

from georeason.config import QuestionSpec, RunConfig, read_questions
from georeason.errors import InputError


def test_questions_in_yaml_jsonl_and_text(tmp_path):
    y = tmp_path / "q.yaml"
    y.write_text(
        "questions:\n  - {question: 'How many lakes are there?', item: sample}\n  - Which is the largest lake?\n"
    )
    j = tmp_path / "q.jsonl"
    j.write_text(json.dumps({"question": "How many lakes are there?", "item": "sample"}) + "\n\n")
    t = tmp_path / "q.txt"
    t.write_text("# comment\nHow many lakes are there?\n")
    assert read_questions(y) == [
        QuestionSpec("How many lakes are there?", "sample"),
        QuestionSpec("Which is the largest lake?"),
    ]
    assert read_questions(j) == [QuestionSpec("How many lakes are there?", "sample")]
    assert read_questions(t) == [QuestionSpec("How many lakes are there?")]


def test_bad_questions_files_name_the_file(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("questions: 3\n")
    with pytest.raises(InputError, match="q.yaml"):
        read_questions(bad)
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match="no questions"):
        read_questions(empty)


def test_run_config_model_section_and_priorities(tmp_path, monkeypatch):
    cfg = tmp_path / "georeason.yaml"
    cfg.write_text("tile_px: 512\nmodel:\n  grounder: qwen2.5-vl\n  model_path: /models/q\n  batch_size: 8\n")
    c = RunConfig.load(cfg)
    assert (c.grounder, c.model_path, c.tile_px, c.grounder_options) == (
        "qwen2.5-vl",
        "/models/q",
        512,
        {"batch_size": 8},
    )
    monkeypatch.setenv("GEOREASON_TILE_PX", "768")
    assert RunConfig.load(cfg).tile_px == 768  # environment over file
    assert RunConfig.load(cfg, tile_px=256).tile_px == 256  # flags over both
    with pytest.raises(InputError, match="unknown setting"):
        (tmp_path / "x.yaml").write_text("tiles: 3\n")
        RunConfig.load(tmp_path / "x.yaml")
    with pytest.raises(InputError, match="overlap_px"):
        RunConfig.load(None, tile_px=128, overlap_px=128)
