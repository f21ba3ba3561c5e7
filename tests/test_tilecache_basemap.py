"""The quicklook basemap's per-tile sums kept in the tile cache.

A run that takes every batch from the tile cache (a rerun into the same output folder)
gets the same quicklook basemap as a fresh run without reading the raster again. The
expected basemap is :func:`read_basemap` of the file (GDAL reads, block means), never the
sums under test; corrupt or mismatched cell arrays are refused, not added.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from georeason.geo.export.quicklook import (
    BasemapCells,
    BasemapSums,
    basemap_cells,
    read_basemap,
)
from georeason.geo.raster.tiling import plan_tiles
from georeason.pipeline import BatchResult, Pipeline, ground_batch, local_map
from georeason.tilecache import CacheWarning, TileCache, dumps_batch, loads_batch

BANDS = ["blue", "green", "red", "nir"]
KEY = "ab" * 32


def _scene(tmp_path: Path, write_scene: Callable[[Path, int], None], nodata_corner: bool = True) -> Path:
    path = tmp_path / "scene.tif"
    write_scene(path, 1536)
    if nodata_corner:  # cells with some, all and no valid pixels: counts are stored
        with rasterio.open(path, "r+") as dst:
            data = dst.read()
            data[:, :700, :650] = 0
            dst.write(data)
    return path


def _batches(path: Path) -> tuple[BasemapCells, list, list[BatchResult]]:
    with rasterio.open(path) as src:
        cells = basemap_cells(src)
        assert cells is not None
        tiles = list(plan_tiles(src, 512, 64, skip_nodata=False))
        batches = [tiles[i : i + 4] for i in range(0, len(tiles), 4)]
        from georeason.models.spectral import SpectralGrounder

        results = [ground_batch(src, b, SpectralGrounder(), ["lake"], BANDS, cells) for b in batches]
    return cells, batches, results


@pytest.mark.parametrize("nodata_corner", [True, False])
def test_stored_sums_give_read_basemaps_picture(tmp_path, write_scene, nodata_corner):
    path = _scene(tmp_path, write_scene, nodata_corner)
    cells, batches, results = _batches(path)
    sums = BasemapSums(cells, [t.index for b in batches for t in b])
    for b, r in zip(batches, results):
        assert len(r.cells) == len(b)
        back = loads_batch(dumps_batch(KEY, r, cells), KEY, b, cells)
        assert [p.index for p in back.cells] == [p.index for p in r.cells]
        for old, new in zip(r.cells, back.cells):
            assert old.core == new.core and old.sums.dtype == new.sums.dtype
            assert np.array_equal(old.sums, new.sums)
            assert (old.counts is None) == (new.counts is None)
            if old.counts is not None:
                assert np.array_equal(old.counts, new.counts)
        for part in back.cells:
            assert sums.add(part)
    assert sums.complete
    base, want = sums.basemap(), read_basemap(path)
    assert base is not None
    assert base.rgb.tobytes() == want.rgb.tobytes() and base.transform == want.transform
    if nodata_corner:
        assert any(p.counts is not None for r in results for p in r.cells)


def test_entries_without_sums_or_for_other_cells_keep_their_detections(tmp_path, write_scene):
    path = _scene(tmp_path, write_scene)
    cells, batches, results = _batches(path)
    b, r = batches[0], results[0]
    plain = loads_batch(dumps_batch(KEY, r), KEY, b, cells)  # stored without cells (older runs)
    other = BasemapCells(cells.k + 1, cells.bands, cells.height, cells.width, cells.transform, None, "u")
    stored = dumps_batch(KEY, r, cells)
    for got in (plain, loads_batch(stored, KEY, b, other), loads_batch(stored, KEY, b)):
        assert got.cells == ()
        assert [len(d) for _, d in got.results] == [len(d) for _, d in r.results]
    assert "basemap_cells" not in json.loads(dumps_batch(KEY, r))


def _corrupt(doc: dict, how: str) -> None:
    c = doc["tiles"][0]["cells"]
    if how == "shape":
        c["sums"]["shape"][1] += 1
    elif how == "dtype":
        c["sums"]["dtype"] = "float64"
    elif how == "object":
        c["sums"]["dtype"] = "object"
    elif how == "truncated":
        c["sums"]["b64"] = c["sums"]["b64"][:-8]
    elif how == "core":
        c["core"][0] += 1
    elif how == "counts":
        c["counts"] = {"dtype": "uint16", "shape": c["sums"]["shape"], "b64": "AAAA"}


@pytest.mark.parametrize("how", ["shape", "dtype", "object", "truncated", "core", "counts"])
def test_corrupt_sums_make_the_entry_recomputed(tmp_path, write_scene, how):
    path = _scene(tmp_path, write_scene)
    cells, batches, results = _batches(path)
    cache = TileCache(tmp_path / "results")
    cache.put(KEY, results[0], cells)
    doc = json.loads(cache.path(KEY).read_text())
    _corrupt(doc, how)
    cache.path(KEY).write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get(KEY, batches[0], cells) is None
    assert any(issubclass(w.category, CacheWarning) and "basemap cell" in str(w.message) for w in caught)


def test_float_sums_that_are_not_finite_are_refused():
    from georeason.tilecache import _array_from

    raw = {"dtype": "float64", "shape": [1], "b64": "AAAAAAAA+H8="}  # NaN
    with pytest.raises(ValueError, match="not finite"):
        _array_from(raw, ("float64",), (1,))


def test_grounding_from_the_cache_alone_has_its_basemap(tmp_path, write_scene):
    """Every batch through the tile cache's JSON (as a rerun takes it): the grounding's
    basemap is complete and is read_basemap's picture."""
    path = _scene(tmp_path, write_scene)
    cache = TileCache(tmp_path / "results")

    def through_cache(job, batches, tiles_done=None):
        for n, r in enumerate(local_map(job, batches, tiles_done)):
            key = f"{n:064x}"
            cache.put(key, r, job.cells)
            yield cache.get(key, batches[n], job.cells)

    g = Pipeline(tile_px=512, overlap_px=64, max_batches=3, basemap=True, map=through_cache).ground(
        path, ["lake"]
    )
    assert g.basemap is not None and g.basemap.complete
    base = g.basemap.basemap()
    assert base is not None and base.rgb.tobytes() == read_basemap(path).rgb.tobytes()


@pytest.mark.parametrize(("dtype", "sum_bytes"), [("uint16", 4), ("uint32", 8)])
def test_sums_are_as_narrow_as_exact_allows(tmp_path, dtype, sum_bytes):
    """uint16 pixels in 7 x 7 cells: 32-bit sums (7 * 7 * 65535 < 2**32) and 16-bit counts;
    uint32 pixels: the sums widen to 64 bits at the first part; the picture is
    read_basemap's either way."""
    from affine import Affine

    rng = np.random.default_rng(5)
    data = rng.integers(1, 4000, size=(3, 181, 203)).astype(dtype)
    data[:, 10:50, 20:70] = 0
    path = tmp_path / "r.tif"
    profile = dict(driver="GTiff", width=203, height=181, count=3, dtype=dtype, nodata=0,
                   crs="EPSG:32618", transform=Affine(10, 0, 500000, 0, -10, 4000000))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue")
    with rasterio.open(path) as src:
        cells = basemap_cells(src, 30)
        assert cells is not None and cells.k == 7
        tiles = list(plan_tiles(src, 64, 8, skip_nodata=False))
        from georeason.geo.export.quicklook import cell_sums
        from georeason.geo.raster.tiling import read_tile

        sums = BasemapSums(cells, [t.index for t in tiles])
        assert sums.counts is not None and sums.counts.dtype.itemsize == 2
        for t in tiles:
            part = cell_sums(cells, t.index, t.core, t.core_in_tile, read_tile(src, t))
            assert part is not None and sums.add(part)
    assert sums.sums is not None and sums.sums.dtype.itemsize == sum_bytes
    base = sums.basemap()
    assert base is not None and base.rgb.tobytes() == read_basemap(path, 30).rgb.tobytes()
