"""geo.vector.regions and the executor's region answers, against whole unions.

Expected values are computed here independently: shapely ``union_all`` then
``intersection`` / ``buffer`` in one call, areas by pyproj's ``Geod`` on WGS84, masks by
rasterio's ``rasterize`` of the union-then-intersection geometry. Scenes are random,
with overlapping objects, pixel-edged (staircase) objects touching along edges, and a
region that touches an object along an edge only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.features import rasterize
from shapely.geometry import polygon

from georeason.geo.language.executor import execute
from georeason.geo.raster.grid import RasterGrid
from georeason.geo.vector.regions import buffer_piecewise, dissolve, intersect_sets
from georeason.geo.vector.scene import Scene

UTM = "EPSG:32633"
GEOD = Geod(ellps="WGS84")
X0, Y0 = 500_000.0, 5_000_000.0


def _staircase(rng: np.random.Generator, cx: float, cy: float, cells: int, px: float) -> shapely.Polygon:
    """A pixel-edged blob: the union of random pixel squares around a centre (as a raster
    grounder's polygons are), its largest part."""
    boxes = []
    for i in range(-cells, cells + 1):
        for j in range(-cells, cells + 1):
            if i * i + j * j <= cells * cells * rng.uniform(0.5, 1.2):
                boxes.append(shapely.box(cx + i * px, cy + j * px, cx + (i + 1) * px, cy + (j + 1) * px))
    u = shapely.union_all(boxes)
    parts = list(shapely.get_parts(u))
    return max(parts, key=lambda p: p.area)


def _objects(seed: int) -> list:
    """Pixel-edged blobs on a grid (some touching along edges), plus overlapping copies."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(14):
        cx = X0 + rng.uniform(0, 3000) // 10 * 10
        cy = Y0 + rng.uniform(0, 3000) // 10 * 10
        out.append(_staircase(rng, cx, cy, int(rng.integers(3, 12)), 10.0))
    # edge-touching neighbours: a box sharing an edge with the first blob's bounding edge
    x1, y1, x2, y2 = out[0].bounds
    out.append(shapely.box(x2, y1, x2 + 50, y2))
    for g in out[:4]:  # overlapping copies
        out.append(shapely.affinity.translate(g, 15.0, 5.0))
    return out


def _same_set(got, want, tol: float = 1e-6) -> None:
    assert shapely.symmetric_difference(got, want).area <= tol * max(want.area, 1.0)
    assert got.area == pytest.approx(want.area, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_dissolve_covers_what_the_union_covers_each_point_once(seed):
    objs = _objects(seed)
    got = dissolve(objs)
    want = shapely.union_all(objs)
    _same_set(got, want)
    parts = shapely.get_parts(got)
    # parts do not overlap: their areas add up to the union's
    assert sum(p.area for p in parts) == pytest.approx(want.area, rel=1e-9)


def test_dissolve_keeps_lines_only_where_no_polygon_covers_them():
    sq = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]
    line = shapely.LineString([(0.5, 0.5), (3, 0.5)])  # 1.5 of it inside the squares
    got = dissolve([*sq, line])
    want = shapely.union_all([*sq, line])
    assert shapely.equals(shapely.union_all(shapely.get_parts(got)), want)
    lines = [p for p in shapely.get_parts(got) if p.geom_type == "LineString"]
    assert sum(p.length for p in lines) == pytest.approx(1.0)


def test_dissolved_parts_make_a_valid_multipolygon():
    # a row of parcels sharing edges (a vector layer, not pixel components), one touching
    # the row only at a corner, one apart: exported, a region is a MultiPolygon, which OGC
    # allows to touch at points but not along an edge
    row = [shapely.box(i, 0, i + 1, 1) for i in range(3)]
    corner = shapely.box(3, 1, 4, 2)
    apart = shapely.box(10, 0, 11, 1)
    got = dissolve([*row, corner, apart])
    want = shapely.union_all([*row, corner, apart])
    polys = [p for p in shapely.get_parts(got) if p.geom_type == "Polygon"]
    multi = shapely.MultiPolygon(polys)
    assert multi.is_valid, shapely.is_valid_reason(multi)
    assert shapely.equals(multi, want)
    assert multi.area == pytest.approx(5.0)
    # the parcels of the row became one polygon; the corner and the far one stay apart
    assert len(polys) == 3


def test_intersected_edge_sharing_parcels_make_a_valid_multipolygon():
    parcels = [shapely.box(i, 0, i + 1, 1) for i in range(4)]
    region = shapely.box(0.5, 0.25, 3.5, 0.75)
    got = intersect_sets(parcels, [region])
    multi = shapely.MultiPolygon([p for p in shapely.get_parts(got) if p.geom_type == "Polygon"])
    assert multi.is_valid, shapely.is_valid_reason(multi)
    assert shapely.equals(multi, shapely.intersection(shapely.union_all(parcels), region))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_intersect_sets_equals_union_then_intersection(seed):
    rng = np.random.default_rng(100 + seed)
    objs = _objects(seed)
    regions = [
        shapely.Point(X0 + rng.uniform(500, 2500), Y0 + rng.uniform(500, 2500)).buffer(rng.uniform(300, 900))
        for _ in range(3)
    ]
    got = intersect_sets(objs, regions)
    want = shapely.intersection(shapely.union_all(objs), shapely.union_all(regions))
    _same_set(got, want)
    assert sum(p.area for p in shapely.get_parts(got)) == pytest.approx(want.area, rel=1e-9)
    # either side may be the larger one
    _same_set(intersect_sets(regions, objs), want)


def test_intersect_sets_with_a_region_touching_an_object_along_an_edge():
    a, b = shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)
    region = shapely.box(10, 2, 15, 8)  # touches a along x = 10, misses b
    got = intersect_sets([a, b], [region])
    want = shapely.intersection(shapely.union_all([a, b]), region)
    assert want.geom_type == "LineString"
    assert shapely.equals(got, want)
    # and where the region also overlaps b, the edge with a stays a line beside b's piece
    region2 = shapely.box(10, 2, 25, 8)
    got2 = intersect_sets([a, b], [region2])
    want2 = shapely.intersection(shapely.union_all([a, b]), region2)
    assert shapely.equals(shapely.union_all(shapely.get_parts(got2)), want2)
    assert got2.area == pytest.approx(want2.area)


def test_intersect_sets_of_nothing_is_empty():
    assert intersect_sets([], [shapely.box(0, 0, 1, 1)]).is_empty
    assert intersect_sets([shapely.box(0, 0, 1, 1)], [shapely.box(5, 5, 6, 6)]).is_empty


def _arc_error(d: float, quad_segs: int) -> float:
    """How far two buffers of one geometry may differ: the arcs' chord error, plus the
    tolerance with which GEOS simplifies a buffer's input line (BufferParameters'
    simplify factor 0.01 of the distance), which one call and the pieces apply apart."""
    return d * (1 - math.cos(math.pi / (4 * quad_segs))) + 0.01 * d


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("d", [3.0, 40.0, 300.0])
def test_buffer_piecewise_equals_one_buffer(seed, d):
    rng = np.random.default_rng(seed)
    blob = _staircase(rng, X0, Y0, 25, 10.0)
    holey = blob.difference(shapely.box(X0 + 20, Y0 + 20, X0 + 60, Y0 + 60))
    xs = np.cumsum(rng.uniform(5, 15, 400))
    river = shapely.LineString(np.column_stack([X0 + xs, Y0 + 30 * np.sin(xs / 200)]).round(0))
    for g in (
        blob,
        holey,
        river,
        shapely.MultiPolygon([blob, shapely.box(X0 + 2000, Y0, X0 + 2100, Y0 + 50)]),
    ):
        got = buffer_piecewise(g, d, quad_segs=16)
        want = shapely.buffer(g, d, quad_segs=16)
        assert shapely.is_valid(got)
        # both inscribe the same circles: they differ by less than the arc approximation
        # and GEOS's input simplification
        eps = _arc_error(d, 16)
        assert shapely.hausdorff_distance(shapely.boundary(got), shapely.boundary(want)) <= eps + 1e-6
        assert abs(got.area - want.area) <= eps * want.length + 1e-6
        assert shapely.covers(shapely.buffer(want, eps + 1e-6), got)
        assert shapely.covers(shapely.buffer(got, eps + 1e-6), want)


def test_buffer_piecewise_small_or_non_positive_is_one_call():
    g = shapely.box(0, 0, 1, 1)
    assert shapely.equals_exact(buffer_piecewise(g, 2.0), shapely.buffer(g, 2.0, quad_segs=16), 0)
    assert shapely.equals_exact(buffer_piecewise(g, -0.2), shapely.buffer(g, -0.2, quad_segs=16), 0)


# ---------------------------------------------------------------------------------- executor


def _geod_area(g_ll) -> float:
    return sum(
        abs(GEOD.geometry_area_perimeter(polygon.orient(p, 1.0))[0])
        for p in shapely.get_parts(g_ll)
        if p.geom_type == "Polygon"
    )


def _to(src: str, dst: str, g):
    t = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _river_scene(seed: int):
    rng = np.random.default_rng(seed)
    waters = _objects(seed)
    xs = np.arange(0.0, 3200.0, 10.0)
    ys = 1500 + 400 * np.sin(xs / 500 + seed)
    river = shapely.LineString(np.column_stack([X0 + xs, Y0 + ys])).buffer(15, cap_style="flat")
    river = shapely.set_precision(river, 10.0)  # pixel-edged
    geoms = [*waters, river]
    labels = ["water"] * len(waters) + ["river"]
    ids = [f"w{k}" for k in range(len(waters))] + ["river-1"]
    del rng
    return Scene(ids, labels, geoms, UTM), waters, river


def _program(last: list[dict]) -> list[dict]:
    return [
        {"id": "w", "op": "select", "args": {"cls": "water"}},
        {"id": "r", "op": "object", "args": {"id": "river-1"}},
        {"id": "b", "op": "buffer", "args": {"of": "$r", "distance": 300, "unit": "m"}},
        {"id": "i", "op": "intersection", "args": {"a": "$w", "b": "$b"}},
        *last,
    ]


def _truth_buffer_ll(river_utm) -> shapely.Geometry:
    """The river's 300 m buffer drawn in one shapely call in an AEQD plane centred on the
    mean of its vertices as 3-D unit vectors (computed here with numpy)."""
    ll = _to(UTM, "EPSG:4326", river_utm)
    c = np.radians(shapely.get_coordinates(ll))
    v = np.column_stack(
        [np.cos(c[:, 1]) * np.cos(c[:, 0]), np.cos(c[:, 1]) * np.sin(c[:, 0]), np.sin(c[:, 1])]
    )
    m = v.mean(axis=0)
    m /= np.linalg.norm(m)
    lon0, lat0 = round(math.degrees(math.atan2(m[1], m[0])), 6), round(math.degrees(math.asin(m[2])), 6)
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs").to_wkt()
    t_in = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
    t_out = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)
    p = shapely.transform(ll, lambda xy: np.column_stack(t_in.transform(xy[:, 0], xy[:, 1])))
    b = shapely.buffer(p, 300.0, quad_segs=16)
    return shapely.transform(b, lambda xy: np.column_stack(t_out.transform(xy[:, 0], xy[:, 1])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_area_of_water_near_the_river_equals_union_then_intersection(seed):
    scene, waters, river = _river_scene(seed)
    ans = execute(
        _program(
            [
                {"id": "a", "op": "area", "args": {"of": "$i", "unit": "m2"}},
                {"id": "out", "op": "answer", "args": {"value": "$a"}},
            ]
        ),
        scene,
    )
    assert not ans.abstained, ans.reason
    buf_ll = _truth_buffer_ll(river)
    water_ll = _to(UTM, "EPSG:4326", shapely.union_all(waters))
    want = _geod_area(shapely.intersection(water_ll, buf_ll))
    assert want > 0
    # the piecewise buffer's arcs differ from one call's by << 1 mm over a ~10 km boundary
    assert ans.value == pytest.approx(want, rel=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_pixels_of_water_near_the_river_equal_a_burned_union(seed, tmp_path):
    scene, waters, river = _river_scene(seed)
    px = 7.0  # not a multiple of the objects' 10 m edges: centres fall anywhere
    w = h = int(3600 / px)
    transform = Affine(px, 0, X0 - 200, 0, -px, Y0 + 3300)
    grid = RasterGrid(transform, h, w, CRS.from_user_input(UTM))
    writer = grid.mask_writer(lambda sid: tmp_path / f"{sid}.tif")
    ans = execute(
        _program(
            [
                {"id": "p", "op": "pixels", "args": {"of": "$i"}},
                {"id": "out", "op": "answer", "args": {"value": "$p"}},
            ]
        ),
        scene,
        mask_writer=writer,
    )
    assert not ans.abstained, ans.reason
    truth = shapely.intersection(shapely.union_all(waters), _to("EPSG:4326", UTM, _truth_buffer_ll(river)))
    want = rasterize([(truth, 1)], out_shape=(h, w), transform=transform, fill=0, dtype="uint8")
    with rasterio.open(tmp_path / "p.tif") as src:
        got = src.read(1)
    assert int(want.sum()) > 100
    assert ans.value == int(want.sum())
    assert np.array_equal(got, want)


def test_union_of_a_set_is_each_point_once(tmp_path):
    scene, waters, _ = _river_scene(0)
    ans = execute(
        [
            {"id": "w", "op": "select", "args": {"cls": "water"}},
            {"id": "u", "op": "union", "args": {"objects": "$w"}},
            {"id": "a", "op": "area", "args": {"of": "$u", "unit": "m2"}},
            {"id": "out", "op": "answer", "args": {"value": "$a"}},
        ],
        scene,
    )
    want = _geod_area(_to(UTM, "EPSG:4326", shapely.union_all(waters)))
    assert ans.value == pytest.approx(want, rel=1e-9)
