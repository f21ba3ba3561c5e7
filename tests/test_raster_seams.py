"""geo/grounding/seams.py: results do not depend on the tiling; boxes deduplicated; stable ids."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from grounding_helpers import ground_raster

from georeason.errors import CRSMismatchError, InputError
from georeason.geo.grounding.detections import Detection, GroundedObject
from georeason.geo.grounding.seams import assign_ids, merge_detections, nms
from georeason.geo.raster.tiling import plan_tiles
from georeason.models.spectral import SpectralGrounder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_catalog" / "sample" / "sample_scene.tif"
UTM = Affine(10, 0, 500000, 0, -10, 5_000_000)


def blank(path, h=300, w=400, transform=UTM):
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
            transform=transform,
        ) as d:
            d.write(np.ones((1, h, w), "uint8"))
    return path


def summary(objs):
    by = {}
    for o in objs:
        n, a = by.get(o.label, (0, 0.0))
        by[o.label] = (n + 1, a + o.geometry.area)
    return by


@pytest.mark.slow
def test_seams_sample_tiling_invariant():
    mmu = {"min_area_m2": 2000, "simplify_m": 5}
    g = SpectralGrounder.from_raster(SAMPLE, **mmu)
    classes = ["water", "vegetation", "building"]
    whole = ground_raster(
        SAMPLE, g, classes, tile_px=2048, overlap_px=0, **mmu
    )  # one tile: plain vectorisation
    assert len(list(plan_tiles(SAMPLE, 2048, 0))) == 1
    ref = summary(whole)
    assert ref["water"][0] == 4 and ref["vegetation"][0] == 6
    for tile_px, overlap in ((256, 32), (1024, 128), (300, 50)):
        objs = ground_raster(SAMPLE, g, classes, tile_px=tile_px, overlap_px=overlap, **mmu)
        got = summary(objs)
        assert got.keys() == ref.keys()
        for label, (n, area) in ref.items():
            assert got[label][0] == n, (tile_px, label)
            assert abs(got[label][1] - area) / area < 0.01, (tile_px, label)
        # in fact identical: same ids, same geometries
        assert [o.id for o in objs] == [o.id for o in whole]
        assert all(shapely.equals_exact(a.geometry, b.geometry, 1e-6) for a, b in zip(objs, whole))
    # the lake that crosses seams came from several tiles
    water = [
        o
        for o in ground_raster(SAMPLE, g, ["water"], tile_px=256, overlap_px=32, **mmu)
        if o.label == "water"
    ]
    assert max(len(o.tiles) for o in water) > 4


class BoxGrounder:
    """Sees fixed objects (global pixel boxes) and reports each one that intersects the
    tile window, truncated to the window, as a box (or its centre as a point)."""

    name = "boxes"

    def __init__(self, boxes, kind="box"):
        self.boxes = boxes
        self.kind = kind
        self.config = {"n": len(boxes), "kind": kind}

    def ground(self, pixels, tile, classes, bands):
        w = tile.window
        win = shapely.box(w.col_off, w.row_off, w.col_off + w.width, w.row_off + w.height)
        out = []
        for _i, b in enumerate(self.boxes):
            seen = win.intersection(b)
            if seen.is_empty or seen.area == 0:
                continue
            local = shapely.affinity.translate(seen, -w.col_off, -w.row_off)
            score = 0.9 if seen.area == b.area else 0.5  # truncated boxes score lower
            geom = local if self.kind == "box" else local.centroid
            out.append(
                Detection("car", score, self.kind, shapely.box(*geom.bounds) if self.kind == "box" else geom)
            )
        return out


def test_boxes_deduplicated_across_tiles(tmp_path):
    p = blank(tmp_path / "b.tif")
    rng = np.random.default_rng(3)
    boxes = []
    for _ in range(25):  # objects of up to 12 px, overlap 32 px
        c, r = rng.uniform(0, 388), rng.uniform(0, 288)
        boxes.append(shapely.box(c, r, c + rng.uniform(4, 12), r + rng.uniform(4, 12)))
    for kind in ("box", "point"):
        objs = ground_raster(p, BoxGrounder(boxes, kind), ["car"], tile_px=96, overlap_px=32)
        assert len(objs) == len(boxes), kind
        if kind == "box":
            world = sorted(tuple(np.round(o.geometry.bounds, 6)) for o in objs)
            want = sorted(
                tuple(np.round(shapely.affinity.affine_transform(b, [10, 0, 0, -10, 500000, 5e6]).bounds, 6))
                for b in boxes
            )
            assert world == want  # the full box survived, not a truncated one
            assert {o.score for o in objs} == {0.9}


def test_nms_iou_threshold():
    a = GroundedObject("car", 0.9, shapely.box(0, 0, 10, 10), "box")
    b = GroundedObject("car", 0.8, shapely.box(2, 0, 12, 10), "box")  # IoU 8/12 = 0.67
    c = GroundedObject("truck", 0.7, shapely.box(0, 0, 10, 10), "box")  # other label: kept
    assert [o.score for o in nms([b, a, c], 0.5)] == [0.9, 0.7]
    assert len(nms([a, b, c], 0.7)) == 3
    with pytest.raises(InputError):
        nms([a], 1.5)


def test_mask_detections_merge_to_whole(tmp_path):
    p = blank(tmp_path / "m.tif")
    yy, xx = np.mgrid[0:300, 0:400]
    disk = (xx - 200.5) ** 2 + (yy - 150.5) ** 2 < 90**2
    ring = disk & ((xx - 200.5) ** 2 + (yy - 150.5) ** 2 > 30**2)

    class MaskGrounder:
        name, config = "mask", {}

        def ground(self, pixels, tile, classes, bands):
            w = tile.window
            m = np.zeros(tile.shape, bool)
            sub = ring[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            m[: sub.shape[0], : sub.shape[1]] = sub
            return [Detection("pond", 1.0, "mask", m)] if m.any() else []

    whole = ground_raster(p, MaskGrounder(), ["pond"], tile_px=512, overlap_px=0)
    tiled = ground_raster(p, MaskGrounder(), ["pond"], tile_px=64, overlap_px=16)
    assert len(whole) == len(tiled) == 1
    assert tiled[0].geometry.equals(whole[0].geometry)
    assert len(tiled[0].geometry.interiors) == 1  # the hole survives the seams
    assert abs(tiled[0].geometry.area - ring.sum() * 100) < 1e-6


def test_ids_are_stable_and_sorted():
    objs = [
        GroundedObject("water", 1, shapely.box(5, 0, 6, 1), "polygon"),
        GroundedObject("water", 1, shapely.box(0, 0, 1, 1), "polygon"),
        GroundedObject("building", 1, shapely.box(3, 3, 4, 4), "polygon"),
    ]
    ids = [(o.id, o.geometry.bounds[0]) for o in assign_ids(objs)]
    assert ids == [("building-1", 3.0), ("water-1", 0.0), ("water-2", 5.0)]
    assert [o.id for o in assign_ids(reversed(objs))] == [i for i, _ in ids]


def test_merge_refuses_tiles_of_different_rasters(tmp_path):
    a = next(plan_tiles(blank(tmp_path / "a.tif"), 64, 0))
    b = next(plan_tiles(blank(tmp_path / "b.tif", transform=Affine(10, 0, 0, 0, -10, 0)), 64, 0))
    d = [Detection("x", 1, "polygon", shapely.box(0, 0, 2, 2))]
    with pytest.raises(CRSMismatchError):
        merge_detections([(a, d), (b, d)])


def test_min_area_and_simplify_after_merge(tmp_path):
    p = blank(tmp_path / "s.tif")

    class PolyGrounder:
        name, config = "poly", {}

        def ground(self, pixels, tile, classes, bands):
            w = tile.window
            big = shapely.Point(200, 150).buffer(100, quad_segs=32)  # ~ 3.1 km2 at 10 m
            small = shapely.box(10, 10, 13, 13)  # 900 m2
            out = []
            for g in (big, small):
                loc = shapely.affinity.translate(g, -w.col_off, -w.row_off)
                if loc.intersects(shapely.box(0, 0, w.width, w.height)):
                    out.append(Detection("lake", 1.0, "polygon", loc))
            return out

    objs = ground_raster(
        p, PolyGrounder(), ["lake"], tile_px=64, overlap_px=8, min_area_m2=1000, simplify_m=5
    )
    assert len(objs) == 1 and objs[0].id == "lake-1"
    assert len(objs[0].geometry.exterior.coords) < 60  # simplified once, as a whole
    assert abs(objs[0].geometry.area - np.pi * 1000**2) / (np.pi * 1000**2) < 0.015
