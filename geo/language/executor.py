"""Run a validated query program against a scene.

The executor never guesses: a step that cannot be answered from the evidence (a reference
matching no object or several where one is needed, coinciding centroids for a bearing,
an empty set to rank) stops the program with an abstention whose reason names the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError, ProgramValidationError
from georeason.geo.language.answer import Answer, Evidence, Kind
from georeason.geo.language.program import Program, T, check_scene, literal_geometry, validate_program
from georeason.geo.raster.pixels import MaskWriter, PixelTransform
from georeason.geo.vector import group, regions
from georeason.geo.vector.crs import LONLAT, aeqd_crs, parse_crs, reproject, spherical_mean_lonlat
from georeason.geo.vector.measure import (
    area_m2,
    azimuth_matches,
    centroid_distance_m,
    compass_point,
    direction_azimuth,
    distance_m,
    length_m,
)
from georeason.geo.vector.scene import Scene
from georeason.geo.vector.topology import predicate as topo_predicate
from georeason.geo.vector.topology import relate

__all__ = [
    "Abstain",
    "GroupBatch",
    "execute",
    "answer_program",
    "expected_kind",
    "PixelTransform",
    "MaskWriter",
]

_DIST = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}
_AREA = {"m2": 1.0, "km2": 1e6, "ha": 1e4}


class Abstain(Exception):
    """Raised inside execution when the evidence does not support an answer."""


@dataclass
class Value:
    type: T
    data: Any  # indices array, index, number, bool, str, or None for GEOMETRY
    geom: BaseGeometry | None = None  # GEOMETRY values: in the scene CRS
    evidence: Mapping[str, Evidence] = field(default_factory=dict)
    unit: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


#: Selections larger than this keep their evidence lazily (built only if an answer uses it).
_LAZY_EVIDENCE = 256


def _is_sorted(idx: np.ndarray) -> bool:
    return bool(len(idx) < 2 or (idx[1:] >= idx[:-1]).all())


class _LazyEvidence(Mapping[str, Evidence]):
    """The evidence of a large selection, built on first use.

    A ``select`` of 100k objects that a ``within_distance`` step narrows down never
    needs its 100k Evidence records; a ``count`` of the whole selection does, and gets them.
    """

    def __init__(self, scene: Scene, idx: np.ndarray, role: str) -> None:
        self._scene, self._idx, self._role = scene, idx, role
        self._built: dict[str, Evidence] | None = None

    def _all(self) -> dict[str, Evidence]:
        if self._built is None:
            self._built = _evidence_of(self._scene, self._idx, self._role)
        return self._built

    def __getitem__(self, key: str) -> Evidence:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._idx)


def _evidence_of(scene: Scene, idx: np.ndarray, role: str) -> dict[str, Evidence]:
    """Evidence records of the objects ``idx`` (with their lon/lat geometry when the scene
    has computed it: answers then need not reproject them again)."""
    s = scene
    idx = np.asarray(idx, dtype=np.intp)
    ids, labels, geoms = s.ids[idx].tolist(), s.labels[idx].tolist(), s.geoms[idx].tolist()
    ll = s.__dict__.get("lonlat")
    lls = ll[idx].tolist() if ll is not None else [None] * len(ids)
    crs = s.crs
    return {oid: Evidence(oid, label, g, crs, role, gl) for oid, label, g, gl in zip(ids, labels, geoms, lls)}


def _isclose(a: float, b: float, rtol: float, atol: float) -> bool:
    """``numpy.isclose`` of two numbers (``|a - b| <= atol + rtol * |b|``), without numpy's per-call cost."""
    return bool(a == b or abs(a - b) <= atol + rtol * abs(b))


def _of_role(evidence: Mapping[str, Evidence], role: str) -> list[Evidence]:
    """The evidence records with ``role`` (a lazy selection of another role is not built)."""
    if isinstance(evidence, _LazyEvidence) and evidence._role != role:
        return []
    return [e for e in evidence.values() if e.role == role]


class _Run:
    def __init__(
        self,
        scene: Scene,
        pixel: PixelTransform | None,
        mask_writer: MaskWriter | None = None,
        batch: GroupBatch | None = None,
        recording: bool = False,
    ):
        self.scene = scene
        self.pixel = pixel
        self.mask_writer = mask_writer
        self.values: dict[str, Value] = {}
        #: group queries shared with the other programs of a batch (see :class:`GroupBatch`)
        self.batch = batch
        #: a :meth:`GroupBatch.prefetch` run: stop at the first group query the batch lacks
        self.recording = recording

    # -- helpers -------------------------------------------------------------------
    def ev_objects(self, idx, role: str = "object") -> Mapping[str, Evidence]:
        s = self.scene
        idx = np.atleast_1d(np.asarray(idx, dtype=np.intp))
        if len(idx) > _LAZY_EVIDENCE:
            return _LazyEvidence(s, idx, role)
        return _evidence_of(s, idx, role)

    def ref(self, r: str) -> Value:
        return self.values[r[1:]]

    def geom(self, v: Value) -> BaseGeometry:
        """Scene-CRS geometry of an OBJECT or GEOMETRY value."""
        return self.scene.geoms[v.data] if v.type is T.OBJECT else v.geom

    def lonlat(self, v: Value) -> BaseGeometry:
        if v.type is T.OBJECT:
            if self.batch is not None:
                return self.batch.lonlat(int(v.data))
            return self.scene.lonlat[v.data]
        return reproject(v.geom, self.scene.crs, LONLAT)

    def as_set(self, v: Value) -> np.ndarray:
        return np.array([v.data], dtype=np.intp) if v.type is T.OBJECT else np.asarray(v.data, dtype=np.intp)

    def name(self, v: Value) -> str:
        if v.type is T.OBJECT:
            return f"object {self.scene.ids[v.data]!r}"
        return "the given geometry"

    def refs_evidence(self, *values: Value) -> dict[str, Evidence]:
        out: dict[str, Evidence] = {}
        for v in values:
            out.update(v.evidence)
        return out

    def exclude_self(self, idx: np.ndarray, ref: Value) -> np.ndarray:
        if ref.type is T.OBJECT:
            i = int(ref.data)
            # a sorted selection (a class) without the reference stays as it is (shared)
            if self.batch.is_sorted(idx) if self.batch is not None else _is_sorted(idx):
                k = int(np.searchsorted(idx, i))
                if k >= len(idx) or idx[k] != i:
                    return idx
            return idx[idx != i]
        return idx

    def require_instances(self, step) -> None:
        """Counting/ranking needs countable objects: abstain on land-cover objects.

        Grounders mark objects that are pieces of land cover (``attrs["extent"] == "cover"``,
        see :mod:`georeason.models.fitness`), with the reason and the fix in ``extent_reason``.
        """
        ref = getattr(step.args, "objects", None)
        v = self.values.get(ref[1:]) if isinstance(ref, str) and ref.startswith("$") else None
        if v is None or v.type is not T.OBJECTS:
            return
        idx = self.as_set(v)
        if self.batch is not None:  # the land-cover objects, found once for the batch
            cover = self.batch.cover()
            if cover is None:
                return
            idx = idx[cover[idx]]
        for i in idx:
            attrs = self.scene.attrs[i]
            if attrs.get("extent") == "cover":
                raise Abstain(
                    attrs.get("extent_reason") or f"{self.scene.labels[i]!r} objects are land cover"
                )

    def object_value(self, i: int, *context: Value, role: str = "result") -> Value:
        ev = self.refs_evidence(*context)
        ev.update(self.ev_objects([i], role))
        return Value(T.OBJECT, int(i), evidence=ev)

    # -- ops ---------------------------------------------------------------------------
    def op_select(self, a, sid):
        s = self.scene
        if a.ids is None and a.cls is not None and not a.where:  # one class: its cached selection
            idx = s.of_class(a.cls)
            return Value(T.OBJECTS, idx, evidence=self.ev_objects(idx), details={"cls": a.cls})
        mask = np.ones(len(s), dtype=bool)
        if a.ids is not None:
            mask &= np.isin(s.ids, np.array(a.ids, dtype=object))
        if a.cls is not None:
            in_cls = np.zeros(len(s), dtype=bool)
            in_cls[s.of_class(a.cls)] = True
            mask &= in_cls
        if a.where:
            for key, want in a.where.items():
                mask &= np.array([attrs.get(key) == want for attrs in s.attrs], dtype=bool)
        idx = np.flatnonzero(mask)
        return Value(T.OBJECTS, idx, evidence=self.ev_objects(idx), details={"cls": a.cls})

    def op_object(self, a, sid):
        i = self.scene.index(a.id)
        if i is None:
            raise Abstain(f"no object with id {a.id!r} in the scene")
        return Value(T.OBJECT, i, evidence=self.ev_objects([i], "reference"))

    def op_geometry(self, a, sid):
        g = literal_geometry(a)
        if a.crs.lower() == "pixel":
            if self.pixel is None:
                raise InputError(
                    f"step {sid!r} gives pixel coordinates but no raster was given; pass --raster FILE"
                )
            fn, rcrs = self.pixel
            g = shapely.transform(g, fn)
            src = rcrs
        else:
            src = parse_crs(a.crs, what=f"step {sid!r} crs")
        g = reproject(g, src, self.scene.crs)
        ev = Evidence(f"${sid}", "region", g, self.scene.crs, "reference")
        return Value(T.GEOMETRY, None, geom=g, evidence={ev.id: ev})

    def op_the(self, a, sid):
        src = self.ref(a.objects)
        idx = self.as_set(src)
        what = f"'{src.details.get('cls') or 'object'}'"
        if len(idx) == 0:
            raise Abstain(f"no {what} object in the scene matches (step {sid!r})")
        if a.pick == "only":
            if len(idx) > 1:
                ids = ", ".join(self.scene.ids[idx[:8]])
                raise Abstain(
                    f"{len(idx)} objects match {what} ({ids}{', ...' if len(idx) > 8 else ''}) where one is "
                    "needed; name one by id (#id) or with a selector (the largest ...)"
                )
            return self.object_value(idx[0], role="reference")
        by = "area" if a.pick in ("largest", "smallest") else "length"
        r = group.extreme(self.scene, idx, by=by, largest=a.pick in ("largest", "longest"), k=2)
        if len(r.idx) > 1 and np.isclose(r.values[0], r.values[1], rtol=1e-9, atol=0):
            raise Abstain(
                f"the {a.pick} {what} is a tie between {self.scene.ids[r.idx[0]]} and {self.scene.ids[r.idx[1]]}"
            )
        v = self.object_value(r.idx[0], role="reference")
        v.details = {by + ("_m2" if by == "area" else "_m"): float(r.values[0])}
        return v

    def op_at(self, a, sid):
        region = self.ref(a.geometry)
        g = self.geom(region)
        idx = self.scene.of_class(a.cls)
        if len(idx) == 0:
            raise Abstain(f"no {a.cls!r} object in the scene (step {sid!r})")
        cand = idx[shapely.intersects(self.scene.geoms[idx], g)]
        if len(cand) == 0:
            raise Abstain(f"no {a.cls!r} object overlaps the given geometry (step {sid!r})")
        geoms = self.scene.geoms[cand]
        inter = shapely.area(shapely.intersection(geoms, g))
        union = shapely.area(shapely.union(geoms, g))
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        best = int(np.argmax(iou))
        if iou[best] < a.min_iou:
            raise Abstain(
                f"the best-overlapping {a.cls!r} ({self.scene.ids[cand[best]]}) has IoU {iou[best]:.2f} "
                f"< {a.min_iou} with the given geometry (step {sid!r})"
            )
        v = self.object_value(cand[best], region, role="reference")
        v.details = {"iou": float(iou[best])}
        return v

    def op_distance(self, a, sid):
        va, vb = self.ref(a.a), self.ref(a.b)
        ga, gb = self.lonlat(va), self.lonlat(vb)
        d = distance_m(ga, gb) if a.mode == "min" else centroid_distance_m(ga, gb)
        return Value(
            T.NUMBER,
            d / _DIST[a.unit],
            evidence=self.refs_evidence(va, vb),
            unit=a.unit,
            details={"mode": a.mode},
        )

    def _azimuth(self, a, sid) -> tuple[float, Value, Value, dict[str, Any]]:
        va, vb = self.ref(a.a), self.ref(a.b)
        az, used = direction_azimuth(self.lonlat(va), self.lonlat(vb), a.method)
        if np.isnan(az):
            raise Abstain(
                f"{self.name(va)} and {self.name(vb)} have the same centroid; direction is undefined"
            )
        return az, va, vb, {"direction_method": used, "direction_definition": _DEFINITIONS[used]}

    def op_bearing(self, a, sid):
        az, va, vb, how = self._azimuth(a, sid)
        return Value(
            T.NUMBER,
            az,
            evidence=self.refs_evidence(va, vb),
            unit="deg",
            details={"compass_8": compass_point(az, 8), "compass_16": compass_point(az, 16), **how},
        )

    def op_direction(self, a, sid):
        az, va, vb, how = self._azimuth(a, sid)
        return Value(
            T.STRING,
            compass_point(az, a.points),
            evidence=self.refs_evidence(va, vb),
            details={"azimuth_deg": az, **how},
        )

    def op_is_direction(self, a, sid):
        az, va, vb, how = self._azimuth(a, sid)
        return Value(
            T.BOOLEAN,
            azimuth_matches(az, a.direction),
            evidence=self.refs_evidence(va, vb),
            details={"azimuth_deg": az, "direction": a.direction, **how},
        )

    def op_relation(self, a, sid):
        va, vb = self.ref(a.a), self.ref(a.b)
        rel = relate(self.geom(va), self.geom(vb), geographic=self.scene.is_geographic)
        return Value(T.STRING, rel.name, evidence=self.refs_evidence(va, vb), details={"de9im": rel.de9im})

    def op_predicate(self, a, sid):
        va, vb = self.ref(a.a), self.ref(a.b)
        yes = topo_predicate(self.geom(va), self.geom(vb), a.predicate, geographic=self.scene.is_geographic)
        rel = relate(self.geom(va), self.geom(vb), geographic=self.scene.is_geographic)
        return Value(
            T.BOOLEAN,
            yes,
            evidence=self.refs_evidence(va, vb),
            details={"predicate": a.predicate, "de9im": rel.de9im, "relation": rel.name},
        )

    def op_area(self, a, sid):
        v = self.ref(a.of)
        if v.type is T.OBJECTS:  # area covered by the set, overlaps counted once
            m2 = group.total_area_m2(self.scene, v.data)
        else:
            m2 = area_m2(self.lonlat(v))
        return Value(T.NUMBER, m2 / _AREA[a.unit], evidence=self.refs_evidence(v), unit=a.unit)

    def op_length(self, a, sid):
        v = self.ref(a.of)
        return Value(
            T.NUMBER, length_m(self.lonlat(v)) / _DIST[a.unit], evidence=self.refs_evidence(v), unit=a.unit
        )

    def op_within_distance(self, a, sid):
        objs, ref = self.ref(a.objects), self.ref(a.of)
        sel = self.as_set(objs)
        idx = self.exclude_self(sel, ref)
        distance = a.distance * _DIST[a.unit]
        r = None
        if self.batch is not None:
            r = self.batch.within(self, sel, idx, ref, distance)
        if r is None:
            r = group.within_distance(self.scene, idx, self.lonlat(ref), distance)
        ev = self.refs_evidence(ref)
        ev.update(self.ev_objects(r.idx, "result"))
        return Value(
            T.OBJECTS,
            r.idx,
            evidence=ev,
            details={
                "cls": objs.details.get("cls"),
                "distances_m": dict(zip(self.scene.ids[r.idx].tolist(), r.values.tolist())),
            },
        )

    def op_inside(self, a, sid):
        objs, region = self.ref(a.objects), self.ref(a.region)
        idx = self.exclude_self(self.as_set(objs), region)
        hit = group.inside(self.scene, idx, self.geom(region), mode=a.mode)
        ev = self.refs_evidence(region)
        ev.update(self.ev_objects(hit, "result"))
        return Value(T.OBJECTS, hit, evidence=ev, details={"cls": objs.details.get("cls")})

    def op_count(self, a, sid):
        v = self.ref(a.objects)
        return Value(T.COUNT, int(len(self.as_set(v))), evidence=dict(v.evidence))

    def _rank(self, a, sid, far: bool):
        objs, ref = self.ref(a.objects), self.ref(a.to)
        sel = self.as_set(objs)
        idx = self.exclude_self(sel, ref)
        if len(idx) == 0:
            raise Abstain(f"there are no {objs.details.get('cls') or 'objects'} to rank (step {sid!r})")
        if len(idx) < a.k:
            raise Abstain(f"only {len(idx)} candidate objects, fewer than k={a.k} (step {sid!r})")
        rank = group.farthest if far else group.nearest
        # one query serves both the answer and the tie check (the first k of the k+1 ranked)
        kq = max(a.k, 2) if len(idx) > 1 else a.k
        both = None
        if self.batch is not None:
            both = self.batch.nearest(self, sel, idx, ref, kq, far)
        if both is None:
            both = rank(self.scene, idx, self.lonlat(ref), kq)
        r = group.Ranked(both.idx[: a.k], both.values[: a.k])
        if a.k == 1 and len(idx) > 1:
            second = both
            if _isclose(second.values[0], second.values[1], rtol=1e-9, atol=1e-6):
                raise Abstain(
                    f"{self.scene.ids[second.idx[0]]} and {self.scene.ids[second.idx[1]]} are equally "
                    f"{'far' if far else 'near'} ({second.values[0]:.3f} m); no single answer"
                )
        details = {"distances_m": dict(zip(self.scene.ids[r.idx].tolist(), r.values.tolist()))}
        if a.k == 1:
            v = self.object_value(r.idx[0], ref)
        else:
            ev = self.refs_evidence(ref)
            ev.update(self.ev_objects(r.idx, "result"))
            v = Value(T.OBJECTS, r.idx, evidence=ev)
        v.details = details
        return v

    def op_nearest(self, a, sid):
        return self._rank(a, sid, far=False)

    def op_farthest(self, a, sid):
        return self._rank(a, sid, far=True)

    def _arg_extreme(self, a, sid, largest: bool):
        objs = self.ref(a.objects)
        idx = self.as_set(objs)
        if len(idx) == 0:
            raise Abstain(f"there are no {objs.details.get('cls') or 'objects'} to compare (step {sid!r})")
        r = group.extreme(self.scene, idx, by=a.by, largest=largest, k=2)
        if len(r.idx) > 1 and np.isclose(r.values[0], r.values[1], rtol=1e-9, atol=0):
            raise Abstain(f"{self.scene.ids[r.idx[0]]} and {self.scene.ids[r.idx[1]]} tie by {a.by}")
        v = self.object_value(r.idx[0])
        v.details = {a.by + ("_m2" if a.by == "area" else "_m"): float(r.values[0])}
        return v

    def op_argmax(self, a, sid):
        return self._arg_extreme(a, sid, True)

    def op_argmin(self, a, sid):
        return self._arg_extreme(a, sid, False)

    def op_union(self, a, sid):
        v = self.ref(a.objects)
        g = v.geom if v.type is T.GEOMETRY else regions.dissolve(self.scene.geoms[self.as_set(v)])
        if g is None or g.is_empty:
            raise Abstain(f"the union in step {sid!r} is empty (no objects)")
        ev = Evidence(f"${sid}", "region", g, self.scene.crs, "region")
        return Value(T.GEOMETRY, None, geom=g, evidence={**v.evidence, ev.id: ev})

    def op_buffer(self, a, sid):
        v = self.ref(a.of)
        # a set is buffered as the collection of its members (the buffer of a union is the
        # union of the buffers): no union of the set first
        base = (
            self.lonlat(v)
            if v.type is not T.OBJECTS
            else shapely.GeometryCollection(list(self.scene.lonlat[self.as_set(v)]))
        )
        if base is None or base.is_empty:
            raise Abstain(f"nothing to buffer in step {sid!r}")
        proj = aeqd_crs(*spherical_mean_lonlat([base]))
        # piecewise: a long pixel-edged line or polygon is not noded in one GEOS call
        buf = regions.buffer_piecewise(
            reproject(base, LONLAT, proj), a.distance * _DIST[a.unit], quad_segs=16
        )
        _check_buffer_representable(buf, proj, a.distance, a.unit, sid)
        g = reproject(reproject(buf, proj, LONLAT), LONLAT, self.scene.crs)
        ev = Evidence(f"${sid}", "region", g, self.scene.crs, "region")
        return Value(T.GEOMETRY, None, geom=g, evidence={**v.evidence, ev.id: ev})

    def _region(self, v: Value) -> BaseGeometry:
        """The region a value covers: a set's members dissolved (unioned only where they
        overlap, :func:`~georeason.geo.vector.regions.dissolve`), never one whole-set union."""
        if v.type is T.OBJECTS:
            return regions.dissolve(self.scene.geoms[self.as_set(v)])
        return self.geom(v)

    def _region_parts(self, v: Value) -> np.ndarray:
        if v.type is T.OBJECTS:
            return self.scene.geoms[self.as_set(v)]
        return np.array([self.geom(v)], dtype=object)

    def op_intersection(self, a, sid):
        va, vb = self.ref(a.a), self.ref(a.b)
        if va.type is T.OBJECTS or vb.type is T.OBJECTS:
            # each member against the other side's candidates (STRtree), pieces dissolved:
            # the same point set as intersecting the two unions, without building them
            g = regions.intersect_sets(self._region_parts(va), self._region_parts(vb))
        else:
            g = shapely.intersection(self._region(va), self._region(vb))
        ev = self.refs_evidence(va, vb)
        if not g.is_empty:
            e = Evidence(f"${sid}", "region", g, self.scene.crs, "region")
            ev[e.id] = e
        return Value(T.GEOMETRY, None, geom=g, evidence=ev)

    def op_pixels(self, a, sid):
        v = self.ref(a.of)
        if self.mask_writer is None:
            raise InputError(
                f"step {sid!r} asks for a pixel answer, which needs a raster grid; pass --raster FILE"
            )
        g = self._region(v)
        path, n = self.mask_writer(g, self.scene.crs, sid)
        ev = dict(v.evidence)
        if not g.is_empty:
            e = Evidence(f"${sid}", "pixels", g, self.scene.crs, "region")
            ev[e.id] = e
        return Value(T.PIXELS, int(n), evidence=ev, unit="px", details={"mask": str(path)})

    def op_total_area(self, a, sid):
        objs = self.ref(a.objects)
        region = self.ref(a.region) if a.region else None
        m2 = group.total_area_m2(self.scene, self.as_set(objs), self.lonlat(region) if region else None)
        ev = dict(objs.evidence)
        if region is not None:
            ev.update(region.evidence)
        return Value(T.NUMBER, m2 / _AREA[a.unit], evidence=ev, unit=a.unit)

    # -- filters, aggregates, comparisons ----------------------------------------------
    def _filtered(self, objs: Value, ref: Value, keep: np.ndarray, details: dict[str, Any]) -> Value:
        ev = self.refs_evidence(ref)
        ev.update(self.ev_objects(keep, "result"))
        return Value(T.OBJECTS, keep, evidence=ev, details={"cls": objs.details.get("cls"), **details})

    def _distances(self, idx: np.ndarray, ref: Value) -> np.ndarray:
        if len(idx) == 0:
            return np.array([], dtype=float)
        r = group.nearest(self.scene, idx, self.lonlat(ref), k=len(idx))
        by = dict(zip(r.idx.tolist(), r.values.tolist()))
        return np.array([by[int(i)] for i in idx], dtype=float)

    def op_distance_filter(self, a, sid):
        objs, ref = self.ref(a.objects), self.ref(a.of)
        idx = self.exclude_self(self.as_set(objs), ref)
        d = self._distances(idx, ref)
        ok = np.ones(len(idx), dtype=bool)
        if a.at_least is not None:
            ok &= d >= a.at_least * _DIST[a.unit]
        if a.at_most is not None:
            ok &= d <= a.at_most * _DIST[a.unit]
        order = np.lexsort((self.scene.ids[idx[ok]].astype(str), d[ok]))
        keep, dk = idx[ok][order], d[ok][order]
        return self._filtered(
            objs, ref, keep, {"distances_m": dict(zip(self.scene.ids[keep].tolist(), dk.tolist()))}
        )

    def op_in_direction(self, a, sid):
        objs, ref = self.ref(a.objects), self.ref(a.of)
        idx = self.exclude_self(self.as_set(objs), ref)
        rl = self.lonlat(ref)
        keep, azs, used = [], {}, set()
        for i in idx:
            az, how = direction_azimuth(rl, self.scene.lonlat[i], a.method)
            used.add(how)
            if not np.isnan(az) and azimuth_matches(az, a.direction):
                keep.append(int(i))
                azs[str(self.scene.ids[i])] = az
        methods = sorted(used) or [a.method]
        return self._filtered(
            objs,
            ref,
            np.array(keep, dtype=np.intp),
            {
                "direction": a.direction,
                "azimuth_deg": azs,
                "direction_method": ", ".join(methods),
                "direction_definition": "; ".join(_DEFINITIONS[m] for m in methods),
            },
        )

    def op_related(self, a, sid):
        objs, ref = self.ref(a.objects), self.ref(a.to)
        idx = self.exclude_self(self.as_set(objs), ref)
        g = self.geom(ref)
        geo = self.scene.is_geographic
        keep = [int(i) for i in idx if topo_predicate(self.scene.geoms[i], g, a.predicate, geographic=geo)]
        return self._filtered(objs, ref, np.array(keep, dtype=np.intp), {"predicate": a.predicate})

    def op_aggregate(self, a, sid):
        objs = self.ref(a.objects)
        idx = self.as_set(objs)
        ev = dict(objs.evidence)
        if a.measure == "distance":
            ref = self.ref(a.to)
            idx = self.exclude_self(idx, ref)
            vals = self._distances(idx, ref)
            ev.update(ref.evidence)
            unit = a.unit or "m"
            scale = _DIST[unit]
        else:
            vals = group.metric_values(self.scene, idx, a.measure)
            unit = a.unit or ("m2" if a.measure == "area" else "m")
            scale = (_AREA if a.measure == "area" else _DIST)[unit]
        if len(vals) == 0:
            raise Abstain(
                f"there are no {objs.details.get('cls') or 'objects'} to take the {a.stat} of (step {sid!r})"
            )
        fn = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "median": np.median}[a.stat]
        per = dict(zip(self.scene.ids[idx].tolist(), (vals / scale).tolist()))
        return Value(
            T.NUMBER,
            float(fn(vals)) / scale,
            evidence=ev,
            unit=unit,
            details={"stat": a.stat, "measure": a.measure, "n": int(len(vals)), "values": per},
        )

    def op_compare(self, a, sid):
        va = self.ref(a.a)
        if a.b is not None:
            vb = self.ref(a.b)
            if va.unit != vb.unit:
                raise Abstain(f"cannot compare {va.unit} with {vb.unit} (step {sid!r})")
            other, ev = float(vb.data), self.refs_evidence(va, vb)
        elif va.unit is None and a.unit is None:  # counts
            other, ev = float(a.value), self.refs_evidence(va)
        else:
            unit = a.unit or va.unit
            scales = {**_DIST, **_AREA, "deg": 1.0}
            if va.unit not in scales or unit not in scales or (unit in _DIST) != (va.unit in _DIST):
                raise Abstain(f"cannot compare {va.unit} with {unit} (step {sid!r})")
            other, ev = a.value * scales[unit] / scales[va.unit], self.refs_evidence(va)
        x = float(va.data)
        yes = {"lt": x < other, "le": x <= other, "gt": x > other, "ge": x >= other}[a.relation]
        return Value(
            T.BOOLEAN,
            bool(yes),
            evidence=ev,
            details={"left": x, "right": other, "unit": va.unit, "relation": a.relation},
        )

    def op_closer(self, a, sid):
        va, vb, ref = self.ref(a.a), self.ref(a.b), self.ref(a.to)
        fn = distance_m if a.mode == "min" else centroid_distance_m
        rl = self.lonlat(ref)
        da, db = fn(self.lonlat(va), rl), fn(self.lonlat(vb), rl)
        if np.isclose(da, db, rtol=1e-9, atol=1e-6):
            raise Abstain(
                f"{self.name(va)} and {self.name(vb)} are equally far ({da:.3f} m) from {self.name(ref)}"
            )
        pick = va if (da > db) == a.farther else vb
        v = self.object_value(pick.data, va, vb, ref)
        v.details = {
            "distances_m": {self.scene.ids[va.data]: da, self.scene.ids[vb.data]: db},
            "mode": a.mode,
        }
        return v

    def op_both(self, a, sid):
        va, vb = self.ref(a.a), self.ref(a.b)
        return Value(
            T.BOOLEAN,
            bool(va.data) and bool(vb.data),
            evidence=self.refs_evidence(va, vb),
            details={
                "parts": [{"value": bool(va.data), **va.details}, {"value": bool(vb.data), **vb.details}]
            },
        )


#: What each direction definition means, quoted in answers' details.
_DEFINITIONS = {
    "nearest_part": "azimuth from the reference's point nearest to the object to the object's point nearest "
    "to the reference (what the map shows for long or large objects)",
    "centroid": "azimuth from the reference's centroid to the object's centroid",
    "centroid (they touch or overlap)": "the two touch or overlap, so they have no nearest parts: azimuth "
    "from the reference's centroid to the object's centroid",
}

#: Ops that need countable objects (instances), not pieces of land cover.
_NEEDS_INSTANCES = frozenset({"count", "nearest", "farthest", "argmax", "argmin", "the"})

_KIND: dict[T, Kind] = {
    T.NUMBER: "scalar",
    T.COUNT: "count",
    T.BOOLEAN: "boolean",
    T.STRING: "categorical",
    T.OBJECT: "object",
    T.OBJECTS: "region",
    T.GEOMETRY: "region",
    T.PIXELS: "pixel",
}


def _check_buffer_representable(buf, proj, distance: float, unit: str, sid: str) -> None:
    """Refuse a buffer that a lon/lat polygon cannot hold: one that covers a pole or
    crosses the antimeridian would come back inverted or torn (wrong objects, silently)."""
    from georeason.geo.vector.crs import transformer

    to_proj = transformer(LONLAT, proj)
    for lat in (90.0, -90.0):
        x, y = to_proj.transform(0.0, lat)
        if np.isfinite(x) and np.isfinite(y) and buf.covers(shapely.Point(x, y)):
            raise InputError(
                f"step {sid!r}: a buffer of {distance:g} {unit} reaches the {'north' if lat > 0 else 'south'} pole; "
                "such a region cannot be drawn in lon/lat here; give a smaller distance"
            )
    ring = shapely.get_coordinates(shapely.boundary(buf))
    lon, _ = transformer(proj, LONLAT).transform(ring[:, 0], ring[:, 1])
    if len(lon) > 1 and np.nanmax(np.abs(np.diff(lon))) > 180.0:
        raise InputError(
            f"step {sid!r}: a buffer of {distance:g} {unit} crosses the antimeridian (180 degrees longitude), "
            "which this method does not draw correctly; give a smaller distance"
        )


def expected_kind(program: Program) -> Kind:
    """The kind of answer a validated program gives (its last step's type)."""
    types = program.types()
    last = program.steps[-1]
    return _KIND[types[last.args.value[1:]]]


def _run_steps(program: Program, run: _Run) -> None:
    """Run the steps of ``program`` up to its answer, keeping each value in ``run.values``."""
    for step in program.steps:
        if step.op == "answer":
            break
        if run.recording and step.op not in _PREFETCH_OPS:
            raise _Unbatchable(step.op)
        if step.op in _NEEDS_INSTANCES:
            run.require_instances(step)
        run.values[step.id] = getattr(run, f"op_{step.op}")(step.args, step.id)


class _Pending(Exception):
    """A prefetch run reached a group query its batch has not answered yet."""


class _Unbatchable(Exception):
    """A prefetch run reached a step it does not run ahead (costly, or a query not shared)."""


#: Ops whose group queries a :class:`GroupBatch` answers for many programs at once.
_BATCHED_OPS = frozenset({"within_distance", "nearest"})
#: Ops a prefetch run executes ahead of the real run: cheap ones, and the batched queries.
_PREFETCH_OPS = _BATCHED_OPS | {"select", "object", "geometry", "the", "at", "count", "compare", "both"}


class GroupBatch:
    """Group queries of many programs about one scene, each group answered in one call.

    :meth:`prefetch` runs every program up to its first group query the batch does not
    hold yet (``within_distance`` of a set around a reference, ``nearest`` to a
    reference), collects those queries, and answers each group of same-shaped ones (the
    same selection of objects and the same distance, or k) with one
    :func:`~georeason.geo.vector.group.within_distance_many` or
    :func:`~georeason.geo.vector.group.nearest_many` call over all its references; then
    it does the same for the programs that go on to another group query (``rounds`` in
    all). Executing a program with the batch (``execute(..., batch=b)``) takes those
    results instead of querying again; a query the batch does not hold is made as without
    it.

    Answers are the same as one program at a time: the batched calls give each reference
    the result it gets alone (their error bounds and tie-breaks are per reference and per
    pair), and a reference that is itself in the class it is asked about (buildings
    within 200 m of building ``#b5``) is dropped from the class's result, which is what
    :func:`~georeason.geo.vector.group.within_distance` does when it masks the reference
    out of the class's index. ``nearest`` with the reference in its own class, ``farthest``
    and the other ops are not shared.

    The batch holds which objects are land cover (``attrs["extent"]``): the scene must not
    change while the batch is in use.

    Examples
    --------
    >>> import shapely
    >>> from georeason.geo.language.program import validate_program
    >>> scene = Scene(["a", "b", "c", "r1", "r2"], ["house"] * 3 + ["site"] * 2,
    ...     [shapely.Point(10.0, 50.0), shapely.Point(10.001, 50.0), shapely.Point(10.01, 50.0),
    ...      shapely.Point(10.0, 50.0005), shapely.Point(10.0095, 50.0)], "EPSG:4326")
    >>> def nearest(ref):
    ...     return validate_program([{"id": "h", "op": "select", "args": {"cls": "house"}},
    ...         {"id": "r", "op": "object", "args": {"id": ref}},
    ...         {"id": "n", "op": "nearest", "args": {"objects": "$h", "to": "$r"}},
    ...         {"id": "out", "op": "answer", "args": {"value": "$n"}}])
    >>> batch = GroupBatch(scene)
    >>> batch.prefetch([nearest("r1"), nearest("r2")])
    >>> batch.calls, batch.served
    (1, 2)
    >>> [execute(nearest(r), scene, batch=batch).value for r in ("r1", "r2")]
    ['a', 'c']
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._sels: dict[int, np.ndarray] = {}  # id -> selection, held so that ids stay unique
        self._done: dict[tuple[Any, ...], group.Ranked] = {}
        self._pending: dict[tuple[Any, ...], dict[Any, BaseGeometry | int]] = {}
        self._cover: np.ndarray | None = None
        self._any_cover = False
        self._sorted: dict[int, tuple[np.ndarray, bool]] = {}
        self._lonlat: dict[int, BaseGeometry] = {}
        #: batched group calls made, and the references they answered
        self.calls = 0
        self.served = 0

    def cover(self) -> np.ndarray | None:
        """Which of the scene's objects are pieces of land cover (found once); ``None`` when none is."""
        if self._cover is None:
            attrs = self.scene.attrs
            self._cover = np.fromiter(
                (a.get("extent") == "cover" for a in attrs), dtype=bool, count=len(attrs)
            )
            self._any_cover = bool(self._cover.any())
        return self._cover if self._any_cover else None

    def lonlat(self, i: int) -> BaseGeometry:
        """Object ``i`` in lon/lat: from the scene's lon/lat copy when it has one, else
        reprojected alone (once): a batch of questions about a few hundred references
        in a large scene need not reproject all of it."""
        got = self._lonlat.get(i)
        if got is None:
            got = self._lonlat[i] = self.scene.lonlat_of(np.array([i]))[0]
        return got

    def is_sorted(self, idx: np.ndarray) -> bool:
        """Whether ``idx`` is in ascending order (checked once per shared selection)."""
        key = id(idx)
        got = self._sorted.get(key)
        if got is None or got[0] is not idx:
            got = self._sorted[key] = (idx, _is_sorted(idx))
        return got[1]

    def prefetch(
        self, programs: Iterable[Program | None], pixel: PixelTransform | None = None, rounds: int = 3
    ) -> None:
        """Answer the group queries of ``programs`` (``None`` entries skipped) in batched calls.

        Nothing here is reported: a program that abstains, fails or has no group query
        is left to its own run, which reports it.
        """
        todo = []
        for p in programs:
            n = 0 if p is None else sum(s.op in _BATCHED_OPS for s in p.steps)
            if n:
                todo.append((p, n))
        for r in range(1, rounds + 1):
            waiting = []
            for p, n in todo:
                try:  # (an id or class not in the scene abstains in the program's own run)
                    _run_steps(p, _Run(self.scene, pixel, None, self, recording=True))
                except _Pending:
                    if n > r:  # it may go on to another group query once this one is answered
                        waiting.append((p, n))
                except Exception:  # noqa: BLE001, S110 - the program's own run reports it
                    pass
            if not self._pending:
                break
            self._answer_pending()
            todo = waiting

    def _answer_pending(self) -> None:
        todo = {w for refs in self._pending.values() for w in refs.values() if isinstance(w, int)}
        todo -= self._lonlat.keys()
        if todo:  # the references' lon/lat, reprojected together
            idx = np.array(sorted(todo), dtype=np.intp)
            self._lonlat.update(zip(idx.tolist(), self.scene.lonlat_of(idx)))
        for key, refs in self._pending.items():
            refs = {k: self.lonlat(w) if isinstance(w, int) else w for k, w in refs.items()}
            kind, sid, param = key
            sel = self._sels[sid]
            keys = list(refs)
            geoms = np.array([refs[k] for k in keys], dtype=object)
            try:
                if kind == "within":
                    res = group.within_distance_many(self.scene, sel, geoms, param)
                else:
                    res = group.nearest_many(self.scene, sel, geoms, int(param))
            except Exception:  # noqa: BLE001, S112 - each program then queries alone and reports it
                continue
            self.calls += 1
            self.served += len(keys)
            for k, r in zip(keys, res):
                r.idx.setflags(write=False)  # shared by every program asking this query
                r.values.setflags(write=False)
                self._done[(key, k)] = r
        self._pending.clear()

    def _lookup(self, run: _Run, kind: str, sel: np.ndarray, param: float, ref: Value) -> group.Ranked | None:
        held = self._sels.setdefault(id(sel), sel)
        if held is not sel:  # cannot happen while the batch holds its selections
            return None
        key = (kind, id(sel), param)
        rk = ("o", int(ref.data)) if ref.type is T.OBJECT else ("g", shapely.to_wkb(ref.geom))
        got = self._done.get((key, rk))
        if got is None and run.recording:
            # an object's lon/lat is found with the others' in one call (_answer_pending)
            where = int(ref.data) if ref.type is T.OBJECT else run.lonlat(ref)
            self._pending.setdefault(key, {})[rk] = where
            raise _Pending
        return got

    def _is_class(self, sel: np.ndarray) -> bool:
        """Whether ``sel`` is the scene's shared selection of one whole class."""
        return len(sel) > 0 and sel is self.scene.of_class(str(self.scene.labels[sel[0]]))

    def within(
        self, run: _Run, sel: np.ndarray, idx: np.ndarray, ref: Value, distance_m: float
    ) -> group.Ranked | None:
        """``within_distance(scene, idx, ref, distance_m)`` from the batch (``idx`` is ``sel``
        less the reference), or ``None`` when the batch does not hold it."""
        drop = None
        if idx is not sel:
            if ref.type is not T.OBJECT or len(sel) - len(idx) != 1 or not self._is_class(sel):
                if run.recording:
                    raise _Unbatchable("within_distance")
                return None
            drop = int(ref.data)
        r = self._lookup(run, "within", sel, float(distance_m), ref)
        if r is None or drop is None:
            return r
        keep = r.idx != drop
        return group.Ranked(r.idx[keep], r.values[keep])

    def nearest(
        self, run: _Run, sel: np.ndarray, idx: np.ndarray, ref: Value, k: int, far: bool
    ) -> group.Ranked | None:
        """``nearest(scene, idx, ref, k)`` from the batch, or ``None`` when it does not hold it
        (``farthest``, and a reference in its own selection, are not shared)."""
        if far or idx is not sel:
            if run.recording:
                raise _Unbatchable("nearest")
            return None
        return self._lookup(run, "nearest", sel, k, ref)


def execute(
    program: Program | list | str,
    scene: Scene,
    question: str | None = None,
    pixel: PixelTransform | None = None,
    mask_writer: MaskWriter | None = None,
    batch: GroupBatch | None = None,
) -> Answer:
    """Validate (if needed) and run a program; return its :class:`Answer`.

    Validation errors raise :class:`~georeason.errors.ProgramValidationError` before
    anything runs. Missing or ambiguous evidence gives an abstention, not an error.
    ``batch``: group queries already answered for the other programs of a batch (the
    answer is the same with or without it; see :class:`GroupBatch`).
    """
    if not isinstance(program, Program):
        program = validate_program(program, scene)
    query = program.to_json()
    run = _Run(scene, pixel, mask_writer, batch)
    kind = expected_kind(program)
    try:
        _run_steps(program, run)
    except Abstain as why:
        return Answer.abstain(
            str(why),
            kind=kind,
            query=query,
            question=question,
            evidence=[e for v in run.values.values() for e in _of_role(v.evidence, "reference")],
        )
    final = run.values[program.steps[-1].args.value[1:]]
    value: Any = final.data
    if final.type is T.OBJECT:
        value = str(scene.ids[final.data])
    elif final.type is T.OBJECTS:
        value = [str(x) for x in scene.ids[np.asarray(final.data, dtype=np.intp)]]
    elif final.type is T.GEOMETRY:
        value = [e.id for e in final.evidence.values() if not e.id.startswith("$")]
    elif final.type is T.NUMBER:
        value = float(value)
    elif final.type in (T.COUNT, T.PIXELS):
        value = int(value)
    elif final.type is T.BOOLEAN:
        value = bool(value)
    unit = final.unit
    return Answer(
        value=value,
        kind=_KIND[final.type],
        unit=unit,
        evidence=list(final.evidence.values()),
        query=query,
        question=question,
        details=final.details,
    )


def answer_program(
    program: Program,
    scene: Scene,
    question: str | None = None,
    pixel: PixelTransform | None = None,
    mask_writer: MaskWriter | None = None,
    batch: GroupBatch | None = None,
) -> Answer:
    """Answer a validated program (e.g. a compiled question) against a scene.

    The program is not validated again: only the ids and classes it names are checked
    against the scene (:func:`~georeason.geo.language.program.check_scene`). A reference
    the scene does not have gives an abstention (it matches no object), not an error.
    """
    try:
        check_scene(program, scene)
    except ProgramValidationError as exc:
        steps = program.to_json()
        reason = f"the question refers to something not in the scene: {exc}"
        if exc.arg == "cls":
            words = next(st for st in steps if st["id"] == exc.step)["args"]["cls"]
            reason = (
                f"the words {words!r} name no class in this scene's vocabulary "
                f"(classes: {', '.join(scene.classes) or '(none)'}); not understood: {words!r}"
            )
        return Answer.abstain(reason, kind=expected_kind(program), query=steps, question=question)
    return execute(program, scene, question=question, pixel=pixel, mask_writer=mask_writer, batch=batch)
