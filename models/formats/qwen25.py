"""Qwen2.5-VL JSON grounding: ``bbox_2d`` in absolute pixels of the *resized* model input.

The image the model saw is ``smart_resize(height, width)`` of the original; boxes map
back with ``x * width / w_in`` (the Qwen2.5-VL grounding cookbook's ``plot_bounding_boxes``
scales by ``width / input_width``). Without ``input_size`` the coordinates are taken as
pixels of the original image.
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Case, Convention, Format, register
from georeason.models.formats.resize import smart_resize  # noqa: F401  (doctest)

__all__ = ["parse_qwen25", "FORMAT"]


def parse_qwen25(
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
    label: str | None = None,
) -> list[Detection]:
    """Detections from Qwen2.5-VL JSON grounding output.

    Parameters
    ----------
    text : str
        A JSON list such as ``[{"bbox_2d": [x1, y1, x2, y2], "label": "building"}]``
        (``point_2d: [x, y]`` for points), possibly in a Markdown ``json`` code fence, with
        prose around it, single quotes, trailing commas, a single object instead of a
        list, or cut off (the complete objects before the cut are kept).
    image_size : (int, int)
        ``(width, height)`` of the original tile image, in pixels.
    input_size : (int, int), optional
        ``(w_in, h_in)`` of the image the model saw (``smart_resize`` gives
        ``(h_in, w_in)``!). Qwen2.5-VL answers in absolute pixels of that image; they are
        scaled by ``width / w_in`` and ``height / h_in``. ``None``: the coordinates are
        already in the original image.
    label : str, optional
        Label for objects the model did not label (default ``"object"``).

    Examples
    --------
    >>> h_in, w_in = smart_resize(1024, 1024)
    >>> out = '```json\\n[{"bbox_2d": [98, 196, 490, 490], "label": "building"}]\\n```'
    >>> [(d.label, d.kind, d.geometry.bounds) for d in parse_qwen25(out, (1024, 1024), (w_in, h_in))]
    [('building', 'box', (102.4, 204.8, 512.0, 512.0))]
    """
    size = check_size(image_size)
    w, h = size
    if input_size is None:
        mapx = mapy = None
    else:
        w_in, h_in = check_size(input_size)
        mapx, mapy = (lambda v: v * w / w_in), (lambda v: v * h / h_in)
    return guard("qwen2.5", parse_json_grounding, text, Builder("qwen2.5", size, label, mapx, mapy))


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/ocr.ipynb @ d08310c: Qwen2.5-VL-7B 'Spotting all the text in the image with line-level' on ocr_receipt_example.jpg; the cell prints the input (image_grid_thw * 14) 868 x 588 (h x w) and the image size (576, "
            "864); boxes by the cookbook's plot_text_bounding_boxes: int(x / input_width * width)"
        ),
        text=(
            '```json\n[\n    {"bbox_2d": [109, 175, 556, 240], "text_content": "AuntieAnne\'s"},\n'
            '    {"bbox_2d": [48, 430, 252, 451], "text_content": "CINNAMON SUGAR"},\n'
            '    {"bbox_2d": [48, 462, 65, 484], "text_content": "1"},\n    {"bbox_2d": [100, 462, '
            '115, 484], "text_content": "x"},\n    {"bbox_2d": [131, 462, 198, 484], '
            '"text_content": "17,000"},\n    {"bbox_2d": [461, 462, 534, 489], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 511, 143, 532], '
            '"text_content": "SUB TOTAL"},\n    {"bbox_2d": [461, 515, 534, 539], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 580, 177, 601], '
            '"text_content": "GRAND TOTAL"},\n    {"bbox_2d": [461, 585, 534, 610], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 629, 134, 650], '
            '"text_content": "CASH IDR"},\n    {"bbox_2d": [461, 634, 534, 659], '
            '"text_content": "20,000"},\n    {"bbox_2d": [21, 677, 170, 698], '
            '"text_content": "CHANGE DUE"},\n    {"bbox_2d": [472, 682, 530, 705], '
            '"text_content": "3,000"},\n]\n```'
        ),
        image_size=(576, 864),
        expected=(
            (106, 174, 544, 238),
            (47, 428, 246, 448),
            (47, 459, 63, 481),
            (97, 459, 112, 481),
            (128, 459, 193, 481),
            (451, 459, 523, 486),
            (20, 508, 140, 529),
            (451, 512, 523, 536),
            (20, 577, 173, 598),
            (451, 582, 523, 607),
            (20, 626, 131, 647),
            (451, 631, 523, 655),
            (20, 673, 166, 694),
            (462, 678, 519, 701),
        ),
        options={"input_size": (588, 868)},
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/ocr.ipynb @ 545939f: Qwen2.5-VL-7B 'Spotting all the text in the image with line-level' on ocr/ocr_example2.jpg; the cell prints the input (image_grid_thw * 14) 868 x 588 (h x w) and the image size (576, "
            "864); boxes by the cookbook's plot_text_bounding_boxes: int(x / input_width * width)"
        ),
        text=(
            '```json\n[\n    {"bbox_2d": [49, 430, 251, 451], "text_content": "CINNAMON SUGAR"},\n'
            '    {"bbox_2d": [48, 491, 67, 511], "text_content": "1"},\n    {"bbox_2d": [102, 491, '
            '113, 511], "text_content": "x"},\n    {"bbox_2d": [131, 491, 198, 511], '
            '"text_content": "17,000"},\n    {"bbox_2d": [462, 491, 534, 516], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 540, 143, 560], '
            '"text_content": "SUB TOTAL"},\n    {"bbox_2d": [462, 540, 534, 565], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 609, 177, 629], '
            '"text_content": "GRAND TOTAL"},\n    {"bbox_2d": [462, 609, 534, 634], '
            '"text_content": "17,000"},\n    {"bbox_2d": [21, 659, 133, 679], '
            '"text_content": "CASH IDR"},\n    {"bbox_2d": [462, 659, 534, 684], '
            '"text_content": "20,000"},\n    {"bbox_2d": [21, 706, 170, 726], '
            '"text_content": "CHANGE DUE"},\n    {"bbox_2d": [472, 706, 530, 731], '
            '"text_content": "3,000"}\n]\n```'
        ),
        image_size=(576, 864),
        expected=(
            (48, 428, 245, 448),
            (47, 488, 65, 508),
            (99, 488, 110, 508),
            (128, 488, 193, 508),
            (452, 488, 523, 513),
            (20, 537, 140, 557),
            (452, 537, 523, 562),
            (20, 606, 173, 626),
            (452, 606, 523, 631),
            (20, 655, 130, 675),
            (452, 655, 523, 680),
            (20, 702, 166, 722),
            (462, 702, 519, 727),
        ),
        options={"input_size": (588, 868)},
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/ocr.ipynb @ 2841632: Qwen2.5-VL-7B 'Spotting all the text in the image with line-level' on ocr/ocr_example3.jpg; the cell prints the input (image_grid_thw * 14) 1400 x 868 (h x w) and the image size (870, "
            "1398); boxes by the cookbook's plot_text_bounding_boxes: int(x / input_width * width)"
        ),
        text=(
            '```json\n[\n    {\n        "bbox_2d": [125, 169, 754, 208], '
            '"text_content": "UNIHAKKA INTERNATIONAL SDN BHD",\n    },\n    {\n'
            '        "bbox_2d": [325, 210, 549, 238], "text_content": "01 Jun 2018 18:41",\n'
            '    },\n    {\n        "bbox_2d": [358, 252, 518, 278], '
            '"text_content": "(867388-U)",\n    },\n    {\n        "bbox_2d": [168, 286, 706, '
            '320], "text_content": "12, Jalan Tampoi 7/4,Kawasan Perindustrian",\n    },\n    {\n'
            '        "bbox_2d": [231, 324, 638, 358], '
            '"text_content": "Tampoi,81200 Johor Bahru,Johor",\n    },\n    {\n'
            '        "bbox_2d": [346, 368, 519, 392], "text_content": "TAX INVOICE",\n    },\n'
            '    {\n        "bbox_2d": [92, 398, 473, 426], '
            '"text_content": "Invoice #: OR18060102160261",\n    },\n    {\n'
            '        "bbox_2d": [88, 454, 144, 478], "text_content": "Item",\n    },\n    {\n'
            '        "bbox_2d": [303, 454, 360, 478], "text_content": "Qty",\n    },\n    {\n'
            '        "bbox_2d": [714, 464, 774, 490], "text_content": "Total",\n    },\n    {\n'
            '        "bbox_2d": [88, 502, 418, 526], "text_content": "SR I00100000061- 5 Vege",\n'
            '    },\n    {\n        "bbox_2d": [88, 544, 154, 568], "text_content": "RM6.22",\n'
            '    },\n    {\n        "bbox_2d": [303, 544, 317, 568], "text_content": "1",\n    },\n'
            '    {\n        "bbox_2d": [708, 550, 772, 576], "text_content": "RM6.22",\n    },\n'
            '    {\n        "bbox_2d": [88, 604, 428, 628], '
            '"text_content": "SR I00100000001- Chicken",\n    },\n    {\n        "bbox_2d": [88, '
            '646, 154, 670], "text_content": "RM2.54",\n    },\n    {\n        "bbox_2d": [303, '
            '646, 317, 670], "text_content": "1",\n    },\n    {\n        "bbox_2d": [708, 652, '
            '772, 678], "text_content": "RM2.54",\n    },\n    {\n        "bbox_2d": [496, 722, '
            '767, 746], "text_content": "Total Amount: RM8.76",\n    },\n    {\n'
            '        "bbox_2d": [526, 758, 767, 782], "text_content": "GST @0%: RM0.00",\n    },\n'
            '    {\n        "bbox_2d": [532, 798, 767, 822], "text_content": "Rounding: -RM0.01",\n'
            '    },\n    {\n        "bbox_2d": [532, 836, 767, 860], '
            '"text_content": "Nett Total: RM8.75",\n    },\n    {\n        "bbox_2d": [77, 886, '
            '263, 910], "text_content": "Payment Mode",\n    },\n    {\n        "bbox_2d": [667, '
            '872, 763, 896], "text_content": "Amount",\n    },\n    {\n        "bbox_2d": [77, '
            '934, 159, 958], "text_content": "CASH",\n    },\n    {\n        "bbox_2d": [667, 942, '
            '763, 966], "text_content": "RM8.75",\n    },\n    {\n        "bbox_2d": [77, 970, '
            '173, 994], "text_content": "Change",\n    },\n    {\n        "bbox_2d": [667, 980, '
            '763, 1004], "text_content": "RM0.00",\n    },\n    {\n        "bbox_2d": [77, 1068, '
            '228, 1092], "text_content": "GST Summary",\n    },\n    {\n        "bbox_2d": [406, '
            '1072, 533, 1096], "text_content": "Amount(RM)",\n    },\n    {\n'
            '        "bbox_2d": [672, 1076, 763, 1098], "text_content": "Tax(RM)",\n    },\n    {\n'
            '        "bbox_2d": [77, 1110, 245, 1134], "text_content": "SR = GST @0%",\n    },\n'
            '    {\n        "bbox_2d": [406, 1114, 533, 1138], "text_content": "8.76",\n    },\n'
            '    {\n        "bbox_2d": [672, 1118, 763, 1142], "text_content": "0.00",\n    },\n'
            '    {\n        "bbox_2d": [247, 1174, 599, 1198], '
            '"text_content": "GST REG #000656195584",\n    },\n    {\n        "bbox_2d": [188, '
            '1210, 628, 1238], "text_content": "BAR WANG RICE@PERMAS JAYA",\n    },\n    {\n'
            '        "bbox_2d": [247, 1252, 569, 1276], '
            '"text_content": "Thank You & Come Again!",\n    },\n    {\n        "bbox_2d": [207, '
            '1290, 606, 1314], "text_content": "Like and Follow Us on Facebook!",\n    },\n    {\n'
            '        "bbox_2d": [228, 1328, 667, 1352], '
            '"text_content": "Facebook.com/BarWangRice",\n    },\n]\n```'
        ),
        image_size=(870, 1398),
        expected=(
            (125, 168, 755, 207),
            (325, 209, 550, 237),
            (358, 251, 519, 277),
            (168, 285, 707, 319),
            (231, 323, 639, 357),
            (346, 367, 520, 391),
            (92, 397, 474, 425),
            (88, 453, 144, 477),
            (303, 453, 360, 477),
            (715, 463, 775, 489),
            (88, 501, 418, 525),
            (88, 543, 154, 567),
            (303, 543, 317, 567),
            (709, 549, 773, 575),
            (88, 603, 428, 627),
            (88, 645, 154, 669),
            (303, 645, 317, 669),
            (709, 651, 773, 677),
            (497, 720, 768, 744),
            (527, 756, 768, 780),
            (533, 796, 768, 820),
            (533, 834, 768, 858),
            (77, 884, 263, 908),
            (668, 870, 764, 894),
            (77, 932, 159, 956),
            (668, 940, 764, 964),
            (77, 968, 173, 992),
            (668, 978, 764, 1002),
            (77, 1066, 228, 1090),
            (406, 1070, 534, 1094),
            (673, 1074, 764, 1096),
            (77, 1108, 245, 1132),
            (406, 1112, 534, 1136),
            (673, 1116, 764, 1140),
            (247, 1172, 600, 1196),
            (188, 1208, 629, 1236),
            (247, 1250, 570, 1274),
            (207, 1288, 607, 1312),
            (228, 1326, 668, 1350),
        ),
        options={"input_size": (868, 1400)},
    ),
)

FORMAT = register(
    Format(
        name="qwen2.5",
        family="Qwen2.5-VL (and fine-tunes: RemoteReasoner's base, many RS grounding models)",
        aliases=("qwen25", "qwen2_5", "qwen2-5", "qwen2.5-vl"),
        convention=Convention(
            "pixels of the resized model input",
            "x-first",
            ("box", "point"),
            "x * width / w_in, with (h_in, w_in) = smart_resize(height, width, min/max pixels)",
        ),
        prompt="Locate every {label} in the image and output the bbox coordinates of each in JSON format "
        'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...].',
        parse=parse_qwen25,
        options=("input_size",),
        models=(r"qwen2(\.|_|-)?5(-|_)?vl",),
        marker=r"bbox_2d|point_2d",
        specificity=55,
        cases=CASES,
    )
)
