"""One Answer type for every question.

An answer is a plain JSON value (a number in ``unit``, an integer count, true/false, a
category string, an object id, or a list of ids), its kind, the evidence (objects and
geometries it rests on), the program that computed it, and — instead of a guess — an
abstention with its reason when the evidence is missing or ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.geo.vector.crs import LONLAT, reproject

__all__ = ["Kind", "Evidence", "Answer"]

Kind = Literal["scalar", "categorical", "boolean", "count", "object", "region", "pixel"]


@dataclass(frozen=True)
class Evidence:
    """An object or geometry an answer rests on (geometry in ``crs``)."""

    id: str
    label: str
    geometry: BaseGeometry
    crs: CRS
    role: str = "object"  # object | reference | region | result
    #: the geometry in lon/lat when the caller has it already (a scene's :attr:`lonlat`)
    lonlat_geometry: BaseGeometry | None = field(default=None, compare=False, repr=False)

    def lonlat(self) -> BaseGeometry:
        if self.lonlat_geometry is not None:
            return self.lonlat_geometry
        return reproject(self.geometry, self.crs, LONLAT)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": self.label,
            "role": self.role,
            "geometry": shapely.geometry.mapping(self.lonlat()),
        }


@dataclass
class Answer:
    """The answer to one question (or one program)."""

    value: Any
    kind: Kind
    unit: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    query: list[dict[str, Any]] | None = None
    question: str | None = None
    abstained: bool = False
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def abstain(cls, reason: str, kind: Kind = "scalar", query=None, question=None, evidence=None) -> Answer:
        return cls(
            value=None,
            kind=kind,
            abstained=True,
            reason=reason,
            query=query,
            question=question,
            evidence=list(evidence or []),
        )

    def to_json(self, geometry: bool = True) -> dict[str, Any]:
        """The ``ask --json`` object: question, answer, unit, kind, evidence, abstained, reason, query.

        ``geometry=False``: evidence objects are named by id, class and role only, without
        their geometry (a batch of answers about objects from a vector file, which has
        them); regions the question computed or gave (ids ``$...``) keep theirs.
        """
        return {
            "question": self.question,
            "answer": self.value,
            "unit": self.unit,
            "kind": self.kind,
            "evidence": _evidence_json(self.evidence) if geometry else _evidence_ids_json(self.evidence),
            "abstained": self.abstained,
            "reason": self.reason,
            "query": self.query,
            "details": self.details,
        }

    def text(self) -> str:
        """A short human-readable rendering of the answer value."""
        if self.abstained:
            return f"abstained: {self.reason}"
        v = self.value
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return (
                f"{v:,.6g} {self.unit or ''}".strip()
                if abs(v) < 1e6
                else f"{v:,.0f} {self.unit or ''}".strip()
            )
        if isinstance(v, list):
            return ", ".join(map(str, v)) if v else "(none)"
        return f"{v} {self.unit or ''}".strip()


def _evidence_json(evidence: list[Evidence]) -> list[dict[str, Any]]:
    """``[e.to_json() for e in evidence]``: lon/lat geometries the evidence carries, the
    others reprojected in one call per CRS, and GeoJSON built in bulk (:func:`_geojson_many`)."""
    lonlat = np.empty(len(evidence), dtype=object)
    by_crs: dict[int, list[int]] = {}
    for n, e in enumerate(evidence):
        if e.lonlat_geometry is not None:
            lonlat[n] = e.lonlat_geometry
        else:
            by_crs.setdefault(id(e.crs), []).append(n)
    for ns in by_crs.values():
        crs = evidence[ns[0]].crs
        geoms = np.array([evidence[n].geometry for n in ns], dtype=object)
        for n, g in zip(ns, reproject(geoms, crs, LONLAT)):
            lonlat[n] = g
    return [
        {"id": e.id, "class": e.label, "role": e.role, "geometry": g}
        for e, g in zip(evidence, _geojson_many(lonlat))
    ]


def _evidence_ids_json(evidence: list[Evidence]) -> list[dict[str, Any]]:
    """Evidence as ``{"id", "class", "role"}``; computed or given regions (``$`` ids) with their geometry."""
    regions = [e for e in evidence if e.id.startswith("$")]
    geo = iter(_evidence_json(regions)) if regions else iter(())
    return [
        next(geo) if e.id.startswith("$") else {"id": e.id, "class": e.label, "role": e.role}
        for e in evidence
    ]


def _geojson_many(geoms: np.ndarray) -> list[dict[str, Any]]:
    """``[_geojson(g) for g in geoms]``, with the coordinates of points and of polygons
    without holes read in one call (the same dicts, without a numpy call per geometry)."""
    out: list[dict[str, Any] | None] = [None] * len(geoms)
    if len(geoms) == 0:
        return []
    tid = shapely.get_type_id(geoms)
    plain = ~shapely.is_empty(geoms) & ~shapely.has_z(geoms)
    pts = np.flatnonzero(plain & (tid == 0))
    if len(pts):
        for n, xy in zip(pts.tolist(), shapely.get_coordinates(geoms[pts]).tolist()):
            out[n] = {"type": "Point", "coordinates": tuple(xy)}
    polys = np.flatnonzero(plain & (tid == 3))
    if len(polys):
        polys = polys[shapely.get_num_interior_rings(geoms[polys]) == 0]
    if len(polys):
        xy = shapely.get_coordinates(geoms[polys]).tolist()
        ends = np.cumsum(shapely.get_num_coordinates(geoms[polys])).tolist()
        start = 0
        for n, end in zip(polys.tolist(), ends):
            out[n] = {"type": "Polygon", "coordinates": (tuple(map(tuple, xy[start:end])),)}
            start = end
    return [o if o is not None else _geojson(g) for o, g in zip(out, geoms)]


def _geojson(g: BaseGeometry) -> dict[str, Any]:
    """``shapely.geometry.mapping(g)``; points and polygons without holes built directly
    from their coordinate array (the same dict, several times faster)."""
    tid = shapely.get_type_id(g)
    if tid == 0 and not g.is_empty and not g.has_z:
        return {"type": "Point", "coordinates": tuple(shapely.get_coordinates(g)[0].tolist())}
    if tid == 3 and not g.is_empty and not g.has_z and shapely.get_num_interior_rings(g) == 0:
        ring = tuple(map(tuple, shapely.get_coordinates(g).tolist()))
        return {"type": "Polygon", "coordinates": (ring,)}
    return shapely.geometry.mapping(g)
