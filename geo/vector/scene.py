"""A scene: the set of objects a question is asked about.

Each object has an id, a class label, a geometry in the scene's CRS, an optional score and
free attributes. The CRS is always explicit: a file without one is refused unless the
caller names it. Geometries are kept in the source CRS (exports keep it too) and a lon/lat
copy is derived once for metric work on the ellipsoid.
"""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.errors import (
    GeometryRepairedWarning,
    InputError,
    InvalidGeometryError,
    MissingCRSError,
    VectorReadError,
)
from georeason.geo.vector.classnames import class_forms
from georeason.geo.vector.crs import LONLAT, parse_crs, reproject

__all__ = ["GeoObject", "Scene", "read_scene", "normalise_class", "ID_FIELDS", "CLASS_FIELDS", "gc_paused"]

#: Fields tried, in order, for an object's id (else the first field with unique values).
ID_FIELDS = ("id", "ID", "fid", "object_id", "uid")
#: Fields tried, in order, for an object's class label.
CLASS_FIELDS = ("class", "label", "category", "type", "kind", "class_name")

OnInvalid = Literal["repair", "error"]


@dataclass(frozen=True)
class GeoObject:
    """One object of a scene (geometry in the scene's CRS)."""

    id: str
    label: str
    geometry: BaseGeometry
    score: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def normalise_class(name: str) -> str:
    """Lower-case, single-spaced, underscores as spaces: the form class labels are compared in.

    Examples
    --------
    >>> normalise_class("  Oil_Tank ")
    'oil tank'
    """
    return " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())


class Scene:
    """Objects with ids, class labels and geometries in one explicit CRS.

    Parameters
    ----------
    ids, labels : sequences of str
        Unique object ids and class labels (labels are normalised, see :func:`normalise_class`).
    geometries : sequence of shapely geometries
        In ``crs``. Invalid ones are repaired with ``make_valid`` (a
        :class:`GeometryRepairedWarning` names each) or, with ``on_invalid="error"``, refused.
    crs : anything :func:`pyproj.CRS.from_user_input` takes
    scores : optional sequence of float
    attrs : optional sequence of dicts
    source : str
        Where the objects came from, used in messages.
    """

    def __init__(
        self,
        ids: Iterable[Any],
        labels: Iterable[Any],
        geometries: Iterable[BaseGeometry],
        crs: Any,
        scores: Iterable[float | None] | None = None,
        attrs: Iterable[dict[str, Any]] | None = None,
        source: str = "<objects>",
        on_invalid: OnInvalid = "repair",
    ) -> None:
        if crs is None:
            raise MissingCRSError(
                f"{source} has no CRS; pass one explicitly (e.g. --crs EPSG:4326) or fix the file"
            )
        self.source = source
        self.crs: CRS = parse_crs(crs, what=f"CRS of {source}")
        self.ids = np.array([str(i) for i in ids], dtype=object)
        names: dict[Any, str] = {}  # each distinct label normalised once
        self.labels = np.array(
            [names[c] if c in names else names.setdefault(c, normalise_class(c)) for c in labels],
            dtype=object,
        )
        geoms = np.array(list(geometries), dtype=object)
        n = len(self.ids)
        if len(self.labels) != n or len(geoms) != n:
            raise InputError(f"{source}: ids, labels and geometries differ in length")
        self.scores = np.array(list(scores) if scores is not None else [None] * n, dtype=object)
        self.attrs = list(attrs) if attrs is not None else [{} for _ in range(n)]
        seen: dict[str, int] = {}
        for i, oid in enumerate(self.ids):
            if oid in seen:
                raise InputError(
                    f"{source}: object id {oid!r} appears twice (features {seen[oid]} and {i}); "
                    "ids must be unique: pass --id-field to choose another field"
                )
            seen[oid] = i
        self._index = seen
        self.geoms = self._validate(geoms, on_invalid)

    # -- construction -----------------------------------------------------------------
    def _validate(self, geoms: np.ndarray, on_invalid: OnInvalid) -> np.ndarray:
        missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        if len(missing):
            i = int(missing[0])
            raise InvalidGeometryError(
                f"{self.source}: object {self.ids[i]!r} has no geometry (empty or null); "
                "remove it or give it a geometry"
            )
        valid = shapely.is_valid(geoms)
        if valid.all():
            return geoms
        out = geoms.copy()
        for i in np.flatnonzero(~valid).tolist():
            why = shapely.is_valid_reason(geoms[i])
            if on_invalid == "error":
                raise InvalidGeometryError(
                    f"{self.source}: object {self.ids[i]!r} has an invalid geometry ({why}); "
                    "fix it, or allow repair (on_invalid='repair', the default)"
                )
            repaired = shapely.make_valid(geoms[i])
            if repaired.geom_type == "GeometryCollection":
                # keep the highest-dimension parts, so a polygon stays areal
                parts = list(repaired.geoms)
                top = max(shapely.get_dimensions(parts))
                repaired = shapely.union_all([p for p in parts if shapely.get_dimensions(p) == top])
            warnings.warn(
                f"{self.source}: object {self.ids[i]!r} had an invalid geometry ({why}); "
                f"repaired with make_valid into a {repaired.geom_type}",
                GeometryRepairedWarning,
                stacklevel=3,
            )
            out[i] = repaired
        return out

    @classmethod
    def from_objects(cls, objects: Iterable[GeoObject], crs: Any, source: str = "<objects>") -> Scene:
        objs = list(objects)
        return cls(
            [o.id for o in objs],
            [o.label for o in objs],
            [o.geometry for o in objs],
            crs,
            scores=[o.score for o in objs],
            attrs=[dict(o.attrs) for o in objs],
            source=source,
        )

    # -- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Scene({len(self)} objects, {len(self.classes)} classes, crs={self.crs.to_string()!r})"

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    @cached_property
    def lonlat(self) -> np.ndarray:
        """Geometries in EPSG:4326 lon/lat (computed once)."""
        return reproject(self.geoms, self.crs, LONLAT)

    @cached_property
    def lonlat_tree(self):
        """:class:`shapely.STRtree` over :attr:`lonlat` (built once), for candidate search."""
        return shapely.STRtree(self.lonlat)

    @cached_property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    @cached_property
    def label_codes(self) -> np.ndarray:
        """Each object's position in :attr:`classes` (int array, computed once)."""
        codes = {c: k for k, c in enumerate(self.classes)}
        return np.fromiter((codes[c] for c in self.labels), dtype=np.intp, count=len(self.labels))

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """Work derived from this scene, computed once per ``key`` and kept on the scene.

        Questions asked of the same scene (a ``--questions`` batch, a flow's questions on
        one item) share it: per-class selections, planar projections and spatial indexes
        (see :mod:`georeason.geo.vector.group`). A scene is never mutated after
        construction, so entries stay valid; :meth:`subset` and :meth:`extend` start empty.
        """
        store = self.__dict__.setdefault("_derived", {})
        if key not in store:
            store[key] = build()
        return store[key]

    def __getstate__(self) -> dict[str, Any]:
        # derived work (indexes, projections) is rebuilt on demand, not shipped to workers
        return {k: v for k, v in self.__dict__.items() if k not in ("_derived", "lonlat_tree")}

    def lonlat_of(self, idx: np.ndarray) -> np.ndarray:
        """Lon/lat geometries of the objects ``idx``: from :attr:`lonlat` when it has been
        computed, else reprojecting only those objects (a few border cases of a query need
        no lon/lat copy of the whole scene)."""
        idx = np.asarray(idx, dtype=np.intp)
        if "lonlat" in self.__dict__:
            return self.lonlat[idx]
        return np.asarray(reproject(self.geoms[idx], self.crs, LONLAT), dtype=object)

    def index(self, oid: str) -> int | None:
        """Position of object ``oid`` or ``None``."""
        return self._index.get(str(oid))

    def of_class(self, label: str) -> np.ndarray:
        """Indices of the objects of a class (label normalised; plural forms tried)."""
        resolved = self.resolve_class(label)
        if resolved is None:
            return np.array([], dtype=np.intp)
        # computed once per class and shared (read-only: copy it to modify), so that group
        # queries recognise the class selection by identity
        return self.cached(("of_class", resolved), lambda: _frozen(np.flatnonzero(self.labels == resolved)))

    def resolve_class(self, label: str) -> str | None:
        """The scene class a free-text class name refers to, or ``None``.

        Tries the name as given, then singular forms (``buildings`` -> ``building``,
        ``bodies`` -> ``body``, ``churches`` -> ``church``).

        Examples
        --------
        >>> s = Scene(["a"], ["Lake"], [shapely.Point(0, 0)], "EPSG:4326")
        >>> s.resolve_class("lakes"), s.resolve_class("river")
        ('lake', None)
        """
        memo = self.__dict__.setdefault("_resolved", {})  # the classes never change
        if label in memo:
            return memo[label]
        name = normalise_class(label)
        known = set(self.classes)
        found = next((cand for cand in class_forms(name) if cand in known), None)
        memo[label] = found
        return found

    def get(self, i: int) -> GeoObject:
        return GeoObject(self.ids[i], self.labels[i], self.geoms[i], self.scores[i], self.attrs[i])

    def subset(self, idx: np.ndarray) -> Scene:
        idx = np.asarray(idx, dtype=np.intp)
        s = Scene.__new__(Scene)
        s.source, s.crs = self.source, self.crs
        s.ids, s.labels, s.geoms = self.ids[idx], self.labels[idx], self.geoms[idx]
        s.scores, s.attrs = self.scores[idx], [self.attrs[i] for i in idx]
        s._index = {oid: k for k, oid in enumerate(s.ids)}
        if "lonlat" in self.__dict__:
            s.__dict__["lonlat"] = self.lonlat[idx]
        return s

    def extend(self, other: Scene) -> Scene:
        """A new scene with ``other``'s objects added (reprojected into this scene's CRS)."""
        geoms = reproject(other.geoms, other.crs, self.crs)
        return Scene(
            list(self.ids) + list(other.ids),
            list(self.labels) + list(other.labels),
            list(self.geoms) + list(geoms),
            self.crs,
            scores=list(self.scores) + list(other.scores),
            attrs=self.attrs + other.attrs,
            source=f"{self.source} + {other.source}",
        )


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _pick_field(columns: list[str], wanted: tuple[str, ...], explicit: str | None, what: str, path: str):
    if explicit is not None:
        if explicit not in columns:
            raise InputError(
                f"{path}: no field {explicit!r} for the {what}; fields are: {', '.join(columns) or '(none)'}"
            )
        return explicit
    lower = {c.lower(): c for c in columns}
    for w in wanted:
        if w.lower() in lower:
            return lower[w.lower()]
    return None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a scene's objects are made (and, in
    :mod:`georeason.geo.export.layers`, while millions of coordinate lists are), restored as it was.

    Reading 100k objects allocates 100k attribute dicts, which triggers a full collection
    every few thousand, each walking every object made so far (0.4 s of 0.8 s for 101k
    objects); these objects hold no cycles, so nothing is left for the collector to find.
    ``georeason run`` also imports Prefect and its flow under it (~1.8 CPU-s of allocations
    that are almost all kept: the collector's passes over them cost ~0.25 CPU-s).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_scene(
    path: str | Path,
    crs: Any = None,
    id_field: str | None = None,
    class_field: str | None = None,
    layer: str | int | None = None,
    on_invalid: OnInvalid = "repair",
) -> Scene:
    """Read objects from GeoJSON, GeoPackage, GeoParquet, Shapefile or anything GDAL reads.

    The id comes from ``id_field``, else the first of :data:`ID_FIELDS` present, else the
    first field whose values are unique, else the feature's position. The class label comes
    from ``class_field`` or the first of :data:`CLASS_FIELDS` (else ``"object"``).
    ``crs`` is used only when the file has none; a file with a CRS that differs from
    ``crs`` is an error (say which you mean by fixing the file).
    """
    with gc_paused():
        return _read_scene(path, crs, id_field, class_field, layer, on_invalid)


def _read_scene(
    path: str | Path,
    crs: Any = None,
    id_field: str | None = None,
    class_field: str | None = None,
    layer: str | int | None = None,
    on_invalid: OnInvalid = "repair",
) -> Scene:
    path = Path(path)
    if not path.exists():
        raise VectorReadError(f"objects file {str(path)!r} does not exist; check the path")
    try:
        fast = _read_fast(path, layer)
        if fast is not None:
            return _scene_from_columns(
                *fast,
                path=str(path),
                crs=crs,
                id_field=id_field,
                class_field=class_field,
                on_invalid=on_invalid,
            )
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            import geopandas as gpd

            gdf = gpd.read_parquet(path)
        else:
            import pyogrio

            gdf = pyogrio.read_dataframe(path, layer=layer)
    except (InputError, MissingCRSError):
        raise
    except Exception as exc:  # pyogrio/arrow raise many types; name the file
        raise VectorReadError(
            f"could not read objects file {str(path)!r} ({type(exc).__name__}: {exc}); "
            "give a GeoJSON, GeoPackage, GeoParquet or Shapefile"
        ) from exc
    src = str(path)
    file_crs = gdf.crs
    if file_crs is None:
        if crs is None:
            raise MissingCRSError(
                f"objects file {src!r} has no CRS; pass --crs (e.g. --crs EPSG:4326) or set one in the file"
            )
        file_crs = parse_crs(crs, what="--crs")
    elif crs is not None and parse_crs(crs, what="--crs") != CRS.from_user_input(file_crs):
        raise InputError(
            f"objects file {src!r} is in {CRS.from_user_input(file_crs).to_string()} but --crs says "
            f"{parse_crs(crs).to_string()}; drop --crs or reproject the file"
        )
    if len(gdf):
        from georeason.geo.vector.crs import check_coordinates

        check_coordinates(tuple(gdf.total_bounds), CRS.from_user_input(file_crs), f"objects file {src!r}")
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    idf = _pick_field(columns, ID_FIELDS, id_field, "object id", src)
    if idf is None:
        idf = next((c for c in columns if gdf[c].notna().all() and gdf[c].is_unique), None)
    ids = [str(v) for v in gdf[idf]] if idf is not None else [str(i) for i in range(len(gdf))]
    clf = _pick_field(columns, CLASS_FIELDS, class_field, "class label", src)
    labels = [str(v) for v in gdf[clf]] if clf is not None else ["object"] * len(gdf)
    scores = None
    if "score" in columns:
        scores = [
            None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in gdf["score"]
        ]
    extra = [c for c in columns if c not in (idf, clf, "score")]
    attrs = gdf[extra].to_dict("records") if extra else None
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    return Scene(ids, labels, geoms, file_crs, scores=scores, attrs=attrs, source=src, on_invalid=on_invalid)


# -- fast readers: no pandas/geopandas import ---------------------------------------------
#: GeoJSON files up to this size (bytes) are read with json + shapely, not GDAL.
FAST_GEOJSON_MAX_BYTES = 32 * 1024 * 1024
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _read_fast(path: Path, layer: Any) -> tuple[dict[str, list[Any]], np.ndarray, Any] | None:
    """``(columns, geometries, crs)`` read without pandas, or ``None`` to use GDAL/geopandas.

    GeoJSON (small, plain properties: str/int/float/bool, no nulls, no date-like strings
    that GDAL would turn into dates, no feature-level ``id`` member that GDAL would make the
    FID unless the properties repeat it) is parsed with :mod:`json` and shapely; GeoParquet with WKB geometry with pyarrow
    and ``shapely.from_wkb``. Anything else returns ``None`` and takes the GDAL path, so
    the result is the same table either way.
    """
    suffix = path.suffix.lower()
    if layer is None and suffix in (".geojson", ".json") and path.stat().st_size <= FAST_GEOJSON_MAX_BYTES:
        return _read_geojson(path)
    if layer is None and suffix in (".parquet", ".geoparquet"):
        return _read_geoparquet(path)
    return None


def _read_geojson(path: Path):
    import json

    doc = json.loads(path.read_bytes())
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return None
    feats = doc.get("features")
    if not isinstance(feats, list) or not feats:
        return None
    keys: list[str] | None = None
    cols: dict[str, list[Any]] = {}
    geoms = []
    for f in feats:
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            return None
        props = f.get("properties") or {}
        if "id" in f and props.get("id") != f["id"]:  # GDAL would make it the FID or a field
            return None
        if keys is None:
            keys = list(props)
            cols = {k: [] for k in keys}
        if list(props) != keys:
            return None
        for k, v in props.items():
            if v is None or isinstance(v, (dict, list)) or (isinstance(v, str) and _DATE_LIKE.match(v)):
                return None
            cols[k].append(v)
        geoms.append(f["geometry"])
    for k, vals in cols.items():  # one type per column (GDAL would widen or stringify)
        kinds = {
            bool if isinstance(v, bool) else (float if isinstance(v, (int, float)) else type(v)) for v in vals
        }
        if len(kinds) != 1:
            return None
        if float in kinds and any(isinstance(v, float) for v in vals):
            cols[k] = [float(v) for v in vals]
    try:
        arr = np.array([shapely.geometry.shape(g) for g in geoms], dtype=object)
    except Exception:
        return None
    crs_member = doc.get("crs")
    if crs_member is None:
        crs: Any = "EPSG:4326"
    else:
        try:
            crs = crs_member["properties"]["name"]
        except (KeyError, TypeError):
            return None
    return cols, arr, crs


def _read_geoparquet(path: Path):
    import json

    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata or {}
    if b"geo" not in meta:
        return None
    geo = json.loads(meta[b"geo"])
    col = geo.get("primary_column")
    info = geo.get("columns", {}).get(col, {})
    if info.get("encoding", "WKB").upper() != "WKB":
        return None
    table = pf.read()
    geoms = shapely.from_wkb(table.column(col).to_numpy(zero_copy_only=False))
    # the spec: no "crs" key means OGC:CRS84 (lon/lat); an explicit null means unknown
    crs: Any = info["crs"] if "crs" in info else "OGC:CRS84"
    if isinstance(crs, dict):
        crs = json.dumps(crs)
    cols = {name: table.column(name).to_pylist() for name in table.column_names if name != col}
    return cols, np.asarray(geoms, dtype=object), crs


def _scene_from_columns(
    cols: dict[str, list[Any]],
    geoms: np.ndarray,
    file_crs: Any,
    path: str,
    crs: Any,
    id_field: str | None,
    class_field: str | None,
    on_invalid: OnInvalid,
) -> Scene:
    """The :func:`read_scene` rules (CRS, id, class, score, attributes) on plain columns."""
    src = path
    if file_crs is None:
        if crs is None:
            raise MissingCRSError(
                f"objects file {src!r} has no CRS; pass --crs (e.g. --crs EPSG:4326) or set one in the file"
            )
        file_crs = parse_crs(crs, what="--crs")
    else:
        file_crs = parse_crs(file_crs, what=f"CRS of {src}")
        if crs is not None and parse_crs(crs, what="--crs") != file_crs:
            raise InputError(
                f"objects file {src!r} is in {file_crs.to_string()} but --crs says "
                f"{parse_crs(crs).to_string()}; drop --crs or reproject the file"
            )
    if len(geoms):
        import shapely

        from georeason.geo.vector.crs import check_coordinates

        valid = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if len(valid):
            b = shapely.total_bounds(valid)
            check_coordinates(tuple(float(v) for v in b), file_crs, f"objects file {src!r}")
    columns = list(cols)
    n = len(geoms)
    idf = _pick_field(columns, ID_FIELDS, id_field, "object id", src)
    if idf is None:
        idf = next(
            (c for c in columns if all(v is not None for v in cols[c]) and len(set(cols[c])) == n),
            None,
        )
    ids = [str(v) for v in cols[idf]] if idf is not None else [str(i) for i in range(n)]
    clf = _pick_field(columns, CLASS_FIELDS, class_field, "class label", src)
    labels = [str(v) for v in cols[clf]] if clf is not None else ["object"] * n
    scores = None
    if "score" in columns:
        scores = [
            None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in cols["score"]
        ]
    extra = [c for c in columns if c not in (idf, clf, "score")]
    attrs = [dict(zip(extra, vals)) for vals in zip(*(cols[c] for c in extra))] if extra else None
    return Scene(ids, labels, geoms, file_crs, scores=scores, attrs=attrs, source=src, on_invalid=on_invalid)
