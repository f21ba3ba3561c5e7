"""Hugging Face ``transformers`` grounding backends (the optional ``georeason[vlm]`` extra).

Six grounders and one segmenter, each loading its weights once per process (lazily, on the
first batch) and answering a whole batch of tiles per model call:

==================  =============================================  ==============================
grounder            model                                          output -> tile pixels
==================  =============================================  ==============================
``qwen2.5-vl``      Qwen2.5-VL, chat prompt, JSON ``bbox_2d``      absolute pixels of the resized
                                                                   input (``image_grid_thw``)
``qwen2-vl``        Qwen2-VL, ``<|box_start|>(x1,y1),(x2,y2)``     relative 0..1000
``qwen3-vl``        Qwen3-VL, chat prompt, JSON ``bbox_2d``        relative 0..1000
``florence-2``      Florence-2 (native ``Florence2ForConditional   ``<loc_N>`` bin centres
                    Generation``), task tokens
``owlv2``           OWLv2 open-vocabulary detector                 processor post-processing
``grounding-dino``  Grounding DINO                                 processor post-processing
==================  =============================================  ==============================

:class:`SamSegmenter` turns boxes into masks (box prompts); any grounder above given
``sam_model_path`` returns ``mask`` detections instead of boxes (the object -> pixel level).

Weights come from a local directory or the local Hugging Face cache only
(``local_files_only=True``): nothing is ever downloaded. A missing model raises
:class:`~georeason.errors.ModelNotFoundError` naming the path or id tried and how to
provide it. ``torch`` and ``transformers`` are imported inside the methods that need them,
so importing this module (which the grounder registry does) never imports torch.

Configuration keys (JSON values; all optional):

``model_path``
    A directory written by ``save_pretrained`` or a model id in the local HF cache.
``batch_size``
    Tiles per model call (default 4).
``device`` / ``dtype``
    ``auto`` (default): cuda, else mps, else cpu; bfloat16 on cuda, float32 elsewhere.
``max_new_tokens``, ``num_beams``
    Generation length and beams (VLMs).
``prompt``
    Prompt template; ``{label}`` is replaced by each class name (one prompt per class).
``min_pixels`` / ``max_pixels``
    Qwen image resizing bounds (passed to the processor; the coordinate mapping follows).
``task``
    Florence-2 task token (default ``<CAPTION_TO_PHRASE_GROUNDING>``).
``score_threshold`` / ``text_threshold``
    Detector thresholds (OWLv2: 0.1; Grounding DINO: 0.35 box, 0.25 text).
``sam_model_path``
    Segment each box with SAM and return masks (``sam_*`` keys go to :class:`SamSegmenter`).
``cache_dir``, ``revision``
    Where the HF cache is and which snapshot of an id to use.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from georeason.errors import InputError, ModelError, ModelNotFoundError
from georeason.geo.grounding.detections import Detection
from georeason.models import formats as parsers
from georeason.models.base import ModelGrounder
from georeason.models.parsenotes import parse_warning, parsing

__all__ = [
    "BACKENDS",
    "DEFAULT_MODELS",
    "VLM_INSTALL_HINT",
    "HFGrounder",
    "QwenVLGrounder",
    "Florence2Grounder",
    "Owlv2Grounder",
    "GroundingDinoGrounder",
    "SamSegmenter",
    "resolve_model_path",
    "select_device",
    "select_dtype",
    "open_vocabulary",
    "load_counts",
]

VLM_INSTALL_HINT = (
    "install torch first (CPU: pip install torch==2.13.0; with torchvision: "
    "pip install torch==2.14.1 torchvision==0.29.1 -- see the README), then pip install -e '.[vlm]'"
)

#: Model used when ``model_path`` is not given (looked up in the local HF cache only).
DEFAULT_MODELS = {
    "qwen2.5-vl": "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen2-vl": "Qwen/Qwen2-VL-7B-Instruct",
    "qwen3-vl": "Qwen/Qwen3-VL-8B-Instruct",
    "florence-2": "florence-community/Florence-2-large",
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "grounding-dino": "IDEA-Research/grounding-dino-tiny",
    "sam": "facebook/sam-vit-base",
}

#: ``config.json`` ``model_type`` values each backend reads correctly (coordinates differ!).
MODEL_TYPES = {
    "qwen2.5-vl": ("qwen2_5_vl",),
    "qwen2-vl": ("qwen2_vl",),
    "qwen3-vl": ("qwen3_vl", "qwen3_vl_moe"),
    "florence-2": ("florence2",),
    "owlv2": ("owlv2", "owlvit"),
    "grounding-dino": ("grounding-dino", "mm-grounding-dino"),
    "sam": ("sam",),
}

#: Weight loads per backend name in this process (tests and benchmarks assert "once per worker").
load_counts: dict[str, int] = {}
_LOAD_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------
# Set-up helpers: where the weights are, which device and dtype
# ---------------------------------------------------------------------------------------
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def require_vlm(name: str) -> None:
    """Raise :class:`ModelError` with install instructions if torch or transformers is missing."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"grounder {name!r} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: {VLM_INSTALL_HINT}"
        )


def resolve_model_path(
    model_path: str | Path, *, backend: str, cache_dir: str | None = None, revision: str | None = None
) -> Path:
    """The local folder holding the weights for ``model_path``; never downloads.

    ``model_path`` is a folder (as written by ``save_pretrained``) or a Hugging Face model
    id looked up in the local cache (``HF_HUB_CACHE``, or ``cache_dir``). The folder's
    ``config.json`` must declare a model type ``backend`` reads (Qwen2-VL and Qwen2.5-VL
    boxes use different coordinates, so a wrong pairing would give wrong geometry).

    Raises
    ------
    ModelNotFoundError
        Neither a folder with ``config.json`` nor an id in the local cache; the message
        names what was tried and how to provide the weights.
    ModelError
        The folder holds a model of another type.
    """
    text = str(model_path)
    p = Path(text).expanduser()
    if p.is_dir():
        folder = p
    elif p.exists():
        raise ModelNotFoundError(
            f"model path {text!r} for grounder {backend!r} is a file; give the folder "
            "that holds config.json and the weights"
        )
    elif _REPO_ID_RE.match(text) and not text.startswith((".", "~")):
        folder = _from_hf_cache(text, backend, cache_dir, revision)
    else:
        raise ModelNotFoundError(
            f"model folder {str(p)!r} for grounder {backend!r} does not exist. georeason never downloads "
            "weights: save the model there with save_pretrained, or download it on a connected machine "
            f"(hf download {DEFAULT_MODELS.get(backend, 'MODEL_ID')} --local-dir DIR) and pass --model-path DIR"
        )
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise ModelNotFoundError(
            f"model folder {str(folder)!r} for grounder {backend!r} has no config.json: give the folder "
            "written by save_pretrained (or by hf download ID --local-dir DIR)"
        )
    try:
        model_type = json.loads(cfg.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{cfg}: unreadable config.json ({exc})") from exc
    ok = MODEL_TYPES.get(backend)
    if ok and model_type not in ok:
        other = [k for k, v in MODEL_TYPES.items() if model_type in v and k != "sam"]
        hint = f"; use grounder {other[0]!r}" if other else ""
        raise ModelError(
            f"model in {str(folder)!r} is a {model_type!r} model, but grounder {backend!r} "
            f"reads {' / '.join(ok)} models{hint}"
        )
    return folder


def _from_hf_cache(repo_id: str, backend: str, cache_dir: str | None, revision: str | None) -> Path:
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as exc:  # comes with transformers
        raise ModelError(f"grounder {backend!r} needs huggingface_hub: {VLM_INSTALL_HINT}") from exc
    where = cache_dir or constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError, ...
        raise ModelNotFoundError(
            f"model {repo_id!r} for grounder {backend!r} is neither a folder nor in the local Hugging Face "
            f"cache ({where}); georeason never downloads weights. On a connected machine run "
            f"`hf download {repo_id}` (older huggingface_hub: `huggingface-cli download {repo_id}`) and copy "
            "the cache here (or set HF_HUB_CACHE), or pass --model-path DIR (model_path=DIR) with a folder "
            "written by save_pretrained"
        ) from exc


def select_device(preference: str | None = "auto") -> str:
    """``cuda`` if available, else ``mps``, else ``cpu`` (``preference`` other than auto wins)."""
    import torch

    pref = (preference or "auto").lower()
    if pref != "auto":
        if pref.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {preference!r} asked for, but torch sees no CUDA device")
        return pref
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def select_dtype(preference: str | None, device: str):
    """``auto``: bfloat16 on CUDA (float16 where bf16 is unsupported), float32 elsewhere."""
    import torch

    pref = (preference or "auto").lower()
    if pref == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if pref not in names:
        raise InputError(f"dtype {preference!r} is not one of auto, {', '.join(names)}")
    return names[pref]


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))


def _to_device(inputs, device: str, dtype):
    """Move a processor's BatchFeature to ``device``; floating tensors to ``dtype``."""
    import torch

    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device)
            if v.is_floating_point():
                v = v.to(dtype)
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------
class HFGrounder(ModelGrounder):
    """Common part of the transformers grounders: model resolution, device, load-once, SAM.

    Subclasses set ``name`` and implement :meth:`_load` (returns model and processor) and
    :meth:`predict`. ``load_count`` counts weight loads of this instance (1 after any
    number of batches).
    """

    name = "hf"
    #: Prompt template per class (``{label}``); subclasses override.
    default_prompt = "{label}"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        require_vlm(self.name)
        self.model_ref = str(self.config.get("model_path") or DEFAULT_MODELS[self.name])
        # resolved now, so a missing model fails when the grounder is built, not per tile
        self.model_dir = resolve_model_path(
            self.model_ref,
            backend=self.name,
            cache_dir=self.config.get("cache_dir"),
            revision=self.config.get("revision"),
        )
        self.prompt = str(self.config.get("prompt") or self.default_prompt)
        self.load_count = 0
        self.model: Any = None  # a transformers model, loaded lazily
        self.processor: Any = None
        self.device = "cpu"
        self.dtype: Any = None
        self._load_error: Exception | None = None
        self._lock = threading.Lock()
        self.segmenter: SamSegmenter | None = None
        if self.config.get("sam_model_path"):
            sam_cfg = {k[4:]: v for k, v in self.config.items() if k.startswith("sam_")}
            sam_cfg.setdefault("device", self.config.get("device", "auto"))
            sam_cfg.setdefault("dtype", self.config.get("dtype", "auto"))
            self.segmenter = SamSegmenter(sam_cfg)

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Load processor and weights (once; a failed load is not retried per tile)."""
        with self._lock:
            if self.model is not None:
                return
            if self._load_error is not None:
                raise self._load_error
            try:
                self.device = select_device(self.config.get("device", "auto"))
                self.dtype = select_dtype(self.config.get("dtype", "auto"), self.device)
                self.model, self.processor = self._load(str(self.model_dir))
                self.model.to(self.device).eval()
            except (ModelError, InputError) as exc:
                self._load_error = exc
                raise
            except Exception as exc:  # transformers raises OSError/ValueError/KeyError/...
                self._load_error = ModelError(
                    f"grounder {self.name!r} could not load the model in {str(self.model_dir)!r} "
                    f"(from {self.model_ref!r}): {type(exc).__name__}: {exc}"
                )
                raise self._load_error from exc
            self.load_count += 1
            with _LOAD_LOCK:
                load_counts[self.name] = load_counts.get(self.name, 0) + 1

    @abstractmethod
    def _load(self, path: str):
        """Load processor and model from ``path`` (a local folder); set them on ``self``."""

    def _prompt(self, label: str) -> str:
        return self.prompt.replace("{label}", label).replace("{classes}", label)

    # -- output handling -------------------------------------------------------------------
    def _finish(self, images: list[np.ndarray], per_image: list[list[Detection]]) -> list[list[Detection]]:
        """Masks from SAM when a segmenter is configured; boxes otherwise."""
        if self.segmenter is None:
            return per_image
        out = []
        for img, dets in zip(images, per_image):
            boxes = [d for d in dets if d.kind == "box"]
            masks = self.segmenter(img, [d.geometry.bounds for d in boxes]) if boxes else []
            by_id = {id(d): m for d, m in zip(boxes, masks)}
            res = []
            for d in dets:
                m = by_id.get(id(d))
                res.append(Detection(d.label, d.score, "mask", m) if m is not None and m.any() else d)
            out.append(res)
        return out


def _relabel(dets: list[Detection], label: str) -> list[Detection]:
    """The prompt asked for ``label`` only: every detection is one (the model may say "a lake")."""
    return [d if d.label == label else Detection(label, d.score, d.kind, d.geometry) for d in dets]


# ---------------------------------------------------------------------------------------
# Qwen-VL family
# ---------------------------------------------------------------------------------------
class QwenVLGrounder(HFGrounder):
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL grounding by chat prompt, one prompt per class.

    Coordinates (exactly, per image of the batch):

    - Qwen2.5-VL answers JSON ``bbox_2d`` in absolute pixels of the *resized* input; the
      input size is read from the processor's ``image_grid_thw`` times the patch size,
      which is :func:`~georeason.models.formats.smart_resize` with the processor's
      ``min_pixels``/``max_pixels`` (factor 28).
    - Qwen3-VL answers JSON ``bbox_2d`` relative to 0..1000 (factor 32 resizing does not
      matter).
    - Qwen2-VL answers ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` relative to 0..1000;
      the text is decoded with special tokens kept.
    """

    variant = "qwen2.5"
    default_prompt = (
        "Locate every {label} in the image. Answer with a JSON list only, one object per {label}: "
        '[{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}]. Answer [] if there is none.'
    )

    def _load(self, path: str):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        proc_kw: dict[str, Any] = {}
        for key in ("min_pixels", "max_pixels"):
            if self.config.get(key) is not None:
                proc_kw[key] = int(self.config[key])
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        ip = processor.image_processor
        if proc_kw:  # the image processor resizes within these bounds; input_size() follows
            size = dict(getattr(ip, "size", None) or {})
            if "min_pixels" in proc_kw:
                size["shortest_edge"] = proc_kw["min_pixels"]
            if "max_pixels" in proc_kw:
                size["longest_edge"] = proc_kw["max_pixels"]
            ip.size = size
            for key, v in proc_kw.items():
                if hasattr(ip, key):
                    setattr(ip, key, v)
        processor.tokenizer.padding_side = "left"  # batched generation with a decoder-only model
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=self.dtype)
        return model, processor

    def pixel_bounds(self) -> tuple[int, int, int]:
        """``(factor, min_pixels, max_pixels)`` the processor resizes with."""
        ip = self.processor.image_processor
        size = getattr(ip, "size", None) or {}
        get = size.get if isinstance(size, Mapping) else (lambda k, d=None: getattr(size, k, d))
        factor = int(getattr(ip, "patch_size", 14)) * int(getattr(ip, "merge_size", 2))
        lo = get("shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56
        hi = get("longest_edge") or getattr(ip, "max_pixels", None) or 28 * 28 * 1280
        return factor, int(lo), int(hi)

    def input_size(self, height: int, width: int, grid_thw=None) -> tuple[int, int]:
        """``(w_in, h_in)`` of the image the model saw (from ``image_grid_thw`` if given)."""
        if grid_thw is not None:
            patch = int(getattr(self.processor.image_processor, "patch_size", 14))
            return int(grid_thw[2]) * patch, int(grid_thw[1]) * patch
        factor, lo, hi = self.pixel_bounds()
        h_in, w_in = parsers.smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)
        return w_in, h_in

    def _chat_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # no template saved with the model: the Qwen chat format
        return (
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
            f"{prompt}<|im_end|>\n<|im_start|>assistant\n"
        )

    def generate(self, images: list[np.ndarray], prompt: str) -> tuple[list[str], list]:
        """Raw answers for one prompt over a batch of images, and each image's ``grid_thw``."""
        import torch

        text = self._chat_text(prompt)
        inputs = self.processor(
            text=[text] * len(images), images=[_pil(i) for i in images], return_tensors="pt", padding=True
        )
        grids = inputs["image_grid_thw"].tolist() if "image_grid_thw" in inputs else [None] * len(images)
        n_in = inputs["input_ids"].shape[1]
        gen_kw = dict(
            max_new_tokens=int(self.config.get("max_new_tokens", 512)),
            do_sample=False,
            num_beams=int(self.config.get("num_beams", 1)),
        )
        with torch.inference_mode():
            out = self.model.generate(**_to_device(inputs, self.device, self.dtype), **gen_kw)
        keep_special = self.variant == "qwen2"
        texts = self.processor.batch_decode(out[:, n_in:], skip_special_tokens=not keep_special)
        if keep_special:
            tok = self.processor.tokenizer
            drop = {t for t in (tok.pad_token, tok.eos_token, "<|im_end|>", "<|endoftext|>") if t}
            for t in drop:
                texts = [s.replace(t, "") for s in texts]
        return texts, grids

    def parse(self, text: str, image: np.ndarray, label: str, grid=None) -> list[Detection]:
        h, w = image.shape[:2]
        if self.variant == "qwen2.5":
            return parsers.parse_qwen25(text, (w, h), self.input_size(h, w, grid), label=label)
        if self.variant == "qwen3":
            return parsers.parse_qwen3(text, (w, h), label=label)
        return parsers.parse_qwen2_boxes(text, (w, h), label=label)

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        per_image: list[list[Detection]] = [[] for _ in images]
        for label in classes:
            texts, grids = self.generate(images, self._prompt(label))
            for k, (img, text, grid) in enumerate(zip(images, texts, grids)):
                with parsing(image=k, label=label):
                    per_image[k].extend(_relabel(self.parse(text, img, label, grid), label))
        return self._finish(images, per_image)


class Qwen25VLGrounder(QwenVLGrounder):
    name = "qwen2.5-vl"
    variant = "qwen2.5"


class Qwen2VLGrounder(QwenVLGrounder):
    name = "qwen2-vl"
    variant = "qwen2"
    default_prompt = "Find the bounding box of every {label} in the image."


class Qwen3VLGrounder(QwenVLGrounder):
    name = "qwen3-vl"
    variant = "qwen3"


# ---------------------------------------------------------------------------------------
# Florence-2
# ---------------------------------------------------------------------------------------
class Florence2Grounder(HFGrounder):
    """Florence-2 by task token: ``<CAPTION_TO_PHRASE_GROUNDING>`` (default),
    ``<OPEN_VOCABULARY_DETECTION>``, ``<OD>`` (the model's own categories, kept where they
    name a class asked) and ``<REFERRING_EXPRESSION_SEGMENTATION>`` (polygons).

    The text is decoded with special tokens kept and read by
    :func:`~georeason.models.formats.parse_florence` (``<loc_N>`` bin centres in the
    original image).
    """

    name = "florence-2"
    default_prompt = "{label}"
    TASKS = (
        "<CAPTION_TO_PHRASE_GROUNDING>",
        "<OPEN_VOCABULARY_DETECTION>",
        "<OD>",
        "<REFERRING_EXPRESSION_SEGMENTATION>",
    )

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        task = str(self.config.get("task", "<CAPTION_TO_PHRASE_GROUNDING>")).strip().upper()
        task = task if task.startswith("<") else f"<{task}>"
        if task not in self.TASKS:
            raise InputError(
                f"florence-2 task {self.config.get('task')!r} is not one of {', '.join(self.TASKS)}"
            )
        self.task = task

    def _load(self, path: str):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=self.dtype)
        return model, processor

    def generate(self, images: list[np.ndarray], prompt: str) -> list[str]:
        import torch

        inputs = self.processor(
            text=[prompt] * len(images), images=[_pil(i) for i in images], return_tensors="pt", padding=True
        )
        inputs = _to_device(inputs, self.device, self.dtype)
        gen_kw = dict(
            max_new_tokens=int(self.config.get("max_new_tokens", 1024)),
            do_sample=False,
            num_beams=int(self.config.get("num_beams", 3)),
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=inputs["input_ids"],
                pixel_values=inputs["pixel_values"],
                attention_mask=inputs.get("attention_mask"),
                **gen_kw,
            )
        return self.processor.batch_decode(out, skip_special_tokens=False)

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        per_image: list[list[Detection]] = [[] for _ in images]
        sizes = [(img.shape[1], img.shape[0]) for img in images]
        if self.task == "<OD>":
            wanted = {_norm(c): c for c in classes}
            for k, text in enumerate(self.generate(images, "<OD>")):
                with parsing(image=k):
                    parsed = parsers.parse_florence(text, self.task, sizes[k])
                for d in parsed:
                    cls = _match_class(d.label, wanted)
                    if cls is not None:
                        per_image[k].append(Detection(cls, d.score, d.kind, d.geometry))
            return self._finish(images, per_image)
        for label in classes:
            texts = self.generate(images, self.task + self._prompt(label))
            for k, text in enumerate(texts):
                with parsing(image=k, label=label):
                    parsed = parsers.parse_florence(text, self.task, sizes[k], label=label)
                per_image[k].extend(_relabel(parsed, label))
        return self._finish(images, per_image)


def _norm(label: str) -> str:
    from georeason.geo.vector.scene import normalise_class

    return normalise_class(label)


def _match_class(label: str, wanted: Mapping[str, str]) -> str | None:
    """The class asked (``wanted``: normalised -> as asked) that a model label names, if any."""
    from georeason.geo.vector.classnames import class_forms

    forms = set(class_forms(_norm(label)))
    for key, cls in wanted.items():
        if forms & set(class_forms(key)):
            return cls
    return None


# ---------------------------------------------------------------------------------------
# Open-vocabulary detectors
# ---------------------------------------------------------------------------------------
class Owlv2Grounder(HFGrounder):
    """OWLv2 (or OWL-ViT) open-vocabulary detection; boxes from the processor's
    ``post_process_grounded_object_detection`` (which undoes OWLv2's square padding)
    above ``score_threshold`` (default 0.1)."""

    name = "owlv2"
    default_prompt = "a photo of a {label}"

    def _load(self, path: str):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(
            path, local_files_only=True, dtype=self.dtype
        )
        return model, processor

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        import torch

        queries = [self._prompt(c) for c in classes]
        inputs = self.processor(
            text=[queries] * len(images), images=[_pil(i) for i in images], return_tensors="pt"
        )
        with torch.inference_mode():
            outputs = self.model(**_to_device(inputs, self.device, self.dtype))
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            threshold=float(self.config.get("score_threshold", 0.1)),
            target_sizes=[img.shape[:2] for img in images],
            text_labels=[classes] * len(images),
        )
        per_image = []
        for k, (img, res) in enumerate(zip(images, results)):
            dets = []
            for box, score, idx in zip(res["boxes"].tolist(), res["scores"].tolist(), res["labels"].tolist()):
                d = _box(box, img, classes[int(idx)], score, k)
                if d is not None:
                    dets.append(d)
            per_image.append(dets)
        return self._finish(images, per_image)


class GroundingDinoGrounder(HFGrounder):
    """Grounding DINO; the prompt is the classes joined as ``"building. lake."``.

    Boxes come from the processor's ``post_process_grounded_object_detection`` (all
    queries, so they stay aligned with the logits); each query's class is the asked class
    whose prompt tokens score highest, kept when that score is at least
    ``score_threshold`` (default 0.35) and ``text_threshold`` (default 0.25).
    """

    name = "grounding-dino"

    def _load(self, path: str):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(
            path, local_files_only=True, dtype=self.dtype
        )
        return model, processor

    def prompt_spans(self, classes: list[str]) -> tuple[str, list[tuple[int, int]]]:
        """The text prompt and each class's character span in it."""
        parts, spans, pos = [], [], 0
        for c in classes:
            phrase = self._prompt(c).lower().strip().rstrip(".")
            spans.append((pos, pos + len(phrase)))
            parts.append(phrase + ".")
            pos += len(phrase) + 2
        return " ".join(parts), spans

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        import torch

        prompt, spans = self.prompt_spans(classes)
        enc = self.processor.tokenizer(prompt, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        token_class = [
            [i for i, (s, e) in enumerate(offsets) if e > s and s >= a and e <= b] for a, b in spans
        ]
        inputs = self.processor(
            text=[prompt] * len(images), images=[_pil(i) for i in images], return_tensors="pt", padding=True
        )
        if list(inputs["input_ids"][0].tolist()[: len(enc["input_ids"])]) != list(enc["input_ids"]):
            raise ModelError(
                "grounding-dino: the processor tokenised the prompt differently from its tokenizer"
            )
        with torch.inference_mode():
            outputs = self.model(**_to_device(inputs, self.device, self.dtype))
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=-1.0,
            text_threshold=1.0,
            target_sizes=[img.shape[:2] for img in images],
        )
        box_t = float(self.config.get("score_threshold", 0.35))
        text_t = float(self.config.get("text_threshold", 0.25))
        probs = outputs.logits.sigmoid().cpu().numpy()  # (batch, queries, text positions)
        per_image = []
        for k, (img, res) in enumerate(zip(images, results)):
            boxes = res["boxes"].tolist()
            cls_scores = np.stack(
                [probs[k][:, idx].max(axis=1) if idx else np.zeros(probs.shape[1]) for idx in token_class],
                axis=1,
            )  # (queries, classes)
            best = cls_scores.argmax(axis=1)
            dets = []
            for q, c in enumerate(best):
                s = float(cls_scores[q, c])
                if s < box_t or s < text_t:
                    continue
                d = _box(boxes[q], img, classes[int(c)], s, k)
                if d is not None:
                    dets.append(d)
            per_image.append(dets)
        return self._finish(images, per_image)


def _box(
    box: Sequence[float], image: np.ndarray, label: str, score: float, index: int | None = None
) -> Detection | None:
    """A box detection clipped to the image; ``None`` (with a ParseWarning tagged with the
    batch ``index`` of the image, so only that tile carries it) if nothing is left."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite([x0, y0, x1, y1])):
        with parsing(image=index):
            parse_warning(f"dropped a box with non-finite coordinates {box} ({label})", stacklevel=3)
        return None
    x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
    y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return Detection(label, float(min(max(score, 0.0), 1.0)), "box", shapely.box(x0, y0, x1, y1))


# ---------------------------------------------------------------------------------------
# SAM
# ---------------------------------------------------------------------------------------
class SamSegmenter:
    """Segment Anything with box prompts: ``segmenter(image, boxes) -> [bool mask, ...]``.

    ``image`` is an RGB uint8 array ``(rows, cols, 3)``; ``boxes`` are ``(x0, y0, x1, y1)``
    in its pixel coordinates; each mask is a ``(rows, cols)`` bool array (one per box, in
    order; SAM's single best mask, thresholded at ``mask_threshold``, default 0). Weights
    load once, on the first call. Config: ``model_path``, ``device``, ``dtype``,
    ``mask_threshold``, ``cache_dir``, ``revision``.
    """

    name = "sam"

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})
        require_vlm(self.name)
        self.model_ref = str(self.config.get("model_path") or DEFAULT_MODELS["sam"])
        self.model_dir = resolve_model_path(
            self.model_ref,
            backend="sam",
            cache_dir=self.config.get("cache_dir"),
            revision=self.config.get("revision"),
        )
        self.model: Any = None
        self.processor: Any = None
        self.load_count = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self.model is not None:
                return
            from transformers import AutoProcessor, SamModel

            self.device = select_device(self.config.get("device", "auto"))
            self.dtype = select_dtype(self.config.get("dtype", "auto"), self.device)
            try:
                self.processor = AutoProcessor.from_pretrained(str(self.model_dir), local_files_only=True)
                self.model = SamModel.from_pretrained(
                    str(self.model_dir), local_files_only=True, dtype=self.dtype
                )
            except Exception as exc:
                raise ModelError(
                    f"SAM could not load the model in {str(self.model_dir)!r}: {type(exc).__name__}: {exc}"
                ) from exc
            self.model.to(self.device).eval()
            self.load_count += 1
            with _LOAD_LOCK:
                load_counts["sam"] = load_counts.get("sam", 0) + 1

    def __call__(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[np.ndarray]:
        import torch

        boxes = [[float(v) for v in b] for b in boxes]
        if not boxes:
            return []
        self.load()
        inputs = self.processor(images=_pil(image), input_boxes=[boxes], return_tensors="pt")
        original, reshaped = inputs["original_sizes"], inputs["reshaped_input_sizes"]
        with torch.inference_mode():
            out = self.model(**_to_device(inputs, self.device, self.dtype), multimask_output=False)
        masks = self.processor.post_process_masks(
            out.pred_masks.float().cpu(),
            original,
            reshaped,
            mask_threshold=float(self.config.get("mask_threshold", 0.0)),
        )
        m = masks[0].numpy().astype(bool)  # (boxes, 1, rows, cols)
        return [m[i, 0] for i in range(m.shape[0])]


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------
#: Grounder name -> class.
BACKENDS: dict[str, type[HFGrounder]] = {
    "qwen2.5-vl": Qwen25VLGrounder,
    "qwen2-vl": Qwen2VLGrounder,
    "qwen3-vl": Qwen3VLGrounder,
    "florence-2": Florence2Grounder,
    "owlv2": Owlv2Grounder,
    "grounding-dino": GroundingDinoGrounder,
}


def open_vocabulary(label: str) -> bool:
    """Whether an open-vocabulary model can be asked for ``label`` (any non-empty name)."""
    return bool(str(label).strip())
