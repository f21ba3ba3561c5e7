"""What a grounder can see: instances vs cover, band and resolution fitness, confidence.

Grounding that knows what it cannot see:

* **Instances or cover.** A grounder declares, per class, whether it finds *instances*
  (countable objects with extents: a building, a tree crown, a ship) or *cover* (land-cover
  area: vegetation, water, built-up). :func:`class_extent` is that declaration. Operations
  that need instances (count, nearest/farthest, largest, "which", "the ...") on a cover
  class abstain (:mod:`georeason.geo.language.executor` reads the ``extent`` attribute of
  the objects) with a reason naming the fix: an instance grounder (a detector or VLM backend).

  Spectral grounder decisions: water, vegetation (so trees, forest, grass), bare soil and
  built-up/urban are **cover**. Water asked for as a *water body* (lake, pond, reservoir,
  lagoon, river, canal, ...) is an **instance**: a lake *is* a connected water body, so a
  connected component of water pixels is the object (two lakes joined by a channel are one
  water body, which is what the word means on the map). Buildings (building, house, roof)
  are instances: isolated bright roofs; adjacent roofs merge into one object, which the
  ground-sample-distance check below and the confidence summary make visible. Model
  grounders (boxes, polygons) find instances, except for the land-cover words in
  :data:`COVER_WORDS`.
* **Bands.** :func:`check_bands` refuses, before any grounding, a raster whose bands the
  grounder cannot use, with advice that works when followed (``--bands red,green,blue``
  for unnamed bands; a model grounder for a single-band image).
* **Resolution.** :data:`TYPICAL_SIZE_M` gives the typical smallest extent of common
  instance classes; an object class larger than a pixel only ``< 1`` times cannot be
  resolved (a building on 300 m pixels): answers about it abstain. Fewer than 4 pixels
  across lowers confidence.
* **Separation.** For spectral classes, the Otsu effectiveness of the index histogram
  (between-class over total variance, 1 for two spikes, ~0.64 for a uniform spread,
  lower for one mode) measures how bimodal the class/non-class split is; weak separation
  lowers confidence.
* **Confidence.** :func:`confidence_summary` combines the scores of the grounded objects an
  answer rests on with the fitness factors of their classes; :func:`apply_confidence` turns
  an answer below ``min_confidence`` into an abstention (the summary stays in
  ``details["confidence"]`` either way, so JSON and exports carry it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from georeason.errors import InputError
from georeason.geo.vector.classnames import class_forms

__all__ = [
    "raster_bands",
    "INSTANCE",
    "COVER",
    "COVER_WORDS",
    "TYPICAL_SIZE_M",
    "DEFAULT_MIN_CONFIDENCE",
    "ClassFitness",
    "class_extent",
    "check_bands",
    "parse_bands",
    "otsu_effectiveness",
    "assess",
    "annotate_scene",
    "confidence_summary",
    "grounded_index",
    "apply_confidence",
]

INSTANCE, COVER = "instance", "cover"
#: Answers whose confidence is below this abstain unless ``--min-confidence`` says otherwise.
DEFAULT_MIN_CONFIDENCE = 0.3
#: Land-cover words: a model grounder's regions for these are cover, not countable objects.
COVER_WORDS = frozenset(
    "water vegetation forest woodland grass grassland cropland crops bare soil sand built-up "
    "urban land cover canopy".split()
    + ["bare soil", "bare ground", "built up", "tree cover", "land cover"]
)
#: Typical smallest extent (metres) of instance classes: one pixel must not be larger.
TYPICAL_SIZE_M: Mapping[str, float] = {
    "building": 15.0,
    "house": 12.0,
    "roof": 12.0,
    "tree": 5.0,
    "tree crown": 5.0,
    "car": 4.5,
    "vehicle": 4.5,
    "ship": 30.0,
    "boat": 8.0,
    "pool": 8.0,
    "swimming pool": 8.0,
    "tank": 10.0,
    "storage tank": 10.0,
    "road": 6.0,
    "pond": 20.0,
    "lake": 60.0,
    "river": 20.0,
}
_WATER_BODIES = frozenset(
    "lake lakes pond ponds reservoir reservoirs lagoon lagoons basin basins river rivers stream "
    "streams canal canals creek creeks channel channels sea".split()
    + ["water body", "water bodies", "waterbody"]
)
_BUILDINGS = frozenset("building buildings house houses roof roofs".split())
_INSTANCE_FIX = (
    "an instance grounder: a detector or VLM backend (--grounder qwen2.5-vl, florence-2, owlv2, "
    "grounding-dino or remote --grounder-option base_url=URL), or recorded model boxes "
    "(--grounder recorded --outputs FILE)"
)


def _norm(label: str) -> str:
    return " ".join(str(label).replace("_", " ").replace("-", " ").lower().split())


def _singular(label: str) -> str:
    n = _norm(label)
    for cand in class_forms(n):  # as given, then its singular (inflect)
        if cand in TYPICAL_SIZE_M:
            return cand
    return n


def class_extent(grounder: str, label: str) -> tuple[str, str | None]:
    """``(INSTANCE or COVER, reason)``: what grounder ``grounder`` finds for class ``label``.

    The reason (``None`` for instances) says why counting or ranking the class would be a
    guess, and names the fix.

    Examples
    --------
    >>> class_extent("spectral", "trees")[0], class_extent("spectral", "lake")[0]
    ('cover', 'instance')
    >>> class_extent("recorded", "tree")[0], class_extent("remote", "vegetation")[0]
    ('instance', 'cover')
    """
    n = _norm(label)
    if grounder == "spectral" or grounder.startswith("logging-spectral"):
        from georeason.models.spectral import class_family

        fam = class_family(n)
        if fam in (None, "marker") or n in _WATER_BODIES or n in _BUILDINGS:
            return INSTANCE, None
        what = {
            "water": "water",
            "vegetation": "vegetation",
            "bright": "bright bare surfaces",
            "built": "built-up",
        }
        return COVER, (
            f"the spectral grounder finds {what.get(fam, fam)} cover (connected areas of an index "
            f"threshold), not individual {n} objects; counting, nearest/farthest, largest or 'which' "
            f"{n} needs {_INSTANCE_FIX}"
        )
    if n in COVER_WORDS:
        return COVER, (
            f"{n!r} is land cover: the {grounder} grounder's regions are areas, not countable objects; "
            "ask about its area, or ask for a countable class"
        )
    return INSTANCE, None


@dataclass(frozen=True)
class ClassFitness:
    """How fit a grounding of one class is: its extent, a confidence factor and notes.

    ``blocked`` is the reason every answer about the class must abstain (it cannot be
    resolved at this ground sample distance), else ``None``.
    """

    label: str
    extent: str
    factor: float = 1.0
    notes: tuple[str, ...] = ()
    blocked: str | None = None
    extent_reason: str | None = None
    separation: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.label,
            "extent": self.extent,
            "factor": round(self.factor, 4),
            "notes": list(self.notes),
            "blocked": self.blocked,
            "separation": None if self.separation is None else round(self.separation, 4),
        }


def parse_bands(
    text: str | Sequence[str] | None, count: int | None = None, where: str = "--bands"
) -> list[str] | None:
    """Band names from ``"red,green,blue"`` (or a list), checked against the band count.

    Examples
    --------
    >>> parse_bands("Red, green ,blue", 3)
    ['red', 'green', 'blue']
    """
    if text is None:
        return None
    items = text if not isinstance(text, str) else re.split(r"[,\s]+", text.strip().strip("[]"))
    names = [str(b).strip().strip("'\"").lower() for b in items if str(b).strip()]
    if not names:
        raise InputError(f"{where}: give band names separated by commas, e.g. --bands red,green,blue")
    if count is not None and len(names) != count:
        raise InputError(
            f"{where} gives {len(names)} names ({','.join(names)}) but the raster has {count} band(s); "
            "give one name per band, in band order, e.g. --bands "
            + ",".join(["red", "green", "blue", "nir"][:count] or ["gray"])
        )
    if len(set(names)) != len(names):
        raise InputError(f"{where}: band names must be unique, got {','.join(names)}")
    return names


def check_bands(grounder: str, classes: Iterable[str], bands: Sequence[str], raster: str) -> None:
    """Refuse, before grounding, a raster whose bands ``grounder`` cannot use for ``classes``.

    Raises :class:`~georeason.errors.InputError` with advice that works when followed.
    Model grounders read any image (one band is shown as grey); only the spectral grounder
    needs named bands.
    """
    if grounder != "spectral":
        return
    from georeason.models.spectral import band_roles, class_family, index_for

    roles = band_roles(bands)
    for c in classes:
        fam = class_family(c)
        if fam in (None, "marker"):
            continue
        try:
            index_for(fam, roles)
        except InputError:
            pass
        else:
            continue
        shown = ", ".join(bands)
        if len(bands) == 1:
            raise InputError(
                f"raster {raster} has 1 band ({shown}); the spectral grounder needs at least red, green and "
                f"blue (or nir) to find {c!r}, which a single-band (panchromatic) image cannot separate; "
                "use a model grounder that reads images, e.g. --grounder remote --grounder-option "
                "base_url=http://127.0.0.1:8000/v1 (or qwen2.5-vl --model-path DIR)"
            )
        unnamed = all(re.fullmatch(r"band\d+|gray|undefined", b) for b in bands)
        guess = (
            ",".join(["red", "green", "blue", "nir"][: len(bands)])
            if len(bands) <= 4
            else "red,green,blue,..."
        )
        if unnamed:
            raise InputError(
                f"raster {raster} has {len(bands)} unnamed bands ({shown}); the spectral grounder finds {c!r} "
                f"from named bands: pass --bands {guess} (one name per band, in the file's order) or write "
                "band descriptions into the file"
            )
        raise InputError(
            f"raster {raster} bands ({shown}) lack what {c!r} needs (blue and red, or green and nir, for water; "
            f"red, green and blue, or nir and red, for vegetation); if the names are wrong pass --bands {guess}"
        )


def otsu_effectiveness(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's effectiveness: max between-class variance over total variance, in [0, 1].

    1 for two separated spikes, about 0.75 for a uniform spread, lower for one bell.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> two = np.concatenate([rng.normal(0, 0.05, 500), rng.normal(1, 0.05, 500)])
    >>> otsu_effectiveness(two) > 0.95, otsu_effectiveness(rng.normal(0, 1, 1000)) < 0.7
    (True, True)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        return 0.0
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        return 0.0
    v = np.clip(v, lo, hi)
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    c = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    w0 = np.cumsum(p)
    m = np.cumsum(p * c)
    mt = m[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sb = np.where((w0 > 0) & (w0 < 1), (mt * w0 - m) ** 2 / (w0 * (1 - w0)), 0.0)
    st = float((p * (c - mt) ** 2).sum())
    return float(np.nanmax(sb) / st) if st > 0 else 0.0


def _gsd_m(raster: str) -> float:
    from georeason.geo.raster.io import raster_info

    w, h = raster_info(raster).res_m
    return float(max(w, h))


def assess(
    raster: str, grounder: str, classes: Iterable[str], bands: Sequence[str] | None = None
) -> dict[str, ClassFitness]:
    """Fitness of grounding each class on ``raster`` with ``grounder`` (keyed by class name)."""
    gsd = _gsd_m(raster)
    out: dict[str, ClassFitness] = {}
    spectral_idx: dict[str, tuple[str, float | None]] = {}
    if grounder == "spectral":
        spectral_idx = _separations(raster, list(bands) if bands else None)
    for c in classes:
        n = _norm(c)
        extent, reason = class_extent(grounder, n)
        notes: list[str] = [f"ground sample distance {gsd:.3g} m"]
        factor, blocked = 1.0, None
        size = TYPICAL_SIZE_M.get(_singular(n))
        if extent == INSTANCE and size is not None:
            px = size / gsd
            if px < 1:
                blocked = (
                    f"a {_singular(n)} (~{size:g} m across) is smaller than one {gsd:.3g} m pixel of {raster}: "
                    f"it cannot be resolved; use imagery with pixels of {size:g} m or finer"
                )
            elif px < 4:
                factor *= 0.75
                notes.append(
                    f"a {_singular(n)} (~{size:g} m) spans only {px:.1f} pixels: small ones are missed or merged"
                )
        sep = None
        if grounder == "spectral":
            from georeason.models.spectral import class_family

            fam = class_family(n)
            if fam not in (None, "marker"):
                key = "bright" if fam in ("bright", "built") else fam
                index, sep = spectral_idx.get(key, (None, None))
                if sep is not None:
                    if sep < 0.7:
                        f = max(0.3, (sep - 0.4) / 0.3) if sep > 0.4 else 0.3
                        factor *= f
                        notes.append(
                            f"weak class separation: {index} histogram Otsu effectiveness {sep:.2f} < 0.70 "
                            "(not clearly bimodal)"
                        )
                    else:
                        notes.append(f"{index} histogram Otsu effectiveness {sep:.2f} (bimodal)")
                if index == "vis_water":
                    notes.append(
                        "water from visible bands only (blue over red): dark deep water is weakly separated"
                    )
                    share = spectral_idx.get("dark_water", ("", None))[1]
                    if share is not None and share > MAX_AMBIGUOUS_SHARE:
                        blocked = (
                            f"the visible-band water index misses dark open water on {raster}: {100 * share:.0f}% "
                            f"of the valid pixels have a blue excess ((B-R)/(B+R) > {WEAK_BLUE_EXCESS}) typical of "
                            "deep or green water but below the fitted water threshold, so water areas, counts and "
                            "the largest water body would be wrong; use imagery with a near-infrared band (NDWI) "
                            "or a model grounder (--grounder remote or qwen2.5-vl)"
                        )
                if index == "exg":
                    share = spectral_idx.get("green_water", ("", None))[1]
                    if share is not None and share > MAX_AMBIGUOUS_SHARE:
                        blocked = (
                            "the visible-band vegetation index (excess green) also claims green shallow water on "
                            f"{raster}: {100 * share:.0f}% of the valid pixels are green with a blue excess "
                            f"((B-R)/(B+R) > {WEAK_BLUE_EXCESS}) typical of water, so vegetation areas would "
                            "include sea; use imagery with a near-infrared band (NDVI) or a model grounder"
                        )
        out[n] = ClassFitness(n, extent, float(factor), tuple(notes), blocked, reason, sep)
    return out


#: On visible-only imagery, a blue excess ``(B - R) / (B + R)`` above this, yet below the
#: fitted water threshold, is the signature of dark (deep) or green (shallow, turbid) water.
WEAK_BLUE_EXCESS = 0.1
#: Share of the valid pixels in that zone above which water/vegetation answers abstain.
MAX_AMBIGUOUS_SHARE = 0.05


def _separations(
    raster: str, bands: list[str] | None, max_px: int = 512
) -> dict[str, tuple[str, float | None]]:
    """Per spectral family: (index name, Otsu effectiveness on the pixels not claimed before).

    With visible bands only, two more entries: ``dark_water`` and ``green_water``, the share
    of valid pixels whose blue excess says water (> :data:`WEAK_BLUE_EXCESS`) while the
    water index does not find them (dark water) or the vegetation index claims them (green
    water); ``(name, share)``.
    """
    from georeason.geo.raster.io import as_dataset, band_names, decimated_shape, read_decimated
    from georeason.models.spectral import FAMILIES, band_roles, compute_index, index_for, otsu_threshold

    with as_dataset(raster) as src:
        names = list(bands) if bands else list(band_names(src))
        shape = decimated_shape(src, max_px)
        px = read_decimated(src, shape)  # = src.read(out_shape=..., masked=True, nearest), faster
    roles = band_roles(names)
    out: dict[str, tuple[str, float | None]] = {}
    claimed = np.zeros(px.shape[1:], bool)
    thresholds: dict[str, float] = {}
    for fam in FAMILIES:
        try:
            name = index_for(fam, roles)
        except InputError:
            continue
        idx = compute_index(name, px, roles)
        valid = ~np.ma.getmaskarray(idx) & ~claimed
        values = np.ma.getdata(idx)[valid]
        if values.size < 16:
            out[fam] = (name, None)
            continue
        out[fam] = (name, otsu_effectiveness(values))
        t = otsu_threshold(values)
        thresholds[name] = t
        claimed |= (np.ma.getdata(idx) > t) & ~np.ma.getmaskarray(idx)
    if "vis_water" in thresholds:
        vw = compute_index("vis_water", px, roles)
        ok = ~np.ma.getmaskarray(vw)
        v = np.ma.getdata(vw)
        n = max(int(ok.sum()), 1)
        weak = ok & (v > WEAK_BLUE_EXCESS) & (v <= thresholds["vis_water"])
        out["dark_water"] = ("vis_water", float(weak.sum() / n))
        if "exg" in thresholds:
            exg = compute_index("exg", px, roles)
            green = weak & (np.ma.getdata(exg) > thresholds["exg"]) & ~np.ma.getmaskarray(exg)
            out["green_water"] = ("exg", float(green.sum() / n))
    return out


def annotate_scene(scene: Any, fitness: Mapping[str, ClassFitness], grounder: str) -> None:
    """Write ``extent``/``extent_reason``/``fitness`` into the attrs of a scene's grounded objects.

    The executor reads ``extent`` (instance-needing operations on cover abstain with
    ``extent_reason``); :func:`confidence_summary` reads the rest.
    """
    for i, attrs in enumerate(scene.attrs):
        if attrs.get("source") != "grounded":
            continue
        label = str(scene.labels[i])
        fit = fitness.get(label) or next((fitness[s] for s in class_forms(label) if s in fitness), None)
        if fit is None:
            extent, reason = class_extent(grounder, label)
            fit = ClassFitness(label, extent, extent_reason=reason)
        attrs["extent"] = fit.extent
        if fit.extent_reason:
            attrs["extent_reason"] = fit.extent_reason
        attrs["fitness_factor"] = fit.factor
        attrs["fitness_notes"] = list(fit.notes)
        if fit.blocked:
            attrs["blocked"] = fit.blocked
        attrs["grounder"] = grounder


@dataclass
class _Summary:
    score: float
    evidence: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    blocked: str | None = None


def grounded_index(scene: Any) -> dict[str, int]:
    """Positions of the scene's grounded objects by id (what :func:`confidence_summary`
    looks evidence up in; compute it once for many answers about one scene)."""
    return {str(scene.ids[i]): i for i, a in enumerate(scene.attrs) if a.get("source") == "grounded"}


def confidence_summary(
    answer: Any,
    scene: Any,
    fitness: Mapping[str, ClassFitness] | None = None,
    grounded: Mapping[str, int] | None = None,
) -> dict[str, Any] | None:
    """The confidence of an answer that rests on grounded objects (``None`` if it rests on none).

    ``score`` = mean grounding score of the grounded evidence objects x the smallest
    fitness factor of the grounded classes the question selects; classes the question
    selects but nothing was found for count with their fitness factor alone.
    ``grounded`` is :func:`grounded_index` of the scene (computed here when not given).
    """
    if grounded is None:
        grounded = grounded_index(scene)
    if not grounded and not fitness:
        return None
    classes = _selected_classes(answer.query or [])
    fits = dict(fitness or {})
    used_fit = [fits[c] for c in classes if c in fits]
    ev = {e.id: grounded[e.id] for e in answer.evidence if e.id in grounded}
    if not ev and not used_fit:
        return None
    scores = {k: float(scene.scores[i]) for k, i in ev.items() if scene.scores[i] is not None}
    notes: list[str] = []
    factor = 1.0
    blocked = None
    for i in ev.values():
        a = scene.attrs[i]
        factor = min(factor, float(a.get("fitness_factor", 1.0)))
        blocked = blocked or a.get("blocked")
        for n in a.get("fitness_notes", []):
            if n not in notes:
                notes.append(n)
    for f in used_fit:
        factor = min(factor, f.factor)
        blocked = blocked or f.blocked
        for n in f.notes:
            if n not in notes:
                notes.append(n)
    mean = float(np.mean(list(scores.values()))) if scores else 1.0
    return {
        "score": round(mean * factor, 4),
        "evidence_score_mean": round(mean, 4),
        "evidence_scores": {k: round(v, 4) for k, v in list(scores.items())[:50]},
        "fitness_factor": round(factor, 4),
        "notes": notes,
        "blocked": blocked,
    }


def _selected_classes(query: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    for s in query:
        cls = (s.get("args") or {}).get("cls")
        if cls and s.get("op") in ("select", "at"):
            n = _norm(cls)
            out.append(n)
            if n.endswith("s"):
                out.append(n[:-1])
    return out


def apply_confidence(
    answer: Any,
    scene: Any,
    fitness: Mapping[str, ClassFitness] | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    grounded: Mapping[str, int] | None = None,
) -> Any:
    """Attach ``details["confidence"]``; abstain when it is below ``min_confidence`` or blocked.

    ``grounded``: :func:`grounded_index` of the scene, when many answers share it.
    """
    summary = confidence_summary(answer, scene, fitness, grounded)
    if summary is None:
        return answer
    answer.details = {**(answer.details or {}), "confidence": summary}
    if answer.abstained:
        return answer
    why = None
    if summary["blocked"]:
        why = summary["blocked"]
    elif summary["score"] < min_confidence:
        why = (
            f"confidence {summary['score']:.2f} < {min_confidence:.2f} (evidence score {summary['evidence_score_mean']:.2f} x "
            f"fitness {summary['fitness_factor']:.2f}: {'; '.join(summary['notes'][1:]) or 'low grounding scores'}); "
            "lower --min-confidence to answer anyway"
        )
    if why is not None:
        answer.details["abstained_value"] = answer.value
        answer.value, answer.abstained, answer.reason = None, True, why
    return answer


def confident_asker(
    ask: Callable[..., Any], scene: Any, fitness: Mapping[str, ClassFitness] | None, min_confidence: float
) -> Callable[..., Any]:
    """Wrap an ``ask(question, scene, ...)`` function so every answer passes :func:`apply_confidence`."""

    def wrapped(q: str, scn: Any, *args: Any, **kw: Any) -> Any:
        return apply_confidence(ask(q, scn, *args, **kw), scn, fitness, min_confidence)

    return wrapped


def raster_bands(
    raster: str, given: str | Sequence[str] | None = None, recorded: Sequence[str] = ()
) -> list[str]:
    """The raster's band names: ``--bands`` if given (checked against the band count), else the
    catalog's ``eo:bands``, else the file's descriptions / colour interpretation."""
    from georeason.geo.raster.io import as_dataset, band_names

    with as_dataset(raster) as src:
        count = src.count
        own = list(band_names(src))
    if given:
        return parse_bands(given, count) or own
    if recorded and len(recorded) == count:
        return [str(b).lower() for b in recorded]
    return own
