"""Faults injected into real flow runs (local Prefect test server, no mocks).

- a planted result file (a pickle, and a Prefect result record naming the pickle
  serializer) in the results folder is never executed and the batch is recomputed;
- a raster edited in place is refused before work (names the file); after
  ``catalog add --update`` the rerun gives the new answer, not the cached one;
- two runs into one folder: the second refuses while the first holds the lock;
- a failing tile makes only the answers near it abstain, and the run ends FAILED;
- one item that cannot be read still leaves answers.jsonl with an error line for it;
- rerunning with fewer questions removes the earlier run's ``qNN`` files (manifest).
- a rerun whose every batch comes from the tile cache makes the same quicklook without
  reading the raster (the cache keeps each tile's basemap sums).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
pytestmark = pytest.mark.e2e
runner = CliRunner()


@pytest.fixture
def own_catalog(tmp_path):
    """A catalog holding its own copy of the sample scene (so the test may edit it)."""
    from georeason.catalog import add_item

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLE / "sample_scene.tif", src / "sample_scene.tif")
    shutil.copy(SAMPLE / "sample_roads.geojson", src / "sample_roads.geojson")
    cat = tmp_path / "cat"
    add_item(cat, src / "sample_scene.tif", vectors=[src / "sample_roads.geojson"], item_id="sample")
    return cat


def _questions(path: Path, qs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"question": q, "item": "sample"}) + "\n" for q in qs))
    return path


def _run(catalog, questions, out, results, **kw):
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.flows.answer import answer

    state = answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        catalog=str(catalog),
        questions=str(questions),
        out=str(out),
        results_dir=str(results),
        tile_px=kw.pop("tile_px", 512),
        overlap_px=kw.pop("overlap_px", 64),
        return_state=True,
        **kw,
    )
    from georeason.runstate import result_of

    return result_of(state), state


def _rows(out: Path) -> dict[str, dict]:
    return {r["question"]: r for r in map(json.loads, (out / "answers.jsonl").read_text().splitlines())}


class _Boom:
    """Unpickling this creates a marker file: proof that a planted pickle was executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_result_files_are_not_executed_and_are_recomputed(prefect_harness, own_catalog, tmp_path):
    from tests_flow_helpers import register_logging_grounder

    register_logging_grounder()
    qs = ["How many lakes are there?", "What is the area of the largest lake in hectares?"]
    q = _questions(tmp_path / "q.jsonl", qs)
    results = tmp_path / "results"
    log = tmp_path / "tiles.log"
    os.environ["GEOREASON_TEST_TILE_LOG"] = str(log)
    try:
        first, _ = _run(own_catalog, q, tmp_path / "out1", results, grounder="logging-spectral")
        n_tiles = len(log.read_text().splitlines())
        cached = sorted((results / "tiles").glob("*.json"))
        assert cached, "no tile cache written"
        # every cache file is plain JSON with WKB geometry, no pickle
        for f in cached:
            doc = json.loads(f.read_text())
            assert doc["format"] == "georeason-tile-batch/1"
        marker = tmp_path / "PWNED"
        payload = pickle.dumps(_Boom(str(marker)))
        record = {
            "metadata": {"storage_key": "x", "expiration": None, "serializer": {"type": "pickle"}},
            "result": base64.b64encode(payload).decode(),
        }
        for i, f in enumerate(cached):  # half raw pickles, half Prefect records naming pickle
            f.write_bytes(payload if i % 2 else json.dumps(record).encode())
        (results / ("0" * 8)).write_bytes(json.dumps(record).encode())  # Prefect-style name too
        log.write_text("")
        second, _ = _run(own_catalog, q, tmp_path / "out2", results, grounder="logging-spectral")
    finally:
        os.environ.pop("GEOREASON_TEST_TILE_LOG", None)
    assert not marker.exists(), "a planted pickle was executed"
    assert len(log.read_text().splitlines()) == n_tiles, "planted batches were not recomputed"
    strip = [{k: v for k, v in r.items() if k != "outputs"} for r in first["rows"]]
    assert [{k: v for k, v in r.items() if k != "outputs"} for r in second["rows"]] == strip
    for f in cached:  # replaced by valid entries again
        assert json.loads(f.read_text())["format"] == "georeason-tile-batch/1"


def test_a_rerun_from_the_tile_cache_makes_its_quicklook_without_reading_the_raster(
    prefect_harness, own_catalog, tmp_path, monkeypatch
):
    """The tile cache keeps each tile's basemap sums: a second run whose every batch comes
    from the cache (no tile grounded) has the first run's quicklook, byte for byte, and
    never reads the raster for it."""
    from tests_flow_helpers import register_logging_grounder

    import georeason.geo.export.quicklook as quicklook

    register_logging_grounder()
    reads: list[object] = []
    real = quicklook.read_basemap

    def counting(*args, **kwargs):
        reads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(quicklook, "read_basemap", counting)
    q = _questions(tmp_path / "q.jsonl", ["How many lakes are there?"])
    results = tmp_path / "results"
    log = tmp_path / "tiles.log"
    monkeypatch.setenv("GEOREASON_TEST_TILE_LOG", str(log))
    _run(own_catalog, q, tmp_path / "out1", results, grounder="logging-spectral")
    assert log.read_text().splitlines(), "the first run grounded no tile"
    assert reads == []  # summed from the tiles the grounding read
    docs = [json.loads(f.read_text()) for f in (results / "tiles").glob("*.json")]
    assert docs and all(d.get("basemap_cells", {}).get("k") == 2 for d in docs)
    log.write_text("")
    _run(own_catalog, q, tmp_path / "out2", results, grounder="logging-spectral")
    assert log.read_text() == ""  # every batch from the cache
    assert reads == []
    png = "sample/quicklook.png"
    assert (tmp_path / "out1" / png).read_bytes() == (tmp_path / "out2" / png).read_bytes()


def test_raster_edited_in_place_is_refused_then_reregistered(prefect_harness, own_catalog, tmp_path):
    from georeason.catalog import get_item
    from georeason.cli import app

    q = _questions(tmp_path / "q.jsonl", ["What is the distance between the largest lake and #road-1?"])
    results = tmp_path / "results"
    before, _ = _run(own_catalog, q, tmp_path / "out", results)
    raster = get_item("sample", own_catalog).raster_path
    with rasterio.open(raster, "r+") as ds:  # mirror the image left-right, in place
        ds.write(ds.read()[:, :, ::-1])
    res = runner.invoke(
        app, ["run", "--catalog", str(own_catalog), "--questions", str(q), "--out", str(tmp_path / "out2")]
    )
    assert res.exit_code == 2, res.output
    assert str(raster) in res.output and "changed since it was catalogued" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out2").exists()
    # the flow itself (a deployment run bypasses the CLI) refuses too: an error row, no stale answer
    stale, _ = _run(own_catalog, q, tmp_path / "out3", results)
    assert "changed since it was catalogued" in stale["rows"][0]["error"]
    res = runner.invoke(
        app, ["catalog", "add", str(raster), "--id", "sample", "--catalog", str(own_catalog), "--update"]
    )
    assert res.exit_code == 0, res.output
    after, _ = _run(own_catalog, q, tmp_path / "out", results)
    d0, d1 = before["rows"][0]["answer"], after["rows"][0]["answer"]
    assert not after["rows"][0].get("error") and d0 != pytest.approx(d1, abs=50.0), (d0, d1)


def test_failed_tile_abstains_only_answers_that_touch_it(prefect_harness, own_catalog, tmp_path, monkeypatch):
    from tests_flow_helpers import register_logging_grounder

    register_logging_grounder()
    near = "How many buildings are within 200 m of #road-1?"
    qs = ["How many lakes are there?", near, "What is the length of #road-1?"]
    q = _questions(tmp_path / "q.jsonl", qs)
    ok, ok_state = _run(own_catalog, q, tmp_path / "ok", tmp_path / "r0", grounder="logging-spectral")
    assert ok_state.is_completed()
    good = {r["question"]: r for r in ok["rows"]}
    # tile (0, 0): the top-left 5 km, far (> 7 km) from road-1 at row ~1300
    monkeypatch.setenv("GEOREASON_TEST_FAIL_TILE", "0,0")
    res, state = _run(own_catalog, q, tmp_path / "out", tmp_path / "r1", grounder="logging-spectral")
    rows = {r["question"]: r for r in res["rows"]}
    assert state.is_failed() and state.name == "AnsweredWithErrors" and "1 tile(s)" in state.message
    assert rows[qs[0]]["abstained"] and "(0, 0)" in rows[qs[0]]["reason"]  # a count of all lakes
    assert not rows[near]["abstained"] and rows[near]["answer"] == good[near]["answer"]
    assert not rows[qs[2]]["abstained"]
    # a tile on road-1 (row 2 of the 512 px grid) does make the near question abstain
    monkeypatch.setenv("GEOREASON_TEST_FAIL_TILE", "2,1")
    res, _ = _run(own_catalog, q, tmp_path / "out2", tmp_path / "r2", grounder="logging-spectral")
    assert {r["question"]: r for r in res["rows"]}[near]["abstained"]


def test_unreadable_item_still_writes_every_answer_line(prefect_harness, own_catalog, tmp_path):
    from georeason.catalog import get_item

    q = _questions(tmp_path / "q.jsonl", ["How many lakes are there?", "What is the length of #road-1?"])
    get_item("sample", own_catalog).raster_path.write_bytes(b"")  # truncated to nothing after cataloguing
    res, state = _run(own_catalog, q, tmp_path / "out", tmp_path / "r")
    rows = _rows(tmp_path / "out")
    assert len(rows) == 2 and all(r.get("error") for r in rows.values())
    assert state.is_failed()
    assert not list((tmp_path / "out").rglob("*.tmp")) and not (tmp_path / "out" / ".georeason.lock").exists()


def test_rerun_with_fewer_questions_removes_superseded_files(prefect_harness, own_catalog, tmp_path):
    out = tmp_path / "out"
    qs = ["What is the length of #road-1?", "What is the length of #road-2?"]
    _run(own_catalog, _questions(tmp_path / "q2.jsonl", qs), out, tmp_path / "r")
    assert len(list((out / "sample").glob("q*.geojson"))) == 2
    _run(own_catalog, _questions(tmp_path / "q1.jsonl", qs[:1]), out, tmp_path / "r")
    left = sorted(p.name for p in (out / "sample").glob("q*.geojson"))
    assert len(left) == 1 and left[0].startswith("q01-")  # the earlier run's q02 file is gone
    # ... and so are its picture and QGIS style (every file of the earlier run's q02)
    assert [p.name for p in (out / "sample").iterdir() if p.name.startswith("q02-")] == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"sample/{left[0]}" in manifest["files"]
    assert "answers.jsonl" in manifest["files"]


def test_two_concurrent_runs_on_one_folder(prefect_harness, own_catalog, tmp_path):
    """Two real ``georeason run`` processes into one ``--out``: the second refuses (exit 2,
    one line naming the holder's pid, no traceback) while the first holds the lock; the
    first finishes normally and releases it."""
    q = _questions(tmp_path / "q.jsonl", ["How many lakes are there?"])
    out = tmp_path / "out"
    cmd = _cli_run(own_catalog, q, out, tmp_path / "results")
    # the first run stays busy (a sleep per tile) while the second starts
    env = _cli_env(tmp_path, prefect_harness, tmp_path / "t.log", "0.3")
    first = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lock = out / ".georeason.lock"
    deadline = time.time() + 240
    holder = None
    while holder is None and first.poll() is None and time.time() < deadline:
        try:
            holder = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError):  # not there yet, or being written
            time.sleep(0.05)
    assert holder is not None, "the first run never took the lock"
    second = subprocess.run(
        cmd,
        env=_cli_env(tmp_path, prefect_harness, tmp_path / "t2.log", "0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.poll() is None, "the first run had finished: the refusal was not tested against a live run"
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    lines = [x for x in second.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert "is in use by another georeason run" in lines[0] and f"pid {holder}" in lines[0]
    assert not (tmp_path / "t2.log").exists(), "the refused run grounded tiles"
    rows = _rows(out)
    assert list(rows) == ["How many lakes are there?"] and not lock.exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    from georeason.runstate import OutputLock, OutputLockedError

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".georeason.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    with OutputLock(out):
        assert json.loads((out / ".georeason.lock").read_text())["pid"] == os.getpid()
    assert not (out / ".georeason.lock").exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / ".georeason.lock").write_text(json.dumps({"pid": live.pid, "host": os.uname().nodename}))
        with pytest.raises(OutputLockedError, match=f"pid {live.pid}"):
            with OutputLock(out):
                pass
    finally:
        live.kill()
        live.wait()


def test_nan_float_pixels_are_nodata(tmp_path):
    """Undeclared NaN pixels inside a lake do not split it (they are nodata, not land)."""
    from georeason.geo.raster.tiling import plan_tiles, read_tile

    src = tmp_path / "f.tif"
    with rasterio.open(SAMPLE / "sample_scene.tif") as s:
        prof = s.profile | {"dtype": "float32", "nodata": None}
        data = s.read().astype("float32")
    data[:, 100:110, :] = np.nan
    data[:, 200:210, :] = np.inf
    with rasterio.open(src, "w", **prof) as d:
        d.write(data)
    with rasterio.open(src) as ds:
        tile = next(t for t in plan_tiles(ds, 512, 0, skip_nodata=False) if t.index == (0, 0))
        px = read_tile(ds, tile)
    m = np.ma.getmaskarray(px)
    assert m[:, 100:110, :].all() and m[:, 200:210, :].all() and not m[:, 0:100, :].any()


def test_a_doctored_manifest_cannot_delete_inputs_or_outside_files(tmp_path):
    from georeason.runstate import write_manifest

    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    for name in ("new.geojson", "old.geojson", "input.tif"):
        (out / name).write_text("x")
    (out / "link.geojson").symlink_to(outside)
    (out / "manifest.json").write_text(
        json.dumps({"files": ["old.geojson", "input.tif", "link.geojson", "../precious.txt"]})
    )
    write_manifest(out, [out / "new.geojson"], {"n": 1}, protect=[out / "input.tif"])
    assert sorted(p.name for p in out.iterdir()) == [
        "input.tif",
        "link.geojson",
        "manifest.json",
        "new.geojson",
    ]
    assert outside.read_text() == "keep"
    assert json.loads((out / "manifest.json").read_text()) == {"n": 1, "files": ["new.geojson"]}


_SITECUSTOMIZE = """
import sys
sys.path.insert(0, {tests!r})
from tests_flow_helpers import register_logging_grounder
register_logging_grounder()
"""


def _cli_env(tmp_path: Path, api_url: str, log: Path, sleep: str) -> dict[str, str]:
    """Environment for a real ``georeason`` process that knows the logging grounder.

    A ``sitecustomize.py`` on ``PYTHONPATH`` registers it at interpreter start (in every
    process the run starts), so the command line is the user's own, unchanged.
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ, PREFECT_API_URL=api_url, GEOREASON_TEST_TILE_LOG=str(log))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env["GEOREASON_TEST_TILE_SLEEP"] = sleep
    for k in ("GEOREASON_TEST_DIE_AFTER", "GEOREASON_TEST_FAIL_TILE"):
        env.pop(k, None)
    return env


def _cli_run(catalog: Path, questions: Path, out: Path, results: Path) -> list[str]:
    exe = Path(sys.executable).with_name("georeason")
    return [
        str(exe) if exe.exists() else "georeason",
        "run",
        "--catalog",
        str(catalog),
        "--questions",
        str(questions),
        "--out",
        str(out),
        "--results",
        str(results),
        "--grounder",
        "logging-spectral",
        "--tile-px",
        "256",
        "--overlap-px",
        "32",
        "--max-task-runs",
        "12",
        "--threads",
        "1",
    ]


def _tiles_logged(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [tuple(map(int, x.split(","))) for x in log.read_text().splitlines() if x.strip()]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_kill_9_of_a_real_run_then_rerun(prefect_harness, own_catalog, tmp_path):
    """``georeason run`` in its own process group, ``kill -9`` midway (after some tile
    batches are cached), then the same command again: outputs identical to an uninterrupted
    run, no partial or temporary file, and only the batches not cached are grounded again."""
    import signal

    from georeason.tilecache import FORMAT

    qs = [
        "How many lakes are there?",
        "What is the area of the largest lake in hectares?",
        "How many buildings are within 200 m of #road-1?",
        "Which pixels are water within 150 m of #road-1?",
    ]
    q = _questions(tmp_path / "q.jsonl", qs)
    # reference: one uninterrupted run
    ref_log = tmp_path / "ref.log"
    ref = subprocess.run(
        _cli_run(own_catalog, q, tmp_path / "ref", tmp_path / "ref-results"),
        env=_cli_env(tmp_path, prefect_harness, ref_log, "0"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    all_tiles = _tiles_logged(ref_log)
    assert len(all_tiles) > 24 and len(set(all_tiles)) == len(all_tiles)

    # the run to kill: slowed down so that it is midway when the first batches are cached
    out, results, log1 = tmp_path / "out", tmp_path / "results", tmp_path / "run1.log"
    cmd = _cli_run(own_catalog, q, out, results)
    proc = subprocess.Popen(
        cmd,
        env=_cli_env(tmp_path, prefect_harness, log1, "0.2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches every process of the run
    )
    tiles_dir = results / "tiles"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            # one batch cached: with one thread the run makes 3 batches (BATCHES_PER_WORKER)
            if tiles_dir.is_dir() and len(list(tiles_dir.glob("*.json"))) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    grounded_before_kill = _tiles_logged(log1)
    assert 0 < len(grounded_before_kill) < len(all_tiles), "not killed midway"
    assert not (out / "answers.jsonl").exists()
    # what the killed run left in the cache: complete entries only, never a partial file
    cached = {}
    for f in tiles_dir.glob("*.json"):
        doc = json.loads(f.read_text())
        assert doc["format"] == FORMAT
        cached[f.name] = (f.stat().st_mtime_ns, [tuple(t["index"]) for t in doc["tiles"]])
    cached_tiles = {t for _, ts in cached.values() for t in ts}
    assert len(cached) >= 1 and cached_tiles

    # the same command again
    log2 = tmp_path / "run2.log"
    again = subprocess.run(
        cmd, env=_cli_env(tmp_path, prefect_harness, log2, "0"), capture_output=True, text=True, timeout=400
    )
    assert again.returncode == 0, again.stderr[-3000:]
    regrounded = _tiles_logged(log2)
    # the cache was reused: exactly the tiles of batches not cached were grounded again
    assert sorted(regrounded) == sorted(set(all_tiles) - cached_tiles)
    assert len(regrounded) < len(all_tiles)
    for name, (mtime, _) in cached.items():  # read, not rewritten
        assert (tiles_dir / name).stat().st_mtime_ns == mtime
    # outputs identical to the uninterrupted run's (which wrote into another folder: a path
    # to a pixel-answer mask names it)
    got, want = _tree(out), _tree(tmp_path / "ref")
    assert sorted(got) == sorted(want)
    here, there = str(out).encode(), str(tmp_path / "ref").encode()
    for name in want:
        if name.endswith((".geojson", ".jsonl", ".json", ".qml")):
            assert got[name] == want[name].replace(there, here), name
    assert got["answers.jsonl"] == want["answers.jsonl"].replace(there, here)
    # nothing partial or temporary: no lock, no temporaries, every file in the manifest
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(set(got) - {"manifest.json"}) == sorted(manifest["files"])
    leftovers = [
        p for d in (out, results) for p in d.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")
    ]
    assert leftovers == [] and not (out / ".georeason.lock").exists()


def test_bad_questions_do_not_sink_a_real_run_and_it_ends_failed(prefect_harness, own_catalog, tmp_path):
    """Issue 10, defect 4 and "a failed run shows as Completed": ``georeason run`` with
    questions that cannot be answered (lat > 90, 1e300 km, no template) among good ones
    writes a line for every question (strict JSON), exits 1 with one line, and the flow run
    stored on the Prefect server (what the UI shows) is Failed, named AnsweredWithErrors."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    qs = [
        "How many lakes are there?",
        "How far is #road-1 from (15.1, 95)?",
        "Which buildings are within 1e300 km of #road-1?",
        "Why is the sky blue?",
        "What is the length of #road-1?",
    ]
    q = _questions(tmp_path / "q.jsonl", qs)
    out = tmp_path / "out"
    cmd = _cli_run(own_catalog, q, out, tmp_path / "results")
    cmd[cmd.index("logging-spectral")] = "spectral"
    res = subprocess.run(
        cmd,
        env=_cli_env(tmp_path, prefect_harness, tmp_path / "t.log", "0"),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "georeason: run ended in state AnsweredWithErrors" in res.stderr
    lines = (out / "answers.jsonl").read_text().splitlines()
    rows = [json.loads(x, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) for x in lines]
    assert [r["question"] for r in rows] == qs
    assert not rows[0].get("error") and rows[0]["answer"] >= 1
    for r, must in zip(rows[1:4], ["latitude 95", "1e+300", "sky"]):
        assert r.get("error") and must in r["error"], r
    assert not rows[4].get("error") and rows[4]["answer"] > 0

    async def latest():
        async with get_client() as client:
            return (await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1))[0]

    run = asyncio.run(latest())
    assert run.state.is_failed() and run.state.name == "AnsweredWithErrors", run.state
    assert "3" in (run.state.message or ""), run.state.message
