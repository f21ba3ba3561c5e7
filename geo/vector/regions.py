"""Regions built from many objects without whole-scene overlays.

A question like "which pixels are water within 300 m of the river?" intersects a buffer
with every water body of a scene. Unioning the class first (thousands of pixel-edged
polygons) and buffering a 200 km river in one GEOS call each cost hundreds of megabytes to
gigabytes on a 400 Mpx scene. The functions here give the same point sets piece by piece:

- :func:`dissolve` covers exactly what a set of geometries covers, unioning only the parts
  whose interiors overlap or that share an edge (disjoint parts, or parts touching at
  points, stay separate parts of a collection: their areas add up to the union's, and as
  a MultiPolygon they are valid);
- :func:`intersect_sets` is the intersection of two unions, ``(∪ a_i) ∩ (∪ b_j)``, as the
  union of the pairwise ``a_i ∩ b_j`` of the pairs an STRtree finds touching;
- :func:`buffer_piecewise` is a planar buffer built as the geometry plus the buffers of
  short pieces of its boundary (``buffer(P, d) = P ∪ {x : dist(x, ∂P) <= d}``; the
  distance to a union is the least distance to its parts), so GEOS never nodes the offset
  curve of a 100k-vertex ring in one go.

All three are plain planar operations on geometries in one CRS; the caller picks the plane.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

__all__ = [
    "union_where_overlapping",
    "iter_union_parts",
    "iter_union_parts_from",
    "dissolve",
    "intersect_sets",
    "buffer_piecewise",
]

#: Vertices per boundary piece in :func:`buffer_piecewise` (8 was the fastest of 8-512 on a
#: 19k-vertex staircase river buffered by 300 m: 0.5 CPU-s and +23 MB, one GEOS call 4.2 s
#: and +766 MB).
BUFFER_PIECE = 8
#: Pairs intersected per vectorised call in :func:`intersect_sets` (bounds the transient arrays).
_PAIR_BLOCK = 4096


def _as_array(geoms) -> np.ndarray:
    arr = np.asarray(geoms, dtype=object).ravel()
    if len(arr) == 0:
        return arr
    return arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]


def _collect(parts: list[BaseGeometry] | np.ndarray) -> BaseGeometry:
    """One geometry of ``parts``: the part itself when there is one, else a collection."""
    parts = list(parts)
    if not parts:
        return shapely.GeometryCollection()
    if len(parts) == 1:
        return parts[0]
    return shapely.GeometryCollection(parts)


def union_where_overlapping(polygonal: np.ndarray) -> BaseGeometry:
    """A geometry covering exactly what the polygonal geometries cover, each point once.

    Only the polygons whose interiors overlap another's, or that share an edge with
    another, are unioned; the rest (most of a raster grounder's objects: disjoint, or
    touching at corners) are kept as they are in a collection, whose parts' areas add up to
    the union's and which is a valid MultiPolygon. On an 8000² scene's 2,000
    vegetation polygons this is the difference between seconds of GEOS overlay and a few
    STRtree + DE-9IM tests. Invalid input falls back to the full union. Each cluster of
    overlapping polygons is unioned on its own (connected components of the overlap graph).
    :func:`iter_union_parts` gives the same parts one at a time.

    Examples
    --------
    >>> g = union_where_overlapping(np.array([shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3),
    ...                                       shapely.box(5, 0, 6, 1)]))
    >>> g.geom_type, g.area
    ('GeometryCollection', 8.0)
    """
    return _collect(list(iter_union_parts(polygonal)))


def iter_union_parts(polygonal: np.ndarray) -> Iterator[BaseGeometry]:
    """The parts of :func:`union_where_overlapping`'s geometry, in its order, one at a time:
    the input polygons that overlap none of the others (as they are), then one union per
    cluster of overlapping ones; or, for one polygon or invalid input, the one full union.

    A caller that measures the parts as they come (:func:`georeason.geo.vector.group.total_area_m2`)
    never holds the collection, nor a reprojected copy of it: the answer is the same,
    ``union_where_overlapping(p)`` being ``_collect(list(iter_union_parts(p)))``.

    Examples
    --------
    >>> [g.area for g in iter_union_parts(np.array([shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3),
    ...                                              shapely.box(5, 0, 6, 1)]))]
    [1.0, 7.0]
    """
    for _, g in iter_union_parts_from(polygonal):
        yield g


def iter_union_parts_from(polygonal: np.ndarray) -> Iterator[tuple[tuple[int, int] | None, BaseGeometry]]:
    """:func:`iter_union_parts`, each part with where it comes from: ``(i, j)`` for a part
    that is polygon ``j`` of ``polygonal[i]`` as it is (``shapely.get_geometry(polygonal[i], j)``
    for a multi-part geometry, ``polygonal[i]`` itself for a polygon), ``None`` for a union.

    A caller holding the same objects in another CRS takes such a part from there instead
    of reprojecting it back (:func:`georeason.geo.vector.group.total_area_m2`).

    Examples
    --------
    >>> geoms = np.array([shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(9, 9, 10, 10)]),
    ...                   shapely.box(1, 1, 3, 3), shapely.box(5, 0, 6, 1)])
    >>> [(at, g.area) for at, g in iter_union_parts_from(geoms)]
    [((0, 1), 1.0), ((2, 0), 1.0), (None, 7.0)]
    """
    parts = np.asarray(polygonal, dtype=object).ravel()
    del polygonal  # the caller may drop its array: the parts are all that is kept here
    owner = np.arange(len(parts))
    if not (shapely.get_type_id(parts) == 3).all():  # single polygons are their own parts (no copy)
        parts, owner = shapely.get_parts(parts, return_index=True)
    # each part's number inside its geometry (owner is sorted: parts come geometry by geometry)
    first = np.searchsorted(owner, owner, side="left")
    number = np.arange(len(owner)) - first
    keep = shapely.get_dimensions(parts) == 2
    parts, owner, number = parts[keep], owner[keep], number[keep]
    if len(parts) <= 1 or not shapely.is_valid(parts).all():
        yield None, shapely.union_all(parts)
        return
    a, b = STRtree(parts).query(parts)  # pairs of touching envelopes
    a, b = a[a < b], b[a < b]
    # interiors meet (DE-9IM T********), or boundaries share a segment (****1****): both are
    # unioned, so that the parts left apart touch at most at points and the parts of a
    # polygonal region make a valid MultiPolygon (OGC: a MultiPolygon's polygons may not share
    # an edge) when it is exported. One matrix per pair of touching envelopes (a disjoint
    # pair's is FF*FF****): on the 20000² scene's vegetation (3949 polygons, 2.9 M vertices,
    # 4813 such pairs) 3.0 s, where an "intersects" query first and two patterns after took 5.2 s.
    over = np.zeros(len(a), dtype=bool)
    for s in range(0, len(a), _PAIR_BLOCK):
        m = shapely.relate(parts[a[s : s + _PAIR_BLOCK]], parts[b[s : s + _PAIR_BLOCK]])
        over[s : s + _PAIR_BLOCK] = [d[0] != "F" or d[4] == "1" for d in m]
    n = len(parts)
    involved = np.zeros(n, dtype=bool)
    a, b = a[over], b[over]
    involved[a] = involved[b] = True
    for k in np.flatnonzero(~involved).tolist():
        yield (int(owner[k]), int(number[k])), parts[k]
    if not involved.any():
        return
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    for c in np.unique(comp[involved]):
        yield None, shapely.union_all(parts[involved & (comp == c)])


def dissolve(geoms) -> BaseGeometry:
    """A geometry covering exactly the points ``geoms`` cover, without a whole union.

    Polygonal parts go through :func:`union_where_overlapping`; a line or point part is kept
    where no polygonal part covers it (what a GEOS union keeps of it). The result is a
    single geometry when one part remains, else a collection of parts whose interiors do
    not overlap (areas add up; predicates and overlays in GEOS >= 3.13 treat it as the union).

    Examples
    --------
    >>> g = dissolve([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.LineString([(0, 0), (3, 0)])])
    >>> round(g.area, 6), round(float(shapely.length(shapely.difference(g, shapely.box(0, 0, 2, 1)))), 6)
    (2.0, 1.0)
    """
    parts = shapely.get_parts(_as_array(geoms))
    if len(parts) == 0:
        return shapely.GeometryCollection()
    dims = shapely.get_dimensions(parts)
    poly, low = parts[dims == 2], parts[dims < 2]
    out: list[BaseGeometry] = []
    if len(poly):
        out.extend(shapely.get_parts(union_where_overlapping(poly)))
    if len(low):
        rest = shapely.union_all(low)
        if len(poly):
            near = poly[STRtree(poly).query(rest, predicate="intersects")]
            if len(near):
                rest = shapely.difference(rest, shapely.union_all(near))
        if not rest.is_empty:
            out.extend(shapely.get_parts(rest))
    return _collect(out)


def intersect_sets(a, b) -> BaseGeometry:
    """``(∪ a) ∩ (∪ b)`` of two sets of geometries (one CRS), as :func:`dissolve` gives it.

    Pairs are found with an STRtree over the larger set (``intersects``), intersected
    ``_PAIR_BLOCK`` at a time, and the pieces dissolved. No union of either set is built:
    a 200 km river's buffer against 4,446 water bodies intersects the few hundred that
    reach the buffer, each on its own.

    Examples
    --------
    >>> g = intersect_sets([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 2)], [shapely.box(1, 1, 3, 3)])
    >>> g.area
    2.0
    """
    a, b = _as_array(a), _as_array(b)
    if len(a) == 0 or len(b) == 0:
        return shapely.GeometryCollection()
    big, small = (a, b) if len(a) >= len(b) else (b, a)
    i_small, i_big = STRtree(big).query(small, predicate="intersects")
    pieces: list[np.ndarray] = []
    for s in range(0, len(i_small), _PAIR_BLOCK):
        got = shapely.intersection(small[i_small[s : s + _PAIR_BLOCK]], big[i_big[s : s + _PAIR_BLOCK]])
        pieces.append(got[~shapely.is_empty(got)])
    if not pieces:
        return shapely.GeometryCollection()
    return dissolve(np.concatenate(pieces))


def _pieces_of_lines(lines: np.ndarray, n: int) -> list[BaseGeometry]:
    """The lines (or rings) cut into pieces of ``n`` segments, consecutive pieces sharing a vertex."""
    out: list[BaseGeometry] = []
    for line in lines:
        c = shapely.get_coordinates(line)
        if len(c) <= n + 1:
            out.append(shapely.LineString(c) if len(c) > 1 else shapely.Point(c[0]))
            continue
        for s in range(0, len(c) - 1, n):
            out.append(shapely.LineString(c[s : s + n + 1]))
    return out


def buffer_piecewise(
    geom: BaseGeometry, distance: float, quad_segs: int = 16, piece: int = BUFFER_PIECE
) -> BaseGeometry:
    """``shapely.buffer(geom, distance, quad_segs=quad_segs)`` (round joins and caps), built
    as the union of ``geom``'s polygons and the buffers of ``piece``-segment pieces of its
    boundaries and lines.

    The point set is the same (the distance to a union is the least distance to its
    parts); the arcs' vertices differ (a piece's end cap starts its arc where the piece
    ends, one call's join where the next segment starts), both inscribed in the true
    circles to within ``distance * (1 - cos(pi / (4 * quad_segs)))``. GEOS nodes each
    short offset curve on its own: a 19k-vertex pixel-edged river buffered by 300 m takes
    0.5 CPU-s and +23 MB this way, 4.2 CPU-s and +766 MB in one call. A distance <= 0, an
    invalid geometry or a small one (fewer than ``4 * piece`` vertices) is buffered in one call.
    """
    if (
        geom is None
        or geom.is_empty
        or distance <= 0
        or shapely.get_num_coordinates(geom) < 4 * piece
        or not shapely.is_valid(geom)
    ):
        return shapely.buffer(geom, distance, quad_segs=quad_segs)
    parts = shapely.get_parts(shapely.get_parts(np.array([geom], dtype=object)))
    dims = shapely.get_dimensions(parts)
    polys = parts[dims == 2]
    lines = list(parts[dims == 1])
    points = parts[dims == 0]
    for p in polys:
        lines.extend(shapely.get_rings(p))
    bits = shapely.buffer(
        np.array(_pieces_of_lines(np.array(lines, dtype=object), piece) + list(points), dtype=object),
        distance,
        quad_segs=quad_segs,
    )
    return shapely.union_all(np.concatenate([polys, bits]))
