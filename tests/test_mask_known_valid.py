"""Pixel-answer masks that skip reading the source where grounding saw every pixel valid.

Grounding reads every pixel once and the quicklook's cell sums count the valid ones per
cell; :meth:`BasemapSums.valid_cells` turns that into :class:`ValidCells`, and
:func:`write_mask` then reads the source's nodata only in blocks touching a cell not known
valid. Expected values: the cells whose pixels are all valid computed with numpy from the
written array, GDAL's dataset mask (rasterio), and ``rasterize`` of the whole answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.features import rasterize
from rasterio.windows import Window

import georeason.geo.raster.masks as masks
from georeason.geo.export.quicklook import BasemapCells, BasemapSums, basemap_cells, cell_sums
from georeason.geo.raster.grid import RasterGrid
from georeason.geo.raster.masks import MASK_NODATA, ValidCells, write_mask
from georeason.geo.raster.tiling import plan_tiles, read_tile
from georeason.pipeline import Pipeline

W, H, K = 603, 517, 7  # cells of 7 x 7 pixels, cut at the right and bottom edges
TRANSFORM = Affine(10, 0, 500_000, 0, -10, 5_000_000)


def _raster(path: Path, width: int = W, height: int = H, noise: bool = True) -> np.ndarray:
    """red, green, blue, nir; nodata 0: a nodata corner (all bands), scattered pixels
    nodata in one display band only (still valid), a strip nodata in the display bands
    but valid in nir (valid to GDAL, not known from the display bands), and one pixel
    nodata in every band inside an otherwise valid area."""
    rng = np.random.default_rng(11)
    data = rng.integers(1, 3000, size=(4, height, width)).astype("uint16")
    if not noise:  # a plain field: few objects to ground
        data[:] = np.array([900, 1100, 1000, 2500], "uint16").reshape(4, 1, 1)
    data[:, :120, :200] = 0
    data[0][rng.random((height, width)) < 0.05] = 0
    data[:3, 300:340, :] = 0
    data[:, 450, 333] = 0
    profile = dict(driver="GTiff", width=width, height=height, count=4, dtype="uint16", nodata=0, crs="EPSG:32633",
                   transform=TRANSFORM, tiled=True, blockxsize=128, blockysize=128)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue", "nir")
    return data


def _sums(path: Path) -> BasemapSums:
    with rasterio.open(path) as src:
        cells = basemap_cells(src, 87)
        assert cells is not None and cells.k == K
        tiles = list(plan_tiles(src, 128, 16, skip_nodata=False))
        sums = BasemapSums(cells, [t.index for t in tiles])
        for t in tiles:
            part = cell_sums(cells, t.index, t.core, t.core_in_tile, read_tile(src, t))
            assert part is not None and sums.add(part)
    return sums


def _all_valid_cells(data: np.ndarray) -> np.ndarray:
    """Cells where some display band is not nodata at any of their pixels (numpy, padded)."""
    rows, cols = -(-H // K), -(-W // K)
    ok = np.ones((3, rows * K, cols * K), bool)  # padding counts as valid: cells are cut
    ok[:, :H, :W] = data[:3] != 0
    return ok.reshape(3, rows, K, cols, K).all(axis=(2, 4)).any(axis=0)


def test_valid_cells_are_the_cells_whose_every_pixel_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "r.tif"
    data = _raster(path)
    valid = _sums(path).valid_cells()
    assert valid is not None and valid.k == K
    want = _all_valid_cells(data)
    np.testing.assert_array_equal(valid.known, want)
    assert want.any() and not want.all()
    # sound against GDAL: every pixel of a known cell is valid in the dataset mask
    with rasterio.open(path) as src:
        gdal_valid = src.dataset_mask() != 0
    known_px = np.repeat(np.repeat(valid.known, K, axis=0), K, axis=1)[:H, :W]
    assert gdal_valid[known_px].all()
    assert not gdal_valid[:120, :200].any() and gdal_valid[300:340, :].all()  # nir keeps the strip valid


def test_no_valid_cells_for_floats_or_an_incomplete_grounding(tmp_path: Path) -> None:
    cells = BasemapCells(K, (1, 2, 3), H, W, TRANSFORM, None, "f")
    assert BasemapSums(cells, []).valid_cells() is None  # floats: GDAL's own dataset mask decides
    path = tmp_path / "r.tif"
    _raster(path)
    with rasterio.open(path) as src:
        cells_u = basemap_cells(src, 87)
        assert cells_u is not None
        tiles = list(plan_tiles(src, 128, 16, skip_nodata=False))
        sums = BasemapSums(cells_u, [t.index for t in tiles])
        for t in tiles[:-1]:  # the last tile never summed (failed, or cached without sums)
            part = cell_sums(cells_u, t.index, t.core, t.core_in_tile, read_tile(src, t))
            assert part is not None and sums.add(part)
    assert sums.valid_cells() is None


def _answer() -> shapely.Geometry:
    rng = np.random.default_rng(4)
    c = np.column_stack([rng.uniform(0, W * 10.0, 40), rng.uniform(-H * 10.0, 0, 40)]) + [500_000, 5_000_000]
    return shapely.union_all(shapely.buffer(shapely.points(c), rng.uniform(50, 700, 40)))


def test_mask_with_known_cells_equals_the_full_read_and_reads_less(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "r.tif"
    _raster(path)
    grid = RasterGrid.read(path)
    geom = _answer()
    with rasterio.open(path) as src:
        invalid = src.dataset_mask() == 0
    expect = rasterize([(geom, 1)], out_shape=(H, W), transform=TRANSFORM, fill=0, dtype="uint8")
    expect[invalid] = MASK_NODATA
    reads: list[Window] = []
    plain_reader = masks._nodata_reader

    def counting(src):
        inner = plain_reader(src)
        assert inner is not None

        def invalid_in(win: Window) -> np.ndarray:
            reads.append(win)
            return inner(win)

        return invalid_in

    monkeypatch.setattr(masks, "_nodata_reader", counting)
    out = {}
    for name, known in (("read", None), ("known", _sums(path).valid_cells())):
        reads.clear()
        res = write_mask([geom], grid, tmp_path / f"{name}.tif", valid_source=path, block_px=64, cog_min_px=256,
                         known_valid=known)  # fmt: skip
        with rasterio.open(res.path) as dst:
            out[name] = (dst.read(1), len(reads))
    blocks = -(-H // 64) * -(-W // 64)
    np.testing.assert_array_equal(out["read"][0], expect)
    np.testing.assert_array_equal(out["known"][0], expect)
    assert out["read"][1] == blocks
    assert 0 < out["known"][1] < blocks / 2  # only the blocks at the nodata corner, strip and pixel


def test_known_cells_are_trusted_so_a_wrong_claim_shows(tmp_path: Path) -> None:
    """The skip is real: cells claimed valid over the nodata corner lose its nodata."""
    path = tmp_path / "r.tif"
    _raster(path)
    grid = RasterGrid.read(path)
    wrong = ValidCells(K, np.ones((-(-H // K), -(-W // K)), bool))
    res = write_mask([_answer()], grid, tmp_path / "m.tif", valid_source=path, block_px=64, known_valid=wrong)
    with rasterio.open(res.path) as dst:
        assert not (dst.read(1) == MASK_NODATA).any()


@pytest.mark.parametrize(
    ("win", "covered"),
    [((0, 0, 21, 7), True), ((0, 0, 8, 8), False), ((7, 7, 7, 7), False), ((14, 7, 7, 7), True)],
)
def test_covers_needs_every_cell_the_window_touches(win: tuple[int, int, int, int], covered: bool) -> None:
    v = ValidCells(7, np.array([[True, True, True], [True, False, True]]))
    col, row, w, h = win
    assert v.covers(Window(col, row, w, h)) is covered
    assert not v.covers(Window(0, 0, 22, 7))  # past the cells: not known


def test_grounding_carries_the_valid_cells_to_the_masks(tmp_path: Path) -> None:
    """A pipeline that sums the basemap hands its cells to the answers' mask writer, and the
    pixel answer's mask equals one written with a full read."""
    path = tmp_path / "r.tif"
    h, w = 1040, 1150  # above the quicklook's 1000 px: its cells are summed from the tiles
    data = _raster(path, w, h, noise=False)
    pipe = Pipeline(tile_px=256, overlap_px=32, max_batches=2, basemap=True)
    g = pipe.ground(path, ["lake"])
    assert g.valid_cells is not None
    cells = basemap_cells(rasterio.open(path))
    assert cells is not None
    rows, cols = cells.shape
    ok = np.ones((3, rows * cells.k, cols * cells.k), bool)
    ok[:, :h, :w] = data[:3] != 0
    want = ok.reshape(3, rows, cells.k, cols, cells.k).all(axis=(2, 4)).any(axis=0)
    np.testing.assert_array_equal(g.valid_cells.known, want)
    from georeason.pipeline import AnswerContext

    grid = RasterGrid.read(path)
    ctx = AnswerContext(grid, lambda n, q: tmp_path / f"q{n}.tif", known_valid=g.valid_cells)
    writer = ctx.mask_writer(1, "which pixels")
    assert writer is not None
    geom = _answer()
    got, _ = writer(geom, CRS.from_epsg(32633), "s1")
    full = write_mask([geom], grid, tmp_path / "full.tif", valid_source=path)
    with rasterio.open(got) as a, rasterio.open(full.path) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
