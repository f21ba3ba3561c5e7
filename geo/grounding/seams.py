"""Merging per-tile detections into scene objects, the same whatever the tiling.

Approach: clip to cores, then union
-----------------------------------
Tiles overlap, so an object near a seam is seen by several tiles. Every tile keeps only
what lies in its *core* (:class:`georeason.geo.raster.tiling.Tile`; the cores partition the
raster), and the pieces of one class are then unioned, so pieces that meet across a core
boundary become one object again; the union is split into its connected parts, one
object each.

Why this is tiling-invariant: a pixel-exact region (spectral masks) clipped to cores and
unioned back is exactly the region itself, whatever the cores are. To make that exact in
floating point, the work is done in *global pixel coordinates* (tile pixel + the tile's
integer offset), where pixel polygons and core rectangles have integer vertices, and
mapped to the CRS once at the end with the raster transform. Geometries are then put in
a canonical form (collinear vertices removed, :func:`shapely.normalize`), so a scene
vectorised as one tile and the same scene cut into 256 px tiles give the same polygons.
Everything that depends on the whole object happens after the union: the minimum area
(geodesic, on WGS84; holes smaller than it are filled) and the simplification (tolerance in metres converted with the
pixel size at the object). Doing either per tile would make seams visible.

Scores of merged objects are the area-weighted mean of their pieces' scores (pieces
are scored by the grounder over what the tile saw, so scores, unlike geometries, may
differ slightly between tilings).

Boxes and points cannot be clipped meaningfully: a box (or point) is kept by the tile
whose core contains its centre, and the boxes left are deduplicated by non-maximum
suppression (NMS) per class in CRS coordinates (IoU above ``iou_threshold``: the
lower-scoring box goes). This is exact for objects no larger than half the overlap
(each is then seen whole by the tile that owns its centre); a larger object cut by a
tile edge can leave a truncated box whose IoU with the full one is below the threshold.

Ids are ``<label>-<n>``, numbered per label after sorting by label, then by the
geometry's bounds (minx, miny, maxx, maxy) in the CRS, then area: deterministic for a
given input.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from georeason.errors import CRSMismatchError, InputError
from georeason.geo.grounding.detections import (
    Detection,
    GroundedObject,
    mask_to_polygons,
    pixel_to_world,
    to_crs_geometry,
)
from georeason.geo.raster.io import pixel_sizes_m
from georeason.geo.raster.tiling import Tile
from georeason.geo.vector.crs import to_lonlat
from georeason.geo.vector.measure import area_m2

__all__ = ["box_iou", "nms", "merge_detections", "SeamMerger", "assign_ids"]


def box_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection over union of two geometries' areas (0 when both are empty).

    Examples
    --------
    >>> from shapely import box
    >>> box_iou(box(0, 0, 2, 2), box(1, 0, 3, 2))
    0.3333333333333333
    """
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


def nms(objects: Sequence[GroundedObject], iou_threshold: float = 0.5) -> list[GroundedObject]:
    """Non-maximum suppression per label: drop a box whose IoU with a kept, higher-scoring
    box of the same label exceeds ``iou_threshold``. Ties in score keep the one with the
    smaller bounds (deterministic).

    Examples
    --------
    >>> from shapely import box
    >>> objs = [GroundedObject("car", 0.9, box(0, 0, 10, 10), "box"),
    ...         GroundedObject("car", 0.8, box(1, 0, 11, 10), "box"),
    ...         GroundedObject("car", 0.7, box(50, 0, 60, 10), "box")]
    >>> [o.score for o in nms(objs, 0.5)]
    [0.9, 0.7]
    """
    if not 0 <= iou_threshold <= 1:
        raise InputError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    kept: list[GroundedObject] = []
    by_label: dict[str, list[GroundedObject]] = defaultdict(list)
    for o in objects:
        by_label[o.label].append(o)
    for label in sorted(by_label):
        objs = sorted(by_label[label], key=lambda o: (-o.score, o.geometry.bounds))
        tree = STRtree([o.geometry for o in objs])
        suppressed = np.zeros(len(objs), bool)
        for i, o in enumerate(objs):
            if suppressed[i]:
                continue
            kept.append(o)
            for j in tree.query(o.geometry):
                if j > i and not suppressed[j] and box_iou(o.geometry, objs[j].geometry) > iou_threshold:
                    suppressed[j] = True
    return kept


def assign_ids(objects: Iterable[GroundedObject]) -> list[GroundedObject]:
    """Sort objects (label, bounds, area) and name them ``<label>-1``, ``<label>-2``, ...

    Spaces in labels become dashes (``water body`` -> ``water-body-1``) so ids can be
    written as ``#id`` in questions.
    """
    objs = sorted(
        objects, key=lambda o: (o.label, tuple(round(v, 6) for v in o.geometry.bounds), o.geometry.area)
    )
    counter: dict[str, int] = defaultdict(int)
    out = []
    for o in objs:
        counter[o.label] += 1
        stem = "-".join(o.label.split())
        out.append(_replace(o, id=f"{stem}-{counter[o.label]}"))
    return out


def _replace(o: GroundedObject, **kw) -> GroundedObject:
    return replace(o, **kw)


def _canonical(g: BaseGeometry) -> BaseGeometry:
    return shapely.normalize(shapely.simplify(g, 0.0))


def _core_box(tile: Tile) -> BaseGeometry:
    c = tile.core
    return shapely.box(c.col_off, c.row_off, c.col_off + c.width, c.row_off + c.height)


def _in_core(tile: Tile, col: float, row: float) -> bool:
    c = tile.core
    return c.col_off <= col < c.col_off + c.width and c.row_off <= row < c.row_off + c.height


def merge_detections(
    tile_results: Iterable[tuple[Tile, Sequence[Detection]]],
    *,
    iou_threshold: float = 0.5,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
    plan: Iterable[Tile] | None = None,
) -> list[GroundedObject]:
    """Merge per-tile detections into scene objects in the raster CRS (see module doc).

    Parameters
    ----------
    tile_results : iterable of (Tile, detections)
        All tiles of one plan (skipped all-nodata tiles may be absent). Consumed lazily:
        each tile's detections can be freed once it has been added.
    iou_threshold : float
        Box NMS threshold.
    min_area_m2 : float
        Polygon objects with a smaller geodesic area (WGS84) are dropped.
    simplify_m : float
        Douglas-Peucker tolerance in metres for polygon objects (topology preserved).
    plan : iterable of Tile, optional
        The tile plan. Given, the seams are merged row by row as rows complete (bounded
        memory, :class:`SeamMerger`); without it, once at the end. The result is the same.

    Returns
    -------
    list of GroundedObject
        With ids, sorted as described in :func:`assign_ids`.
    """
    merger = SeamMerger(
        iou_threshold=iou_threshold, min_area_m2=min_area_m2, simplify_m=simplify_m, plan=plan
    )
    for tile, dets in tile_results:
        merger.add(tile, dets)
    return merger.finish()


class SeamMerger:
    """The seam merge, streamed by tile rows: :meth:`add` tiles as they are grounded,
    :meth:`finish` for the objects.

    Memory stays bounded by one row of tiles, not the scene (as GRASS ``r.to.vect`` and
    GDAL ``Polygonize`` stream by rows). A tile's detections are clipped to its core on
    :meth:`add` and dropped: pieces away from every interior core edge are whole objects
    and are finished at once (area, holes, simplification, CRS); pieces on a seam wait for
    their row. When every tile of a row is in (the ``plan`` says which; :meth:`skip` counts
    a failed one), the row's seam pieces are grouped with the pieces carried from the rows
    above by contact (an STRtree ``intersects`` query, connected components). A group
    that does not reach the row's lower core edge can gain nothing from the rows below
    (their cores start at that edge), so it is finished: the finished groups are unioned
    (one ``union_all``, split into parts); a group that reaches it is carried on as its
    pieces, not unioned (an object spanning many rows is unioned once, when complete, not
    once per row). Without a ``plan`` every row waits for :meth:`finish`: the
    all-in-memory merge. Both give the same objects.

    Examples
    --------
    >>> from affine import Affine
    >>> from pyproj import CRS
    >>> from rasterio.windows import Window
    >>> t = Affine(10, 0, 500000, 0, -10, 5000000)
    >>> def tile(i, r0, r1):  # 1 column, rows [r0, r1) of a 10 x 30 px raster, 2 px overlap
    ...     w0 = max(0, r0 - 2)
    ...     return Tile((i, 0), Window(0, w0, 10, min(30, r1 + 2) - w0), Window(0, r0, 10, r1 - r0),
    ...                 t @ Affine.translation(0, w0), (0, 0, 0, 0), CRS(32633), t, (30, 10))
    >>> tiles = [tile(0, 0, 10), tile(1, 10, 20), tile(2, 20, 30)]
    >>> m = SeamMerger(plan=tiles)
    >>> for tl in tiles:  # a 4 x 30 px strip through all three tiles, in each tile's pixels
    ...     m.add(tl, [Detection("river", 1.0, "polygon", shapely.box(3, 0, 7, tl.window.height))])
    >>> [(o.id, o.geometry.area, o.tiles) for o in m.finish()]
    [('river-1', 12000.0, ((0, 0), (1, 0), (2, 0)))]
    """

    def __init__(
        self,
        *,
        iou_threshold: float = 0.5,
        min_area_m2: float = 0.0,
        simplify_m: float = 0.0,
        plan: Iterable[Tile] | None = None,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.min_area_m2 = min_area_m2
        self.simplify_m = simplify_m
        self.transform: Affine | None = None
        self.crs: CRS | None = None
        self._boxes: list[GroundedObject] = []
        self._points: list[GroundedObject] = []
        self._objects: list[GroundedObject] = []
        #: row (core row offset) -> tile indices not yet added; None: no plan, flush at the end
        self._waiting: dict[int, set[tuple[int, int]]] | None = None
        self._row_of: dict[tuple[int, int], int] = {}
        if plan is not None:
            self._waiting = defaultdict(set)
            for t in plan:
                idx = (int(t.index[0]), int(t.index[1]))
                self._row_of[idx] = int(t.core.row_off)
                self._waiting[int(t.core.row_off)].add(idx)
        #: row -> label -> seam pieces of that row
        self._pending: dict[int, dict[str, list[_Pieces]]] = defaultdict(lambda: defaultdict(list))
        #: row -> lower core edge (global px)
        self._row_end: dict[int, int] = {}
        #: label -> parts carried over the last flushed row's lower edge
        self._carry: dict[str, _Carry] = {}
        self._height = 0
        self._seq = 0  # pieces numbered in input order: scores average in the same order

    def add(self, tile: Tile, dets: Sequence[Detection]) -> None:
        """Clip one tile's detections to its core; finish what is whole; flush complete rows."""
        if self.transform is None or self.crs is None:
            self.transform, self.crs = tile.raster_transform, tile.crs
        elif tile.raster_transform != self.transform or (tile.crs is not self.crs and tile.crs != self.crs):
            raise CRSMismatchError(
                f"tiles of different rasters in one merge: tile {tile.index} has CRS {tile.crs.to_string()} "
                f"and transform {tuple(tile.raster_transform)[:6]}, expected {self.crs.to_string()} "
                f"{tuple(self.transform)[:6]}"
            )
        row = int(tile.core.row_off)
        self._height = int(tile.raster_shape[0])
        self._row_end[row] = int(tile.core.row_off + tile.core.height)
        if dets:
            self._add_pieces(tile, row, dets)
        self._done((int(tile.index[0]), int(tile.index[1])))

    def skip(self, index: tuple[int, int]) -> None:
        """A tile of the plan that will not come (it failed): its row can still complete."""
        self._done((int(index[0]), int(index[1])))

    def finish(self) -> list[GroundedObject]:
        """Flush every row left; NMS for boxes; the objects with ids (:func:`assign_ids`)."""
        if self._waiting is None:  # no plan: every row's seam pieces in one union
            rows = [self._pending.pop(r) for r in sorted(self._pending)]
            for by_label in rows:
                for label, chunks in by_label.items():
                    self._pending[-1][label].extend(chunks)
            self._row_end[-1] = self._height
        for row in sorted(self._pending):
            self._flush(row)
        self._flush_carry()
        objects = [*self._objects, *nms(self._boxes, self.iou_threshold), *self._points]
        self._objects, self._boxes, self._points = [], [], []
        return assign_ids(objects)

    def _done(self, idx: tuple[int, int]) -> None:
        if self._waiting is None or idx not in self._row_of:
            return
        self._waiting[self._row_of[idx]].discard(idx)
        # rows flush top to bottom: the carried parts cross one row edge at a time
        for row in sorted(self._waiting):
            if self._waiting[row]:
                break
            del self._waiting[row]
            self._flush(row)

    def _add_pieces(self, tile: Tile, row: int, dets: Sequence[Detection]) -> None:
        dx, dy = tile.window.col_off, tile.window.row_off
        by_label: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for d in dets:
            if d.kind in ("polygon", "mask") and not d.whole:
                geoms = mask_to_polygons(d.geometry) if d.kind == "mask" else [d.geometry]
                gl, sl = by_label[d.label]
                gl.extend(geoms)
                sl.extend([float(d.score)] * len(geoms))
            else:
                c = d.geometry.centroid if d.kind in ("box", "polygon") else d.geometry
                if not _in_core(tile, c.x + dx, c.y + dy):
                    continue
                obj = GroundedObject(
                    label=d.label,
                    score=float(d.score),
                    geometry=to_crs_geometry(d, tile),
                    kind=d.kind,
                    tile_index=tile.index,
                    tiles=(tile.index,),
                )
                (self._points if d.kind == "point" else self._boxes).append(obj)
        # A grounder that answers several names from one mask (lake, river and water from
        # the same water components) gives them the same geometry objects: clip them once,
        # finish their whole pieces once.
        clipped: dict[tuple[int, ...], tuple[list, list, _Pieces | None]] = {}
        finished: dict[int, list[GroundedObject]] = {}
        for label, (gl, sl) in by_label.items():
            key = tuple(map(id, gl))
            seen = clipped.get(key)
            if seen is not None and seen[1] == sl and all(a is b for a, b in zip(seen[0], gl)):
                p = seen[2]
            else:
                p = _clip_to_core(np.array(gl, dtype=object), np.array(sl, float), tile, self._seq)
                if p is not None:
                    self._seq += len(p.geoms)
                clipped[key] = (gl, sl, p)
            if p is None:
                continue
            if id(p) not in finished:
                whole = ~p.on_seam
                objs: list[BaseGeometry] = list(p.geoms[whole])
                members = [_Members.of(p, np.array([i])) for i in np.flatnonzero(whole)]
                finished[id(p)] = self._finish(label, objs, members)
            self._objects.extend(o if o.label == label else replace(o, label=label) for o in finished[id(p)])
            if p.on_seam.any():
                self._pending[row][label].append(p)

    def _flush(self, row: int) -> None:
        """Union the row's seam pieces with the parts carried into it; finish what is whole."""
        pending = self._pending.pop(row, {})
        end = self._row_end.get(row)
        labels = sorted(set(pending) | set(self._carry))
        done: dict[tuple[int, ...], tuple[list[GroundedObject], _Carry | None]] = {}
        carry: dict[str, _Carry] = {}
        for label in labels:
            chunks, before = pending.get(label, []), self._carry.get(label)
            key = (*map(id, chunks), id(before))  # lake, river, water: the same pieces, one union
            if key not in done:
                done[key] = self._union_row(label, chunks, before, end)
            objs, c = done[key]
            self._objects.extend(o if o.label == label else replace(o, label=label) for o in objs)
            if c is not None:
                carry[label] = c
        self._carry = carry

    def _flush_carry(self) -> None:
        done: dict[int, list[GroundedObject]] = {}
        for label in sorted(self._carry):
            c = self._carry[label]
            if id(c) not in done:
                done[id(c)] = self._union_row(label, [], c, None)[0]
            self._objects.extend(o if o.label == label else replace(o, label=label) for o in done[id(c)])
        self._carry = {}

    def _union_row(
        self, label: str, chunks: list[_Pieces], before: _Carry | None, end: int | None
    ) -> tuple[list[GroundedObject], _Carry | None]:
        """Group the row's seam pieces and the pieces carried into it by contact; union
        the groups that do not reach the row's lower edge ``end`` (``None``: the last row)
        into objects, carry the others on as pieces (each piece is unioned once, when its
        object is complete, however many rows the object spans)."""
        geoms: list[np.ndarray] = []
        members: list[_Members] = []
        ncarry = 0
        if before is not None:
            geoms.append(before.geoms)
            members.extend(before.members)
            ncarry = len(before.members)
        for p in chunks:
            idx = np.flatnonzero(p.on_seam)
            geoms.append(p.geoms[idx])
            members.extend(_Members.of(p, np.array([i])) for i in idx)
        if not members:
            return [], None
        g = np.concatenate(geoms)
        n = len(g)
        top = shapely.bounds(g)[:, 3]
        # Pieces that can touch: this row's, and the carried ones reaching down to its top
        # edge (a carried piece above that edge meets nothing of this row or below).
        cand = np.arange(n)
        if before is not None and before.edge is not None:
            cand = np.concatenate([np.flatnonzero(top[:ncarry] >= before.edge), np.arange(ncarry, n)])
        a, b = STRtree(g[cand]).query(g[cand], predicate="intersects")
        src, dst = [cand[a]], [cand[b]]
        if before is not None:  # the pieces of one carried group stay together
            order = np.argsort(before.group, kind="stable")
            same = before.group[order][1:] == before.group[order][:-1]
            src.append(order[1:][same])
            dst.append(order[:-1][same])
        s_, d_ = np.concatenate(src), np.concatenate(dst)
        graph = coo_matrix((np.ones(len(s_), np.int8), (s_, d_)), shape=(n, n))
        ncomp, comp = connected_components(graph, directed=False)
        reach_comp = np.zeros(ncomp, bool)
        if end is not None and end < self._height:
            reach_comp[comp[top >= end]] = True
        reach = reach_comp[comp]
        fin = np.flatnonzero(~reach)
        objs: list[GroundedObject] = []
        if fin.size:
            # the finished groups touch no other: one union of them all, split into parts
            merged = shapely.get_parts(_union(g[fin]))
            merged = merged[(shapely.get_type_id(merged) == 3) & (shapely.area(merged) > 0)]
            src_i, part_i = STRtree(merged).query(shapely.point_on_surface(g[fin]), predicate="intersects")
            pm: dict[int, list[_Members]] = defaultdict(list)
            for si, mi in zip(src_i.tolist(), part_i.tolist()):
                pm[mi].append(members[fin[si]])
            parts = [_Members.join(pm.get(mi, [])) for mi in range(len(merged))]
            objs = self._finish(label, list(merged), parts)
        kept = np.flatnonzero(reach)
        c = _Carry(g[kept], [members[i] for i in kept], comp[kept], end) if kept.size else None
        return objs, c

    def _finish(self, label: str, objs: list[BaseGeometry], members: list[_Members]) -> list[GroundedObject]:
        return _finish_objects(
            label, objs, members, self.transform, self.crs, self.min_area_m2, self.simplify_m
        )


class _Pieces:
    """Polygons of one label from one tile, clipped to its core, in global pixels."""

    __slots__ = ("geoms", "scores", "areas", "seq", "tile", "on_seam")

    def __init__(self, geoms, scores, tile, on_seam, seq0: int = 0):
        self.geoms, self.scores, self.tile, self.on_seam = geoms, scores, tile, on_seam
        self.areas = shapely.area(geoms)
        self.seq = np.arange(seq0, seq0 + len(geoms), dtype=np.int64)


class _Members:
    """The pieces an object is the union of: input order, scores, areas, tiles."""

    __slots__ = ("seq", "scores", "areas", "tiles")

    def __init__(self, seq: np.ndarray, scores: np.ndarray, areas: np.ndarray, tiles: np.ndarray) -> None:
        self.seq, self.scores, self.areas, self.tiles = seq, scores, areas, tiles

    @classmethod
    def of(cls, p: _Pieces, idx: np.ndarray) -> _Members:
        tiles = np.repeat(np.array([p.tile], dtype=np.int64).reshape(1, 2), len(idx), axis=0)
        return cls(p.seq[idx], p.scores[idx], p.areas[idx], tiles)

    @classmethod
    def join(cls, ms: Sequence[_Members]) -> _Members:
        if not ms:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2), np.int64))
        seq = np.concatenate([m.seq for m in ms])
        o = np.argsort(seq, kind="stable")  # the order the all-at-once merge averages in
        return cls(
            seq[o],
            np.concatenate([m.scores for m in ms])[o],
            np.concatenate([m.areas for m in ms])[o],
            np.concatenate([m.tiles for m in ms])[o],
        )


class _Carry:
    """Seam pieces of the objects that reach a row's lower core edge (``edge``), carried to
    the next row un-unioned: ``group`` numbers the object (touching pieces) each is part of."""

    __slots__ = ("geoms", "members", "group", "edge")

    def __init__(
        self, geoms: np.ndarray, members: list[_Members], group: np.ndarray, edge: int | None
    ) -> None:
        self.geoms, self.members, self.group, self.edge = geoms, members, group, edge


def _union(g: np.ndarray) -> BaseGeometry:
    """The union of polygons ``g``: GEOS's coverage union when they form a valid coverage
    (no overlaps, shared edges with the same vertices: pixel polygons clipped to the tile
    cores are one, both sides of a seam cut from the same pixels; 3-5x faster than a
    general overlay), else :func:`shapely.union_all`. The same point set either way."""
    if len(g) > 1 and shapely.coverage_is_valid(g):
        return shapely.coverage_union_all(g)
    return shapely.union_all(g)


def _clip_to_core(g: np.ndarray, scores: np.ndarray, tile: Tile, seq0: int = 0) -> _Pieces | None:
    ok = ~(shapely.is_empty(g) | shapely.is_missing(g))
    g, scores = g[ok], scores[ok]
    if g.size == 0:
        return None
    bad = ~shapely.is_valid(g)
    if bad.any():
        g[bad] = shapely.make_valid(g[bad])
    offset = np.array([tile.window.col_off, tile.window.row_off], float)
    g = shapely.transform(g, lambda xy: xy + offset)
    c = tile.core
    c0, r0, c1, r1 = c.col_off, c.row_off, c.col_off + c.width, c.row_off + c.height
    b = shapely.bounds(g)
    outside = (b[:, 2] <= c0) | (b[:, 0] >= c1) | (b[:, 3] <= r0) | (b[:, 1] >= r1)
    inside = (b[:, 0] >= c0) & (b[:, 2] <= c1) & (b[:, 1] >= r0) & (b[:, 3] <= r1)
    g, scores, inside = g[~outside], scores[~outside], inside[~outside]
    need = ~inside
    if need.any():
        g[need] = shapely.intersection(g[need], shapely.box(c0, r0, c1, r1))
    parts, idx = shapely.get_parts(g, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
    parts, idx = parts[keep], idx[keep]
    if parts.size == 0:
        return None
    b = shapely.bounds(parts)
    h, w = tile.raster_shape
    on_seam = (
        ((b[:, 0] <= c0) & (c0 > 0))
        | ((b[:, 2] >= c1) & (c1 < w))
        | ((b[:, 1] <= r0) & (r0 > 0))
        | ((b[:, 3] >= r1) & (r1 < h))
    )
    return _Pieces(parts, scores[idx], tile.index, on_seam, seq0)


def _fill_small_holes(poly: BaseGeometry, min_hole_px: float) -> BaseGeometry:
    """``poly`` (pixel coordinates) without the holes smaller than ``min_hole_px`` pixels.

    Examples
    --------
    >>> from shapely import Polygon
    >>> p = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(1, 1), (2, 1), (2, 2), (1, 2)], [(4, 4), (8, 4), (8, 8), (4, 8)]])
    >>> len(_fill_small_holes(p, 3.0).interiors)
    1
    """
    if poly.geom_type != "Polygon" or not poly.interiors:
        return poly
    holes = [r for r in poly.interiors if shapely.Polygon(r).area >= min_hole_px]
    if len(holes) == len(poly.interiors):
        return poly
    return shapely.normalize(shapely.Polygon(poly.exterior, holes))


def _finish_objects(
    label: str,
    objs: list[BaseGeometry],
    members: list[_Members],
    transform: Affine | None,
    crs: CRS | None,
    min_area_m2: float,
    simplify_m: float,
) -> list[GroundedObject]:
    """Whole objects (global pixels) -> canonical, minimum area, holes filled, simplified,
    in the CRS; each scored by its pieces' area-weighted mean score."""
    if not objs:
        return []
    objs_arr = shapely.normalize(shapely.simplify(np.array(objs, dtype=object), 0.0))
    keep = np.ones(len(objs_arr), bool)
    if min_area_m2 > 0 or simplify_m > 0:
        cent = shapely.centroid(objs_arr)
        w, h = pixel_sizes_m(transform, crs, shapely.get_x(cent), shapely.get_y(cent))
    if min_area_m2 > 0:
        # Pixel area x local pixel size decides clear cases; near the threshold the exact
        # geodesic area does, so the decision is the same in any CRS.
        ratio = shapely.area(objs_arr) * w * h / min_area_m2
        keep = ratio >= 0.7
        for i in np.flatnonzero(keep & (ratio < 1.5)):
            keep[i] = area_m2(to_lonlat(pixel_to_world(objs_arr[i], transform), crs)) >= min_area_m2
        # The same minimum mapping unit for holes: gaps smaller than it inside an object
        # (a few pixels under the threshold amid water or forest) are filled. Done on the
        # merged object, so it is as tiling-invariant as the union itself.
        # Hole areas in bulk; only an object with a hole to fill is rebuilt.
        holed = np.flatnonzero(keep & (shapely.get_num_interior_rings(objs_arr) > 0))
        if holed.size:
            rings, owner = shapely.get_rings(objs_arr[holed], return_index=True)
            small = shapely.area(shapely.polygons(rings)) < (min_area_m2 / (w * h))[holed][owner]
            small[np.r_[0, np.flatnonzero(np.diff(owner)) + 1]] = False  # exteriors come first
            for j in np.unique(owner[small]):
                objs_arr[holed[j]] = _fill_small_holes(objs_arr[holed[j]], min_area_m2 / (w * h)[holed[j]])
    if simplify_m > 0:
        tol = simplify_m / ((w + h) / 2)
        objs_arr[keep] = shapely.normalize(
            shapely.simplify(objs_arr[keep], tol[keep], preserve_topology=True)
        )
    out = []
    for i in np.flatnonzero(keep):
        m = members[i]
        wts = m.areas if m.seq.size else np.array([1.0])
        sc = m.scores if m.seq.size else np.array([0.0])
        tl = tuple(sorted({(int(a), int(b)) for a, b in m.tiles}))
        out.append(
            GroundedObject(
                label=label,
                score=float(np.average(sc, weights=wts)),
                geometry=pixel_to_world(objs_arr[i], transform),
                kind="polygon",
                tile_index=tl[0] if tl else None,
                tiles=tl,
            )
        )
    return out
