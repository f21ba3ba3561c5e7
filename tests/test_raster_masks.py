"""geo/raster/masks.py: pixel answers burnt block by block, written as Cloud-Optimised GeoTIFF.

Expected values come from rasterio/GDAL directly: the whole answer burnt at once with
``rasterio.features.rasterize`` on a full array (no blocks, no clipping), and GDAL's own
COG driver (NEAREST overviews) run on that array.
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
from rasterio.shutil import copy as rio_copy

from georeason.errors import ExportError
from georeason.geo.raster.grid import RasterGrid
from georeason.geo.raster.masks import MASK_NODATA, overview_factors, write_mask


def _grid(width: int, height: int, res: float = 10.0) -> RasterGrid:
    return RasterGrid(Affine(res, 0, 500_000.0, 0, -res, 5_000_000.0), height, width, CRS.from_epsg(32633))


def _answer(width: int, height: int, seed: int = 1) -> shapely.Geometry:
    """Blobs with holes, a thin line-like sliver and far-away parts: a union that crosses
    many block edges."""
    rng = np.random.default_rng(seed)
    n = 60
    c = np.column_stack([rng.uniform(0, width * 10.0, n), rng.uniform(-height * 10.0, 0, n)])
    c += [500_000.0, 5_000_000.0]
    blobs = shapely.buffer(shapely.points(c), rng.uniform(30, 900, n), quad_segs=12)
    holes = shapely.buffer(shapely.points(c[:20]), 20.0)
    sliver = shapely.box(500_003.0, 5_000_000.0 - height * 10.0, 500_011.0, 5_000_000.0 - 5.0)
    return shapely.union_all([shapely.difference(shapely.union_all(blobs), shapely.union_all(holes)), sliver])


def _reference(geom: shapely.Geometry, grid: RasterGrid, all_touched: bool = False) -> np.ndarray:
    return rasterize(
        [(geom, 1)],
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=0,
        dtype="uint8",
        all_touched=all_touched,
    )


@pytest.mark.parametrize("all_touched", [False, True])
def test_cog_mask_identical_to_whole_geometry_burn(tmp_path: Path, all_touched: bool) -> None:
    grid = _grid(1037, 611)
    geom = _answer(1037, 611)
    ref = _reference(geom, grid, all_touched)
    res = write_mask([geom], grid, tmp_path / "m.tif", block_px=128, cog_min_px=500, all_touched=all_touched)
    with rasterio.open(res.path) as src:
        got = src.read(1)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.block_shapes[0] == (128, 128)
        assert src.nodata == MASK_NODATA
        assert src.crs == rasterio.crs.CRS.from_epsg(32633)
        assert src.transform == grid.transform
    assert got.shape == ref.shape
    assert int((got != ref).sum()) == 0
    assert res.pixels == int(ref.sum()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]  # no intermediates left


def test_small_mask_is_plain_tiled_geotiff_identical(tmp_path: Path) -> None:
    grid = _grid(300, 257)
    geom = _answer(300, 257, seed=3)
    res = write_mask([geom], grid, tmp_path / "m.tif", block_px=64)
    with rasterio.open(res.path) as src:
        assert "LAYOUT" not in src.tags(ns="IMAGE_STRUCTURE")
        assert src.overviews(1) == []
        np.testing.assert_array_equal(src.read(1), _reference(geom, grid))


def _gdal_cog(arr: np.ndarray, grid: RasterGrid, path: Path, block_px: int) -> Path:
    """GDAL's COG driver, NEAREST overviews, from the reference array."""
    tmp = path.with_suffix(".src.tif")
    prof = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="uint8")
    with rasterio.open(tmp, "w", crs=grid.crs.to_wkt(), transform=grid.transform, nodata=255, **prof) as d:
        d.write(arr, 1)
    rio_copy(tmp, path, driver="COG", blocksize=block_px, overview_resampling="nearest")
    return path


@pytest.mark.parametrize(
    ("width", "height", "block_px"), [(1037, 611, 128), (1024, 1024, 128), (700, 1999, 256)]
)
def test_overviews_equal_gdal_nearest(tmp_path: Path, width: int, height: int, block_px: int) -> None:
    grid = _grid(width, height)
    geom = _answer(width, height, seed=width)
    ref = _reference(geom, grid)
    ours = write_mask([geom], grid, tmp_path / "m.tif", block_px=block_px, cog_min_px=1).path
    theirs = _gdal_cog(ref, grid, tmp_path / "gdal.tif", block_px)
    with rasterio.open(ours) as a, rasterio.open(theirs) as b:
        assert a.overviews(1) == b.overviews(1) != []
        n = len(b.overviews(1))
    for level in range(n):
        with rasterio.open(ours, OVERVIEW_LEVEL=level) as a, rasterio.open(theirs, OVERVIEW_LEVEL=level) as b:
            assert a.shape == b.shape
            assert a.transform.almost_equals(b.transform)
            np.testing.assert_array_equal(a.read(1), b.read(1))


def _offsets(path: Path, level: int | None) -> list[int]:
    kw = {} if level is None else {"OVERVIEW_LEVEL": level}
    with rasterio.open(path, **kw) as src:
        bh, bw = src.block_shapes[0]
        return [
            int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
            for r in range(-(-src.height // bh))
            for c in range(-(-src.width // bw))
        ]


def test_cog_layout_blocks_in_order(tmp_path: Path) -> None:
    """What a COG reader relies on (GDAL's validate_cloud_optimized_geotiff checks the same):
    blocks of each level stored in row-major order, the smallest overview first and the
    full-resolution image last."""
    grid = _grid(1037, 611)
    path = write_mask([_answer(1037, 611)], grid, tmp_path / "m.tif", block_px=128, cog_min_px=1).path
    with rasterio.open(path) as src:
        n = len(src.overviews(1))
    levels = [_offsets(path, lvl) for lvl in reversed(range(n))] + [_offsets(path, None)]
    for offs in levels:
        assert offs == sorted(offs) and all(o > 0 for o in offs)
    for small, big in zip(levels, levels[1:], strict=False):
        assert small[-1] < big[0]


def test_nodata_where_source_invalid(tmp_path: Path) -> None:
    grid = _grid(900, 700)
    src_path = tmp_path / "src.tif"
    data = np.full((700, 900), 7, np.uint8)
    data[:, :250] = 0  # nodata collar
    data[600:, :] = 0
    with rasterio.open(
        src_path,
        "w",
        driver="GTiff",
        width=900,
        height=700,
        count=1,
        dtype="uint8",
        nodata=0,
        crs="EPSG:32633",
        transform=grid.transform,
    ) as d:
        d.write(data, 1)
    geom = _answer(900, 700, seed=5)
    expect = _reference(geom, grid)
    expect[data == 0] = MASK_NODATA
    res = write_mask([geom], grid, tmp_path / "m.tif", valid_source=src_path, block_px=128, cog_min_px=512)
    with rasterio.open(res.path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        np.testing.assert_array_equal(src.read(1), expect)
    assert res.pixels == int((expect == 1).sum())


def test_points_and_lines_burn_like_rasterize(tmp_path: Path) -> None:
    # Not covered: a segment running exactly through pixel corners (45 degrees, on the
    # corners) with all_touched, where GDAL's line walk decides corner-only touches by
    # where the segment starts, so a block-clipped piece can differ at such pixels.
    grid = _grid(600, 600)
    geoms = [
        shapely.LineString([(500_003.0, 4_994_007.0), (505_991.0, 4_999_993.3), (503_001.7, 4_999_211.9)]),
        shapely.Point(502_345.0, 4_997_655.0),
        shapely.MultiPoint([(500_015.0, 4_994_015.0), (505_985.0, 4_994_015.0)]),
    ]
    ref = rasterize([(g, 1) for g in geoms], out_shape=(600, 600), transform=grid.transform, all_touched=True)
    res = write_mask(geoms, grid, tmp_path / "m.tif", block_px=128, cog_min_px=256, all_touched=True)
    with rasterio.open(res.path) as src:
        np.testing.assert_array_equal(src.read(1), ref)


def test_empty_answer_is_all_zero(tmp_path: Path) -> None:
    grid = _grid(700, 300)
    res = write_mask([shapely.Polygon()], grid, tmp_path / "m.tif", block_px=128, cog_min_px=256)
    with rasterio.open(res.path) as src:
        assert not src.read(1).any()
    assert res.pixels == 0


def test_unwritable_folder_is_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="file"):
        write_mask([shapely.box(500_000, 4_999_000, 501_000, 5_000_000)], _grid(600, 600), blocker / "m.tif")


def test_overview_factors_halve_until_one_block() -> None:
    # hand-worked: 8000 -> 4000 -> 2000 -> 1000 -> 500 (<= 512)
    assert overview_factors(8000, 8000, 512) == [2, 4, 8, 16]
    assert overview_factors(513, 1, 512) == [2]
    assert overview_factors(512, 512, 512) == []


@pytest.mark.parametrize(
    ("dtype", "nodata", "interleave", "fast"),
    [
        ("uint16", 0, "pixel", True),
        ("int16", -3, "band", True),
        ("uint16", 2.5, "pixel", False),  # a nodata the band type cannot hold: GDAL's path
        ("float32", 0.0, "pixel", False),  # floats: GDAL's path (it compares with a tolerance)
    ],
)
def test_nodata_of_a_multiband_source_equals_gdals_dataset_mask(
    tmp_path: Path, dtype: str, nodata: float, interleave: str, fast: bool
) -> None:
    """The block-by-block nodata test equals rasterio's ``dataset_mask`` (GDAL: valid where
    any band is not nodata), on 4 bands where some pixels are nodata in some bands only."""
    from georeason.geo.raster.masks import _nodata_reader

    w, h = 700, 520
    grid = _grid(w, h)
    rng = np.random.default_rng(3)
    data = rng.integers(1, 50, (4, h, w)).astype(dtype)
    nd = np.array(nodata).astype(dtype) if fast else np.array(0).astype(dtype)
    some = rng.random((4, h, w)) < 0.4
    data[some] = nd
    data[:, :, :90] = nd  # all bands nodata: invalid
    data[:, 400:, :] = nd
    data[1, 400:450, :] = 9  # one band valid: valid
    src_path = tmp_path / "src.tif"
    profile = dict(driver="GTiff", width=w, height=h, count=4, dtype=dtype, crs="EPSG:32633")
    with rasterio.open(
        src_path,
        "w",
        **profile,
        nodata=nodata,
        transform=grid.transform,
        tiled=True,
        blockxsize=128,
        blockysize=128,
        interleave=interleave,
    ) as d:
        d.write(data)
    with rasterio.open(src_path) as src:
        gdal = src.dataset_mask() == 0
        reader = _nodata_reader(src)
        assert (reader is not None) == fast
        if reader is not None:
            win = rasterio.windows.Window(0, 0, w, h)
            np.testing.assert_array_equal(reader(win), gdal)
            np.testing.assert_array_equal(
                reader(rasterio.windows.Window(100, 37, 333, 201)), gdal[37:238, 100:433]
            )
    geom = _answer(w, h, seed=2)
    expect = _reference(geom, grid)
    expect[gdal] = MASK_NODATA
    assert not gdal.all() and (gdal.any() or nodata == 2.5)  # (2.5 matches no uint16 value)
    res = write_mask([geom], grid, tmp_path / "m.tif", valid_source=src_path, block_px=128, cog_min_px=512)
    with rasterio.open(res.path) as out:
        np.testing.assert_array_equal(out.read(1), expect)


def test_mask_writing_bounds_gdals_block_cache_and_restores_it(tmp_path: Path, monkeypatch) -> None:
    """While a mask is written GDAL's block cache is at most MASK_GDAL_CACHEMAX_MB (the
    blocks it reads and writes are never read again); afterwards it is what it was, also
    inside a caller's ``rasterio.Env`` (a nested ``Env`` would have left it small)."""
    from rasterio.env import get_gdal_config

    import georeason.geo.raster.masks as masks

    seen: list[object] = []

    def recording(*args, **kwargs):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return rasterize(*args, **kwargs)

    monkeypatch.setattr(masks, "rasterize", recording)
    grid = _grid(700, 600)
    before = get_gdal_config("GDAL_CACHEMAX")  # georeason's default (64 MB), from the environment
    assert isinstance(before, int) and before > masks.MASK_GDAL_CACHEMAX_MB << 20
    res = write_mask([_answer(700, 600)], grid, tmp_path / "m.tif", block_px=128, cog_min_px=500)
    assert get_gdal_config("GDAL_CACHEMAX") == before
    assert seen and set(seen) == {masks.MASK_GDAL_CACHEMAX_MB << 20}
    assert res.pixels > 0
    with rasterio.Env(GDAL_CACHEMAX=4 << 20):  # a smaller cache is kept as it is
        seen.clear()
        write_mask([_answer(700, 600)], grid, tmp_path / "m2.tif", block_px=128, cog_min_px=500)
    assert set(seen) == {4 << 20}
    assert get_gdal_config("GDAL_CACHEMAX") == before
    with rasterio.Env():  # inside a caller's environment that does not set the cache
        seen.clear()
        write_mask([_answer(700, 600)], grid, tmp_path / "m3.tif", block_px=128, cog_min_px=500)
        assert get_gdal_config("GDAL_CACHEMAX") == before
    assert set(seen) == {masks.MASK_GDAL_CACHEMAX_MB << 20}
    assert get_gdal_config("GDAL_CACHEMAX") == before
