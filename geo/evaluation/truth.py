"""Expected answers computed straight from truth geometries (pyproj + shapely only).

Nothing here goes through the question parser or the executor: these functions are the
independent side of every comparison :mod:`georeason.geo.evaluation` makes. Metric values
are geodesic (WGS84, :class:`pyproj.Geod`): the nearest points of two geometries are found
in an azimuthal equidistant projection centred between them, then measured on the
ellipsoid; areas are ``Geod.geometry_area_perimeter`` of the lon/lat geometry; centroids are
taken in the truth CRS (a projected CRS in every shipped item) and mapped to lon/lat.
Topology is decided in the truth CRS with shapely's predicates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

__all__ = [
    "GEOD",
    "Truth",
    "relation_name",
    "compass8",
    "COMPASS8",
]

GEOD = Geod(ellps="WGS84")
COMPASS8 = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
_LONLAT = CRS.from_epsg(4326)


def compass8(az: float) -> str:
    """8-point compass name of an azimuth (sectors centred on the names).

    Examples
    --------
    >>> compass8(22.0), compass8(23.0), compass8(350.0)
    ('N', 'NE', 'N')
    """
    return COMPASS8[int(((az % 360.0) + 22.5) // 45.0) % 8]


def relation_name(a: BaseGeometry, b: BaseGeometry) -> str:
    """The first of equals, within, contains, overlaps, crosses, touches, intersects, disjoint that holds.

    Examples
    --------
    >>> relation_name(shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1))
    'touches'
    """
    for name, fn in (
        ("equals", shapely.equals),
        ("within", shapely.within),
        ("contains", shapely.contains),
        ("overlaps", shapely.overlaps),
        ("crosses", shapely.crosses),
        ("touches", shapely.touches),
        ("intersects", shapely.intersects),
    ):
        if fn(a, b):
            return name
    return "disjoint"


class Truth:
    """Truth geometries in one projected CRS, with geodesic measures.

    Parameters
    ----------
    crs : pyproj CRS (anything ``CRS.from_user_input`` takes)
        The CRS of every geometry handed to the methods.
    """

    def __init__(self, crs) -> None:
        self.crs = CRS.from_user_input(crs)
        self._to_ll = Transformer.from_crs(self.crs, _LONLAT, always_xy=True)
        self._aeqd_cache: dict[tuple[float, float], tuple[Transformer, Transformer]] = {}

    def lonlat(self, g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda xy: np.column_stack(self._to_ll.transform(xy[:, 0], xy[:, 1])))

    def _aeqd(self, *gs: BaseGeometry) -> tuple[Callable, Callable]:
        """Forward/back maps through an AEQD projection centred near the geometries.

        The centre is rounded to 0.02 degrees (a few km) so that one projection serves many
        pairs; it only locates the nearest points, which are then measured on the ellipsoid.
        """
        c = self.lonlat(shapely.union_all([shapely.centroid(g) for g in gs]).centroid)
        key = (round(c.x / 0.02) * 0.02, round(c.y / 0.02) * 0.02)
        if key not in self._aeqd_cache:
            aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={key[1]} +lon_0={key[0]} +datum=WGS84 +units=m")
            self._aeqd_cache[key] = (
                Transformer.from_crs(self.crs, aeqd, always_xy=True),
                Transformer.from_crs(aeqd, _LONLAT, always_xy=True),
            )
        fwd, inv = self._aeqd_cache[key]

        def to(g: BaseGeometry) -> BaseGeometry:
            return shapely.transform(g, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))

        def back(x: float, y: float) -> tuple[float, float]:
            lon, lat = inv.transform(x, y)
            return float(lon), float(lat)

        return to, back

    def distance_m(self, a: BaseGeometry, b: BaseGeometry) -> float:
        """Minimum geodesic distance in metres (0 when they intersect)."""
        if shapely.intersects(a, b):
            return 0.0
        to, back = self._aeqd(a, b)
        pa, pb = shapely.shortest_line(to(a), to(b)).coords
        (lon1, lat1), (lon2, lat2) = back(*pa), back(*pb)
        return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])

    def centroid_lonlat(self, g: BaseGeometry) -> tuple[float, float]:
        c = self.lonlat(shapely.centroid(g))
        return float(c.x), float(c.y)

    def centroid_distance_m(self, a: BaseGeometry, b: BaseGeometry) -> float:
        (x1, y1), (x2, y2) = self.centroid_lonlat(a), self.centroid_lonlat(b)
        return float(GEOD.inv(x1, y1, x2, y2)[2])

    def bearing_deg(self, a: BaseGeometry, b: BaseGeometry) -> float:
        """Forward geodesic azimuth from the centroid of ``a`` to that of ``b``, in [0, 360)."""
        (x1, y1), (x2, y2) = self.centroid_lonlat(a), self.centroid_lonlat(b)
        return float(GEOD.inv(x1, y1, x2, y2)[0]) % 360.0

    def area_m2(self, g: BaseGeometry) -> float:
        return float(abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(self.lonlat(g)))[0]))
