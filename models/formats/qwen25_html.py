"""Qwen2.5-VL document parsing, "QwenVL HTML": ``<p data-bbox="x1 y1 x2 y2">..</p>``.

Coordinates are absolute pixels of the *resized* model input, like Qwen2.5-VL's JSON
grounding (the document-parsing cookbook's ``draw_bbox`` divides by
``resized_width / original_width``). The label is the element's ``data-label`` or
``class`` if it has one, else its tag name.
"""

from __future__ import annotations

import html
import re
from typing import Any

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import (
    NUM_RE,
    Builder,
    as_text,
    check_size,
    guard,
    nothing,
    short,
)
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_qwen25_html", "parse_html_boxes", "FORMAT"]

_TAG_RE = re.compile(r"<([A-Za-z][\w-]*)([^<>]*?)\bdata-bbox\s*=\s*([\"'])(.*?)\3([^<>]*)>", re.DOTALL)
_ATTR_RE = re.compile(r"\b(data-label|class)\s*=\s*([\"'])(.*?)\2", re.DOTALL)


def parse_html_boxes(text: Any, b: Builder) -> list[Detection]:
    """Every element with a ``data-bbox`` attribute, mapped by the builder (shared with Qwen3-VL's HTML)."""
    text = as_text(text, b.fmt)
    if text is None:
        return []
    n = 0
    for m in _TAG_RE.finditer(text):
        n += 1
        tag, attrs, raw = m.group(1).lower(), m.group(2) + " " + m.group(5), m.group(4)
        found = dict((k.lower(), v) for k, _, v in _ATTR_RE.findall(attrs))
        lab = html.unescape(found.get("data-label") or found.get("class") or tag)
        nums = NUM_RE.findall(raw)
        where = f"element {n} <{tag}>"
        if len(nums) != 4:
            b.warn(f"{where}: dropped data-bbox={short(raw, 40)}: expected 4 numbers x1 y1 x2 y2")
            continue
        b.box([float(v) for v in nums], where, lab)
    if n == 0:
        nothing(b, text)
    return b.out


def parse_qwen25_html(
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
    label: str | None = None,
) -> list[Detection]:
    """Detections from QwenVL HTML ``data-bbox="x1 y1 x2 y2"`` attributes (resized-input pixels).

    ``input_size`` is ``(w_in, h_in)`` of the image the model saw (``smart_resize``);
    ``None``: the coordinates are pixels of the original image.

    Examples
    --------
    >>> out = '<html><body><h1 data-bbox="309 96 658 127">Qwen2.5 Technical Report</h1></body></html>'
    >>> [(d.label, [round(v, 2) for v in d.geometry.bounds]) for d in parse_qwen25_html(out, (1014, 1532), (1008, 1540))]
    [('h1', [310.84, 95.5, 661.92, 126.34])]
    """
    size = check_size(image_size)
    w, h = size
    if input_size is None:
        b = Builder("qwen2.5-html", size, label)
    else:
        w_in, h_in = check_size(input_size)
        b = Builder("qwen2.5-html", size, label, lambda v: v * w / w_in, lambda v: v * h / h_in)
    return guard("qwen2.5-html", parse_html_boxes, text, b)


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/document_parsing.ipynb @ d08310c (Qwen2.5-VL 'QwenVL HTML' on docparsing_example6.png, "
            "1014x1532; the cell prints the input 1540 x 1008, "
            "h x w); boxes by the cookbook's draw_bbox: int(x / (resized_width / original_width))"
        ),
        text=(
            ' ```html\n<html><body>\n<h1 data-bbox="309 96 658 127">Qwen2.5 Technical Report</h1> '
            '\n <p data-bbox="429 156 541 182"></p> \n'
            ' <address class="author"><p>Qwen Team</p></address> \n'
            ' <p data-bbox="268 198 589 224">🤗 <a>https://huggingface.co/Qwen</a></p> \n'
            ' <p data-bbox="266 222 707 247">🤗 <a>https://modelscope.cn/organization/qwen</a></p> '
            '\n <p data-bbox="268 246 648 272">🔗 <a>https://github.com/QwenLM/Qwen2.5</a></p> \n'
            ' <h2 data-bbox="438 291 533 317">Abstract</h2> \n'
            ' <p data-bbox="101 341 868 563">In this report, we introduce Qwen2.5, '
            "a comprehensive series of large language models (LLMs) designed to meet diverse needs. Compared to previous iterations, "
            "Qwen 2.5 has been significantly improved during both the pre-training and post-training stages. In terms of pre-training, "
            "we have scaled the high-quality pre-training datasets from the previous 7 trillion tokens to 18 trillion tokens. This provides a strong foundation for common sense, "
            "expert knowledge, and reasoning capabilities. In terms of post-training, "
            "we implement intricate supervised finetuning with over 1 million samples, "
            "as well as multistage reinforcement learning, "
            "including offline learning DPO and online learning GRPO. Post-training techniques significantly enhance human preference, "
            "and notably improve long text generation, structural data analysis, "
            "and instruction following.</p> \n"
            ' <p data-bbox="101 570 868 728">To handle diverse and varied use cases effectively, '
            "we present Qwen2.5 LLM series in rich configurations. The open-weight offerings include base models and instruction-tuned models in sizes of $0.5 \\mathrm{~B}, "
            "1.5 \\mathrm{~B}, 3 \\mathrm{~B}, 7 \\mathrm{~B}, 14 \\mathrm{~B}, 32 \\mathrm{~B}$, "
            "and $72 \\mathrm{~B}$ parameters. Quantized versions of the instruction-tuned models are also provided. Over 100 models can be accessed from Hugging Face Hub, "
            "ModelScope, and Kaggle. In addition, for hosted solutions, "
            "the proprietary models currently include two mixture-of-experts (MoE) variants: Qwen2.5Turbo and Qwen2.5-Plus, "
            "both available from Alibaba Cloud Model Studio.</p> \n"
            ' <p data-bbox="101 728 868 954">Qwen2.5 has demonstrated top-tier performance on a wide range of benchmarks evaluating language understanding, '
            "reasoning, mathematics, coding, human preference alignment, etc. Specifically, "
            "the open-weight flagship Qwen2.5-72B-Instruct outperforms a number of open and proprietary models and demonstrates competitive performance to the state-of-the-art open-weight model, "
            "Llama-3-405B-Instruct, "
            "which is around 5 times larger. Qwen2.5-Turbo and Qwen2.5-Plus offer superior cost-effectiveness while performing competitively against GPT-4o-mini and GPT-4o respectively. Additionally, "
            "as the foundation, "
            "Qwen2.5 models have been instrumental in training specialized models such as Qwen2.5-Math (Yang et al., "
            "2024b), Qwen2.5-Coder (Hui et al., 2024), QwQ (Qwen Team, 2024d), "
            "and multimodal models.</p> \n"
            ' <div class="image" data-bbox="108 1056 888 1300"><img data-bbox="108 1056 888 1300"/></div> '
            "\n"
            ' <p data-bbox="32 1346 939 1437">Figure 1: In the iterative development of the Qwen series, '
            "data scaling has played a crucial role. Qwen 2.5, "
            "which leverages 18 trillion tokens for pre-training, "
            "has demonstrated the most advanced capabilities within the Qwen series, "
            "especially in terms of domain expertise, "
            "underscoring the importance of scale together with mixture in enhancing the model’s\n"
            "tensor(1540, device='cuda:0') tensor(1008, device='cuda:0')\n```html\n<html><body>\n"
            '<h1 data-bbox="309 96 658 127">Qwen2.5 Technical Report</h1> \n'
            ' <p data-bbox="429 156 541 182"></p> \n'
            ' <address class="author"><p>Qwen Team</p></address> \n'
            ' <p data-bbox="268 198 589 224">🤗 <a>https://huggingface.co/Qwen</a></p> \n'
            ' <p data-bbox="266 222 707 247">🤗 <a>https://modelscope.cn/organization/qwen</a></p> '
            '\n <p data-bbox="268 246 648 272">🔗 <a>https://github.com/QwenLM/Qwen2.5</a></p> \n'
            ' <h2 data-bbox="438 291 533 317">Abstract</h2> \n'
            ' <p data-bbox="101 341 868 563">In this report, we introduce Qwen2.5, '
            "a comprehensive series of large language models (LLMs) designed to meet diverse needs. Compared to previous iterations, "
            "Qwen 2.5 has been significantly improved during both the pre-training and post-training stages. In terms of pre-training, "
            "we have scaled the high-quality pre-training datasets from the previous 7 trillion tokens to 18 trillion tokens. This provides a strong foundation for common sense, "
            "expert knowledge, and reasoning capabilities. In terms of post-training, "
            "we implement intricate supervised finetuning with over 1 million samples, "
            "as well as multistage reinforcement learning, "
            "including offline learning DPO and online learning GRPO. Post-training techniques significantly enhance human preference, "
            "and notably improve long text generation, structural data analysis, "
            "and instruction following.</p> \n"
            ' <p data-bbox="101 570 868 728">To handle diverse and varied use cases effectively, '
            "we present Qwen2.5 LLM series in rich configurations. The open-weight offerings include base models and instruction-tuned models in sizes of $0.5 \\mathrm{~B}, "
            "1.5 \\mathrm{~B}, 3 \\mathrm{~B}, 7 \\mathrm{~B}, 14 \\mathrm{~B}, 32 \\mathrm{~B}$, "
            "and $72 \\mathrm{~B}$ parameters. Quantized versions of the instruction-tuned models are also provided. Over 100 models can be accessed from Hugging Face Hub, "
            "ModelScope, and Kaggle. In addition, for hosted solutions, "
            "the proprietary models currently include two mixture-of-experts (MoE) variants: Qwen2.5Turbo and Qwen2.5-Plus, "
            "both available from Alibaba Cloud Model Studio.</p> \n"
            ' <p data-bbox="101 728 868 954">Qwen2.5 has demonstrated top-tier performance on a wide range of benchmarks evaluating language understanding, '
            "reasoning, mathematics, coding, human preference alignment, etc. Specifically, "
            "the open-weight flagship Qwen2.5-72B-Instruct outperforms a number of open and proprietary models and demonstrates competitive performance to the state-of-the-art open-weight model, "
            "Llama-3-405B-Instruct, "
            "which is around 5 times larger. Qwen2.5-Turbo and Qwen2.5-Plus offer superior cost-effectiveness while performing competitively against GPT-4o-mini and GPT-4o respectively. Additionally, "
            "as the foundation, "
            "Qwen2.5 models have been instrumental in training specialized models such as Qwen2.5-Math (Yang et al., "
            "2024b), Qwen2.5-Coder (Hui et al., 2024), QwQ (Qwen Team, 2024d), "
            "and multimodal models.</p> \n"
            ' <div class="image" data-bbox="108 1056 888 1300"><img data-bbox="108 1056 888 1300"/></div> '
            "\n"
            ' <p data-bbox="32 1346 939 1437">Figure 1: In the iterative development of the Qwen series, '
            "data scaling has played a crucial role. Qwen 2.5, "
            "which leverages 18 trillion tokens for pre-training, "
            "has demonstrated the most advanced capabilities within the Qwen series, "
            "especially in terms of domain expertise, "
            "underscoring the importance of scale together with mixture in enhancing the model’s\n"
            "\n```"
        ),
        image_size=(1014, 1532),
        expected=(
            (310, 95, 661, 126),
            (431, 155, 544, 181),
            (269, 196, 592, 222),
            (267, 220, 711, 245),
            (269, 244, 651, 270),
            (440, 289, 536, 315),
            (101, 339, 873, 560),
            (101, 567, 873, 724),
            (101, 724, 873, 949),
            (108, 1050, 893, 1293),
            (108, 1050, 893, 1293),
            (32, 1339, 944, 1429),
            (310, 95, 661, 126),
            (431, 155, 544, 181),
            (269, 196, 592, 222),
            (267, 220, 711, 245),
            (269, 244, 651, 270),
            (440, 289, 536, 315),
            (101, 339, 873, 560),
            (101, 567, 873, 724),
            (101, 724, 873, 949),
            (108, 1050, 893, 1293),
            (108, 1050, 893, 1293),
            (32, 1339, 944, 1429),
        ),
        options={"input_size": (1008, 1540)},
    ),
    Case(
        source=(
            "QwenLM/Qwen3-VL (formerly Qwen2.5-VL) cookbooks cookbooks/document_parsing.ipynb @ a065f96 (Qwen2.5-VL 'QwenVL HTML' on docparsing_example6.png, "
            "1014x1532; the cell prints the input 1540 x 1008, "
            "h x w); boxes by the cookbook's draw_bbox: int(x / (resized_width / original_width))"
        ),
        text=(
            '```html\n<html><body>\n<h2 data-bbox="310 94 658 132">Qwen2.5 Technical Report</h2> \n'
            ' <p data-bbox="427 154 542 182">Qwen Team</p> \n'
            ' <div class="image" data-bbox="262 195 708 272"><img data-bbox="262 195 708 272"/></div> '
            '\n <h2 data-bbox="436 289 533 317">Abstract</h2> \n'
            ' <p data-bbox="99 339 869 565">In this report, we introduce Qwen2.5, '
            "a comprehensive series of large language models (LLMs) designed to meet diverse needs. Compared to previous iterations, "
            "Qwen 2.5 has been significantly improved during both the pre-training and post-training stages. In terms of pre-training, "
            "we have scaled the high-quality pre-training datasets from the previous 7 trillion tokens to 18 trillion tokens. This provides a strong foundation for common sense, "
            "expert knowledge, and reasoning capabilities. In terms of post-training, "
            "we implement intricate supervised finetuning with over 1 million samples, "
            "as well as multistage reinforcement learning, "
            "including offline learning DPO and online learning GRPO. Post-training techniques significantly enhance human preference, "
            "and notably improve long text generation, structural data analysis, "
            "and instruction following.</p> \n"
            ' <p data-bbox="99 569 869 730">To handle diverse and varied use cases effectively, '
            "we present Qwen2.5 LLM series in rich configurations. The open-weight offerings include base models and instruction-tuned models in sizes of 0.5B, "
            "1.5B, 3B, 7B, 14B, 32B, "
            "and 72B parameters. Quantized versions of the instruction-tuned models are also provided. Over 100 models can be accessed from Hugging Face Hub, "
            "ModelScope, and Kaggle. In addition, for hosted solutions, "
            "the proprietary models currently include two mixture-of-experts (MoE) variants: Qwen2.5-Turbo and Qwen2.5-Plus, "
            "both available from Alibaba Cloud Model Studio.</p> \n"
            ' <p data-bbox="99 728 869 955">Qwen2.5 has demonstrated top-tier performance on a wide range of benchmarks evaluating language understanding, '
            "reasoning, mathematics, coding, human preference alignment, etc. Specifically, "
            "the open-weight flagship Qwen2.5-72B-Instruct outperforms a number of open and proprietary models and demonstrates competitive performance to the state-of-the-art open-weight model, "
            "Llama-3-405B-Instruct, "
            "which is around 5 times larger. Qwen2.5-Turbo and Qwen2.5-Plus offer superior cost-effectiveness while performing competitively against GPT-4o-mini and GPT-4o respectively. Additionally, "
            "as the foundation, "
            "Qwen2.5 models have been instrumental in training specialized models such as Qwen2.5-Math (Yang et al., "
            "2024b), Qwen2.5-Coder (Hui et al., 2024), QwQ (Qwen Team, 2024d), "
            "and multimodal models.</p> \n"
            ' <div class="image" data-bbox="88 1054 889 1322"><img data-bbox="88 1054 889 1322"/></div> '
            "\n"
            ' <p data-bbox="31 1346 940 1437">Figure 1: In the iterative development of the Qwen series, '
            "data scaling has played a crucial role. Qwen 2.5, "
            "which leverages 18 trillion tokens for pre-training, "
            "has demonstrated the most advanced capabilities within the Qwen series, "
            "especially in terms of domain expertise, "
            "underscoring the importance of scale together with mixture in enhancing the model’s capabilities.</p> "
            "\n</body></html>\n```"
        ),
        image_size=(1014, 1532),
        expected=(
            (311, 93, 661, 131),
            (429, 153, 545, 181),
            (263, 193, 712, 270),
            (263, 193, 712, 270),
            (438, 287, 536, 315),
            (99, 337, 874, 562),
            (99, 566, 874, 726),
            (99, 724, 874, 950),
            (88, 1048, 894, 1315),
            (88, 1048, 894, 1315),
            (31, 1339, 945, 1429),
        ),
        options={"input_size": (1008, 1540)},
    ),
    Case(
        source=(
            "Qwen team's Qwen2.5-VL blog (qwenlm.github.io/blog/qwen2.5-vl, section 'Document Parsing'): "
            "QwenLM/qwenlm.github.io content/blog/qwen2.5-vl/cases/docparsing6.json @ "
            "4ffb13c569e92a48e25e7989678603477408e903, the Qwen2.5-VL answer to 'QwenVL HTML with image "
            "caption' on docparsing6.png, a magazine contents page. The blog gives no image size; the same "
            "page is the Qwen2.5-VL cookbook asset cookbooks/assets/document_parsing/docparsing_example8.png "
            "(1352x1482, QwenLM/Qwen2.5-VL blob bd132926), on which the answer's boxes, drawn with the "
            "cookbook's formula, enclose every text line. Input 1344x1484 = smart_resize(1482, 1352) with "
            "the processor's default min/max pixels; boxes by the cookbook's draw_bbox: "
            "int(x / (resized_width / original_width)), computed outside georeason"
        ),
        text=(
            "```html\n"
            "<html>\n"
            "<body>\n"
            '<div class="image caption" data-bbox="30 164 1225 807">\n'
            '    <img data-bbox="30 164 1225 807" />\n'
            "    <p>This is an image of a magazine cover. It's got three pictures on it, and then the title underneath that says 2030 in white letters, and then next to that it has some Chinese writing. The picture on the left shows wind turbines up on top of a hillside. There's several of them. They're all white with blue bases. You can see mountains off in the distance behind this hillside. Then there's another picture right beside that one showing water coming out from a dam. And then the third picture shows solar panels lined up in rows as far as you can see.</p>\n"
            "</div>\n"
            '<p data-bbox="95 871 1120 925">这是科学家描绘的美好图景：到 2030 年，地球上消耗的所有能源，都将是清洁的可再生能源。要进入这个由风、水、太阳所主导的新能源时代，我们必须克服怎样的困难？</p>\n'
            '<h2 data-bbox="89 953 451 995">24 可再生能源政策简史</h2>\n'
            '<p data-bbox="134 1081 458 1116">产业圆桌 Industry Round Table</p>\n'
            '<p data-bbox="89 1121 444 1163">26 2030 我们开什么车</p>\n'
            '<p data-bbox="683 1078 1064 1121">44 完美主义 硬币的两面</p>\n'
            '<p data-bbox="134 1280 486 1315">信息技术 Information Technology</p>\n'
            '<p data-bbox="89 1320 384 1362">30 电视向网络投降</p>\n'
            '<p data-bbox="683 1280 1064 1325">50 社会身份 健康晴雨表</p>\n'
            "</body>\n"
            "</html>\n"
            "```"
        ),
        image_size=(1352, 1482),
        expected=(
            (30, 163, 1232, 805),
            (30, 163, 1232, 805),
            (95, 869, 1126, 923),
            (89, 951, 453, 993),
            (134, 1079, 460, 1114),
            (89, 1119, 446, 1161),
            (687, 1076, 1070, 1119),
            (134, 1278, 488, 1313),
            (89, 1318, 386, 1360),
            (687, 1278, 1070, 1323),
        ),
        options={"input_size": (1344, 1484)},
    ),
)

FORMAT = register(
    Format(
        name="qwen2.5-html",
        family="Qwen2.5-VL document parsing (QwenVL HTML)",
        aliases=("qwenvl-html", "qwen25-html", "data-bbox"),
        convention=Convention(
            "pixels of the resized model input",
            "x-first",
            ("box",),
            "x * width / w_in, with (h_in, w_in) = smart_resize(height, width, min/max pixels)",
        ),
        prompt="QwenVL HTML",
        parse=parse_qwen25_html,
        options=("input_size",),
        models=(r"qwen2(\.|_|-)?5(-|_)?vl",),
        marker=r"data-bbox\s*=",
        specificity=70,
        cases=CASES,
        variant_of="qwen2.5",
    )
)
