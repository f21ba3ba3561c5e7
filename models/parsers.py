"""Model text -> pixel-space detections: one pure function per grounding output format.

Every parser takes the raw text a vision-language model generated (or, for Florence-2,
the dict ``post_process_generation`` returns) and the ``(width, height)`` of the
*original* tile image, and returns :class:`~georeason.geo.grounding.detections.Detection` objects in
that image's pixel ``(col, row)`` coordinates (corner convention: ``(0, 0)`` is the
top-left corner of the first pixel, ``(width, height)`` the bottom-right corner of the
last one).

Coordinate conventions
----------------------
============================  ===============================================  ==========================
format                        model coordinates                                to image pixels
============================  ===============================================  ==========================
Qwen2.5-VL (``qwen2.5``)      absolute pixels of the *resized* model input     ``x * width / w_in``
                              (:func:`smart_resize`), JSON ``bbox_2d``
Qwen3-VL (``qwen3``)          relative, 0..1000, JSON ``bbox_2d``              ``min(x, 999) * width / 1000``
Qwen2-VL (``qwen2``)          relative, 0..1000, ``<|box_start|>(x1,y1),...``  ``x * width / 1000``
RemoteReasoner                absolute pixels of the image, ``<answer>[[..]]``  unchanged
Florence-2 (``florence``)     ``<loc_N>`` bins, N in 0..999                    ``(N + 0.5) * width / 1000``
GeoChat (``geochat``)         relative, 0..100, ``{<x1><y1><x2><y2>|<θ>}``     ``x * width / 100``
plain                         ``[x1, y1, x2, y2]`` / ``(x, y)``                pixels, or ``relative``
============================  ===============================================  ==========================

Sources: ``smart_resize`` is the published Qwen2-VL / Qwen2.5-VL algorithm
(``qwen-vl-utils`` ``vision_process.py``; the Qwen2.5-VL grounding cookbook maps boxes
back with ``x * width / input_width``). Florence-2's ``CoordinatesQuantizer`` (mode
``floor``, 1000 bins) quantises with ``floor(x / (size / 1000))`` and dequantises to the
bin centre ``(N + 0.5) * size / 1000`` (transformers ``processing_florence2.py``); we keep
the float centre, where recent transformers truncate it to an integer. GeoChat's demo
(``geochat_demo.py``, ``bbox_and_angle_to_polygon``) rotates the box corners about the
centre with the matrix ``[[cos θ, -sin θ], [sin θ, cos θ]]`` applied in image coordinates,
θ in degrees; see :func:`parse_geochat` for the sign.

Robustness
----------
Parsers never raise on bad model text. Whatever cannot be used — garbage, truncated JSON,
NaN/inf, boxes with swapped corners, boxes partly or wholly outside the image, zero-area
boxes, empty output — is repaired (corners swapped back, clipped to the image) or
dropped, each time with a :class:`~georeason.errors.ParseWarning` that names it. Only a
wrong *argument* from the caller (an image size that is not two positive integers, an
unknown format or Florence task) raises :class:`~georeason.errors.InputError`.

Boxes become ``Detection(kind="box", geometry=shapely.box(...))`` clipped to the image,
points kind ``point``, polygons kind ``polygon`` (repaired with ``make_valid``, clipped).
The score is 1.0 unless the model gives one (``score``/``confidence`` fields); the label
is the model's label if it gave one, else the ``label`` argument, else ``"object"``.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError, ParseWarning
from georeason.geo.grounding.detections import Detection

__all__ = [
    "FORMATS",
    "FLORENCE_TASKS",
    "smart_resize",
    "parse_qwen25",
    "parse_qwen3",
    "parse_qwen2_boxes",
    "parse_remotereasoner",
    "parse_florence",
    "parse_geochat",
    "parse_boxes",
    "parse_output",
    "detect_format",
    "normalize_format",
]

#: Format names accepted by :func:`parse_output` (``"auto"`` detects one of the others).
FORMATS = ("qwen2.5", "qwen2", "qwen3", "remotereasoner", "florence", "geochat", "plain", "auto")

_BOX_TASKS = (
    "<OD>",
    "<CAPTION_TO_PHRASE_GROUNDING>",
    "<OPEN_VOCABULARY_DETECTION>",
    "<DENSE_REGION_CAPTION>",
    "<REGION_PROPOSAL>",
)
_POLYGON_TASKS = ("<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>")
#: Florence-2 tasks :func:`parse_florence` understands.
FLORENCE_TASKS = _BOX_TASKS + _POLYGON_TASKS

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_NUM_RE = re.compile(_NUM, re.IGNORECASE)
_LEAF_RE = re.compile(rf"[\[(]\s*((?:{_NUM})(?:\s*,\s*(?:{_NUM}))*)\s*,?\s*[\])]", re.IGNORECASE)
_OPEN_LEAF_RE = re.compile(rf"[\[(]\s*(?:{_NUM})(?:\s*,\s*(?:{_NUM}))*\s*,?\s*$", re.IGNORECASE)

_BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box", "bbox2d")
_POINT_KEYS = ("point_2d", "point", "point2d")
_LABEL_KEYS = ("label", "category", "class", "name")
_SCORE_KEYS = ("score", "confidence", "conf", "probability", "prob")

# An edge this close to the image border (in pixels) is on it: no "clipped" warning.
_EPS = 1e-6


# ---------------------------------------------------------------------------------------
# Qwen2-VL / Qwen2.5-VL input size
# ---------------------------------------------------------------------------------------
def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """The ``(height, width)`` Qwen2-VL / Qwen2.5-VL resizes an image to, in pixels.

    The published algorithm (``qwen-vl-utils`` ``vision_process.smart_resize``): round
    both sides to the nearest multiple of ``factor`` (at least ``factor``); if that has
    more than ``max_pixels`` pixels, scale both sides by ``1 / beta`` with
    ``beta = sqrt(h * w / max_pixels)`` and round *down* to multiples of ``factor``; if
    fewer than ``min_pixels``, scale by ``beta = sqrt(min_pixels / (h * w))`` and round
    *up*. Python's ``round`` (half to even) is used, as upstream does.

    Note the order: ``(height, width)`` in and out, as upstream; the parsers take sizes as
    ``(width, height)``.

    Raises
    ------
    InputError
        A side is not positive, or the aspect ratio exceeds 200 (as upstream).

    Examples
    --------
    >>> smart_resize(1024, 1024)      # 1036 x 1036 would exceed max_pixels
    (980, 980)
    >>> smart_resize(512, 640)
    (504, 644)
    >>> smart_resize(30, 30)          # too small: scaled up to min_pixels
    (56, 56)
    """
    if height <= 0 or width <= 0:
        raise InputError(f"smart_resize needs positive sides, got height={height}, width={width}")
    if max(height, width) / min(height, width) > 200:
        raise InputError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width):g} "
            f"(height={height}, width={width})"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------
def _warn(message: str) -> None:
    warnings.warn(message, ParseWarning, stacklevel=2)


def _fmt(values: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _check_size(image_size: Any) -> tuple[int, int]:
    try:
        w, h = image_size
        ok = all(float(v) == int(v) and int(v) > 0 for v in (w, h))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InputError(f"image_size must be (width, height) in positive whole pixels, got {image_size!r}")
    return int(w), int(h)


def _num(value: Any) -> float | None:
    """A number from a JSON value (numbers or numeric strings; not booleans)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):  # int, float, numpy scalars
        return float(value)
    if isinstance(value, str) and _NUM_RE.fullmatch(value.strip()):
        return float(value.strip())
    return None


def _as_text(text: Any, fmt: str) -> str | None:
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    if isinstance(text, str):
        return text
    _warn(f"{fmt}: expected the model's text, got {type(text).__name__}; nothing parsed")
    return None


class _Builder:
    """Collects detections of one parse, mapping model coordinates to image pixels."""

    def __init__(
        self,
        fmt: str,
        size: tuple[int, int],
        label: str | None,
        mapx: Callable[[float], float] | None = None,
        mapy: Callable[[float], float] | None = None,
    ):
        self.fmt = fmt
        self.w, self.h = size
        self.default_label = label if isinstance(label, str) and label.strip() else "object"
        self.mapx = mapx or (lambda v: v)
        self.mapy = mapy or (lambda v: v)
        self.out: list[Detection] = []

    # -- attributes -----------------------------------------------------------------
    def label(self, model_label: Any) -> str:
        if isinstance(model_label, str) and model_label.strip():
            return model_label.strip()
        return self.default_label

    def score(self, value: Any, where: str) -> float:
        if value is None:
            return 1.0
        s = _num(value)
        if s is None or not math.isfinite(s):
            self.warn(f"{where}: unusable score {value!r}; used 1.0")
            return 1.0
        if not 0.0 <= s <= 1.0:
            self.warn(f"{where}: score {s:g} outside [0, 1]; clipped")
            s = min(max(s, 0.0), 1.0)
        return s

    def warn(self, message: str) -> None:
        _warn(f"{self.fmt}: {message}")

    # -- geometries -----------------------------------------------------------------
    def box(
        self, raw: Sequence[Any], where: str, label: Any = None, score: float = 1.0, mapped: bool = False
    ) -> None:
        """Add a box from four model numbers ``x1, y1, x2, y2`` (``mapped``: already pixels)."""
        nums = [_num(v) for v in raw]
        vals = [v for v in nums if v is not None]
        if len(nums) != 4 or len(vals) != 4:
            self.warn(f"{where}: dropped box {list(raw)!r}: expected 4 numbers x1, y1, x2, y2")
            return
        if not all(math.isfinite(v) for v in vals):
            self.warn(f"{where}: dropped box {_fmt(vals)}: non-finite coordinate")
            return
        x1, y1, x2, y2 = (
            vals
            if mapped
            else (self.mapx(vals[0]), self.mapy(vals[1]), self.mapx(vals[2]), self.mapy(vals[3]))
        )
        if x2 < x1 or y2 < y1:
            self.warn(f"{where}: box {_fmt(vals)} has swapped corners; reordered them")
            x1, x2 = min(x1, x2), max(x1, x2)
            y1, y2 = min(y1, y2), max(y1, y2)
        if not (x2 - x1) * (y2 - y1) > 0:
            self.warn(f"{where}: dropped box {_fmt(vals)}: zero area")
            return
        cx1, cy1 = min(max(x1, 0.0), self.w), min(max(y1, 0.0), self.h)
        cx2, cy2 = min(max(x2, 0.0), self.w), min(max(y2, 0.0), self.h)
        if not (cx2 - cx1) * (cy2 - cy1) > 0:
            self.warn(f"{where}: dropped box {_fmt(vals)}: outside the {self.w}x{self.h} image")
            return
        if max(abs(cx1 - x1), abs(cy1 - y1), abs(cx2 - x2), abs(cy2 - y2)) > _EPS:
            self.warn(f"{where}: box {_fmt(vals)} extends outside the {self.w}x{self.h} image; clipped")
        self.out.append(Detection(self.label(label), score, "box", shapely.box(cx1, cy1, cx2, cy2)))

    def point(
        self, raw: Sequence[Any], where: str, label: Any = None, score: float = 1.0, mapped: bool = False
    ) -> None:
        nums = [_num(v) for v in raw]
        vals = [v for v in nums if v is not None]
        if len(nums) != 2 or len(vals) != 2:
            self.warn(f"{where}: dropped point {list(raw)!r}: expected 2 numbers x, y")
            return
        if not all(math.isfinite(v) for v in vals):
            self.warn(f"{where}: dropped point {_fmt(vals)}: non-finite coordinate")
            return
        x, y = vals if mapped else (self.mapx(vals[0]), self.mapy(vals[1]))
        if not (-_EPS <= x <= self.w + _EPS and -_EPS <= y <= self.h + _EPS):
            self.warn(f"{where}: dropped point {_fmt(vals)}: outside the {self.w}x{self.h} image")
            return
        x, y = min(max(x, 0.0), self.w), min(max(y, 0.0), self.h)
        self.out.append(Detection(self.label(label), score, "point", shapely.Point(x, y)))

    def polygon(
        self,
        rings: Sequence[Sequence[Any]],
        where: str,
        label: Any = None,
        score: float = 1.0,
        mapped: bool = False,
    ) -> None:
        """Add one object made of one or more polygons, each a flat ``[x, y, x, y, ...]``."""
        parts: list[BaseGeometry] = []
        for k, ring in enumerate(rings):
            tag = where if len(rings) == 1 else f"{where} polygon {k + 1}"
            nums = [_num(v) for v in ring] if isinstance(ring, (list, tuple)) else [None]
            vals = [v for v in nums if v is not None]
            if len(vals) != len(nums):
                self.warn(f"{tag}: dropped polygon: expected a flat list of numbers x, y, x, y, ...")
                continue
            if len(vals) % 2:
                self.warn(f"{tag}: polygon has an odd number of coordinates; dropped the last one")
                vals = vals[:-1]
            if not all(math.isfinite(v) for v in vals):
                self.warn(f"{tag}: dropped polygon: non-finite coordinate")
                continue
            pairs = zip(vals[0::2], vals[1::2])
            xy = list(pairs) if mapped else [(self.mapx(x), self.mapy(y)) for x, y in pairs]
            if len(set(xy)) < 3:
                self.warn(f"{tag}: dropped polygon: fewer than 3 distinct vertices")
                continue
            poly = shapely.Polygon(xy)
            if not poly.is_valid:
                self.warn(f"{tag}: polygon was invalid (e.g. self-intersecting); repaired with make_valid")
                poly = shapely.make_valid(poly)
            poly = _polygonal(poly)
            if poly.is_empty or poly.area <= 0:
                self.warn(f"{tag}: dropped polygon: zero area")
                continue
            clipped = _polygonal(shapely.clip_by_rect(poly, 0, 0, self.w, self.h))
            if clipped.is_empty or clipped.area <= 0:
                self.warn(f"{tag}: dropped polygon: outside the {self.w}x{self.h} image")
                continue
            if poly.area - clipped.area > _EPS * max(1.0, poly.area):
                self.warn(f"{tag}: polygon extends outside the {self.w}x{self.h} image; clipped")
            parts.append(clipped)
        if not parts:
            return
        geom = parts[0] if len(parts) == 1 else _polygonal(shapely.union_all(parts))
        self.out.append(Detection(self.label(label), score, "polygon", geom))


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (drops lines/points make_valid or clipping leave)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        return shapely.Polygon()
    out = shapely.union_all(polys)
    return out if out.geom_type in ("Polygon", "MultiPolygon") else shapely.Polygon()


def _guard(fmt: str, fn: Callable[..., list[Detection]], *args: Any) -> list[Detection]:
    """Run a parser body; an unexpected error becomes a ParseWarning (parsers never raise)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise on model text"
        _warn(
            f"{fmt}: unexpected error while parsing the model output ({type(exc).__name__}: {exc}); "
            "dropped it all (please report this as a parser bug)"
        )
        return []


def _nothing(b: _Builder, text: str) -> None:
    if not text.strip():
        b.warn("empty model output; no detections")
    else:
        b.warn(f"no grounding found in the model output {_short(text)}")


# ---------------------------------------------------------------------------------------
# Lenient JSON
# ---------------------------------------------------------------------------------------
_FENCE_RE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|$)", re.DOTALL)


def _strip_fences(text: str) -> str:
    if "```" not in text:
        return text
    blocks = [m.group(1) for m in _FENCE_RE.finditer(text)]
    return "\n".join(blocks)


def _relax(s: str) -> str:
    """JSON-ify near-JSON: single-quoted strings, trailing commas, Python/JS literals."""
    out: list[str] = []
    outside: list[str] = []

    def flush():
        chunk = "".join(outside)
        outside.clear()
        chunk = re.sub(r",\s*([}\]])", r"\1", chunk)
        chunk = re.sub(r"\bTrue\b", "true", chunk)
        chunk = re.sub(r"\bFalse\b", "false", chunk)
        chunk = re.sub(r"\bNone\b", "null", chunk)
        chunk = re.sub(r"(?<![A-Za-z])[nN]a[nN](?![A-Za-z])", "NaN", chunk)
        chunk = re.sub(r"(?<![A-Za-z])(?:inf|Inf|INF)(?:inity)?(?![A-Za-z])", "Infinity", chunk)
        out.append(chunk)

    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in "\"'":
            j, buf = i + 1, []
            while j < n and s[j] != c:
                if s[j] == "\\" and j + 1 < n:
                    buf.append(s[j : j + 2])
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            body = "".join(buf)
            if c == "'":
                body = body.replace("\\'", "'").replace('"', '\\"')
            flush()
            out.append('"' + body + '"')
            i = j + 1
            continue
        outside.append(c)
        i += 1
    flush()
    return "".join(out)


def _loads(s: str) -> Any:
    """Parse JSON, else near-JSON (:func:`_relax`), else a Python literal; ValueError if none."""
    for attempt in (lambda: s, lambda: _relax(s)):
        try:
            return json.loads(attempt())
        except (ValueError, RecursionError):
            continue
    try:
        return ast.literal_eval(s)
    except Exception:  # noqa: BLE001 - literal_eval raises many kinds on junk
        raise ValueError("not JSON") from None


def _object_spans(text: str) -> tuple[list[str], bool]:
    """Top-level ``{...}`` spans of ``text`` and whether a last one was left unclosed."""
    spans: list[str] = []
    depth, start, quote, prev = 0, -1, "", ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif depth > 0 and (c == '"' or (c == "'" and prev in "{[,:")):
            quote = c
        elif c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
        if not c.isspace():
            prev = c
        i += 1
    return spans, depth > 0


def _json_items(text: str, b: _Builder) -> list[Any] | None:
    """The JSON values of a model answer (a list's items, or objects found one by one).

    ``None`` when the text holds no JSON object or list at all.
    """
    body = _strip_fences(text).strip()
    if not body:
        return None
    try:
        value = _loads(body)
    except ValueError:
        value = None
    else:
        if _is_numbers(value, 4) or _is_numbers(value, 2):
            return [value]
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [value]
    spans, truncated = _object_spans(body)
    items: list[Any] = []
    for span in spans:
        try:
            obj = _loads(span)
        except ValueError:
            b.warn(f"dropped unparseable object {_short(span)}")
            continue
        items.append(obj)
    if truncated:
        b.warn(f"output is truncated; kept the {len(items)} complete object(s) before the cut")
    if not spans and not truncated:
        return None
    return items


def _key(d: Mapping, names: Sequence[str]) -> Any:
    lower = {str(k).lower(): v for k, v in d.items()}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _is_numbers(v: Any, n: int) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) == n
        and all(not isinstance(x, (list, tuple, dict)) for x in v)
    )


def _qwen_items(items: list[Any], b: _Builder, where: str = "item") -> None:
    for k, item in enumerate(items, 1):
        tag = f"{where} {k}"
        if isinstance(item, dict):
            box, point = _key(item, _BOX_KEYS), _key(item, _POINT_KEYS)
            label = _key(item, _LABEL_KEYS)
            score = b.score(_key(item, _SCORE_KEYS), tag)
            if box is None and point is None:
                nested = [
                    v
                    for v in item.values()
                    if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v))
                ]
                if nested:
                    for v in nested:
                        _qwen_items(v if isinstance(v, list) else [v], b, f"{tag} /")
                else:
                    b.warn(f"{tag}: dropped {_short(json.dumps(item, default=str))}: no bbox_2d or point_2d")
                continue
            if box is not None:
                boxes = (
                    box
                    if isinstance(box, list) and box and all(isinstance(x, (list, tuple)) for x in box)
                    else [box]
                )
                for bx in boxes:
                    if isinstance(bx, (list, tuple)):
                        b.box(bx, tag, label, score)
                    else:
                        b.warn(f"{tag}: dropped bbox_2d {bx!r}: expected 4 numbers")
            if point is not None:
                pts = (
                    point
                    if isinstance(point, list) and point and all(isinstance(x, (list, tuple)) for x in point)
                    else [point]
                )
                for pt in pts:
                    if isinstance(pt, (list, tuple)):
                        b.point(pt, tag, label, score)
                    else:
                        b.warn(f"{tag}: dropped point_2d {pt!r}: expected 2 numbers")
        elif _is_numbers(item, 4):
            b.box(item, tag)
        elif _is_numbers(item, 2):
            b.point(item, tag)
        elif isinstance(item, list) and item and all(isinstance(x, (list, dict)) for x in item):
            _qwen_items(item, b, f"{tag} /")
        else:
            b.warn(f"{tag}: dropped {_short(repr(item))}: not a grounding object")


def _leaves(text: str, b: _Builder, where: str = "list") -> list[list[float]]:
    """Innermost bracketed number lists ``[..]`` / ``(..)`` of a text, in order."""
    leaves = [[float(v) for v in _NUM_RE.findall(m.group(1))] for m in _LEAF_RE.finditer(text)]
    tail = text[max(text.rfind("]"), text.rfind(")")) + 1 :]
    if _OPEN_LEAF_RE.search(tail.rstrip()):
        b.warn(f"output is truncated inside a {where}; dropped the incomplete {_short(tail.strip()[-40:])}")
    return leaves


def _add_leaves(leaves: list[list[float]], b: _Builder, where: str = "list") -> None:
    for k, leaf in enumerate(leaves, 1):
        if len(leaf) == 4:
            b.box(leaf, f"{where} {k}")
        elif len(leaf) == 2:
            b.point(leaf, f"{where} {k}")
        else:
            b.warn(f"{where} {k}: dropped {_fmt(leaf)}: expected 4 numbers (box) or 2 (point)")


def _parse_json_grounding(text: Any, b: _Builder) -> list[Detection]:
    text = _as_text(text, b.fmt)
    if text is None:
        return []
    items = _json_items(text, b)
    if items is None:
        leaves = _leaves(_strip_fences(text), b)
        if leaves:
            _add_leaves(leaves, b)
        else:
            _nothing(b, text)
        return b.out
    _qwen_items(items, b)
    return b.out


# ---------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------
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
    size = _check_size(image_size)
    w, h = size
    if input_size is None:
        mapx = mapy = None
    else:
        w_in, h_in = _check_size(input_size)
        mapx, mapy = (lambda v: v * w / w_in), (lambda v: v * h / h_in)
    return _guard("qwen2.5", _parse_json_grounding, text, _Builder("qwen2.5", size, label, mapx, mapy))


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
    size = _check_size(image_size)
    w, h = size

    def rel(v: float, side: int) -> float:
        return (999.0 if 999.0 < v <= 1000.0 else v) * side / 1000.0

    return _guard(
        "qwen3",
        _parse_json_grounding,
        text,
        _Builder("qwen3", size, label, lambda v: rel(v, w), lambda v: rel(v, h)),
    )


_QWEN2_TOKEN_RE = re.compile(
    r"<\|object_ref_start\|>(?P<ref>.*?)(?:<\|object_ref_end\|>|(?=<\|)|$)"
    r"|<\|box_start\|>(?P<box>.*?)(?P<end><\|box_end\|>|(?=<\|box_start\|>|<\|object_ref_start\|>)|$)",
    re.DOTALL,
)
_QWEN2_PLAIN_RE = re.compile(
    rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)", re.IGNORECASE
)


def _parse_qwen2(text: Any, b: _Builder) -> list[Detection]:
    text = _as_text(text, b.fmt)
    if text is None:
        return []
    current, nbox = None, 0
    for m in _QWEN2_TOKEN_RE.finditer(text):
        if m.group("ref") is not None:
            current = m.group("ref")
            continue
        nbox += 1
        nums = [float(v) for v in _NUM_RE.findall(m.group("box"))]
        tag = f"box {nbox}"
        if not m.group("end") and len(nums) < 4:
            b.warn(f"{tag}: output is truncated inside <|box_start|>; dropped {_short(m.group('box'))}")
            continue
        if not nums:
            b.warn(f"{tag}: dropped {_short(m.group('box'))}: no coordinates")
            continue
        for i in range(0, len(nums) - len(nums) % 4, 4):
            b.box(nums[i : i + 4], tag, current)
        if len(nums) % 4:
            b.warn(f"{tag}: dropped {len(nums) % 4} stray coordinate(s) {_fmt(nums[-(len(nums) % 4) :])}")
    if nbox == 0:  # decoded with skip_special_tokens: "building(100,200),(300,400)"
        matches = list(_QWEN2_PLAIN_RE.finditer(text))
        for k, m in enumerate(matches, 1):
            b.box([float(g) for g in m.groups()], f"box {k}")
        if not matches:
            _nothing(b, text)
    return b.out


def parse_qwen2_boxes(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from Qwen2-VL box tokens (coordinates relative, 0..1000).

    ``<|object_ref_start|>building<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``;
    several boxes may follow one reference (they share its label). Coordinates map with
    ``x * width / 1000``. Text decoded without special tokens (``building(10,20),(30,40)``)
    is read too, with the default label.

    Examples
    --------
    >>> out = ("<|object_ref_start|>the pool<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
    ...        "<|box_start|>(500,500),(600,700)<|box_end|>")
    >>> [(d.label, d.geometry.bounds) for d in parse_qwen2_boxes(out, (1000, 500))]
    [('the pool', (100.0, 100.0, 300.0, 200.0)), ('the pool', (500.0, 250.0, 600.0, 350.0))]
    """
    size = _check_size(image_size)
    w, h = size
    return _guard(
        "qwen2",
        _parse_qwen2,
        text,
        _Builder("qwen2", size, label, lambda v: v * w / 1000.0, lambda v: v * h / 1000.0),
    )


_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def _parse_remotereasoner(text: Any, b: _Builder) -> list[Detection]:
    text = _as_text(text, b.fmt)
    if text is None:
        return []
    m = _ANSWER_RE.search(text)
    if m is not None:
        answer = m.group(1)
    elif "</think>" in text:
        answer = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        b.warn("output has <think> but neither </think> nor <answer>; no answer to read")
        return []
    else:
        answer = text
    if re.fullmatch(r"\s*\[\s*(\[\s*\]\s*)?\]\s*", answer):  # "[]": no object matches
        return []
    leaves = _leaves(answer, b)
    if not leaves:
        _nothing(b, answer)
    _add_leaves(leaves, b, "box")
    return b.out


def parse_remotereasoner(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from RemoteReasoner's ``<think>..</think><answer>[[x1,y1,x2,y2], ...]</answer>``.

    Coordinates are integer pixels of the image, used as they are. ``[]`` is the model's
    "nothing matches" (no warning). A missing ``</think>`` or ``</answer>``, spaces and a
    single flat box ``[x1, y1, x2, y2]`` are tolerated; without ``<answer>`` the text
    after ``</think>`` is read.

    Examples
    --------
    >>> out = "<think>Two storage tanks near the pier.</think><answer>[[10, 20, 50, 60], [70,80,90,100]]</answer>"
    >>> [d.geometry.bounds for d in parse_remotereasoner(out, (128, 128), label="tank")]
    [(10.0, 20.0, 50.0, 60.0), (70.0, 80.0, 90.0, 100.0)]
    >>> parse_remotereasoner("<think>none</think><answer>[]</answer>", (128, 128))
    []
    """
    size = _check_size(image_size)
    return _guard("remotereasoner", _parse_remotereasoner, text, _Builder("remotereasoner", size, label))


# -- Florence-2 ---------------------------------------------------------------------------
_FLORENCE_TOKEN_RE = re.compile(r"<loc_(\d+)>|(<sep>|<poly>|</poly>)|(<[^<>]*>)|([^<]+)|(<)")


def _norm_task(task: Any) -> str:
    t = str(task).strip().upper()
    if not t.startswith("<"):
        t = f"<{t}>"
    if t not in FLORENCE_TASKS:
        raise InputError(f"unsupported Florence-2 task {task!r}; supported: {', '.join(FLORENCE_TASKS)}")
    return t


def _florence_text(text: str, task: str, b: _Builder) -> None:
    text = text.replace("<s>", "").replace("</s>", "").replace("<pad>", "")
    # groups: (phrase, instances); an instance is a list of rings, a ring a list of bins
    groups: list[tuple[str | None, list[list[list[int]]], bool]] = []
    phrase: str | None = None
    cur: list[list[list[int]]] | None = None
    marked = False  # <poly>/<sep> seen in the current group

    def close():
        nonlocal cur, marked
        if cur is not None and any(r for inst in cur for r in inst):
            groups.append((phrase, cur, marked))
        cur, marked = None, False

    for m in _FLORENCE_TOKEN_RE.finditer(text):
        loc, mark, _tag, words, _lt = m.groups()
        if words is not None:
            if words.strip():
                close()
                phrase = words.strip()
            continue
        if loc is not None:
            if cur is None:
                cur = [[[]]]
            cur[-1][-1].append(int(loc))
        elif mark is not None:
            if cur is None:
                cur = [[[]]]
            marked = True
            if mark == "<sep>":
                cur[-1].append([])
            elif mark == "<poly>":
                if any(cur[-1]):
                    cur.append([[]])
    close()
    if not groups:
        _nothing(b, text)
        return
    polygon_task = task in _POLYGON_TASKS
    nbox = npoly = 0
    for phrase, instances, has_marks in groups:
        for inst in instances:
            rings = [r for r in inst if r]
            if not rings:
                continue
            if polygon_task or has_marks:
                npoly += 1
                b.polygon(rings, f"polygon {npoly}", phrase)
                continue
            bins = [v for r in rings for v in r]
            for i in range(0, len(bins) - len(bins) % 4, 4):
                nbox += 1
                b.box(bins[i : i + 4], f"box {nbox}", phrase)
            if len(bins) % 4:
                b.warn(f"dropped {len(bins) % 4} stray <loc_> token(s) after {phrase or 'a box'!r}")


def _florence_dict(result: Mapping, task: str, b: _Builder) -> None:
    inner: Any = result
    keys = [k for k in result if isinstance(k, str) and k.strip().startswith("<")]
    if len(keys) == 1:
        inner = result[keys[0]]
        key_task = keys[0].strip().upper()
        if isinstance(inner, str):  # {"<OD>": "car<loc_1>..."}: raw text under the task key
            _florence_text(inner, key_task if key_task in FLORENCE_TASKS else task, b)
            return
    if not isinstance(inner, Mapping):
        b.warn(f"dropped Florence-2 result {_short(repr(result))}: expected {{task: {{'bboxes': ..}}}}")
        return
    bboxes, polys, scores = inner.get("bboxes"), inner.get("polygons"), inner.get("scores")
    if not isinstance(bboxes, (list, tuple)) and not isinstance(polys, (list, tuple)):
        b.warn(f"dropped Florence-2 result {_short(repr(dict(inner)))}: no 'bboxes' or 'polygons'")
        return
    if not bboxes and not polys:
        b.warn("Florence-2 result has no boxes or polygons; no detections")
        return
    labels = inner.get("bboxes_labels", inner.get("labels"))
    for k, bx in enumerate(bboxes or []):
        tag = f"box {k + 1}"
        lab = labels[k] if isinstance(labels, (list, tuple)) and k < len(labels) else None
        sc = b.score(scores[k], tag) if isinstance(scores, (list, tuple)) and k < len(scores) else 1.0
        if isinstance(bx, (list, tuple)):
            b.box(bx, tag, lab, sc, mapped=True)
        else:
            b.warn(f"{tag}: dropped {bx!r}: expected 4 numbers")
    labels = inner.get("polygons_labels", inner.get("labels"))
    for k, inst in enumerate(polys or []):
        tag = f"polygon {k + 1}"
        lab = labels[k] if isinstance(labels, (list, tuple)) and k < len(labels) else None
        if isinstance(inst, (list, tuple)) and inst and not any(isinstance(v, (list, tuple)) for v in inst):
            inst = [inst]  # one flat polygon instead of a list of them
        if not isinstance(inst, (list, tuple)) or not inst:
            b.warn(f"{tag}: dropped {inst!r}: expected a list of [x, y, x, y, ...] polygons")
            continue
        b.polygon(list(inst), tag, lab, mapped=True)


def _parse_florence(text_or_dict: Any, task: str, b: _Builder) -> list[Detection]:
    if isinstance(text_or_dict, Mapping):
        _florence_dict(text_or_dict, task, b)
        return b.out
    text = _as_text(text_or_dict, b.fmt)
    if text is None:
        return []
    _florence_text(text, task, b)
    return b.out


def parse_florence(
    text_or_dict: str | Mapping, task: str, image_size: tuple[int, int], label: str | None = None
) -> list[Detection]:
    """Detections from Florence-2 output: raw ``<loc_N>`` text or the post-processed dict.

    Raw text: each location token ``<loc_N>`` (N in 0..999) is the centre of bin N of
    1000 equal bins over the side, ``(N + 0.5) * size / 1000`` (Florence-2's
    ``floor``-mode quantiser). Box tasks (``<OD>``, ``<CAPTION_TO_PHRASE_GROUNDING>``,
    ``<OPEN_VOCABULARY_DETECTION>``, ``<DENSE_REGION_CAPTION>``, ``<REGION_PROPOSAL>``):
    a phrase followed by four tokens per box, possibly several boxes per phrase.
    Polygon tasks (``<REFERRING_EXPRESSION_SEGMENTATION>``, ``<REGION_TO_SEGMENTATION>``):
    ``x, y`` token pairs; ``<sep>`` separates the polygons of one object, ``<poly>..</poly>``
    delimits objects; each object is one detection (a MultiPolygon when it has several
    parts). Groups marked with ``<poly>``/``<sep>`` are polygons in any task.

    A dict (``processor.post_process_generation``'s result, ``{task: {...}}`` or the
    inner dict) is read as pixels of the image already: ``bboxes`` with ``labels`` or
    ``bboxes_labels``, ``polygons`` (per object, a list of flat ``[x, y, ...]`` lists)
    with ``labels`` or ``polygons_labels``. Empty labels fall back to ``label``.

    Raises
    ------
    InputError
        ``task`` is not one of :data:`FLORENCE_TASKS` (a caller error, not model text).

    Examples
    --------
    >>> out = "</s><s>car<loc_52><loc_333><loc_932><loc_774>door handle<loc_1><loc_2><loc_3><loc_4></s>"
    >>> [(d.label, d.geometry.bounds) for d in parse_florence(out, "<OD>", (1000, 1000))]
    [('car', (52.5, 333.5, 932.5, 774.5)), ('door handle', (1.5, 2.5, 3.5, 4.5))]
    """
    size = _check_size(image_size)
    t = _norm_task(task)
    w, h = size
    return _guard(
        "florence",
        _parse_florence,
        text_or_dict,
        t,
        _Builder("florence", size, label, lambda v: (v + 0.5) * w / 1000.0, lambda v: (v + 0.5) * h / 1000.0),
    )


# -- GeoChat --------------------------------------------------------------------------------
_GEOCHAT_RE = re.compile(r"<p>(?P<phrase>.*?)</p>|\{(?P<box>[^{}]*)(?P<end>\}|$)", re.DOTALL)
_ANGLE_BRACKET_NUM_RE = re.compile(rf"<\s*({_NUM})\s*>", re.IGNORECASE)


def _parse_geochat(text: Any, b: _Builder) -> list[Detection]:
    text = _as_text(text, b.fmt)
    if text is None:
        return []
    current, nbox = None, 0
    for m in _GEOCHAT_RE.finditer(text):
        if m.group("phrase") is not None:
            current = m.group("phrase")
            continue
        inner = m.group("box")
        coords_part, _, angle_part = inner.partition("|")
        nums = [float(v) for v in _ANGLE_BRACKET_NUM_RE.findall(coords_part)]
        if not nums and not m.group("end"):
            continue  # a stray "{" in prose
        if not nums and "<" not in inner:
            continue  # "{...}" without any <n>: prose, not a box
        nbox += 1
        tag = f"box {nbox}"
        if not m.group("end"):
            b.warn(f"{tag}: output is truncated inside {{...}}; dropped {_short(inner)}")
            continue
        if len(nums) != 4:
            b.warn(f"{tag}: dropped {{{inner}}}: expected 4 coordinates <x1><y1><x2><y2>")
            continue
        angle = 0.0
        if angle_part.strip():
            found = _ANGLE_BRACKET_NUM_RE.findall(angle_part) or _NUM_RE.findall(angle_part)
            angle = float(found[0]) if found else math.nan
            if not math.isfinite(angle):
                b.warn(f"{tag}: dropped {{{inner}}}: unreadable angle {angle_part.strip()!r}")
                continue
        _geochat_box(nums, angle, tag, current, b)
    if nbox == 0:
        _nothing(b, text)
    return b.out


def _geochat_box(nums: list[float], angle_deg: float, tag: str, label: str | None, b: _Builder) -> None:
    if angle_deg % 360.0 == 0.0 or not all(math.isfinite(v) for v in nums):
        b.box(nums, tag, label)
        return
    x1, y1, x2, y2 = b.mapx(nums[0]), b.mapy(nums[1]), b.mapx(nums[2]), b.mapy(nums[3])
    if x2 < x1 or y2 < y1:
        b.warn(f"{tag}: box {_fmt(nums)} has swapped corners; reordered them")
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        b.warn(f"{tag}: dropped box {_fmt(nums)}: zero area")
        return
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    ring = []
    for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        ring += [cx + c * dx - s * dy, cy + s * dx + c * dy]
    b.polygon([ring], tag, label, mapped=True)


def parse_geochat(text: str, image_size: tuple[int, int], label: str | None = None) -> list[Detection]:
    """Detections from GeoChat ``<p>phrase</p>{<x1><y1><x2><y2>|<θ>}`` (relative, 0..100).

    Coordinates are percentages of the side (``x * width / 100``); θ is in degrees and
    may be missing (``{<10><20><30><40>}``: axis-aligned). Several boxes may follow one
    phrase (``{...}{...}``) and share its label.

    Rotated boxes become polygons: the box is scaled to pixels first (so it stays a
    rectangle on a non-square image), then its corners are rotated about its centre with
    ``[[cos θ, -sin θ], [sin θ, cos θ]]`` in image ``(col, row)`` coordinates — the
    matrix GeoChat's own demo (``bbox_and_angle_to_polygon``) uses. Rows grow downwards,
    so a **positive θ turns the box clockwise as seen on screen**. θ = 0 (or a multiple
    of 360) gives a plain ``box`` detection.

    Examples
    --------
    >>> d, = parse_geochat("<p>the airplane</p>{<10><20><30><40>|<0>}", (500, 500))
    >>> d.label, d.kind, d.geometry.bounds
    ('the airplane', 'box', (50.0, 100.0, 150.0, 200.0))
    >>> d, = parse_geochat("{<40><40><60><50>|<90>}", (100, 100))
    >>> d.kind, [round(v, 6) for v in d.geometry.bounds]
    ('polygon', [45.0, 35.0, 55.0, 55.0])
    """
    size = _check_size(image_size)
    w, h = size
    return _guard(
        "geochat",
        _parse_geochat,
        text,
        _Builder("geochat", size, label, lambda v: v * w / 100.0, lambda v: v * h / 100.0),
    )


# -- plain lists ------------------------------------------------------------------------------
def _parse_plain(text: Any, relative: float | None, b: _Builder) -> list[Detection]:
    text = _as_text(text, b.fmt)
    if text is None:
        return []
    leaves = _leaves(text, b)
    if not leaves:
        if not re.fullmatch(r"\s*\[\s*\]\s*", text):
            _nothing(b, text)
        return b.out
    scale = relative
    if scale is None:
        vals = [v for leaf in leaves for v in leaf if math.isfinite(v)]
        if vals and all(0.0 <= v <= 1.0 for v in vals) and any(v != int(v) for v in vals):
            scale = 1.0
    if scale is not None:
        b.mapx = lambda v: v * b.w / scale
        b.mapy = lambda v: v * b.h / scale
    _add_leaves(leaves, b, "item")
    return b.out


def parse_boxes(
    text: str, image_size: tuple[int, int], label: str | None = None, relative: float | None = None
) -> list[Detection]:
    """Detections from plain number lists: ``[x1, y1, x2, y2]``, lists of them, points.

    Every innermost bracketed list of numbers is read: four numbers are a box, two
    (``(x, y)`` or ``[x, y]``) a point; anything else is dropped with a warning.

    Parameters
    ----------
    relative : float, optional
        The coordinate scale: ``1000`` for 0..1000, ``100`` for percentages, ``1`` for
        fractions (``x * width / relative``). ``None``: pixels of the image — unless every
        coordinate lies in [0, 1] and one has a fractional part, in which case they are
        read as fractions (a sub-pixel box would make no sense).

    Examples
    --------
    >>> [d.geometry.bounds for d in parse_boxes("boxes: [[1, 2, 3, 4], [5, 6, 7, 8]]", (10, 10))]
    [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    >>> d, = parse_boxes("[0.1, 0.2, 0.5, 0.6]", (200, 100)); d.geometry.bounds
    (20.0, 20.0, 100.0, 60.0)
    >>> d, = parse_boxes("the well is at (120, 40)", (256, 256)); d.kind, d.geometry.wkt
    ('point', 'POINT (120 40)')
    """
    size = _check_size(image_size)
    if relative is not None:
        try:
            relative = float(relative)
        except (TypeError, ValueError):
            raise InputError(f"relative must be a positive number or None, got {relative!r}") from None
        if not (math.isfinite(relative) and relative > 0):
            raise InputError(f"relative must be a positive number or None, got {relative!r}")
    return _guard("plain", _parse_plain, text, relative, _Builder("plain", size, label))


# ---------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------
_PARSERS: dict[str, Callable[..., list[Detection]]] = {
    "qwen2.5": parse_qwen25,
    "qwen2": parse_qwen2_boxes,
    "qwen3": parse_qwen3,
    "remotereasoner": parse_remotereasoner,
    "florence": parse_florence,
    "geochat": parse_geochat,
    "plain": parse_boxes,
}
_ALIASES = {
    "qwen25": "qwen2.5",
    "qwen2_5": "qwen2.5",
    "qwen2-5": "qwen2.5",
    "florence2": "florence",
    "florence-2": "florence",
    "remote-reasoner": "remotereasoner",
    "remote_reasoner": "remotereasoner",
    "boxes": "plain",
    "json": "plain",
}


def normalize_format(fmt: str) -> str:
    """The canonical name of an output format (one of :data:`FORMATS`).

    Raises
    ------
    InputError
        ``fmt`` names no known format.

    Examples
    --------
    >>> normalize_format("Qwen2.5-VL"), normalize_format("florence-2"), normalize_format("qwen3_vl")
    ('qwen2.5', 'florence', 'qwen3')
    """
    f = str(fmt).strip().lower()
    for suffix in ("-vl", "_vl", "vl"):
        if f.endswith(suffix) and f != suffix:
            f = f[: -len(suffix)]
            break
    f = _ALIASES.get(f, f)
    if f not in FORMATS:
        raise InputError(f"unknown model output format {fmt!r}; known: {', '.join(FORMATS)}")
    return f


_norm_format = normalize_format  # the name other modules imported first


def detect_format(text: str | Mapping) -> str:
    """Guess the output format of a model answer (one of :data:`FORMATS` but ``auto``).

    JSON with ``bbox_2d``/``point_2d`` is taken for Qwen2.5-VL (absolute pixels); name
    ``qwen3`` explicitly for Qwen3-VL's 0..1000 coordinates, which look the same.

    Examples
    --------
    >>> detect_format('[{"bbox_2d": [1, 2, 3, 4]}]'), detect_format("car<loc_1><loc_2><loc_3><loc_4>")
    ('qwen2.5', 'florence')
    >>> detect_format("<p>a ship</p>{<1><2><3><4>|<30>}"), detect_format("[1, 2, 3, 4]")
    ('geochat', 'plain')
    """
    if isinstance(text, Mapping):
        return "florence"
    if not isinstance(text, str):
        return "plain"
    if "<|box_start|>" in text or "<|object_ref_start|>" in text:
        return "qwen2"
    if "<loc_" in text:
        return "florence"
    if re.search(r"</?answer>|</?think>", text, re.IGNORECASE):
        return "remotereasoner"
    if re.search(r"bbox_2d|point_2d", text):
        return "qwen2.5"
    if "<p>" in text or re.search(r"\{\s*<\s*[-+.\d]", text):
        return "geochat"
    return "plain"


def _guess_florence_task(text: Any) -> str:
    if isinstance(text, Mapping):
        for k in text:
            if isinstance(k, str) and k.strip().upper() in FLORENCE_TASKS:
                return k.strip().upper()
        return "<OD>"
    s = str(text)
    if "<poly>" in s or "<sep>" in s:
        return "<REFERRING_EXPRESSION_SEGMENTATION>"
    words = re.sub(r"<[^<>]*>", "", s).strip()
    if not words and len(re.findall(r"<loc_\d+>", s)) > 4:
        return "<REFERRING_EXPRESSION_SEGMENTATION>"
    return "<OD>"


def parse_output(text: str | Mapping, fmt: str, image_size: tuple[int, int], **kw: Any) -> list[Detection]:
    """Parse a model answer by format name; ``fmt="auto"`` detects the format.

    ``fmt`` is one of ``qwen2.5``, ``qwen2``, ``qwen3``, ``remotereasoner``, ``florence``,
    ``geochat``, ``plain`` (also ``Qwen2.5-VL``, ``florence-2``, ...) or ``auto``
    (:func:`detect_format`). ``kw`` goes to the parser: ``label``, ``input_size``
    (Qwen2.5-VL), ``task`` (Florence-2; guessed when ``auto`` and not given),
    ``relative`` (plain). With ``auto``, keywords the detected parser does not take are
    ignored.

    Examples
    --------
    >>> [d.geometry.bounds for d in parse_output("<answer>[5, 5, 20, 30]</answer>", "auto", (64, 64))]
    [(5.0, 5.0, 20.0, 30.0)]
    """
    name = normalize_format(fmt)
    auto = name == "auto"
    if auto:
        name = detect_format(text)
    parser = _PARSERS[name]
    if name == "florence":
        task = kw.pop("task", None) or _guess_florence_task(text)
        kw["task"] = task
    if auto:
        accepted = set(inspect.signature(parser).parameters)
        kw = {k: v for k, v in kw.items() if k in accepted}
    if name == "florence":
        task = kw.pop("task")
        return parser(text, task, image_size, **kw)
    return parser(text, image_size, **kw)
