"""Scoring answers against expected values, grounding against truth, and summary tables.

* :func:`combine` turns the answers to a question's template ``asks`` into one value
  (qualitative distance questions are asked as distances and compared here).
* :func:`score` marks one answer: metric answers by relative error (bearing: angular error
  over 360 degrees), a metric answer within 1% counts as correct; counts, booleans,
  categories and choices exactly; object answers by id (truth objects) or by IoU >= 0.5 of
  the answered object's geometry with the expected one (grounded objects); questions whose
  right answer is an abstention are correct only when abstained.
* :func:`summarise` groups scored rows by any keys: accuracy, answered share, median/max
  relative error of metric answers, abstention precision and recall.
* :func:`detection_metrics` (instances: precision/recall/F1 at IoU 0.5, greedy one-to-one
  matching by descending IoU) and :func:`cover_iou` (cover: area IoU of the unions, which is
  the pixel IoU when both follow the raster grid).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "METRIC_TOLERANCE",
    "combine",
    "score",
    "summarise",
    "detection_metrics",
    "cover_iou",
    "parse_free_text",
]

#: A metric answer within this relative error counts as correct.
METRIC_TOLERANCE = 0.01


def combine(how: str, values: Sequence[Any]) -> Any:
    """One answer value from the values of a question's ``asks``.

    Examples
    --------
    >>> combine("closer", [120.0, 80.0]), combine("within:100", [99.0]), combine("beyond:100", [99.0])
    ('second', True, False)
    """
    if how == "single":
        return values[0]
    if how == "closer":
        a, b = float(values[0]), float(values[1])
        return "first" if a < b else "second"
    task, _, d = how.partition(":")
    v = float(values[0])
    return v <= float(d) if task == "within" else v > float(d)


def _rel_err(got: float, want: float, unit: str | None) -> float:
    if unit == "deg":
        return abs(((got - want + 180.0) % 360.0) - 180.0) / 360.0
    if want == 0:
        return abs(got)
    return abs(got - want) / abs(want)


def score(
    q: Mapping[str, Any],
    value: Any,
    abstained: bool,
    answered_geometry: BaseGeometry | None = None,
    answered_px_box: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Score one answer to question ``q`` (an :class:`EvalQuestion` as a dict).

    Returns ``{"correct", "abstained", "answerable", "rel_err"}`` (``rel_err`` for metric
    answers only).
    """
    kind = q["kind"]
    answerable = kind != "abstain"
    out: dict[str, Any] = {"abstained": bool(abstained), "answerable": answerable, "rel_err": None}
    if not answerable:
        out["correct"] = bool(abstained)
        return out
    if abstained or value is None:
        out["correct"] = False
        return out
    want = q["expected"]
    if kind == "metric":
        try:
            got = float(value)
        except (TypeError, ValueError):
            out["correct"] = False
            return out
        err = _rel_err(got, float(want), q.get("unit"))
        out["rel_err"] = err
        out["correct"] = bool(err <= METRIC_TOLERANCE)
    elif kind == "count":
        out["correct"] = _as_int(value) == int(want)
    elif kind == "boolean":
        out["correct"] = isinstance(value, bool) and value == bool(want)
    elif kind in ("categorical", "choice"):
        out["correct"] = str(value).strip().lower() == str(want).strip().lower()
    elif kind == "object":
        if answered_geometry is not None and q.get("expected_wkt"):
            out["correct"] = _iou(answered_geometry, shapely.from_wkt(q["expected_wkt"])) >= 0.5
        elif answered_px_box is not None and q.get("expected_px_box"):
            out["correct"] = _iou(shapely.box(*answered_px_box), shapely.box(*q["expected_px_box"])) >= 0.5
        else:
            out["correct"] = str(value) == str(want)
    else:
        out["correct"] = value == want
    return out


def _as_int(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f == int(f) else None


def _iou(a: BaseGeometry, b: BaseGeometry) -> float:
    u = shapely.union(a, b).area
    return float(shapely.intersection(a, b).area / u) if u > 0 else 0.0


def summarise(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Per group of ``keys``: n, accuracy, answered, median/max relative error, abstention P/R.

    Abstention precision: of the abstentions, the share on unanswerable questions;
    recall: of the unanswerable questions, the share abstained (``None`` where undefined).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        rs = groups[key]
        errs = [r["rel_err"] for r in rs if r.get("rel_err") is not None]
        abst = [r for r in rs if r["abstained"]]
        unans = [r for r in rs if not r["answerable"]]
        scored = [
            r for r in rs if r["kind"] in ("count", "boolean", "categorical", "choice", "object", "abstain")
        ]
        out.append(
            {
                **dict(zip(keys, key)),
                "n": len(rs),
                "accuracy": sum(r["correct"] for r in rs) / len(rs),
                "categorical_accuracy": (sum(r["correct"] for r in scored) / len(scored)) if scored else None,
                "answered": sum(not r["abstained"] for r in rs) / len(rs),
                "median_rel_err": statistics.median(errs) if errs else None,
                "max_rel_err": max(errs) if errs else None,
                "abstention_precision": (sum(not r["answerable"] for r in abst) / len(abst))
                if abst
                else None,
                "abstention_recall": (sum(r["abstained"] for r in unans) / len(unans)) if unans else None,
            }
        )
    return out


def detection_metrics(
    predicted: Sequence[BaseGeometry], truth: Sequence[BaseGeometry], iou: float = 0.5
) -> dict[str, Any]:
    """Precision, recall and F1 at IoU ``iou`` (one-to-one matches, greedy by descending IoU).

    Examples
    --------
    >>> t = [shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)]
    >>> p = [shapely.box(1, 0, 11, 10), shapely.box(50, 50, 60, 60)]
    >>> m = detection_metrics(p, t); (m["tp"], m["precision"], m["recall"])
    (1, 0.5, 0.5)
    """
    pairs = []
    if predicted and truth:
        tree = shapely.STRtree(list(truth))
        for i, g in enumerate(predicted):
            for j in tree.query(g, predicate="intersects"):
                v = _iou(g, truth[int(j)])
                if v >= iou:
                    pairs.append((v, i, int(j)))
    pairs.sort(reverse=True)
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    tp = len(used_p)
    p = tp / len(predicted) if predicted else (1.0 if not truth else 0.0)
    r = tp / len(truth) if truth else (1.0 if not predicted else 0.0)
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"tp": tp, "predicted": len(predicted), "truth": len(truth), "precision": p, "recall": r, "f1": f1}


def cover_iou(predicted: Sequence[BaseGeometry], truth: Sequence[BaseGeometry]) -> dict[str, Any]:
    """Area IoU of the union of predicted and of truth regions (same CRS).

    Examples
    --------
    >>> round(cover_iou([shapely.box(0, 0, 2, 1)], [shapely.box(1, 0, 3, 1)])["iou"], 4)
    0.3333
    """
    a = shapely.union_all(list(predicted)) if predicted else shapely.GeometryCollection()
    b = shapely.union_all(list(truth)) if truth else shapely.GeometryCollection()
    inter = shapely.intersection(a, b).area if not (a.is_empty or b.is_empty) else 0.0
    union = shapely.union(a, b).area if not (a.is_empty and b.is_empty) else 0.0
    return {
        "iou": inter / union if union > 0 else (1.0 if a.is_empty and b.is_empty else 0.0),
        "predicted_area": float(a.area),
        "truth_area": float(b.area),
    }


_REFUSALS = (
    "cannot answer",
    "can't answer",
    "cannot be answered",
    "not possible to",
    "unable to",
    "no such",
    "not visible",
    "cannot determine",
    "there is no",
    "there are no",
)


def parse_free_text(text: str, q: Mapping[str, Any]) -> tuple[Any, bool, list[float] | None]:
    """A VLM's free-text answer as ``(value, abstained, pixel box)`` for question ``q``.

    Numbers take a unit written after them (``2.5 km`` for a question in metres is 2500);
    yes/no, compass names, relation names, ``first``/``second`` and a pixel box
    ``[x0, y0, x1, y1]`` are recognised; an explicit refusal is an abstention.

    Examples
    --------
    >>> parse_free_text("About 2.5 km.", {"kind": "metric", "unit": "m"})[0]
    2500.0
    >>> parse_free_text("Yes, it is.", {"kind": "boolean"})[0]
    True
    """
    t = " ".join(str(text).split())
    low = t.lower()
    if any(r in low for r in _REFUSALS):
        return None, True, None
    kind = q["kind"]
    if kind in ("metric", "count"):
        m = re.search(
            r"(-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*"
            r"(km2|m2|km|ha|hectares|kilomet(?:er|re)s|met(?:er|re)s|m|degrees|deg|°)?",
            t,
        )
        if not m:
            return None, False, None
        num = float(m.group(1).replace(",", ""))
        unit = (m.group(2) or "").lower()
        if kind == "metric" and unit:
            want = q.get("unit")
            if want == "m" and unit in ("km", "kilometers", "kilometres"):
                num *= 1000.0
            elif want == "ha" and unit in ("m2",):
                num *= 1e-4
            elif want == "ha" and unit == "km2":
                num *= 100.0
        return (num if kind == "metric" else int(round(num))), False, None
    if kind in ("boolean",):
        if re.search(r"\byes\b|\btrue\b", low):
            return True, False, None
        if re.search(r"\bno\b|\bfalse\b", low):
            return False, False, None
        return None, False, None
    if kind == "choice":
        for w in ("first", "second"):
            if re.search(rf"\b{w}\b", low):
                return w, False, None
        return None, False, None
    if kind == "categorical":
        from georeason.geo.evaluation.truth import COMPASS8

        words = {
            "north": "N",
            "south": "S",
            "east": "E",
            "west": "W",
            "northeast": "NE",
            "north-east": "NE",
            "northwest": "NW",
            "north-west": "NW",
            "southeast": "SE",
            "south-east": "SE",
            "southwest": "SW",
            "south-west": "SW",
        }
        for tok in re.findall(r"[a-z\-]+|[A-Z]{1,3}", t):
            if tok in COMPASS8:
                return tok, False, None
            if tok.lower() in words:
                return words[tok.lower()], False, None
            if tok.lower() in (
                "equals",
                "within",
                "contains",
                "overlaps",
                "crosses",
                "touches",
                "intersects",
                "disjoint",
            ):
                return tok.lower(), False, None
        return None, False, None
    if kind == "object":
        nums = [float(x.replace(",", "")) for x in re.findall(r"-?\d+(?:\.\d+)?", t)]
        if len(nums) >= 4:
            box = nums[:4]
            return (
                "box",
                False,
                [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])],
            )
        return None, False, None
    if kind == "abstain":
        return t, False, None
    return t, False, None
