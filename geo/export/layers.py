"""Exports: RFC 7946 GeoJSON, GeoPackage and GeoParquet, written atomically.

GeoJSON is written by hand (not through GDAL) so that it is exactly RFC 7946: EPSG:4326
longitude/latitude, polygon exterior rings counter-clockwise and holes clockwise, no
``crs`` member, coordinates rounded to 1e-7 degrees (about 1 cm). GeoPackage and
GeoParquet keep the source CRS. Every write goes to a temporary file in the target folder
and is renamed into place, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.errors import ExportError
from georeason.geo.vector.crs import LONLAT, reproject

__all__ = [
    "atomic_path",
    "rfc7946_geometry",
    "feature_collection",
    "write_geojson",
    "write_table",
    "answer_rows",
    "write_answer",
    "FORMATS",
]

#: File suffix -> format name understood by :func:`write_answer`.
FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}


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
    if crs is not None:
        geom = reproject(geom, crs, LONLAT)
    geom = shapely.orient_polygons(geom, exterior_cw=False)
    geom = shapely.set_precision(geom, 10.0**-precision, mode="pointwise")
    return json.loads(shapely.to_geojson(geom))


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


def write_table(
    rows: list[dict[str, Any]], geoms: list[BaseGeometry], crs: CRS, path: str | Path, layer: str = "answer"
) -> Path:
    """Write features to GeoPackage or GeoParquet (by suffix) in ``crs``, atomically.

    Property values that are lists or dicts are stored as JSON text (neither format has a
    list column that every GIS reads).
    """
    import geopandas as gpd

    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt not in ("gpkg", "parquet"):
        raise ExportError(f"cannot write {str(path)!r}: use a .gpkg or .parquet suffix (or .geojson)")
    flat = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows]
    gdf = gpd.GeoDataFrame(flat, geometry=np.asarray(geoms, dtype=object), crs=crs)
    try:
        with atomic_path(path) as tmp:
            if fmt == "gpkg":
                gdf.to_file(tmp, driver="GPKG", layer=layer, engine="pyogrio")
            else:
                gdf.to_parquet(tmp)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"could not write {str(path)!r}: {exc}") from exc
    return path


def answer_rows(answer) -> list[tuple[dict[str, Any], BaseGeometry, CRS]]:
    """One (properties, geometry, crs) row per evidence item of an answer."""
    base = {
        "question": answer.question,
        "answer": answer.value,
        "unit": answer.unit,
        "kind": answer.kind,
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


def write_answer(answer, path: str | Path) -> Path:
    """Write an answer's evidence as features with the answer fields as properties.

    ``.geojson``: RFC 7946 (EPSG:4326). ``.gpkg`` / ``.parquet``: the scene's CRS. An
    abstention with no evidence writes an empty collection (GeoJSON) so that downstream
    jobs always find the file.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(f"unknown output format for {str(path)!r}; use .geojson, .gpkg or .parquet")
    rows = answer_rows(answer)
    if fmt == "geojson":
        feats = [
            {"type": "Feature", "id": props["id"], "properties": props, "geometry": rfc7946_geometry(g, crs)}
            for props, g, crs in rows
        ]
        fc = feature_collection(feats)
        fc["properties"] = {k: v for k, v in answer.to_json().items() if k != "evidence"}
        return write_geojson(fc, path)
    if not rows:
        raise ExportError(f"the answer has no evidence geometry to write to {str(path)!r}; use .geojson")
    crs = rows[0][2]
    return write_table([r[0] for r in rows], [reproject(g, c, crs) for _, g, c in rows], crs, path)
