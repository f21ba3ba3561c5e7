"""Memory of the grounding process tree (issue 11, "lean"): the workers' GDAL cache and
cycle collector, the heap handed back after a pass over the scene, the spectral grounder's
per-tile arrays, and ``ask`` stopping its forkserver with its pool."""

from __future__ import annotations

import gc
import multiprocessing.forkserver as mp_forkserver
import os
import platform
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from georeason.geo.raster.io import DEFAULT_GDAL_CACHEMAX_MB, as_dataset
from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.models.spectral import SpectralGrounder, fit_thresholds
from georeason.workers import WORKER_GDAL_CACHEMAX_MB, WorkerPool, worker_gdal_cache_mb

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.fixture(scope="module")
def scene_1024(tmp_path_factory, write_scene) -> Path:
    """One 1024 px tile's worth of the benchmark scene (4 bands uint16, nodata 0)."""
    path = tmp_path_factory.mktemp("lean") / "scene.tif"
    write_scene(path, 1024)
    return path


def test_worker_cache_is_the_small_one_unless_the_user_sized_it(monkeypatch):
    monkeypatch.delenv("GEOREASON_GDAL_CACHEMAX_MB", raising=False)
    monkeypatch.setenv("GDAL_CACHEMAX", f"{DEFAULT_GDAL_CACHEMAX_MB}MB")  # what georeason set
    monkeypatch.delenv("GEOREASON_WORKER_GDAL_CACHEMAX_MB", raising=False)
    assert worker_gdal_cache_mb() == WORKER_GDAL_CACHEMAX_MB == 8
    monkeypatch.setenv("GEOREASON_WORKER_GDAL_CACHEMAX_MB", "16")  # the workers' own size
    assert worker_gdal_cache_mb() == 16
    monkeypatch.setenv("GEOREASON_WORKER_GDAL_CACHEMAX_MB", "lots")
    with pytest.warns(UserWarning, match="GEOREASON_WORKER_GDAL_CACHEMAX_MB='lots'"):
        assert worker_gdal_cache_mb() == 8
    monkeypatch.delenv("GEOREASON_WORKER_GDAL_CACHEMAX_MB")
    monkeypatch.setenv("GDAL_CACHEMAX", "512MB")  # the user's own GDAL setting
    assert worker_gdal_cache_mb() is None
    monkeypatch.setenv("GDAL_CACHEMAX", f"{DEFAULT_GDAL_CACHEMAX_MB}MB")
    monkeypatch.setenv("GEOREASON_GDAL_CACHEMAX_MB", "200")  # georeason's override
    assert worker_gdal_cache_mb() is None


def test_pool_workers_start_with_small_gdal_cache_and_frozen_gc(monkeypatch):
    """Every pool (``run``'s as much as ``ask``'s) bounds its workers' block cache and freezes
    the objects they inherit from the forkserver; the caller keeps its own settings."""
    monkeypatch.delenv("GEOREASON_GDAL_CACHEMAX_MB", raising=False)
    monkeypatch.delenv("GEOREASON_WORKER_GDAL_CACHEMAX_MB", raising=False)
    monkeypatch.setenv("GDAL_CACHEMAX", f"{DEFAULT_GDAL_CACHEMAX_MB}MB")
    with WorkerPool(2) as pool:
        caches = {pool._executor.submit(os.getenv, "GDAL_CACHEMAX").result(timeout=120) for _ in range(4)}
        frozen = [pool._executor.submit(gc.get_freeze_count).result(timeout=120) for _ in range(4)]
    assert caches == {f"{WORKER_GDAL_CACHEMAX_MB}MB"} == {"8MB"}
    assert min(frozen) > 1000  # the preloaded stack: tens of thousands of objects
    assert os.environ["GDAL_CACHEMAX"] == f"{DEFAULT_GDAL_CACHEMAX_MB}MB"  # the caller's own setting


def _forkserver_pid() -> int | None:
    server = getattr(mp_forkserver, "_forkserver", None)
    return getattr(server, "_forkserver_pid", None)


def test_ask_pool_close_stops_its_forkserver():
    """``ask`` lets its forkserver (the preloaded grounding stack, ~60-80 MB PSS) go with its
    pool, before the answers, as the flow does."""
    from georeason.cli_ask import _pool_mapper

    _mapper, close = _pool_mapper(2)
    deadline = time.monotonic() + 120
    while _forkserver_pid() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = _forkserver_pid()
    assert pid is not None, "the pool never started its forkserver"
    close()
    assert _forkserver_pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_release_heap_hands_freed_heap_back():
    """50 MB of small blocks freed below a block still in use stay in the process (glibc
    cannot shrink its heap past a used block) until :func:`release_heap`. Measured in a
    fresh process, from /proc, not by the code under test."""
    code = textwrap.dedent(
        """
        import os
        from georeason.geo.raster.io import release_heap
        def rss_mb():
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        blocks = [bytearray(4000) for _ in range(12_500)]  # ~50 MB of heap, below the mmap threshold
        pin = bytearray(4000)  # allocated last: the heap's top stays in use
        before = rss_mb()
        del blocks
        freed = rss_mb()
        assert release_heap() is True
        after = rss_mb()
        print(before, freed, after)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    before, freed, after = map(float, out)
    assert freed > before - 10  # freeing alone returns (almost) nothing to the system
    assert after < freed - 35  # the trim does


def test_ground_per_tile_arrays_bounded(scene_1024):
    """A 1024 px 4-band uint16 tile grounded for water and vegetation: each float32 band and
    index goes once no later class needs it, so the arrays ``ground`` adds to the tile stay
    small. Traced peak measured 18 MB; 34 MB when every band and index stayed to the tile's
    end (the code before, which this bound fails). Results identical:
    tests/test_spectral_reference.py and the byte-identical answer tests."""
    thresholds = fit_thresholds(scene_1024)
    grounder = SpectralGrounder(thresholds)
    bands = ["blue", "green", "red", "nir"]
    with as_dataset(str(scene_1024)) as src:
        (tile,) = list(plan_tiles(src, 1024, 0))
        pixels = read_tile(src, tile)
    assert pixels.shape == (4, 1024, 1024) and pixels.dtype == np.uint16
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        dets = grounder.ground(pixels, tile, ["lake", "water", "vegetation"], bands)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert dets  # the scene has water and vegetation
    mb = peak / 2**20
    assert mb < 24, f"ground() traced peak {mb:.1f} MB above the tile itself"
