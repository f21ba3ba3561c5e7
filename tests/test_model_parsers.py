"""models/formats (was models/parsers.py): model text -> pixel detections, exact mappings, never raising on junk.

Model outputs below are hand-written in the shapes the model cards and cookbooks show
(Qwen2.5-VL grounding cookbook, Qwen2-VL box tokens, Florence-2 ``<loc_N>`` text and
``post_process_generation`` dicts, GeoChat ``{<x1><y1><x2><y2>|<θ>}``, RemoteReasoner
``<think>/<answer>``).
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from georeason.errors import InputError, ParseWarning
from georeason.geo.grounding.detections import Detection
from georeason.models.formats import (
    FORMATS,
    detect_format,
    parse_boxes,
    parse_florence,
    parse_geochat,
    parse_output,
    parse_qwen2_boxes,
    parse_qwen3,
    parse_qwen25,
    parse_remotereasoner,
    smart_resize,
)

SIZE = (1000, 500)  # (width, height)


def bounds(dets):
    return [tuple(round(v, 6) for v in d.geometry.bounds) for d in dets]


def quiet(fn, *args, **kw):
    """Call a parser and fail if it warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParseWarning)
        return fn(*args, **kw)


def warned(fn, *args, match=None, **kw):
    with pytest.warns(ParseWarning, match=match) as rec:
        out = fn(*args, **kw)
    return out, [str(w.message) for w in rec]


# ---------------------------------------------------------------------------------------
# smart_resize
# ---------------------------------------------------------------------------------------
def test_smart_resize_1024_square_by_hand():
    # round(1024 / 28) = 37 -> 1036; 1036^2 = 1,073,296 > 1,003,520 = 28*28*1280, so
    # beta = sqrt(1024^2 / 1,003,520) = 1.02220; 1024 / beta = 1001.76; floor(1001.76 / 28) = 35 -> 980
    assert smart_resize(1024, 1024) == (980, 980)


def test_smart_resize_full_hd_by_hand():
    # 1080 -> 39*28 = 1092, 1920 -> 69*28 = 1932: 2,109,744 px > max, beta = sqrt(2,073,600 / 1,003,520)
    # = 1.43746: 1080 / beta = 751.3 -> 26*28 = 728; 1920 / beta = 1335.7 -> 47*28 = 1316
    assert smart_resize(1080, 1920) == (728, 1316)


def test_smart_resize_within_budget_just_rounds():
    # 720 -> round(25.71) = 26 -> 728, 1280 -> round(45.71) = 46 -> 1288; 937,664 px <= max
    assert smart_resize(720, 1280) == (728, 1288)
    assert smart_resize(512, 640) == (504, 644)


def test_smart_resize_small_image_scaled_up():
    # 28*28 = 784 < 56*56: beta = sqrt(3136 / 900); 30 * beta = 56 -> ceil(2) * 28 = 56
    assert smart_resize(30, 30) == (56, 56)
    # 10 x 20: both round up to 28; beta = sqrt(3136 / 200) = 3.96: ceil(39.6 / 28) = 2, ceil(79.2 / 28) = 3
    assert smart_resize(10, 20) == (56, 84)


def test_smart_resize_rejects_extreme_aspect_ratio():
    with pytest.raises(InputError, match="aspect ratio"):
        smart_resize(10, 2100)
    with pytest.raises(ValueError):  # InputError is a ValueError, like upstream's
        smart_resize(5000, 20)
    with pytest.raises(InputError):
        smart_resize(0, 100)


@given(st.integers(28, 6000), st.integers(28, 6000))
def test_smart_resize_properties(h, w):
    if max(h, w) / min(h, w) > 200:
        with pytest.raises(InputError):
            smart_resize(h, w)
        return
    hb, wb = smart_resize(h, w)
    assert hb % 28 == 0 and wb % 28 == 0
    assert hb * wb <= 28 * 28 * 1280 or min(hb, wb) == 28
    assert hb * wb >= 56 * 56


# ---------------------------------------------------------------------------------------
# Qwen2.5-VL
# ---------------------------------------------------------------------------------------
COOKBOOK = """```json
[
\t{"bbox_2d": [135, 114, 1016, 672], "label": "building with a red roof"}
]
```"""


def test_qwen25_cookbook_output_maps_back_from_the_resized_input():
    # a 1280 x 720 tile is fed to the model as 1288 x 728 (smart_resize)
    h_in, w_in = smart_resize(720, 1280)
    (d,) = quiet(parse_qwen25, COOKBOOK, (1280, 720), input_size=(w_in, h_in))
    assert d.kind == "box" and d.label == "building with a red roof" and d.score == 1.0
    x1, y1, x2, y2 = d.geometry.bounds
    assert (x1, y1, x2, y2) == pytest.approx(
        (135 * 1280 / 1288, 114 * 720 / 728, 1016 * 1280 / 1288, 672 * 720 / 728)
    )


def test_qwen25_without_input_size_reads_original_pixels():
    (d,) = quiet(parse_qwen25, COOKBOOK, (1280, 720))
    assert d.geometry.bounds == (135, 114, 1016, 672)


def test_qwen25_several_objects_points_scores_and_prose():
    text = (
        "Sure! Here are the objects:\n```json\n[\n"
        '  {"bbox_2d": [10, 20, 110, 220], "label": "car", "score": 0.75},\n'
        '  {"bbox_2d": [300, 40, 380, 90], "label": "truck", "confidence": 0.5},\n'
        '  {"point_2d": [500, 250], "label": "well"}\n]\n```\nLet me know if you need more.'
    )
    dets = quiet(parse_qwen25, text, SIZE)
    assert [(d.label, d.kind, d.score) for d in dets] == [
        ("car", "box", 0.75),
        ("truck", "box", 0.5),
        ("well", "point", 1.0),
    ]
    assert dets[2].geometry.equals(shapely.Point(500, 250))


def test_qwen25_single_quotes_trailing_commas_single_object():
    dets = quiet(parse_qwen25, "{'bbox_2d': [1, 2, 30, 40], 'label': \"the pier's end\",}", SIZE)
    assert [(d.label, d.geometry.bounds) for d in dets] == [("the pier's end", (1, 2, 30, 40))]
    dets = quiet(
        parse_qwen25, "[{'bbox_2d': [1, 2, 30, 40], 'label': 'a'}, {'bbox_2d': [5, 6, 70, 80],},]", SIZE
    )
    assert bounds(dets) == [(1, 2, 30, 40), (5, 6, 70, 80)]


def test_qwen25_label_fallbacks():
    text = '[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "label": ""}, {"bbox_2d": [1, 2, 3, 4], "label": "x"}]'
    assert [d.label for d in quiet(parse_qwen25, text, SIZE, label="tank")] == ["tank", "tank", "x"]
    assert [d.label for d in quiet(parse_qwen25, text, SIZE)] == ["object", "object", "x"]


def test_qwen25_truncated_json_keeps_complete_objects():
    text = (
        '```json\n[\n  {"bbox_2d": [10, 20, 30, 40], "label": "a"},\n  {"bbox_2d": [50, 60, 70, 80], "label": "b"},\n'
        '  {"bbox_2d": [90, 100, 1'
    )
    dets, msgs = warned(parse_qwen25, text, SIZE, match="truncated")
    assert [d.label for d in dets] == ["a", "b"]


def test_qwen25_truncated_inside_a_string():
    dets, _ = warned(
        parse_qwen25,
        '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "unfin',
        SIZE,
        match="truncated",
    )
    assert [d.label for d in dets] == ["a"]


def test_qwen25_nested_wrapper_object():
    dets = quiet(parse_qwen25, '{"objects": [{"bbox_2d": [1, 2, 3, 4], "label": "a"}]}', SIZE)
    assert [d.label for d in dets] == ["a"]


def test_qwen25_bare_lists_fall_back_to_boxes():
    assert bounds(quiet(parse_qwen25, "[[1, 2, 3, 4], [5, 6, 7, 8]]", SIZE)) == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert bounds(quiet(parse_qwen25, "The box is [1, 2, 3, 4].", SIZE)) == [(1, 2, 3, 4)]


def test_qwen25_empty_list_is_a_valid_answer():
    assert quiet(parse_qwen25, "```json\n[]\n```", SIZE) == []


@pytest.mark.parametrize(
    "value, match",
    [
        ("[NaN, 2, 3, 4]", "non-finite"),
        ("[1, 2, Infinity, 4]", "non-finite"),
        ("[1, 2, -Infinity, 4]", "non-finite"),
        ("[1, 2, nan, 4]", "non-finite"),
        ("[5, 5, 5, 9]", "zero area"),
        ("[5, 5, 9, 5]", "zero area"),
        ("[2000, 600, 3000, 900]", "outside"),
        ("[-50, -50, -10, -10]", "outside"),
        ("[1, 2, 3]", "expected 4 numbers"),
        ('["a", "b", "c", "d"]', "expected 4 numbers"),
    ],
)
def test_qwen25_bad_boxes_are_dropped_with_a_warning(value, match):
    dets, msgs = warned(
        parse_qwen25,
        f'[{{"bbox_2d": {value}, "label": "bad"}}, {{"bbox_2d": [1, 2, 3, 4], "label": "ok"}}]',
        SIZE,
        match=match,
    )
    assert [d.label for d in dets] == ["ok"]


def test_qwen25_swapped_corners_are_reordered():
    (d,), msgs = warned(parse_qwen25, '[{"bbox_2d": [300, 200, 100, 50]}]', SIZE, match="swapped")
    assert d.geometry.bounds == (100, 50, 300, 200)


def test_qwen25_out_of_image_is_clipped():
    (d,), _ = warned(parse_qwen25, '[{"bbox_2d": [-20, 100, 1200, 600]}]', SIZE, match="clipped")
    assert d.geometry.bounds == (0, 100, 1000, 500)


def test_qwen25_bad_scores():
    (d,), _ = warned(parse_qwen25, '[{"bbox_2d": [1, 2, 3, 4], "score": 87}]', SIZE, match="score")
    assert d.score == 1.0
    (d,), _ = warned(parse_qwen25, '[{"bbox_2d": [1, 2, 3, 4], "score": "high"}]', SIZE, match="score")
    assert d.score == 1.0


def test_qwen25_point_outside_is_dropped():
    dets, _ = warned(parse_qwen25, '[{"point_2d": [1500, 20]}, {"point_2d": [NaN, 2]}]', SIZE, match="point")
    assert dets == []


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
        ("I cannot find any buildings in this image.", "no grounding"),
        ("{this is not json}", "unparseable"),
        ('[{"label": "car"}]', "no bbox_2d"),
        ("[1, 2, 3, 4, 5, 6]", "not a grounding object"),
    ],
)
def test_qwen25_garbage_warns_and_returns_nothing(text, match):
    dets, _ = warned(parse_qwen25, text, SIZE, match=match)
    assert dets == []


def test_qwen25_non_text_input_warns():
    dets, _ = warned(parse_qwen25, 12345, SIZE, match="expected the model's text")
    assert dets == []


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (10.5, 3), "ab", None, (1, 2, 3)])
def test_bad_image_size_is_a_caller_error(size):
    with pytest.raises(InputError, match="image_size"):
        parse_qwen25("[]", size)


# ---------------------------------------------------------------------------------------
# Qwen3-VL
# ---------------------------------------------------------------------------------------
def test_qwen3_relative_0_1000():
    text = '```json\n[{"bbox_2d": [100, 200, 500, 600], "label": "field"}, {"point_2d": [250, 500], "label": "tree"}]\n```'
    box, point = quiet(parse_qwen3, text, SIZE)
    assert box.geometry.bounds == (100.0, 100.0, 500.0, 300.0)  # x * 1000/1000, y * 500/1000
    assert point.geometry.equals(shapely.Point(250, 250))


def test_qwen3_1000_is_read_as_999():
    (d,) = quiet(parse_qwen3, '[{"bbox_2d": [0, 0, 1000, 1000]}]', (2000, 3000))
    assert d.geometry.bounds == (0.0, 0.0, 1998.0, 2997.0)


def test_qwen3_beyond_1000_is_clipped_with_a_warning():
    (d,), _ = warned(parse_qwen3, '[{"bbox_2d": [500, 500, 1500, 900]}]', SIZE, match="clipped")
    assert d.geometry.bounds == (500.0, 250.0, 1000.0, 450.0)


def test_qwen3_truncated_and_garbage():
    dets, _ = warned(parse_qwen3, '[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [', SIZE, match="truncated")
    assert len(dets) == 1
    assert warned(parse_qwen3, "no idea", SIZE, match="no grounding")[0] == []


# ---------------------------------------------------------------------------------------
# Qwen2-VL
# ---------------------------------------------------------------------------------------
def test_qwen2_box_tokens():
    text = (
        "<|object_ref_start|>the red roof<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
        " and <|object_ref_start|>the pool<|object_ref_end|><|box_start|>(500,500),(600,700)<|box_end|>"
        "<|box_start|>(700,100),(800,200)<|box_end|><|im_end|>"
    )
    dets = quiet(parse_qwen2_boxes, text, SIZE)
    assert [d.label for d in dets] == ["the red roof", "the pool", "the pool"]
    assert bounds(dets) == [(100, 100, 300, 200), (500, 250, 600, 350), (700, 50, 800, 100)]


def test_qwen2_without_reference_uses_label_argument():
    (d,) = quiet(parse_qwen2_boxes, "<|box_start|>(0,0),(1000,1000)<|box_end|>", SIZE, label="scene")
    assert d.label == "scene" and d.geometry.bounds == (0, 0, 1000, 500)


def test_qwen2_several_boxes_in_one_span_and_stray_numbers():
    dets, _ = warned(
        parse_qwen2_boxes,
        "<|box_start|>(0,0),(100,100),(200,200),(300,300),(5<|box_end|>",
        SIZE,
        match="stray",
    )
    assert bounds(dets) == [(0, 0, 100, 50), (200, 100, 300, 150)]


def test_qwen2_truncated_box():
    dets, _ = warned(
        parse_qwen2_boxes,
        "<|object_ref_start|>a<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|><|box_start|>(5,6),(7",
        SIZE,
        match="truncated",
    )
    assert [d.label for d in dets] == ["a"]


def test_qwen2_decoded_without_special_tokens():
    (d,) = quiet(parse_qwen2_boxes, "the red roof(100,200),(300,400)", SIZE)
    assert d.geometry.bounds == (100, 100, 300, 200)


def test_qwen2_garbage():
    assert (
        warned(parse_qwen2_boxes, "<|box_start|>nothing here<|box_end|>", SIZE, match="no coordinates")[0]
        == []
    )
    assert warned(parse_qwen2_boxes, "just words", SIZE, match="no grounding")[0] == []


# ---------------------------------------------------------------------------------------
# RemoteReasoner
# ---------------------------------------------------------------------------------------
def test_remotereasoner_answer_boxes_in_pixels():
    text = (
        "<think>The question asks for storage tanks next to the harbour. I see two round white "
        "structures near the pier.</think>\n<answer>[[120, 45, 180, 101], [200, 300, 260, 350]]</answer>"
    )
    dets = quiet(parse_remotereasoner, text, SIZE, label="storage tank")
    assert [d.label for d in dets] == ["storage tank"] * 2
    assert bounds(dets) == [(120, 45, 180, 101), (200, 300, 260, 350)]


def test_remotereasoner_empty_answer_means_no_match():
    assert quiet(parse_remotereasoner, "<think>There is no airport.</think><answer>[]</answer>", SIZE) == []
    assert quiet(parse_remotereasoner, "<think>none</think><answer> [ ] </answer>", SIZE) == []


@pytest.mark.parametrize(
    "text",
    [
        "<think>reasoning without an end <answer>[[1, 2, 3, 4]]</answer>",
        "<think>r</think><answer>[1, 2, 3, 4]</answer>",
        "<think>r</think> <answer> [ [ 1 , 2 , 3 , 4 ] ] </answer>",
        "<think>r</think>[[1, 2, 3, 4]]",
        "<answer>[[1.0, 2.0, 3.0, 4.0]]",
    ],
)
def test_remotereasoner_tolerates_sloppy_tags(text):
    assert bounds(quiet(parse_remotereasoner, text, SIZE)) == [(1, 2, 3, 4)]


def test_remotereasoner_bad_output():
    assert warned(parse_remotereasoner, "<think>I am still thinking", SIZE, match="no answer")[0] == []
    assert (
        warned(parse_remotereasoner, "<think>x</think><answer>no boxes</answer>", SIZE, match="no grounding")[
            0
        ]
        == []
    )
    dets, _ = warned(parse_remotereasoner, "<answer>[[1, 2, 3, 4], [5, 6,", SIZE, match="truncated")
    assert len(dets) == 1


# ---------------------------------------------------------------------------------------
# Florence-2
# ---------------------------------------------------------------------------------------
def test_florence_od_raw_text_bin_centres():
    # the car example of the Florence-2 model card, as generated (special tokens kept)
    text = "</s><s>car<loc_52><loc_333><loc_932><loc_774>door handle<loc_599><loc_475><loc_636><loc_502>wheel<loc_0><loc_0><loc_999><loc_999></s>"
    w, h = 640, 480
    dets = quiet(parse_florence, text, "<OD>", (w, h))
    assert [d.label for d in dets] == ["car", "door handle", "wheel"]
    c = lambda n, side: (n + 0.5) * side / 1000  # noqa: E731 - bin centre
    assert dets[0].geometry.bounds == pytest.approx((c(52, w), c(333, h), c(932, w), c(774, h)))
    assert dets[2].geometry.bounds == pytest.approx((0.32, 0.24, 639.68, 479.76))


def test_florence_phrase_grounding_several_boxes_per_phrase():
    text = (
        "A green car<loc_100><loc_100><loc_200><loc_200><loc_300><loc_300><loc_400><loc_400>"
        "a yellow building<loc_500><loc_500><loc_900><loc_900>"
    )
    dets = quiet(parse_florence, text, "CAPTION_TO_PHRASE_GROUNDING", (1000, 1000))
    assert [d.label for d in dets] == ["A green car", "A green car", "a yellow building"]
    assert bounds(dets)[1] == (300.5, 300.5, 400.5, 400.5)


def test_florence_open_vocabulary_detection():
    dets = quiet(
        parse_florence, "building<loc_10><loc_20><loc_30><loc_40>", "<OPEN_VOCABULARY_DETECTION>", (100, 100)
    )
    assert [(d.label, d.kind) for d in dets] == [("building", "box")]


def test_florence_referring_segmentation_polygons_with_sep():
    text = (
        "<loc_100><loc_100><loc_300><loc_100><loc_300><loc_300><loc_100><loc_300><sep>"
        "<loc_600><loc_600><loc_800><loc_600><loc_800><loc_800></s>"
    )
    (d,) = quiet(parse_florence, text, "<REFERRING_EXPRESSION_SEGMENTATION>", (1000, 1000), label="lake")
    assert d.kind == "polygon" and d.label == "lake" and d.geometry.geom_type == "MultiPolygon"
    assert d.geometry.area == pytest.approx(200 * 200 + 200 * 200 / 2)


def test_florence_poly_tokens_delimit_objects():
    text = (
        "ponds<poly><loc_0><loc_0><loc_100><loc_0><loc_100><loc_100></poly>"
        "<poly><loc_500><loc_500><loc_600><loc_500><loc_600><loc_600></poly>"
    )
    dets = quiet(parse_florence, text, "<OPEN_VOCABULARY_DETECTION>", (1000, 1000))
    assert [(d.label, d.kind) for d in dets] == [("ponds", "polygon"), ("ponds", "polygon")]


def test_florence_post_processed_dicts():
    od = {
        "<OD>": {
            "bboxes": [[33.6, 160.0, 596.8, 371.2], [272.0, 242.0, 303.0, 247.0]],
            "labels": ["car", "door handle"],
        }
    }
    dets = quiet(parse_florence, od, "<OD>", (640, 480))
    assert [d.label for d in dets] == ["car", "door handle"]
    assert dets[0].geometry.bounds == pytest.approx((33.6, 160.0, 596.8, 371.2))
    res = {
        "<REFERRING_EXPRESSION_SEGMENTATION>": {
            "polygons": [[[10, 10, 50, 10, 50, 50, 10, 50]]],
            "labels": [""],
        }
    }
    (d,) = quiet(parse_florence, res, "<REFERRING_EXPRESSION_SEGMENTATION>", (100, 100), label="field")
    assert d.kind == "polygon" and d.label == "field" and d.geometry.area == 1600
    ovd = {
        "<OPEN_VOCABULARY_DETECTION>": {
            "bboxes": [[1, 2, 3, 4]],
            "bboxes_labels": ["tank"],
            "polygons": [],
            "polygons_labels": [],
        }
    }
    assert [d.label for d in quiet(parse_florence, ovd, "<OPEN_VOCABULARY_DETECTION>", (10, 10))] == ["tank"]


def test_florence_dict_garbage():
    for bad in (
        {"<OD>": {"bboxes": [[1, 2, "x", 4]], "labels": ["a"]}},
        {"<OD>": {"bboxes": ["oops"], "labels": []}},
        {"<OD>": 17},
        {"<OD>": {"nothing": 1}},
        {"<REFERRING_EXPRESSION_SEGMENTATION>": {"polygons": [[[1, 2, 3]]], "labels": [""]}},
    ):
        dets, _ = warned(parse_florence, bad, "<OD>", (10, 10))
        assert dets == []


def test_florence_self_intersecting_polygon_is_repaired():
    # a bow-tie: make_valid splits it into two triangles
    text = "<loc_0><loc_0><loc_999><loc_999><loc_999><loc_0><loc_0><loc_999>"
    (d,), _ = warned(
        parse_florence, text, "<REFERRING_EXPRESSION_SEGMENTATION>", (1000, 1000), match="make_valid"
    )
    assert d.geometry.is_valid and d.geometry.area > 0


def test_florence_stray_locations_and_out_of_range_bins():
    dets, _ = warned(
        parse_florence, "car<loc_1><loc_2><loc_3><loc_4><loc_5>", "<OD>", (1000, 1000), match="stray"
    )
    assert len(dets) == 1
    (d,), _ = warned(
        parse_florence, "car<loc_1><loc_2><loc_1500><loc_4>", "<OD>", (1000, 1000), match="clipped"
    )
    assert d.geometry.bounds[2] == 1000


def test_florence_garbage_and_bad_task():
    assert warned(parse_florence, "</s><s></s>", "<OD>", (10, 10), match="empty")[0] == []
    assert warned(parse_florence, "a car on a road", "<OD>", (10, 10), match="no grounding")[0] == []
    with pytest.raises(InputError, match="task"):
        parse_florence("car<loc_1><loc_2><loc_3><loc_4>", "<CAPTION>", (10, 10))


# ---------------------------------------------------------------------------------------
# GeoChat
# ---------------------------------------------------------------------------------------
def test_geochat_relative_0_100():
    (d,) = quiet(parse_geochat, "<p>the white airplane</p> {<10><20><30><40>|<0>}", (504, 504))
    assert d.label == "the white airplane" and d.kind == "box"
    assert d.geometry.bounds == pytest.approx((50.4, 100.8, 151.2, 201.6))


def test_geochat_missing_angle_and_several_boxes():
    dets = quiet(
        parse_geochat, "There are two ships <p>ships</p>{<10><20><30><40>}{<50><50><60><70>|<0>}.", (200, 100)
    )
    assert [d.label for d in dets] == ["ships", "ships"]
    assert bounds(dets) == [(20, 20, 60, 40), (100, 50, 120, 70)]


def test_geochat_rotation_sign_positive_is_clockwise_on_screen():
    # box 40..60 x 45..55 (20 wide, 10 tall) about (50, 50), turned by +30 degrees
    (d,) = quiet(parse_geochat, "{<40><45><60><55>|<30>}", (100, 100))
    assert d.kind == "polygon"
    coords = np.asarray(d.geometry.exterior.coords)[:-1]
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    # the right-hand mid-edge (+10, 0) goes to (+10c, +10s): down the screen (rows grow), i.e. clockwise
    mid_right = (coords[1] + coords[2]) / 2
    assert mid_right == pytest.approx((50 + 10 * c, 50 + 10 * s))
    assert d.geometry.area == pytest.approx(200)


def test_geochat_rotation_stays_a_rectangle_on_a_non_square_image():
    (d,) = quiet(parse_geochat, "{<40><40><60><60>|<90>}", (200, 100))  # 40 x 20 px box
    assert d.geometry.bounds == pytest.approx((90, 30, 110, 70))
    assert d.geometry.area == pytest.approx(800)


def test_geochat_rotated_box_clipped_to_the_image():
    (d,), _ = warned(parse_geochat, "{<0><0><40><40>|<45>}", (100, 100), match="clipped")
    minx, miny, maxx, maxy = d.geometry.bounds
    assert minx >= 0 and miny >= 0


def test_geochat_bad_output():
    assert warned(parse_geochat, "{<10><20><30>}", (100, 100), match="4 coordinates")[0] == []
    assert warned(parse_geochat, "<p>a</p>{<10><20><30><40>|<nan>}", (100, 100), match="angle")[0] == []
    assert warned(parse_geochat, "{<10><20><30><4", (100, 100), match="truncated")[0] == []
    assert warned(parse_geochat, "I see nothing", (100, 100), match="no grounding")[0] == []


# ---------------------------------------------------------------------------------------
# plain lists
# ---------------------------------------------------------------------------------------
def test_plain_boxes_and_points():
    assert bounds(quiet(parse_boxes, "[10, 20, 30, 40]", SIZE)) == [(10, 20, 30, 40)]
    assert bounds(quiet(parse_boxes, "[[10, 20, 30, 40], [50.5, 60, 70, 80.25]]", SIZE)) == [
        (10, 20, 30, 40),
        (50.5, 60, 70, 80.25),
    ]
    pts = quiet(parse_boxes, "wells at (10, 20) and [30, 40]", SIZE, label="well")
    assert [(d.kind, d.label, d.geometry.coords[0]) for d in pts] == [
        ("point", "well", (10, 20)),
        ("point", "well", (30, 40)),
    ]


def test_plain_relative_scales():
    assert bounds(quiet(parse_boxes, "[100, 100, 500, 500]", SIZE, relative=1000)) == [(100, 50, 500, 250)]
    assert bounds(quiet(parse_boxes, "[10, 10, 50, 50]", SIZE, relative=100)) == [(100, 50, 500, 250)]
    assert bounds(quiet(parse_boxes, "[0.1, 0.1, 0.5, 0.5]", SIZE)) == [
        (100, 50, 500, 250)
    ]  # auto: fractions
    assert bounds(quiet(parse_boxes, "[0, 0, 1, 1]", SIZE)) == [(0, 0, 1, 1)]  # whole numbers: pixels
    with pytest.raises(InputError):
        parse_boxes("[1, 2, 3, 4]", SIZE, relative=0)


def test_plain_wrong_lengths_and_garbage():
    assert warned(parse_boxes, "[1, 2, 3, 4, 5]", SIZE, match="expected 4")[0] == []
    assert warned(parse_boxes, "no numbers", SIZE, match="no grounding")[0] == []
    assert quiet(parse_boxes, "[]", SIZE) == []


# ---------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------
SAMPLES = {
    "qwen2": "<|object_ref_start|>a<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>",
    "remotereasoner": "<think>x</think><answer>[[1, 2, 3, 4]]</answer>",
    "florence": "car<loc_1><loc_2><loc_3><loc_4>",
    "geochat": "<p>a</p>{<1><2><3><4>|<10>}",
    "plain": "[1, 2, 3, 4]",
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_detect_format(fmt):
    assert detect_format(SAMPLES[fmt]) == fmt


def test_detect_format_refuses_bbox_2d_json_without_a_model_name():
    # the same bbox_2d JSON is resized-input pixels (Qwen2.5), 0-1000 (Qwen3) or 0-1 (Kimi)
    assert detect_format(COOKBOOK) is None
    assert detect_format(COOKBOOK, model="Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2.5"


def test_detect_format_dict_is_florence():
    assert detect_format({"<OD>": {"bboxes": [], "labels": []}}) == "florence"


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_parse_output_auto_equals_named_parser(fmt):
    if fmt == "remotereasoner":  # r1 (0-1000) reads the same answer: auto picks, and says so
        auto, msgs = warned(parse_output, SAMPLES[fmt], "auto", (2000, 2000), match="r1 would read it")
        assert auto.ambiguous == ("r1",)
    else:
        auto = quiet(parse_output, SAMPLES[fmt], "auto", (2000, 2000))
    named = quiet(parse_output, SAMPLES[fmt], fmt, (2000, 2000))
    assert len(auto) == 1 and bounds(auto) == bounds(named)


def test_parse_output_aliases_and_keywords():
    h_in, w_in = smart_resize(720, 1280)
    a = parse_output(COOKBOOK, "Qwen2.5-VL", (1280, 720), input_size=(w_in, h_in))
    b = parse_qwen25(COOKBOOK, (1280, 720), input_size=(w_in, h_in))
    assert bounds(a) == bounds(b)
    assert bounds(parse_output('[{"bbox_2d": [0, 0, 500, 500]}]', "qwen3-vl", (100, 100))) == [(0, 0, 50, 50)]
    assert [
        d.label for d in parse_output("car<loc_1><loc_2><loc_3><loc_4>", "florence-2", (10, 10), task="OD")
    ] == ["car"]
    # auto ignores keywords the detected parser does not take
    assert len(parse_output("[1, 2, 3, 4]", "auto", (10, 10), input_size=(5, 5), task="<OD>")) == 1
    # florence without a task: guessed from the text
    (d,) = parse_output("<loc_0><loc_0><loc_500><loc_0><loc_500><loc_500>", "florence", (10, 10))
    assert d.kind == "polygon"


def test_parse_output_unknown_format():
    with pytest.raises(InputError, match="unknown model output format"):
        parse_output("[]", "llava", (10, 10))
    assert set(FORMATS) >= {
        "qwen2.5",
        "qwen2",
        "qwen3",
        "remotereasoner",
        "florence",
        "geochat",
        "plain",
        "auto",
    }


# ---------------------------------------------------------------------------------------
# never raise: garbage and fuzzing
# ---------------------------------------------------------------------------------------
GARBAGE = [
    "",
    " ",
    "\x00\x01",
    "null",
    "[",
    "]",
    "{",
    "}",
    "[[[[",
    "{{{{",
    "```json",
    "```json\n[{",
    "<answer>",
    "</think>",
    "<|box_start|>",
    "<|box_start|>(1,2),(3",
    "<loc_",
    "<loc_999999999999999999999>",
    "<p>",
    "{<",
    "{<1><2><3><4>|<",
    "[NaN, NaN, NaN, NaN]",
    "[1e999, 0, 1e999, 5]",
    "[-1e308, -1e308, 1e308, 1e308]",
    "[[1, 2, 3, 4]" * 50,
    '{"bbox_2d": {"x": 1}}',
    '{"bbox_2d": null}',
    '{"bbox_2d": [true, false, 1, 2]}',
    '{"point_2d": "here"}',
    "[" * 3000 + "]" * 3000,
    "{" * 3000,
    "'" * 7,
    '"' * 7,
    "<think>" * 5,
    "\u202e\u2066 ünïcödé 🚀 [1,2,3,4]",
]


def _check(dets, size):
    w, h = size
    assert isinstance(dets, list)
    for d in dets:
        assert isinstance(d, Detection) and d.kind in ("box", "point", "polygon")
        assert 0.0 <= d.score <= 1.0 and isinstance(d.label, str) and d.label
        minx, miny, maxx, maxy = d.geometry.bounds
        assert -1e-9 <= minx <= maxx <= w + 1e-9 and -1e-9 <= miny <= maxy <= h + 1e-9
        if d.kind != "point":
            assert d.geometry.area > 0 and d.geometry.is_valid


PARSE_FORMATS = ["qwen2.5", "qwen2", "qwen3", "remotereasoner", "florence", "geochat", "plain", "auto"]


@pytest.mark.parametrize("fmt", PARSE_FORMATS)
@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_never_raises(fmt, text):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dets = parse_output(text, fmt, (64, 48))
    _check(dets, (64, 48))
    assert not [w for w in rec if "parser bug" in str(w.message)]


TOKENS = (
    st.sampled_from(
        [
            "[",
            "]",
            "{",
            "}",
            "(",
            ")",
            ",",
            ":",
            '"',
            "'",
            "<",
            ">",
            "|",
            " ",
            "\n",
            "```json\n",
            "```",
            '"bbox_2d"',
            '"point_2d"',
            '"label"',
            '"score"',
            "bbox_2d",
            "NaN",
            "Infinity",
            "-",
            ".",
            "e",
            "<loc_",
            "<sep>",
            "<poly>",
            "</poly>",
            "</s>",
            "<|box_start|>",
            "<|box_end|>",
            "<|object_ref_start|>",
            "<|object_ref_end|>",
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            "<p>",
            "</p>",
            "car",
        ]
    )
    | st.integers(-2000, 3000).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(TOKENS, max_size=60).map("".join),
    st.sampled_from(PARSE_FORMATS),
    st.tuples(st.integers(1, 3000), st.integers(1, 3000)),
)
def test_fuzz_structured_text_never_raises(text, fmt, size):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dets = parse_output(text, fmt, size)
    _check(dets, size)
    assert not [w for w in rec if "parser bug" in str(w.message)], [str(w.message) for w in rec]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.sampled_from(PARSE_FORMATS))
def test_fuzz_random_text_never_raises(text, fmt):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dets = parse_output(text, fmt, (100, 80))
    _check(dets, (100, 80))
    assert not [w for w in rec if "parser bug" in str(w.message)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=6,
    ),
    st.sampled_from(["qwen2.5", "qwen3"]),
)
def test_fuzz_json_boxes_any_numbers(boxes, fmt):
    import json

    text = json.dumps([{"bbox_2d": list(b), "label": "x"} for b in boxes])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        dets = parse_output(text, fmt, (320, 240))
    _check(dets, (320, 240))
    assert len(dets) <= len(boxes)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    )
)
def test_fuzz_florence_dicts_never_raise(value):
    for result in (
        {"<OD>": value},
        {"<REFERRING_EXPRESSION_SEGMENTATION>": {"polygons": value, "labels": value}},
        {"bboxes": value, "labels": value},
    ):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            dets = parse_florence(result, "<OD>", (50, 50))
        _check(dets, (50, 50))
        assert not [w for w in rec if "parser bug" in str(w.message)]


def test_models_import_neither_torch_nor_prefect():
    code = (
        "import sys, georeason.models.formats, georeason.models.levels; "
        "bad = [m for m in ('torch', 'prefect') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
