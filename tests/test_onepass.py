"""One pass over the raster: the quicklook basemap summed from the tiles grounding reads,
and all-nodata tiles skipped by the worker that reads them instead of a plan-time scan.

Expected values come from elsewhere: the basemap :func:`read_basemap` reads from the file
(``_block_mean``, the path the export took before), per-cell means computed here with
numpy over the whole array, and the grounding with the plan-time nodata scan
(``plan_tiles(skip_nodata=True)``, as the pipeline planned before).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

import georeason.geo.raster.tiling as tiling
from georeason.geo.export.quicklook import (
    BasemapSums,
    _block_mean,
    basemap_cells,
    basemap_or_read,
    cell_sums,
    read_basemap,
)
from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.pipeline import BatchResult, Pipeline, export_item_outputs, ground_batch

UTM = Affine(10, 0, 500000, 0, -10, 4500000)


def _write(
    path: Path, data: np.ndarray, nodata, *, block: int | None = 64, names=("red", "green", "blue")
) -> Path:
    profile = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=data.dtype,
        nodata=nodata, crs="EPSG:32618", transform=UTM,
    )  # fmt: skip
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = tuple(names[: data.shape[0]])
    return path


def _from_tiles(path: Path, tile_px: int, overlap_px: int, max_px: int) -> BasemapSums:
    """The basemap's sums as the workers make them: every tile read, its core summed."""
    with rasterio.open(path) as src:
        cells = basemap_cells(src, max_px)
        assert cells is not None
        tiles = list(plan_tiles(src, tile_px, overlap_px, skip_nodata=False))
        sums = BasemapSums(cells, [t.index for t in tiles])
        for t in reversed(tiles):  # any order
            part = cell_sums(cells, t.index, t.core, t.core_in_tile, read_tile(src, t))
            assert part is not None
            assert sums.add(part)
    assert sums.complete
    return sums


def _cell_means(data: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per k x k cell, in float64: the mean of the valid pixels and their count (plain loops)."""
    b, h, w = data.shape
    rows, cols = math.ceil(h / k), math.ceil(w / k)
    mean = np.full((b, rows, cols), np.nan)
    count = np.zeros((b, rows, cols), int)
    for i in range(b):
        for r in range(rows):
            for c in range(cols):
                blk = data[i, r * k : (r + 1) * k, c * k : (c + 1) * k].astype(np.float64)
                ok = valid[i, r * k : (r + 1) * k, c * k : (c + 1) * k]
                count[i, r, c] = ok.sum()
                if ok.any():
                    mean[i, r, c] = math.fsum(blk[ok].tolist()) / ok.sum()
    return mean, count


@pytest.mark.parametrize(
    ("dtype", "nodata", "high", "tile_px", "overlap_px", "max_px"),
    [
        ("uint16", 0, 4000, 128, 16, 30),  # k = 7: cores cut cells on both axes
        ("uint16", 7, 4000, 96, 32, 55),  # a nonzero nodata value, k = 4
        ("uint16", None, 4000, 128, 16, 40),  # every pixel valid: counts not sent
        ("uint8", 255, 255, 64, 8, 25),  # k = 8
        ("uint16", 0, 65535, 200, 24, 40),  # k = 6, the largest values
    ],
)
def test_basemap_from_tiles_is_read_basemaps_bit_for_bit(
    tmp_path, dtype, nodata, high, tile_px, overlap_px, max_px
):
    rng = np.random.default_rng(11)
    data = rng.integers(0, high, size=(3, 181, 203), dtype=dtype, endpoint=True)
    if nodata is not None:
        data[data == nodata] = nodata + 1 if nodata < high else nodata - 1  # nodata only where put below
        data[:, 5:60, 10:90] = nodata  # whole cells, parts of cells and whole cores
        data[2, 100, 3] = nodata
    path = _write(tmp_path / "r.tif", data, nodata)
    sums = _from_tiles(path, tile_px, overlap_px, max_px)
    k = sums.cells.k
    assert k == math.ceil(203 / max_px)
    with rasterio.open(path) as src:
        old = _block_mean(src, [1, 2, 3], k)
    ours = sums.means()
    assert np.array_equal(np.ma.getmaskarray(ours), np.ma.getmaskarray(old))
    assert ours.filled(0).tobytes() == old.filled(0).tobytes()
    # and independently: each cell's mean of its valid pixels (names red, green, blue: bands 1-3)
    valid = data != nodata if nodata is not None else np.ones(data.shape, bool)
    mean, count = _cell_means(data, valid, k)
    assert np.array_equal(np.ma.getmaskarray(ours), count == 0)
    assert np.array_equal(ours.filled(np.nan), mean.astype(np.float32), equal_nan=True)
    base = sums.basemap()
    want = read_basemap(path, max_px)
    assert base is not None and base.rgb.tobytes() == want.rgb.tobytes()
    assert (base.transform, base.bands, base.stretch) == (want.transform, want.bands, want.stretch)
    assert base.crs == want.crs
    assert sums.sums is None  # released once made


def test_float_and_signed_bands_guarantee_the_mean_within_float32_rounding(tmp_path):
    """Floats: each cell's mean of its valid pixels (the nodata value and undeclared NaN/inf
    left out), from float64 sums rounded once to float32: within one float32 step of the
    exact mean; ``read_basemap`` (float32 sums) agrees to float32 precision where it has no
    NaN. Signed integers: exact sums, the mean rounded once."""
    rng = np.random.default_rng(5)
    f = rng.normal(1000.0, 300.0, size=(3, 150, 170)).astype(np.float32)
    f[:, 20:50, 30:80] = -9999.0
    f[1, 70:74, 100:110] = np.nan  # undeclared NaN: not valid when tiles are read
    f[0, 90, 5] = np.inf
    path = _write(tmp_path / "f.tif", f, -9999.0)
    sums = _from_tiles(path, 96, 16, 25)  # k = 7
    k = sums.cells.k
    ours = sums.means()
    valid = np.isfinite(f) & (f != -9999.0)
    mean, count = _cell_means(f, valid, k)
    assert np.array_equal(np.ma.getmaskarray(ours), count == 0)
    got, exact32 = ours.filled(0).astype(np.float32), np.where(count == 0, 0, mean).astype(np.float32)
    steps = np.abs(got.view(np.int32).astype(np.int64) - exact32.view(np.int32).astype(np.int64))
    assert steps.max() <= 1
    with rasterio.open(path) as src:
        old = _block_mean(src, [1, 2, 3], k)
    finite = np.isfinite(old.filled(np.nan)) & (count > 0)
    assert finite.sum() > 0.8 * finite.size
    assert np.allclose(got[finite], old.filled(0)[finite], rtol=2e-6, atol=0)
    base = sums.basemap()
    assert base is not None and base.rgb.shape == (math.ceil(150 / k), math.ceil(170 / k), 3)

    s = rng.integers(-3000, 3000, size=(3, 90, 110), dtype=np.int16)
    s[:, :30, :40] = -32768
    path = _write(tmp_path / "s.tif", s, -32768)
    sums = _from_tiles(path, 64, 8, 20)  # k = 6
    valid = s != -32768
    mean, count = _cell_means(s, valid, sums.cells.k)
    ours = sums.means()
    assert np.array_equal(np.ma.getmaskarray(ours), count == 0)
    assert np.array_equal(ours.filled(np.nan), mean.astype(np.float32), equal_nan=True)


def test_no_basemap_from_tiles_where_read_basemap_would_differ(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(60000, 65535, size=(3, 120, 140), dtype="uint16")
    path = _write(tmp_path / "big.tif", data, 0)
    sums = _from_tiles(path, 64, 8, 7)  # k = 20: 400 px of ~62000, sums above 2**24
    assert sums.basemap() is None  # read_basemap sums these in float32: read the file instead
    sums = _from_tiles(path, 64, 8, 7)
    assert basemap_or_read(sums, path, 7).rgb.tobytes() == read_basemap(path, 7).rgb.tobytes()

    small = _from_tiles(path, 64, 8, 50)
    with rasterio.open(path) as src:  # a tile that never came (failed, or from a tile cache)
        cells = small.cells
        tiles = list(plan_tiles(src, 64, 8, skip_nodata=False))
        partial = BasemapSums(cells, [t.index for t in tiles])
        parts = [cell_sums(cells, t.index, t.core, t.core_in_tile, read_tile(src, t)) for t in tiles]
    for p in parts[1:]:
        assert p is not None and partial.add(p)
    assert not partial.add(parts[1])  # twice: once only
    assert not partial.complete and partial.basemap() is None

    with rasterio.open(path) as src:
        assert basemap_cells(src, 1000) is None  # smaller than the quicklook: read_basemap enlarges it
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4])
    with rasterio.open(path) as src:
        assert basemap_cells(src, 50) is None  # overviews: read_basemap reads them


# --------------------------------------------------------------------------- grounding


def _scene(tmp_path: Path, write_scene: Callable[[Path, int], None]) -> tuple[Path, np.ndarray]:
    """A 1536 px synthetic 4-band scene (benchmarks/make_scene.py) with its top-left 960 px
    square and a strip on the right set to nodata (0)."""
    path = tmp_path / "scene.tif"
    write_scene(path, 1536)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, :960, :960] = 0
        data[:, 1000:1100, 1400:] = 0
        dst.write(data)
    return path, data


class Recording:
    """A grounder that records the tiles it is called on (none found)."""

    def __init__(self, batched: bool) -> None:
        self.seen: list[tuple[int, int]] = []
        if batched:
            self.ground_tiles = self._ground_tiles

    def ground(self, pixels, tile, classes, bands):
        self.seen.append(tuple(tile.index))
        return []

    def _ground_tiles(self, pairs, classes, bands):
        return [self.ground(px, t, classes, bands) for px, t in pairs]


@pytest.mark.parametrize("batched", [False, True])
def test_a_grounder_is_never_called_on_a_tile_whose_core_is_nodata(tmp_path, write_scene, batched):
    path, data = _scene(tmp_path, write_scene)
    with rasterio.open(path) as src:
        tiles = list(plan_tiles(src, 512, 64, skip_nodata=False))
        g = Recording(batched)
        res = ground_batch(src, tiles, g, ["lake"], ["blue", "green", "red", "nir"])
    empty = {
        t.index
        for t in tiles
        if not (
            data[
                :,
                t.core.row_off : t.core.row_off + t.core.height,
                t.core.col_off : t.core.col_off + t.core.width,
            ]
            != 0
        ).any()
    }
    assert len(empty) == 4  # the 960 px square holds four whole cores; the strip none
    assert set(res.skipped) == empty
    assert not empty & set(g.seen) and set(g.seen) == {t.index for t in tiles} - empty
    assert [t.index for t, _ in res.results] == [
        t.index for t in tiles
    ]  # skipped tiles in order, no detections
    assert all(d == () for t, d in res.results if t.index in empty)
    assert res.cells == () and res.failures == ()


def test_grounding_without_the_plan_time_scan_gives_the_same_objects_and_quicklook(
    tmp_path, write_scene, monkeypatch, caplog
):
    path, data = _scene(tmp_path, write_scene)
    classes = ["lake", "vegetation"]
    with caplog.at_level(logging.INFO, logger="georeason.pipeline"):
        new = Pipeline(tile_px=512, overlap_px=64, max_batches=3, basemap=True).ground(path, classes)
    assert new.skipped == 4 and new.tiles == 16
    assert "4 tiles not grounded: no valid pixel in their core" in caplog.text
    assert "on 16 tiles" in caplog.text
    assert new.basemap is not None and new.basemap.complete

    def planned_with_scan(src, tile_px, overlap_px, skip_nodata=True, **kw):  # the pipeline before
        return plan_tiles(src, tile_px, overlap_px, True, **kw)

    monkeypatch.setattr(tiling, "plan_tiles", planned_with_scan)
    old = Pipeline(tile_px=512, overlap_px=64, max_batches=3).ground(path, classes)
    monkeypatch.undo()
    assert old.tiles == 12 and old.basemap is None
    assert len(new.objects) == len(old.objects) > 10
    for a, b in zip(new.objects, old.objects):
        assert (a.id, a.label, a.score, a.tiles) == (b.id, b.label, b.score, b.tiles)
        assert shapely.to_wkb(a.geometry) == shapely.to_wkb(b.geometry)

    from georeason.geo.vector.scene import Scene

    scene = Scene(
        [o.id for o in new.objects],
        [o.label for o in new.objects],
        [o.geometry for o in new.objects],
        "EPSG:32633",
    )
    export_item_outputs("s", str(path), [], scene, tmp_path / "from_tiles", basemap=new.basemap)
    export_item_outputs("s", str(path), [], scene, tmp_path / "read")
    a = (tmp_path / "from_tiles" / "quicklook.png").read_bytes()
    assert a == (tmp_path / "read" / "quicklook.png").read_bytes()


def test_a_batch_without_its_basemap_share_falls_back_to_reading(tmp_path, write_scene):
    """A batch taken from the tile cache carries no cells: the grounding has no basemap."""
    path, _ = _scene(tmp_path, write_scene)
    from georeason.pipeline import local_map

    def cached_first(job, batches, tiles_done=None):
        for n, r in enumerate(local_map(job, batches, tiles_done)):
            yield BatchResult(r.results, r.failures, r.notes, r.skipped) if n == 0 else r

    g = Pipeline(tile_px=512, overlap_px=64, max_batches=3, basemap=True, map=cached_first).ground(
        path, ["lake"]
    )
    assert g.basemap is None and len(g.objects) > 0
