"""Exports: RFC 7946 GeoJSON, GeoPackage and GeoParquet, written atomically.

GeoJSON is written by hand (not through GDAL) so that it is exactly RFC 7946: EPSG:4326
longitude/latitude, polygon exterior rings counter-clockwise and holes clockwise, no
``crs`` member, coordinates rounded to 1e-7 degrees (about 1 cm). GeoPackage and
GeoParquet keep the source CRS. Every write goes to a temporary file in the target folder
and is renamed into place, so a crash never leaves a half-written output.

GIS-ready: a desktop GIS opening a file by path takes one geometry type per layer (QGIS
takes the first feature's type and does not draw the others). So every layer written here
holds one geometry family (polygons, lines or points, promoted to their Multi type), a
GeoPackage gets one layer per family, and an answer whose evidence mixes families is
written as one GeoJSON per family (``stem.polygons.geojson``, ``stem.lines.geojson``). An
answer without evidence (an abstention, an error, a plain number) is still a record a GIS
user sees: one feature with a null geometry carrying question, answer, status and reason.
GeoPackages are written as version 1.3 (``VERSION=1.3``), which GDAL >= 2.2 and QGIS 3.x
read without a "may only be partially supported" warning.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.errors import ExportError
from georeason.geo.vector.crs import LONLAT, coordinate_chunks, reproject
from georeason.geo.vector.scene import gc_paused

__all__ = [
    "atomic_path",
    "rfc7946_geometry",
    "feature_collection",
    "write_geojson",
    "geometry_family",
    "split_by_family",
    "as_multi",
    "write_table",
    "write_layers",
    "answer_rows",
    "answer_record",
    "answer_stem",
    "write_answer",
    "write_answer_files",
    "write_answer_geojson",
    "AnswerLayer",
    "GeoJSONCache",
    "rfc7946_geometries",
    "rfc7946_texts",
    "iter_rfc7946_texts",
    "geojson_geometries",
    "families_of",
    "feature_collection_text",
    "feature_collection_parts",
    "write_feature_collection",
    "write_error_record",
    "dedupe_classes",
    "relative_outputs",
    "FORMATS",
    "FAMILIES",
    "GPKG_VERSION",
]

#: File suffix -> format name understood by :func:`write_answer`.
FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}

#: Geometry family -> the (Multi) geometry type its layer is written with.
FAMILIES = {"polygons": "MultiPolygon", "lines": "MultiLineString", "points": "MultiPoint"}

#: GeoPackage version written (GDAL's default is 1.4, which GDAL 3.6 / QGIS 3.22 warn about).
GPKG_VERSION = "1.3"

#: Words left out of file names (they carry no meaning in a list of answers).
_STOPWORDS = ("what", "which", "is", "are", "the", "a", "an", "of", "there", "does", "do", "in")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary name keeps the suffix (GDAL picks drivers by it). On any exception the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the folder for {str(path)!r}: {exc}; choose a writable location"
        ) from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as GDAL want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        for leftover in (tmp_path, Path(str(tmp_path) + "-journal"), Path(str(tmp_path) + "-wal")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
        raise


def rfc7946_geometry(geom: BaseGeometry, crs: CRS | None = None, precision: int = 7) -> dict[str, Any]:
    """GeoJSON geometry dict per RFC 7946: lon/lat, exterior rings counter-clockwise.

    Examples
    --------
    >>> g = rfc7946_geometry(shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)]))  # clockwise in
    >>> g["coordinates"][0][:3]
    [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
    """
    return rfc7946_geometries([geom], crs, precision)[0]


def rfc7946_geometries(
    geoms: Sequence[BaseGeometry], crs: CRS | None = None, precision: int = 7
) -> list[dict[str, Any]]:
    """``[rfc7946_geometry(g, crs, precision) for g in geoms]`` in bulk: one reprojection,
    orientation and rounding call for all, coordinates read from one array."""
    arr = _object_array(geoms)
    if crs is not None:
        arr = reproject(arr, crs, LONLAT)
    arr = shapely.orient_polygons(arr, exterior_cw=False)
    arr = shapely.set_precision(arr, 10.0**-precision, mode="pointwise")
    return geojson_geometries(arr)


#: Coordinates turned into GeoJSON per bulk call of :func:`rfc7946_texts`: its Python lists
#: of floats take ~100 bytes a coordinate while they live, so a scene of millions of vertices
#: is converted in chunks (each geometry's text does not depend on the others in its call).
#: The 8000² scene's objects (739k coordinates): +62-75 MB at the peak with 250k, +19-23 MB
#: with 50k, the same CPU time (0.85-1.07 s either way, 3 alternated reps).
TEXT_CHUNK_COORDS = 50_000


def rfc7946_texts(geoms: Sequence[BaseGeometry], crs: CRS | None = None, precision: int = 7) -> list[str]:
    """``json.dumps(rfc7946_geometry(g, crs, precision))`` (``allow_nan=False``) for each
    geometry, converted in chunks of about :data:`TEXT_CHUNK_COORDS` coordinates."""
    return list(iter_rfc7946_texts(geoms, crs, precision))


def iter_rfc7946_texts(
    geoms: Sequence[BaseGeometry], crs: CRS | None = None, precision: int = 7, family: str | None = None
) -> Iterator[str]:
    """The texts of :func:`rfc7946_texts`, made a chunk of about :data:`TEXT_CHUNK_COORDS`
    coordinates at a time as they are consumed, so a writer that streams them never holds
    more than one chunk's (each text does not depend on the others in its call).
    ``family``: each geometry taken as ``as_multi(g, family)``, a chunk at a time. Raises
    ``ValueError`` on a coordinate that is not a finite number, when its chunk is made."""
    for part in coordinate_chunks(geoms, TEXT_CHUNK_COORDS):
        chunk = list(part)
        if family is not None:
            chunk = [as_multi(g, family) for g in chunk]
        with gc_paused():  # many short coordinate lists, no reference cycles
            texts = [json.dumps(g, allow_nan=False) for g in rfc7946_geometries(chunk, crs, precision)]
        yield from texts


def _object_array(geoms: Sequence[BaseGeometry | None]) -> np.ndarray:
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    return arr


#: shapely type id -> GeoJSON type name (2-D, non-empty geometries built from coordinates).
_GEOJSON_TYPES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}


def geojson_geometries(geoms: np.ndarray) -> list[dict[str, Any]]:
    """``json.loads(shapely.to_geojson(g))`` for each geometry (the same dicts: GEOS writes
    coordinates that read back to the same doubles), built from one coordinate array per
    geometry type (``shapely.to_ragged_array``) instead of a text round trip per geometry.
    Empty, 3-D and other geometries take GEOS's writer."""
    out: list[dict[str, Any] | None] = [None] * len(geoms)
    if len(geoms) == 0:
        return []
    tid = shapely.get_type_id(geoms)
    plain = ~shapely.is_empty(geoms) & ~shapely.has_z(geoms)
    for t, name in _GEOJSON_TYPES.items():
        idx = np.flatnonzero(plain & (tid == t))
        if not len(idx):
            continue
        _, coords, offsets = shapely.to_ragged_array(geoms[idx])
        level: list[Any] = coords.tolist()
        for off in offsets:  # innermost first: rings, parts, geometries
            o = off.tolist()
            level = [level[a:b] for a, b in zip(o[:-1], o[1:])]
        for n, c in zip(idx.tolist(), level):
            out[n] = {"type": name, "coordinates": c}
    return [o if o is not None else json.loads(shapely.to_geojson(g)) for o, g in zip(out, geoms)]


class GeoJSONCache:
    """RFC 7946 geometry texts (see :func:`rfc7946_texts`) of (geometry, family) pairs,
    computed in bulk and kept, so that an item's objects file and its answer files (whose
    evidence is the same objects) turn each geometry into GeoJSON once.

    Keyed by the geometry object and CRS object (both kept alive here), so an equal but
    distinct geometry is computed again, never confused with another.
    """

    def __init__(self, precision: int = 7) -> None:
        self.precision = precision
        self._texts: dict[tuple[int, str, int], tuple[BaseGeometry, CRS | None, str]] = {}
        # one computation at a time: a second thread asking for the same geometries (an
        # item's objects file written beside its answer files) waits and takes them made
        self._lock = threading.Lock()

    def texts(self, geoms: Sequence[BaseGeometry], families: Sequence[str], crs: CRS | None) -> list[str]:
        """The geometry text of ``as_multi(g, family)`` for each pair, in ``crs``."""
        keys = [(id(g), f, id(crs)) for g, f in zip(geoms, families)]
        with self._lock:
            todo = {k: n for n, k in enumerate(keys) if k not in self._texts}
            if todo:
                ns = list(todo.values())
                multi = [as_multi(geoms[n], families[n]) for n in ns]
                with gc_paused():  # millions of short coordinate lists, no reference cycles
                    made = rfc7946_texts(multi, crs, self.precision)
                for n, text in zip(ns, made):
                    self._texts[keys[n]] = (geoms[n], crs, text)
            return [self._texts[k][2] for k in keys]


def families_of(geom: BaseGeometry | None) -> list[str]:
    """The families (in :data:`FAMILIES` order) for which ``as_multi(geom, family)`` is not
    empty: a GIS layer gets one feature of ``geom`` per family listed."""
    if geom is None or geom.is_empty:
        return []
    fam = _TYPE_FAMILY.get(shapely.get_type_id(geom))
    if fam is not None:
        return [fam]
    return [f for f in FAMILIES if not as_multi(geom, f).is_empty]


#: shapely type id of a non-collection geometry -> its family.
_TYPE_FAMILY = {0: "points", 1: "lines", 2: "lines", 3: "polygons", 4: "points", 5: "lines", 6: "polygons"}

#: family -> (type id of its Multi type, type id of its single type, creation function)
_MULTI = {
    "polygons": (6, 3, shapely.multipolygons),
    "lines": (5, 1, shapely.multilinestrings),
    "points": (4, 0, shapely.multipoints),
}


_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode

#: Characters gathered before each write of :func:`write_feature_collection`.
_WRITE_CHUNK = 1 << 20


def feature_collection_text(
    features: Iterable[tuple[Any, dict[str, Any], str]], properties: dict[str, Any] | None = None
) -> str:
    """The text :func:`write_geojson` writes for ``feature_collection`` of features
    ``{"type": "Feature", "id": id, "properties": props, "geometry": <geometry text>}``
    (and ``properties`` as the collection's), byte for byte, from (id, props, geometry
    text) triples: geometry texts are joined, never parsed."""
    return "".join(feature_collection_parts(features, properties))


def feature_collection_parts(
    features: Iterable[tuple[Any, dict[str, Any], str]], properties: dict[str, Any] | None = None
) -> Iterator[str]:
    """:func:`feature_collection_text` in pieces (one feature each), for writing a large
    collection without holding its whole text; ``features`` is consumed lazily."""
    yield '{"type": "FeatureCollection", "features": ['
    for n, (fid, props, geom) in enumerate(features):
        yield (", " if n else "") + (
            f'{{"type": "Feature", "id": {_JSON(fid)}, "properties": {_JSON(props)}, "geometry": {geom}}}'
        )
    tail = "" if properties is None else f', "properties": {_JSON(properties)}'
    yield f"]{tail}}}"


def write_feature_collection(
    features: Iterable[tuple[Any, dict[str, Any], str]],
    path: str | Path,
    properties: dict[str, Any] | None = None,
) -> Path:
    """Write :func:`feature_collection_text` atomically (UTF-8), as :func:`write_geojson` does,
    a feature at a time (``features`` may be a generator: texts made as they are written)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            buf: list[str] = []
            size = 0
            for piece in feature_collection_parts(features, properties):
                buf.append(piece)
                size += len(piece)
                if size >= _WRITE_CHUNK:
                    fh.write("".join(buf))
                    buf, size = [], 0
            fh.write("".join(buf))
    except (OSError, ValueError) as exc:
        raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def feature_collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def write_geojson(obj: dict[str, Any], path: str | Path) -> Path:
    """Write a GeoJSON dict atomically (UTF-8, no ``crs`` member)."""
    path = Path(path)
    obj = {k: v for k, v in obj.items() if k != "crs"}
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(obj, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def geometry_family(geom: BaseGeometry | None) -> str | None:
    """``"polygons"``, ``"lines"`` or ``"points"`` for a geometry; ``None`` for none/empty
    or a collection that mixes families.

    Examples
    --------
    >>> geometry_family(shapely.box(0, 0, 1, 1)), geometry_family(shapely.LineString([(0, 0), (1, 1)]))
    ('polygons', 'lines')
    """
    if geom is None or geom.is_empty:
        return None
    t = geom.geom_type
    if t.endswith("Polygon"):
        return "polygons"
    if t.endswith("LineString") or t == "LinearRing":
        return "lines"
    if t.endswith("Point"):
        return "points"
    fams = {geometry_family(g) for g in shapely.get_parts(geom)}
    return fams.pop() if len(fams) == 1 else None


def as_multi(geom: BaseGeometry, family: str) -> BaseGeometry:
    """``geom`` as the Multi type of ``family`` (parts of other families dropped; empty when none).

    Every layer written here holds Multi geometries only: GDAL reports a GeoJSON layer that
    mixes ``Polygon`` and ``MultiPolygon`` as of unknown type. A geometry of that Multi type
    is returned as it is; the others are built with shapely's creation functions.
    """
    multi_id, single_id, make = _MULTI[family]
    tid = shapely.get_type_id(geom)
    if tid == multi_id:
        return geom
    if tid == single_id and not geom.is_empty:
        return make([geom])
    parts = [p for p in shapely.get_parts(geom) if geometry_family(p) == family]
    flat: list[BaseGeometry] = []
    for part in parts:
        flat.extend(shapely.get_parts(part))
    if family == "polygons":
        return shapely.MultiPolygon(flat)
    if family == "lines":
        return shapely.MultiLineString(flat)
    return shapely.MultiPoint(flat)


def split_by_family(
    rows: Sequence[dict[str, Any]], geoms: Sequence[BaseGeometry | None]
) -> dict[str, tuple[list[dict[str, Any]], list[BaseGeometry]]]:
    """Group features by geometry family, each geometry promoted to the family's Multi type.

    A geometry collection that mixes families is split: each family's parts go to that
    family's layer under the same properties. Empty or missing geometries are dropped (see
    :func:`answer_record` for records without geometry).

    Examples
    --------
    >>> out = split_by_family([{"id": "a"}, {"id": "r"}],
    ...                       [shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (1, 1)])])
    >>> sorted(out), out["polygons"][1][0].geom_type
    (['lines', 'polygons'], 'MultiPolygon')
    """
    out: dict[str, tuple[list[dict[str, Any]], list[BaseGeometry]]] = {}
    for row, geom in zip(rows, geoms):
        if geom is None or geom.is_empty:
            continue
        fams = {geometry_family(p) for p in shapely.get_parts(geom)}
        for fam in sorted(f for f in fams if f is not None):
            r, g = out.setdefault(fam, ([], []))
            r.append(row)
            g.append(as_multi(geom, fam))
    return {f: out[f] for f in FAMILIES if f in out}


def _flat(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows]


def _gdf(rows: list[dict[str, Any]], geoms: Sequence[BaseGeometry | None], crs: CRS):
    import geopandas as gpd

    return gpd.GeoDataFrame(_flat(rows), geometry=np.asarray(list(geoms), dtype=object), crs=crs)


#: Features written per call in :func:`write_layers`: each call's data frame and WKB are
#: held at once (the 20000² scene's 12,833 objects, 4.46 M vertices, in one call: +71-99 MB
#: at the peak; 2000 at a time: +27-30 MB, the same CPU time, ~0.8 s more wall in I/O).
GPKG_CHUNK = 2000


def write_layers(
    layers: dict[str, tuple[list[dict[str, Any]], Sequence[BaseGeometry | None]]],
    crs: CRS,
    path: str | Path,
) -> Path:
    """Write several layers into one GeoPackage (version :data:`GPKG_VERSION`), atomically.

    ``layers`` maps a layer name to (properties, geometries). The layer's geometry type is
    the Multi type of its family when all geometries share one (see :func:`split_by_family`);
    a layer whose geometries are all null is written as a record layer with the CRS.
    """
    path = Path(path)
    if FORMATS.get(path.suffix.lower()) != "gpkg":
        raise ExportError(f"cannot write layers to {str(path)!r}: use a .gpkg suffix")
    import geopandas as gpd
    import pandas as pd
    import pyogrio

    try:
        with atomic_path(path) as tmp:
            for n, (name, (rows, geoms)) in enumerate(layers.items()):
                fams = {geometry_family(g) for g in geoms if g is not None and not g.is_empty}
                fam = next(iter(fams)) if len(fams) == 1 else None
                gtype = FAMILIES[fam] if fam is not None else "Unknown"
                # the columns' types from all the rows, the features GPKG_CHUNK at a time
                # (appended in order: the same fids, fields and geometries)
                table = pd.DataFrame(_flat(rows))
                for s in range(0, max(len(rows), 1), GPKG_CHUNK):
                    opts: dict[str, Any] = {"geometry_type": gtype, "layer": name, "driver": "GPKG"}
                    if s > 0:
                        opts["append"] = True
                    elif n == 0:
                        opts["dataset_options"] = {"VERSION": GPKG_VERSION}
                    else:
                        opts["append"] = False
                    part = gpd.GeoDataFrame(
                        table.iloc[s : s + GPKG_CHUNK].reset_index(drop=True),
                        geometry=np.asarray(list(geoms[s : s + GPKG_CHUNK]), dtype=object),
                        crs=crs,
                    )
                    pyogrio.write_dataframe(part, tmp, **opts)
                    del part
    except (OSError, ValueError, RuntimeError, pyogrio.errors.DataSourceError) as exc:
        raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def write_table(
    rows: list[dict[str, Any]], geoms: list[BaseGeometry], crs: CRS, path: str | Path, layer: str = "answer"
) -> Path:
    """Write features to GeoPackage or GeoParquet (by suffix) in ``crs``, atomically.

    A GeoPackage gets one layer per geometry family, named ``{layer}_{family}``
    (``objects_polygons``, ``objects_lines``), or just ``layer`` when there is one family.
    Property values that are lists or dicts are stored as JSON text (neither format has a
    list column that every GIS reads).
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt not in ("gpkg", "parquet"):
        raise ExportError(f"cannot write {str(path)!r}: use a .gpkg or .parquet suffix (or .geojson)")
    if fmt == "gpkg":
        fams = split_by_family(rows, geoms)
        if not fams:
            return write_layers({layer: (list(rows), [None] * len(rows))}, crs, path)
        if len(fams) == 1:
            return write_layers({layer: next(iter(fams.values()))}, crs, path)
        return write_layers({f"{layer}_{fam}": v for fam, v in fams.items()}, crs, path)
    try:
        with atomic_path(path) as tmp:
            _gdf(rows, geoms, crs).to_parquet(tmp)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def _status(answer) -> str:
    return "abstained" if answer.abstained else "answered"


def _value(answer) -> Any:
    v = answer.value
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def answer_rows(answer) -> list[tuple[dict[str, Any], BaseGeometry, CRS]]:
    """One (properties, geometry, crs) row per evidence item of an answer."""
    base = {
        "question": answer.question,
        "answer": answer.value,
        "unit": answer.unit,
        "kind": answer.kind,
        "status": _status(answer),
        "abstained": answer.abstained,
        "reason": answer.reason,
    }
    conf = (answer.details or {}).get("confidence")
    if conf:  # answers from grounded objects: their confidence travels with every row
        base["confidence"] = conf.get("score")
        base["confidence_notes"] = "; ".join(conf.get("notes") or [])
    return [
        ({"id": e.id, "class": e.label, "role": e.role, **base}, e.geometry, e.crs) for e in answer.evidence
    ]


def answer_record(
    question: str | None,
    *,
    status: str,
    answer: Any = None,
    unit: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The properties of an answer's record feature (null geometry): what a GIS user reads
    in the attribute table when there is no geometry to draw.

    ``status`` is ``answered``, ``abstained`` or ``error``.
    """
    return {
        "id": None,
        "class": None,
        "role": "record",
        "question": question,
        "answer": json.dumps(answer) if isinstance(answer, (list, dict)) else answer,
        "unit": unit,
        "kind": kind,
        "status": status,
        "abstained": status != "answered",
        "reason": reason,
    }


def answer_stem(index: int, question: str, max_words: int = 10) -> str:
    """A readable, stable file stem for the ``index``-th question: ``q04-buildings-within-200-m-road-1``.

    Whole words only (never cut mid-word), filler words dropped, and every ``#id`` of the
    question kept even when the words are cut, so ``#road-1`` and ``#road-2`` stay apart.

    Examples
    --------
    >>> answer_stem(9, "What is the topological relation between #road-1 and #road-2?")
    'q09-topological-relation-between-road-1-and-road-2'
    >>> answer_stem(2, "What is the area of the largest water body in km2?")
    'q02-area-largest-water-body-km2'
    """
    import re

    from slugify import slugify

    id_pattern = r"#([\w:.\-]+)"
    ids = [slugify(m) for m in re.findall(id_pattern, question)]
    words = [w for w in slugify(re.sub(id_pattern, " ", question), stopwords=_STOPWORDS).split("-") if w]
    if len(words) <= max_words:
        # nothing to cut: the question's own order with the ids in place
        parts = re.split(id_pattern, question)  # text, id, text, id, ...
        slug = "-".join(
            s
            for k, part in enumerate(parts)
            if (s := slugify(part) if k % 2 else slugify(part, stopwords=_STOPWORDS))
        )
    else:
        slug = "-".join(words[:max_words] + ids)
    return f"q{index:02d}-{slug}" if slug else f"q{index:02d}"


def _write_records_geojson(props: dict[str, Any], path: Path, top: dict[str, Any]) -> Path:
    fc = feature_collection([{"type": "Feature", "properties": props, "geometry": None}])
    fc["properties"] = top
    return write_geojson(fc, path)


def write_answer_files(answer, path: str | Path, cache: GeoJSONCache | None = None) -> list[Path]:
    """Write an answer as GIS layers; return the files written (first: the main one).

    ``.geojson``: RFC 7946 (EPSG:4326), Multi geometries, one file per geometry family: ``path`` itself when
    the evidence has one family, else ``stem.polygons.geojson``, ``stem.lines.geojson``,
    ``stem.points.geojson``. ``.gpkg``: the scene's CRS, one layer per family
    (``evidence_polygons``, ...) plus an ``answer`` record layer. ``.parquet``: one file.
    An answer without evidence geometry is written as one record feature with a null
    geometry (question, answer, status, reason) so that the file opens in a GIS and says why.
    ``cache`` keeps the GeoJSON of the evidence geometries for other files of the item.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"unknown output format for {str(path)!r}; use .geojson, .gpkg or .parquet")
    rows = answer_rows(answer)
    record, top = _record_and_top(answer)
    if fmt == "geojson":
        return [w.path for w in _write_answer_geojson(rows, record, top, path, cache)]
    crs0 = rows[0][2] if rows else None
    if fmt == "gpkg":
        if crs0 is None:
            raise ExportError(
                f"the answer has no evidence geometry (nor a CRS) to write to {str(path)!r}; use .geojson"
            )
        fams = split_by_family([r[0] for r in rows], [reproject(g, c, crs0) for _, g, c in rows])
        layers: dict[str, tuple[list[dict[str, Any]], Sequence[BaseGeometry | None]]] = {
            f"evidence_{fam}": v for fam, v in fams.items()
        }
        layers["answer"] = ([record], [None])
        return [write_layers(layers, crs0, path)]
    if crs0 is None:
        raise ExportError(f"the answer has no evidence geometry to write to {str(path)!r}; use .geojson")
    return [write_table([r[0] for r in rows], [reproject(g, c, crs0) for _, g, c in rows], crs0, path)]


class AnswerLayer(NamedTuple):
    """A GeoJSON file written for an answer: its path, geometry family (``None`` for a
    record without geometry) and the evidence roles of its features."""

    path: Path
    family: str | None
    roles: frozenset[str]


def _record_and_top(answer) -> tuple[dict[str, Any], dict[str, Any]]:
    """An answer file's record-only feature properties, and the answer's JSON without its
    evidence (computing the evidence JSON only to drop it costs seconds on large answers)."""
    record = answer_record(
        answer.question,
        status=_status(answer),
        answer=answer.value,
        unit=answer.unit,
        kind=answer.kind,
        reason=answer.reason,
    )
    top = replace(answer, evidence=[]).to_json()
    del top["evidence"]
    return record, top


def write_answer_geojson(answer, path: str | Path, cache: GeoJSONCache | None = None) -> list[AnswerLayer]:
    """:func:`write_answer_files` for a ``.geojson`` path, returning what each file holds
    (so that styles and projects need not read the files back)."""
    path = Path(path)
    if FORMATS.get(path.suffix.lower()) != "geojson":
        raise ExportError(f"cannot write {str(path)!r} as GeoJSON: use a .geojson suffix")
    record, top = _record_and_top(answer)
    return _write_answer_geojson(answer_rows(answer), record, top, path, cache)


def _write_answer_geojson(
    rows: list[tuple[dict[str, Any], BaseGeometry, CRS]],
    record: dict[str, Any],
    top: dict[str, Any],
    path: Path,
    cache: GeoJSONCache | None,
) -> list[AnswerLayer]:
    if cache is None and rows:
        counts = shapely.get_num_coordinates(_object_array([g for _, g, _ in rows]))
        if int(counts.sum()) > TEXT_CHUNK_COORDS:
            return _write_answer_geojson_chunked(rows, record, top, path)
    cache = cache if cache is not None else GeoJSONCache()
    by_fam: dict[str, list[tuple[Any, dict[str, Any], str]]] = {}
    roles: dict[str, set[str]] = {}
    # rows grouped by CRS (in order of first appearance) so that each group is one bulk call
    by_crs: dict[int, list[int]] = {}
    for n, (_, _geom, crs) in enumerate(rows):
        by_crs.setdefault(id(crs), []).append(n)
    texts: dict[tuple[int, str], str] = {}
    for ns in by_crs.values():
        pairs = [(n, fam) for n in ns for fam in families_of(rows[n][1])]
        try:
            got = cache.texts([rows[n][1] for n, _ in pairs], [f for _, f in pairs], rows[ns[0]][2])
        except ValueError as exc:  # a coordinate that is not a finite number
            raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
        texts.update(zip(pairs, got))
    for n, (props, geom, _) in enumerate(rows):
        for fam in families_of(geom):
            by_fam.setdefault(fam, []).append((props["id"], props, texts[n, fam]))
            roles.setdefault(fam, set()).add(str(props.get("role")))
    return _write_family_files(by_fam.__getitem__, roles, record, top, path)


def _write_answer_geojson_chunked(
    rows: list[tuple[dict[str, Any], BaseGeometry, CRS]],
    record: dict[str, Any],
    top: dict[str, Any],
    path: Path,
) -> list[AnswerLayer]:
    """:func:`_write_answer_geojson` without a cache, for an answer of many coordinates (an
    answer over a whole scene's vegetation): each family's texts made about
    :data:`TEXT_CHUNK_COORDS` coordinates at a time (:func:`iter_rfc7946_texts` over each run
    of rows in one CRS) as the file is written, none kept. The same bytes."""
    fams_of = [families_of(g) for _, g, _ in rows]
    roles: dict[str, set[str]] = {}
    for (props, _, _), fams in zip(rows, fams_of):
        for fam in fams:
            roles.setdefault(fam, set()).add(str(props.get("role")))

    def features(fam: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
        members = [n for n, fams in enumerate(fams_of) if fam in fams]
        # a coordinate that is not a finite number: ValueError, an ExportError naming the file
        # from write_feature_collection (the temporary file removed)
        for _, run in itertools.groupby(members, key=lambda n: id(rows[n][2])):
            ns = list(run)
            texts = iter_rfc7946_texts([rows[n][1] for n in ns], rows[ns[0]][2], family=fam)
            for n, text in zip(ns, texts):
                yield rows[n][0]["id"], rows[n][0], text

    return _write_family_files(features, roles, record, top, path)


def _write_family_files(
    features: Callable[[str], Iterable[tuple[Any, dict[str, Any], str]]],
    roles: dict[str, set[str]],
    record: dict[str, Any],
    top: dict[str, Any],
    path: Path,
) -> list[AnswerLayer]:
    """An answer's GeoJSON files: one per geometry family in ``roles`` (``path`` itself when
    there is one, else ``<stem>.<family>.geojson``) with ``features(family)``, or the
    answer's record alone when it has no geometry."""
    if not roles:
        return [AnswerLayer(_write_records_geojson(record, path, top), None, frozenset(["record"]))]
    fams = [fam for fam in FAMILIES if fam in roles]
    return [
        AnswerLayer(
            write_feature_collection(
                features(fam),
                path if len(fams) == 1 else path.with_name(f"{path.stem}.{fam}{path.suffix}"),
                top,
            ),
            fam,
            frozenset(roles[fam]),
        )
        for fam in fams
    ]


def write_answer(answer, path: str | Path) -> Path:
    """Write an answer (see :func:`write_answer_files`); return the main file written."""
    return write_answer_files(answer, path)[0]


def write_error_record(question: str, error: str, path: str | Path) -> Path:
    """A GeoJSON with one null-geometry feature saying that ``question`` failed and why."""
    path = Path(path)
    props = answer_record(question, status="error", reason=error)
    return _write_records_geojson(props, path, {"question": question, "error": error})


#: Class names that are generic for the more specific names after them: a geometry found
#: under both keeps the specific one (a lake is written once, as ``lake``, not also as water).
_GENERIC = {"water": 0, "water body": 1, "waterbody": 1, "water bodies": 1}


#: Vertices normalized and written as WKB per step of :func:`dedupe_classes`.
DEDUPE_CHUNK_COORDS = 50_000


def _normal_wkb(geoms: np.ndarray) -> list[bytes]:
    return shapely.to_wkb(shapely.normalize(geoms)).tolist() if len(geoms) else []


def dedupe_classes(
    ids: Sequence[str], labels: Sequence[str], geoms: Sequence[BaseGeometry]
) -> tuple[list[int], list[list[str]]]:
    """Indexes of the objects to write so that each geometry appears once, and for each the
    other class names it was also found under.

    A grounder asked for ``water``, ``water body`` and ``lake`` emits the same polygon under
    each name; a layer holding all copies double-counts area by class. Identical geometries
    (same WKB) are written once, under the most specific name (``lake`` or ``river`` before
    ``water body`` before ``water``); the other names go to an ``also`` field.

    Examples
    --------
    >>> box = shapely.box(0, 0, 1, 1)
    >>> dedupe_classes(["water-1", "lake-1", "b1"], ["water", "lake", "building"], [box, box, box.buffer(1)])
    ([1, 2], [['water'], []])
    """
    arr = _object_array(geoms)
    # each geometry's normalized WKB, a chunk at a time, kept as a 16-byte digest: a scene's
    # WKB and normalized copy held at once were ~150 MB on the 20000² scene; a group of
    # equal digests is split by the WKB itself below, so only equal WKB are ever merged
    digests: list[bytes] = []
    for part in coordinate_chunks(arr, DEDUPE_CHUNK_COORDS):
        digests.extend(
            b"" if w is None else hashlib.blake2b(w, digest_size=16).digest() for w in _normal_wkb(part)
        )
    groups: dict[bytes, list[int]] = {}
    for i, (g, key) in enumerate(zip(arr, digests)):
        groups.setdefault(key if g is not None else f"none-{i}".encode(), []).append(i)
    exact: list[list[int]] = []
    for members in groups.values():
        if len(members) == 1:
            exact.append(members)
            continue
        same: dict[bytes, list[int]] = {}
        for i, w in zip(members, _normal_wkb(arr[members])):
            same.setdefault(w, []).append(i)
        exact.extend(same.values())
    keep: list[tuple[int, list[str]]] = []
    for members in exact:
        best = min(members, key=lambda i: (_GENERIC.get(str(labels[i]).lower(), -1), i))
        also = sorted({str(labels[i]) for i in members if i != best} - {str(labels[best])})
        keep.append((best, also))
    keep.sort()
    return [k for k, _ in keep], [a for _, a in keep]


def relative_outputs(outputs: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """``outputs`` with every path made relative to the folder ``base`` (POSIX separators),
    so that ``answers.jsonl`` and its files can be moved together. Lists are mapped item by
    item; values that are not paths under ``base`` are kept.

    Examples
    --------
    >>> relative_outputs({"geojson": "/o/sample/q01.geojson", "n": 3}, "/o")
    {'geojson': 'sample/q01.geojson', 'n': 3}
    """
    import os

    base = Path(base).resolve()

    def rel(v: Any) -> Any:
        if isinstance(v, list):
            return [rel(x) for x in v]
        if isinstance(v, (str, Path)):
            p = Path(v)
            if p.is_absolute() or os.sep in str(v):
                try:
                    return p.resolve().relative_to(base).as_posix()
                except ValueError:
                    return str(v)
        return v

    return {k: rel(v) for k, v in outputs.items()}
