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

__all__ = ["box_iou", "nms", "merge_detections", "assign_ids"]


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
) -> list[GroundedObject]:
    """Merge per-tile detections into scene objects in the raster CRS (see module doc).

    Parameters
    ----------
    tile_results : iterable of (Tile, detections)
        All tiles of one plan (skipped all-nodata tiles may be absent).
    iou_threshold : float
        Box NMS threshold.
    min_area_m2 : float
        Polygon objects with a smaller geodesic area (WGS84) are dropped.
    simplify_m : float
        Douglas-Peucker tolerance in metres for polygon objects (topology preserved).

    Returns
    -------
    list of GroundedObject
        With ids, sorted as described in :func:`assign_ids`.
    """
    pieces: dict[str, list[_Pieces]] = defaultdict(list)
    boxes: list[GroundedObject] = []
    points: list[GroundedObject] = []
    transform: Affine | None = None
    crs: CRS | None = None
    for tile, dets in tile_results:
        if transform is None or crs is None:
            transform, crs = tile.raster_transform, tile.crs
        elif tile.raster_transform != transform or (tile.crs is not crs and tile.crs != crs):
            raise CRSMismatchError(
                f"tiles of different rasters in one merge: tile {tile.index} has CRS {tile.crs.to_string()} "
                f"and transform {tuple(tile.raster_transform)[:6]}, expected {crs.to_string()} {tuple(transform)[:6]}"
            )
        if not dets:
            continue
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
                (points if d.kind == "point" else boxes).append(obj)
        # A grounder that answers several names from one mask (lake, river and water from
        # the same water components) gives them the same geometry objects: clip them once.
        clipped: dict[tuple[int, ...], tuple[list, list, _Pieces | None]] = {}
        for label, (gl, sl) in by_label.items():
            key = tuple(map(id, gl))
            seen = clipped.get(key)
            if seen is not None and seen[1] == sl and all(a is b for a, b in zip(seen[0], gl)):
                p = seen[2]
            else:
                p = _clip_to_core(np.array(gl, dtype=object), np.array(sl, float), tile)
                clipped[key] = (gl, sl, p)
            if p is not None:
                pieces[label].append(p)

    objects: list[GroundedObject] = []
    unions: dict[tuple[int, ...], list[GroundedObject]] = {}  # the same pieces: one union
    for label in sorted(pieces):
        key = tuple(map(id, pieces[label]))
        if key in unions:
            objects.extend(replace(o, label=label) for o in unions[key])
            continue
        merged = _union_pieces(label, pieces[label], transform, crs, min_area_m2, simplify_m)
        unions[key] = merged
        objects.extend(merged)
    objects.extend(nms(boxes, iou_threshold))
    objects.extend(points)
    return assign_ids(objects)


class _Pieces:
    """Polygons of one label from one tile, clipped to its core, in global pixels."""

    __slots__ = ("geoms", "scores", "tile", "on_seam")

    def __init__(self, geoms, scores, tile, on_seam):
        self.geoms, self.scores, self.tile, self.on_seam = geoms, scores, tile, on_seam


def _clip_to_core(g: np.ndarray, scores: np.ndarray, tile: Tile) -> _Pieces | None:
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
    return _Pieces(parts, scores[idx], tile.index, on_seam)


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


def _union_pieces(
    label, chunks: list[_Pieces], transform, crs, min_area_m2, simplify_m
) -> list[GroundedObject]:
    geoms = np.concatenate([p.geoms for p in chunks])
    scores = np.concatenate([p.scores for p in chunks])
    seam = np.concatenate([p.on_seam for p in chunks])
    tiles = np.array([p.tile for p in chunks for _ in range(len(p.geoms))], dtype=np.int64).reshape(-1, 2)
    areas = shapely.area(geoms)

    # Pieces away from every seam are whole objects already; only seam pieces are unioned.
    objs: list[BaseGeometry] = []
    members: list[np.ndarray] = []
    for i in np.flatnonzero(~seam):
        objs.append(geoms[i])
        members.append(np.array([i]))
    seam_idx = np.flatnonzero(seam)
    if seam_idx.size:
        merged = shapely.get_parts(shapely.union_all(geoms[seam_idx]))
        merged = merged[(shapely.get_type_id(merged) == 3) & (shapely.area(merged) > 0)]
        tree = STRtree(merged)
        piece_i, part_i = tree.query(shapely.point_on_surface(geoms[seam_idx]), predicate="intersects")
        pm: dict[int, list[int]] = defaultdict(list)
        for pi, mi in zip(piece_i.tolist(), part_i.tolist()):
            pm[mi].append(int(seam_idx[pi]))
        for mi, part in enumerate(merged):
            objs.append(part)
            members.append(np.array(pm.get(mi, []), dtype=np.int64))
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
        for i in np.flatnonzero(keep):
            objs_arr[i] = _fill_small_holes(objs_arr[i], min_area_m2 / (w[i] * h[i]))
    if simplify_m > 0:
        tol = simplify_m / ((w + h) / 2)
        objs_arr[keep] = shapely.normalize(
            shapely.simplify(objs_arr[keep], tol[keep], preserve_topology=True)
        )
    out = []
    for i in np.flatnonzero(keep):
        idx = members[i]
        wts = areas[idx] if idx.size else np.array([1.0])
        sc = scores[idx] if idx.size else np.array([0.0])
        tl = tuple(sorted({(int(a), int(b)) for a, b in tiles[idx]}))
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
