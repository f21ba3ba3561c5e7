"""geo.vector.group.total_area_m2: objects counted once, unioning only where they overlap.

The expected value is computed here independently: the union of the objects (shapely
``union_all`` in a UTM plane, pyproj ``Transformer``) measured by pyproj's ``Geod`` on WGS84.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import polygon

from georeason.geo.vector.group import _union_where_overlapping, total_area_m2
from georeason.geo.vector.scene import Scene

UTM = "EPSG:32618"
GEOD = Geod(ellps="WGS84")


def _truth_m2(geoms_utm: list) -> float:
    union = shapely.union_all(geoms_utm)
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    ll = shapely.transform(union, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
    return sum(abs(GEOD.geometry_area_perimeter(polygon.orient(p, 1.0))[0]) for p in shapely.get_parts(ll))


def _scene(seed: int, overlaps: bool) -> list:
    """A grid of pixel-like squares (touching along edges, as a raster grounder's objects
    are), some with holes, plus, if ``overlaps``, a few shifted copies overlapping them."""
    rng = np.random.default_rng(seed)
    x0, y0 = 500_000.0, 4_500_000.0
    geoms = []
    for i in range(12):
        for j in range(12):
            if rng.random() < 0.6:
                b = shapely.box(x0 + 30 * i, y0 + 30 * j, x0 + 30 * (i + 1), y0 + 30 * (j + 1))
                if rng.random() < 0.2:
                    b = b.difference(
                        shapely.box(x0 + 30 * i + 10, y0 + 30 * j + 10, x0 + 30 * i + 20, y0 + 30 * j + 20)
                    )
                geoms.append(b)
    if overlaps:
        for g in list(geoms[::9]):
            geoms.append(shapely.affinity.translate(g, 11.0, 7.0))
    geoms.append(
        shapely.MultiPolygon(
            [shapely.box(x0 - 500, y0, x0 - 400, y0 + 90), shapely.box(x0 - 300, y0, x0 - 200, y0 + 20)]
        )
    )
    return geoms


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("overlaps", [False, True])
def test_total_area_equals_the_geodesic_area_of_the_union(seed, overlaps):
    geoms = _scene(seed, overlaps)
    scene = Scene([f"o{k}" for k in range(len(geoms))], ["x"] * len(geoms), geoms, UTM)
    got = total_area_m2(scene, np.arange(len(geoms)))
    assert got == pytest.approx(_truth_m2(geoms), rel=1e-9)


def test_only_overlapping_polygons_are_unioned():
    a, e = shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 2)  # touching at a corner: kept as they are
    c, d = shapely.box(5, 5, 7, 7), shapely.box(6, 6, 8, 8)  # overlapping: one union
    f, g = (
        shapely.box(10, 0, 11, 1),
        shapely.box(11, 0, 12, 1),
    )  # sharing an edge: one union (a valid MultiPolygon)
    out = _union_where_overlapping(np.array([a, e, c, d, f, g], dtype=object))
    parts = list(shapely.get_parts(out))
    assert len(parts) == 4 and a in parts and e in parts
    assert shapely.MultiPolygon(parts).is_valid
    assert sum(p.area for p in parts) == 1 + 1 + 7 + 2
