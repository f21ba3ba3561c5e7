"""models/formats: every output format against published model outputs, ``auto``, fuzzing, README.

Real-output test set
--------------------
The cases live beside their parser, in each format module's ``CASES`` (one small module
per format, ``models/formats/*.py``); every :class:`~georeason.models.formats.Case` names
its source (repository + file + commit, issue thread, or code-search id of the published
text), the image size, and the boxes as the source states them or as its documented
post-processing computes them (e.g. the Gemini cookbook's ``int(y / 1000 * height)``,
transformers' Florence-2 / Kosmos-2 ``post_process_generation``, the Qwen cookbooks'
``int(x / input_width * width)``, GeoChat's demo ``cv2.getRotationMatrix2D``). Those
expected values were computed from the source's formula, not by the parser under test.

Cases marked ``real=False`` are CONSTRUCTED, and say so in their ``source``. Formats still
short of three real cases, and where they were searched for:

- InternVL ``<ref>..</ref><box>[[..]]</box>`` (0 real, 3 constructed). Searched: OpenGVLab/
  InternVL history and issues (#227, #239, #359, #510, #606, #625, #865, #948, #953, #1016,
  #1084, #1103, #1140, #1208, #1225: prompts, training-format samples, screenshots or
  JSON/bare-list answers, no tagged answer with its image size), InternVL docs and model cards
  (2 / 2.5 / 3), OS-Atlas (its 4B README prints no answer), vLLM issues #9153 (an InternVL2
  grounding run whose full text the stored excerpts do not show) and #19585 (screenshots
  only), lmdeploy issues, ms-swift (its whole docs history: the InternVL best-practice pages
  hold training samples, no ``<box>[[`` answer), VLMEvalKit code, HF prompt collections
  (MoritzLaurer/open_models_special_prompts: the prompt only), code search for
  ``</ref><box>[[`` (training data, prompts, and an All-Seeing-v2 scene-graph caption whose
  visualiser divides by 999, not InternVL's 1000), remote-sensing grounding repositories
  (RSVG, DVGBench: no InternVL answers). EarthDial, the InternVL2 remote-sensing fine-tune
  named in the issue, does not use this form at all (see ``earthdial``).
- RemoteReasoner (0 real, 3 constructed): 1e12Leon/RemoteReasoner (README, RemoteReasoner.py,
  infer.py, convert_dataset.py: the prompt, the parser and a training converter; infer.py
  prints answers but commits none), the arXiv paper 2507.19280 (v1-v3 as stored), issues and
  code search for ``</think><answer>[[`` (reward-function tests and RSThinker's training
  sample, not model answers). Its answer is the R1 tags of ``r1`` around Qwen2.5-VL-style
  pixel lists, which ``r1`` reads only with ``scale=None``: not an alias of ``r1`` (whose
  convention is 0-1000), so it stays its own format and ``auto`` warns that ``r1`` would read
  it differently.
- QwenVL HTML of Qwen3-VL (1 real: the Qwen3-VL cookbook's run, whose ``data-bbox`` is on
  0-1000). Searched: QwenLM/Qwen3-VL cookbook history (the stored mirror lacks the newest
  4 MiB document_parsing.ipynb; every other stored notebook version has no ``data-bbox``
  output), the forks holding ``cookbooks/document_parsing.ipynb`` (1716757342/CatalyticMLLM,
  1716757342/ChatSR, gtwell/CenterNet, hanquansanren/HowToCook, yinnhao/Qwen2.5-VL,
  zz-blake/Qwen2.5-VL: all carry the Qwen2.5-VL runs unchanged), togethercomputer/
  together-cookbook Multimodal/Vision/Document_Parsing.ipynb (Qwen3-VL-32B via Together: its
  ``qwenvl html`` answer is plain HTML with no ``data-bbox``, printed cut at 2000 characters),
  QwenLM/qwenlm.github.io (``data-bbox`` only in the Qwen2.5-VL blog), Alibaba Cloud Model
  Studio docs (an annotated image, no text), Qwen3-VL issues (#1360, #1810: no output pasted),
  mayflower/docling-ocr-qwen3vl (prompts and unit tests, no recorded output).

QwenVL HTML of Qwen2.5-VL now has three real cases: the two published runs of the
Qwen2.5-VL document-parsing cookbook and the Qwen2.5-VL blog's ``docparsing6.json`` (its
image is the cookbook asset ``docparsing_example8.png``; the blog's ``docparsing1/2/4.json``
are further real answers whose images are not stored anywhere searched, so their sizes are
unknown and they are not used). EarthDial (six answers from its published evaluation
results), R1-style pairs (UniVG-R1 issue #15, two Visual-RFT paper figures), Qwen2-VL
(giraffe example, OS-Atlas README, a fine-tune's raw vLLM answer) and plain lists (VILA
issue, a describer test, CogVLM issue #165) have three or more real cases each, next to
labelled constructed ones; DeepSeek-VL2 keeps one constructed case (a box cut by a nested
``<|ref|>``) next to six real ones. ``test_formats_short_of_three_real_cases`` pins the
short list so it can only shrink.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from georeason.errors import GeoreasonError, InputError, ParseWarning
from georeason.geo.grounding.detections import Detection
from georeason.models.formats import (
    FORMATS,
    Case,
    ParseResult,
    choose_format,
    detect_format,
    format_for_model,
    format_table,
    formats,
    get_format,
    normalize_format,
    parse_output,
)

ROOT = Path(__file__).resolve().parents[1]
TOL = 1.5  # pixels

CASES = [(f.name, k, c) for f in formats() for k, c in enumerate(f.cases)]


def _parse(fmt: str, case: Case) -> tuple[list[Detection], list[str]]:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dets = parse_output(case.text, fmt, case.image_size, **dict(case.options))
    others = [w for w in rec if not issubclass(w.category, ParseWarning)]
    assert not others, [str(w.message) for w in others]
    return dets, [str(w.message) for w in rec]


@pytest.mark.parametrize(("fmt", "k", "case"), CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_published_outputs_within_tolerance(fmt, k, case):
    dets, msgs = _parse(fmt, case)
    got = [d.geometry.bounds for d in dets]
    assert len(got) == len(case.expected), (case.source, got, msgs)
    for g, e in zip(got, case.expected, strict=True):
        assert max(abs(a - b) for a, b in zip(g, e, strict=True)) <= TOL, (case.source, g, e)
    if case.labels is not None:
        assert tuple(d.label for d in dets) == case.labels
    for needle in case.warns:
        assert any(needle in m for m in msgs), (needle, msgs)
    assert not [m for m in msgs if "parser bug" in m]


def test_every_format_has_three_cases_and_sources():
    for f in formats():
        assert len(f.cases) >= 3, f.name
        for c in f.cases:
            assert len(c.source) > 30
            assert c.real or "CONSTRUCTED" in c.source, c.source
            w, h = c.image_size
            assert w > 0 and h > 0


def test_formats_short_of_three_real_cases():
    short = {f.name: sum(c.real for c in f.cases) for f in formats() if sum(c.real for c in f.cases) < 3}
    assert short == {"internvl": 0, "remotereasoner": 0, "qwen3-html": 1}


# ---------------------------------------------------------------------------------------
# the malformations the issue names
# ---------------------------------------------------------------------------------------
def _case(fmt: str, needle: str) -> Case:
    (case,) = [c for c in get_format(fmt).cases if needle in c.source]
    return case


def test_qwen3_stray_brace_answer_recovers_all_nine_boxes():
    case = _case("qwen3", "STRAY '{' LINE")
    assert "\t{\n\t{" in case.text  # the published answer really has the stray line
    dets, msgs = _parse("qwen3", case)
    assert len(dets) == 9
    assert [d.label for d in dets][5] == "Obanai Iguro"  # the object after the stray brace
    assert any("unmatched '{'" in m for m in msgs)


@pytest.mark.parametrize(
    ("needle", "dropped"),
    [
        ("issue #96", "9999"),
        ("issue #96", "runaway number"),
        ("'99999' on the 0-999 grid", "99999"),
        ("a five-number box with 5329", "[0, 5329, 5310, 9, 99999]"),
        ("one-number box", "[470]"),
        ("nested <|ref|>", "[512, 37"),
    ],
)
def test_deepseek_malformations_warn_naming_the_dropped_box(needle, dropped):
    case = _case("deepseek-vl2", needle)
    dets, msgs = _parse("deepseek-vl2", case)
    assert any(dropped in m for m in msgs), msgs
    assert len(dets) == len(case.expected)  # every valid box survives


def test_deepseek_valid_boxes_survive_next_to_broken_ones():
    text = "<|ref|>cars<|/ref|><|det|>[[10, 20, 30, 40], [0, 50, 55, 9999], [100, 200, 300, 400, 500], [60, 60, 90, 90]]<|/det|>"
    with pytest.warns(ParseWarning) as rec:
        dets = parse_output(text, "deepseek-vl2", (999, 999))
    assert [d.geometry.bounds for d in dets] == [(10, 20, 30, 40), (60, 60, 90, 90)]
    msgs = " | ".join(str(w.message) for w in rec)
    assert "9999" in msgs and "[100, 200, 300, 400, 500]" in msgs


def test_labels_from_the_keys_models_use():
    text = json.dumps(
        [
            {"bbox_2d": [0, 0, 10, 10], "name_en": "rice", "name_zh": "米饭"},
            {"bbox_2d": [0, 0, 10, 10], "names": {"zh": "湖", "en": "lake"}},
            {"bbox_2d": [0, 0, 10, 10], "category": "ship"},
            {"bbox_2d": [0, 0, 10, 10], "text_content": "TOTAL"},
            {"bbox_2d": [0, 0, 10, 10], "object_name": "tank"},
        ]
    )
    assert [d.label for d in parse_output(text, "qwen3", (100, 100))] == [
        "rice",
        "lake",
        "ship",
        "TOTAL",
        "tank",
    ]


def test_gemini_is_y_first_and_keeps_1000():
    (d,) = parse_output('[{"box_2d": [0, 500, 1000, 1000], "label": "x"}]', "gemini", (640, 480))
    assert d.geometry.bounds == (320.0, 0.0, 640.0, 480.0)


def test_paligemma_is_y_first_in_1024_bins():
    (d,) = parse_output("<loc0256><loc0512><loc0768><loc1023> car", "paligemma", (2048, 1024))
    assert d.geometry.bounds == pytest.approx((1024.0, 256.0, 2046.0, 768.0))


def test_kosmos2_corner_rule_when_cells_share_a_row():
    # cells 32 and 35 share row 1: corners, not centres (transformers patch_index_to_coordinate)
    (d,) = parse_output(
        "<phrase>a road</phrase><object><patch_index_0032><patch_index_0035></object>", "kosmos-2", (320, 320)
    )
    assert d.geometry.bounds == (0.0, 10.0, 40.0, 20.0)


# ---------------------------------------------------------------------------------------
# auto: says what it chose, never picks silently between conventions that disagree
# ---------------------------------------------------------------------------------------
def test_auto_refuses_bbox_2d_json_without_a_model_name():
    case = get_format("qwen2.5").cases[0]
    with pytest.warns(ParseWarning, match="refused to guess"):
        r = parse_output(case.text, "auto", case.image_size)
    assert isinstance(r, ParseResult) and r == [] and r.format is None
    assert set(r.ambiguous) == {"qwen2.5", "qwen3", "kimi-vl"}
    assert r.metadata["format"] is None and "refused" in r.metadata["reason"]


def test_auto_uses_the_model_name():
    case = get_format("qwen2.5").cases[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParseWarning)
        named = parse_output(case.text, "qwen2.5", case.image_size, **dict(case.options))
        auto = parse_output(
            case.text, "auto", case.image_size, model="Qwen/Qwen2.5-VL-7B-Instruct", **dict(case.options)
        )
    assert auto.format == "qwen2.5" and "Qwen2.5-VL-7B" in auto.reason
    assert [d.geometry.bounds for d in auto] == [d.geometry.bounds for d in named]


def test_auto_reads_unit_fractions_as_kimi_and_says_so():
    with pytest.warns(ParseWarning, match="kimi-vl"):
        r = parse_output('{"bbox_2d": [0.280, 0.500, 0.520, 0.700]}', "auto", (1000, 500))
    assert r.format == "kimi-vl" and r.ambiguous and [d.geometry.bounds for d in r] == [(280, 250, 520, 350)]


def test_remotereasoner_is_r1_tags_with_pixel_lists_not_an_r1_alias():
    # RemoteReasoner.py asks for "[[x1,y1,x2,y2],...]" "integers representing pixel positions"
    # inside <answer>: r1's parser reads that to the same pixels only with scale=None; with
    # r1's own convention (0-1000, Qwen2-VL R1 fine-tunes) the boxes land elsewhere.
    text = "<think>Two tanks.</think><answer>[[100, 200, 500, 600], [700, 80, 900, 100]]</answer>"
    size = (1000, 2000)
    rr = [d.geometry.bounds for d in parse_output(text, "remotereasoner", size)]
    assert rr == [(100, 200, 500, 600), (700, 80, 900, 100)]
    assert [d.geometry.bounds for d in parse_output(text, "r1", size, scale=None)] == rr
    assert [d.geometry.bounds for d in parse_output(text, "r1", size)] == [
        (100, 400, 500, 1200),
        (700, 160, 900, 200),
    ]
    with pytest.warns(ParseWarning, match="r1 would read it differently") as rec:
        auto = parse_output(text, "auto", size)
    assert auto.format == "remotereasoner" and auto.ambiguous == ("r1",)
    assert "Qwen2-VL" in " ".join(str(w.message) for w in rec)
    # naming the model settles it without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParseWarning)
        named = parse_output(text, "auto", size, model="1e12Leon/RemoteReasoner")
    assert named.format == "remotereasoner" and not named.ambiguous


@pytest.mark.parametrize(("fmt", "k", "case"), CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_auto_never_silently_picks_a_disagreeing_convention(fmt, k, case):
    named, _ = _parse(fmt, case)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = parse_output(case.text, "auto", case.image_size, **dict(case.options))
    said = [str(w.message) for w in rec if str(w.message).startswith("auto:") or "guessed" in str(w.message)]
    if r.format is None:  # refused: said so, parsed nothing
        assert r == [] and any("refused to guess" in m for m in said)
        return
    assert r.reason
    same = len(r) == len(named) and all(
        max(abs(a - b) for a, b in zip(x.geometry.bounds, y.geometry.bounds, strict=True)) <= TOL
        for x, y in zip(r, named, strict=True)
    )
    assert same or said, (fmt, r.format, r.reason)


def test_auto_detects_markers_of_each_new_format():
    samples = {
        "gemini": '[{"box_2d": [1, 2, 3, 4]}]',
        "deepseek-vl2": "<|ref|>a<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>",
        "paligemma": "<loc0001><loc0002><loc0003><loc0004> a",
        "kosmos-2": "<phrase>a</phrase><object><patch_index_0001><patch_index_0100></object>",
        "qwen-vl": "<ref>a</ref><box>(1,2),(3,4)</box>",
        "internvl": "<ref>a</ref><box>[[1, 2, 3, 4]]</box>",
        "r1": "<think>x</think><answer>(1,2),(3,4)</answer>",
        "florence": "a<loc_1><loc_2><loc_3><loc_4>",
        "earthdial": "some buildings [[81, 1, 93, 13, 90], [81, 0, 93, 10, 90]] at the top right",
    }
    for fmt, text in samples.items():
        assert detect_format(text) == fmt, (fmt, choose_format(text))


def test_qwenvl_html_needs_the_model_name():
    # Qwen2.5-VL writes data-bbox in resized-input pixels, Qwen3-VL on 0-1000: the marker
    # alone cannot tell them apart, so auto refuses; the model name settles it, and picks
    # the HTML form of the family (not its JSON parser) when data-bbox is in the text.
    html = '<p data-bbox="1 2 3 4">x</p>'
    fmt, reason, ambiguous = choose_format(html)
    assert fmt is None and set(ambiguous) == {"qwen2.5-html", "qwen3-html"}, reason
    assert detect_format(html, model="Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2.5-html"
    assert detect_format(html, model="Qwen/Qwen3-VL-235B-A22B-Instruct") == "qwen3-html"
    assert detect_format('[{"bbox_2d": [1, 2, 3, 4]}]', model="Qwen/Qwen3-VL-8B") == "qwen3"
    with pytest.warns(ParseWarning, match="refused to guess"):
        assert parse_output(html, "auto", (100, 100)) == []
    r = parse_output('<p data-bbox="100 200 300 400">x</p>', "auto", (1000, 500), model="Qwen3-VL-8B")
    assert r.format == "qwen3-html" and r[0].geometry.bounds == (100.0, 100.0, 300.0, 200.0)


def test_format_for_model_names():
    names = {
        "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2.5",
        "Qwen/Qwen3-VL-8B-Instruct": "qwen3",
        "Qwen/Qwen2-VL-7B-Instruct": "qwen2",
        "Qwen/Qwen-VL-Chat": "qwen-vl",
        "OpenGVLab/InternVL2_5-8B": "internvl",
        "moonshotai/Kimi-VL-A3B-Instruct": "kimi-vl",
        "gemini-2.5-flash": "gemini",
        "deepseek-ai/deepseek-vl2-small": "deepseek-vl2",
        "google/paligemma2-3b-mix-448": "paligemma",
        "microsoft/kosmos-2-patch14-224": "kosmos-2",
        "microsoft/Florence-2-large": "florence",
        "MBZUAI/geochat-7B": "geochat",
        "akshaydudhane16/EarthDial_4B_RGB": "earthdial",
    }
    assert {n: format_for_model(n) for n in names} == names
    assert format_for_model("meta-llama/Llama-3.2-11B-Vision") is None


def test_names_and_aliases():
    assert normalize_format("Gemini") == "gemini"
    assert normalize_format("DeepSeek-VL2") == "deepseek-vl2"
    assert normalize_format("Kosmos2") == "kosmos-2"
    assert normalize_format("InternVL2.5") == "internvl"
    assert set(FORMATS) >= {
        "gemini",
        "paligemma",
        "kosmos-2",
        "qwen-vl",
        "internvl",
        "kimi-vl",
        "r1",
        "florence-ocr",
    }
    with pytest.raises(InputError, match="unknown model output format"):
        normalize_format("llava")


def test_registry_entries_are_complete():
    for f in formats():
        assert "{label}" in f.prompt or f.name in ("florence-ocr", "qwen2.5-html", "qwen3-html"), f.name
        assert f.convention.order in ("x-first", "y-first")
        assert f.convention.shapes and f.convention.to_pixels


# ---------------------------------------------------------------------------------------
# fuzz: random text to every parser -> detections, ParseWarnings or project errors only
# ---------------------------------------------------------------------------------------
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
            " ",
            "\n",
            "```json\n",
            "```",
            '"box_2d"',
            '"bbox_2d"',
            '"label"',
            '"names"',
            '"en"',
            "9999",
            "99999999999999999999",
            "<|ref|>",
            "<|/ref|>",
            "<|det|>",
            "<|/det|>",
            "<loc0512>",
            "<loc1023>",
            "<loc9999>",
            "<phrase>",
            "</phrase>",
            "<object>",
            "</object>",
            "<patch_index_0044>",
            "<patch_index_1024>",
            "</delimiter_of_multi_objects/>",
            "<ref>",
            "</ref>",
            "<box>",
            "</box>",
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            'data-bbox="',
            "<p>",
            "</p>",
            "<loc_",
            "<delim>",
            "|<",
        ]
    )  # fmt: skip
    | st.integers(-2000, 3000).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
)


def _only_detections(dets, size):
    w, h = size
    assert isinstance(dets, list)
    for d in dets:
        assert isinstance(d, Detection) and d.label
        minx, miny, maxx, maxy = d.geometry.bounds
        assert -1e-9 <= minx <= maxx <= w + 1e-9 and -1e-9 <= miny <= maxy <= h + 1e-9


def _run_any(text, fmt, size):
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            dets = parse_output(text, fmt, size)
    except GeoreasonError:
        return
    _only_detections(dets, size)
    assert all(issubclass(w.category, ParseWarning) for w in rec), [str(w.message) for w in rec]
    assert not [w for w in rec if "parser bug" in str(w.message)], [str(w.message) for w in rec]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(TOKENS, max_size=60).map("".join),
    st.sampled_from(FORMATS),
    st.tuples(st.integers(1, 2000), st.integers(1, 2000)),
)
def test_fuzz_structured_text_to_every_format(text, fmt, size):
    _run_any(text, fmt, size)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(FORMATS))
def test_fuzz_random_text_to_every_format(text, fmt):
    _run_any(text, fmt, (100, 80))


# ---------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------
def test_readme_format_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert format_table() in readme
    for f in formats():
        assert re.search(rf"\| `{re.escape(f.name)}`", readme), f.name


# ---------------------------------------------------------------------------------------
# the remote backend asks each family in its own format and resizes per convention
# ---------------------------------------------------------------------------------------
def test_remote_prompts_come_from_the_registry():
    from georeason.models.backends.remote import PROMPTS, RemoteGrounder

    assert PROMPTS == {f.name: f.prompt for f in formats()}
    for fmt in ("gemini", "deepseek-vl2", "paligemma", "internvl", "qwen3"):
        g = RemoteGrounder({"base_url": "http://127.0.0.1:9/v1", "model": "m", "format": fmt})
        assert g.prompt_for("ship") == get_format(fmt).prompt.replace("{label}", "ship")


def test_remote_format_follows_the_served_model_name():
    from georeason.models.backends.remote import RemoteGrounder

    g = RemoteGrounder({"base_url": "http://127.0.0.1:9/v1", "model": "google/paligemma2-3b-mix-448"})
    assert g.output_format() == "paligemma" and g.prompt_for("car") == "detect car"
    g = RemoteGrounder({"base_url": "http://127.0.0.1:9/v1", "model": "my-finetune"})
    assert g.output_format() == "auto"


def test_remote_resize_rule_uses_the_servers_min_max_pixels():
    from georeason.models.backends.remote import _input_size
    from georeason.models.formats import smart_resize

    # 2000 x 1500 with the processor defaults, then with a server started with max_pixels=1003520
    h, w = smart_resize(1500, 2000, 28, 56 * 56, 14 * 14 * 4 * 16384)
    assert _input_size({}, 2000, 1500, "qwen2.5") == (w, h)
    h2, w2 = smart_resize(1500, 2000, 28, 3136, 1003520)
    assert _input_size({"max_pixels": 1003520}, 2000, 1500, "qwen2.5-html") == (w2, h2) != (w, h)
    # by hand: sqrt(2000*1500/1003520) = 1.7290; floor(1500/1.7290/28)*28 = 840, floor(2000/1.7290/28)*28 = 1148
    assert (w2, h2) == (1148, 840)
    assert _input_size({}, 2000, 1500, "qwen3") is None  # 0-1000: no resize to undo
    assert _input_size({"input_size": [100, 50]}, 2000, 1500, "qwen3") == (100, 50)


def test_compiler_warnings_on_junk_stay_inside_the_parser():
    """'0inf' once made literal_eval's compiler emit a SyntaxWarning (a hypothesis find)."""
    for fmt in FORMATS:
        _run_any("[[1, 2, 3, 0inf]]", fmt, (100, 80))


# ---------------------------------------------------------------------------------------
# EarthDial: an InternVL2 fine-tune that does NOT answer in InternVL's 0-1000 form
# ---------------------------------------------------------------------------------------
def test_earthdial_is_not_read_as_internvl():
    # EarthDial's published answers are 0-100 five-number boxes; read as InternVL's 0-1000
    # they would be 10x too small. The model name and the text both pick earthdial.
    assert format_for_model("EarthDial_4B_RGB") == "earthdial"
    assert normalize_format("EarthDial") == "earthdial"
    text = "[[31, 31, 35, 36, 0]]"
    r = parse_output(text, "auto", (1024, 1024), model="EarthDial_4B_RGB")
    assert r.format == "earthdial"
    assert r[0].geometry.bounds == pytest.approx((31 * 10.24, 31 * 10.24, 35 * 10.24, 36 * 10.24))


def test_earthdial_concatenated_lists_and_ref_labels():
    # the NWPU-VHR-10 answers concatenate lists (``]][[``); the training form wraps them in
    # <ref>..</ref> <box>[[[..]]]</box>
    dets = parse_output("[[10, 20, 30, 40, 0]][[50, 50, 60, 70, 0]]", "earthdial", (200, 100))
    assert [d.geometry.bounds for d in dets] == [(20.0, 20.0, 60.0, 40.0), (100.0, 50.0, 120.0, 70.0)]
    text = "there is <ref>1 gray medium tennis court </ref> <box>[[[8, 33, 22, 40, 0]]]</box> at left"
    (d,) = parse_output(text, "earthdial", (100, 100))
    assert d.label == "1 gray medium tennis court" and d.geometry.bounds == (8.0, 33.0, 22.0, 40.0)


def test_earthdial_rotation_on_the_grid_matches_its_eval_script():
    # EarthDial's eval.py: (corners - centre) @ [[cos, -sin], [sin, cos]] + centre on the
    # 0-100 grid, then pixels. A 20x10 (grid) box turned 90 degrees on a 200x100 image:
    # on the grid it becomes 10 wide, 20 tall -> 20 px wide, 20 px tall.
    (d,) = parse_output("[[40, 40, 60, 50, 90]]", "earthdial", (200, 100))
    assert d.kind == "polygon"
    assert d.geometry.bounds == pytest.approx((90.0, 35.0, 110.0, 55.0))
    (d,) = parse_output("[[40, 40, 60, 50, 30]]", "earthdial", (100, 100))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    corners = [(x - 50, y - 45) for x, y in ((40, 40), (60, 40), (60, 50), (40, 50))]
    want = [(50 + dx * c + dy * s, 45 - dx * s + dy * c) for dx, dy in corners]
    got = list(d.geometry.exterior.coords)[:-1]
    assert {(round(x, 6), round(y, 6)) for x, y in got} == {(round(x, 6), round(y, 6)) for x, y in want}


def test_earthdial_bad_boxes_warn_and_the_rest_survive():
    text = "[[10, 10, 20, 20, 0], [5, 5, 9], [0, 0, 150, 10, 0], [30, 30, 40, 40, 0], [50, 50"
    with pytest.warns(ParseWarning) as rec:
        dets = parse_output(text, "earthdial", (100, 100))
    assert [d.geometry.bounds for d in dets] == [(10, 10, 20, 20), (30, 30, 40, 40)]
    msgs = " | ".join(str(w.message) for w in rec)
    assert "expected 5 numbers" in msgs and "150" in msgs and "truncated" in msgs
