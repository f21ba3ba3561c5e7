"""geo/raster/tiling.py: cores partition the raster, edges kept, nodata skipped safely."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from georeason.errors import InputError, RotatedRasterError
from georeason.geo.raster.tiling import plan_tiles, read_tile, stride_px

UTM = Affine(10, 0, 500000, 0, -10, 5_000_000)


def write(path, arr, transform=UTM, crs="EPSG:32633", nodata=None, **kw):
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=arr.shape[2],
            height=arr.shape[1],
            count=arr.shape[0],
            dtype=arr.dtype,
            transform=transform,
            crs=crs,
            nodata=nodata,
            **kw,
        ) as d:
            d.write(arr)
    return path


def core_counts(tiles, shape):
    counts = np.zeros(shape, int)
    for t in tiles:
        c = t.core
        counts[c.row_off : c.row_off + c.height, c.col_off : c.col_off + c.width] += 1
        # the core lies inside the window
        assert t.window.col_off <= c.col_off and c.col_off + c.width <= t.window.col_off + t.window.width
        assert t.window.row_off <= c.row_off and c.row_off + c.height <= t.window.row_off + t.window.height
    return counts


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 700),
    w=st.integers(1, 700),
    tile=st.integers(16, 300),
    frac=st.floats(0, 0.9),
)
def test_cores_partition_raster(tmp_path_factory, h, w, tile, frac):
    overlap = min(int(tile * frac), tile - 1)
    p = write(tmp_path_factory.mktemp("p") / "r.tif", np.ones((h, w), "uint8"))
    tiles = list(plan_tiles(p, tile, overlap))
    assert (core_counts(tiles, (h, w)) == 1).all()
    # windows are full size; the last one reaches the raster edge
    assert all(t.shape == (tile, tile) for t in tiles)
    assert max(t.window.col_off + tile for t in tiles) >= w
    assert max(t.window.row_off + tile for t in tiles) >= h
    assert len({t.index for t in tiles}) == len(tiles)


def test_small_raster_is_one_padded_tile(tmp_path):
    arr = np.arange(1, 1 + 30 * 50, dtype="uint16").reshape(30, 50)
    p = write(tmp_path / "s.tif", arr)
    (t,) = list(plan_tiles(p, 256, 32))
    assert (t.core.width, t.core.height) == (50, 30)
    with rasterio.open(p) as src:
        px = read_tile(src, t)
    assert px.shape == (1, 256, 256)
    assert np.array_equal(px[0, :30, :50].filled(0), arr)
    assert px.mask[0, 30:, :].all() and px.mask[0, :, 50:].all()
    assert not px.mask[0, :30, :50].any()


def test_edge_tiles_kept_and_padded(tmp_path):
    arr = np.ones((300, 530), "uint8")
    p = write(tmp_path / "e.tif", arr)
    tiles = list(plan_tiles(p, 256, 64))  # stride 192: 2 rows x 3 cols
    assert sorted(t.index for t in tiles) == [(i, j) for i in range(2) for j in range(3)]
    last = [t for t in tiles if t.index == (1, 2)][0]
    with rasterio.open(p) as src:
        px = read_tile(src, last)
    vh, vw = 300 - 192, 530 - 384
    assert (~px.mask[0]).sum() == vh * vw
    assert px.mask[0, vh:, :].all() and px.mask[0, :, vw:].all()


def test_nodata_tiles_skipped_single_pixel_kept(tmp_path):
    # 3000 x 3000: the decimated mask is ~3x coarser than the raster and both a nearest
    # and an 8-bit average read would miss one valid pixel among nodata.
    arr = np.zeros((3000, 3000), "uint8")
    arr[1234, 2345] = 7
    arr[:40, :40] = 5
    p = write(
        tmp_path / "n.tif", arr, nodata=0, tiled=True, blockxsize=256, blockysize=256, compress="deflate"
    )
    tiles = list(plan_tiles(p, 512, 64))
    counts = core_counts(tiles, arr.shape)
    assert (counts[arr != 0] == 1).all()
    assert len(tiles) == 2  # the corner tile and the single-pixel tile; everything else skipped
    all_tiles = list(plan_tiles(p, 512, 64, skip_nodata=False))
    assert len(all_tiles) > 30 and (core_counts(all_tiles, arr.shape) == 1).all()


def test_internal_mask_single_pixel_kept(tmp_path):
    arr = np.full((2500, 2500), 9, "uint8")
    m = np.zeros((2500, 2500), "uint8")
    m[2400, 10] = 255
    p = tmp_path / "m.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(
            p,
            "w",
            driver="GTiff",
            width=2500,
            height=2500,
            count=1,
            dtype="uint8",
            crs="EPSG:32633",
            transform=UTM,
            tiled=True,
            compress="deflate",
        ) as d:
            d.write(arr, 1)
            d.write_mask(m)
    tiles = list(plan_tiles(p, 1024, 128))
    assert len(tiles) == 1
    c = tiles[0].core
    assert c.row_off <= 2400 < c.row_off + c.height and c.col_off <= 10 < c.col_off + c.width


@pytest.mark.parametrize(
    "transform,crs",
    [
        (Affine(1e-4, 0, 15.0, 0, -1e-4, 46.0), "EPSG:4326"),  # geographic
        (Affine(10, 0, 500000, 0, 10, 4_990_000), "EPSG:32633"),  # south-up (positive e)
    ],
)
def test_geographic_and_south_up(tmp_path, transform, crs):
    arr = np.arange(1, 1 + 200 * 300, dtype="uint32").reshape(200, 300)
    p = write(tmp_path / "g.tif", arr, transform=transform, crs=crs)
    tiles = list(plan_tiles(p, 128, 16))
    assert (core_counts(tiles, arr.shape) == 1).all()
    with rasterio.open(p) as src:
        for t in tiles:
            px = read_tile(src, t)
            c = t.core_in_tile
            got = px[0, c.row_off : c.row_off + c.height, c.col_off : c.col_off + c.width]
            want = arr[
                t.core.row_off : t.core.row_off + t.core.height,
                t.core.col_off : t.core.col_off + t.core.width,
            ]
            assert np.array_equal(got, want)
            # the tile transform maps tile pixel (0, 0) to the window's corner
            assert t.transform @ (0, 0) == transform @ (t.window.col_off, t.window.row_off)
            left, bottom, right, top = t.bounds
            assert left < right and bottom < top


def test_rotated_refused(tmp_path):
    p = write(tmp_path / "r.tif", np.ones((50, 50), "uint8"), transform=Affine(10, 1, 0, 1, -10, 0))
    with pytest.raises(RotatedRasterError):
        list(plan_tiles(p, 32, 8))


def test_bad_parameters():
    with pytest.raises(InputError):
        stride_px(256, 256)
    with pytest.raises(InputError):
        stride_px(0, 0)


def test_block_alignment_rule(tmp_path):
    p = write(tmp_path / "b.tif", np.ones((2000, 2000), "uint8"), tiled=True, blockxsize=256, blockysize=256)
    tiles = list(plan_tiles(p, 1024, 128))
    offs = sorted({t.window.col_off for t in tiles})
    assert offs == [0, 768, 1536]  # stride 896 rounded to 768: windows start on blocks
    assert all(o % 256 == 0 for o in offs)
    unaligned = sorted({t.window.col_off for t in plan_tiles(p, 1024, 128, align_to_blocks=False)})
    assert unaligned == [0, 896, 1792]


def test_landsat_collar_tiles_skipped():
    from pathlib import Path

    p = Path(__file__).resolve().parents[1] / "data_catalog" / "landsat" / "landsat_rgb_utm18n.tif"
    with rasterio.open(p) as src:
        mask = src.dataset_mask() > 0
        kept = list(plan_tiles(src, 128, 16))
        every = list(plan_tiles(src, 128, 16, skip_nodata=False))
    assert len(kept) < len(every)  # the corner tiles of the collar are skipped
    counts = core_counts(kept, mask.shape)
    assert (counts[mask] == 1).all()
