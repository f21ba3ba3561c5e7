"""Bounded-memory forms of the scene-wide answering steps give the same numbers, bit for bit.

- ``spherical_mean_lonlat`` sums its unit vectors a chunk of vertices at a time: the mean
  must equal numpy's all-at-once ``column_stack(...).mean(axis=0)`` exactly.
- ``total_area_m2`` measures the dissolved parts as they come: where nothing overlaps, the
  value must equal the sum, in order, of pyproj's geodesic areas of the objects' own lon/lat
  polygons (computed here with pyproj directly), exactly.
- ``iter_union_parts`` (one DE-9IM matrix per pair of touching envelopes) unions exactly the
  polygons that overlap or share an edge, and nothing whose envelope merely touches.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import polygon

import georeason.geo.vector.crs as crs_mod
import georeason.geo.vector.group as group_mod
from georeason.geo.vector.crs import spherical_mean_lonlat
from georeason.geo.vector.group import total_area_m2
from georeason.geo.vector.regions import iter_union_parts, union_where_overlapping
from georeason.geo.vector.scene import Scene

GEOD = Geod(ellps="WGS84")
UTM = "EPSG:32633"


def _mean_at_once(geoms) -> tuple[float, float]:
    c = shapely.get_coordinates(np.asarray(geoms, dtype=object))
    lon, lat = np.radians(c[:, 0]), np.radians(c[:, 1])
    v = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]).mean(axis=0)
    v = v / np.linalg.norm(v)
    return float(np.degrees(np.arctan2(v[1], v[0]))), float(np.degrees(np.arcsin(v[2])))


@pytest.mark.parametrize("chunk", [1, 7, 2048])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spherical_mean_in_chunks_is_the_all_at_once_mean_exactly(monkeypatch, chunk, seed):
    monkeypatch.setattr(crs_mod, "_MEAN_COORDS", chunk)  # vertices: 1 takes each geometry alone
    rng = np.random.default_rng(seed)
    lines = [
        shapely.LineString(rng.uniform(-2, 2, (int(rng.integers(2, 40)), 2)) + [rng.uniform(-170, 170), 40])
        for _ in range(300)
    ]
    points = list(shapely.points(rng.uniform(-180, 180, 50), rng.uniform(-80, 80, 50)))
    geoms = np.array(lines + points + [shapely.Polygon()], dtype=object)  # an empty one too
    rng.shuffle(geoms)
    assert spherical_mean_lonlat(geoms) == _mean_at_once(geoms)


def test_spherical_mean_of_nothing_is_an_input_error():
    with pytest.raises(crs_mod.InputError):
        spherical_mean_lonlat([shapely.Polygon(), shapely.LineString()])


def _pixel_scene(seed: int) -> list:
    """Disjoint pixel-edged squares (some with holes) touching only at corners, in UTM 33N."""
    rng = np.random.default_rng(seed)
    x0, y0 = 430_000.0, 5_300_000.0
    out = []
    for i in range(14):
        for j in range(14):
            if (i + j) % 2 == 0 and rng.random() < 0.8:
                b = shapely.box(x0 + 20 * i, y0 + 20 * j, x0 + 20 * (i + 1), y0 + 20 * (j + 1))
                if rng.random() < 0.3:
                    b = b.difference(
                        shapely.box(x0 + 20 * i + 5, y0 + 20 * j + 5, x0 + 20 * i + 9, y0 + 20 * j + 9)
                    )
                out.append(b)
    return out


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 256])
@pytest.mark.parametrize("seed", [0, 1])
def test_total_area_is_the_ordered_sum_of_the_parts_areas_exactly(monkeypatch, chunk, seed, multi):
    """Nothing overlaps: every part is an object's polygon as it is, measured on the
    object's own lon/lat vertices (never through the AEQD plane and back), and the areas
    are added in order; ``multi`` groups the squares three by three into MultiPolygons."""
    monkeypatch.setattr(group_mod, "AREA_CHUNK", chunk)
    squares = _pixel_scene(seed)
    geoms = (
        [shapely.MultiPolygon(squares[k : k + 3]) for k in range(0, len(squares), 3)] if multi else squares
    )
    scene = Scene([f"p{k}" for k in range(len(geoms))], ["veg"] * len(geoms), geoms, UTM)
    got = total_area_m2(scene, np.arange(len(geoms)))
    # independently: every square to lon/lat with pyproj, its geodesic area, added in order
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    want = 0.0
    for g in squares:
        ll = shapely.transform(g, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        want += abs(GEOD.geometry_area_perimeter(polygon.orient(ll, 1.0))[0])
    assert got == want


def test_total_area_unions_only_the_overlapping_parts():
    """Two overlapping squares are measured once, as their union; the others (one of them
    the second part of a MultiPolygon) on their own vertices."""
    x0, y0 = 430_000.0, 5_300_000.0
    a = shapely.box(x0, y0, x0 + 100, y0 + 100)
    b = shapely.box(x0 + 50, y0 + 50, x0 + 150, y0 + 150)  # overlaps a: 17,500 m² together
    lone = shapely.box(x0 + 400, y0, x0 + 430, y0 + 30)
    multi = shapely.MultiPolygon(
        [shapely.box(x0 + 600, y0, x0 + 610, y0 + 10), shapely.box(x0 + 700, y0, x0 + 720, y0 + 20)]
    )
    scene = Scene(["a", "b", "lone", "multi"], ["veg"] * 4, [a, b, lone, multi], UTM)
    got = total_area_m2(scene, np.arange(4))
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)

    def geodesic(g):
        ll = shapely.transform(g, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        return abs(GEOD.geometry_area_perimeter(polygon.orient(ll, 1.0))[0])

    want = geodesic(shapely.union(a, b)) + geodesic(lone) + sum(geodesic(p) for p in multi.geoms)
    assert got == pytest.approx(want, rel=1e-9)
    # hand-worked: 18,900 m² on the UTM plane, whose areal scale there (pyproj's factors) it undoes
    from pyproj import Proj

    lon, lat = to_ll.transform(x0 + 300, y0 + 75)
    areal = Proj(UTM).get_factors(lon, lat).areal_scale
    assert got == pytest.approx(18_900 / areal, rel=1e-5)


def test_union_parts_join_only_overlapping_or_edge_sharing_polygons():
    # an L and a square inside the L's envelope, apart: envelopes touch, geometries do not
    ell = shapely.Polygon([(0, 0), (10, 0), (10, 2), (2, 2), (2, 10), (0, 10)])
    sq = shapely.box(4, 4, 8, 8)
    inner = shapely.box(5, 5, 6, 6)  # inside sq: interiors overlap -> unioned with it
    corner = shapely.box(10, 2, 12, 4)  # touches the L at a point: stays apart
    edge = shapely.box(-3, 0, 0, 3)  # shares an edge with the L -> unioned with it
    far = shapely.box(50, 50, 51, 51)
    geoms = np.array([ell, sq, inner, corner, edge, far], dtype=object)
    parts = list(iter_union_parts(geoms))
    # the untouched ones first, in input order, then one union per cluster
    assert parts[:2] == [corner, far]
    unions = sorted(parts[2:], key=lambda g: g.area)
    assert len(unions) == 2
    assert unions[0].equals(sq) and unions[1].equals(shapely.union_all([ell, edge]))
    got = union_where_overlapping(geoms)
    assert got.geom_type == "GeometryCollection" and list(got.geoms) == parts
    assert shapely.MultiPolygon(parts).is_valid


def test_union_parts_of_one_polygon_is_that_polygon():
    one = shapely.box(0, 0, 1, 1)
    assert [p.wkt for p in iter_union_parts(np.array([one], dtype=object))] == [one.wkt]
    multi = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(3, 0, 4, 1)])
    assert sorted(p.area for p in iter_union_parts(np.array([multi], dtype=object))) == [1.0, 1.0]


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_quicklook_drawn_in_chunks_is_the_same_png(tmp_path, monkeypatch, chunk):
    from affine import Affine

    import georeason.geo.export.quicklook as ql

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    base = ql.Basemap(rgb, Affine(10.0, 0, 430_000.0, 0, -10.0, 5_301_200.0), CRS.from_epsg(32633))
    x0, y0 = 430_000.0, 5_300_000.0
    polys = [
        shapely.box(x0 + 40 * i, y0 + 40 * j, x0 + 40 * i + 30, y0 + 40 * j + 30).difference(
            shapely.box(x0 + 40 * i + 10, y0 + 40 * j + 10, x0 + 40 * i + 20, y0 + 40 * j + 20)
        )
        for i in range(30)
        for j in range(20)
    ]
    extra = [
        shapely.MultiPolygon(
            [
                shapely.box(x0, y0 + 900, x0 + 200, y0 + 1000),
                shapely.box(x0 + 300, y0 + 900, x0 + 400, y0 + 950),
            ]
        ),
        shapely.LineString([(x0, y0), (x0 + 1500, y0 + 1100)]),
        shapely.Point(x0 + 700, y0 + 700),
        shapely.Polygon(),
    ]
    ev = polys[::3] + extra
    region = [shapely.MultiPolygon(polys[1::7])]

    def draw(path):
        return ql.write_quicklook(
            "unused",
            path,
            objects=polys[:200],
            classes=["lake"] * 200,
            evidence=ev,
            region=region,
            title="t",
            subtitle="s",
            dense_objects=1000,
            basemap=base,
        ).read_bytes()

    want = draw(tmp_path / "all.png")
    monkeypatch.setattr(ql, "DRAW_CHUNK_COORDS", chunk)
    assert draw(tmp_path / "chunked.png") == want


def _gpkg_content(path) -> dict:
    """Everything a reader sees in a GeoPackage, from SQLite directly: version, layers,
    their geometry columns and extents, and every feature table's rows (fid, fields, blob)."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        out = {
            "version": con.execute("PRAGMA application_id").fetchone()
            + con.execute("PRAGMA user_version").fetchone(),
            "contents": con.execute(
                "SELECT table_name, data_type, identifier, min_x, min_y, max_x, max_y, srs_id FROM gpkg_contents ORDER BY table_name"
            ).fetchall(),
            "geometry_columns": con.execute(
                "SELECT * FROM gpkg_geometry_columns ORDER BY table_name"
            ).fetchall(),
            "srs": con.execute(
                "SELECT srs_id, organization, organization_coordsys_id FROM gpkg_spatial_ref_sys ORDER BY srs_id"
            ).fetchall(),
        }
        for (table,) in con.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name").fetchall():
            out[table + " schema"] = con.execute(f'PRAGMA table_info("{table}")').fetchall()
            out[table] = con.execute(f'SELECT * FROM "{table}" ORDER BY fid').fetchall()
        return out
    finally:
        con.close()


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_gpkg_written_in_chunks_holds_the_same_layers_and_features(tmp_path, monkeypatch, chunk):
    import georeason.geo.export.layers as layers_mod

    rng = np.random.default_rng(5)
    polys = [shapely.box(x, y, x + 5, y + 5) for x, y in rng.uniform(400_000, 401_000, (17, 2))]
    rows = [
        {
            "id": f"p{k}",
            "class": "lake" if k % 3 else "pond",
            "also": None if k % 4 else "water",
            "score": None if k == 5 else float(k) / 10,
            "source": "grounded",
            "tags": ["a", k] if k == 2 else None,
        }
        for k in range(17)
    ]
    lines = [shapely.LineString([(400_000, 0), (400_010, 5 + k)]) for k in range(5)]
    lrows = [
        {"id": f"l{k}", "class": "river", "also": None, "score": 1.0, "source": "vector", "tags": None}
        for k in range(5)
    ]
    layers = {
        "objects_polygons": (rows, [shapely.MultiPolygon([p]) for p in polys]),
        "objects_lines": (lrows, [shapely.MultiLineString([g]) for g in lines]),
        "records": (
            [{"id": "r", "class": None, "also": None, "score": None, "source": "x", "tags": None}],
            [None],
        ),
    }
    crs = CRS.from_epsg(32633)
    want = _gpkg_content(layers_mod.write_layers(layers, crs, tmp_path / "whole.gpkg"))
    monkeypatch.setattr(layers_mod, "GPKG_CHUNK", chunk)
    got = _gpkg_content(layers_mod.write_layers(layers, crs, tmp_path / "chunked.gpkg"))
    assert got == want
    assert len(got["objects_polygons"]) == 17 and got["version"] == (0x47504B47, 10300)


@pytest.mark.parametrize("chunk", [1, 9, 10**9])
def test_reproject_in_chunks_gives_the_same_coordinates(monkeypatch, chunk):
    rng = np.random.default_rng(8)
    geoms = np.array(
        [shapely.Polygon(rng.uniform(0, 1000, (6, 2)) + [500_000, 5_000_000]).convex_hull for _ in range(30)]
        + [
            None,
            shapely.Polygon(),
            shapely.Point(430_000, 5_300_000),
            shapely.LineString([(4e5, 5e6), (4.1e5, 5.1e6)]),
        ],
        dtype=object,
    )
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    want = [
        None
        if g is None
        else shapely.transform(g, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        for g in geoms
    ]
    monkeypatch.setattr(crs_mod, "REPROJECT_CHUNK_COORDS", chunk)
    got = crs_mod.reproject(geoms, CRS.from_user_input(UTM), crs_mod.LONLAT)
    assert got.shape == geoms.shape
    assert all((w is None and g is None) or shapely.equals_identical(w, g) for w, g in zip(want, got))
    got2 = crs_mod.reproject(geoms.reshape(2, 17), CRS.from_user_input(UTM), crs_mod.LONLAT)
    assert got2.shape == (2, 17) and all(
        (w is None and g is None) or shapely.equals_identical(w, g) for w, g in zip(want, got2.ravel())
    )


def _dedupe_at_once(ids, labels, geoms):
    """The objects' dedupe the plain way: groups of equal normalized WKB, all at once."""
    from georeason.geo.export.layers import _GENERIC

    groups: dict = {}
    for i, g in enumerate(geoms):
        key = shapely.to_wkb(shapely.normalize(g)) if g is not None else f"none-{i}"
        groups.setdefault(key, []).append(i)
    keep = []
    for members in groups.values():
        best = min(members, key=lambda i: (_GENERIC.get(str(labels[i]).lower(), -1), i))
        keep.append((best, sorted({str(labels[i]) for i in members if i != best} - {str(labels[best])})))
    keep.sort()
    return [k for k, _ in keep], [a for _, a in keep]


@pytest.mark.parametrize("collide", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 10**6])
def test_dedupe_in_chunks_is_the_plain_dedupe(monkeypatch, chunk, collide):
    import georeason.geo.export.layers as layers_mod

    monkeypatch.setattr(layers_mod, "DEDUPE_CHUNK_COORDS", chunk)
    if collide:  # every digest equal: the groups must still be split by the WKB itself

        class _Same:
            def __init__(self, *a, **k):
                pass

            def digest(self):
                return b"x" * 16

        monkeypatch.setattr(layers_mod.hashlib, "blake2b", _Same)
    rng = np.random.default_rng(11)
    base = [shapely.box(x, y, x + 1, y + 1) for x, y in rng.uniform(0, 100, (12, 2))]
    geoms, labels = [], []
    for k in range(40):
        g = base[int(rng.integers(0, len(base)))]
        if k % 5 == 0:  # the same polygon, its ring starting elsewhere and reversed
            g = shapely.Polygon(list(g.exterior.coords)[2:-1][::-1] + list(g.exterior.coords)[:2][::-1])
        geoms.append(None if k % 13 == 7 else g)
        labels.append(["water", "lake", "water body", "pond"][int(rng.integers(0, 4))])
    ids = [f"o{k}" for k in range(len(geoms))]
    got = layers_mod.dedupe_classes(ids, labels, geoms)
    assert got == _dedupe_at_once(ids, labels, geoms)
    assert len(got[0]) < len(geoms)  # there were duplicates to merge
