"""Grounding ahead (issue 11, orch2): ``georeason run`` submits the first item's tile batches
to the worker pool while Prefect starts, and the flow's ``ground-tiles`` task runs take
those results instead of grounding again.

Expected detections come from :func:`georeason.pipeline.ground_job_batch` run here, in
this process; expected answers from a run that does not ground ahead (``--runner thread``)
and from the sample's hand-checked answers (3 lakes, the largest ``lake-2``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
BANDS = ("blue", "green", "red", "nir")


def _job_and_tiles(classes: tuple[str, ...] = ("lake", "building")):
    from georeason.geo.raster.io import as_dataset
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.registry import prepare_spec
    from georeason.pipeline import GroundJob

    raster = str(SAMPLE / "sample_scene.tif")
    spec = prepare_spec("spectral", raster, {"bands": list(BANDS)})
    with as_dataset(raster) as src:
        tiles = list(plan_tiles(src, 1024, 128))
    return GroundJob(raster, spec, classes, BANDS), tiles


def _canon(result) -> list:
    """A batch result as plain values (detections compare by identity)."""
    return [
        (tile.index, [(d.label, d.score, d.kind, d.whole, d.geometry.wkb) for d in dets])
        for tile, dets in result.results
    ] + [(f.index, f.error) for f in result.failures]


def test_batches_submitted_ahead_are_taken_not_ground_again():
    from georeason.pipeline import ground_job_batch, plan_batches
    from georeason.workers import WorkerPool

    job, tiles = _job_and_tiles()
    batches = plan_batches(tiles, 3)
    assert len(batches) == 3
    expected = [_canon(ground_job_batch(job, b)) for b in batches]
    assert sum(len(d) for e in expected for _, d in e) > 0
    other, _ = _job_and_tiles(("lake",))  # another job: never served from this job's batches
    with WorkerPool(2) as pool:
        assert pool.prefetch(job, batches) == 3
        assert pool.prefetch(job, batches) == 0  # already waiting: not submitted twice
        assert all(pool.has_ahead(job, b) for b in batches)
        assert not pool.has_ahead(other, batches[0])
        assert not pool.has_ahead(job, batches[0][:1])  # other tiles: another batch

        submit = pool._executor.submit

        def refuse(*args, **kwargs):
            raise AssertionError("a batch submitted ahead was submitted again")

        pool._executor.submit = refuse  # type: ignore[method-assign]
        try:
            got = [_canon(pool.ground(job, b)) for b in batches]
        finally:
            pool._executor.submit = submit  # type: ignore[method-assign]
        assert got == expected
        assert not any(pool.has_ahead(job, b) for b in batches)  # each taken once
        # taken: the same batch again is grounded anew, identically
        assert _canon(pool.ground(job, batches[0])) == expected[0]


def test_offered_pool_goes_to_one_taker_of_its_size():
    from georeason.workers import WorkerPool, offer_pool, take_offered_pool

    with WorkerPool(2) as pool:
        offer_pool(pool)
        assert take_offered_pool(3) is None
        assert take_offered_pool(2) is pool
        assert take_offered_pool(2) is None


def test_plan_item_is_what_run_grounds():
    """The plan made ahead (``Pipeline.plan_item``) is the job and batches ``Pipeline.run``
    hands its mapper; with every class in the vector layers there is nothing to plan."""
    from georeason.catalog import list_items
    from georeason.pipeline import compile_questions, local_map, read_vectors
    from georeason.workers import run_pipeline

    (info,) = [i for i in list_items(REPO / "data_catalog") if i.id == "sample"]
    vectors = read_vectors(info.vector_paths)
    qs = compile_questions(["How many lakes are there?", "How many buildings are within 200 m of #road-1?"])
    seen: list = []

    def recording_map(job, batches, tiles_done=None):
        seen.append((job, [[t.index for t in b] for b in batches]))
        return local_map(job, batches, tiles_done)

    options = {"bands": list(BANDS), "min_confidence": 0.3}
    kw = dict(tile_px=512, overlap_px=64, max_task_runs=200, parallel=2)
    pipeline = run_pipeline("spectral", options, map=recording_map, **kw)
    plan = run_pipeline("spectral", options, **kw).plan_item(
        qs,
        raster=str(info.raster_path),
        vectors=vectors,
        item=info.id,
        raster_sha256=info.sha256,
        item_bands=info.bands,
    )
    pipeline.run(
        qs,
        raster=str(info.raster_path),
        vectors=vectors,
        item=info.id,
        raster_sha256=info.sha256,
        item_bands=info.bands,
    )
    assert plan is not None and len(seen) == 1
    job, batches = plan
    assert job == seen[0][0] and job.classes == ("lake", "building")
    assert [[t.index for t in b] for b in batches] == seen[0][1]
    assert len(batches) == 6  # 3 per worker, 2 workers
    only_roads = compile_questions(["How many roads are there?"])
    assert (
        pipeline.plan_item(only_roads, raster=str(info.raster_path), vectors=vectors, item_bands=info.bands)
        is None
    )


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "georeason.cli",
            "--verbose",
            "run",
            "--item",
            "sample",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    for r in rows:
        (r.get("details") or {}).pop("mask", None)  # the mask's path names the output folder
    return [{k: v for k, v in r.items() if k != "outputs"} for r in rows]


@pytest.mark.e2e
def test_run_grounds_ahead_with_its_temporary_server_and_answers_the_same(tmp_path):
    ahead, threads = tmp_path / "ahead", tmp_path / "threads"
    a = _run(ahead, "--runner", "process", "--workers", "2")
    assert a.returncode == 0, a.stderr[-3000:]
    assert "(submitted ahead: while Prefect started" in a.stderr
    t = _run(threads, "--runner", "thread")
    assert t.returncode == 0, t.stderr[-3000:]
    assert "submitted ahead" not in t.stderr
    rows = _rows(ahead)
    assert rows == _rows(threads)
    assert [r["answer"] for r in rows][:2] == [3, "lake-2"]
    for name in ("objects.polygons.geojson", "objects.lines.geojson"):
        assert (ahead / "sample" / name).read_bytes() == (threads / "sample" / name).read_bytes()


def test_ground_ahead_submits_the_first_items_batches_and_hands_over_the_questions(tmp_path, monkeypatch):
    from georeason.catalog import list_items
    from georeason.config import read_questions
    from georeason.pipeline import compile_questions
    from georeason.tilecache import TileCache, batch_key
    from georeason.workers import WorkerPool, ground_ahead, run_pipeline, take_compiled

    cat = REPO / "data_catalog"
    texts = [s.question for s in read_questions(cat / "questions.yaml") if s.item in (None, "sample")]
    (info,) = [i for i in list_items(cat) if i.id == "sample"]
    pipeline = run_pipeline("spectral", {}, tile_px=1024, overlap_px=128, max_task_runs=200, parallel=2)
    with WorkerPool(2) as pool:
        n = ground_ahead(pool, pipeline, catalog=cat, questions=None, items=["sample"], results_dir=tmp_path)
        # the batches the flow will ask for: planned here from the same questions and files
        from georeason.pipeline import read_vectors

        plan = pipeline.plan_item(
            compile_questions(texts),
            raster=str(info.raster_path),
            vectors=read_vectors(info.vector_paths),
            item=info.id,
            raster_sha256=info.sha256,
            item_bands=info.bands,
        )
        assert plan is not None
        job, batches = plan
        assert n == len(batches) >= 2
        assert all(pool.has_ahead(job, b) for b in batches)
        import georeason.geo.language.english as english

        calls = []
        compile_question = english.compile_question

        def counting(q):
            calls.append(q)
            return compile_question(q)

        with monkeypatch.context() as m:
            m.setattr(english, "compile_question", counting)
            got = take_compiled(texts, pool)
            assert calls == []  # handed over, not parsed again
            again = take_compiled(texts, pool)  # handed over once: now compiled anew
            assert len(calls) == len(set(texts))
        assert got == again == compile_questions(texts)  # the same programs as compiled anew
    # a batch already in the tile cache under the results folder is not submitted again
    assert job.raster_sha256
    key = batch_key(
        job.raster_sha256, batches[0], job.spec.name, job.spec.config_json, job.classes, job.bands
    )
    TileCache(tmp_path).path(key).write_text("{}", encoding="utf-8")
    with WorkerPool(1) as pool:
        n = ground_ahead(pool, pipeline, catalog=cat, questions=None, items=["sample"], results_dir=tmp_path)
        assert n == len(batches) - 1 and not pool.has_ahead(job, batches[0])
    # nothing to ground for an unknown item: nothing submitted, no error
    with WorkerPool(1) as pool:
        assert ground_ahead(pool, pipeline, catalog=cat, questions=None, items=["nope"]) == 0


def test_plan_made_ahead_is_taken_by_the_flows_pipeline_once_and_only_for_the_same_inputs(
    tmp_path, monkeypatch
):
    """``georeason run`` fits the grounder and plans the tiles once, ahead: the flow's
    pipeline (a new one, built the same way) takes that plan (no second threshold fit, no
    second tile plan) and grounds exactly the batches a fresh plan would give."""
    import os as _os
    import shutil

    import georeason.geo.raster.tiling as tiling
    import georeason.models.registry as registry
    from georeason.catalog import list_items
    from georeason.pipeline import compile_questions, local_map
    from georeason.workers import WorkerPool, ground_ahead, run_pipeline, take_plans

    cat = tmp_path / "cat"
    shutil.copytree(REPO / "data_catalog", cat)
    (info,) = [i for i in list_items(cat) if i.id == "sample"]
    kw = dict(tile_px=512, overlap_px=64, max_task_runs=200, parallel=2)
    fresh = run_pipeline("spectral", {}, **kw)
    texts = ["How many lakes are there?"]
    expected = fresh.plan_item(
        compile_questions(texts),
        raster=str(info.raster_path),
        item=info.id,
        raster_sha256=info.sha256,
        item_bands=info.bands,
    )
    assert expected is not None
    qfile = tmp_path / "q.txt"
    qfile.write_text(texts[0] + "\n", encoding="utf-8")
    seen: list = []

    def recording_map(job, batches, tiles_done=None):
        seen.append((job, [[t.index for t in b] for b in batches]))
        return local_map(job, batches, tiles_done)

    fits: list = []
    plans: list = []
    prepare_spec, plan_tiles = registry.prepare_spec, tiling.plan_tiles
    monkeypatch.setattr(registry, "prepare_spec", lambda *a, **k: fits.append(a) or prepare_spec(*a, **k))
    monkeypatch.setattr(tiling, "plan_tiles", lambda *a, **k: plans.append(a) or plan_tiles(*a, **k))
    with WorkerPool(1) as pool:
        n = ground_ahead(
            pool, run_pipeline("spectral", {}, **kw), catalog=cat, questions=qfile, items=["sample"]
        )
        assert n == len(expected[1]) and len(fits) == len(plans) == 1
        flow_pipeline = run_pipeline("spectral", {}, map=recording_map, **kw)
        take_plans(flow_pipeline, pool)
        assert pool.plans == {}  # handed over once

    def run() -> None:
        flow_pipeline.run(
            compile_questions(texts),
            raster=str(info.raster_path),
            item=info.id,
            raster_sha256=info.sha256,
            item_bands=info.bands,
        )

    run()
    assert len(fits) == len(plans) == 1  # taken: not fitted or planned again
    job, batches = expected
    assert seen[-1] == (job, [[t.index for t in b] for b in batches])
    run()  # the plan was taken once: a second run plans anew, the same
    assert len(fits) == len(plans) == 2 and seen[-1] == seen[0]
    # a plan made ahead is not used once the file changed (another mtime)
    flow_pipeline.plan_item(
        compile_questions(texts),
        raster=str(info.raster_path),
        item=info.id,
        raster_sha256=info.sha256,
        item_bands=info.bands,
    )
    assert len(flow_pipeline.plans) == 1 and len(fits) == 3
    st = _os.stat(info.raster_path)
    _os.utime(info.raster_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    run()
    assert len(fits) == 4  # planned again


def test_flow_frees_the_worker_pool_once_the_last_item_is_grounded():
    """The ``answer`` flow's worker processes (and the forkserver) go when the last item's
    batches are all merged, not at the end of the run; an earlier item leaves them."""
    from multiprocessing import forkserver

    from georeason.flows.answer import _ReleaseAfterLast
    from georeason.pipeline import local_map, plan_batches
    from georeason.workers import WorkerPool

    job, tiles = _job_and_tiles(("lake",))
    batches = plan_batches(tiles, 2)
    pool = WorkerPool(1)
    assert pool.warm()[0].result() > 0
    release = _ReleaseAfterLast(pool)
    mapper = release.wrap(local_map)
    assert len(list(mapper(job, batches, None))) == len(batches)  # not the last item
    assert pool.ground(job, batches[0]).results  # the pool still grounds
    release.armed = True
    it = iter(mapper(job, batches, None))
    next(it)
    assert pool.ground(job, batches[0]).results  # the last item, batches still coming: still open
    assert len(list(it)) == len(batches) - 1
    for t in threading.enumerate():  # the pool is closed in the background
        if t.name == "georeason-release":
            t.join(60)
    with pytest.raises(RuntimeError):  # closed: the executor takes no more work
        pool._executor.submit(int)
    assert getattr(forkserver._forkserver, "_forkserver_pid", None) is None  # forkserver stopped
    release.release()  # a second release is harmless
    with WorkerPool(1) as again:  # a later pool starts a new forkserver
        assert again.ground(job, batches[0]).results


def test_prefetch_item_submits_batches_up_to_a_tile_budget(tmp_path):
    """The next item goes ahead only up to ``max_tiles`` tiles (at least one batch), in the
    flow's batch order; its plan is kept for the flow (not fitted twice)."""
    from georeason.catalog import list_items
    from georeason.config import read_questions
    from georeason.pipeline import compile_questions
    from georeason.workers import WorkerPool, prefetch_item, run_pipeline

    cat = REPO / "data_catalog"
    texts = [s.question for s in read_questions(cat / "questions.yaml") if s.item in (None, "sample")]
    (info,) = [i for i in list_items(cat) if i.id == "sample"]
    compiled = compile_questions(texts)
    pipeline = run_pipeline("spectral", {}, tile_px=1024, overlap_px=128, max_task_runs=200, parallel=2)
    with WorkerPool(1) as pool:
        n = prefetch_item(pool, pipeline, info, compiled, max_tiles=3)
        (key,) = pipeline.plans
        job, _, batches = pipeline.plans[key]
        sizes = [len(b) for b in batches]
        assert len(batches) == 6 and sum(sizes) == 9
        want = max(k for k in range(1, len(batches) + 1) if sum(sizes[:k]) <= 3)
        assert n == want < len(batches)
        assert [pool.has_ahead(job, b) for b in batches] == [k < want for k in range(len(batches))]
    with WorkerPool(1) as pool:  # a budget smaller than the first batch: that batch still goes
        assert prefetch_item(pool, pipeline, info, compiled, max_tiles=0) == 1


@pytest.mark.e2e
def test_run_grounds_the_next_item_while_one_is_answered_and_answers_the_same(tmp_path):
    """Both shipped items: once the first is grounded, the second item's batches are
    submitted to the idle workers while the first is answered; its task runs take them.
    The answers equal a run without worker processes."""
    from georeason.catalog import list_items
    from georeason.config import read_questions

    specs = read_questions(REPO / "data_catalog" / "questions.yaml")
    asked = [i.id for i in list_items(REPO / "data_catalog") if any(s.item in (None, i.id) for s in specs)]
    first, second = asked[:2]  # the items the run answers, in its order

    def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        cmd = [sys.executable, "-m", "georeason.cli", "--verbose", "run", "--out", str(out), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)

    ahead, threads = tmp_path / "ahead", tmp_path / "threads"
    a = run(ahead, "--runner", "process", "--workers", "2")
    assert a.returncode == 0, a.stderr[-3000:]
    second_batches = [
        ln for ln in a.stderr.splitlines() if f"Task run '{second}: ground" in ln and "grounded" in ln
    ]
    assert second_batches and all("submitted ahead" in ln for ln in second_batches)
    t = run(threads, "--runner", "thread")
    assert t.returncode == 0, t.stderr[-3000:]
    assert "submitted ahead" not in t.stderr
    assert _rows(ahead) == _rows(threads)
    assert {r["item"] for r in _rows(ahead)} == {first, second}
