"""The terminal as a person sees it: progress bars on a terminal (a pty), none when piped or
with --quiet; boolean flags shown as flags; evidence in user terms."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from georeason.cli import app

REPO = Path(__file__).resolve().parents[1]

SCENE = REPO / "data_catalog" / "sample" / "sample_scene.tif"


def _in_pty(args: list[str], timeout_s: float = 300) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return what it drew."""
    main, sub = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "georeason.cli", *args],
        stdout=sub,
        stderr=sub,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(sub)
    out = b""
    while True:
        r, _, _ = select.select([main], [], [], timeout_s)
        if not r:
            proc.kill()
            raise TimeoutError("the CLI did not finish")
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the pty
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


@pytest.mark.slow
def test_progress_bar_on_a_terminal_and_not_with_quiet():
    drawn = _in_pty(["ask", "How many lakes are there?", "--raster", str(SCENE)])
    assert "grounding lake (tiles)" in drawn and "9/9" in drawn and "ETA" in drawn
    assert "answer" in drawn and "3" in drawn
    quiet = _in_pty(["--quiet", "ask", "How many lakes are there?", "--raster", str(SCENE)])
    assert "grounding" not in quiet and "answer" in quiet


def test_no_progress_when_stdout_is_not_a_terminal():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "georeason.cli",
            "ask",
            "How many lakes are there?",
            "--raster",
            str(SCENE),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "grounding" not in r.stdout + r.stderr and "━" not in r.stdout + r.stderr
    assert r.stdout.count("\n") == 1  # exactly one JSON object


def test_boolean_options_are_flags():
    res = CliRunner().invoke(app, ["ask", "--help"], env={"COLUMNS": "120"})
    assert "--json" in res.output and "<bool>" not in res.output
    res = CliRunner().invoke(app, ["ask", "How many lakes?", "--json", "true", "--objects", "x.geojson"])
    assert res.exit_code == 2  # a flag takes no value


def test_evidence_names_objects_by_class_and_id():
    res = CliRunner().invoke(
        app,
        ["ask", "Show all buildings within 100 m of #road-2.", "--item", "sample"],
        env={"COLUMNS": "150"},
    )
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("evidence"))
    assert "road: road-2" in line and "building: building-" in line
    assert "$" not in line


def test_catalog_scans_show_counts_on_a_terminal():
    """`catalog list` and `catalog validate` draw a bar with the item count (issue 14)."""
    import json

    cat = json.loads((REPO / "data_catalog" / "catalog.json").read_text())
    n = sum(1 for link in cat["links"] if link.get("rel") == "item")  # counted independently
    assert n >= 2
    listed = _in_pty(["catalog", "list"])
    assert "reading the catalog items" in listed and f"{n}/{n}" in listed
    checked = _in_pty(["catalog", "validate"])
    assert "checking items" in checked and f"{n}/" in checked
