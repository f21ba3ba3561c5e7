"""The row-streamed seam merge (SeamMerger with a plan) equals the all-at-once merge.

``merge_detections(pairs)`` without a plan unions every seam piece of a label in one
``union_all`` (the merge as it was before streaming); with ``plan=`` rows are merged as
they complete and parts reaching a row's lower core edge are carried. Both must give the
same objects: ids, geometries (exactly), scores, tiles. The expected objects of the
hand-worked case are written out by hand.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from scipy import ndimage

from georeason.geo.grounding.detections import Detection
from georeason.geo.grounding.seams import SeamMerger, merge_detections
from georeason.geo.raster.tiling import plan_tiles

REPO = Path(__file__).resolve().parents[1]
UTM = Affine(10, 0, 500000, 0, -10, 5_000_000)


def blank(path: Path, h: int, w: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=w,
            height=h,
            count=1,
            dtype="uint8",
            crs="EPSG:32633",
            transform=UTM,
        ) as d:
            d.write(np.ones((1, h, w), "uint8"))
    return path


def tile_masks(mask: np.ndarray, tiles, label: str = "water", shared: tuple[str, ...] = ()):
    """Each tile's view of a global mask as a ``mask`` detection (score from the tile index);
    labels in ``shared`` get the same detection object, as a water grounder gives lake/river."""
    out = []
    for t in tiles:
        w = t.window
        view = np.zeros((int(w.height), int(w.width)), bool)
        part = mask[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
        view[: part.shape[0], : part.shape[1]] = part
        score = 0.5 + 0.05 * ((t.index[0] * 7 + t.index[1] * 3) % 10)
        det = Detection(label, score, "mask", view)
        dets = [det] + [Detection(s, score, "mask", view) for s in shared]
        out.append((t, dets))
    return out


def key(objs):
    return [(o.id, o.label, shapely.to_wkb(o.geometry), o.score, o.tiles) for o in objs]


def test_u_shape_over_three_rows_joins_only_in_the_last_row(tmp_path):
    # 30 x 30 px raster, 10 m pixels; tile 14 px, overlap 4 -> stride 10, cores of rows
    # [0, 12), [12, 22), [22, 30) (h = 2: first core ends at 10 + 2).
    r = blank(tmp_path / "u.tif", 30, 30)
    tiles = list(plan_tiles(r, 14, 4))
    assert sorted({(int(t.core.row_off), int(t.core.height)) for t in tiles}) == [(0, 12), (12, 10), (22, 8)]
    m = np.zeros((30, 30), bool)
    m[2:27, 3:6] = True  # left arm, rows 2-26: crosses both row seams
    m[2:27, 20:23] = True  # right arm
    m[24:27, 3:23] = True  # the bottom bar joins them, in the last tile row only
    m[14:18, 14:18] = True  # a 4 x 4 px block inside the middle core: whole at once
    m[0:2, 26:30] = True  # a 2 x 4 px block at the raster's corner (no seam)
    pairs = tile_masks(m, tiles)
    # By hand: the U is 25*3 + 25*3 + 3*14 = 192 px (the bar between the arms is 14 px
    # wide: cols 6-19), the block 16 px, the corner block 8 px; 100 m2 a pixel.
    streamed = merge_detections(pairs, plan=tiles)
    assert sorted(round(o.geometry.area) for o in streamed) == [800, 1600, 19200]
    u = max(streamed, key=lambda o: o.geometry.area)
    assert len({row for row, _ in u.tiles}) == 3  # pieces from all three tile rows
    assert u.geometry.geom_type == "Polygon"
    assert shapely.equals(
        u.geometry,
        shapely.box(500030, 5_000_000 - 270, 500230, 5_000_000 - 20).difference(
            shapely.box(500060, 5_000_000 - 240, 500200, 5_000_000 - 20)
        ),
    )
    assert key(streamed) == key(merge_detections(pairs))  # the all-at-once merge


def test_carried_parts_when_rows_arrive_out_of_order_and_with_a_failed_tile(tmp_path):
    r = blank(tmp_path / "o.tif", 64, 64)
    tiles = list(plan_tiles(r, 20, 4))
    rng = np.random.default_rng(3)
    m = ndimage.gaussian_filter(rng.random((64, 64)), 2.0) > 0.5
    m[5:60, 30:33] = True  # spans every tile row
    pairs = tile_masks(m, tiles)
    ref = merge_detections(pairs)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    merger = SeamMerger(plan=tiles)
    for t, d in shuffled:
        merger.add(t, d)
    assert key(merger.finish()) == key(ref)
    # a tile that failed: skipped, its row still completes; same as merging without it
    lost = pairs[len(pairs) // 2][0]
    merger = SeamMerger(plan=tiles)
    for t, d in pairs:
        if t is lost:
            merger.skip(t.index)
        else:
            merger.add(t, d)
    assert key(merger.finish()) == key(merge_detections([p for p in pairs if p[0] is not lost]))


@pytest.mark.parametrize("seed", range(6))
def test_streamed_equals_all_at_once_on_random_tilings(tmp_path, seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(60, 140)), int(rng.integers(60, 140))
    r = blank(tmp_path / "r.tif", h, w)
    m = ndimage.gaussian_filter(rng.random((h, w)), float(rng.uniform(1.0, 4.0))) > rng.uniform(0.45, 0.55)
    # a snake down the scene: one object through 3+ tile rows, turning back on itself
    c = int(rng.integers(5, w - 25))
    m[2 : h - 2, c : c + 2] = True
    m[h - 4 : h - 2, c : c + 20] = True
    m[h // 3 : h - 2, c + 18 : c + 20] = True
    tile_px = int(rng.integers(16, 48))
    overlap = int(rng.integers(0, tile_px // 3)) & ~1
    tiles = list(plan_tiles(r, tile_px, overlap, align_to_blocks=False))
    assert len({t.core.row_off for t in tiles}) >= 3
    pairs = tile_masks(m, tiles, shared=("lake",))
    opts = {"min_area_m2": float(rng.choice([0.0, 500.0])), "simplify_m": float(rng.choice([0.0, 5.0]))}
    ref = merge_detections(pairs, **opts)
    got = merge_detections(pairs, plan=tiles, **opts)
    assert key(got) == key(ref)
    # and the tiling does not matter: one tile over the whole raster gives the same geometry
    (one,) = list(plan_tiles(r, max(h, w), 0))
    whole = merge_detections(tile_masks(m, [one], shared=("lake",)), plan=[one], **opts)
    assert [shapely.to_wkb(o.geometry) for o in got] == [shapely.to_wkb(o.geometry) for o in whole]
