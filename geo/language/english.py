"""English questions to query programs, by templates (no model needed).

:func:`compile_question` turns a question into a program (see :mod:`.program`);
:func:`ask` compiles, validates against the scene and executes it. A question no template
understands raises :class:`~georeason.errors.QuestionParseError` listing the supported forms.

References (A, B below) may be:

- an object id: ``#b12``, ``object b12``, ``object #b12``;
- a class with a selector: ``the river`` (must be the only river), ``the largest lake``
  (also smallest, longest, shortest, biggest);
- explicit geometry, in lon/lat unless the question says ``pixel`` (then image column/row
  of ``--raster``) or names a CRS as ``(EPSG:32633)``: WKT (``POINT (10 50)``), a bbox
  ``[minx, miny, maxx, maxy]``, a point ``(x, y)``, or a polyline/polygon as a coordinate
  list ``[[x, y], [x, y], ...]`` (closed lists are polygons; say ``line``/``polygon`` to
  force one); ``the region <geometry>`` is that geometry itself;
- ``the <class> at <geometry>``: the object of that class that best overlaps the geometry
  (IoU >= 0.5), else the question abstains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from georeason.errors import QuestionParseError
from georeason.geo.language.answer import Answer
from georeason.geo.language.executor import MaskWriter, PixelTransform, answer_program
from georeason.geo.language.program import Program, validate_program
from georeason.geo.vector.scene import Scene

__all__ = ["compile_question", "compile_program", "ask", "SUPPORTED_FORMS"]

SUPPORTED_FORMS = [
    "What is the distance between A and B?  (also: how far is A from B, distance from A to B, ... in km)",
    "What is the distance between the centres of A and B?",
    "In which direction is B from A?  /  What is the bearing from A to B?",
    "Is B north of A?  (north, south, east, west, northeast, ..., NNE ...)",
    "What is the topological relation between A and B?",
    "Does A intersect/touch/overlap/cross/contain/cover B?  Is A within/inside/disjoint from/equal to B?",
    "How many <class> are within 500 m of A?  /  How many <class> are inside A?  /  How many <class> are there?",
    "Which <class> is nearest to A?  /  Which <class> is farthest from A?",
    "Which is the largest/smallest/longest/shortest <class>?",
    "What is the area of A?  /  What is the length (or perimeter) of A?",
    "What is the total area of <class> inside A?",
    "Show all <class> within 200 m of A.  /  Show all <class> inside A.",
    "Which pixels are <class> within 100 m of A?  /  Which pixels are <class> (inside A)?  (a mask GeoTIFF; needs a raster)",
    "References: #id, object ID, the <class>, the largest <class>, the <class> at <geometry>, "
    "the region <geometry>, WKT, [minx, miny, maxx, maxy], [[x, y], ...], with 'pixel' for image coordinates",
]

_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_UNITS = {
    "m": ("m", 1.0),
    "meter": ("m", 1.0),
    "meters": ("m", 1.0),
    "metre": ("m", 1.0),
    "metres": ("m", 1.0),
    "km": ("km", 1.0),
    "kilometer": ("km", 1.0),
    "kilometers": ("km", 1.0),
    "kilometre": ("km", 1.0),
    "kilometres": ("km", 1.0),
    "ft": ("m", 0.3048),
    "feet": ("m", 0.3048),
    "foot": ("m", 0.3048),
    "mi": ("km", 1.609344),
    "mile": ("km", 1.609344),
    "miles": ("km", 1.609344),
}
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
_DIST_RE = rf"(?P<d>{_NUM})\s*(?P<u>{_UNIT_RE})\b"
_DIRECTIONS = {
    "north": "N",
    "south": "S",
    "east": "E",
    "west": "W",
    "northeast": "NE",
    "north-east": "NE",
    "north east": "NE",
    "northwest": "NW",
    "north-west": "NW",
    "north west": "NW",
    "southeast": "SE",
    "south-east": "SE",
    "south east": "SE",
    "southwest": "SW",
    "south-west": "SW",
    "south west": "SW",
}
for _c in (
    "N",
    "NNE",
    "NE",
    "ENE",
    "E",
    "ESE",
    "SE",
    "SSE",
    "S",
    "SSW",
    "SW",
    "WSW",
    "W",
    "WNW",
    "NW",
    "NNW",
):
    _DIRECTIONS[_c.lower()] = _c
_DIR_RE = "|".join(sorted((re.escape(k) for k in _DIRECTIONS), key=len, reverse=True))
_SELECTORS = {
    "largest": "largest",
    "biggest": "largest",
    "smallest": "smallest",
    "longest": "longest",
    "shortest": "shortest",
}
_WKT_RE = re.compile(
    r"\b(POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON|GEOMETRYCOLLECTION)\s*(Z\s*|M\s*|ZM\s*)?\(",
    re.IGNORECASE,
)


class _Builder:
    """Accumulates program steps with fresh ids."""

    def __init__(self, question: str):
        self.steps: list[dict[str, Any]] = []
        self.pixel = bool(re.search(r"\bpixels?\b", question, re.IGNORECASE))
        self._n = 0

    def add(self, op: str, **args: Any) -> str:
        self._n += 1
        sid = f"s{self._n}"
        self.steps.append({"id": sid, "op": op, "args": {k: v for k, v in args.items() if v is not None}})
        return f"${sid}"

    def answer(self, ref: str) -> list[dict[str, Any]]:
        self.add("answer", value=ref)
        return self.steps

    # -- references -------------------------------------------------------------------
    def ref(self, text: str) -> str:
        """Compile a reference (object, class with selector, or geometry) to a step ref."""
        t = _clean_ref(text)
        if not t:
            raise QuestionParseError(f"empty reference in the question near {text!r}")
        m = re.fullmatch(
            r"(?:the\s+)?(?:[a-z][\w \-]*?\s+)?#(?P<id>[\w.:\-]+)", t, re.IGNORECASE
        ) or re.fullmatch(r"(?:the\s+)?(?:object|feature)\s+(?P<id>[\w.:\-]+)", t, re.IGNORECASE)
        if m:
            return self.add("object", id=m.group("id"))
        m = re.fullmatch(
            r"(?:the\s+)?(?:region|area|geometry|location|place)\s+(?P<g>.+)", t, re.IGNORECASE | re.DOTALL
        )
        if m and _looks_like_geometry(m.group("g")):
            return self.geometry(m.group("g"))
        m = re.fullmatch(
            r"(?:the\s+)?(?P<cls>[a-z][\w \-]*?)\s+(?:at|located at|in)\s+(?P<g>.+)",
            t,
            re.IGNORECASE | re.DOTALL,
        )
        if m and _looks_like_geometry(m.group("g")):
            return self.add("at", cls=m.group("cls").strip(), geometry=self.geometry(m.group("g")))
        if _looks_like_geometry(t):
            return self.geometry(t)
        m = re.fullmatch(
            r"(?:the\s+)?(?P<sel>" + "|".join(_SELECTORS) + r")\s+(?P<cls>[a-z][\w \-]*)", t, re.IGNORECASE
        )
        if m:
            objs = self.add("select", cls=m.group("cls").strip())
            return self.add("the", objects=objs, pick=_SELECTORS[m.group("sel").lower()])
        m = re.fullmatch(r"the\s+(?P<cls>[a-z][\w \-]*)", t, re.IGNORECASE)
        if m:
            objs = self.add("select", cls=m.group("cls").strip())
            return self.add("the", objects=objs, pick="only")
        raise QuestionParseError(
            f"cannot understand the reference {text.strip()!r}: use #id, 'object ID', 'the <class>', "
            "'the largest <class>', 'the <class> at <geometry>', or a geometry (WKT, [minx, miny, maxx, maxy], [[x, y], ...])"
        )

    def geometry(self, text: str) -> str:
        t = text.strip()
        crs = "pixel" if self.pixel else "EPSG:4326"
        m = re.search(r"\(?\b(EPSG:\d+)\)?", t, re.IGNORECASE)
        if m:
            crs = m.group(1).upper()
            t = (t[: m.start()] + t[m.end() :]).strip()
        t = re.sub(r"\(?\b(?:in\s+)?pixels?(?:\s+coordinates)?\)?", "", t, flags=re.IGNORECASE).strip()
        shape = None
        m = re.match(
            r"(?:a\s+|the\s+)?(polyline|line|linestring|polygon|point|bbox|box)\s+", t, re.IGNORECASE
        )
        if m:
            word = m.group(1).lower()
            shape = {
                "polyline": "line",
                "linestring": "line",
                "line": "line",
                "polygon": "polygon",
                "point": "point",
            }.get(word)
            t = t[m.end() :].strip()
        if _WKT_RE.match(t):
            return self.add("geometry", wkt=t, crs=crs)
        nums = [float(x) for x in re.findall(_NUM, t)]
        nested = re.match(r"^[\[\(]\s*[\[\(]", t)
        if nested:
            if len(nums) % 2:
                raise QuestionParseError(f"coordinate list {text.strip()!r} has an odd number of values")
            pts = [[nums[i], nums[i + 1]] for i in range(0, len(nums), 2)]
            return self.add("geometry", coords=pts, shape=shape, crs=crs)
        if len(nums) == 4:
            return self.add("geometry", bbox=nums, crs=crs)
        if len(nums) == 2:
            return self.add("geometry", coords=[nums], shape="point", crs=crs)
        raise QuestionParseError(f"cannot read the geometry {text.strip()!r}")

    def objects(self, cls_text: str) -> str:
        cls = _clean_class(cls_text)
        if cls in ("objects", "object", "things", "features", "feature"):
            raise QuestionParseError(f"name a class instead of {cls_text.strip()!r} (e.g. buildings)")
        return self.add("select", cls=cls)


def _clean_ref(text: str) -> str:
    t = text.strip().strip(",;:").strip()
    return re.sub(r"\s+", " ", t) if not _looks_like_geometry(t) else t


def _clean_class(text: str) -> str:
    t = re.sub(r"^(?:all\s+|any\s+|the\s+|of\s+)+", "", text.strip(), flags=re.IGNORECASE)
    t = re.sub(r"\s+(?:are|is|there|objects|that are|which are)$", "", t, flags=re.IGNORECASE)
    return t.strip()


def _looks_like_geometry(t: str) -> bool:
    t = t.strip()
    t2 = re.sub(
        r"^(?:a\s+|the\s+)?(?:polyline|line|linestring|polygon|point|bbox|box)\s+", "", t, flags=re.IGNORECASE
    )
    return bool(_WKT_RE.match(t2) or re.match(r"^[\[\(]\s*[\[\(]?\s*-?\d", t2))


def _dist(m: re.Match) -> tuple[float, str]:
    unit, factor = _UNITS[m.group("u").lower()]
    return float(m.group("d")) * factor, unit


def _unit_suffix(q: str) -> tuple[str, str | None]:
    """Strip a trailing 'in km' / 'in square kilometres' and return the unit asked for."""
    m = re.search(
        r",?\s+in\s+(?P<u>square\s+kilomet(?:er|re)s|square\s+met(?:er|re)s|km2|km²|m2|m²|hectares?|ha|"
        r"kilomet(?:er|re)s|km|met(?:er|re)s|m)\s*$",
        q,
        re.IGNORECASE,
    )
    if not m:
        return q, None
    u = m.group("u").lower().replace("²", "2")
    unit = {"km": "km", "m": "m"}.get(u)
    if unit is None:
        if u.startswith("square kilomet") or u == "km2":
            unit = "km2"
        elif u.startswith("square met") or u == "m2":
            unit = "m2"
        elif u.startswith("hectare") or u == "ha":
            unit = "ha"
        elif u.startswith("kilomet"):
            unit = "km"
        else:
            unit = "m"
    return q[: m.start()], unit


Rule = tuple[re.Pattern, Callable[[_Builder, re.Match, str | None], list[dict[str, Any]]]]
_F = re.IGNORECASE | re.DOTALL
_A = r"(?P<a>.+?)"
_B = r"(?P<b>.+)"


def _r(pattern: str) -> re.Pattern:
    return re.compile(r"^\s*" + pattern + r"\s*$", _F)


def _distance(b: _Builder, m: re.Match, unit: str | None) -> list:
    mode = "centroid" if m.groupdict().get("c") else "min"
    d = b.add(
        "distance",
        a=b.ref(m.group("a")),
        b=b.ref(m.group("b")),
        mode=mode,
        unit=unit if unit in ("m", "km") else "m",
    )
    return b.answer(d)


def _direction(b: _Builder, m: re.Match, unit) -> list:
    # m groups: 'frm' (A) and 'to' (B): direction of B seen from A
    pts = 16 if m.groupdict().get("p16") else 8
    return b.answer(b.add("direction", a=b.ref(m.group("frm")), b=b.ref(m.group("to")), points=pts))


def _bearing(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(b.add("bearing", a=b.ref(m.group("frm")), b=b.ref(m.group("to"))))


def _is_direction(b: _Builder, m: re.Match, unit) -> list:
    d = _DIRECTIONS[m.group("dir").lower()]
    return b.answer(b.add("is_direction", a=b.ref(m.group("frm")), b=b.ref(m.group("to")), direction=d))


def _relation(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(b.add("relation", a=b.ref(m.group("a")), b=b.ref(m.group("b"))))


_PRED_WORDS = {
    "intersect": "intersects",
    "intersects": "intersects",
    "touch": "touches",
    "touches": "touches",
    "overlap": "overlaps",
    "overlaps": "overlaps",
    "cross": "crosses",
    "crosses": "crosses",
    "contain": "contains",
    "contains": "contains",
    "cover": "covers",
    "covers": "covers",
    "within": "within",
    "inside": "within",
    "contained in": "within",
    "disjoint from": "disjoint",
    "disjoint with": "disjoint",
    "equal to": "equals",
    "covered by": "covered_by",
}


def _predicate(b: _Builder, m: re.Match, unit) -> list:
    p = _PRED_WORDS[re.sub(r"\s+", " ", m.group("p").lower())]
    return b.answer(b.add("predicate", a=b.ref(m.group("a")), b=b.ref(m.group("b")), predicate=p))


def _predicate_pair(pred: str):
    def f(b: _Builder, m: re.Match, unit) -> list:
        return b.answer(b.add("predicate", a=b.ref(m.group("a")), b=b.ref(m.group("b")), predicate=pred))

    return f


def _within(b: _Builder, m: re.Match) -> str:
    d, u = _dist(m)
    return b.add(
        "within_distance", objects=b.objects(m.group("cls")), of=b.ref(m.group("a")), distance=d, unit=u
    )


def _count_within(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(b.add("count", objects=_within(b, m)))


def _show_within(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(_within(b, m))


def _inside(b: _Builder, m: re.Match) -> str:
    return b.add("inside", objects=b.objects(m.group("cls")), region=b.ref(m.group("a")), mode="within")


def _count_inside(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(b.add("count", objects=_inside(b, m)))


def _show_inside(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(_inside(b, m))


def _count_all(b: _Builder, m: re.Match, unit) -> list:
    return b.answer(b.add("count", objects=b.objects(m.group("cls"))))


def _rank(op: str):
    def f(b: _Builder, m: re.Match, unit) -> list:
        return b.answer(b.add(op, objects=b.objects(m.group("cls")), to=b.ref(m.group("a")), k=1))

    return f


def _extreme(b: _Builder, m: re.Match, unit) -> list:
    sel = _SELECTORS[m.group("sel").lower()]
    op = "argmax" if sel in ("largest", "longest") else "argmin"
    by = "area" if sel in ("largest", "smallest") else "length"
    return b.answer(b.add(op, objects=b.objects(m.group("cls")), by=by))


def _area(b: _Builder, m: re.Match, unit) -> list:
    u = unit if unit in ("m2", "km2", "ha") else "m2"
    return b.answer(b.add("area", of=b.ref(m.group("a")), unit=u))


def _length(b: _Builder, m: re.Match, unit) -> list:
    u = unit if unit in ("m", "km") else "m"
    return b.answer(b.add("length", of=b.ref(m.group("a")), unit=u))


def _total_area(b: _Builder, m: re.Match, unit) -> list:
    u = unit if unit in ("m2", "km2", "ha") else "m2"
    region = b.ref(m.group("a")) if m.groupdict().get("a") else None
    return b.answer(b.add("total_area", objects=b.objects(m.group("cls")), region=region, unit=u))


def _pixels(b: _Builder, m: re.Match, unit) -> list:
    objs = b.objects(m.group("cls"))
    region = objs
    if m.groupdict().get("d"):
        d, u = _dist(m)
        zone = b.add("buffer", of=b.ref(m.group("a")), distance=d, unit=u)
        region = b.add("intersection", a=objs, b=zone)
    elif m.groupdict().get("a"):
        region = b.add("intersection", a=objs, b=b.ref(m.group("a")))
    return b.answer(b.add("pixels", of=region))


_WH = r"(?:what\s+is|what's|whats|tell\s+me|give\s+me|compute|calculate|find|measure)?\s*(?:the\s+)?"
_CENTRES = r"(?P<c>(?:the\s+)?(?:centres?|centers?|centroids?|middles?)\s+of\s+)?"
_HOWMANY = r"(?:how\s+many|count\s+(?:the\s+)?|number\s+of|what\s+is\s+the\s+number\s+of)\s*"
_BE = r"(?:are|is)?\s*(?:there\s+)?(?:located\s+|situated\s+|lying\s+)?"
_CLS = r"(?P<cls>[a-z][\w \-]*?)"

RULES: list[Rule] = [
    # pixel-level answers
    (
        _r(
            r"(?:which|what|show(?:\s+me)?|find|mask)\s+(?:all\s+)?(?:the\s+)?pixels\s+(?:are|that\s+are|of)\s+"
            + _CLS
            + r"\s+(?:(?:with)?in\s+"
            + _DIST_RE
            + r"\s+(?:of|from|around)\s+"
            + _A
            + r")"
        ),
        _pixels,
    ),
    (
        _r(
            r"(?:which|what|show(?:\s+me)?|find|mask)\s+(?:all\s+)?(?:the\s+)?pixels\s+(?:are|that\s+are|of)\s+"
            + _CLS
            + r"\s+(?:inside|in|within)\s+"
            + _A
        ),
        _pixels,
    ),
    (
        _r(
            r"(?:which|what|show(?:\s+me)?|find|mask)\s+(?:all\s+)?(?:the\s+)?pixels\s+(?:are|that\s+are|of)\s+"
            + _CLS
        ),
        _pixels,
    ),
    (
        _r(
            r"(?:show|find|mask)\s+(?:me\s+)?(?:all\s+)?(?:the\s+)?"
            + _CLS
            + r"\s+pixels(?:\s+(?:with)?in\s+"
            + _DIST_RE
            + r"\s+(?:of|from|around)\s+"
            + _A
            + r")?"
        ),
        _pixels,
    ),
    # distance
    (
        _r(
            _WH
            + r"(?:geodesic\s+|minimum\s+|shortest\s+|straight[- ]line\s+)?distance\s+between\s+"
            + _CENTRES
            + _A
            + r"\s+and\s+"
            + _B
        ),
        _distance,
    ),
    (
        _r(
            _WH
            + r"(?:geodesic\s+|minimum\s+|shortest\s+)?distance\s+from\s+"
            + _CENTRES
            + _A
            + r"\s+to\s+"
            + _B
        ),
        _distance,
    ),
    (_r(r"how\s+far\s+(?:away\s+)?is\s+" + _CENTRES + _A + r"\s+from\s+" + _B), _distance),
    (_r(r"how\s+far\s+apart\s+are\s+" + _CENTRES + _A + r"\s+and\s+" + _B), _distance),
    (_r(r"how\s+far\s+is\s+it\s+from\s+" + _A + r"\s+to\s+" + _B), _distance),
    # direction / bearing
    (
        _r(
            r"(?:in\s+)?(?:which|what)\s+(?P<p16>16[- ]point\s+)?(?:compass\s+)?direction\s+is\s+(?P<to>.+?)\s+(?:from|of|relative\s+to|with\s+respect\s+to)\s+(?P<frm>.+)"
        ),
        _direction,
    ),
    (
        _r(
            _WH
            + r"(?P<p16>16[- ]point\s+)?(?:compass\s+)?direction\s+(?:of|to)\s+(?P<to>.+?)\s+(?:from|relative\s+to|as\s+seen\s+from)\s+(?P<frm>.+)"
        ),
        _direction,
    ),
    (
        _r(_WH + r"(?P<p16>16[- ]point\s+)?(?:compass\s+)?direction\s+from\s+(?P<frm>.+?)\s+to\s+(?P<to>.+)"),
        _direction,
    ),
    (_r(r"where\s+is\s+(?P<to>.+?)\s+(?:relative\s+to|with\s+respect\s+to|from)\s+(?P<frm>.+)"), _direction),
    (_r(_WH + r"(?:bearing|azimuth|heading)\s+from\s+(?P<frm>.+?)\s+to\s+(?P<to>.+)"), _bearing),
    (_r(_WH + r"(?:bearing|azimuth)\s+of\s+(?P<to>.+?)\s+(?:from|relative\s+to)\s+(?P<frm>.+)"), _bearing),
    (
        _r(
            r"(?:is|does)\s+(?P<to>.+?)\s+(?:lie\s+|located\s+|situated\s+|lying\s+)?(?:to\s+the\s+|in\s+the\s+)?(?P<dir>"
            + _DIR_RE
            + r")\s+(?:of|from)\s+(?P<frm>.+)"
        ),
        _is_direction,
    ),
    # topology
    (
        _r(
            _WH
            + r"(?:topological\s+|spatial\s+|DE-?9IM\s+)?relation(?:ship)?\s+(?:between|of)\s+"
            + _A
            + r"\s+(?:and|to|with)\s+"
            + _B
        ),
        _relation,
    ),
    (_r(r"how\s+(?:is|does)\s+" + _A + r"\s+relate(?:d)?\s+to\s+" + _B), _relation),
    (
        _r(
            r"(?:does|do)\s+"
            + _A
            + r"\s+(?P<p>intersects?|touch(?:es)?|overlaps?|cross(?:es)?|contains?|covers?)\s+"
            + _B
        ),
        _predicate,
    ),
    (
        _r(
            r"is\s+"
            + _A
            + r"\s+(?:completely\s+|entirely\s+|fully\s+)?(?P<p>within|inside|contained\s+in|disjoint\s+(?:from|with)|equal\s+to|covered\s+by)\s+"
            + _B
        ),
        _predicate,
    ),
    (_r(r"are\s+" + _A + r"\s+and\s+" + _B + r"\s+disjoint"), _predicate_pair("disjoint")),
    (
        _r(r"are\s+" + _A + r"\s+and\s+" + _B + r"\s+(?:equal|the\s+same|identical)"),
        _predicate_pair("equals"),
    ),
    (_r(r"do\s+" + _A + r"\s+and\s+" + _B + r"\s+(?:intersect|overlap)"), _predicate_pair("intersects")),
    (_r(r"do\s+" + _A + r"\s+and\s+" + _B + r"\s+touch"), _predicate_pair("touches")),
    # counts and sets
    (
        _r(
            _HOWMANY
            + _CLS
            + r"\s+"
            + _BE
            + r"(?:with)?in\s+(?:a\s+distance\s+of\s+)?"
            + _DIST_RE
            + r"\s+(?:of|from|around)\s+"
            + _A
        ),
        _count_within,
    ),
    (
        _r(_HOWMANY + _CLS + r"\s+(?:are\s+|is\s+)?(?:there\s+)?in\s+the\s+(?:scene|image|picture)"),
        _count_all,
    ),
    (_r(_HOWMANY + _CLS + r"\s+" + _BE + r"(?:inside|in|within|contained\s+in)\s+" + _A), _count_inside),
    (_r(_HOWMANY + _CLS + r"(?:\s+(?:are\s+there|exist|are\s+in\s+the\s+(?:scene|image)))?"), _count_all),
    # nearest / farthest
    (
        _r(
            r"(?:which|what)\s+"
            + _CLS
            + r"\s+(?:is|lies|is\s+located)\s+(?:the\s+)?(?:nearest|closest)\s+to\s+"
            + _A
        ),
        _rank("nearest"),
    ),
    (_r(_WH + r"(?:nearest|closest)\s+" + _CLS + r"\s+to\s+" + _A), _rank("nearest")),
    (
        _r(
            r"(?:which|what)\s+"
            + _CLS
            + r"\s+(?:is|lies|is\s+located)\s+(?:the\s+)?(?:farthest|furthest|most\s+distant)\s+(?:from|to)\s+"
            + _A
        ),
        _rank("farthest"),
    ),
    (
        _r(_WH + r"(?:farthest|furthest|most\s+distant)\s+" + _CLS + r"\s+(?:from|to)\s+" + _A),
        _rank("farthest"),
    ),
    # extremes
    (_r(r"(?:which|what)\s+is\s+the\s+(?P<sel>" + "|".join(_SELECTORS) + r")\s+" + _CLS), _extreme),
    (
        _r(r"(?:which|what)\s+" + _CLS + r"\s+is\s+(?:the\s+)?(?P<sel>" + "|".join(_SELECTORS) + r")"),
        _extreme,
    ),
    (_r(r"(?:find|show|give\s+me|name)\s+the\s+(?P<sel>" + "|".join(_SELECTORS) + r")\s+" + _CLS), _extreme),
    # measures
    (
        _r(
            _WH
            + r"total\s+area\s+(?:of|covered\s+by)\s+(?:all\s+)?(?:the\s+)?"
            + _CLS
            + r"(?:\s+(?:inside|in|within)\s+"
            + _A
            + r")?"
        ),
        _total_area,
    ),
    (_r(_WH + r"(?:geodesic\s+|surface\s+)?area\s+of\s+" + _A), _area),
    (_r(r"how\s+(?:large|big)\s+is\s+" + _A), _area),
    (_r(_WH + r"(?:geodesic\s+)?(?:length|perimeter)\s+of\s+" + _A), _length),
    (_r(r"how\s+long\s+is\s+" + _A), _length),
    # generic set queries last: "what ... in ..." would otherwise swallow the forms above
    (
        _r(
            r"(?:show|list|find|give|display|return|highlight|select|which|what)\s+(?:me\s+)?(?:all\s+|every\s+|the\s+)*"
            + _CLS
            + r"\s+"
            + _BE
            + r"(?:that\s+are\s+|which\s+are\s+)?(?:with)?in\s+"
            + _DIST_RE
            + r"\s+(?:of|from|around)\s+"
            + _A
        ),
        _show_within,
    ),
    (
        _r(
            r"(?:show|list|find|give|display|return|highlight|select|which|what)\s+(?:me\s+)?(?:all\s+|every\s+|the\s+)*"
            + _CLS
            + r"\s+"
            + _BE
            + r"(?:that\s+are\s+|which\s+are\s+)?(?:inside|within|in|contained\s+in)\s+"
            + _A
        ),
        _show_inside,
    ),
]


def compile_question(question: str) -> list[dict[str, Any]]:
    """Compile an English question to a program (a list of step dicts), not yet validated.

    Raises :class:`QuestionParseError` (listing the supported forms) when no template fits.

    Examples
    --------
    >>> [s["op"] for s in compile_question("How far is #a from #b?")]
    ['object', 'object', 'distance', 'answer']
    """
    q = question.strip()
    q = re.sub(r"[?.!]+\s*$", "", q).strip()
    q, unit = _unit_suffix(q)
    problems: list[str] = []
    for pattern, build in RULES:
        m = pattern.match(q)
        if not m:
            continue
        try:
            return build(_Builder(question), m, unit)
        except QuestionParseError as exc:
            problems.append(str(exc))
    detail = f" ({problems[0]})" if problems else ""
    raise QuestionParseError(
        f"cannot parse the question {question.strip()!r}{detail}. Supported forms:\n  - "
        + "\n  - ".join(SUPPORTED_FORMS)
    )


def compile_program(question: str) -> Program:
    """Compile an English question to a validated :class:`Program` (the one compilation).

    Raises :class:`QuestionParseError` when no template fits; a program that fails
    validation is a template bug and raises :class:`ProgramValidationError`.

    Examples
    --------
    >>> compile_program("How many lakes are there?").steps[-1].op
    'answer'
    """
    return validate_program(compile_question(question))


def ask(
    question: str,
    scene: Scene,
    pixel: PixelTransform | None = None,
    mask_writer: MaskWriter | None = None,
) -> Answer:
    """Answer an English question about a scene: compile and validate once, then execute.

    A reference to an id or class the scene does not have gives an abstention (the
    reference matches no object), not an error.
    """
    return answer_program(
        compile_program(question), scene, question=question, pixel=pixel, mask_writer=mask_writer
    )
