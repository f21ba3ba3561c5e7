"""The fast decimated read gives GDAL's own nearest-neighbour samples and mask, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

from georeason.geo.raster.io import nearest_rows, read_decimated


def _write(path, h, w, *, tiled, nodata, count=4, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 4000, size=(count, h, w)).astype(dtype)
    if nodata is not None:
        data[:, : h // 7, :] = nodata  # a nodata collar on top
        data[1, h // 2, ::3] = nodata  # and scattered nodata in one band only
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype=dtype,
        crs="EPSG:32633",
        transform=from_origin(500000, 5300000, 10, 10),
        nodata=nodata,
        compress="deflate",
    )
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


@pytest.mark.parametrize(
    "h,w,out,tiled,nodata",
    [
        (1000, 1300, (250, 325), True, 0),
        (1000, 1300, (1000, 1300), True, 0),
        (997, 613, (100, 62), False, 0),
        (1531, 1029, (512, 345), True, None),
        (700, 700, (3, 700), True, 7),
        (2049, 1025, (1024, 513), True, 0),
    ],
)
def test_same_samples_and_mask_as_gdal(tmp_path, h, w, out, tiled, nodata):
    path = tmp_path / "r.tif"
    _write(path, h, w, tiled=tiled, nodata=nodata)
    with rasterio.open(path) as src:
        ref = src.read(out_shape=(src.count, *out), masked=True, resampling=Resampling.nearest)
        got = read_decimated(src, (src.count, *out))
    assert got.shape == ref.shape
    assert np.array_equal(np.ma.getdata(got), np.ma.getdata(ref))
    assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(ref))


def test_nearest_rows_hand_worked():
    # 10 source rows into 4: centres at 1.25, 3.75, 6.25, 8.75 -> rows 1, 3, 6, 8
    assert nearest_rows(10, 4).tolist() == [1, 3, 6, 8]
    assert nearest_rows(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_overviews_and_floats_fall_back_to_gdal(tmp_path):
    path = tmp_path / "f.tif"
    _write(path, 600, 600, tiled=True, nodata=0, count=2, dtype="float32")
    with rasterio.open(path) as src:
        ref = src.read(out_shape=(2, 150, 150), masked=True, resampling=Resampling.nearest)
        got = read_decimated(src, (2, 150, 150))
    assert np.array_equal(np.ma.getdata(got), np.ma.getdata(ref))
    assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(ref))
    path = tmp_path / "o.tif"
    _write(path, 800, 800, tiled=True, nodata=0, count=3)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)
    with rasterio.open(path) as src:
        ref = src.read(out_shape=(3, 200, 200), masked=True, resampling=Resampling.nearest)
        got = read_decimated(src, (3, 200, 200))
    assert np.array_equal(np.ma.getdata(got), np.ma.getdata(ref))


@pytest.mark.parametrize("h,w,tiled", [(2100, 1500, True), (1300, 900, False), (600, 700, True)])
def test_block_check_reads_the_scene_samples_in_its_one_pass(tmp_path, monkeypatch, h, w, tiled):
    """Opening a file checks its blocks in one pass that also keeps the threshold-fit and
    fitness samples: reading those afterwards decodes nothing more, and gives GDAL's samples."""
    from georeason.geo.raster import io

    path = tmp_path / "s.tif"
    _write(path, h, w, tiled=tiled, nodata=0)
    passes: list[list[tuple[int, int, int]]] = []
    real = io._decimate
    monkeypatch.setattr(io, "_decimate", lambda src, shapes: passes.append(shapes) or real(src, shapes))
    monkeypatch.setattr(io, "_BLOCKS_CHECKED", set())
    with io.open_raster(path) as src:
        assert len(passes) == 1  # the block check's pass
        for max_px in io.SCENE_SAMPLE_PX:
            shape = io.decimated_shape(src, max_px)
            got = io.read_decimated(src, shape)
            ref = src.read(out_shape=shape, masked=True, resampling=Resampling.nearest)
            assert np.array_equal(np.ma.getdata(got), np.ma.getdata(ref))
            assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(ref))
        assert len(passes) == 1  # handed out, not read again
        shape = io.decimated_shape(src, io.SCENE_SAMPLE_PX[0])
        again = io.read_decimated(src, shape)
        assert len(passes) == 2  # a sample is handed out once; then it is read again
        ref = src.read(out_shape=shape, masked=True, resampling=Resampling.nearest)
        assert np.array_equal(np.ma.getdata(again), np.ma.getdata(ref))


def test_block_check_still_finds_a_corrupt_block(tmp_path, monkeypatch):
    """The shared pass decodes every block row, so a damaged block in the middle is reported."""
    from georeason.errors import RasterReadError
    from georeason.geo.raster import io

    path = tmp_path / "bad.tif"
    _write(path, 1024, 1024, tiled=True, nodata=0)
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64  # garbage where the deflate stream of a middle block starts
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(io, "_BLOCKS_CHECKED", set())
    with pytest.raises(RasterReadError, match="truncated or corrupt"):
        with io.open_raster(path):
            pass


@pytest.mark.parametrize("cpus", [1, 2])
def test_decimated_pass_decodes_on_every_cpu_with_the_same_samples(tmp_path, monkeypatch, cpus):
    """With more than one CPU the pass reads through a handle whose GTiff blocks decode in
    parallel (GDAL's NUM_THREADS open option); the samples stay GDAL's own."""
    import georeason.geo.raster.io as io

    path = tmp_path / "r.tif"
    _write(path, 900, 1100, tiled=True, nodata=0)
    opened: list[dict] = []
    plain_open = rasterio.open

    def recording(*args, **kwargs):
        opened.append(kwargs)
        return plain_open(*args, **kwargs)

    monkeypatch.setattr(io, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(io.rasterio, "open", recording)
    with plain_open(path) as src:
        got = read_decimated(src, (4, 300, 367))
        want = src.read(out_shape=(4, 300, 367), resampling=Resampling.nearest, masked=True)
    assert [k.get("NUM_THREADS") for k in opened] == ([] if cpus == 1 else ["2"])
    np.testing.assert_array_equal(np.ma.getdata(got), np.ma.getdata(want))
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
