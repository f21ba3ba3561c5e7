"""geo/raster/tiling.py ``read_tile`` and ``plan_tiles`` against references computed here.

Every tile of a plan (interior, right edge, bottom edge, corner, a raster smaller than a
tile) is compared, byte for byte, with a tile cut by hand from a whole-raster read with
numpy: padding holds the nodata value (0 without one, and +0.0 is not -0.0), and is
masked; nodata, GDAL mask bands and undeclared NaN/inf are masked inside. The tile's
transform and bounds are compared with affine's ``@`` and numpy over the four corners.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from georeason.geo.raster.tiling import block_column_edges, plan_tiles, read_tile

UTM = Affine(10, 0, 500000, 0, -10, 5_000_000)


def _write(
    path: Path,
    arr: np.ndarray,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    tiled: bool = True,
) -> Path:
    blocks = {"tiled": True, "blockxsize": 64, "blockysize": 64} if tiled else {"tiled": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            with rasterio.open(
                path,
                "w",
                driver="GTiff",
                width=arr.shape[2],
                height=arr.shape[1],
                count=arr.shape[0],
                dtype=arr.dtype,
                transform=UTM,
                crs="EPSG:32633",
                nodata=nodata,
                **blocks,
            ) as d:
                d.write(arr)
                if mask is not None:
                    d.write_mask(mask)
    return path


def _reference(path: Path, tile_px: int, overlap: int) -> None:
    with rasterio.open(path) as src:
        full = src.read()
        # GDAL's per-band masks (nodata value, mask band) as a plain read gives them
        valid = np.stack([src.read_masks(i) for i in range(1, src.count + 1)]) > 0
        nodata = src.nodata
        fill = nodata if nodata is not None else 0
        tiles = list(plan_tiles(src, tile_px, overlap, skip_nodata=False))
        assert tiles
        for t in tiles:
            got = read_tile(src, t)
            r0, c0 = int(t.window.row_off), int(t.window.col_off)
            vh = max(0, min(tile_px, src.height - r0))
            vw = max(0, min(tile_px, src.width - c0))
            data = np.full((src.count, tile_px, tile_px), fill, dtype=full.dtype)
            data[:, :vh, :vw] = full[:, r0 : r0 + vh, c0 : c0 + vw]
            mask = np.ones((src.count, tile_px, tile_px), dtype=bool)
            inside = ~valid[:, r0 : r0 + vh, c0 : c0 + vw]
            if full.dtype.kind == "f":
                inside |= ~np.isfinite(full[:, r0 : r0 + vh, c0 : c0 + vw])
            mask[:, :vh, :vw] = inside
            assert got.dtype == full.dtype and got.shape == data.shape
            assert np.ma.getdata(got).tobytes() == data.tobytes(), t.index  # -0.0 vs +0.0 too
            assert np.array_equal(np.ma.getmaskarray(got), mask), t.index
            assert np.ma.getdata(got).flags.writeable
            if got.mask is not np.ma.nomask:
                assert got.mask.flags.writeable
            # the tile's georeferencing, from affine and numpy directly
            assert tuple(t.transform) == tuple(src.transform @ Affine.translation(c0, r0))
            cols = np.array([c0, c0 + tile_px, c0, c0 + tile_px], float)
            rows = np.array([r0, r0, r0 + tile_px, r0 + tile_px], float)
            xs, ys = src.transform @ (cols, rows)
            assert t.bounds == (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def _pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 200, shape).astype(dtype)


@pytest.mark.parametrize(("h", "w"), [(300, 250), (90, 70)])  # edge tiles; smaller than a tile
def test_uint8_without_nodata(tmp_path: Path, h: int, w: int) -> None:
    _reference(_write(tmp_path / "a.tif", _pixels((1, h, w), "uint8")), 128, 32)


def test_uint8_nodata_zero_and_two_bands(tmp_path: Path) -> None:
    arr = _pixels((2, 300, 250), "uint8")
    arr[0, :50, :40] = 0
    arr[1, 200:, 100:] = 0
    _reference(_write(tmp_path / "a.tif", arr, nodata=0), 128, 32)


def test_int16_nodata_not_zero(tmp_path: Path) -> None:
    arr = _pixels((1, 300, 250), "int16")
    arr[0, 10:20, 10:20] = -9999
    _reference(_write(tmp_path / "a.tif", arr, nodata=-9999), 128, 32)


def test_float_nan_nodata_and_undeclared_inf(tmp_path: Path) -> None:
    arr = _pixels((1, 300, 250), "float32")
    arr[0, 5, 5] = np.nan
    arr[0, 250, 200] = np.inf
    _reference(_write(tmp_path / "a.tif", arr, nodata=float("nan")), 128, 32)
    _reference(_write(tmp_path / "b.tif", arr, nodata=None), 128, 32)


def test_float_negative_zero_nodata_pads_with_negative_zero(tmp_path: Path) -> None:
    arr = _pixels((1, 300, 250), "float64")
    _reference(_write(tmp_path / "a.tif", arr, nodata=-0.0), 128, 32)


def test_internal_mask_band(tmp_path: Path) -> None:
    arr = _pixels((3, 300, 250), "uint8")
    mask = np.full((300, 250), 255, "uint8")
    mask[100:180, 30:90] = 0
    _reference(_write(tmp_path / "a.tif", arr, mask=mask), 128, 32)


def test_tiles_do_not_share_buffers(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.tif", _pixels((1, 300, 250), "uint8"))
    with rasterio.open(p) as src:
        tiles = list(plan_tiles(src, 128, 32))
        a, b = read_tile(src, tiles[-1]), read_tile(src, tiles[-1])
        a.data[:] = 7
        a.mask[:] = False
        assert not np.array_equal(a.data, b.data) and np.ma.getmaskarray(b).any()


@pytest.fixture
def small_block_cache():
    """GDAL's block cache at 8 KB (2 of the 64 x 64 uint8 blocks of these rasters: less
    than a 128 px window's), so that windows are read in block-column parts."""
    from rasterio.env import get_gdal_config, set_gdal_config

    before = get_gdal_config("GDAL_CACHEMAX")
    set_gdal_config("GDAL_CACHEMAX", 8192)
    yield
    set_gdal_config("GDAL_CACHEMAX", before)


@pytest.mark.usefixtures("small_block_cache")
def test_windows_that_start_inside_a_block_column(tmp_path: Path) -> None:
    """Stride 112 on 64 px blocks (not rounded: that would more than double the overlap), so
    windows start and end inside block columns and are read in several column parts."""
    arr = _pixels((2, 300, 250), "uint16")
    arr[1, 40:90, 100:130] = 0
    path = _write(tmp_path / "a.tif", arr, nodata=0)
    with rasterio.open(path) as src:
        starts = {int(t.window.col_off) for t in plan_tiles(src, 128, 16, skip_nodata=False)}
    assert starts == {0, 112, 224}
    _reference(path, 128, 16)


def test_striped_file_is_read_whole(tmp_path: Path) -> None:
    arr = _pixels((1, 300, 250), "uint8")
    path = _write(tmp_path / "a.tif", arr, nodata=None, tiled=False)
    with rasterio.open(path) as src:
        assert block_column_edges(src, 1, 112, 128) == [112, 240]  # strips as wide as the raster
    _reference(path, 128, 16)


def plan_tiles_wide(src):
    """The first tile of a 256 px plan of a 250 px wide raster: 4 block columns (0..250)."""
    return next(iter(plan_tiles(src, 256, 32, skip_nodata=False)))


def _recorded_reads(path: Path, tiles_at: Any) -> list[list[tuple[int, int]]]:
    """``(col_off, width)`` of each read ``read_tile`` makes, per tile of ``tiles_at(src)``."""

    class Recording:
        def __init__(self, src: Any) -> None:
            self._src, self.windows = src, []

        def __getattr__(self, name: str) -> Any:
            return getattr(self._src, name)

        def read(self, *args: Any, **kwargs: Any) -> Any:
            self.windows.append(kwargs["window"])
            return self._src.read(*args, **kwargs)

    out = []
    with rasterio.open(path) as src:
        for tile in tiles_at(src):
            rec = Recording(src)
            read_tile(rec, tile)
            out.append([(int(w.col_off), int(w.width)) for w in rec.windows])
    return out


@pytest.mark.usefixtures("small_block_cache")
def test_a_tile_is_read_block_column_by_column_left_to_right(tmp_path: Path) -> None:
    """A window's first and last block columns are each one read, left to right, so the
    column a tile reads last is the one the next tile of its row reads first, alone."""
    path = _write(tmp_path / "a.tif", _pixels((1, 300, 250), "uint8"), nodata=0)
    first_two = _recorded_reads(path, lambda src: list(plan_tiles(src, 128, 16, skip_nodata=False))[:2])
    # (0, 0) at column 0; (0, 1) at 112..240: the rest of block column 64..128 (the one (0, 0)
    # read last), then two more
    assert first_two == [[(0, 64), (64, 64)], [(112, 16), (128, 64), (192, 48)]]
    # 4 block columns (0..250): the two between are one read
    assert _recorded_reads(path, lambda src: [plan_tiles_wide(src)]) == [[(0, 64), (64, 128), (192, 58)]]


def test_a_window_the_block_cache_holds_is_one_read(tmp_path: Path) -> None:
    """With GDAL's cache larger than a window's blocks (georeason's 64 MB here), the previous
    tile's blocks all stay cached: no parts, each of which costs a read call."""
    path = _write(tmp_path / "a.tif", _pixels((1, 300, 250), "uint8"), nodata=0)
    reads = _recorded_reads(path, lambda src: list(plan_tiles(src, 128, 16, skip_nodata=False)))
    assert reads[:3] == [[(0, 128)], [(112, 128)], [(224, 26)]]
    assert all(len(r) == 1 for r in reads)
