"""Qwen3-VL JSON grounding: ``bbox_2d`` relative, 0..1000, whatever the input size."""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_qwen3", "FORMAT"]


def parse_qwen3(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen3-VL JSON grounding output (coordinates relative, 0..1000).

    Same JSON shapes and repairs as :func:`parse_qwen25`. Qwen3-VL normalises
    coordinates to the 0..1000 range whatever the input size; a value of 1000 is read as
    999 (the grid has 1000 steps, 0..999), then ``x * width / 1000``,
    ``y * height / 1000``. Values beyond 1000 or below 0 are clipped with a warning.

    Examples
    --------
    >>> d, = parse_qwen3('[{"bbox_2d": [100, 250, 500, 1000], "label": "lake"}]', (2000, 400))
    >>> d.label, d.geometry.bounds
    ('lake', (200.0, 100.0, 1000.0, 399.6))
    """
    size = check_size(image_size)
    w, h = size

    def rel(v: float, side: int) -> float:
        return (999.0 if 999.0 < v <= 1000.0 else v) * side / 1000.0

    return guard(
        "qwen3",
        parse_json_grounding,
        text,
        Builder("qwen3", size, label, lambda v: rel(v, w), lambda v: rel(v, h)),
    )


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/omni_recognition.ipynb @ b3a7477 (qwen3-vl-235b-a22b-instruct, "
            "'sample-anime.jpeg', "
            "1920x1080): 9 characters with a nested 'names' object and a STRAY '{' LINE before the sixth object; the notebook states 'relative coordinates ... scaled from 0 to 1000' -> "
            "int(x / 1000 * width)"
        ),
        text=(
            '```json\n[\n\t{\n\t\t"bbox_2d": [0, 52, 477, 999],\n\t\t"names": {\n'
            '\t\t\t"zh": "富冈义勇",\n\t\t\t"en": "Giyu Tomioka"\n\t\t}\n\t},\n\t{\n'
            '\t\t"bbox_2d": [197, 347, 520, 999],\n\t\t"names": {\n\t\t\t"zh": "时透无一郎",\n'
            '\t\t\t"en": "Muichiro Tokito"\n\t\t}\n\t},\n\t{"bbox_2d": [220, 54, 500, 595],\n'
            '\t\t"names": {\n\t\t\t"zh": "不死川实弥",\n\t\t\t"en": "Sanemi Shinazugawa"\n\t\t}\n\t},\n'
            '\t{\n\t\t"bbox_2d": [431, 84, 565, 401],\n\t\t"names": {\n\t\t\t"zh": "甘露寺蜜璃",\n'
            '\t\t\t"en": "Mitsuri Kanroji"\n\t\t}\n\t},\n\t{"bbox_2d": [541, 0, 667, 333],\n'
            '\t\t"names": {\n\t\t\t"zh": "悲鸣屿行冥",\n\t\t\t"en": "Gyomei Himejima"\n\t\t}\n\t},\n'
            '\t{\n\t{"bbox_2d": [649, 116, 794, 643],\n\t\t"names": {\n\t\t\t"zh": "伊黑小芭内",\n'
            '\t\t\t"en": "Obanai Iguro"\n\t\t}\n\t},\n\t{\n\t\t"bbox_2d": [762, 34, 999, 555],\n'
            '\t\t"names": {\n\t\t\t"zh": "炼狱杏寿郎",\n\t\t\t"en": "Kyojuro Rengoku"\n\t\t}\n\t},\n'
            '\t{\n\t\t"bbox_2d": [434, 322, 686, 999],\n\t\t"names": {\n\t\t\t"zh": "胡蝶忍",\n'
            '\t\t\t"en": "Shinobu Kocho"\n\t\t}\n\t},\n\t{\n\t\t"bbox_2d": [590, 444, 999, 999],\n'
            '\t\t"names": {\n\t\t\t"zh": "宇髓天元",\n\t\t\t"en": "Tengen Uzui"\n\t\t}\n\t}\n]\n```\n'
        ),
        image_size=(1920, 1080),
        expected=(
            (0, 56, 915, 1078),
            (378, 374, 998, 1078),
            (422, 58, 960, 642),
            (827, 90, 1084, 433),
            (1038, 0, 1280, 359),
            (1246, 125, 1524, 694),
            (1463, 36, 1918, 599),
            (833, 347, 1317, 1078),
            (1132, 479, 1918, 1078),
        ),
        labels=(
            "Giyu Tomioka",
            "Muichiro Tokito",
            "Sanemi Shinazugawa",
            "Mitsuri Kanroji",
            "Gyomei Himejima",
            "Obanai Iguro",
            "Kyojuro Rengoku",
            "Shinobu Kocho",
            "Tengen Uzui",
        ),
        warns=("unmatched '{'",),
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/omni_recognition.ipynb @ b3a7477 ('sample-food.jpeg', "
            "3024x4032): labels under 'name_en' (after 'name_zh'); int(x / 1000 * width)"
        ),
        text=(
            '```json\n[\n\t{"bbox_2d": [0, 614, 224, 825], "name_zh": "米饭", "name_en": "Rice"},\n'
            '\t{"bbox_2d": [0, 207, 227, 333], "name_zh": "米饭", "name_en": "Rice"},\n'
            '\t{"bbox_2d": [266, 126, 695, 343], "name_zh": "土豆胡萝卜排骨汤", '
            '"name_en": "Potato Carrot Pork Rib Soup"},\n\t{"bbox_2d": [704, 185, 956, 317], '
            '"name_zh": "橙子片", "name_en": "Orange Slices"},\n\t{"bbox_2d": [40, 368, 436, 610], '
            '"name_zh": "手撕包菜", "name_en": "Shredded Cabbage"},\n\t{"bbox_2d": [562, 359, 946, '
            '593], "name_zh": "西红柿炒鸡蛋", "name_en": "Tomato Scrambled Eggs"},\n\t{"bbox_2d": [278, '
            '584, 762, 939], "name_zh": "麻辣血豆腐", "name_en": "Spicy Blood Tofu"}\n]\n```\n'
        ),
        image_size=(3024, 4032),
        expected=(
            (0, 2475, 677, 3326),
            (0, 834, 686, 1342),
            (804, 508, 2101, 1382),
            (2128, 745, 2890, 1278),
            (120, 1483, 1318, 2459),
            (1699, 1447, 2860, 2390),
            (840, 2354, 2304, 3786),
        ),
        labels=(
            "Rice",
            "Rice",
            "Potato Carrot Pork Rib Soup",
            "Orange Slices",
            "Shredded Cabbage",
            "Tomato Scrambled Eggs",
            "Spicy Blood Tofu",
        ),
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/spatial_understanding.ipynb @ a8ca95d (Qwen3-VL API, "
            "'spatio_case2_aff.png', "
            "printed size 480x640): a point_2d; the cookbook's plot_points: int(x) / 1000 * width"
        ),
        text='```json\n[\n\t{"point_2d": [925, 618], "label": "point_1"}\n]\n```',
        image_size=(480, 640),
        expected=((444, 395.52, 444, 395.52),),
        labels=("point_1",),
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/think_with_images.ipynb @ b3a7477 (qwen3-vl-235b-a22b-instruct, "
            "first image_zoom_in_tool call on 'hopinn.jpg', "
            "2460x1612): bbox_2d on 0..1000 as the tool reads it"
        ),
        text=('{"label": "main hanging sign for Hop Inn", "bbox_2d": [574, 301, 660, 468], "img_idx": 0}'),
        image_size=(2460, 1612),
        expected=((1412, 485, 1623, 754),),
        labels=("main hanging sign for Hop Inn",),
    ),
)

FORMAT = register(
    Format(
        name="qwen3",
        family="Qwen3-VL",
        aliases=("qwen3-vl", "qwen3_vl"),
        convention=Convention("0-1000", "x-first", ("box", "point"), "min(x, 999) * width / 1000"),
        prompt="Locate every {label} in the image and output the bbox coordinates of each in JSON format "
        'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...].',
        parse=parse_qwen3,
        models=(r"qwen3(-|_)?vl",),
        marker=r"bbox_2d|point_2d",
        specificity=55,
        cases=CASES,
    )
)
