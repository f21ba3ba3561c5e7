"""A grounding model behind an OpenAI-compatible chat API (grounder ``remote``).

This is how people usually serve Qwen-VL and similar models: vLLM
(``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``), Ollama, llama.cpp's server, LM Studio or a
hosted endpoint. Each tile is rendered to 8-bit RGB (:func:`georeason.models.base.tile_to_rgb`),
encoded as PNG and sent as a base64 ``data:`` URL in an ``image_url`` content part of
``POST {base_url}/chat/completions``, one request per tile and class; the reply text is
parsed with :mod:`georeason.models.formats` into pixel-space detections of that tile.
Geometry is never left to the model: seam merging and reasoning happen in
:mod:`georeason.geo` as for every grounder.

Configuration (``--grounder-option KEY=VALUE`` or ``grounder_options``):

``base_url``
    e.g. ``http://127.0.0.1:8000/v1`` (required; ``/chat/completions`` is appended).
``model``
    the served model name (default: the first id of ``GET {base_url}/models``).
``api_key_env``
    *name* of the environment variable holding the API key (default ``OPENAI_API_KEY``;
    no ``Authorization`` header when it is unset). The key itself never enters the
    configuration, so it is never logged nor part of a cache key.
``format``
    output format the model prints, any name :mod:`georeason.models.formats` knows
    (``qwen2.5``, ``qwen3``, ``gemini``, ``deepseek-vl2``, ``paligemma``, ``internvl``,
    ``kimi-vl``, ``florence``, ``geochat``...). Default ``auto``: the format the served
    model's name says (``Qwen/Qwen2.5-VL-7B-Instruct`` -> ``qwen2.5``, ``gemini-2.5-flash``
    -> ``gemini``; :func:`georeason.models.formats.format_for_model`); for a name no format
    claims, each answer is read by its markers, and an answer whose markers fit formats
    that give different pixels (``bbox_2d`` JSON) is refused with a warning, never guessed.
``prompt``
    the text sent with the image; ``{label}`` is replaced by the class asked. Default: the
    format's own prompt from the registry (:data:`PROMPTS`), so each family is asked for
    the format it was trained to write. ``prompts``: ``{class: prompt}`` overrides.
``input_size``
    ``[width, height]`` of the image *as the model saw it*, for formats in pixels of the
    resized model input (Qwen2.5-VL JSON and HTML). Default: **assumed** to be
    ``smart_resize(height, width, factor, min_pixels, max_pixels)`` of the image sent,
    which is what a server running the Qwen2.5-VL processor does; pass the server's
    ``min_pixels`` / ``max_pixels`` (vLLM ``--mm-processor-kwargs``) as options when it
    was started with others (defaults: ``factor`` 28, ``min_pixels`` 3136, ``max_pixels``
    12845056). If the server does not resize (or resizes differently), coordinates come
    back scaled wrongly: set ``input_size`` (or ``server_resize: false`` to take the image
    size as is).
``timeout``
    seconds per request (default 120). ``retries``: extra attempts on HTTP 5xx, 429 and
    connection errors/timeouts, with exponential back-off from ``backoff`` seconds
    (defaults 3 and 1.0); 4xx errors are not retried (the request is wrong).
``batch_size``
    requests in flight at once (a thread pool), default 4.
``max_tokens``, ``temperature`` (default 0), ``extra_body`` (merged into every request),
    ``task`` (passed to the parser, e.g. a Florence task token).

A request that still fails raises :class:`~georeason.errors.ModelError`: the pipeline
retries the batch tile by tile and records tiles that really fail; answers that depend on
them abstain.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from georeason.errors import InputError, ModelError
from georeason.geo.grounding.detections import Detection
from georeason.models.base import ModelGrounder
from georeason.models.formats import (
    format_for_model,
    formats,
    get_format,
    normalize_format,
    parse_output,
    smart_resize,
)
from georeason.models.parsenotes import parsing

__all__ = [
    "ChatClient",
    "RemoteGrounder",
    "encode_png",
    "decode_png",
    "png_data_url",
    "PROMPTS",
    "prepare_remote",
]

log = logging.getLogger(__name__)

#: Default prompt per output format (``{label}``: the class asked), from the format registry.
PROMPTS: dict[str, str] = {f.name: f.prompt for f in formats()}
_DEFAULT_PROMPT = "Locate every {label} in the image and give the bounding boxes."
_RESIZED = "pixels of the resized model input"

#: Qwen2.5-VL processor defaults (what a server resizes to unless started otherwise).
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 14 * 14 * 4 * 16384


# -- images ---------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit image ``(rows, cols, 3)`` or ``(rows, cols)`` (GDAL's PNG driver).

    >>> decode_png(encode_png(np.full((2, 3, 3), 7, np.uint8))).shape
    (2, 3, 3)
    """
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InputError(f"encode_png needs uint8 pixels, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    h, w, n = img.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(driver="PNG", width=w, height=h, count=n, dtype="uint8") as dst:
                dst.write(np.moveaxis(img, -1, 0))
            return bytes(mem.read())


def decode_png(data: bytes) -> np.ndarray:
    """``(rows, cols, bands)`` uint8 array of PNG (or any GDAL-readable image) bytes."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(data) as mem, mem.open() as src:
            return np.moveaxis(src.read(), 0, -1)


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


# -- the chat client ------------------------------------------------------------------------


class ChatClient:
    """A minimal OpenAI-compatible chat client (``POST {base_url}/chat/completions``).

    Callable as ``client(messages, **kw) -> str`` (the first choice's message content), so
    it can be handed to :func:`georeason.models.language.planner.plan_and_answer`. Thread-safe.
    Retries HTTP 5xx/429 and connection errors; raises :class:`ModelError` otherwise.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int | None = None,
        temperature: float | None = 0.0,
        response_format: dict | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if not base_url or not str(base_url).startswith(("http://", "https://")):
            raise InputError(
                f"base_url {base_url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = str(base_url).rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.response_format = response_format
        self.extra_body = dict(extra_body or {})
        self._client = None
        self._lock = threading.Lock()

    def _http(self):
        import httpx

        with self._lock:
            if self._client is None:
                headers = {"Content-Type": "application/json"}
                key = os.environ.get(self.api_key_env) if self.api_key_env else None
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                self._client = httpx.Client(timeout=self.timeout, headers=headers)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        import httpx

        url = self.base_url + path
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.75 + 0.5 * random.random()))
            try:
                resp = self._http().request(method, url, json=payload)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last = exc
                log.warning("%s %s: %s (attempt %d of %d)", method, url, exc, attempt + 1, self.retries + 1)
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                last = ModelError(f"{method} {url} answered HTTP {resp.status_code}: {resp.text[:300]}")
                log.warning("%s (attempt %d of %d)", last, attempt + 1, self.retries + 1)
                continue
            if resp.status_code >= 400:
                raise ModelError(
                    f"{method} {url} answered HTTP {resp.status_code}: {resp.text[:500]}; "
                    "check the model name, the request options and the server's log"
                )
            try:
                return resp.json()
            except ValueError as exc:
                raise ModelError(f"{method} {url} answered non-JSON: {resp.text[:300]!r}") from exc
        raise ModelError(f"{method} {url} failed after {self.retries + 1} attempts: {last}") from last

    def resolve_model(self) -> str:
        """The model name: as configured, else the first one the server lists."""
        if self.model:
            return self.model
        data = self._request("GET", "/models")
        try:
            self.model = str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"{self.base_url}/models lists no model ({str(data)[:200]}); give the model name"
            ) from exc
        return self.model

    def __call__(
        self,
        messages: list[dict],
        *,
        response_format: dict | None = None,
        max_tokens: int | None = None,
        **extra: Any,
    ) -> str:
        body: dict[str, Any] = {"model": self.resolve_model(), "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        mt = max_tokens if max_tokens is not None else self.max_tokens
        if mt is not None:
            body["max_tokens"] = int(mt)
        rf = response_format if response_format is not None else self.response_format
        if rf is not None:
            body["response_format"] = rf
        body.update(self.extra_body)
        body.update(extra)
        data = self._request("POST", "/chat/completions", body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"{self.base_url}/chat/completions answered without choices[0].message.content: "
                f"{str(data)[:300]}"
            ) from exc
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content or ""


# -- the grounder ---------------------------------------------------------------------------


def _input_size(cfg: Mapping[str, Any], width: int, height: int, fmt: str | None) -> tuple[int, int] | None:
    """The ``(width, height)`` the model saw, for formats in pixels of the resized input."""
    if cfg.get("input_size"):
        w, h = cfg["input_size"]
        return int(w), int(h)
    if fmt is None or fmt == "auto" or not cfg.get("server_resize", True):
        return None
    if get_format(fmt).convention.scale != _RESIZED:
        return None
    h, w = smart_resize(
        height,
        width,
        factor=int(cfg.get("factor", QWEN_FACTOR)),
        min_pixels=int(cfg.get("min_pixels", QWEN_MIN_PIXELS)),
        max_pixels=int(cfg.get("max_pixels", QWEN_MAX_PIXELS)),
    )
    return int(w), int(h)


class RemoteGrounder(ModelGrounder):
    """Grounder for a model behind an OpenAI-compatible chat API (see module doc)."""

    name = "remote"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        cfg = self.config
        if not cfg.get("base_url"):
            raise InputError(
                "the remote grounder needs base_url (e.g. --grounder-option base_url=http://127.0.0.1:8000/v1)"
            )
        self.format = normalize_format(str(cfg.get("format", "auto")))
        self._resolved: str | None = None if self.format == "auto" else self.format
        self.client = ChatClient(
            cfg["base_url"],
            cfg.get("model"),
            api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"),
            timeout=float(cfg.get("timeout", 120.0)),
            retries=int(cfg.get("retries", 3)),
            backoff=float(cfg.get("backoff", 1.0)),
            max_tokens=cfg.get("max_tokens"),
            temperature=cfg.get("temperature", 0.0),
            extra_body=cfg.get("extra_body"),
        )

    def load(self) -> None:
        self.client.resolve_model()
        self.output_format()

    def output_format(self) -> str:
        """The format this model prints: as configured, else the one its name says, else ``auto``."""
        if self._resolved is None:
            by_name = format_for_model(self.client.resolve_model())
            self._resolved = by_name or "auto"
            log.info("remote model %r: output format %s", self.client.model, self._resolved)
        return self._resolved

    def prompt_for(self, label: str) -> str:
        prompts = self.config.get("prompts") or {}
        fmt = self.output_format()
        tmpl = prompts.get(label) or self.config.get("prompt") or PROMPTS.get(fmt, _DEFAULT_PROMPT)
        return tmpl.replace("{label}", label)

    def _one(self, image: np.ndarray, url: str, label: str, k: int | None = None) -> list[Detection]:
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": self.prompt_for(label)},
                ],
            }
        ]
        text = self.client(messages)
        h, w = image.shape[:2]
        fmt = self.output_format()
        kw: dict[str, Any] = {"label": label}
        size = _input_size(self.config, w, h, fmt)
        if size is not None:
            kw["input_size"] = size
        if self.config.get("task"):
            kw["task"] = self.config["task"]
        with parsing(image=k, label=label):
            dets = parse_output(text, fmt, (w, h), model=self.client.model, **kw)
        # the class asked is the label, whatever the model called it ("houses" for "building")
        out = [d if d.label == label else Detection(label, float(d.score), d.kind, d.geometry) for d in dets]
        log.debug("remote %s: %d %s detections", self.client.base_url, len(out), label)
        return out

    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        urls = [png_data_url(img) for img in images]
        jobs = [(i, c) for i in range(len(images)) for c in classes]
        workers = max(1, min(self.batch_size, len(jobs)))
        # each job runs in the caller's context, so parse warnings reach its collector
        contexts = [contextvars.copy_context() for _ in jobs]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="georeason-remote") as pool:
            results = list(
                pool.map(
                    lambda n: contexts[n].run(
                        self._one, images[jobs[n][0]], urls[jobs[n][0]], jobs[n][1], jobs[n][0]
                    ),
                    range(len(jobs)),
                )
            )
        out: list[list[Detection]] = [[] for _ in images]
        for (i, _), dets in zip(jobs, results):
            out[i].extend(dets)
        return out


def prepare_remote(raster, options: dict[str, Any]) -> dict[str, Any]:
    """Check the remote grounder's options once per scene (no network: the server is asked lazily)."""
    opts = {k: v for k, v in dict(options).items() if k != "item"}
    if not opts.get("base_url"):
        raise InputError(
            "the remote grounder needs base_url (e.g. --grounder-option base_url=http://127.0.0.1:8000/v1)"
        )
    for k in ("timeout", "backoff"):
        if k in opts:
            opts[k] = float(opts[k])
    for k in ("retries", "batch_size", "max_tokens"):
        if k in opts and opts[k] is not None:
            opts[k] = int(opts[k])
    if isinstance(opts.get("input_size"), str):
        opts["input_size"] = [int(x) for x in opts["input_size"].replace("x", ",").split(",")]
    if isinstance(opts.get("prompts"), str):
        try:
            opts["prompts"] = json.loads(opts["prompts"])
        except json.JSONDecodeError as exc:
            raise InputError(
                f"grounder option prompts must be a JSON object {{class: prompt}}: {exc}"
            ) from exc
    return opts
