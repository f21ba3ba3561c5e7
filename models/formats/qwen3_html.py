"""Qwen3-VL document parsing, "QwenVL HTML": ``<div data-bbox="x1 y1 x2 y2">..</div>``, 0..1000.

The same HTML as Qwen2.5-VL's document parsing (:mod:`.qwen25_html`) with a different
convention: Qwen3-VL writes ``data-bbox`` on the relative 0..1000 grid, not in pixels of
the resized input. The Qwen3-VL cookbook (``cookbooks/document_parsing.ipynb``,
``draw_bbox_html``: "坐标系统：使用相对坐标（0-1000）") maps ``int(x / 1000 * width)``.
Both formats share the ``data-bbox`` marker, so ``auto`` refuses to choose between them
unless the model is named (``model="Qwen/Qwen3-VL-..."``).
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard
from georeason.models.formats.qwen25_html import parse_html_boxes
from georeason.models.formats.registry import Case, Convention, Format, register

__all__ = ["parse_qwen3_html", "FORMAT"]


def parse_qwen3_html(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen3-VL's QwenVL HTML ``data-bbox="x1 y1 x2 y2"`` attributes (0..1000).

    The label is the element's ``data-label`` or ``class`` if it has one, else its tag.

    Examples
    --------
    >>> out = '<html><body><div class="text" data-bbox="91 101 346 127">宇通客车 (600066)</div></body></html>'
    >>> [(d.label, d.geometry.bounds) for d in parse_qwen3_html(out, (1376, 1920))]
    [('text', (125.216, 193.92, 476.096, 243.84))]
    """
    size = check_size(image_size)
    w, h = size
    b = Builder("qwen3-html", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0, limit=1000)
    return guard("qwen3-html", parse_html_boxes, text, b)


#: Published model outputs (and clearly labelled constructed ones) with the source's boxes.
CASES: tuple[Case, ...] = (
    Case(
        source=(
            "QwenLM/Qwen3-VL cookbooks/document_parsing.ipynb as updated for Qwen3-VL on 2025-10-09 "
            "(upstream a446e86; read from the copy in Firefly-llm/Qwen3-VL @ "
            "6810c424c9ae3e9b7047d88152bad5e345f3edb9, the upstream file is over 4 MiB): cell "
            "'1. Document Parsing in QwenVL HTML Format', Qwen3-VL-235B-A22B via the API, a "
            "research-report page. Image 1376x1920 (the SOF header of the drawn image the cell "
            "displays; the cell prints input_height, input_width = 1696 1216, which is what "
            "smart_resize(1920, 1376, factor=32, max_pixels=2048*32*32) gives). Boxes by the cookbook's draw_bbox_html: "
            "int(x / 1000 * width), int(y / 1000 * height), every element with data-bbox but <ol>"
        ),
        text=(
            '<html><body><div class="image" data-bbox="104 29 455 75"></div>\n'
            '<div class="image" data-bbox="15 49 46 142"></div>\n'
            '<div class="image" data-bbox="17 270 45 407"></div>\n'
            '<div class="image" data-bbox="20 581 47 698"></div>\n'
            '<div class="text" data-bbox="91 101 346 127">宇通客车 (600066)</div>\n'
            '<div class="text" data-bbox="91 140 489 167">7月销量转正，T7前景看好</div>\n'
            '<div class="text" data-bbox="107 202 259 223">推荐（维持）</div>\n'
            '<div class="text" data-bbox="108 241 245 257">现价：22.06 元</div>\n'
            '<div class="text" data-bbox="108 275 169 287">主要数据</div>\n'
            '<div class="table" data-bbox="108 298 386 446"><table><tr><td>行业</td><td>汽车和汽车零部件</td></tr><tr><td>公司网址</td><td>www.yutong.com</td></tr><tr><td>大股东/持股</td><td>宇通集团/37.19%</td></tr><tr><td>总股本(百万股)</td><td>2,214</td></tr><tr><td>流通A股(百万股)</td><td>1,903</td></tr><tr><td>流通B/H股(百万股)</td><td>0</td></tr><tr><td>总市值(亿元)</td><td>488.39</td></tr><tr><td>流通A股市值(亿元)</td><td>419.91</td></tr><tr><td>每股净资产(元)</td><td>6.28</td></tr><tr><td>资产负债率(%)</td><td>52.30</td></tr></table></div>\n'
            '<div class="text" data-bbox="108 454 183 466">行情走势图</div>\n'
            '<div class="image" data-bbox="108 478 376 592"></div>\n'
            '<div class="text" data-bbox="108 607 199 619">相关研究报告</div>\n'
            '<div class="text" data-bbox="110 632 386 653">《宇通客车*600066* 6月销量创年内新高，校车近期有望放量》 2017-07-04</div>\n'
            '<div class="text" data-bbox="110 657 377 678">《宇通客车*600066* 没有一个冬天不可逾越，终将回暖》 2017-06-07</div>\n'
            '<div class="text" data-bbox="108 688 183 700">证券分析师</div>\n'
            '<div class="text" data-bbox="109 713 265 726">王德安 投资咨询资格编号</div>\n'
            '<div class="text" data-bbox="173 727 265 737">S1060511010006</div>\n'
            '<div class="text" data-bbox="173 737 249 747">021-38638428</div>\n'
            '<div class="text" data-bbox="173 747 370 757">WANGDEAN002@PINGAN.COM.CN</div>\n'
            '<div class="text" data-bbox="109 767 265 779">余兵 投资咨询资格编号</div>\n'
            '<div class="text" data-bbox="173 780 265 790">S1060511010004</div>\n'
            '<div class="text" data-bbox="173 791 249 800">021-38636729</div>\n'
            '<div class="text" data-bbox="173 800 346 811">YUBING006@PINGAN.COM.CN</div>\n'
            '<div class="text" data-bbox="108 820 169 833">研究助理</div>\n'
            '<div class="text" data-bbox="108 845 266 858">杨献宇 一般从业资格编号</div>\n'
            '<div class="text" data-bbox="173 858 265 869">S1060117010030</div>\n'
            '<div class="text" data-bbox="173 869 243 878">18818203151</div>\n'
            '<div class="text" data-bbox="102 890 331 946">请通过合法途径获取本公司研究报告，如经由未经许可的渠道获得研究报告，请慎重使用并注意阅读研究报告尾页的声明内容。</div>\n'
            '<div class="text" data-bbox="76 955 216 964">请务必阅读正文后免责条款</div>\n'
            '<div class="text" data-bbox="410 209 519 230">投资要点</div>\n'
            '<div class="text" data-bbox="409 241 460 257">事项：</div>\n'
            '<div class="text" data-bbox="410 265 927 292">公司公布7月份产销数据，7月份销售客车5038辆（+20%），1~7月累计销售26872辆（-20.9%）。</div>\n'
            '<div class="text" data-bbox="410 315 500 333">平安观点：</div>\n'
            '<div class="text" data-bbox="410 346 928 429">■ 7月销量同比转正，预计校车有较好销量：公司7月份销售客车5038辆（+20%），其中大型、中型、轻型客车分别销售2007（+17%）、2371（+23.8%），660（+16%）；累计销售26872辆（-20.9%）。7月份销量同比转正，结束了三个月的负增长，我们认为校车或在7月和8月有较好销量。</div>\n'
            '<div class="text" data-bbox="411 442 928 562">■ 新能源客车持续回暖，公交市场长期需求稳定：根据中客网数据，公司6月份销售新能源客车1864辆，同比转正。我们预计公司7月新能源销量仍然实现正增长。目前新能源客车市场逐步回暖，预计三季度实现同比正增长无忧，四季度有望放量。近期我们在客车市场进行终端调研，公交车司机普遍喜欢开新能源客车，认为新能源客车的驾驶体验和乘坐体验都更好。我们认为新能源公交车市场是刚需市场，长期看，需求和销量无需担忧。购买团体运营客车的客户，在一定范围内可以接受新能源客车的涨价。</div>\n'
            '<div class="text" data-bbox="411 574 927 659">■ T7 前景看好，出口有望增长 10%：根据我们终端了解，T7 的市场认可度不断提高，今年有望实现 1000 台的销量。T7 的售价在 36.8 万~78.8 万之间，我们预计该车的盈利能力强，可以为公司贡献较好利润。目前公司在海外市场的布局稳步推进，产品竞争力强，我们认为今年出口销量有望实现 10% 的增长。</div>\n'
            '<div class="text" data-bbox="410 671 928 719">■ 盈利预测与投资建议：补贴退坡使得客车市场的集中度提高，我们认为公司的优势将不断扩大。维持对公司的盈利预测，2017~2019 年每股收益为 1.95 元、2.18 元、2.28 元，维持“推荐”评级。</div>\n'
            '<div class="text" data-bbox="411 730 861 744">■ 风险提示：1）新能源车销量低于预期；2）成本下降不及预期。</div>\n'
            '<div class="table" data-bbox="409 765 932 930"><table><thead><tr><th></th><th>2015A</th><th>2016A</th><th>2017E</th><th>2018E</th><th>2019E</th></tr></thead><tbody><tr><td>营业收入(百万元)</td><td>31211</td><td>35,850</td><td>38,715</td><td>43,226</td><td>46,108</td></tr><tr><td>YoY(%)</td><td>21.3</td><td>14.9</td><td>8.0</td><td>11.7</td><td>6.7</td></tr><tr><td>净利润(百万元)</td><td>3535</td><td>4,044</td><td>4,327</td><td>4,821</td><td>5,056</td></tr><tr><td>YoY(%)</td><td>35.3</td><td>14.4</td><td>7.0</td><td>11.4</td><td>4.9</td></tr><tr><td>毛利率(%)</td><td>25.3</td><td>27.8</td><td>26.8</td><td>26.7</td><td>26.5</td></tr><tr><td>净利率(%)</td><td>11.3</td><td>11.3</td><td>11.2</td><td>11.2</td><td>11.0</td></tr><tr><td>ROE(%)</td><td>27.7</td><td>30.0</td><td>27.6</td><td>26.4</td><td>24.2</td></tr><tr><td>EPS(摊薄/元)</td><td>1.60</td><td>1.83</td><td>1.95</td><td>2.18</td><td>2.28</td></tr><tr><td>P/E(倍)</td><td>13.8</td><td>12.1</td><td>11.3</td><td>10.1</td><td>9.7</td></tr><tr><td>P/B(倍)</td><td>3.8</td><td>3.6</td><td>3.1</td><td>2.7</td><td>2.3</td></tr></tbody></table></div>\n'
            '<div class="text" data-bbox="766 52 928 89">汽车和汽车零部件\n'
            "2017 年 08 月 05 日</div></body></html>"
        ),
        image_size=(1376, 1920),
        expected=(
            (143, 55, 626, 144),
            (20, 94, 63, 272),
            (23, 518, 61, 781),
            (27, 1115, 64, 1340),
            (125, 193, 476, 243),
            (125, 268, 672, 320),
            (147, 387, 356, 428),
            (148, 462, 337, 493),
            (148, 528, 232, 551),
            (148, 572, 531, 856),
            (148, 871, 251, 894),
            (148, 917, 517, 1136),
            (148, 1165, 273, 1188),
            (151, 1213, 531, 1253),
            (151, 1261, 518, 1301),
            (148, 1320, 251, 1344),
            (149, 1368, 364, 1393),
            (238, 1395, 364, 1415),
            (238, 1415, 342, 1434),
            (238, 1434, 509, 1453),
            (149, 1472, 364, 1495),
            (238, 1497, 364, 1516),
            (238, 1518, 342, 1536),
            (238, 1536, 476, 1557),
            (148, 1574, 232, 1599),
            (148, 1622, 366, 1647),
            (238, 1647, 364, 1668),
            (238, 1668, 334, 1685),
            (140, 1708, 455, 1816),
            (104, 1833, 297, 1850),
            (564, 401, 714, 441),
            (562, 462, 632, 493),
            (564, 508, 1275, 560),
            (564, 604, 688, 639),
            (564, 664, 1276, 823),
            (565, 848, 1276, 1079),
            (565, 1102, 1275, 1265),
            (564, 1288, 1276, 1380),
            (565, 1401, 1184, 1428),
            (562, 1468, 1282, 1785),
            (1054, 99, 1276, 170),
        ),
    ),
    Case(
        source="CONSTRUCTED: a heading and a paragraph, values up to the far edge (1000)",
        text='<html><body><h1 data-bbox="100 50 900 120">Title</h1><p data-bbox="0 130 1000 1000">Body</p></body></html>',
        image_size=(800, 600),
        expected=((80, 30, 720, 72), (0, 78, 800, 600)),
        labels=("h1", "p"),
        real=False,
    ),
    Case(
        source="CONSTRUCTED: one element with a three-number data-bbox (dropped, warned) among good ones",
        text='<div class="text" data-bbox="10 10 20 20">a</div><div class="text" data-bbox="5 5 9">b</div>',
        image_size=(1000, 1000),
        expected=((10, 10, 20, 20),),
        warns=("expected 4 numbers",),
        real=False,
    ),
)

FORMAT = register(
    Format(
        name="qwen3-html",
        family="Qwen3-VL document parsing (QwenVL HTML)",
        aliases=("qwen3-vl-html", "qwen3vl-html"),
        convention=Convention("0-1000", "x-first", ("box",), "x * width / 1000"),
        prompt="qwenvl html",
        parse=parse_qwen3_html,
        models=(r"qwen3(-|_)?vl",),
        marker=r"data-bbox\s*=",
        specificity=70,
        cases=CASES,
        variant_of="qwen3",
    )
)
