"""A truncated model answer is not only a warning on stderr (issue 10).

A model that runs out of tokens prints JSON cut mid-object; the parsers keep the complete
objects and drop the unfinished one with a ``ParseWarning``. What was dropped must reach
the detections (``Detection.notes``), the answers that use the class
(``details.model_output_warnings`` in ``ask --json`` and in ``answers.jsonl`` of ``run``),
the Prefect logs of the run, and survive the tile cache.

The recorded outputs here are the shipped sample's (real Qwen2.5-VL JSON shape), buildings
from Qwen2.5-VL only, with tile (1, 1)'s answer cut inside its 12th object: 11 of its 24
boxes are kept. The expected counts come from the untruncated file, not from the code under
test's warning text.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from georeason.errors import ParseWarning

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
RASTER = SAMPLE / "sample_scene.tif"
KEEP = 11  # complete objects left in tile (1, 1)'s truncated answer


def _outputs(tmp_path: Path) -> tuple[Path, Path, str]:
    """(untruncated file, truncated file, the unfinished object's first characters)."""
    lines = [json.loads(x) for x in (SAMPLE / "recorded_outputs.jsonl").read_text().splitlines()]
    full = [x for x in lines if not (x["class"] == "building" and x["format"] == "remotereasoner")]
    cut = [dict(x) for x in full]
    (entry,) = [x for x in cut if x["class"] == "building" and x["tile"] == [1, 1]]
    text = entry["text"]
    starts = [i for i in range(len(text)) if text.startswith('{"bbox_2d"', i)]
    assert len(starts) == 24
    at = starts[KEEP]
    entry["text"] = text[: at + 20]  # mid-way through the 12th box's numbers
    paths = []
    for name, rows in (("full", full), ("cut", cut)):
        p = tmp_path / f"{name}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(p)
    return paths[0], paths[1], text[at : at + 12]


def _ask(outputs: Path, question: str):
    from georeason.cli import app

    return CliRunner().invoke(
        app,
        [
            "ask",
            "--raster",
            str(RASTER),
            "--grounder",
            "recorded",
            "--outputs",
            str(outputs),
            "--tile-px",
            "1024",
            "--overlap-px",
            "128",
            "--json",
            question,
        ],
    )


def test_truncated_output_reaches_the_detections(tmp_path):
    from georeason.geo.raster.tiling import plan_tiles, read_tile
    from georeason.models.backends.recorded import RecordedGrounder, prepare_recorded

    full, cut, unfinished = _outputs(tmp_path)
    g = RecordedGrounder(prepare_recorded(str(RASTER), {"outputs": str(cut), "item": "sample"}))
    import rasterio

    with rasterio.open(RASTER) as src:
        tiles = {tuple(t.index): t for t in plan_tiles(src, 1024, 128)}
    tile = tiles[(1, 1)]
    with pytest.warns(ParseWarning, match="truncated"):
        dets = g.ground_tiles([(read_tile(str(RASTER), tile), tile)], ["building"], [])[0]
    assert len(dets) == KEEP
    for d in dets:  # each kept box says its output was cut, and what was dropped
        assert any("truncated" in n and f"kept the {KEEP} complete" in n and unfinished in n for n in d.notes)
    assert any("truncated" in n and "recorded line" in n for n in dets.notes)
    # a clean output: no notes at all
    other = tiles[(2, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParseWarning)
        clean = g.ground_tiles([(read_tile(str(RASTER), other), other)], ["building"], [])[0]
    assert clean and all(d.notes == () for d in clean) and clean.notes == ()


def test_ask_json_says_what_the_truncated_output_dropped(tmp_path):
    full, cut, unfinished = _outputs(tmp_path)
    ref = _ask(full, "How many buildings are there?")
    assert ref.exit_code == 0, ref.output
    ref_row = json.loads(ref.stdout)
    assert "model_output_warnings" not in ref_row["details"]
    res = _ask(cut, "How many buildings are there?")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    # the count really is lower (objects were lost) ...
    assert row["answer"] < ref_row["answer"]
    # ... and the answer says so: which tile, that it was truncated, what was dropped
    (w,) = row["details"]["model_output_warnings"]
    assert w["tile"] == [1, 1]
    assert "truncated" in w["warning"] and f"kept the {KEEP} complete" in w["warning"]
    assert unfinished in w["warning"] and w["warning"].startswith("building:")
    # an answer that uses no building does not carry the buildings' warning
    lakes = _ask(cut, "How many lakes are there?")
    assert lakes.exit_code == 0, lakes.output
    assert "model_output_warnings" not in json.loads(lakes.stdout)["details"]


def test_tile_cache_keeps_the_notes(tmp_path):
    import rasterio
    import shapely

    from georeason.geo.grounding.detections import Detection
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.pipeline import BatchResult, TileNote
    from georeason.tilecache import TileCache

    with rasterio.open(RASTER) as src:
        tiles = list(plan_tiles(src, 1024, 128))[:2]
    d = Detection("building", 0.5, "box", shapely.box(0, 0, 2, 2), notes=("building: qwen2.5: cut",))
    result = BatchResult(
        ((tiles[0], (d,)), (tiles[1], ())), (), (TileNote(tuple(tiles[1].index), "lake: cut"),)
    )
    cache = TileCache(tmp_path)
    cache.put("ab" * 32, result)
    back = cache.get("ab" * 32, tiles)
    assert back.results[0][1][0].notes == ("building: qwen2.5: cut",)
    assert back.notes == (TileNote(tuple(tiles[1].index), "lake: cut"),)


class _StubClient:
    """Stands in for the chat client: answers by image (one truncated answer)."""

    model = "fake-qwen2.5-vl"
    base_url = "stub"

    def __init__(self, cut_url: str) -> None:
        self.cut_url = cut_url

    def resolve_model(self) -> str:
        return self.model

    def __call__(self, messages):
        url = messages[0]["content"][0]["image_url"]["url"]
        if url == self.cut_url:
            return '[{"bbox_2d": [1, 1, 9, 9], "label": "car"}, {"bbox_2d": [20, 2'
        return '[{"bbox_2d": [1, 1, 9, 9], "label": "car"}]'


def test_remote_grounder_gives_each_tile_its_own_notes():
    """Parse warnings raised in the remote grounder's worker threads reach the right tile."""
    from affine import Affine
    from rasterio.windows import Window

    from georeason.geo.raster.tiling import Tile
    from georeason.models.backends.remote import RemoteGrounder, png_data_url
    from georeason.models.base import tile_to_rgb

    g = RemoteGrounder({"base_url": "http://127.0.0.1:9/v1", "format": "qwen2.5", "input_size": [64, 64]})
    items = []
    for k in range(3):
        data = np.zeros((3, 64, 64), dtype="float32")
        data[:, :, : 8 * (k + 1)] = 100.0 * (k + 1)
        w = Window(0, 64 * k, 64, 64)
        t = Tile((k, 0), w, w, Affine.identity(), (0, 0, 64, 64), None, Affine.identity(), (192, 64))
        items.append((np.ma.masked_array(data), t))
    bands = ["red", "green", "blue"]
    g.client = _StubClient(png_data_url(tile_to_rgb(items[1][0], bands)))
    g._resolved, g._loaded = "qwen2.5", True
    with pytest.warns(ParseWarning, match="truncated"):
        out = g.ground_tiles(items, ["car"], bands)
    assert [len(x) for x in out] == [1, 1, 1]
    assert out[0].notes == () and out[2].notes == ()
    (note,) = out[1].notes
    assert note.startswith("car: qwen2.5: output is truncated") and "[20, 2" in note
    assert out[1][0].notes == (note,)


def test_detector_box_warning_goes_to_its_own_tile_only():
    """A detector box with non-finite coordinates (OWLv2 / Grounding DINO post-processing)
    is dropped with a warning that names only the image of the batch it came from."""
    from georeason.models.backends.hf import _box
    from georeason.models.parsenotes import collect_parse_warnings, notes_for

    img = np.zeros((16, 16, 3), dtype="uint8")
    with pytest.warns(ParseWarning, match="non-finite"), collect_parse_warnings() as sink:
        assert _box([1.0, 2.0, 3.0, 4.0], img, "tree", 0.9, 0) is not None
        assert _box([float("nan"), 2.0, 3.0, 4.0], img, "tree", 0.9, 1) is None
    assert notes_for(sink, 0) == () and notes_for(sink, 2) == ()
    (note,) = notes_for(sink, 1)
    assert note.startswith("dropped a box with non-finite coordinates") and "nan" in note


@pytest.mark.e2e
def test_run_writes_the_warning_into_answers_and_prefect_logs(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    from georeason.flows.answer import answer
    from georeason.runstate import result_of

    _, cut, unfinished = _outputs(tmp_path)
    qfile = tmp_path / "q.jsonl"
    qs = ["How many buildings are there?", "How many lakes are there?"]
    qfile.write_text("".join(json.dumps({"question": q, "item": "sample"}) + "\n" for q in qs))

    def run(out: str):
        state = answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
            questions=str(qfile),
            out=str(tmp_path / out),
            results_dir=str(tmp_path / "results"),
            items=["sample"],
            grounder="recorded",
            grounder_options={"outputs": str(cut)},
            tile_px=1024,
            overlap_px=128,
            return_state=True,
        )
        result_of(state)
        rows = [json.loads(x) for x in (tmp_path / out / "answers.jsonl").read_text().splitlines()]
        return state, {r["question"]: r for r in rows}

    for out in ("out1", "out2"):  # the second run reads every batch from the tile cache
        with temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: True}):  # the run's logs, as in the UI
            state, rows = run(out)
            APILogHandler().flush()  # send the queued run logs to the server
        (w,) = rows[qs[0]]["details"]["model_output_warnings"]
        assert w["tile"] == [1, 1] and "truncated" in w["warning"] and unfinished in w["warning"]
        assert "model_output_warnings" not in rows[qs[1]]["details"]
    assert any(p.name.endswith(".json") for p in (tmp_path / "results" / "tiles").iterdir())

    async def logs():
        async with get_client() as client:
            return await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
            )

    import asyncio

    messages = [entry.message for entry in asyncio.run(logs())]
    assert any("tile (1, 1)" in m and "truncated" in m and unfinished in m for m in messages), messages[-20:]
