"""models/backends/hf.py: the transformers grounders, end to end on tiny random models.

Every backend is built from a config with random weights (no download), saved with
``save_pretrained`` next to a locally built tokenizer and processor, and then run the way
users run it: through the registry with ``model_path=DIR`` -> load -> batched inference on
tiles of a small GeoTIFF -> parse -> CRS geometry (seam merge) -> an English answer.
A random model may find nothing (then questions abstain) or something (then counts match
the merged objects); separate tests replace only the model's *answer* (decoded text or
output tensors) to pin the coordinate mapping to exact tile pixels.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np  # noqa: E402
import pytest
import rasterio  # noqa: E402
import shapely  # noqa: E402

# The vlm extra is part of the README's install command: these run in CI, never skipped.
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
from grounding_helpers import geotiff  # noqa: E402

from georeason.errors import ModelError, ModelNotFoundError, ParseWarning  # noqa: E402
from georeason.geo.grounding.detections import pixel_to_world  # noqa: E402
from georeason.geo.grounding.seams import merge_detections  # noqa: E402
from georeason.geo.language.english import ask  # noqa: E402
from georeason.geo.raster.io import band_names  # noqa: E402
from georeason.geo.raster.tiling import plan_tiles, read_tile  # noqa: E402
from georeason.models import registry
from georeason.models.backends import hf  # noqa: E402
from georeason.models.formats import smart_resize  # noqa: E402
from georeason.models.registry import GrounderSpec, build_grounder  # noqa: E402
from georeason.pipeline import ground_batch, grounded_scene, plan_batches  # noqa: E402

T = transformers
CLASSES = ["building"]
QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
]
CORPUS = [
    '[{"bbox_2d": [10, 20, 30, 40], "label": "building"}]',
    "Locate every building lake in the image.",
    "Find the bounding box of a photo of",
    "user assistant (,) {}[]: 0123456789 Answer with a JSON list",
]
QWEN_CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|>"
    "<|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# ---------------------------------------------------------------------------------------
# Tiny tokenizers and models (random weights, built in a second or two each)
# ---------------------------------------------------------------------------------------
def bpe(special: list[str], extra_tokens: list[str] = (), vocab_size: int = 360, post=None, **kw):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    if post is not None:
        tok.post_processor = post
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, **kw)


def build_qwen(path: Path, variant: str) -> Path:
    tk = bpe(QWEN_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tk.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    tokens = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text = dict(
        vocab_size=len(tk),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    torch.manual_seed(0)
    if variant == "qwen3":
        ip = T.Qwen2VLImageProcessor(patch_size=16, min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16)
        proc = T.Qwen3VLProcessor(
            image_processor=ip,
            tokenizer=tk,
            video_processor=T.Qwen3VLVideoProcessor(),
            chat_template=QWEN_CHAT,
        )
        cfg = T.Qwen3VLConfig(
            text_config=dict(text, head_dim=16, rope_parameters=dict(rope, mrope_interleaved=True)),
            vision_config=dict(
                depth=1,
                hidden_size=32,
                intermediate_size=64,
                num_heads=2,
                out_hidden_size=32,
                patch_size=16,
                num_position_embeddings=16,
                deepstack_visual_indexes=[0],
            ),
            **tokens,
        )
        model = T.Qwen3VLForConditionalGeneration(cfg)
    else:
        ip = T.Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
        video = T.Qwen2VLVideoProcessor()
        if variant == "qwen2.5":
            proc = T.Qwen2_5_VLProcessor(
                image_processor=ip, tokenizer=tk, video_processor=video, chat_template=QWEN_CHAT
            )
            cfg = T.Qwen2_5_VLConfig(
                text_config=dict(text, rope_parameters=rope),
                vision_config=dict(
                    depth=1,
                    hidden_size=32,
                    intermediate_size=64,
                    num_heads=2,
                    out_hidden_size=32,
                    window_size=56,
                    fullatt_block_indexes=[0],
                ),
                **tokens,
            )
            model = T.Qwen2_5_VLForConditionalGeneration(cfg)
        else:
            proc = T.Qwen2VLProcessor(
                image_processor=ip, tokenizer=tk, video_processor=video, chat_template=QWEN_CHAT
            )
            cfg = T.Qwen2VLConfig(
                text_config=dict(text, rope_parameters=rope),
                vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2),
                **tokens,
            )
            model = T.Qwen2VLForConditionalGeneration(cfg)
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path


def build_florence(path: Path) -> Path:
    tk = bpe(
        ["<s>", "<pad>", "</s>", "<unk>", "<image>"],
        [f"<loc_{i}>" for i in range(1000)] + ["<poly>", "</poly>", "<sep>", "<od>", "</od>"],
        vocab_size=300,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    ip = T.CLIPImageProcessor(
        size={"height": 64, "width": 64},
        do_center_crop=False,
        crop_size={"height": 64, "width": 64},
        image_seq_length=5,
    )
    proc = T.Florence2Processor(image_processor=ip, tokenizer=tk)
    cfg = T.Florence2Config(
        text_config=dict(
            model_type="bart",
            vocab_size=len(tk),
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=128,
            bos_token_id=tk.bos_token_id,
            eos_token_id=tk.eos_token_id,
            pad_token_id=tk.pad_token_id,
            decoder_start_token_id=tk.eos_token_id,
            forced_eos_token_id=tk.eos_token_id,
        ),
        vision_config=dict(
            depths=[1, 1, 1, 1],
            embed_dim=[8, 8, 16, 16],
            num_heads=[1, 1, 1, 1],
            num_groups=[1, 1, 1, 1],
            window_size=2,
            projection_dim=32,
            drop_path_rate=0.0,
            max_position_embeddings=8,
            max_temporal_embeddings=4,
        ),
        image_token_id=tk.image_token_id,
    )
    torch.manual_seed(0)
    T.Florence2ForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def build_owlv2(path: Path) -> Path:
    from tokenizers import processors

    post = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)],
    )
    tk = bpe(
        ["<|startoftext|>", "<|endoftext|>"],
        vocab_size=300,
        post=post,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=16,
    )
    proc = T.Owlv2Processor(
        image_processor=T.Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tk
    )
    cfg = T.Owlv2Config(
        text_config=dict(
            vocab_size=len(tk),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    T.Owlv2ForObjectDetection(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def build_grounding_dino(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    # 128 px inputs: the coarsest feature level must have more than one pixel (GroupNorm)
    # the model hard-codes BERT's ids of [CLS], [SEP], "." and "?" (101, 102, 1012, 1029)
    vocab = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
    for k, w in enumerate(["building", "lake", "river", "road", "a", "of", "tree", "water"]):
        vocab[w] = 200 + k
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 101), ("[SEP]", 102)],
    )
    tok.decoder = decoders.WordPiece()
    tk = T.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        model_max_length=32,
    )
    proc = T.GroundingDinoProcessor(
        image_processor=T.GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 128}),
        tokenizer=tk,
    )
    cfg = T.GroundingDinoConfig(
        backbone_config=dict(
            model_type="swin",
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=2,
            image_size=128,
            out_indices=[2, 3, 4],
        ),
        text_config=dict(
            model_type="bert",
            vocab_size=1100,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        ),
        d_model=32,
        num_queries=10,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_text_len=32,
        encoder_n_points=1,
        decoder_n_points=1,
    )
    torch.manual_seed(0)
    T.GroundingDinoForObjectDetection(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def build_sam(path: Path) -> Path:
    ip = T.SamImageProcessor(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    cfg = T.SamConfig(
        vision_config=dict(
            hidden_size=16,
            output_channels=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
            window_size=2,
            global_attn_indexes=[0],
            mlp_dim=32,
            num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    torch.manual_seed(0)
    T.SamModel(cfg).save_pretrained(path)
    T.SamProcessor(image_processor=ip).save_pretrained(path)
    return path


BUILDERS = {
    "qwen2.5-vl": lambda p: build_qwen(p, "qwen2.5"),
    "qwen2-vl": lambda p: build_qwen(p, "qwen2"),
    "qwen3-vl": lambda p: build_qwen(p, "qwen3"),
    "florence-2": build_florence,
    "owlv2": build_owlv2,
    "grounding-dino": build_grounding_dino,
    "sam": build_sam,
}
#: Small generation budgets keep the random models fast.
FAST = {"max_new_tokens": 8, "num_beams": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``tiny(name)`` -> folder of that tiny model, built once per test module."""
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built[name] = BUILDERS[name](root / name)
        return built[name]

    return get


def spec(name: str, path: Path, **extra) -> GrounderSpec:
    return GrounderSpec.of(name, {"model_path": str(path), "batch_size": 4, **FAST, **extra})


def run_pipeline(grounder, tif: Path, tile_px: int = 32):
    """plan -> read + ground (batched) -> seam merge; returns (objects, tiles, batch result)."""
    with rasterio.open(tif) as src:
        tiles = list(plan_tiles(src, tile_px, 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ParseWarning)  # random models write garbage
            res = ground_batch(src, tiles, grounder, list(CLASSES), list(band_names(src)))
    assert not res.failures, res.failures
    return merge_detections(res.results), tiles, res


# ---------------------------------------------------------------------------------------
# The whole path per backend, with the random model's own output
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["qwen2.5-vl", "qwen2-vl", "qwen3-vl", "florence-2", "owlv2", "grounding-dino"]
)
def test_backend_end_to_end(name, tiny, tmp_path):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec(name, tiny(name)))
    assert isinstance(g, hf.HFGrounder) and g.name == name
    objects, tiles, res = run_pipeline(g, tif)
    assert len(tiles) == 4 and g.load_count == 1
    with rasterio.open(tif) as src:
        bounds, crs = shapely.box(*src.bounds), src.crs
    for _, dets in res.results:  # tile pixel space
        for d in dets:
            assert d.label == "building" and 0.0 <= d.score <= 1.0
            assert shapely.box(0, 0, 32, 32).buffer(1e-9).covers(d.geometry)
    scene = grounded_scene(objects, crs, source=str(tif))
    ans = ask("How many buildings are there?", scene)
    if objects:  # the random model found something: CRS geometry inside the raster, count = objects
        assert all(bounds.buffer(1e-6).covers(o.geometry) and o.label == "building" for o in objects)
        assert not ans.abstained and ans.value == len(objects)
    else:  # found nothing: the question abstains, naming the class
        assert ans.abstained and "building" in ans.reason


# ---------------------------------------------------------------------------------------
# Exact coordinates: real processor + model, fixed answer text / tensors
# ---------------------------------------------------------------------------------------
def _fixed_answer(monkeypatch, g, text: str):
    monkeypatch.setattr(g.processor, "batch_decode", lambda seqs, **kw: [text] * len(seqs))


QWEN_ANSWERS = {
    # tile 32x32 -> smart_resize (factor 28, min 56*56 pixels) -> a 56x56 input
    "qwen2.5-vl": '```json\n[{"bbox_2d": [14, 28, 42, 56], "label": "buildings"}]\n```',
    "qwen3-vl": '[{"bbox_2d": [250, 500, 750, 1000], "label": "building"}]',
    "qwen2-vl": "<|object_ref_start|>building<|object_ref_end|><|box_start|>(250,500),(750,1000)<|box_end|>",
}
QWEN_EXPECTED = {"qwen2.5-vl": (8, 16, 24, 32), "qwen3-vl": (8, 16, 24, 31.968), "qwen2-vl": (8, 16, 24, 32)}


@pytest.mark.parametrize("name", list(QWEN_ANSWERS))
def test_qwen_coordinates_map_to_tile_pixels(name, tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec(name, tiny(name)))
    g.ensure_loaded()
    if name == "qwen2.5-vl":  # the input size the model saw is smart_resize's, read from image_grid_thw
        assert (
            g.input_size(32, 32, [1, 4, 4])
            == (56, 56)
            == smart_resize(32, 32, 28, 56 * 56, 28 * 28 * 16)[::-1]
        )
        assert g.input_size(32, 32) == (56, 56)
    _fixed_answer(monkeypatch, g, QWEN_ANSWERS[name])
    objects, tiles, res = run_pipeline(g, tif)
    for _tile, dets in res.results:
        assert [d.geometry.bounds for d in dets] == [pytest.approx(QWEN_EXPECTED[name])]
        assert dets[0].label == "building"
    assert len(objects) == 4
    want = sorted(pixel_to_world(shapely.box(*QWEN_EXPECTED[name]), t.transform).bounds for t in tiles)
    assert sorted(o.geometry.bounds for o in objects) == [pytest.approx(b) for b in want]
    assert ask("How many buildings are there?", grounded_scene(objects, "EPSG:32633")).value == 4


def test_qwen25_min_max_pixels_follow_config(tiny, tmp_path, monkeypatch):
    """A larger min_pixels makes a larger model input; boxes still land on the same tile pixels."""
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec("qwen2.5-vl", tiny("qwen2.5-vl"), min_pixels=84 * 84, max_pixels=84 * 84))
    g.ensure_loaded()
    assert g.pixel_bounds() == (28, 84 * 84, 84 * 84)
    seen = []
    real = g.processor.__class__.__call__

    def spy(self, *a, **kw):
        out = real(self, *a, **kw)
        seen.extend(out["image_grid_thw"].tolist())
        return out

    monkeypatch.setattr(g.processor.__class__, "__call__", spy)
    _fixed_answer(monkeypatch, g, '[{"bbox_2d": [21, 42, 63, 84]}]')
    _, _, res = run_pipeline(g, tif)
    assert seen and all(thw == [1, 6, 6] for thw in seen)  # 84 x 84 input
    assert all(
        [d.geometry.bounds for d in dets] == [pytest.approx((8, 16, 24, 32))] for _, dets in res.results
    )


@pytest.mark.parametrize(
    "task, text, kind, bounds",
    [
        (
            "<CAPTION_TO_PHRASE_GROUNDING>",
            "</s><s>building<loc_250><loc_500><loc_750><loc_999></s>",
            "box",
            (8.016, 16.016, 24.016, 31.984),
        ),
        (
            "<OPEN_VOCABULARY_DETECTION>",
            "</s><s>building<loc_250><loc_500><loc_750><loc_999></s>",
            "box",
            (8.016, 16.016, 24.016, 31.984),
        ),
        (
            "<OD>",
            "</s><s>buildings<loc_250><loc_500><loc_750><loc_999>car<loc_1><loc_1><loc_9><loc_9></s>",
            "box",
            (8.016, 16.016, 24.016, 31.984),
        ),
        (
            "<REFERRING_EXPRESSION_SEGMENTATION>",
            "</s><s><loc_250><loc_500><loc_750><loc_500><loc_750><loc_999><loc_250><loc_999></s>",
            "polygon",
            (8.016, 16.016, 24.016, 31.984),
        ),
    ],
)
def test_florence_tasks_map_bins_to_tile_pixels(task, text, kind, bounds, tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec("florence-2", tiny("florence-2"), task=task))
    g.ensure_loaded()
    _fixed_answer(monkeypatch, g, text)
    objects, _, res = run_pipeline(g, tif)
    for _, dets in res.results:  # <OD>: the "car" is not a class asked and is dropped
        assert [(d.label, d.kind) for d in dets] == [("building", kind)]
        assert dets[0].geometry.bounds == pytest.approx(bounds)
    assert len(objects) >= 1 and {o.label for o in objects} == {"building"}


def _force_outputs(monkeypatch, g, edit):
    real = g.model.forward

    def forward(*a, **kw):
        out = real(*a, **kw)
        edit(out)
        return out

    monkeypatch.setattr(g.model, "forward", forward)


def test_owlv2_boxes_through_post_processing(tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec("owlv2", tiny("owlv2"), score_threshold=0.5))
    g.ensure_loaded()

    def edit(out):  # query 0 is a "lake" box centred in the (square) image, 1/4 wide, 1/2 high
        out.logits[:] = -10.0
        out.logits[:, 0, 1] = 10.0
        out.pred_boxes[:, 0] = torch.tensor([0.5, 0.5, 0.25, 0.5])

    _force_outputs(monkeypatch, g, edit)
    with rasterio.open(tif) as src:
        tile = next(plan_tiles(src, 32, 0))
        dets = g.ground_tiles([(read_tile(src, tile), tile)], ["building", "lake"], list(band_names(src)))[0]
    assert [(d.label, d.kind) for d in dets] == [("lake", "box")]
    assert dets[0].geometry.bounds == pytest.approx((12, 8, 20, 24))
    assert dets[0].score == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item())


def test_grounding_dino_class_from_prompt_tokens(tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec("grounding-dino", tiny("grounding-dino")))
    g.ensure_loaded()
    prompt, spans = g.prompt_spans(["building", "lake"])
    assert prompt == "building. lake." and [prompt[a:b] for a, b in spans] == ["building", "lake"]

    def edit(out):  # token 3 is "lake" ([CLS] building . lake . [SEP])
        out.logits[:] = -10.0
        out.logits[:, 0, 3] = 10.0
        out.pred_boxes[:, 0] = torch.tensor([0.25, 0.75, 0.5, 0.5])

    _force_outputs(monkeypatch, g, edit)
    with rasterio.open(tif) as src:
        tile = next(plan_tiles(src, 32, 0))
        dets = g.ground_tiles([(read_tile(src, tile), tile)], ["building", "lake"], list(band_names(src)))[0]
    assert [(d.label, d.kind) for d in dets] == [("lake", "box")]
    assert dets[0].geometry.bounds == pytest.approx((0, 16, 16, 32))


# ---------------------------------------------------------------------------------------
# SAM: boxes -> masks, alone and behind a detector
# ---------------------------------------------------------------------------------------
def test_sam_segmenter_masks(tiny):
    seg = hf.SamSegmenter({"model_path": str(tiny("sam")), "device": "cpu"})
    img = np.random.default_rng(1).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    assert seg(img, []) == [] and seg.load_count == 0  # nothing to segment: no load
    masks = seg(img, [(2, 2, 20, 30), (10, 5, 39, 47)])
    assert len(masks) == 2 and all(m.shape == (48, 40) and m.dtype == bool for m in masks)
    seg(img, [(0, 0, 8, 8)])
    assert seg.load_count == 1


def test_detector_with_sam_gives_masks(tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "scene.tif")
    g = build_grounder(spec("grounding-dino", tiny("grounding-dino"), sam_model_path=str(tiny("sam"))))
    g.ensure_loaded()

    def edit(out):
        out.logits[:] = -10.0
        out.logits[:, 0, 1] = 10.0
        out.pred_boxes[:, 0] = torch.tensor([0.5, 0.5, 0.5, 0.5])

    _force_outputs(monkeypatch, g, edit)
    objects, tiles, res = run_pipeline(g, tif)
    kinds = {d.kind for _, dets in res.results for d in dets}
    assert kinds <= {"mask", "box"} and len(res.results) == 4
    for _, dets in res.results:
        assert len(dets) == 1
        if dets[0].kind == "mask":
            assert dets[0].geometry.shape == (32, 32) and dets[0].geometry.any()
    assert g.segmenter.load_count == 1 and objects


# ---------------------------------------------------------------------------------------
# Loading: once per process, clear errors
# ---------------------------------------------------------------------------------------
def test_six_tiles_two_batches_one_load(tiny, tmp_path, monkeypatch):
    tif = geotiff(tmp_path / "wide.tif", width=96, height=64)
    s = spec("owlv2", tiny("owlv2"), batch_size=3)
    before_hf, before_reg = hf.load_counts.get("owlv2", 0), registry.load_counts.get("owlv2", 0)
    calls = []
    with rasterio.open(tif) as src:
        tiles = list(plan_tiles(src, 32, 0))
        batches = plan_batches(tiles, max_batches=2)
        assert len(tiles) == 6 and [len(b) for b in batches] == [3, 3]
        for batch in batches:  # as each Prefect task does: build_grounder(spec), then ground
            g = build_grounder(s)
            if not calls:
                real = g.predict
                monkeypatch.setattr(
                    g,
                    "predict",
                    lambda images, classes: calls.append(len(images)) or real(images, classes),  # noqa: B023
                )
            res = ground_batch(src, batch, g, ["building"], list(band_names(src)))
            assert not res.failures and len(res.results) == 3
    assert g.load_count == 1 and calls == [3, 3]
    assert hf.load_counts["owlv2"] - before_hf == 1
    assert registry.load_counts["owlv2"] - before_reg == 1


def test_missing_model_dir_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    for name in hf.BACKENDS:
        with pytest.raises(ModelNotFoundError, match="no-such-model") as exc:
            build_grounder(GrounderSpec.of(name, {"model_path": str(missing)}))
        assert "--model-path" in str(exc.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        build_grounder(GrounderSpec.of("owlv2", {"model_path": str(empty)}))
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        hf.SamSegmenter({"model_path": str(missing)})


def test_model_id_not_in_cache_says_how_to_get_it(tmp_path):
    cfg = {"model_path": "example-org/not-cached-model", "cache_dir": str(tmp_path / "hub")}
    with pytest.raises(ModelNotFoundError) as exc:
        build_grounder(GrounderSpec.of("qwen2.5-vl", cfg))
    msg = str(exc.value)
    assert "example-org/not-cached-model" in msg and "hf download example-org/not-cached-model" in msg
    assert isinstance(exc.value, FileNotFoundError)


def test_model_from_local_hf_cache(tiny, tmp_path):
    """An id resolves to a snapshot in the local cache (laid out as huggingface_hub does)."""
    import shutil

    hub = tmp_path / "hub"
    repo = hub / "models--tiny--owlv2"
    snap = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny("owlv2"), snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    g = build_grounder(
        GrounderSpec.of("owlv2", {"model_path": "tiny/owlv2", "cache_dir": str(hub), "device": "cpu"})
    )
    assert g.model_dir == snap
    g.ensure_loaded()
    assert g.load_count == 1


def test_wrong_model_type_is_refused(tiny):
    with pytest.raises(ModelError, match="use grounder 'qwen2-vl'"):
        build_grounder(GrounderSpec.of("qwen2.5-vl", {"model_path": str(tiny("qwen2-vl"))}))


def test_registry_lists_backends_open_vocabulary():
    names = set(registry.available())
    assert set(hf.BACKENDS) <= names
    assert registry.can_ground("qwen2.5-vl", "oil tank") and not registry.can_ground("owlv2", "  ")


def test_registry_and_cli_import_no_torch():
    code = (
        "import sys, georeason.cli; from georeason.models.registry import available; "
        "assert 'qwen2.5-vl' in available(); "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_device_and_dtype_selection():
    assert hf.select_device("cpu") == "cpu"
    auto = hf.select_device("auto")
    assert auto == ("cuda" if torch.cuda.is_available() else auto)
    assert hf.select_dtype("auto", "cpu") == torch.float32
    assert hf.select_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(Exception, match="dtype"):
        hf.select_dtype("int3", "cpu")


def test_without_torch_building_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    with pytest.raises(ModelError, match=r"needs torch.*pip install -e '\.\[vlm\]'"):
        build_grounder(GrounderSpec.of("owlv2", {"model_path": "anything"}))
