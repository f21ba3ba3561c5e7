"""The Prefect flows, run for real against a local test server (no mocks).

The catalog here is built in ``tmp_path`` from the shipped sample scene; questions are
answered through the flow and compared with the same questions asked of the ground-truth
vectors directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import rasterio

from georeason.geo.vector.scene import read_scene

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mini_catalog(tmp_path_factory):
    """A catalog with the sample scene and a roads-only vector layer."""
    from georeason.catalog import add_item

    root = tmp_path_factory.mktemp("catalog")
    truth = read_scene(SAMPLE / "sample_truth.geojson")
    roads = SAMPLE / "sample_roads.geojson"
    assert roads.exists(), "the sample's roads layer is missing; run data_catalog/make_sample.py"
    add_item(root / "cat", SAMPLE / "sample_scene.tif", vectors=[roads], item_id="sample")
    return root / "cat", truth


QUESTIONS = [
    "How many lakes are there?",
    "Which is the largest lake?",
    "How many buildings are within 200 m of #road-1?",
    "What is the distance between the largest lake and the smallest lake?",
    "In which direction is the smallest lake from the largest lake?",
    "Does the river intersect #road-1?",
    "Which pixels are water within 150 m of #road-1?",
]


def _write_questions(path: Path, questions=QUESTIONS) -> Path:
    path.write_text("".join(json.dumps({"question": q, "item": "sample"}) + "\n" for q in questions))
    return path


def _run(catalog, questions, out, results, **kw):
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.flows.answer import answer

    runner = kw.pop("runner", ThreadPoolTaskRunner(max_workers=2))
    state = answer.with_options(task_runner=runner)(
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

    result = result_of(state)
    result["state"] = (state.type.value, state.name)  # a run with errors/tile failures is FAILED
    return result


def _check_against_truth(rows, truth):
    from tests_flow_helpers import check_against_truth

    check_against_truth(rows, truth, QUESTIONS)


def test_answer_flow_matches_truth_and_writes_outputs(prefect_harness, mini_catalog, tmp_path):
    catalog, truth = mini_catalog
    out = tmp_path / "out"
    result = _run(catalog, _write_questions(tmp_path / "q.jsonl"), out, tmp_path / "results")
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(rows) == len(QUESTIONS)
    assert all(r["item"] == "sample" for r in rows)
    _check_against_truth(rows, truth)
    # every answer has its GeoJSON; the pixel answer has a mask on the raster's grid
    for r in rows:  # paths relative to answers.jsonl
        assert (out / r["outputs"]["geojson"]).exists()
    pix = next(r for r in rows if r["kind"] == "pixel")
    assert pix["answer"] > 0
    with rasterio.open(out / pix["outputs"]["mask"]) as m, rasterio.open(SAMPLE / "sample_scene.tif") as s:
        assert (m.transform, m.width, m.height, m.crs) == (s.transform, s.width, s.height, s.crs)
        assert int((m.read(1) == 1).sum()) == pix["answer"]
    item_out = out / "sample"
    for name in ("objects.gpkg", "quicklook.png", "sample.qgs"):
        assert (item_out / name).stat().st_size > 0
    assert all(p.stat().st_size > 0 for p in item_out.glob("objects*.geojson"))
    assert result["errors"] == 0 and result["failed_tiles"] == 0


def test_artifacts_visible_through_the_api(prefect_harness, mini_catalog, tmp_path):
    from prefect.artifacts import Artifact

    catalog, _ = mini_catalog
    _run(
        catalog, _write_questions(tmp_path / "q.jsonl", QUESTIONS[:2]), tmp_path / "out", tmp_path / "results"
    )
    summary = Artifact.get("georeason-summary")
    table = Artifact.get("georeason-answers")
    link = Artifact.get("georeason-outputs")
    assert summary is not None and "How many lakes are there?" in summary.data
    assert table is not None and "Which is the largest lake?" in str(table.data)
    assert link is not None and str((tmp_path / "out").resolve()) in str(link.data)


def test_failing_tile_does_not_sink_the_others(prefect_harness, mini_catalog, tmp_path, monkeypatch):
    from tests_flow_helpers import register_logging_grounder

    register_logging_grounder()
    monkeypatch.setenv("GEOREASON_TEST_FAIL_TILE", "1,1")
    catalog, _ = mini_catalog
    qs = ["How many lakes are there?", "Does the river intersect #road-1?", "What is the length of #road-1?"]
    result = _run(
        catalog,
        _write_questions(tmp_path / "q.jsonl", qs),
        tmp_path / "out",
        tmp_path / "results",
        grounder="logging-spectral",
    )
    rows = {r["question"]: r for r in result["rows"]}
    assert result["failed_tiles"] == 1
    assert result["state"] == ("FAILED", "AnsweredWithErrors")  # not a green run in the UI
    # answers that need grounded classes abstain, naming the failed tile ...
    assert rows[qs[0]]["abstained"] and "(1, 1)" in rows[qs[0]]["reason"]
    assert rows[qs[1]]["abstained"]
    # ... an answer from the vector layer alone is still given
    assert not rows[qs[2]]["abstained"] and rows[qs[2]]["answer"] > 0


_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from tests_flow_helpers import register_logging_grounder
    register_logging_grounder()
    from prefect.task_runners import ThreadPoolTaskRunner
    from georeason.flows.answer import answer
    answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))(
        catalog={catalog!r}, questions={questions!r}, out={out!r}, results_dir={results!r},
        grounder="logging-spectral", tile_px=256, overlap_px=32, max_task_runs=12)
    """
)


def _child(tmp_path, catalog, questions, out, results, log, die_after=None, api_url=None):
    env = dict(os.environ, GEOREASON_TEST_TILE_LOG=str(log), PREFECT_API_URL=api_url)
    env.pop("GEOREASON_TEST_DIE_AFTER", None)
    if die_after:
        env["GEOREASON_TEST_DIE_AFTER"] = str(die_after)
    code = _CHILD.format(
        tests=str(Path(__file__).parent),
        catalog=str(catalog),
        questions=str(questions),
        out=str(out),
        results=str(results),
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def _tiles(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [tuple(map(int, line.split(","))) for line in log.read_text().splitlines() if line]


@pytest.mark.slow
def test_rerun_after_kill_reuses_cached_tiles(prefect_harness, mini_catalog, tmp_path):
    catalog, _ = mini_catalog
    qs = _write_questions(tmp_path / "q.jsonl", QUESTIONS[:4])
    # reference: one uninterrupted run
    ref = _child(
        tmp_path,
        catalog,
        qs,
        tmp_path / "ref",
        tmp_path / "ref-results",
        tmp_path / "ref.log",
        api_url=prefect_harness,
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    all_tiles = _tiles(tmp_path / "ref.log")
    assert len(all_tiles) > 20
    # killed midway (os._exit after 60% of the tiles: no cleanup at all)
    killed = _child(
        tmp_path,
        catalog,
        qs,
        tmp_path / "out",
        tmp_path / "results",
        tmp_path / "run1.log",
        die_after=int(len(all_tiles) * 0.6),
        api_url=prefect_harness,
    )
    assert killed.returncode == 137
    first = _tiles(tmp_path / "run1.log")
    assert not (tmp_path / "out" / "answers.jsonl").exists()
    # no partial file under a final name: every cached batch is a complete JSON entry
    for f in (tmp_path / "results" / "tiles").glob("*.json"):
        assert json.loads(f.read_text())["format"] == "georeason-tile-batch/1"
    # rerun with the same result storage: finished batches come from the cache
    again = _child(
        tmp_path,
        catalog,
        qs,
        tmp_path / "out",
        tmp_path / "results",
        tmp_path / "run2.log",
        api_url=prefect_harness,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    second = _tiles(tmp_path / "run2.log")
    # One worker thread: batches run in plan order, each persisted when it returns. The kill
    # came inside tile K, so the batches before the one holding tile K had finished.
    from georeason.catalog import list_items
    from georeason.workers import run_pipeline

    k = len(first)
    # the flow's batches (one thread: BATCHES_PER_WORKER, more where one would hold more than
    # MAX_BATCH_TILES tiles, at most max_task_runs=12), from the same plan; the log lists
    # the grounded tiles only (a tile without valid pixels is read, not grounded)
    (info,) = [i for i in list_items(catalog) if i.raster_path]
    pipeline = run_pipeline("spectral", {}, tile_px=256, overlap_px=32, max_task_runs=12, parallel=1)
    _, _, batches = pipeline.plan_ground(info.raster_path, ["water"])
    holding = next(b for b in batches if first[-1] in {tuple(map(int, t.index)) for t in b})
    logged = set(all_tiles)
    done = all_tiles.index(
        next(tuple(map(int, t.index)) for t in holding if tuple(map(int, t.index)) in logged)
    )
    assert done > 0, "no batch had finished before the kill"
    assert first == all_tiles[:k]
    assert second == all_tiles[done:], "finished batches were grounded again (cache not used)"

    def strip(path):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for r in rows:
            r.pop("outputs", None)
        return rows

    assert strip(tmp_path / "out" / "answers.jsonl") == strip(tmp_path / "ref" / "answers.jsonl")
    # the dead run's lock was taken over and released; its temporaries are gone
    assert not (tmp_path / "out" / ".georeason.lock").exists()
    assert not [p for d in ("out", "results") for p in (tmp_path / d).rglob("*.tmp")]
    assert (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow
def test_flow_runs_on_a_dask_local_cluster(prefect_harness, mini_catalog, tmp_path):
    """--dask-address: the same flow on a Dask cluster (a LocalCluster of 2 worker processes)."""
    from distributed import LocalCluster

    from georeason.flows.runners import task_runner

    catalog, truth = mini_catalog
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = task_runner(dask_address=cluster.scheduler_address)
        result = _run(
            catalog,
            _write_questions(tmp_path / "q.jsonl"),
            tmp_path / "out",
            tmp_path / "results",
            runner=runner,
        )
    _check_against_truth(result["rows"], truth)


def test_scheduled_deployment_registers_with_cron(prefect_harness):
    from prefect import get_client

    from georeason.flows.deploy import deployment

    dep = deployment(name="nightly-test", cron="15 3 * * *")
    dep_id = dep.apply()

    async def read():
        async with get_client() as client:
            return await client.read_deployment(dep_id)

    import asyncio

    got = asyncio.run(read())
    assert got.name == "nightly-test"
    crons = [s.schedule.cron for s in got.schedules]
    assert crons == ["15 3 * * *"]
    assert got.parameters["out"] == "outputs/batch"


def test_prefect_yaml_points_at_the_batch_flow():
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (dep,) = spec["deployments"]
    assert dep["work_pool"]["name"] == "georeason-process"
    assert dep["schedules"][0]["cron"] == "0 2 * * *"
    flow = load_flow_from_entrypoint(str(REPO / dep["entrypoint"]))
    assert flow.name == "georeason-batch"
