"""``map_ordered``: two calls at a time on two threads, results in order, bounded, never
nested on its own pool; the callers that use it (reprojection, union parts, total area)
give the serial answers to the last bit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod, Transformer

import georeason.geo.vector.crs as crs
from georeason.geo.vector import group
from georeason.geo.vector.crs import LONLAT, map_ordered, reproject
from georeason.geo.vector.regions import iter_union_parts
from georeason.geo.vector.scene import Scene

REPO = Path(__file__).resolve().parents[1]


def test_order_and_values():
    def slow_square(x: int) -> int:
        time.sleep(0.01 * ((7 - x) % 3))  # later items finish first now and then
        return x * x

    assert list(map_ordered(slow_square, range(12))) == [x * x for x in range(12)]
    assert list(map_ordered(slow_square, [])) == []


def test_two_threads_and_bounded(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    lock = threading.Lock()
    running, most, started = [0], [0], [0]
    names: set[str] = set()

    def work(x: int) -> int:
        with lock:
            running[0] += 1
            started[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x

    it = map_ordered(work, range(10), ahead=2)
    assert next(it) == 0
    time.sleep(0.2)  # the consumer holds one result: no more than `ahead` started beyond it
    assert started[0] <= 3
    assert list(it) == list(range(1, 10))
    assert most[0] == 2  # two at a time, not more
    assert all(n.startswith("geo-map") for n in names)


def test_one_core_is_plain_map(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    names = list(map_ordered(lambda _: threading.current_thread().name, range(3)))
    assert names == [threading.current_thread().name] * 3


def test_nested_calls_do_not_wait_on_the_pool(monkeypatch):
    """A call running on the pool that maps again runs its inner map in its own thread
    (else two outer calls waiting on inner ones would hold both threads forever)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def outer(x: int) -> list[str]:
        return list(map_ordered(lambda _: threading.current_thread().name, range(4)))

    done: list[list[list[str]]] = []
    t = threading.Thread(target=lambda: done.append(list(map_ordered(outer, range(6)))), daemon=True)
    t.start()
    t.join(20)
    assert done, "nested map_ordered deadlocked"
    for inner in done[0]:
        assert len(set(inner)) == 1 and inner[0].startswith("geo-map")


def _polygons(seed: int, n: int) -> np.ndarray:
    """Random convex-ish polygons (lon/lat) around 10.2 E 50.1 N, some overlapping."""
    rng = np.random.default_rng(seed)
    g = Geod(ellps="WGS84")
    out = []
    for _ in range(n):
        lon, lat, _ = g.fwd(10.2, 50.1, rng.uniform(0, 360), rng.uniform(0, 20_000))
        r = rng.uniform(50, 600)
        k = int(rng.integers(6, 60))
        az = np.sort(rng.uniform(0, 360, k))
        lo, la, _ = g.fwd(np.full(k, lon), np.full(k, lat), az, np.full(k, r))
        out.append(shapely.Polygon(np.column_stack([lo, la])).convex_hull)
    return np.array(out, dtype=object)


def test_callers_give_the_serial_answers(monkeypatch):
    """Reprojection (several chunks), union parts and total area: threads or not, the same
    geometries and the same float sum; the area also matches pyproj's own per-polygon sum
    where nothing overlaps."""
    polys = _polygons(3, 900)
    monkeypatch.setattr(crs, "REPROJECT_CHUNK_COORDS", 2000)  # several chunks
    utm = Transformer.from_crs(LONLAT, "EPSG:32632", always_xy=True)
    scene = Scene(
        [f"p{i}" for i in range(len(polys))],
        ["lake"] * len(polys),
        list(shapely.transform(polys, lambda c: np.column_stack(utm.transform(c[:, 0], c[:, 1])))),
        "EPSG:32632",
    )
    idx = np.arange(len(polys))
    got = {}
    for cores in (1, 2):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        projected = reproject(polys, LONLAT, crs.CRS.from_epsg(32632))
        parts = list(iter_union_parts(projected))
        got[cores] = (
            shapely.to_wkb(projected).tolist(),
            shapely.to_wkb(np.array(parts)).tolist(),
            group.total_area_m2(scene, idx),
        )
    assert got[1] == got[2]
    assert len(got[2][1]) < len(polys)  # some overlapped and were unioned

    # disjoint ones: the total is the geodesic sum of their areas (pyproj, one by one)
    tree = shapely.STRtree(polys)
    a, b = tree.query(polys, predicate="intersects")
    lonely = np.setdiff1d(np.arange(len(polys)), np.unique(np.concatenate([a[a != b], b[a != b]])))
    g = Geod(ellps="WGS84")
    expect = sum(
        abs(g.geometry_area_perimeter(shapely.geometry.polygon.orient(p, 1.0))[0]) for p in polys[lonely]
    )
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert abs(group.total_area_m2(scene, lonely) - expect) <= 1e-6 * expect


def test_scene_repairs_invalid_geometries_in_either_half(monkeypatch):
    """Scene's validity check runs in two halves: an invalid geometry in either half is
    found and repaired (a bow-tie, whose valid repair has area 2 x 0.25 = 0.5 by hand)."""
    import warnings

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    bow = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert not bow.is_valid and bow.area == 0.0  # the two triangles' signed areas cancel
    boxes = [shapely.box(10 * i, 0, 10 * i + 1, 1) for i in range(9)]
    for where in (0, 9):
        geoms = [*boxes[:where], bow, *boxes[where:]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = Scene([f"o{i}" for i in range(10)], ["x"] * 10, geoms, "EPSG:32632")
        assert shapely.is_valid(scene.geoms).all()
        assert abs(scene.geoms[where].area - 0.5) < 1e-12
        assert [g.area for i, g in enumerate(scene.geoms) if i != where] == [1.0] * 9


def test_no_thread_left_behind(monkeypatch):
    """The CLI joins every non-daemon thread before it exits: none of map_ordered's may be
    left, whether the map ran to its end or was abandoned part way."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert list(map_ordered(lambda x: x + 1, range(5))) == [1, 2, 3, 4, 5]
    it = map_ordered(lambda x: x, range(100))
    assert next(it) == 0
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("geo-map")]
