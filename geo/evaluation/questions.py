"""Questions in the EarthSpatialBench taxonomy, generated from a truth layer.

Categories (``category`` / ``task``):

* ``distance``: ``min`` and ``centroid`` (quantitative, metres); ``closer`` (which of two
  objects is closer to a third), ``within`` (is A within D of B?), ``beyond`` (is A more than
  D from B?) (qualitative);
* ``direction``: ``compass`` (8 points), ``bearing`` (degrees), ``yesno`` (is B north of A?);
* ``topology``: ``relation`` (the DE-9IM relation name), ``predicate`` (does A touch B?);
* ``group``: ``count`` (within D of a reference, inside a region), ``nearest``, ``farthest``,
  ``largest``, ``aggregate`` (total area of a class, inside a region);
* ``unanswerable``: ``absent`` (a class or object that is not there), ``ambiguous`` (a
  reference that fits several objects): the right answer is an abstention.

References (``ref_mode``): ``id`` (``#b12``), ``text`` (``the largest lake``, ``the river``),
``bbox`` / ``polygon`` (``the lake at [c0, r0, c1, r1] in pixels``), ``polyline`` (a pixel
polyline as a region), ``wkt`` (lon/lat WKT), ``overlay`` (a red box drawn on a copy of the
image: ``the marked region``).

Every question carries ``text`` (the question as a person or a VLM reads it) and ``asks``
(the questions georeason's current English templates answer, see README "Question forms"):
qualitative distance questions are asked as distances and compared by ``combine``.
Expected answers come from :class:`~georeason.geo.evaluation.truth.Truth` (pyproj/shapely),
never from the parser or the executor. Questions whose expected answer sits near a
decision threshold (a distance within 2% of D, two candidates within 2%, a bearing within
3 degrees of a sector edge) are not generated: a correct system must not be scored on a
coin flip of floating point.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from georeason.geo.evaluation.truth import COMPASS8, Truth, compass8, relation_name

__all__ = ["EvalQuestion", "TruthObject", "generate", "CATEGORIES", "REF_MODES"]

CATEGORIES = ("distance", "direction", "topology", "group", "unanswerable")
REF_MODES = ("id", "text", "bbox", "polygon", "polyline", "wkt", "overlay")
_ABSENT = ("ship", "airplane", "swimming pool", "tennis court", "wind turbine")
_PLURAL = {"building": "buildings", "tree": "trees", "lake": "lakes", "field": "fields", "road": "roads"}


@dataclass(frozen=True)
class TruthObject:
    """One truth object: id, class and geometry (in the truth CRS)."""

    id: str
    cls: str
    geometry: BaseGeometry


@dataclass
class EvalQuestion:
    """One generated question with its expected answer.

    ``kind``: ``metric`` (a number in ``unit``; ``bearing`` errors are angular), ``count``,
    ``boolean``, ``categorical``, ``object`` (an object; ``expected`` is its truth id and
    ``expected_wkt`` its geometry in the truth CRS, for matching grounded objects by IoU),
    ``choice`` (``first``/``second``) or ``abstain``.
    """

    qid: str
    category: str
    task: str
    ref_mode: str
    text: str
    asks: list[str]
    expected: Any
    kind: str
    unit: str | None = None
    combine: str = "single"
    expected_wkt: str | None = None
    expected_px_box: list[float] | None = None
    overlay_px: list[int] | None = None
    truth_ids: bool = False  # refers to truth objects by id (answerable only from the truth layer)
    answer_format: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _affine(t: Affine, xy: np.ndarray) -> np.ndarray:
    """Apply an affine transform to an (N, 2) coordinate array."""
    return np.column_stack([t.a * xy[:, 0] + t.b * xy[:, 1] + t.c, t.d * xy[:, 0] + t.e * xy[:, 1] + t.f])


def _plural(c: str) -> str:
    if c in _PLURAL:
        return _PLURAL[c]
    return c if c.endswith("s") else c + "s"


class _Gen:
    def __init__(
        self,
        objects: Sequence[TruthObject],
        truth: Truth,
        transform: Affine,
        shape: tuple[int, int],
        public_ids: set[str],
        rng: random.Random,
    ) -> None:
        self.o = list(objects)
        self.t = truth
        self.tf = transform
        self.inv = ~transform
        self.rows, self.cols = shape
        self.public = public_ids
        self.rng = rng
        self.by_cls: dict[str, list[int]] = defaultdict(list)
        for i, ob in enumerate(self.o):
            self.by_cls[ob.cls].append(i)
        self.areas = [truth.area_m2(ob.geometry) if ob.geometry.area > 0 else 0.0 for ob in self.o]
        self._dist: dict[tuple[int, int], float] = {}

    # -- measures ----------------------------------------------------------------------
    def g(self, i: int) -> BaseGeometry:
        return self.o[i].geometry

    def dist(self, i: int, j: int) -> float:
        k = (min(i, j), max(i, j))
        if k not in self._dist:
            self._dist[k] = self.t.distance_m(self.g(i), self.g(j))
        return self._dist[k]

    def px(self, g: BaseGeometry) -> BaseGeometry:
        inv = self.inv
        return shapely.transform(g, lambda xy: _affine(inv, xy))

    def world(self, g: BaseGeometry) -> BaseGeometry:
        tf = self.tf
        return shapely.transform(g, lambda xy: _affine(tf, xy))

    # -- references to one object -----------------------------------------------------
    def ref(self, i: int, mode: str) -> str | None:
        """How question text names object ``i`` in reference mode ``mode`` (None: not possible)."""
        ob = self.o[i]
        peers = self.by_cls[ob.cls]
        if mode == "id":
            return f"#{ob.id}"
        if mode == "text":
            if len(peers) == 1:
                return f"the {ob.cls}"
            if ob.geometry.area <= 0:
                return None
            areas = sorted((self.areas[j], j) for j in peers)
            if areas[-1][1] == i and areas[-1][0] > 1.05 * areas[-2][0]:
                return f"the largest {ob.cls}"
            if areas[0][1] == i and areas[0][0] < 0.95 * areas[1][0]:
                return f"the smallest {ob.cls}"
            return None
        if mode in ("bbox", "polygon", "wkt"):
            if ob.geometry.area <= 0:
                return None
            if mode == "wkt":
                hull = shapely.convex_hull(ob.geometry)
                g = hull
                txt = shapely.to_wkt(self.t.lonlat(g), rounding_precision=7)
                ref_geom = g
            else:
                pg = self.px(ob.geometry)
                if mode == "bbox":
                    x0, y0, x1, y1 = pg.bounds
                    b = [int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))]
                    txt = f"[{b[0]}, {b[1]}, {b[2]}, {b[3]}] in pixels"
                    ref_geom = self.world(shapely.box(*b))
                else:
                    ring = shapely.simplify(shapely.convex_hull(pg), 0.5)
                    coords = [[round(x, 1), round(y, 1)] for x, y in ring.exterior.coords[:-1]]
                    if len(coords) < 3 or len(coords) > 24:
                        return None
                    txt = "the polygon " + str(coords) + " in pixels"
                    ref_geom = self.world(shapely.Polygon(coords))
            # the geometry must pick this object (IoU >= 0.5, clearly the best of its class)
            ious = []
            for j in peers:
                gj = self.g(j)
                inter = shapely.intersection(gj, ref_geom).area
                union = shapely.union(gj, ref_geom).area
                ious.append((inter / union if union > 0 else 0.0, j))
            ious.sort(reverse=True)
            if ious[0][1] != i or ious[0][0] < 0.6 or (len(ious) > 1 and ious[1][0] > 0.3):
                return None
            return f"the {ob.cls} at {txt}"
        return None

    def any_ref(self, i: int, modes: Sequence[str]) -> tuple[str, str] | None:
        for m in modes:
            r = self.ref(i, m)
            if r is not None:
                return r, m
        return None

    def pick(self, pool: Sequence[int], k: int = 1) -> list[int]:
        return self.rng.sample(list(pool), k) if len(pool) >= k else []

    def polyline_px(self) -> list[list[int]]:
        n = self.rng.choice((2, 3))
        return [
            [
                self.rng.randint(self.cols // 10, 9 * self.cols // 10),
                self.rng.randint(self.rows // 10, 9 * self.rows // 10),
            ]
            for _ in range(n)
        ]

    def overlay_box(self) -> list[int]:
        side_c = max(6, self.rng.randint(self.cols // 10, self.cols // 4))
        side_r = max(6, self.rng.randint(self.rows // 10, self.rows // 4))
        c0 = self.rng.randint(4, max(5, self.cols - side_c - 4))
        r0 = self.rng.randint(4, max(5, self.rows - side_r - 4))
        return [c0, r0, min(self.cols - 3, c0 + side_c), min(self.rows - 3, r0 + side_r)]


def _fmt(kind: str, unit: str | None = None) -> str:
    return {
        "metric": f"Answer with one number in {unit}.",
        "count": "Answer with one integer.",
        "boolean": "Answer yes or no.",
        "categorical": "Answer with one word.",
        "object": "Answer with the object's pixel bounding box [x0, y0, x1, y1].",
        "choice": "Answer first or second.",
        "abstain": "If the question cannot be answered from the image, answer 'cannot answer'.",
    }[kind]


def generate(
    objects: Sequence[TruthObject],
    crs,
    transform: Affine,
    shape: tuple[int, int],
    n: int = 200,
    seed: int = 0,
    public_ids: Sequence[str] = (),
) -> list[EvalQuestion]:
    """About ``n`` questions about ``objects`` (truth CRS ``crs``) on a raster grid.

    ``transform`` and ``shape`` (rows, cols) are the raster's, for pixel references and
    overlays. ``public_ids`` are ids every mode knows (objects of the item's own vector
    layers, e.g. roads); other ``#id`` references mark the question ``truth_ids``.
    Cells of category x reference mode are filled round-robin, so every combination the
    truth allows appears before any repeats.
    """
    rng = random.Random(seed)
    gen = _Gen(objects, Truth(crs), transform, shape, set(public_ids), rng)
    makers: list[Callable[[_Gen, str], EvalQuestion | None]] = [
        _q_min,
        _q_centroid,
        _q_closer,
        _q_within,
        _q_beyond,
        _q_compass,
        _q_bearing,
        _q_yesno,
        _q_relation,
        _q_predicate,
        _q_count_within,
        _q_count_inside,
        _q_nearest,
        _q_farthest,
        _q_largest,
        _q_aggregate,
        _q_absent,
        _q_ambiguous,
    ]
    cells: list[tuple[Callable, str]] = [(m, mode) for m in makers for mode in REF_MODES]
    rng.shuffle(cells)
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    dead: set[int] = set()
    attempts = 0
    while len(out) < n and len(dead) < len(cells) and attempts < 40 * n:
        for ci, (maker, mode) in enumerate(cells):
            if ci in dead or len(out) >= n:
                continue
            attempts += 1
            q = None
            for _ in range(6):
                try:
                    q = maker(gen, mode)
                except (ValueError, IndexError, shapely.errors.GEOSException):
                    q = None
                if q is not None and q.text not in seen:
                    break
                q = None
            if q is None:
                dead.add(ci)
                continue
            seen.add(q.text)
            q.qid = f"q{len(out) + 1:04d}"
            q.answer_format = _fmt(q.kind, q.unit)
            out.append(q)
    return out


# -- makers ---------------------------------------------------------------------------------
# Each returns one question for reference mode ``mode`` or None when the truth does not allow
# it. Object references use ``mode`` for the main reference; partners are named by id when
# public, else by text.


def _two_refs(gen: _Gen, mode: str, area_only: bool = False) -> tuple[int, int, str, str, bool] | None:
    if mode in ("polyline", "overlay"):
        return None
    pool = [i for i in range(len(gen.o)) if not area_only or gen.g(i).area > 0]
    if len(pool) < 2:
        return None
    i, j = gen.pick(pool, 2)
    ra = gen.ref(i, mode)
    rb = gen.any_ref(j, [mode, "text", "id"] if mode != "id" else ["id"])
    if ra is None or rb is None:
        return None
    truth_ids = any(r.startswith("#") and r[1:] not in gen.public for r in (ra, rb[0]))
    return i, j, ra, rb[0], truth_ids


def _region_ref(gen: _Gen, mode: str) -> tuple[str, BaseGeometry, dict] | None:
    """A reference to a region (polyline / overlay / lon-lat WKT point) and its truth geometry."""
    if mode == "polyline":
        pts = gen.polyline_px()
        return f"the polyline {pts} in pixels", gen.world(shapely.LineString(pts)), {}
    if mode == "overlay":
        b = gen.overlay_box()
        return "the marked region", gen.world(shapely.box(*b)), {"overlay_px": b}
    return None


def _q_min(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode in ("polyline", "overlay"):
        r = _region_ref(gen, mode)
        i = gen.pick(range(len(gen.o)))[0]
        rb = gen.any_ref(i, ["text", "bbox", "id"])
        if r is None or rb is None:
            return None
        d = gen.t.distance_m(gen.g(i), r[1])
        if d <= 0:
            return None
        q = f"What is the distance between {rb[0]} and {r[0]}?"
        return EvalQuestion(
            "",
            "distance",
            "min",
            mode,
            q,
            [q],
            d,
            "metric",
            "m",
            overlay_px=r[2].get("overlay_px"),
            truth_ids=rb[0].startswith("#") and rb[0][1:] not in gen.public,
        )
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb_s, tid = r2
    d = gen.dist(i, j)
    if d <= 0:
        return None
    q = f"What is the distance between {ra} and {rb_s}?"
    return EvalQuestion("", "distance", "min", mode, q, [q], d, "metric", "m", truth_ids=tid)


def _q_centroid(gen: _Gen, mode: str) -> EvalQuestion | None:
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb, tid = r2
    d = gen.t.centroid_distance_m(gen.g(i), gen.g(j))
    if d <= 1:
        return None
    q = f"What is the distance between the centres of {ra} and {rb}?"
    return EvalQuestion("", "distance", "centroid", mode, q, [q], d, "metric", "m", truth_ids=tid)


def _q_closer(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode in ("polyline", "overlay"):
        return None
    pool = list(range(len(gen.o)))
    if len(pool) < 3:
        return None
    x, a, b = gen.pick(pool, 3)
    rx, ra, rb = gen.ref(x, mode), gen.any_ref(a, ["text", mode, "id"]), gen.any_ref(b, ["text", mode, "id"])
    if rx is None or ra is None or rb is None:
        return None
    da, db = gen.dist(a, x), gen.dist(b, x)
    if abs(da - db) < 0.02 * max(da, db) + 1e-6:
        return None
    text = f"Which is closer to {rx}: (first) {ra[0]} or (second) {rb[0]}?"
    asks = [
        f"What is the distance between {ra[0]} and {rx}?",
        f"What is the distance between {rb[0]} and {rx}?",
    ]
    tid = any(r.startswith("#") and r[1:] not in gen.public for r in (rx, ra[0], rb[0]))
    return EvalQuestion(
        "",
        "distance",
        "closer",
        mode,
        text,
        asks,
        "first" if da < db else "second",
        "choice",
        combine="closer",
        truth_ids=tid,
    )


def _q_dist_threshold(gen: _Gen, mode: str, task: str) -> EvalQuestion | None:
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb, tid = r2
    d = gen.dist(i, j)
    if d <= 0:
        return None
    want = gen.rng.choice((True, False))
    # a round threshold clearly on one side of d
    factor = gen.rng.uniform(1.3, 2.5) if (want == (task == "within")) else gen.rng.uniform(0.3, 0.75)
    dd = float(f"{d * factor:.2g}")
    if dd <= 0 or abs(dd - d) < 0.05 * d:
        return None
    ask = f"What is the distance between {ra} and {rb}?"
    if task == "within":
        text, exp = f"Is {ra} within {dd:g} m of {rb}?", d <= dd
    else:
        text, exp = f"Is {ra} more than {dd:g} m from {rb}?", d > dd
    return EvalQuestion(
        "", "distance", task, mode, text, [ask], bool(exp), "boolean", combine=f"{task}:{dd:g}", truth_ids=tid
    )


def _q_within(gen: _Gen, mode: str) -> EvalQuestion | None:
    return _q_dist_threshold(gen, mode, "within")


def _q_beyond(gen: _Gen, mode: str) -> EvalQuestion | None:
    return _q_dist_threshold(gen, mode, "beyond")


def _bearing_pair(gen: _Gen, mode: str) -> tuple[int, str, str, float, bool, dict] | None:
    """(reference side A as a string, B string, azimuth from A to B) with B = an object."""
    if mode in ("polyline", "overlay"):
        r = _region_ref(gen, mode)
        if r is None or mode == "polyline":
            return None
        j = gen.pick(range(len(gen.o)))[0]
        rb = gen.any_ref(j, ["text", "bbox", "id"])
        if rb is None:
            return None
        az = gen.t.bearing_deg(r[1], gen.g(j))
        if gen.t.centroid_distance_m(r[1], gen.g(j)) < 1:
            return None
        tid = rb[0].startswith("#") and rb[0][1:] not in gen.public
        return j, r[0], rb[0], az, tid, r[2]
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb_s, tid = r2
    if gen.t.centroid_distance_m(gen.g(i), gen.g(j)) < 1:
        return None
    return j, ra, rb_s, gen.t.bearing_deg(gen.g(i), gen.g(j)), tid, {}


def _near_edge(az: float, half: float, centres: Sequence[float]) -> bool:
    """Whether azimuth ``az`` lies within 3 degrees of the edge of a sector (centre +- half)."""
    edges = [c + s * half for c in centres for s in (-1, 1)]
    return min(abs(((az - e + 180) % 360) - 180) for e in edges) < 3.0


def _by_centroid(q: str) -> str:
    """The question asked of georeason: the truth is a centroid azimuth (EarthSpatialBench),
    and georeason's direction words default to the nearest-part definition, so it is named."""
    return q[:-1] + " by centroid?"


def _q_compass(gen: _Gen, mode: str) -> EvalQuestion | None:
    p = _bearing_pair(gen, mode)
    if p is None:
        return None
    _, ra, rb, az, tid, extra = p
    if _near_edge(az, 22.5, [k * 45.0 for k in range(8)]):
        return None
    q = f"In which direction is {rb} from {ra}?"
    return EvalQuestion(
        "",
        "direction",
        "compass",
        mode,
        q,
        [_by_centroid(q)],
        compass8(az),
        "categorical",
        truth_ids=tid,
        overlay_px=extra.get("overlay_px"),
    )


def _q_bearing(gen: _Gen, mode: str) -> EvalQuestion | None:
    p = _bearing_pair(gen, mode)
    if p is None:
        return None
    _, ra, rb, az, tid, extra = p
    q = f"What is the bearing from {ra} to {rb}?"
    return EvalQuestion(
        "",
        "direction",
        "bearing",
        mode,
        q,
        [q],
        az,
        "metric",
        "deg",
        truth_ids=tid,
        overlay_px=extra.get("overlay_px"),
    )


def _q_yesno(gen: _Gen, mode: str) -> EvalQuestion | None:
    p = _bearing_pair(gen, mode)
    if p is None:
        return None
    _, ra, rb, az, tid, extra = p
    name = gen.rng.choice(COMPASS8)
    half = 45.0 if len(name) == 1 else 22.5
    centre = COMPASS8.index(name) * 45.0
    diff = abs(((az - centre + 180) % 360) - 180)
    if abs(diff - half) < 3.0:
        return None
    words = {
        "N": "north",
        "S": "south",
        "E": "east",
        "W": "west",
        "NE": "northeast",
        "NW": "northwest",
        "SE": "southeast",
        "SW": "southwest",
    }
    q = f"Is {rb} {words[name]} of {ra}?"
    return EvalQuestion(
        "",
        "direction",
        "yesno",
        mode,
        q,
        [_by_centroid(q)],
        bool(diff <= half),
        "boolean",
        truth_ids=tid,
        overlay_px=extra.get("overlay_px"),
    )


def _q_relation(gen: _Gen, mode: str) -> EvalQuestion | None:
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb, tid = r2
    q = f"What is the topological relation between {ra} and {rb}?"
    return EvalQuestion(
        "",
        "topology",
        "relation",
        mode,
        q,
        [q],
        relation_name(gen.g(i), gen.g(j)),
        "categorical",
        truth_ids=tid,
    )


def _q_predicate(gen: _Gen, mode: str) -> EvalQuestion | None:
    r2 = _two_refs(gen, mode)
    if r2 is None:
        return None
    i, j, ra, rb, tid = r2
    a, b = gen.g(i), gen.g(j)
    pred = gen.rng.choice(("intersect", "touch", "overlap", "contain", "within"))
    fn = {
        "intersect": shapely.intersects,
        "touch": shapely.touches,
        "overlap": shapely.overlaps,
        "contain": shapely.contains,
        "within": shapely.within,
    }[pred]
    q = f"Is {ra} within {rb}?" if pred == "within" else f"Does {ra} {pred} {rb}?"
    return EvalQuestion("", "topology", "predicate", mode, q, [q], bool(fn(a, b)), "boolean", truth_ids=tid)


def _count_class(gen: _Gen) -> str | None:
    classes = [c for c, v in gen.by_cls.items() if len(v) >= 3]
    return gen.rng.choice(classes) if classes else None


def _q_count_within(gen: _Gen, mode: str) -> EvalQuestion | None:
    ref_txt: str | None
    cls = _count_class(gen)
    if cls is None:
        return None
    members = gen.by_cls[cls]
    if mode in ("polyline", "overlay"):
        r = _region_ref(gen, mode)
        if r is None or mode == "overlay":
            return None
        ref_txt, ref_geom, extra, ref_i, tid = r[0], r[1], r[2], None, False
        dists = [gen.t.distance_m(gen.g(k), ref_geom) for k in members]
    else:
        i = gen.pick(range(len(gen.o)))[0]
        ref_txt = gen.ref(i, mode)
        if ref_txt is None:
            return None
        extra, ref_i = {}, i
        tid = ref_txt.startswith("#") and ref_txt[1:] not in gen.public
        dists = [gen.dist(k, i) for k in members if k != i]
    pos = [d for d in dists if d > 0]
    if not pos:
        return None
    dd = float(f"{float(np.percentile(pos, gen.rng.uniform(20, 80))):.2g}")
    if dd <= 0 or any(abs(d - dd) < 0.02 * dd for d in dists):
        return None
    q = f"How many {_plural(cls)} are within {dd:g} m of {ref_txt}?"
    del ref_i
    return EvalQuestion(
        "",
        "group",
        "count",
        mode,
        q,
        [q],
        int(sum(d <= dd for d in dists)),
        "count",
        truth_ids=tid,
        overlay_px=extra.get("overlay_px"),
    )


def _q_count_inside(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode not in ("overlay", "polygon", "wkt"):
        return None
    cls = _count_class(gen)
    if cls is None:
        return None
    if mode == "overlay":
        b = gen.overlay_box()
        region = gen.world(shapely.box(*b))
        ref_txt, extra = "the marked region", {"overlay_px": b}
    else:
        b = gen.overlay_box()
        region = gen.world(shapely.box(*b))
        extra = {}
        if mode == "polygon":
            ref_txt = f"the polygon {[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]} in pixels"
        else:
            ref_txt = shapely.to_wkt(gen.t.lonlat(region), rounding_precision=9)
            from pyproj import Transformer

            back = Transformer.from_crs(4326, gen.t.crs, always_xy=True)
            ring = np.asarray(shapely.from_wkt(ref_txt).exterior.coords)
            region = shapely.Polygon(np.column_stack(back.transform(ring[:, 0], ring[:, 1])))
    members = gen.by_cls[cls]
    inside = [shapely.within(gen.g(k), region) for k in members]
    # nothing straddles the edge: the answer must not hinge on a boundary pixel
    edge = [shapely.intersects(gen.g(k), region.boundary.buffer(2 * abs(gen.tf.a))) for k in members]
    if any(edge):
        return None
    q = f"How many {_plural(cls)} are inside {ref_txt}?"
    return EvalQuestion(
        "", "group", "count", mode, q, [q], int(sum(inside)), "count", overlay_px=extra.get("overlay_px")
    )


def _rank(gen: _Gen, mode: str, far: bool) -> EvalQuestion | None:
    ref_txt: str | None
    cls = _count_class(gen)
    if cls is None:
        return None
    members = gen.by_cls[cls]
    extra: dict = {}
    tid = False
    if mode in ("polyline", "overlay"):
        r = _region_ref(gen, mode)
        if r is None:
            return None
        ref_txt, extra = r[0], r[2]
        cand = [(gen.t.distance_m(gen.g(k), r[1]), k) for k in members]
    else:
        i = gen.pick(range(len(gen.o)))[0]
        ref_txt = gen.ref(i, mode)
        if ref_txt is None:
            return None
        tid = ref_txt.startswith("#") and ref_txt[1:] not in gen.public
        cand = [(gen.dist(k, i), k) for k in members if k != i]
    cand.sort(reverse=far)
    if len(cand) < 2 or abs(cand[0][0] - cand[1][0]) < 0.02 * max(cand[0][0], cand[1][0]) + 1e-6:
        return None
    best = cand[0][1]
    word = "farthest from" if far else "nearest to"
    q = f"Which {cls} is {word} {ref_txt}?"
    ob = gen.o[best]
    pb = gen.px(ob.geometry).bounds
    return EvalQuestion(
        "",
        "group",
        "farthest" if far else "nearest",
        mode,
        q,
        [q],
        ob.id,
        "object",
        expected_wkt=ob.geometry.wkt,
        expected_px_box=[float(v) for v in pb],
        truth_ids=tid,
        overlay_px=extra.get("overlay_px"),
    )


def _q_nearest(gen: _Gen, mode: str) -> EvalQuestion | None:
    return _rank(gen, mode, far=False)


def _q_farthest(gen: _Gen, mode: str) -> EvalQuestion | None:
    return _rank(gen, mode, far=True)


def _q_largest(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode != "text":
        return None
    classes = [c for c, v in gen.by_cls.items() if len(v) >= 2 and all(gen.areas[k] > 0 for k in v)]
    if not classes:
        return None
    cls = gen.rng.choice(classes)
    word = gen.rng.choice(("largest", "smallest"))
    cand = sorted(((gen.areas[k], k) for k in gen.by_cls[cls]), reverse=word == "largest")
    if abs(cand[0][0] - cand[1][0]) < 0.02 * max(cand[0][0], cand[1][0]):
        return None
    ob = gen.o[cand[0][1]]
    q = f"Which is the {word} {cls}?"
    pb = gen.px(ob.geometry).bounds
    return EvalQuestion(
        "",
        "group",
        "largest",
        mode,
        q,
        [q],
        ob.id,
        "object",
        expected_wkt=ob.geometry.wkt,
        expected_px_box=[float(v) for v in pb],
    )


def _q_aggregate(gen: _Gen, mode: str) -> EvalQuestion | None:
    classes = [c for c, v in gen.by_cls.items() if all(gen.areas[k] > 0 for k in v)]
    if not classes:
        return None
    cls = gen.rng.choice(classes)
    union = shapely.union_all([gen.g(k) for k in gen.by_cls[cls]])
    if mode == "text":
        q = f"What is the total area of {cls} in hectares?"
        return EvalQuestion(
            "", "group", "aggregate", mode, q, [q], gen.t.area_m2(union) / 1e4, "metric", "ha"
        )
    if mode in ("overlay", "polygon"):
        b = gen.overlay_box()
        region = gen.world(shapely.box(*b))
        inter = shapely.intersection(union, region)
        if inter.is_empty or inter.area <= 0:
            return None
        ref_txt = (
            "the marked region"
            if mode == "overlay"
            else f"the polygon {[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]} in pixels"
        )
        q = f"What is the total area of {cls} inside {ref_txt} in hectares?"
        return EvalQuestion(
            "",
            "group",
            "aggregate",
            mode,
            q,
            [q],
            gen.t.area_m2(inter) / 1e4,
            "metric",
            "ha",
            overlay_px=b if mode == "overlay" else None,
        )
    if mode in ("id", "bbox", "wkt"):
        i = gen.pick([k for k in range(len(gen.o)) if gen.areas[k] > 0])[0]
        r = gen.ref(i, mode)
        if r is None:
            return None
        q = f"What is the area of {r} in hectares?"
        tid = r.startswith("#") and r[1:] not in gen.public
        return EvalQuestion(
            "", "group", "aggregate", mode, q, [q], gen.areas[i] / 1e4, "metric", "ha", truth_ids=tid
        )
    return None


def _q_absent(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode not in ("text", "bbox"):
        return None
    absent = [c for c in _ABSENT if c not in gen.by_cls]
    j = gen.pick(range(len(gen.o)))[0]
    rb = gen.any_ref(j, ["text", "bbox", "id"])
    if not absent or rb is None:
        return None
    tid = rb[0].startswith("#") and rb[0][1:] not in gen.public
    if mode == "text":
        q = f"What is the distance between the {gen.rng.choice(absent)} and {rb[0]}?"
        return EvalQuestion("", "unanswerable", "absent", mode, q, [q], None, "abstain", truth_ids=tid)
    # an existing class at a place where there is none of it
    cls = gen.rng.choice(list(gen.by_cls))
    b = gen.overlay_box()
    region = gen.world(shapely.box(*b))
    if any(shapely.intersects(gen.g(k), region.buffer(5 * abs(gen.tf.a))) for k in gen.by_cls[cls]):
        return None
    q = f"What is the distance between the {cls} at [{b[0]}, {b[1]}, {b[2]}, {b[3]}] in pixels and {rb[0]}?"
    return EvalQuestion("", "unanswerable", "absent", mode, q, [q], None, "abstain", truth_ids=tid)


def _q_ambiguous(gen: _Gen, mode: str) -> EvalQuestion | None:
    if mode != "text":
        return None
    classes = [c for c, v in gen.by_cls.items() if len(v) >= 2]
    j = gen.pick(range(len(gen.o)))[0]
    rb = gen.any_ref(j, ["text", "bbox", "id"])
    if not classes or rb is None:
        return None
    cls = gen.rng.choice(classes)
    if rb[0] == f"the {cls}":
        return None
    q = f"What is the distance between the {cls} and {rb[0]}?"
    tid = rb[0].startswith("#") and rb[0][1:] not in gen.public
    return EvalQuestion("", "unanswerable", "ambiguous", mode, q, [q], None, "abstain", truth_ids=tid)
