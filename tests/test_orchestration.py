"""Orchestration (issue 11): references not data through Prefect, few large batches, every
core (worker processes), and the Prefect API a run uses (a started one, or a temporary one
started first).

Expected answers are never taken from the code under test alone: runners are compared
with each other and with the plain in-process loop, and the worker-pool result with
:func:`georeason.pipeline.ground_job_batch` run here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"

QUESTIONS = [
    "How many lakes are there?",
    "Which is the largest lake?",
    "How many buildings are within 200 m of #road-1?",
    "What is the total area of vegetation in hectares?",
    "Which pixels are water within 150 m of #road-1?",
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from georeason.catalog import add_item

    root = tmp_path_factory.mktemp("orch")
    add_item(
        root / "cat", SAMPLE / "sample_scene.tif", vectors=[SAMPLE / "sample_roads.geojson"], item_id="sample"
    )
    q = root / "q.jsonl"
    q.write_text("".join(json.dumps({"question": x, "item": "sample"}) + "\n" for x in QUESTIONS))
    return root / "cat", q


def _flow(catalog, questions, out: Path, processes: int, threads: int = 2):
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.flows.answer import answer

    return answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=threads))(
        catalog=str(catalog),
        questions=str(questions),
        out=str(out),
        results_dir=str(out.parent / f"{out.name}-results"),
        tile_px=512,
        overlap_px=64,
        processes=processes,
        return_state=True,
    )


def _comparable(jsonl: Path) -> list[dict]:
    rows = []
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        r.pop("outputs", None)
        (r.get("details") or {}).pop("mask", None)  # the path differs by output folder
        rows.append(r)
    return rows


def _mask(out: Path) -> np.ndarray:
    (tif,) = sorted((out / "sample" / "masks").glob("*.tif"))
    with rasterio.open(tif) as src:
        return src.read()


@pytest.mark.e2e
def test_process_and_thread_runners_give_identical_outputs(prefect_harness, catalog, tmp_path):
    """Grounding in worker processes or in threads: the same answers, objects and masks,
    and the same as the plain in-process loop of ``georeason ask``."""
    from georeason.catalog import list_items
    from georeason.geo.export.layers import answer_stem
    from georeason.pipeline import Pipeline, compile_questions, outcome_row, read_vectors
    from georeason.runstate import result_of

    cat, q = catalog
    threads, procs = tmp_path / "threads", tmp_path / "procs"
    s_threads = _flow(cat, q, threads, processes=0)
    s_procs = _flow(cat, q, procs, processes=2)
    for s in (s_threads, s_procs):
        res = result_of(s)
        assert res["errors"] == 0 and res["failed_tiles"] == 0
    rows = _comparable(threads / "answers.jsonl")
    assert rows == _comparable(procs / "answers.jsonl")
    assert [r["answer"] for r in rows][:2] == [3, "lake-2"]
    for name in ("objects.polygons.geojson", "objects.lines.geojson"):
        assert (threads / "sample" / name).read_bytes() == (procs / "sample" / name).read_bytes()
    assert np.array_equal(_mask(threads), _mask(procs)) and _mask(procs).sum() > 0
    # the in-process loop (``ask``): the same answers
    (info,) = [i for i in list_items(cat) if i.id == "sample"]
    local = tmp_path / "local"
    result = Pipeline(tile_px=512, overlap_px=64, on_unusable_bands="abstain").run(
        compile_questions(QUESTIONS),
        raster=str(info.raster_path),
        vectors=read_vectors(info.vector_paths),
        item="sample",
        mask_path=lambda n, x: local / "masks" / f"{answer_stem(n, x)}.tif",
        item_bands=info.bands,
    )
    plain = [outcome_row(a, "sample") for a in result.answers]
    for r in plain:
        (r.get("details") or {}).pop("mask", None)
    assert json.loads(json.dumps(plain)) == rows


@pytest.mark.e2e
def test_flow_returns_a_summary_and_few_large_batches(prefect_harness, catalog, tmp_path):
    """The flow's result is a small summary (answers travel in answers.jsonl, read back by
    result_of); tiles go in a few batches per worker, not one task run per tile."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from georeason.flows.answer import BATCHES_PER_WORKER
    from georeason.runstate import result_of

    cat, q = catalog
    out = tmp_path / "out"
    state = _flow(cat, q, out, processes=2)
    raw = state.result()
    assert "rows" not in raw and len(json.dumps(raw)) < 2000, raw
    res = result_of(state)
    on_disk = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    assert len(res["rows"]) == len(on_disk) == len(QUESTIONS)
    for r, d in zip(res["rows"], on_disk):
        assert {k: v for k, v in r.items() if k not in ("outputs", "details")} == {
            k: v for k, v in d.items() if k not in ("outputs", "details")
        }
        # details equal but for a pixel answer's mask: relative on disk, absolute in the rows
        rmask, dmask = r.get("details", {}).pop("mask", None), d.get("details", {}).pop("mask", None)
        assert r.get("details") == d.get("details")
        assert (rmask is None) == (dmask is None)
        if dmask is not None:
            assert not Path(dmask).is_absolute() and Path(rmask) == out / dmask and Path(rmask).exists()
        assert d["outputs"].keys() == r["outputs"].keys()
        for key in d["outputs"]:
            rels, absolutes = d["outputs"][key], r["outputs"][key]
            rels, absolutes = ([rels], [absolutes]) if isinstance(rels, str) else (rels, absolutes)
            for rel, absolute in zip(rels, absolutes, strict=True):
                assert (
                    Path(absolute).is_absolute() and Path(absolute) == out / rel and Path(absolute).exists()
                )
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    ground = [r for r in runs if r.name.startswith("sample: ground")]
    with rasterio.open(SAMPLE / "sample_scene.tif") as src:
        from georeason.geo.raster.tiling import plan_tiles

        n_tiles = len(list(plan_tiles(src, 512, 64)))
    assert n_tiles >= 16
    assert 1 <= len(ground) <= BATCHES_PER_WORKER * 2 < n_tiles, [r.name for r in ground]


def _job_and_tiles():
    from georeason.geo.raster.io import as_dataset
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.registry import prepare_spec
    from georeason.pipeline import GroundJob

    raster = str(SAMPLE / "sample_scene.tif")
    bands = ("blue", "green", "red", "nir")
    spec = prepare_spec("spectral", raster, {"bands": list(bands)})
    with as_dataset(raster) as src:
        tiles = list(plan_tiles(src, 1024, 128))
    return GroundJob(raster, spec, ("lake", "building"), bands), tiles


def _canon(result) -> list:
    """A batch result as plain values (detections compare by identity)."""
    return [
        (
            tile.index,
            [
                (
                    d.label,
                    d.score,
                    d.kind,
                    d.whole,
                    d.geometry.wkb if hasattr(d.geometry, "wkb") else d.geometry.tobytes(),
                )
                for d in dets
            ],
        )
        for tile, dets in result.results
    ] + [(f.index, f.error) for f in result.failures]


def test_worker_pool_grounds_like_the_caller_and_survives_a_killed_worker():
    from georeason.errors import TileReadError
    from georeason.pipeline import ground_job_batch
    from georeason.workers import WorkerPool

    job, tiles = _job_and_tiles()
    expected = _canon(ground_job_batch(job, tiles[:2]))
    assert sum(len(d) for _, d in expected[:2]) > 0
    with WorkerPool(2) as pool:
        assert _canon(pool.ground(job, tiles[:2])) == expected
        pids = {f.result() for f in pool.warm()}  # the live workers
        pids |= set(pool._executor._processes)
        assert 1 <= len(pids) <= 2 and os.getpid() not in pids
        box: dict = {}

        def ground_all() -> None:
            try:
                box["result"] = pool.ground(job, tiles)
            except Exception as exc:  # noqa: BLE001 - inspected below
                box["error"] = exc

        t = threading.Thread(target=ground_all)
        t.start()
        time.sleep(0.2)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        t.join(60)
        assert isinstance(box.get("error"), TileReadError), box
        assert "worker process died" in str(box["error"])
        # the pool was rebuilt: the next batch is grounded, identically
        assert _canon(pool.ground(job, tiles[:2])) == expected


def test_runner_choice():
    from georeason.errors import InputError
    from georeason.flows.runners import runner_for
    from georeason.workers import default_workers

    chosen = runner_for(grounder="spectral")
    if default_workers() > 1:
        assert (chosen.name, chosen.processes) == ("process", default_workers())
    else:
        assert (chosen.name, chosen.processes) == ("thread", 0)
    assert runner_for(grounder="qwen2.5-vl").name == "thread"  # a model: one copy, threads
    assert runner_for(runner="process", workers=3).processes == 3
    t = runner_for(runner="thread", threads=5)
    assert (t.processes, t.task_runner._max_workers) == (0, 5)
    with pytest.raises(InputError, match="--dask"):
        runner_for(runner="process", dask_workers=2)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "georeason.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def test_run_refuses_a_configured_server_that_does_not_answer(tmp_path):
    from georeason.prefect_server import _free_port

    url = f"http://127.0.0.1:{_free_port()}/api"
    r = _cli("run", "--item", "sample", "--out", str(tmp_path / "out"), env={"PREFECT_API_URL": url})
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and url in lines[0] and "prefect server start" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out" / "answers.jsonl").exists()


def test_run_bad_runner_is_one_line_exit_2(tmp_path):
    r = _cli("run", "--item", "sample", "--runner", "fibres", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "runner" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_configured_api_url_from_environment_and_profile(tmp_path):
    """Read without importing Prefect: the environment wins over the active profile."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://127.0.0.1:4999/api"\n'
    )
    code = (
        "import sys; from georeason.prefect_server import configured_api_url; "
        "print(configured_api_url(), 'prefect' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}

    def ask(**extra: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**env, **extra}, check=True
        ).stdout.strip()

    assert ask(PREFECT_HOME=str(home)) == "http://127.0.0.1:4999/api False"
    assert ask(PREFECT_HOME=str(home), PREFECT_API_URL="http://127.0.0.1:5000/api") == (
        "http://127.0.0.1:5000/api False"
    )
    assert ask(PREFECT_HOME=str(tmp_path / "nothing")) == "None False"


def test_temporary_server_starts_answers_and_stops():
    import urllib.request

    from georeason.prefect_server import TemporaryServer

    with TemporaryServer() as server:
        url = server.wait_ready()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            assert resp.status == 200
        proc = server.process
    assert proc is not None and proc.poll() is not None  # stopped


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_temporary_server_ends_when_the_run_is_killed():
    """kill -9 of the run's process leaves no temporary server behind."""
    code = (
        "from georeason.prefect_server import TemporaryServer; s = TemporaryServer().start(); "
        "print(s.process.pid, flush=True); import time; time.sleep(120)"
    )
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    server_pid = int(run.stdout.readline())
    time.sleep(1.0)
    os.kill(server_pid, 0)  # running
    run.kill()
    run.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(server_pid, signal.SIGKILL)
    pytest.fail("the temporary server outlived the killed run")
