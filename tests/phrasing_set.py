"""A phrasing test set: questions written as different users write them, with answers
computed independently of georeason's parser and geometry code.

Every expected value here comes from :class:`pyproj.Geod`, :class:`pyproj.Transformer` and
shapely directly (nearest points in a local azimuthal equidistant frame made with pyproj,
measured on the ellipsoid with ``Geod.inv``; areas and lengths with ``Geod``; topology
with shapely predicates on the coordinates). Cases near a decision boundary (a distance
within 2 % of a threshold, an azimuth within 3 degrees of a sector edge, ties) are left
out, because there the expected answer is a matter of rounding, not of understanding.

Used by ``tests/test_phrasing.py`` (every case must be understood and right) and by
``benchmarks/phrasing.py`` (the share understood and right, by form).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from shapely import LineString, Point, box
from shapely.ops import nearest_points

from georeason.geo.vector.scene import Scene, read_scene

REPO = Path(__file__).resolve().parents[1]
G = Geod(ellps="WGS84")

# a raster grid over the town, for pixel references: 1e-4 degree pixels from (9.14, 47.70)
TOWN_AFFINE = Affine(0.0001, 0.0, 9.14, 0.0, -0.0001, 47.70)


@dataclass
class Case:
    """One question, the scene it is about, and its independently computed answer."""

    form: str
    scene: str
    question: str
    expected: Any
    rel: float = 1e-3
    unit: str | None = None
    pixel: bool = False
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# independent geometry (pyproj + shapely only)
# ---------------------------------------------------------------------------------------
def _frame(*geoms):
    xs = [g.centroid.x for g in geoms]
    ys = [g.centroid.y for g in geoms]
    return _frame_at(round(float(np.mean(xs)), 3), round(float(np.mean(ys)), 3))


@cache
def _frame_at(lon: float, lat: float):
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, inv


def _project(g, tr):
    return shapely.transform(g, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))


def near_pts(a, b):
    """Nearest points of two lon/lat geometries (None if they intersect)."""
    if a.intersects(b):
        return None
    fwd, inv = _frame(a, b)
    pa, pb = nearest_points(_project(a, fwd), _project(b, fwd))
    (x1, y1), (x2, y2) = inv.transform(pa.x, pa.y), inv.transform(pb.x, pb.y)
    # re-centre once on the pair found
    fwd, inv = _frame(Point(x1, y1), Point(x2, y2))
    pa, pb = nearest_points(_project(a, fwd), _project(b, fwd))
    return inv.transform(pa.x, pa.y), inv.transform(pb.x, pb.y)


@cache
def dist(a, b) -> float:
    pts = near_pts(a, b)
    if pts is None:
        return 0.0
    (x1, y1), (x2, y2) = pts
    return G.inv(x1, y1, x2, y2)[2]


def centroid(g):
    fwd, inv = _frame(g)
    c = _project(g, fwd).centroid
    return inv.transform(c.x, c.y)


def cdist(a, b) -> float:
    return G.inv(*centroid(a), *centroid(b))[2]


@cache
def azimuth(a, b, method="nearest_part") -> float:
    """Azimuth of b seen from a (nearest parts, or centroids)."""
    pts = near_pts(a, b) if method == "nearest_part" else None
    if pts is None:
        return G.inv(*centroid(a), *centroid(b))[0] % 360
    (x1, y1), (x2, y2) = pts
    return G.inv(x1, y1, x2, y2)[0] % 360


NAMES16 = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]


def compass(az: float, points: int = 8) -> str:
    names = NAMES16[:: 16 // points]
    sector = 360 / points
    return names[int(((az % 360) + sector / 2) // sector) % points]


def near_edge(az: float, points: int = 8, margin: float = 3.0) -> bool:
    sector = 360 / points
    off = ((az % 360) + sector / 2) % sector
    return off < margin or off > sector - margin


def in_sector(az: float, name: str) -> bool:
    centre = NAMES16.index(name) * 22.5
    half = {1: 45.0, 2: 22.5, 3: 11.25}[len(name)]
    return abs((az - centre + 180) % 360 - 180) <= half


def sector_margin(az: float, name: str) -> float:
    centre = NAMES16.index(name) * 22.5
    half = {1: 45.0, 2: 22.5, 3: 11.25}[len(name)]
    return abs(abs((az - centre + 180) % 360 - 180) - half)


def area(g) -> float:
    if g.geom_type in ("Point", "LineString", "MultiLineString", "MultiPoint"):
        return 0.0
    return abs(G.geometry_area_perimeter(shapely.geometry.polygon.orient(g, 1.0))[0])


def length(g) -> float:
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return G.geometry_length(g.boundary)
    return G.geometry_length(g)


RELATIONS = ("equals", "within", "contains", "overlaps", "crosses", "touches", "intersects")


def relation(a, b) -> str:
    for name in RELATIONS:
        if getattr(shapely, name)(a, b):
            return name
    return "disjoint"


# ---------------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------------
def lines_objects():
    """Long and large objects: a 20 km east-west road, a small lake 79 m south of it, a
    large lake, a river running north from beside the large lake, a well."""
    lat0 = 48.0
    road = LineString([(10.0, lat0), (10.27, lat0)])  # ~20 km
    # the small lake: 79 m south of the road, under its eastern part (seen from the road's
    # centroid the lake is almost due east: the centroid definition says "east")
    top = G.fwd(10.25, lat0, 180.0, 79.0)[1]
    bottom = G.fwd(10.25, lat0, 180.0, 279.0)[1]
    lake_small = box(10.2485, bottom, 10.2515, top)
    lake_big = box(10.0, 47.90, 10.12, 47.95)  # ~9 km x 5.5 km
    # river: starts 300 m east of the big lake's east shore, at its middle, runs 14 km north
    x0 = G.fwd(10.12, 47.925, 90.0, 300.0)[0]
    river = LineString([(x0, 47.925), (x0, 48.05)])
    well = Point(10.05, 47.97)
    return [
        ("road-1", "road", road),
        ("lake-s", "lake", lake_small),
        ("lake-b", "lake", lake_big),
        ("river-1", "river", river),
        ("well-1", "well", well),
    ]


@lru_cache(maxsize=1)
def scenes() -> dict[str, Scene]:
    town = read_scene(REPO / "examples" / "town.geojson", crs="EPSG:4326")
    sample = read_scene(REPO / "data_catalog" / "sample" / "sample_truth.geojson")
    ids, labels, geoms = zip(*lines_objects())
    lines = Scene(ids, labels, geoms, "EPSG:4326", source="lines")
    return {"town": town, "sample": sample, "lines": lines}


def pixel_transform():
    """(fn, crs) mapping pixel (col, row) of the town grid to lon/lat, for ``ask(pixel=...)``."""
    a = TOWN_AFFINE

    def fn(c):
        return np.column_stack([a.a * c[:, 0] + a.b * c[:, 1] + a.c, a.d * c[:, 0] + a.e * c[:, 1] + a.f])

    return fn, CRS.from_epsg(4326)


# ---------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------
def _geoms(scene: Scene) -> dict[str, Any]:
    return {str(i): g for i, g in zip(scene.ids, scene.geoms)}


def _of_class(scene: Scene, cls: str) -> list[str]:
    return [str(i) for i, lab in zip(scene.ids, scene.labels) if lab == cls]


def _say(oid: str, cls: str, style: int) -> str:
    """An object named the ways people name it."""
    return [f"#{oid}", oid, f"{cls} {oid}", f"the {cls} #{oid}", f"object {oid}"][style % 5]


NICE_M = [
    50,
    100,
    150,
    200,
    250,
    300,
    400,
    500,
    600,
    750,
    800,
    1000,
    1200,
    1500,
    2000,
    2500,
    3000,
    4000,
    5000,
    8000,
]


def _safe_thresholds(values: list[float], margin: float = 0.02) -> list[float]:
    return [t for t in NICE_M if all(abs(v - t) > margin * t for v in values)]


def _say_dist(m: float, style: int) -> tuple[str, float]:
    """A distance in metres written the ways people write it; returns (text, metres it means)."""
    forms = [
        (f"{m:g} m", m),
        (f"{m:g}m", m),
        (f"{m / 1000:g} km", m),
        (f"{m / 1000:g}km", m),
        (f"{m:g} metres", m),
        (f"{m:g} meters", m),
        (f"{m:g} mtrs", m),
        (f"{m / 1000:g} kms", m),
        (f"{m / 0.3048:.0f} ft", round(m / 0.3048) * 0.3048),
        (f"{m / 1609.344:.3f} mi", round(m / 1609.344, 3) * 1609.344),
    ]
    return forms[style % len(forms)]


def cases() -> list[Case]:
    out: list[Case] = []
    sc = scenes()
    town, sample, lines = sc["town"], sc["sample"], sc["lines"]
    tg, sg, lg = _geoms(town), _geoms(sample), _geoms(lines)
    style = itertools.count()

    # --- distance paraphrases (town) ----------------------------------------------------
    pairs = [
        ("b1", "building", "lake-1", "lake"),
        ("b7", "building", "b6", "building"),
        ("b3", "building", "well-1", "well"),
        ("b8", "building", "park-1", "park"),
        ("b5", "building", "b2", "building"),
        ("b4", "building", "b1", "building"),
    ]
    dist_forms = [
        ("What is the distance between {A} and {B}?", "m", 1),
        ("How far is {A} from {B}?", "m", 1),
        ("How far apart are {A} and {B}?", "m", 1),
        ("How many meters separate {A} from {B}?", "m", 1),
        ("What's the distance from {A} to {B}?", "m", 1),
        ("distance {A} to {B} in kilometers", "km", 1000),
        ("How close is {A} to {B}?", "m", 1),
        ("how far is {A} from {B} in km", "km", 1000),
        ("Distance between {A} and {B}, in metres?", "m", 1),
        ("How many kilometres apart are {A} and {B}?", "km", 1000),
        ("what is the shortest distance between {A} and {B} in miles", "mi", 1609.344),
        ("How far away is {A} from {B}?", "m", 1),
        ("What is the distance in kilometers between {A} and {B}?", "km", 1000),
        ("What is the distance to {B} from {A}?", "m", 1),
        ("How far is it between {A} and {B}?", "m", 1),
    ]
    for (a, ca, b, cb), (tmpl, unit, f) in itertools.product(pairs, dist_forms):
        if unit is None:
            continue
        q = tmpl.format(A=_say(a, ca, next(style)), B=_say(b, cb, next(style)))
        out.append(Case("distance", "town", q, dist(tg[a], tg[b]) / f, unit=unit))
    # named single objects
    for tmpl in (
        "How far is the well from the river?",
        "how close is the road to the river",
        "What is the distance between the park and the road?",
        "How far is the well from the road in km?",
    ):
        names = {"well": "well-1", "river": "river-1", "road": "road-1", "park": "park-1"}
        objs = [names[w] for w in names if f"the {w}" in tmpl]
        # order of mention
        objs.sort(key=lambda o: tmpl.index("the " + o.split("-")[0]))
        unit, f = ("km", 1000) if "km" in tmpl else ("m", 1)
        out.append(Case("distance", "town", tmpl, dist(tg[objs[0]], tg[objs[1]]) / f, unit=unit))

    # --- centroid distances --------------------------------------------------------------
    for (a, ca, b, cb), tmpl in itertools.product(
        pairs[:5],
        [
            "What is the center-to-center distance between {A} and {B}?",
            "What is the distance between the centres of {A} and {B}?",
            "How far apart are {A} and {B}, centre to centre?",
        ],
    ):
        q = tmpl.format(A=_say(a, ca, next(style)), B=_say(b, cb, next(style)))
        out.append(Case("distance (centroid)", "town", q, cdist(tg[a], tg[b]), unit="m"))

    # --- direction (nearest parts, centroid by name) ------------------------------------
    dir_forms = [
        "In which direction is {B} from {A}?",
        "In what direction does {B} lie from {A}?",
        "Where is {B} relative to {A}?",
        "What is the direction from {A} to {B}?",
        "which direction is {B} from {A}",
    ]
    blds = _of_class(town, "building")
    n = 0
    for a, b in itertools.permutations(blds + ["well-1", "lake-2"], 2):
        az = azimuth(tg[a], tg[b])
        if near_edge(az):
            continue
        tmpl = dir_forms[n % len(dir_forms)]
        ca = town.labels[town.index(a)]
        cb = town.labels[town.index(b)]
        out.append(
            Case("direction", "town", tmpl.format(A=_say(a, ca, n), B=_say(b, cb, n + 1)), compass(az))
        )
        n += 1
        if n >= 20:
            break
    n = 0
    for a, b in itertools.permutations(blds, 2):
        az = azimuth(tg[a], tg[b], "centroid")
        if near_edge(az, 16):
            continue
        out.append(
            Case(
                "direction (centroid)",
                "town",
                f"In which direction is #{b} from #{a} by centroid?",
                compass(az),
            )
        )
        out.append(
            Case(
                "direction (centroid)",
                "town",
                f"What is the 16-point direction from {a} to {b}, by centroids?",
                compass(az, 16),
            )
        )
        n += 1
        if n >= 6:
            break

    # --- is B <direction> of A -------------------------------------------------------------
    isdir_forms = [
        ("Is {B} {d} of {A}?", None),
        ("Is {B} to the {d} of {A}?", None),
        ("Does {B} lie {d} of {A}?", None),
        ("{B} is {d} of {A}?", None),
    ]
    words = {
        "N": "north",
        "S": "south",
        "E": "east",
        "W": "west",
        "NE": "north-east",
        "NW": "northwest",
        "SE": "south east",
        "SW": "southwest",
    }
    n = 0
    for a, b in itertools.permutations(blds + ["well-1", "park-1"], 2):
        az = azimuth(tg[a], tg[b])
        for name in ("N", "E", "S", "W", "NE", "SW"):
            if sector_margin(az, name) < 3:
                continue
            tmpl = isdir_forms[n % len(isdir_forms)][0]
            ca, cb = town.labels[town.index(a)], town.labels[town.index(b)]
            q = tmpl.format(B=_say(b, cb, n), A=_say(a, ca, n + 2), d=words[name])
            out.append(Case("is direction", "town", q, in_sector(az, name)))
            n += 1
        if n >= 36:
            break
    # map terms
    for a, b in [("b6", "b3"), ("b2", "b8"), ("b5", "b1")]:
        az = azimuth(tg[a], tg[b])
        if sector_margin(az, "N") > 3:
            out.append(Case("is direction", "town", f"Is {b} above {a} on the map?", in_sector(az, "N")))
        if sector_margin(az, "S") > 3:
            out.append(Case("is direction", "town", f"Is {b} below {a}?", in_sector(az, "S")))

    # --- long / large objects: direction as seen on the map --------------------------------
    out += [
        Case("direction (extended)", "lines", "Is the smallest lake south of road-1?", True),
        Case(
            "direction (extended)",
            "lines",
            "Is the small lake south of the road?".replace("small lake", "smallest lake"),
            True,
        ),
        Case("direction (extended)", "lines", "In which direction is the smallest lake from the road?", "S"),
        Case("direction (extended)", "lines", "Is the road north of #lake-s?", True),
        Case("direction (extended)", "lines", "Is the river east of the largest lake?", True),
        Case("direction (extended)", "lines", "In which direction is the river from #lake-b?", "E"),
        Case("direction (extended)", "lines", "Is the largest lake west of the river?", True),
        Case(
            "direction (extended)",
            "lines",
            "Is #lake-s south of road-1 by centroid?",
            in_sector(azimuth(lg["road-1"], lg["lake-s"], "centroid"), "S"),
        ),
        Case(
            "direction (extended)",
            "lines",
            "In which direction is the river from #lake-b by centroid?",
            compass(azimuth(lg["lake-b"], lg["river-1"], "centroid")),
        ),
        Case("direction (extended)", "lines", "Is the well north of the largest lake?", True),
    ]

    # --- bearing (centroids) ------------------------------------------------------------------
    for a, b in [("b1", "b6"), ("b3", "b7"), ("well-1", "b5"), ("b8", "b2")]:
        az = azimuth(tg[a], tg[b], "centroid")
        out.append(
            Case("bearing", "town", f"What is the bearing from #{a} to #{b}?", az, rel=1e-4, unit="deg")
        )
        out.append(Case("bearing", "town", f"azimuth {a} to {b}", az, rel=1e-4, unit="deg"))

    # --- topology ----------------------------------------------------------------------------
    topo_pairs = [
        ("river-1", "lake-1"),
        ("river-1", "road-1"),
        ("b7", "park-1"),
        ("b1", "b2"),
        ("lake-2", "river-1"),
        ("park-1", "b7"),
        ("b5", "road-1"),
        ("well-1", "lake-1"),
    ]
    rel_forms = [
        "What is the topological relation between {A} and {B}?",
        "How are {A} and {B} spatially related?",
        "what's the spatial relationship between {A} and {B}",
        "How does {A} relate to {B}?",
    ]
    for i, (a, b) in enumerate(topo_pairs):
        ca, cb = town.labels[town.index(a)], town.labels[town.index(b)]
        q = rel_forms[i % 4].format(A=_say(a, ca, i), B=_say(b, cb, i + 1))
        out.append(Case("topology", "town", q, relation(tg[a], tg[b])))
    pred_forms = [
        ("Does {A} touch {B}?", "touches"),
        ("Are {A} and {B} touching?", "touches"),
        ("Is {A} adjacent to {B}?", "touches"),
        ("Does {A} border {B}?", "touches"),
        ("Is {A} inside {B}?", "within"),
        ("Is {A} within {B}?", "within"),
        ("Is {A} in {B}?", "within"),
        ("Does {A} cross {B}?", "crosses"),
        ("Do {A} and {B} intersect?", "intersects"),
        ("Does {A} intersect {B}?", "intersects"),
        ("Are {A} and {B} disjoint?", "disjoint"),
        ("Does {A} contain {B}?", "contains"),
        ("Does {A} overlap {B}?", "overlaps"),
    ]
    for (a, b), (tmpl, p) in itertools.product(topo_pairs, pred_forms):
        if (hash((a, b, tmpl)) % 3) and not (p == "within" and a == "b7"):
            continue
        ca, cb = town.labels[town.index(a)], town.labels[town.index(b)]
        q = tmpl.format(A=_say(a, ca, len(out)), B=_say(b, cb, len(out) + 1))
        out.append(Case("topology", "town", q, bool(getattr(shapely, p)(tg[a], tg[b]))))

    # --- counts: distance bounds, units, typos, ranges, directions, relations ------------------
    count_forms = [
        "How many buildings are within {D} of {A}?",
        "How many buildings lie within {D} of {A}?",
        "Number of buildings less than {D} from {A}?",
        "how many buildings within {D} of {A}",
        "Count the buildings closer than {D} to {A}.",
        "how many buildings are there within {D} of {A}",
    ]
    refs = [
        ("lake-1", "lake", "the largest lake"),
        ("well-1", "well", "the well"),
        ("river-1", "river", "the river"),
        ("park-1", "park", "#park-1"),
        ("road-1", "road", "road-1"),
    ]
    k = 0
    for oid, _c, said in refs:
        ds = [dist(tg[b], tg[oid]) for b in blds]
        for t in _safe_thresholds(ds)[::2]:
            text, metres = _say_dist(t, k)
            if any(abs(d - metres) < 0.01 * metres for d in ds):
                continue
            q = count_forms[k % len(count_forms)].format(D=text, A=said)
            out.append(Case("count within", "town", q, sum(d <= metres for d in ds)))
            k += 1
    for oid, _c, said in refs:
        ds = [dist(tg[b], tg[oid]) for b in blds]
        safe = _safe_thresholds(ds)
        for t in safe[1::3]:
            out.append(
                Case(
                    "count beyond",
                    "town",
                    f"How many buildings are more than {t:g} m away from {said}?",
                    sum(d > t for d in ds),
                )
            )
        for lo, hi in zip(safe[::3], safe[2::3]):
            out.append(
                Case(
                    "count range",
                    "town",
                    f"How many buildings are between {lo / 1000:g} and {hi / 1000:g} km from {said}?",
                    sum(lo <= d <= hi for d in ds),
                )
            )
    # sample scene counts (32 buildings)
    sblds = _of_class(sample, "building")
    for oid, said in [
        ("lake-1", "#lake-1"),
        ("road-1", "road-1"),
        ("river-1", "the river"),
        ("lake-3", "lake-3"),
    ]:
        ds = [dist(sg[b], sg[oid]) for b in sblds]
        for t in _safe_thresholds(ds)[::3]:
            out.append(
                Case(
                    "count within",
                    "sample",
                    f"How many buildings are within {t:g} m of {said}?",
                    sum(d <= t for d in ds),
                )
            )
    # composite: within D and direction
    for oid, _c, said in refs[:4]:
        ds = {b: dist(tg[b], tg[oid]) for b in blds}
        azs = {b: azimuth(tg[oid], tg[b]) for b in blds}
        for t in _safe_thresholds(list(ds.values()))[2::4]:
            for name, word in (("N", "north"), ("E", "east"), ("S", "south"), ("W", "west")):
                if any(sector_margin(azs[b], name) < 3 for b in blds):
                    continue
                want = sum(ds[b] <= t and in_sector(azs[b], name) for b in blds)
                out.append(
                    Case(
                        "count composite",
                        "town",
                        f"How many buildings are within {t:g} m of {said} and {word} of it?",
                        want,
                    )
                )
    for oid, said in [("river-1", "the river"), ("road-1", "the road"), ("lake-1", "#lake-1")]:
        azs = {b: azimuth(tg[oid], tg[b]) for b in blds}
        for name, word in (("N", "north"), ("S", "to the south"), ("E", "east"), ("W", "west")):
            if any(sector_margin(azs[b], name) < 3 for b in blds):
                continue
            out.append(
                Case(
                    "count direction",
                    "town",
                    f"How many buildings are {word} of {said}?",
                    sum(in_sector(azs[b], name) for b in blds),
                )
            )
    # relations (sample: fields / vegetation / roads)
    for cls, other in [
        ("building", "road-1"),
        ("field", "road-1"),
        ("vegetation", "river-1"),
        ("building", "lake-1"),
        ("field", "vegetation-1"),
        ("building", "road-2"),
    ]:
        members = _of_class(sample, cls)
        for word, p in [("intersect", "intersects"), ("touch", "touches"), ("are inside", "within")]:
            want = sum(bool(getattr(shapely, p)(sg[m], sg[other])) for m in members if m != other)
            out.append(Case("count relation", "sample", f"How many {cls}s {word} {other}?", want))
    out.append(Case("count", "town", "How many buildings are there?", len(blds)))
    out.append(Case("count", "town", "how many lakes", 2))
    out.append(Case("count", "sample", "Count the fields.", 6))
    out.append(Case("count", "sample", "What is the number of buildings in the image?", 32))
    out.append(
        Case(
            "count",
            "town",
            "How many buildings does #park-1 contain?",
            sum(shapely.contains(tg["park-1"], tg[b]) for b in blds),
        )
    )

    # --- is there any ... (existence) ---------------------------------------------------------
    for oid, _c, said in refs:
        ds = [dist(tg[b], tg[oid]) for b in blds]
        for t in _safe_thresholds(ds)[::3]:
            out.append(
                Case("exists", "town", f"Are there any buildings within {t:g} m of {said}?", min(ds) <= t)
            )

    # --- nearest / farthest -------------------------------------------------------------------
    rank_forms = [
        ("Which building is nearest to {A}?", False),
        ("What is the closest building to {A}?", False),
        ("closest building to {A}?", False),
        ("Which building is farthest from {A}?", True),
        ("which building lies furthest from {A}", True),
        ("Which building is the closest to {A}?", False),
    ]
    for (oid, _c, said), (tmpl, far) in itertools.product(refs, rank_forms):
        ds = sorted(((dist(tg[b], tg[oid]), b) for b in blds if b != oid), reverse=far)
        if abs(ds[0][0] - ds[1][0]) < 1e-3 * max(ds[0][0], 1):
            continue
        out.append(Case("nearest/farthest", "town", tmpl.format(A=said), ds[0][1]))
    for oid, said in (("well-1", "the well"), ("b7", "#b7"), ("road-1", "the road")):
        d1, d2 = dist(tg["lake-1"], tg[oid]), dist(tg["lake-2"], tg[oid])
        out.append(
            Case(
                "nearest/farthest",
                "town",
                f"Which lake is closer to {said}?",
                "lake-1" if d1 < d2 else "lake-2",
            )
        )
        out.append(
            Case(
                "nearest/farthest",
                "town",
                f"Which lake is farther from {said}?",
                "lake-1" if d1 > d2 else "lake-2",
            )
        )
        ds = sorted((dist(tg[b], tg[oid]), b) for b in blds if b != oid)
        out.append(Case("nearest/farthest", "town", f"What's the nearest building to {said}?", ds[0][1]))
        out.append(
            Case("nearest/farthest", "town", f"Which building is furthest away from {said}?", ds[-1][1])
        )
    for oid in ("lake-1", "road-2", "river-1", "field-3"):
        ds = sorted((dist(sg[b], sg[oid]), b) for b in sblds)
        out.append(Case("nearest/farthest", "sample", f"Which building is nearest to #{oid}?", ds[0][1]))
        out.append(Case("nearest/farthest", "sample", f"Which building is farthest from {oid}?", ds[-1][1]))

    # --- extremes ----------------------------------------------------------------------------
    def ext(scene_g, members, fn, largest):
        vals = sorted(((fn(scene_g[m]), m) for m in members), reverse=largest)
        return vals[0][1]

    for scene_name, g, scene in (("town", tg, town), ("sample", sg, sample)):
        for cls in ("lake", "building"):
            members = _of_class(scene, cls)
            out.append(
                Case(
                    "largest/smallest",
                    scene_name,
                    f"Which is the largest {cls}?",
                    ext(g, members, area, True),
                )
            )
            out.append(
                Case(
                    "largest/smallest",
                    scene_name,
                    f"Which {cls} is the smallest?",
                    ext(g, members, area, False),
                )
            )
            out.append(Case("largest/smallest", scene_name, f"biggest {cls}?", ext(g, members, area, True)))
    out.append(
        Case(
            "largest/smallest",
            "sample",
            "Which is the longest road?",
            ext(sg, ["road-1", "road-2"], length, True),
        )
    )
    out.append(
        Case(
            "largest/smallest",
            "sample",
            "Which road is the shortest?",
            ext(sg, ["road-1", "road-2"], length, False),
        )
    )

    # --- measures --------------------------------------------------------------------------------
    for oid, cls in [("lake-1", "lake"), ("lake-2", "lake"), ("park-1", "park"), ("b1", "building")]:
        a = area(tg[oid])
        out += [
            Case("area", "town", f"What is the area of {_say(oid, cls, 0)}?", a, unit="m2"),
            Case("area", "town", f"How big is {_say(oid, cls, 1)} in hectares?", a / 1e4, unit="ha"),
            Case("area", "town", f"area of {_say(oid, cls, 2)} in km2", a / 1e6, unit="km2"),
            Case("area", "town", f"How many square meters is {_say(oid, cls, 3)}?", a, unit="m2"),
        ]
    for oid, said in [("river-1", "the river"), ("road-1", "the road"), ("park-1", "#park-1")]:
        L = length(tg[oid])
        word = "perimeter" if oid == "park-1" else "length"
        out += [
            Case("length", "town", f"What is the {word} of {said}?", L, unit="m"),
            Case("length", "town", f"How long is {said} in km?", L / 1000, unit="km"),
            Case("length", "town", f"how long is {said} in miles", L / 1609.344, unit="mi"),
        ]

    # --- aggregates ----------------------------------------------------------------------------
    for oid, said in [("well-1", "#well-1"), ("river-1", "the river"), ("lake-1", "the largest lake")]:
        ds = np.array([dist(tg[b], tg[oid]) for b in blds])
        out += [
            Case(
                "aggregate",
                "town",
                f"What is the average distance from the buildings to {said}?",
                ds.mean(),
                unit="m",
            ),
            Case(
                "aggregate",
                "town",
                f"What is the maximum distance between the buildings and {said} in km?",
                ds.max() / 1000,
                unit="km",
            ),
            Case(
                "aggregate",
                "town",
                f"what's the minimum distance from the buildings to {said}",
                ds.min(),
                unit="m",
            ),
            Case(
                "aggregate",
                "town",
                f"On average, how far are the buildings from {said}?",
                ds.mean(),
                unit="m",
            ),
        ]
    for scene_name, g, scene in (("town", tg, town), ("sample", sg, sample)):
        for cls in ("building", "lake"):
            a = np.array([area(g[m]) for m in _of_class(scene, cls)])
            out += [
                Case("aggregate", scene_name, f"What is the mean area of the {cls}s?", a.mean(), unit="m2"),
                Case(
                    "aggregate",
                    scene_name,
                    f"What is the sum of the areas of the {cls}s?",
                    a.sum(),
                    unit="m2",
                ),
                Case(
                    "aggregate",
                    scene_name,
                    f"What is the total area of {cls}s in hectares?",
                    area(shapely.union_all([g[m] for m in _of_class(scene, cls)])) / 1e4,
                    unit="ha",
                ),
            ]
    L = np.array([length(sg[r]) for r in ("road-1", "road-2")])
    out.append(
        Case(
            "aggregate",
            "sample",
            "What is the sum of the lengths of the roads in km?",
            L.sum() / 1000,
            unit="km",
        )
    )
    out.append(Case("aggregate", "sample", "What is the average length of the roads?", L.mean(), unit="m"))

    # --- yes/no distance comparisons ------------------------------------------------------------
    for i, (a, ca, b, cb) in enumerate(pairs):
        d = dist(tg[a], tg[b])
        for t in [x for x in NICE_M if abs(x - d) > 0.05 * x][::4]:
            A, B = _say(a, ca, i), _say(b, cb, i + 2)
            text, metres = _say_dist(t, i)
            out.append(Case("is within", "town", f"Is {A} within {text} of {B}?", d <= metres))
            out.append(Case("is beyond", "town", f"Is {A} more than {text} away from {B}?", d > metres))
    out.append(
        Case("is within", "town", "Is b7 beyond 2 km of the river?", dist(tg["b7"], tg["river-1"]) > 2000)
    )
    # closer than
    trip = [
        ("b1", "b8", "river-1", "the river"),
        ("b3", "b7", "well-1", "the well"),
        ("b2", "b5", "road-1", "the road"),
        ("b4", "b6", "lake-1", "#lake-1"),
        ("b6", "b1", "park-1", "the park"),
    ]
    for a, b, c, said in trip:
        da, db = dist(tg[a], tg[c]), dist(tg[b], tg[c])
        out += [
            Case("closer than", "town", f"Is {a} closer to {said} than {b} is?", da < db),
            Case("closer than", "town", f"Is #{a} farther from {said} than #{b}?", da > db),
            Case("which of two", "town", f"Which of #{a} and #{b} is closer to {said}?", a if da < db else b),
            Case("which of two", "town", f"Which is farther from {said}: {a} or {b}?", a if da > db else b),
            Case(
                "which of two",
                "town",
                f"which one is nearer to {said}, building {a} or building {b}?",
                a if da < db else b,
            ),
        ]
        d1, d2 = dist(tg[a], tg[c]), dist(tg[a], tg[b])
        out.append(Case("closer than", "town", f"Is #{a} closer to {said} than to #{b}?", d1 < d2))
    out.append(
        Case(
            "closer than",
            "town",
            "Is the largest lake bigger than #park-1?",
            area(tg["lake-1"]) > area(tg["park-1"]),
        )
    )
    out.append(
        Case(
            "closer than",
            "town",
            "Is the river longer than the road?",
            length(tg["river-1"]) > length(tg["road-1"]),
        )
    )

    # --- chains ----------------------------------------------------------------------------------
    def nearest_of(g, members, ref):
        return min((dist(g[m], g[ref]), m) for m in members if m != ref)

    for oid, said in [
        ("lake-1", "#lake-1"),
        ("well-1", "the well"),
        ("park-1", "the park"),
        ("river-1", "the river"),
    ]:
        d, m = nearest_of(tg, blds, oid)
        out.append(
            Case("chain", "town", f"What is the distance from {said} to its nearest building?", d, unit="m")
        )
        out.append(Case("chain", "town", f"How far is the nearest building to {said} from it?", d, unit="m"))
    for oid, said in [
        ("river-1", "the river"),
        ("road-1", "the road"),
        ("well-1", "#well-1"),
        ("lake-1", "#lake-1"),
    ]:
        for name, word in (("E", "east"), ("S", "south"), ("W", "west"), ("N", "north")):
            azs = {b: azimuth(tg[oid], tg[b]) for b in blds}
            if any(sector_margin(azs[b], name) < 3 for b in blds):
                continue
            members = [b for b in blds if in_sector(azs[b], name)]
            if not members:
                continue
            d, m = min((dist(tg[b], tg[oid]), b) for b in members)
            out.append(Case("chain", "town", f"Which building {word} of {said} is closest to it?", m))
            out.append(Case("chain", "town", f"Find the building {word} of {said} that is closest to it.", m))

    # --- region answers ---------------------------------------------------------------------------
    for oid, said in [("lake-1", "#lake-1"), ("well-1", "the well"), ("river-1", "the river")]:
        ds = {b: dist(tg[b], tg[oid]) for b in blds}
        for t in _safe_thresholds(list(ds.values()))[1::4]:
            out.append(
                Case(
                    "list",
                    "town",
                    f"Show all buildings within {t:g} m of {said}.",
                    sorted(b for b in blds if ds[b] <= t),
                )
            )
    out.append(
        Case(
            "list",
            "town",
            "List the buildings inside #park-1",
            sorted(b for b in blds if shapely.contains(tg["park-1"], tg[b])),
        )
    )
    azs = {b: azimuth(tg["road-1"], tg[b]) for b in blds}
    out.append(
        Case(
            "list",
            "town",
            "Which buildings are south of road-1?",
            sorted(b for b in blds if in_sector(azs[b], "S")),
        )
    )

    # --- references: WKT, bbox, coordinate lists, EPSG, pixels -------------------------------------
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    for lon, lat in [(9.18, 47.66), (9.2, 47.67), (9.16, 47.655)]:
        p = Point(lon, lat)
        x, y = utm.transform(lon, lat)
        out += [
            Case(
                "references", "town", f"How far is #b1 from POINT ({lon} {lat})?", dist(tg["b1"], p), unit="m"
            ),
            Case("references", "town", f"How far is #b1 from ({lon}, {lat})?", dist(tg["b1"], p), unit="m"),
            Case(
                "references",
                "town",
                f"How far is #well-1 from POINT ({x:.2f} {y:.2f}) (EPSG:32632)?",
                dist(tg["well-1"], p),
                rel=1e-5,
                unit="m",
            ),
        ]
    bb = (9.17, 47.655, 9.19, 47.665)
    out.append(
        Case(
            "references",
            "town",
            f"How many buildings are inside [{bb[0]}, {bb[1]}, {bb[2]}, {bb[3]}]?",
            sum(box(*bb).contains(tg[b]) for b in blds),
        )
    )
    line = [(9.15, 47.66), (9.2, 47.66)]
    out.append(
        Case(
            "references",
            "town",
            "How far is the well from the line [[9.15, 47.66], [9.2, 47.66]]?",
            dist(tg["well-1"], LineString(line)),
            unit="m",
        )
    )
    lake2 = tg["lake-2"].bounds
    out.append(
        Case(
            "references",
            "town",
            f"What is the area of the lake at [{lake2[0]}, {lake2[1]}, {lake2[2]}, {lake2[3] + 0.0002}]?",
            area(tg["lake-2"]),
            unit="m2",
        )
    )
    # pixels on the town grid: col = (lon - 9.14) / 1e-4, row = (47.70 - lat) / 1e-4
    inv_aff = ~TOWN_AFFINE
    for oid in ("b1", "b5", "b7"):
        x0, y0, x1, y1 = tg[oid].bounds
        c0, r1 = inv_aff @ (x0, y0)
        c1, r0 = inv_aff @ (x1, y1)
        pix = f"[{c0:.0f}, {r0:.0f}, {c1:.0f}, {r1:.0f}]"
        out.append(
            Case(
                "pixel references",
                "town",
                f"How far is the building at pixel {pix} from the well?",
                dist(tg[oid], tg["well-1"]),
                unit="m",
                pixel=True,
            )
        )
    for col, row in [(400, 350), (250, 420)]:
        lon, lat = TOWN_AFFINE @ (col, row)
        out.append(
            Case(
                "pixel references",
                "town",
                f"How far is #b1 from ({col}, {row}) in pixels?",
                dist(tg["b1"], Point(lon, lat)),
                unit="m",
                pixel=True,
            )
        )
        out.append(
            Case(
                "pixel references",
                "town",
                f"how far is the well from pixel ({col}, {row})",
                dist(tg["well-1"], Point(lon, lat)),
                unit="m",
                pixel=True,
            )
        )
    out += _harness_and_template_cases(tg, town)
    return _spread(out, PER_FORM)


def _harness_and_template_cases(tg: dict[str, Any], town: Scene) -> list[Case]:
    """Phrasings of ``georeason eval``'s generated questions and of the regex templates the
    grammar replaced (a question that worked before must keep working)."""
    out: list[Case] = []
    inv_aff = ~TOWN_AFFINE
    blds = _of_class(town, "building")

    def poly_px(oid: str) -> str:
        x0, y0, x1, y1 = tg[oid].bounds
        c0, r1 = inv_aff @ (x0, y0)
        c1, r0 = inv_aff @ (x1, y1)
        return f"[[{c0:.1f}, {r0:.1f}], [{c0:.1f}, {r1:.1f}], [{c1:.1f}, {r1:.1f}], [{c1:.1f}, {r0:.1f}]]"

    form = "eval and template phrasings"
    for oid in ("b1", "b5", "b7"):
        at = f"the building at the polygon {poly_px(oid)} in pixels"
        out.append(
            Case(
                form,
                "town",
                f"What is the distance between {at} and the well?",
                dist(tg[oid], tg["well-1"]),
                unit="m",
                pixel=True,
            )
        )
        ds = [dist(tg[oid], tg[b]) for b in blds if b != oid]
        t = _safe_thresholds(ds)[len(_safe_thresholds(ds)) // 2]
        out.append(
            Case(
                form,
                "town",
                f"How many buildings are within {t:g} m of {at}?",
                sum(d <= t for d in ds),
                pixel=True,
            )
        )
    # which is closer, with the harness's (first)/(second) labels
    for a, b in (("b1", "b8"), ("b3", "b6")):
        da, db = dist(tg[a], tg["river-1"]), dist(tg[b], tg["river-1"])
        out.append(
            Case(
                form,
                "town",
                f"Which is closer to the river: (first) #{a} or (second) #{b}?",
                a if da < db else b,
            )
        )
    # a class and a WKT polygon; direction by centroid (the eval's truth definition)
    lake = tg["lake-2"]
    wkt = shapely.to_wkt(lake, rounding_precision=7)
    az = azimuth(tg["b4"], lake, "centroid")
    for name in ("E", "NE", "W"):
        if sector_margin(az, name) > 3:
            out.append(
                Case(
                    form,
                    "town",
                    f"Is the lake at {wkt} {words_of(name)} of #b4 by centroid?",
                    in_sector(az, name),
                )
            )
    # template forms: shouting, 'a' as the article in capitals, 'the'-less selectors
    near = sum(dist(tg[b], tg["lake-1"]) <= 1000 for b in blds)
    out.append(Case(form, "town", "HOW MANY BUILDINGS ARE WITHIN A DISTANCE OF 1000 M OF #lake-1?", near))
    out.append(
        Case(
            form,
            "town",
            "How far is largest lake from #b7?",
            dist(tg["b7"], max((tg["lake-1"], tg["lake-2"]), key=area)),
            unit="m",
        )
    )
    out.append(Case(form, "town", "Do #b1 and #b2 touch?", bool(shapely.touches(tg["b1"], tg["b2"]))))
    out.append(
        Case(
            form,
            "town",
            "do the river and the road intersect",
            bool(shapely.intersects(tg["river-1"], tg["road-1"])),
        )
    )
    out.append(
        Case(
            form,
            "town",
            "How far is the feature b6 from point (9.18, 47.66)?",
            dist(tg["b6"], Point(9.18, 47.66)),
            unit="m",
        )
    )
    return out


def words_of(name: str) -> str:
    return {
        "N": "north",
        "S": "south",
        "E": "east",
        "W": "west",
        "NE": "northeast",
        "NW": "northwest",
        "SE": "southeast",
        "SW": "southwest",
    }[name]


#: Most cases kept per form (evenly spread over the generated ones), to keep the run short.
PER_FORM = 24


def _spread(cases: list[Case], most: int) -> list[Case]:
    by: dict[str, list[Case]] = {}
    for c in cases:
        by.setdefault(c.form, []).append(c)
    out = []
    for group in by.values():
        if len(group) > most:
            step = len(group) / most
            group = [group[int(i * step)] for i in range(most)]
        out += group
    return out


def run_case(case: Case) -> tuple[str, str]:
    """Ask one case: ``("right" | "wrong" | "not understood", detail)``."""
    from georeason.errors import QuestionParseError
    from georeason.geo.language.english import ask

    scene = scenes()[case.scene]
    try:
        ans = ask(case.question, scene, pixel=pixel_transform() if case.pixel else None)
    except QuestionParseError as exc:
        return "not understood", str(exc).split(". Supported forms")[0]
    if ans.abstained:
        return "wrong", f"abstained: {ans.reason}"
    got = ans.value
    want = case.expected
    if isinstance(want, bool):
        ok = got is want
    elif isinstance(want, float | np.floating):
        ok = isinstance(got, float) and abs(got - want) <= case.rel * max(abs(want), 1e-9) + 1e-9
        if case.unit is not None and ans.unit != case.unit:
            ok = False
    elif isinstance(want, list):
        ok = isinstance(got, list) and sorted(got) == sorted(want)
    else:
        ok = got == want
    return ("right" if ok else "wrong"), f"got {got!r} {ans.unit or ''}, expected {want!r}"
