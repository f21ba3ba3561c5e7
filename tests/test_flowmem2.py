"""Batches bounded in tiles (issue 11, "flowmem2"): a large scene is cut into more, smaller
batches (a worker holds a batch's detections until the batch ends, and the flow process
receives them at once), within the task-run limit, and the objects do not depend on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from georeason.pipeline import Pipeline
from georeason.workers import MAX_BATCH_TILES, run_pipeline


@pytest.fixture(scope="module")
def scene(tmp_path_factory, write_scene) -> Path:
    path = tmp_path_factory.mktemp("flowmem2") / "scene.tif"
    write_scene(path, 1024)
    return path


@pytest.mark.parametrize(
    ("max_batch_tiles", "batch_limit", "sizes"),
    [
        (0, 200, [13, 12]),  # no bound: max_batches (2) batches
        (3, 200, [3, 3, 3, 3, 3, 3, 3, 2, 2]),  # ceil(25 / 3) = 9 batches of at most 3
        (3, 5, [5, 5, 5, 5, 5]),  # the limit wins: 5 batches
        (20, 200, [13, 12]),  # batches already small enough: unchanged
    ],
)
def test_batches_bounded_in_tiles_within_the_limit(scene, max_batch_tiles, batch_limit, sizes):
    p = Pipeline(
        tile_px=256, overlap_px=32, max_batches=2, max_batch_tiles=max_batch_tiles, batch_limit=batch_limit
    )
    job, tiles, batches = p.plan_ground(scene, ["water"])
    assert len(tiles) == 25  # 1024 px in 256 px tiles overlapping by 32 px: 5 x 5
    assert [len(b) for b in batches] == sizes
    assert [t.index for b in batches for t in b] == [t.index for t in tiles]  # contiguous, in plan order


def test_run_pipeline_bounds_batches_only_with_workers():
    assert (
        run_pipeline(
            "spectral", {}, tile_px=1024, overlap_px=128, max_task_runs=200, parallel=2
        ).max_batch_tiles
        == MAX_BATCH_TILES
    )
    p = run_pipeline("spectral", {}, tile_px=1024, overlap_px=128, max_task_runs=7, parallel=0)
    assert (p.max_batch_tiles, p.max_batches) == (0, 7)


def test_objects_do_not_depend_on_the_batches(scene):
    def objects(max_batch_tiles: int) -> list[tuple[str, str, float, bytes]]:
        g = Pipeline(tile_px=256, overlap_px=32, max_batches=2, max_batch_tiles=max_batch_tiles).ground(
            scene, ["water", "vegetation"]
        )
        return [(o.id, o.label, o.score, shapely.to_wkb(o.geometry)) for o in g.objects]

    big, small = objects(0), objects(3)
    assert len(big) > 10
    assert small == big
