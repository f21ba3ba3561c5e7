"""Shared machinery of the output formats: the pixel builder, lenient JSON, number lists.

Every parser maps model coordinates to pixels of the *original* tile image through a
:class:`Builder`, which repairs or drops (never silently shifts) what cannot be used and
says so with a :class:`~georeason.errors.ParseWarning`. Nothing here raises on model text.
"""

from __future__ import annotations

import ast
import json
import math
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError
from georeason.geo.grounding.detections import Detection
from georeason.models.parsenotes import parse_warning

__all__ = [
    "NUM",
    "NUM_RE",
    "Builder",
    "warn",
    "fmt_values",
    "short",
    "check_size",
    "num",
    "as_text",
    "guard",
    "nothing",
    "strip_fences",
    "loads",
    "json_items",
    "json_objects",
    "key",
    "label_of",
    "is_numbers",
    "find_leaves",
    "add_leaves",
    "parse_json_grounding",
]

NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
NUM_RE = re.compile(NUM, re.IGNORECASE)
LEAF_RE = re.compile(rf"[\[(]\s*((?:{NUM})(?:\s*,\s*(?:{NUM}))*)\s*,?\s*[\])]", re.IGNORECASE)
OPEN_LEAF_RE = re.compile(rf"[\[(]\s*(?:{NUM})(?:\s*,\s*(?:{NUM}))*\s*,?\s*$", re.IGNORECASE)

BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box", "bbox2d")
POINT_KEYS = ("point_2d", "point", "point2d")
#: Keys models put an object's name under (``names`` may be ``{"en": ..}``), in order.
LABEL_KEYS = (
    "label",
    "name",
    "name_en",
    "names",
    "category",
    "class",
    "object",
    "object_name",
    "ref",
    "phrase",
    "text",
    "text_content",
    "description",
)
SCORE_KEYS = ("score", "confidence", "conf", "probability", "prob")

# An edge this close to the image border (in pixels) is on it: no "clipped" warning.
EPS = 1e-6


def warn(message: str) -> None:
    parse_warning(message, stacklevel=2)


def fmt_values(values: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def check_size(image_size: Any) -> tuple[int, int]:
    try:
        w, h = image_size
        ok = all(float(v) == int(v) and int(v) > 0 for v in (w, h))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InputError(f"image_size must be (width, height) in positive whole pixels, got {image_size!r}")
    return int(w), int(h)


def num(value: Any) -> float | None:
    """A number from a JSON value (numbers or numeric strings; not booleans)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):  # int, float, numpy scalars
        return float(value)
    if isinstance(value, str) and NUM_RE.fullmatch(value.strip()):
        return float(value.strip())
    return None


def as_text(text: Any, fmt: str) -> str | None:
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    if isinstance(text, str):
        return text
    warn(f"{fmt}: expected the model's text, got {type(text).__name__}; nothing parsed")
    return None


class Builder:
    """Collects detections of one parse, mapping model coordinates to image pixels."""

    def __init__(
        self,
        fmt: str,
        size: tuple[int, int],
        label: str | None,
        mapx: Callable[[float], float] | None = None,
        mapy: Callable[[float], float] | None = None,
        limit: float | None = None,
    ):
        self.fmt = fmt
        #: Largest value the format can emit (999 on a 0-999 grid); beyond it (or below 0)
        #: a coordinate is impossible and its box is dropped, never clipped.
        self.limit = limit
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
        s = num(value)
        if s is None or not math.isfinite(s):
            self.warn(f"{where}: unusable score {value!r}; used 1.0")
            return 1.0
        if not 0.0 <= s <= 1.0:
            self.warn(f"{where}: score {s:g} outside [0, 1]; clipped")
            s = min(max(s, 0.0), 1.0)
        return s

    def warn(self, message: str) -> None:
        warn(f"{self.fmt}: {message}")

    def impossible(self, vals: Sequence[float], where: str, what: str) -> bool:
        """Warn and say True when a value lies off the format's grid (``0..limit``)."""
        if self.limit is None:
            return False
        bad = [v for v in vals if v < 0 or v > self.limit]
        if bad:
            self.warn(
                f"{where}: dropped {what} {fmt_values(vals)}: impossible value {fmt_values(bad)[1:-1]} "
                f"on a 0-{self.limit:g} scale"
            )
            return True
        return False

    # -- geometries -----------------------------------------------------------------
    def box(
        self, raw: Sequence[Any], where: str, label: Any = None, score: float = 1.0, mapped: bool = False
    ) -> None:
        """Add a box from four model numbers ``x1, y1, x2, y2`` (``mapped``: already pixels)."""
        got = [num(v) for v in raw]
        vals = [v for v in got if v is not None]
        if len(got) != 4 or len(vals) != 4:
            self.warn(f"{where}: dropped box {list(raw)!r}: expected 4 numbers x1, y1, x2, y2")
            return
        if not all(math.isfinite(v) for v in vals):
            self.warn(f"{where}: dropped box {fmt_values(vals)}: non-finite coordinate")
            return
        if not mapped and self.impossible(vals, where, "box"):
            return
        x1, y1, x2, y2 = (
            vals
            if mapped
            else (self.mapx(vals[0]), self.mapy(vals[1]), self.mapx(vals[2]), self.mapy(vals[3]))
        )
        if x2 < x1 or y2 < y1:
            self.warn(f"{where}: box {fmt_values(vals)} has swapped corners; reordered them")
            x1, x2 = min(x1, x2), max(x1, x2)
            y1, y2 = min(y1, y2), max(y1, y2)
        if not (x2 - x1) * (y2 - y1) > 0:
            self.warn(f"{where}: dropped box {fmt_values(vals)}: zero area")
            return
        cx1, cy1 = min(max(x1, 0.0), self.w), min(max(y1, 0.0), self.h)
        cx2, cy2 = min(max(x2, 0.0), self.w), min(max(y2, 0.0), self.h)
        if not (cx2 - cx1) * (cy2 - cy1) > 0:
            self.warn(f"{where}: dropped box {fmt_values(vals)}: outside the {self.w}x{self.h} image")
            return
        if max(abs(cx1 - x1), abs(cy1 - y1), abs(cx2 - x2), abs(cy2 - y2)) > EPS:
            self.warn(f"{where}: box {fmt_values(vals)} extends outside the {self.w}x{self.h} image; clipped")
        self.out.append(Detection(self.label(label), score, "box", shapely.box(cx1, cy1, cx2, cy2)))

    def point(
        self, raw: Sequence[Any], where: str, label: Any = None, score: float = 1.0, mapped: bool = False
    ) -> None:
        got = [num(v) for v in raw]
        vals = [v for v in got if v is not None]
        if len(got) != 2 or len(vals) != 2:
            self.warn(f"{where}: dropped point {list(raw)!r}: expected 2 numbers x, y")
            return
        if not all(math.isfinite(v) for v in vals):
            self.warn(f"{where}: dropped point {fmt_values(vals)}: non-finite coordinate")
            return
        if not mapped and self.impossible(vals, where, "point"):
            return
        x, y = vals if mapped else (self.mapx(vals[0]), self.mapy(vals[1]))
        if not (-EPS <= x <= self.w + EPS and -EPS <= y <= self.h + EPS):
            self.warn(f"{where}: dropped point {fmt_values(vals)}: outside the {self.w}x{self.h} image")
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
            got = [num(v) for v in ring] if isinstance(ring, (list, tuple)) else [None]
            vals = [v for v in got if v is not None]
            if len(vals) != len(got):
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
            poly = polygonal(poly)
            if poly.is_empty or poly.area <= 0:
                self.warn(f"{tag}: dropped polygon: zero area")
                continue
            clipped = polygonal(shapely.clip_by_rect(poly, 0, 0, self.w, self.h))
            if clipped.is_empty or clipped.area <= 0:
                self.warn(f"{tag}: dropped polygon: outside the {self.w}x{self.h} image")
                continue
            if poly.area - clipped.area > EPS * max(1.0, poly.area):
                self.warn(f"{tag}: polygon extends outside the {self.w}x{self.h} image; clipped")
            parts.append(clipped)
        if not parts:
            return
        geom = parts[0] if len(parts) == 1 else polygonal(shapely.union_all(parts))
        self.out.append(Detection(self.label(label), score, "polygon", geom))


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (drops lines/points make_valid or clipping leave)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        return shapely.Polygon()
    out = shapely.union_all(polys)
    return out if out.geom_type in ("Polygon", "MultiPolygon") else shapely.Polygon()


def guard(fmt: str, fn: Callable[..., list[Detection]], *args: Any) -> list[Detection]:
    """Run a parser body; an unexpected error becomes a ParseWarning (parsers never raise)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise on model text"
        warn(
            f"{fmt}: unexpected error while parsing the model output ({type(exc).__name__}: {exc}); "
            "dropped it all (please report this as a parser bug)"
        )
        return []


def nothing(b: Builder, text: str) -> None:
    if not text.strip():
        b.warn("empty model output; no detections")
    else:
        b.warn(f"no grounding found in the model output {short(text)}")


# ---------------------------------------------------------------------------------------
# Lenient JSON
# ---------------------------------------------------------------------------------------
FENCE_RE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|$)", re.DOTALL)


def strip_fences(text: str) -> str:
    if "```" not in text:
        return text
    blocks = [m.group(1) for m in FENCE_RE.finditer(text)]
    return "\n".join(blocks)


def relax(s: str) -> str:
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


def loads(s: str) -> Any:
    """Parse JSON, else near-JSON (:func:`relax`), else a Python literal; ValueError if none."""
    for attempt in (lambda: s, lambda: relax(s)):
        try:
            return json.loads(attempt())
        except (ValueError, RecursionError):
            continue
    try:
        # the compiler behind literal_eval warns (SyntaxWarning) on junk such as "0inf"; the
        # text is model output, not code, so those warnings say nothing to the user
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(s)
    except Exception:  # noqa: BLE001 - literal_eval raises many kinds on junk
        raise ValueError("not JSON") from None


def object_spans(text: str) -> tuple[list[str], int]:
    """Top-level ``{...}`` spans of ``text`` and where a last one was left open (-1: none)."""
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
    return spans, (start if depth > 0 else -1)


def _has_grounding(obj: Any) -> bool:
    return isinstance(obj, dict) and (key(obj, BOX_KEYS) is not None or key(obj, POINT_KEYS) is not None)


def _recover(text: str, b: Builder, depth: int = 0) -> tuple[list[Any], bool]:
    """Every whole ``{...}`` object of ``text``, one by one, skipping stray braces.

    A span that does not parse (e.g. a stray ``{`` swallowed the objects after it) is
    searched again without its opening brace, so the whole objects inside still count;
    an object left open at the end is searched the same way, then reported as truncated.
    """
    spans, open_at = object_spans(text)
    items: list[Any] = []
    for span in spans:
        try:
            items.append(loads(span))
            continue
        except ValueError:
            pass
        inner, _ = _recover(span[1:], b, depth + 1) if depth < 50 else ([], False)
        inner = [o for o in inner if _has_grounding(o)]
        if inner:
            b.warn(f"skipped a stray '{{' and recovered the {len(inner)} whole object(s) after it")
            items.extend(inner)
        else:
            b.warn(f"dropped unparseable object {short(span)}")
    truncated = False
    if open_at >= 0:
        tail = text[open_at + 1 :]
        inner, truncated = _recover(tail, b, depth + 1) if depth < 50 else ([], True)
        inner = [o for o in inner if _has_grounding(o)]
        if inner:
            if depth == 0:
                b.warn(f"skipped an unmatched '{{' and recovered the {len(inner)} whole object(s) after it")
            items.extend(inner)
        else:
            truncated = True
    return items, truncated


def json_items(text: str, b: Builder) -> list[Any] | None:
    """The JSON values of a model answer (a list's items, or objects found one by one).

    ``None`` when the text holds no JSON object or list at all.
    """
    body = strip_fences(text).strip()
    if not body:
        return None
    try:
        value = loads(body)
    except ValueError:
        value = None
    else:
        if is_numbers(value, 4) or is_numbers(value, 2):
            return [value]
        if isinstance(value, list):
            return value
        if isinstance(value, dict):
            return [value]
    if "{" not in body:
        return None
    items, truncated = _recover(body, b)
    if truncated:
        open_at = object_spans(body)[1]
        cut = f", dropped the unfinished {short(body[open_at:], 80)}" if open_at >= 0 else ""
        b.warn(f"output is truncated; kept the {len(items)} complete object(s) before the cut{cut}")
    if not items and not truncated and not object_spans(body)[0]:
        return None
    return items


def key(d: Mapping, names: Sequence[str]) -> Any:
    lower = {str(k).lower(): v for k, v in d.items()}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def label_of(item: Mapping) -> Any:
    """The object's name under any key models use (``label``, ``name_en``, ``names.en``, ...)."""
    for name in LABEL_KEYS:
        value = key(item, (name,))
        if isinstance(value, Mapping):  # {"names": {"en": "car", "zh": ...}}
            value = value.get("en") or next(
                (v for v in value.values() if isinstance(v, str) and v.strip()), None
            )
        if isinstance(value, str) and value.strip():
            return value
    return None


def is_numbers(v: Any, n: int) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) == n
        and all(not isinstance(x, (list, tuple, dict)) for x in v)
    )


def json_objects(items: list[Any], b: Builder, where: str = "item") -> None:
    for k, item in enumerate(items, 1):
        tag = f"{where} {k}"
        if isinstance(item, dict):
            box, point = key(item, BOX_KEYS), key(item, POINT_KEYS)
            label = label_of(item)
            score = b.score(key(item, SCORE_KEYS), tag)
            if box is None and point is None:
                nested = [
                    v
                    for v in item.values()
                    if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, dict) for x in v))
                ]
                if nested:
                    for v in nested:
                        json_objects(v if isinstance(v, list) else [v], b, f"{tag} /")
                else:
                    b.warn(f"{tag}: dropped {short(json.dumps(item, default=str))}: no bbox_2d or point_2d")
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
        elif is_numbers(item, 4):
            b.box(item, tag)
        elif is_numbers(item, 2):
            b.point(item, tag)
        elif isinstance(item, list) and item and all(isinstance(x, (list, dict)) for x in item):
            json_objects(item, b, f"{tag} /")
        else:
            b.warn(f"{tag}: dropped {short(repr(item))}: not a grounding object")


def find_leaves(text: str, b: Builder, where: str = "list") -> list[list[float]]:
    """Innermost bracketed number lists ``[..]`` / ``(..)`` of a text, in order."""
    leaves = [[float(v) for v in NUM_RE.findall(m.group(1))] for m in LEAF_RE.finditer(text)]
    tail = text[max(text.rfind("]"), text.rfind(")")) + 1 :]
    if OPEN_LEAF_RE.search(tail.rstrip()):
        b.warn(f"output is truncated inside a {where}; dropped the incomplete {short(tail.strip()[-40:])}")
    return leaves


def add_leaves(leaves: list[list[float]], b: Builder, where: str = "list") -> None:
    for k, leaf in enumerate(leaves, 1):
        if len(leaf) == 4:
            b.box(leaf, f"{where} {k}")
        elif len(leaf) == 2:
            b.point(leaf, f"{where} {k}")
        else:
            b.warn(f"{where} {k}: dropped {fmt_values(leaf)}: expected 4 numbers (box) or 2 (point)")


def parse_json_grounding(text: Any, b: Builder) -> list[Detection]:
    text = as_text(text, b.fmt)
    if text is None:
        return []
    items = json_items(text, b)
    if items is None:
        leaves = find_leaves(strip_fences(text), b)
        if leaves:
            add_leaves(leaves, b)
        else:
            nothing(b, text)
        return b.out
    json_objects(items, b)
    return b.out
