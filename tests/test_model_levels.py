"""models/levels.py: object / region / pixel conversions, round trips, segmenter use."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from georeason.errors import InputError, ModelError, ParseWarning
from georeason.geo.grounding.detections import Detection
from georeason.geo.grounding.seams import box_iou
from georeason.models.levels import (
    LEVEL_KINDS,
    LEVELS,
    detections_to_level,
    mask_to_region,
    to_box,
    to_mask,
    to_region,
)

SHAPE = (40, 60)  # rows, cols


def box_det(x1, y1, x2, y2, label="b", score=0.7):
    return Detection(label, score, "box", shapely.box(x1, y1, x2, y2))


def half_segmenter(calls=None):
    """A stand-in for SAM: the left half (in whole pixels) of each box."""

    def seg(image, boxes):
        if calls is not None:
            calls.append(list(boxes))
        out = []
        for x1, y1, x2, y2 in boxes:
            m = np.zeros(image.shape[:2], bool)
            m[int(y1) : int(y2), int(x1) : int((x1 + x2) // 2)] = True
            out.append(m)
        return out

    return seg


IMAGE = np.zeros(SHAPE + (3,), np.uint8)


# ---------------------------------------------------------------------------------------
# to_box
# ---------------------------------------------------------------------------------------
def test_to_box_of_each_kind_keeps_label_and_score():
    m = np.zeros(SHAPE, bool)
    m[5:9, 10:20] = True
    poly = Detection("lake", 0.4, "polygon", shapely.Polygon([(1, 1), (9, 2), (4, 8)]))
    cases = [
        (Detection("roof", 0.9, "mask", m), (10, 5, 20, 9)),
        (poly, (1, 1, 9, 8)),
        (Detection("well", 0.5, "point", shapely.Point(3.2, 7.9)), (3, 7, 4, 8)),
        (box_det(1, 2, 3, 4), (1, 2, 3, 4)),
    ]
    for det, expected in cases:
        out = to_box(det)
        assert out.kind == "box" and out.label == det.label and out.score == det.score
        assert out.geometry.bounds == expected
        assert out is not det


def test_to_box_of_empty_mask_raises():
    with pytest.raises(InputError, match="empty"):
        to_box(Detection("x", 1.0, "mask", np.zeros(SHAPE, bool)))


# ---------------------------------------------------------------------------------------
# to_mask
# ---------------------------------------------------------------------------------------
def test_to_mask_box_burns_pixel_centres():
    m = to_mask(box_det(2, 3, 7, 9), SHAPE)
    assert m.kind == "mask" and m.geometry.dtype == bool and m.geometry.shape == SHAPE
    expected = np.zeros(SHAPE, bool)
    expected[3:9, 2:7] = True
    assert np.array_equal(m.geometry, expected)
    assert (m.label, m.score) == ("b", 0.7)


def test_to_mask_thin_geometry_does_not_vanish():
    thin = box_det(10.1, 10.1, 10.4, 30.0)  # covers no pixel centre
    m = to_mask(thin, SHAPE).geometry
    assert m.any() and m[:, 10].sum() == m.sum()


def test_to_mask_outside_grid_is_empty_and_partial_is_cut():
    assert not to_mask(box_det(100, 100, 120, 120), SHAPE).geometry.any()
    m = to_mask(box_det(50, 30, 80, 60), SHAPE).geometry
    assert m.sum() == (60 - 50) * (40 - 30)


def test_to_mask_point_and_mask():
    m = to_mask(Detection("p", 1.0, "point", shapely.Point(4.5, 2.5)), SHAPE).geometry
    assert m.sum() == 1 and m[2, 4]
    edge = to_mask(Detection("p", 1.0, "point", shapely.Point(60, 40)), SHAPE).geometry
    assert edge.sum() == 1 and edge[39, 59]
    src = np.zeros(SHAPE, bool)
    src[1, 1] = True
    det = Detection("m", 1.0, "mask", src)
    out = to_mask(det, SHAPE)
    assert np.array_equal(out.geometry, src) and out.geometry is not src
    with pytest.raises(InputError, match="shape"):
        to_mask(det, (10, 10))
    with pytest.raises(InputError, match="shape"):
        to_mask(det, (0, 10))


# ---------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------
@given(st.integers(0, 59), st.integers(0, 39), st.integers(1, 60), st.integers(1, 40))
def test_box_mask_box_round_trip(x, y, w, h):
    x2, y2 = min(x + w, 60), min(y + h, 40)
    det = box_det(x, y, x2, y2)
    back = to_box(to_mask(det, SHAPE))
    assert back.geometry.equals(det.geometry)


def test_polygon_mask_polygon_pixel_aligned_is_exact():
    poly = shapely.Polygon([(2, 2), (20, 2), (20, 10), (10, 10), (10, 30), (2, 30)])  # an L
    det = Detection("field", 0.8, "polygon", poly)
    back = mask_to_region(to_mask(det, SHAPE))
    assert back.kind == "polygon" and (back.label, back.score) == ("field", 0.8)
    assert box_iou(back.geometry, poly) == 1.0


def test_polygon_mask_polygon_round_shape_iou_near_one():
    disc = shapely.Point(30, 20).buffer(15, quad_segs=32)
    back = mask_to_region(to_mask(Detection("pond", 1.0, "polygon", disc), SHAPE))
    assert box_iou(back.geometry, disc) > 0.95


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 9)), min_size=1, max_size=40))
def test_mask_region_mask_round_trip(cells):
    m = np.zeros((10, 12), bool)
    for c, r in cells:
        m[r, c] = True
    det = Detection("x", 1.0, "mask", m)
    region = mask_to_region(det)
    assert region.geometry.is_valid
    assert np.array_equal(to_mask(region, m.shape).geometry, m)


def test_mask_to_region_errors():
    with pytest.raises(InputError, match="mask"):
        mask_to_region(box_det(0, 0, 1, 1))
    with pytest.raises(InputError, match="empty"):
        mask_to_region(Detection("x", 1.0, "mask", np.zeros(SHAPE, bool)))


def test_mask_with_two_components_and_a_hole():
    m = np.zeros((10, 10), bool)
    m[1:6, 1:6] = True
    m[3, 3] = False
    m[8, 8] = True
    g = mask_to_region(Detection("x", 1.0, "mask", m)).geometry
    assert g.geom_type == "MultiPolygon" and g.area == 25 - 1 + 1


# ---------------------------------------------------------------------------------------
# to_region and segmenters
# ---------------------------------------------------------------------------------------
def test_to_region_without_segmenter_is_the_box():
    det = box_det(2, 3, 10, 12)
    out = to_region(det)
    assert out.kind == "polygon" and out.geometry.equals(det.geometry) and out.label == "b"


def test_to_region_with_segmenter_uses_the_mask_outline():
    calls = []
    out = to_region(box_det(4, 4, 12, 10), half_segmenter(calls), IMAGE)
    assert calls == [[(4.0, 4.0, 12.0, 10.0)]]
    assert out.geometry.bounds == (4, 4, 8, 10) and out.score == 0.7


def test_to_region_other_kinds():
    poly = Detection("p", 1.0, "polygon", shapely.Polygon([(0, 0), (5, 0), (0, 5)]))
    assert to_region(poly).geometry.equals(poly.geometry)
    pt = to_region(Detection("p", 1.0, "point", shapely.Point(2.5, 3.5)))
    assert pt.kind == "polygon" and pt.geometry.bounds == (2, 3, 3, 4)
    m = np.zeros(SHAPE, bool)
    m[0:2, 0:3] = True
    assert to_region(Detection("m", 1.0, "mask", m)).geometry.area == 6


def test_segmenter_problems():
    det = box_det(1, 1, 5, 5)
    with pytest.raises(InputError, match="image"):
        to_region(det, half_segmenter())
    with pytest.raises(ModelError, match="masks for"):
        to_region(det, lambda image, boxes: [], IMAGE)
    with pytest.raises(ModelError, match="shape"):
        to_region(det, lambda image, boxes: [np.zeros((3, 3), bool)], IMAGE)
    with pytest.warns(ParseWarning, match="found nothing"):
        out = to_region(det, lambda image, boxes: [np.zeros(SHAPE, bool)], IMAGE)
    assert out.geometry.equals(det.geometry)
    # SAM-style (1, rows, cols) float masks are accepted
    sam = lambda image, boxes: [
        np.ones((1,) + SHAPE, np.float32) * 0 + (np.arange(SHAPE[1]) < 3)[None, None, :]
    ]  # noqa: E731
    assert to_region(det, sam, IMAGE).geometry.bounds == (0, 0, 3, 40)


# ---------------------------------------------------------------------------------------
# detections_to_level
# ---------------------------------------------------------------------------------------
def mixed():
    m = np.zeros(SHAPE, bool)
    m[20:25, 30:40] = True
    return [
        box_det(2, 2, 10, 8, "car", 0.9),
        Detection("pond", 0.6, "polygon", shapely.Polygon([(40, 2), (50, 2), (50, 12), (40, 12)])),
        Detection("roof", 0.5, "mask", m),
        Detection("well", 0.4, "point", shapely.Point(55.5, 35.5)),
    ]


@pytest.mark.parametrize("level", LEVELS)
def test_levels_give_the_target_kind_and_keep_order_labels_scores(level):
    dets = mixed()
    out = detections_to_level(dets, level, SHAPE)
    assert [d.kind for d in out] == [LEVEL_KINDS[level]] * 4
    assert [(d.label, d.score) for d in out] == [(d.label, d.score) for d in dets]


def test_object_level_boxes():
    out = detections_to_level(mixed(), "object")
    assert [d.geometry.bounds for d in out] == [
        (2, 2, 10, 8),
        (40, 2, 50, 12),
        (30, 20, 40, 25),
        (55, 35, 56, 36),
    ]


def test_pixel_level_counts():
    out = detections_to_level(mixed(), "pixel", SHAPE)
    assert [int(d.geometry.sum()) for d in out] == [48, 100, 50, 1]


def test_segmenter_is_called_once_for_all_boxes():
    calls = []
    dets = mixed() + [box_det(20, 20, 30, 30, "car", 0.3)]
    region = detections_to_level(dets, "region", segmenter=half_segmenter(calls), image=IMAGE)
    assert len(calls) == 1 and len(calls[0]) == 2
    assert region[0].geometry.bounds == (2, 2, 6, 8) and region[4].geometry.bounds == (20, 20, 25, 30)
    calls.clear()
    pixel = detections_to_level(
        dets, "pixel", segmenter=half_segmenter(calls), image=IMAGE
    )  # shape from image
    assert len(calls) == 1
    assert int(pixel[0].geometry.sum()) == 4 * 6 and pixel[0].geometry.shape == SHAPE


def test_pixel_level_falls_back_to_the_box_when_the_segmenter_finds_nothing():
    empty = lambda image, boxes: [np.zeros(SHAPE, bool) for _ in boxes]  # noqa: E731
    with pytest.warns(ParseWarning, match="found nothing"):
        (d,) = detections_to_level([box_det(0, 0, 4, 4)], "pixel", SHAPE, segmenter=empty, image=IMAGE)
    assert d.geometry.sum() == 16


def test_empty_and_off_grid_detections_are_dropped_with_a_warning():
    dets = [
        Detection("e", 1.0, "mask", np.zeros(SHAPE, bool)),
        box_det(1, 1, 2, 2),
        box_det(500, 500, 510, 510, "far"),
    ]
    with pytest.warns(ParseWarning, match="empty"):
        out = detections_to_level(dets, "object")
    assert len(out) == 2
    with pytest.warns(ParseWarning, match="covers no pixel"):
        out = detections_to_level(dets[1:], "pixel", SHAPE)
    assert [d.label for d in out] == ["b"]


def test_level_argument_errors():
    with pytest.raises(InputError, match="level"):
        detections_to_level([], "scene", SHAPE)
    with pytest.raises(InputError, match="shape"):
        detections_to_level([box_det(0, 0, 1, 1)], "pixel")
    assert detections_to_level([], "region") == []


def test_inputs_are_not_modified():
    dets = mixed()
    before = dets[2].geometry.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for level in LEVELS:
            out = detections_to_level(dets, level, SHAPE)
            if level == "pixel":
                out[2].geometry[:] = False
    assert np.array_equal(dets[2].geometry, before)
