"""Topological relations (DE-9IM) between two geometries in one CRS.

Topology does not depend on units, so it is computed on the coordinates as given (the
scene's CRS). For geographic CRSs, pairs that span the antimeridian are first unwrapped
(negative longitudes shifted by 360), a pure translation that keeps shared vertices shared.
"""

from __future__ import annotations

from typing import NamedTuple

import shapely
from shapely.geometry.base import BaseGeometry

from georeason.geo.vector.crs import unwrap_antimeridian

__all__ = ["RELATIONS", "PREDICATES", "Relation", "de9im", "relation", "predicate", "relate", "merge_seam"]

#: Named relations, in the order of precedence used by :func:`relation`.
RELATIONS = ("equals", "within", "contains", "overlaps", "crosses", "touches", "intersects", "disjoint")

#: Yes/no predicates understood by :func:`predicate`.
PREDICATES = (
    "equals",
    "intersects",
    "within",
    "contains",
    "touches",
    "overlaps",
    "crosses",
    "disjoint",
    "covers",
    "covered_by",
)


class Relation(NamedTuple):
    """The DE-9IM matrix of a pair and the one relation name chosen from it."""

    de9im: str
    name: str


def _prepare(a: BaseGeometry, b: BaseGeometry, geographic: bool):
    for name, g in (("first", a), ("second", b)):
        if g is None or g.is_empty:
            raise ValueError(f"the {name} geometry is empty; topology needs non-empty geometries")
    if geographic:
        ua, ub = unwrap_antimeridian(a, b)
        if ua is not a or ub is not b:
            # shifted: the parts of a polygon split at +-180 now share an edge along lon 180,
            # which planar predicates would see as boundary; merge them (topology unchanged)
            a, b = merge_seam(ua), merge_seam(ub)
    return a, b


def merge_seam(g: BaseGeometry) -> BaseGeometry:
    """Dissolve the shared edges of a polygonal multi-geometry whose parts touch along a line.

    After :func:`~georeason.geo.vector.crs.unwrap_antimeridian`, a polygon split at the antimeridian
    becomes parts sharing an edge on lon 180 (an invalid MultiPolygon). Their union is the
    one shape they represent on the Earth. Valid geometries are returned unchanged.
    """
    if g.geom_type == "MultiPolygon" and not g.is_valid:
        return shapely.union_all(list(g.geoms))
    return g


def de9im(a: BaseGeometry, b: BaseGeometry, geographic: bool = False) -> str:
    """The DE-9IM intersection matrix of ``a`` and ``b`` as a 9-character string.

    Examples
    --------
    >>> from shapely import box
    >>> de9im(box(0, 0, 1, 1), box(1, 0, 2, 1))
    'FF2F11212'
    """
    a, b = _prepare(a, b, geographic)
    return shapely.relate(a, b)


def predicate(a: BaseGeometry, b: BaseGeometry, name: str, geographic: bool = False) -> bool:
    """Evaluate one named predicate: ``predicate(a, b, "within")`` is "a is within b".

    Examples
    --------
    >>> from shapely import box
    >>> predicate(box(0, 0, 1, 1), box(-1, -1, 2, 2), "within")
    True
    """
    if name not in PREDICATES:
        raise ValueError(f"unknown predicate {name!r}; use one of {', '.join(PREDICATES)}")
    a, b = _prepare(a, b, geographic)
    return bool(getattr(shapely, name)(a, b))


def relation(a: BaseGeometry, b: BaseGeometry, geographic: bool = False) -> str:
    """The single named relation of ``a`` to ``b``: the first of :data:`RELATIONS` that holds.

    Examples
    --------
    >>> from shapely import box, Point
    >>> relation(box(0, 0, 1, 1), box(1, 0, 2, 1)), relation(Point(0.5, 0.5), box(0, 0, 1, 1))
    ('touches', 'within')
    """
    return relate(a, b, geographic).name


def relate(a: BaseGeometry, b: BaseGeometry, geographic: bool = False) -> Relation:
    """DE-9IM matrix and named relation of ``a`` to ``b`` in one call."""
    a, b = _prepare(a, b, geographic)
    matrix = shapely.relate(a, b)
    for name in RELATIONS[:-1]:
        if getattr(shapely, name)(a, b):
            return Relation(matrix, name)
    return Relation(matrix, "disjoint")
