"""CRS handling: parsing, cached transformers, and local metric projections.

Every transformer here is built with ``always_xy=True``: x is easting or longitude, y is
northing or latitude, whatever the CRS's own axis order says.

Metric work never happens in degrees. Where a computation needs a plane (nearest points,
buffers, spatial indexing), geometries are projected to an azimuthal equidistant (AEQD)
projection centred on the objects involved. AEQD is defined everywhere on Earth, so the
same code serves UTM zone edges, the poles and the antimeridian; exact values are then
measured on the WGS84 ellipsoid with :class:`pyproj.Geod`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from georeason.errors import InputError

__all__ = [
    "check_coordinates",
    "LONLAT",
    "parse_crs",
    "transformer",
    "reproject",
    "coordinate_chunks",
    "to_lonlat",
    "aeqd_crs",
    "spherical_mean_lonlat",
    "unwrap_antimeridian",
]

LONLAT = CRS.from_epsg(4326)


def parse_crs(value: object, what: str = "CRS") -> CRS:
    """Return a :class:`pyproj.CRS` for ``value`` or raise :class:`InputError` naming it.

    Examples
    --------
    >>> parse_crs("EPSG:32633").to_epsg()
    32633
    """
    if isinstance(value, CRS):
        return value
    try:
        return CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError) as exc:
        raise InputError(
            f"{what} {value!r} is not a coordinate reference system pyproj understands; "
            "pass an EPSG code such as EPSG:4326 or EPSG:32633"
        ) from exc


@lru_cache(maxsize=256)
def _transformer_cached(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


#: Transformers by the identity of their CRS objects; each entry holds the two objects, so
#: their ids cannot be reused while it lives. Spares the WKT export (~0.1 ms) per call.
_BY_OBJECT: dict[tuple[int, int], tuple[CRS, CRS, Transformer]] = {}


def transformer(src: CRS, dst: CRS) -> Transformer:
    """Return a cached ``always_xy`` transformer from ``src`` to ``dst``."""
    hit = _BY_OBJECT.get((id(src), id(dst)))
    if hit is not None:
        return hit[2]
    tr = _transformer_cached(src.to_wkt(), dst.to_wkt())
    if len(_BY_OBJECT) >= 256:
        _BY_OBJECT.clear()
    _BY_OBJECT[(id(src), id(dst))] = (src, dst, tr)
    return tr


def reproject(geoms, src: CRS, dst: CRS):
    """Reproject a geometry or an array of geometries vertex by vertex (vectorised).

    Returns the same shape as given. Empty geometries and ``None`` pass through.
    """
    if src == dst:
        return geoms
    tr = transformer(src, dst)

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    if isinstance(geoms, np.ndarray) and geoms.size > 1:
        flat = geoms.ravel()
        chunks = list(coordinate_chunks(flat, REPROJECT_CHUNK_COORDS))  # slices: views, no copies
        if len(chunks) > 1:
            # vertex by vertex either way (the same coordinates); a chunk of geometries at a
            # time, so the coordinate arrays of a whole scene are never all held at once
            out = np.empty(len(flat), dtype=object)
            start = 0
            for part in chunks:
                out[start : start + len(part)] = shapely.transform(part, _xy)
                start += len(part)
            return out.reshape(geoms.shape)
    return shapely.transform(geoms, _xy)


def coordinate_chunks(geoms: Sequence[BaseGeometry | None] | np.ndarray, coords: int) -> Iterator[np.ndarray]:
    """``geoms`` (a sequence, or an object array taken as it is) in consecutive object-array
    slices of about ``coords`` vertices, at least one geometry each: the one way
    reprojection and the export bound what they convert, write or draw at once."""
    if isinstance(geoms, np.ndarray):
        arr = geoms
    else:
        arr = np.empty(len(geoms), dtype=object)
        arr[:] = list(geoms)
    if len(arr) == 0:
        return
    ends = np.cumsum(shapely.get_num_coordinates(arr))
    start = 0
    while start < len(arr):
        base = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + coords, side="right")))
        yield arr[start:stop]
        start = stop


#: Vertices reprojected per call of :func:`reproject` on an array of geometries: the
#: 20000² scene (4.46 M vertices) taken to lon/lat at once held +240 MB of coordinate arrays
#: at the peak.
REPROJECT_CHUNK_COORDS = 200_000


def to_lonlat(geoms, crs: CRS):
    """Reproject to EPSG:4326 longitude/latitude (x = lon, y = lat)."""
    return reproject(geoms, crs, LONLAT)


@lru_cache(maxsize=1024)
def _aeqd(lon0: float, lat0: float) -> CRS:
    return CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat0:.9f} +lon_0={lon0:.9f} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    )


def aeqd_crs(lon0: float, lat0: float) -> CRS:
    """Azimuthal equidistant CRS (metres, WGS84) centred on ``(lon0, lat0)``.

    Distances and azimuths from the centre are exact; elsewhere the scale error grows as
    about ``(r / R)**2 / 6`` with ``r`` the distance from the centre (4e-5 at 100 km).
    The centre is rounded to 1e-6 degrees so that nearby requests share a cached CRS.
    """
    return _aeqd(round(float(lon0), 6), round(float(lat0), 6))


#: Vertices :func:`spherical_mean_lonlat` turns into unit vectors at a time
#: (:func:`coordinate_chunks`: whole geometries, one with more taken alone): ~10 MB of
#: temporary arrays. 2048 *geometries* at a time, as before, were ~90 MB with large polygons
#: (the 20000^2 scene's vegetation, ~730 vertices each), the flow process's largest traced
#: allocation at that run's peak.
_MEAN_COORDS = 1 << 18


def spherical_mean_lonlat(lonlat_geoms) -> tuple[float, float]:
    """Mean position of the vertices of lon/lat geometries, averaged as 3-D unit vectors.

    Unlike an average of longitudes, this is right across the antimeridian (179.9 and
    -179.9 average to 180, not 0) and near the poles. The vertices are taken about
    :data:`_MEAN_COORDS` at a time (whole geometries) and added row after row into one running sum,
    the order in which ``numpy`` sums the rows of one ``(n, 3)`` array along axis 0: the
    same mean, bit for bit, as from all vertices at once (a 3949-polygon, 2.9 M-vertex
    vegetation class needed ~220 MB of temporary arrays that way).

    Examples
    --------
    >>> from shapely import Point
    >>> lon, lat = spherical_mean_lonlat([Point(179.9, 0), Point(-179.9, 0)])
    >>> round(abs(lon), 6), round(lat, 6)
    (180.0, 0.0)
    """
    geoms = np.asarray(lonlat_geoms, dtype=object).ravel()
    total = np.zeros((1, 3))
    n = 0
    first: np.ndarray | None = None
    for chunk in coordinate_chunks(geoms, _MEAN_COORDS):
        coords = shapely.get_coordinates(chunk)
        if len(coords) == 0:
            continue
        if first is None:
            first = coords[0, :2].copy()
        n += len(coords)
        lon = np.radians(coords[:, 0])
        lat = np.radians(coords[:, 1])
        del coords
        cos_lat = np.cos(lat)
        rows = np.empty((len(lon) + 1, 3))
        rows[0] = total[0]
        rows[1:, 0] = cos_lat * np.cos(lon)
        rows[1:, 1] = cos_lat * np.sin(lon)
        rows[1:, 2] = np.sin(lat)
        total = rows.sum(axis=0, keepdims=True)  # total + r1 + r2 + ... in row order
        del rows, lon, lat, cos_lat
    if first is None:
        raise InputError("cannot find the centre of empty geometries; give non-empty geometries")
    v = total[0] / n
    norm = np.linalg.norm(v)
    if norm < 1e-12:  # antipodal inputs: any centre is as good; use the first vertex
        return float(first[0]), float(first[1])
    v = v / norm
    return float(np.degrees(np.arctan2(v[1], v[0]))), float(np.degrees(np.arcsin(np.clip(v[2], -1, 1))))


def unwrap_antimeridian(*lonlat_geoms):
    """Shift negative longitudes by +360 when the geometries together span the antimeridian.

    Planar predicates on lon/lat coordinates treat 179.9 and -179.9 as 359.8 degrees apart.
    When the longitudes of the inputs span more than 180 degrees and the shorter way round
    crosses +-180, this returns copies with negative longitudes moved to (180, 360), which
    is a pure translation of those vertices: shared vertices stay shared, so topology is
    preserved exactly. Otherwise the inputs are returned unchanged.
    """
    geoms = [g for g in lonlat_geoms]
    coords = shapely.get_coordinates(np.asarray(geoms, dtype=object))
    if len(coords) == 0:
        return tuple(geoms)
    lons = coords[:, 0]
    if lons.max() - lons.min() <= 180:
        return tuple(geoms)
    shifted_span = np.where(lons < 0, lons + 360, lons)
    if shifted_span.max() - shifted_span.min() >= lons.max() - lons.min():
        return tuple(geoms)

    def _shift(c: np.ndarray) -> np.ndarray:
        c = c.copy()
        c[:, 0] = np.where(c[:, 0] < 0, c[:, 0] + 360.0, c[:, 0])
        return c

    return tuple(shapely.transform(g, _shift) for g in geoms)


def check_coordinates(bounds: tuple[float, float, float, float], crs: CRS, what: str) -> None:
    """Refuse coordinates that cannot be in ``crs`` (``bounds`` = minx, miny, maxx, maxy).

    * any non-finite coordinate;
    * a geographic CRS (x = longitude, y = latitude) with ``|lat| > 90`` or ``|lon| > 180``
      (except a geometry that crosses the antimeridian, written past +-180 to stay continuous);
    * a projected CRS whose coordinates all look like lon/lat degrees (within +-180/+-90,
      spanning under 10 units): a GeoJSON ``crs`` member saying EPSG:3857 over lon/lat
      values would otherwise measure metres as degrees.

    Raises :class:`~georeason.errors.CRSMismatchError` (an ``InputError``) naming ``what``
    and the value.

    Examples
    --------
    >>> check_coordinates((0.0, 0.0, 1.0, 95.0), CRS.from_epsg(4326), "the point")
    Traceback (most recent call last):
    ...
    georeason.errors.CRSMismatchError: the point: latitude 95 is outside -90..90 (EPSG:4326 is lon/lat); check the coordinate order and values
    """
    import math

    from georeason.errors import CRSMismatchError

    x0, y0, x1, y1 = (float(v) for v in bounds)
    if any(math.isnan(v) for v in (x0, y0, x1, y1)):
        return  # empty geometry: nothing to check
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise CRSMismatchError(f"{what}: coordinates {[x0, y0, x1, y1]} are not finite numbers")
    name = crs.to_string()
    if crs.is_geographic:
        for lat in (y0, y1):
            if abs(lat) > 90:
                raise CRSMismatchError(
                    f"{what}: latitude {lat:g} is outside -90..90 ({name} is lon/lat); "
                    "check the coordinate order and values"
                )
        # a geometry across the antimeridian may be written continuously (179.9 .. 180.1)
        crosses = (x0 < 180 < x1 or x0 < -180 < x1) and x1 - x0 < 360
        for lon in (x0, x1):
            if abs(lon) > 180 and not (crosses and abs(lon) <= 360):
                raise CRSMismatchError(
                    f"{what}: longitude {lon:g} is outside -180..180 ({name} is lon/lat); "
                    "give longitudes in -180..180 (only a geometry across the antimeridian may pass 180)"
                )
    elif crs.is_projected:
        lonlat_like = -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90
        if (
            lonlat_like
            and (x1 - x0) < 10
            and (y1 - y0) < 10
            and max(abs(x0), abs(x1), abs(y0), abs(y1)) > 1e-6
        ):
            raise CRSMismatchError(
                f"{what}: coordinates {[round(v, 6) for v in (x0, y0, x1, y1)]} look like lon/lat degrees but the "
                f"CRS is {name} (projected, in {crs.axis_info[0].unit_name}s); fix or remove the 'crs' member"
            )
