"""Spectral-index grounding: water, vegetation and bright (built-up/bare) surfaces.

:class:`SpectralGrounder` implements :class:`georeason.geo.grounding.detections.Grounder` with band
ratios, thresholds and connected components; no model, no training.

Classes and indices
-------------------
=============  ==========================================  =================================
family         with near-infrared (NIR)                    visible bands only
=============  ==========================================  =================================
water          NDWI ``(G - NIR) / (G + NIR)``              ``(B - R) / (B + R)`` (blue
                                                           dominance: clear and shallow
                                                           water is blue/cyan, land is not)
vegetation     NDVI ``(NIR - R) / (NIR + R)``              excess green ``(2G - R - B) /
                                                           (R + G + B)``
bright         NDBI ``(SWIR - NIR) / (SWIR + NIR)`` with   brightness: mean of the visible
               SWIR, else visible brightness               bands (raster units)
=============  ==========================================  =================================

Class names are mapped by :data:`SYNONYMS` (``lake``, ``river``, ``pond``, ``sea``... ->
water; ``forest``, ``trees``, ``grass``... -> vegetation; ``building``, ``urban``,
``bare``... -> bright); the detections keep the name asked for.

Thresholds are per *scene*, never per tile: a per-tile Otsu threshold would move from
tile to tile and make results depend on the tiling. :func:`fit_thresholds` computes Otsu
thresholds once on a decimated read of the whole raster (at most ``max_px`` on the long
side, so bounded memory), and the grounder applies those fixed numbers to every tile.

On visible-only imagery (e.g. the Landsat RGB sample) the water index finds clear,
turquoise and shallow water reliably; deep, very dark water has a weak blue excess and
is only partly found. Clouds are neutral grey/white and are not water.

Lengths and areas are in metres: ``min_area_m2`` and ``simplify_m`` are converted with
the pixel size in metres (:func:`georeason.geo.raster.io.pixel_size_m`, geodesic for
geographic CRSs), never in degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np
import shapely
from rasterio.errors import RasterioError
from scipy import ndimage

from georeason.errors import InputError, RasterReadError
from georeason.geo.grounding.detections import Detection, pixel_polygons
from georeason.geo.raster.io import (
    as_dataset,
    band_names,
    decimated_shape,
    pixel_size_m,
    read_decimated,
    release_heap,
)
from georeason.geo.raster.tiling import Tile

__all__ = [
    "SYNONYMS",
    "FAMILIES",
    "DEFAULT_THRESHOLDS",
    "class_family",
    "band_roles",
    "index_for",
    "compute_index",
    "otsu_threshold",
    "fit_thresholds",
    "SpectralGrounder",
]

FAMILIES = ("water", "vegetation", "bright")
#: Suffix of the second (upper) threshold of an index, used by the "built" family.
HIGH = "_high"

#: Class name -> index family.
SYNONYMS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            [
                "water",
                "lake",
                "lakes",
                "pond",
                "ponds",
                "river",
                "rivers",
                "reservoir",
                "sea",
                "ocean",
                "lagoon",
                "stream",
                "canal",
                "waterbody",
                "water body",
            ],
            "water",
        ),
        **dict.fromkeys(
            [
                "vegetation",
                "forest",
                "forests",
                "tree",
                "trees",
                "woods",
                "woodland",
                "grass",
                "grassland",
                "park",
                "meadow",
                "green",
                "crop",
                "crops",
                "field",
                "fields",
            ],
            "vegetation",
        ),
        **dict.fromkeys(
            ["bright", "bare", "bare soil", "bare ground", "bare field", "bare fields", "soil"],
            "bright",
        ),
        **dict.fromkeys(
            [
                "building",
                "buildings",
                "built-up",
                "built up",
                "builtup",
                "urban",
                "settlement",
                "roof",
                "roofs",
                "house",
                "houses",
                "built",
            ],
            "built",
        ),
    }
)

#: Fallback thresholds for normalised indices when no scene fit is given. Brightness has
#: none: its units are the raster's, so it must come from :func:`fit_thresholds`.
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"ndwi": 0.0, "vis_water": 0.3, "ndvi": 0.3, "exg": 0.1, "ndbi": 0.0}
)

_ROLE_ALIASES = {
    "blue": ("blue", "b", "blu"),
    "green": ("green", "g", "grn"),
    "red": ("red", "r"),
    "nir": ("nir", "nir08", "near-infrared", "near infrared", "near_infrared", "infrared", "ir"),
    "swir": ("swir", "swir1", "swir16", "swir_1"),
}

# Index -> (bands needed, score scale). The score of a pixel is
# clip(0.5 + (index - threshold) / (2 * scale), 0, 1): 0.5 at the threshold.
_INDEX_BANDS = {
    "ndwi": ("green", "nir"),
    "vis_water": ("blue", "red"),
    "ndvi": ("nir", "red"),
    "exg": ("red", "green", "blue"),
    "ndbi": ("swir", "nir"),
    "brightness": (),
}


#: Nodata gaps (undeclared NaN/inf pixels as much as declared nodata) up to this many pixels
#: wide between pixels of one class are bridged: a lake crossed by a stripe of missing
#: pixels stays one lake (its area includes the stripe). Wider gaps still split objects.
NODATA_GAP_PX = 8


def _unknown_pixels(pixels: np.ma.MaskedArray, tile: Tile) -> np.ndarray | None:
    """Masked pixels inside the raster (nodata, NaN, inf), not the tile's padding; ``None`` if none."""
    if np.ma.getmask(pixels) is np.ma.nomask:  # an interior tile of a raster without nodata
        return None
    masked = np.ma.getmaskarray(pixels).any(axis=0)
    if not masked.any():
        return None
    h, w = masked.shape
    rows = max(0, min(h, int(tile.raster_shape[0] - tile.window.row_off)))
    cols = max(0, min(w, int(tile.raster_shape[1] - tile.window.col_off)))
    inside = np.zeros_like(masked)
    inside[:rows, :cols] = True
    unknown = masked & inside
    return unknown if unknown.any() else None


def bridge_nodata_gaps(
    member: np.ndarray, unknown: np.ndarray | None, gap_px: int = NODATA_GAP_PX
) -> tuple[np.ndarray, np.ndarray | None]:
    """Class pixels with the unknown pixels that bridge a gap of up to ``gap_px`` between them.

    A morphological closing (square of ``gap_px + 1`` pixels) of the class pixels, kept only
    where pixels are unknown: known pixels never change class, and an unknown pixel joins
    only where class pixels lie on both sides of it within the gap. Returns ``(member,
    filled)``; ``filled`` is ``None`` when nothing was added.

    Examples
    --------
    >>> m = np.zeros((5, 9), bool); m[1:4, 1:8] = True
    >>> u = np.zeros_like(m); u[:, 4] = True; m[:, 4] = False   # a nodata stripe across
    >>> out, filled = bridge_nodata_gaps(m, u, 2)
    >>> bool(out[1:4, 4].all()), bool(out[0, 4] or out[4, 4]), int(filled.sum())
    (True, False, 3)
    """
    if unknown is None or not member.any():
        return member, None
    size = gap_px + 1
    # pad so that the closing's erosion does not eat into objects at the array's edge
    closed = ndimage.binary_closing(np.pad(member, size, mode="edge"), structure=np.ones((size, size), bool))[
        size:-size, size:-size
    ]
    filled = closed & unknown & ~member
    if not filled.any():
        return member, None
    return member | filled, filled


def class_family(label: str) -> str | None:
    """Index family of a class name, or ``None`` if spectral indices cannot find it.

    Examples
    --------
    >>> class_family("Lake"), class_family("trees"), class_family("urban"), class_family("car")
    ('water', 'vegetation', 'built', None)
    >>> class_family("marked region")  # a coloured outline drawn on the image (geo.overlay)
    'marker'
    """
    from georeason.models.overlay import is_marker_class

    if is_marker_class(label):
        return "marker"
    return SYNONYMS.get(label.strip().lower())


def band_roles(bands: Iterable[str]) -> dict[str, int]:
    """Map spectral roles (``blue``, ``green``, ``red``, ``nir``, ``swir``) to band positions.

    Examples
    --------
    >>> band_roles(["Blue", "green", "red", "NIR"])
    {'blue': 0, 'green': 1, 'red': 2, 'nir': 3}
    """
    roles: dict[str, int] = {}
    for i, name in enumerate(bands):
        n = (name or "").strip().lower()
        for role, aliases in _ROLE_ALIASES.items():
            if n in aliases and role not in roles:
                roles[role] = i
    return roles


def index_for(family: str, roles: Mapping[str, int]) -> str:
    """The index used for a family given the bands available.

    Examples
    --------
    >>> index_for("water", {"green": 1, "nir": 3}), index_for("water", {"red": 0, "green": 1, "blue": 2})
    ('ndwi', 'vis_water')
    """
    if family == "water":
        if "green" in roles and "nir" in roles:
            return "ndwi"
        if "blue" in roles and "red" in roles:
            return "vis_water"
    elif family == "vegetation":
        if "nir" in roles and "red" in roles:
            return "ndvi"
        if {"red", "green", "blue"} <= roles.keys():
            return "exg"
    elif family == "bright":
        if "swir" in roles and "nir" in roles:
            return "ndbi"
        if roles.keys() & {"red", "green", "blue"}:
            return "brightness"
    elif family == "built":
        return index_for("bright", roles)
    else:
        raise InputError(f"unknown index family {family!r}; use one of {', '.join(FAMILIES + ('built',))}")
    raise InputError(
        f"no spectral index for {family!r} with bands {sorted(roles)}; name the bands in order with "
        "--bands (e.g. --bands red,green,blue) or in the raster's band descriptions"
    )


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)``, NaN where ``a + b == 0``; computed in place in two buffers.

    The same IEEE operations (in ``a``'s dtype) as
    ``np.where(s != 0, (a - b) / np.where(s != 0, s, 1), np.nan)``, so identical values.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.add(a, b)
        d = np.subtract(a, b)
        zero = s == 0
        if zero.any():
            s[zero] = 1
            np.divide(d, s, out=d)
            d[zero] = np.nan
        else:
            np.divide(d, s, out=d)
        return d


def _index_roles(name: str, roles: Mapping[str, int]) -> tuple[str, ...]:
    """The band roles index ``name`` reads (as :func:`compute_index` picks them)."""
    return _INDEX_BANDS[name] or tuple(r for r in ("red", "green", "blue") if r in roles)


def compute_index(
    name: str, pixels: np.ma.MaskedArray | _BandCache, roles: Mapping[str, int]
) -> np.ma.MaskedArray:
    """A spectral index as a float32 masked array ``(rows, cols)``.

    A pixel is masked where any band used is masked or the ratio is undefined.

    Examples
    --------
    >>> px = np.ma.MaskedArray(np.array([[[500.]], [[150.]]]), mask=False)
    >>> round(float(compute_index("ndwi", px, {"green": 0, "nir": 1})[0, 0]), 3)
    0.538
    """
    need = _index_roles(name, roles)
    if isinstance(pixels, _BandCache):  # bands already converted for another index of this tile
        data = {r: pixels[r] for r in need}
        mask = np.zeros(pixels.shape[1:], bool)
        for r in need:
            m = pixels.mask(r)
            if m is not None:
                mask |= m
    else:
        data = {r: np.ma.getdata(pixels[roles[r]]).astype(np.float32) for r in need}
        mask = np.zeros(pixels.shape[1:], bool)
        for r in need:
            mask |= np.ma.getmaskarray(pixels[roles[r]])
    if name == "ndwi":
        out = _nd(data["green"], data["nir"])
    elif name == "vis_water":
        out = _nd(data["blue"], data["red"])
    elif name == "ndvi":
        out = _nd(data["nir"], data["red"])
    elif name == "exg":
        with np.errstate(divide="ignore", invalid="ignore"):
            s = data["red"] + data["green"] + data["blue"]
            out = np.where(
                s != 0, (2 * data["green"] - data["red"] - data["blue"]) / np.where(s != 0, s, 1), np.nan
            )
    elif name == "ndbi":
        out = _nd(data["swir"], data["nir"])
    elif name == "brightness":
        out = np.asarray(sum(data.values()), dtype=np.float32) / len(data)
    else:
        raise InputError(f"unknown spectral index {name!r}")
    out = np.asarray(out, dtype=np.float32)
    finite = np.isfinite(out)
    mask |= ~finite
    return np.ma.MaskedArray(out, mask=mask)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a sample: the cut maximising the between-class variance.

    The histogram spans the 0.5-99.5 percentiles, so a few outliers (saturated clouds,
    specular glints) do not squash it. Values ``> threshold`` form the upper class; when
    the best cut falls in an empty gap between the modes, the middle of the gap is taken.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = np.concatenate([rng.normal(0, 0.1, 1000), rng.normal(1, 0.1, 500)])
    >>> 0.3 < otsu_threshold(v) < 0.7
    True
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise InputError("cannot fit a threshold: no valid pixels")
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        return float(lo)
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    # Between two well separated modes every cut in the empty gap scores the same: take
    # the middle of that plateau rather than its first bin.
    best = int(np.argmax(between))
    flat = between >= between[best] * (1 - 1e-12)
    last = best
    while last + 1 < len(flat) and flat[last + 1]:
        last += 1
    return float((edges[best + 1] + edges[last + 1]) / 2)


def fit_thresholds(
    src_or_path,
    classes: Iterable[str] | None = None,
    bands: list[str] | None = None,
    max_px: int = 1024,
) -> dict[str, float]:
    """Per-scene Otsu thresholds, keyed by index name (``{"ndwi": 0.12, ...}``).

    The whole raster is read once at reduced resolution (nearest sampling, at most
    ``max_px`` pixels on the long side: bounded memory whatever the raster size); masked
    pixels are ignored. Families are fitted in the order water, vegetation, bright, each
    on the pixels the previous ones did not claim (so vegetation is split from bare land,
    not from water; bright from vegetated and bare land). ``classes`` limits the indices
    returned (default: every family the bands allow); ``bands`` names the bands
    (default: :func:`band_names` of the raster).

    The pass over the file frees its strips and GDAL's blocks when it ends; that memory is
    then handed back to the system (:func:`georeason.geo.raster.io.release_heap`), not kept
    by the process through the grounding that follows (8000^2 scene: 124 MB).
    """
    try:
        return _fit_thresholds(src_or_path, classes, bands, max_px)
    finally:
        release_heap()


def _fit_thresholds(
    src_or_path, classes: Iterable[str] | None, bands: list[str] | None, max_px: int
) -> dict[str, float]:
    with as_dataset(src_or_path) as src:
        names = list(bands) if bands is not None else list(band_names(src))
        roles = band_roles(names)
        shape_ = decimated_shape(src, max_px)
        try:
            pixels = read_decimated(src, shape_)  # GDAL's nearest samples, one strip at a time
            if np.issubdtype(pixels.dtype, np.floating):  # undeclared NaN/inf pixels are nodata
                pixels = np.ma.masked_where(~np.isfinite(np.ma.getdata(pixels)), pixels)
        except RasterioError as exc:
            raise RasterReadError(
                f"raster {src.name} could not be read for threshold fitting ({exc})"
            ) from exc
    wanted: set[str] | None = None
    if classes is not None:
        wanted = set()
        for c in classes:
            fam = class_family(c)
            if fam is None:
                raise InputError(
                    f"class {c!r} has no spectral index; supported: {', '.join(sorted(set(SYNONYMS)))}"
                )
            if fam != "marker":  # drawn overlays need no threshold
                wanted.add(index_for(fam, roles))
    # Fit in order water -> vegetation -> bright, each on the pixels not claimed by the
    # previous families: water's strongly negative NDVI would otherwise pull the NDVI
    # threshold between water and land instead of between bare land and vegetation. The
    # result does not depend on which classes were asked for.
    out: dict[str, float] = {}
    claimed = np.zeros(pixels.shape[1:], bool)
    for fam in FAMILIES:
        try:
            name = index_for(fam, roles)
        except InputError:
            continue
        idx = compute_index(name, pixels, roles)
        values = np.ma.getdata(idx)[~np.ma.getmaskarray(idx) & ~claimed]
        if values.size == 0:
            continue
        t = round(otsu_threshold(values), 6)
        out[name] = t
        if fam == "bright":
            # Built-up is the brightest mode of the bright pixels: a second Otsu split above
            # the first separates roofs from bare soil (both bright against dry grass).
            upper = values[values > t]
            out[name + HIGH] = (
                round(otsu_threshold(upper), 6) if upper.size >= 16 and np.ptp(upper) > 0 else t
            )
        claimed |= (np.ma.getdata(idx) > t) & ~np.ma.getmaskarray(idx)
    if wanted is not None:
        missing = wanted - out.keys()
        if missing:
            raise InputError(f"no valid pixels to fit thresholds for {sorted(missing)}")
        out = {k: v for k, v in out.items() if k.removesuffix(HIGH) in wanted}
    return out


class SpectralGrounder:
    """Grounder for water, vegetation and bright surfaces from spectral indices.

    Parameters
    ----------
    thresholds : mapping, optional
        Index name -> threshold (pixels with ``index > threshold`` belong to the class),
        normally from :func:`fit_thresholds` on the whole scene. Missing normalised
        indices fall back to :data:`DEFAULT_THRESHOLDS`; brightness has no fallback.
    min_area_m2 : float
        Objects smaller than this are dropped. Authoritatively after seam merging
        (:func:`georeason.geo.grounding.seams.merge_detections` uses the geodesic area); here in
        :meth:`ground` only components that lie wholly inside the tile and are clearly
        below it (pixel count x pixel area < half the minimum) are dropped early, which
        can never remove a piece of a larger object.
    simplify_m : float
        Simplification tolerance in metres, applied after seam merging (simplifying
        per tile would make seams depend on the tiling).
    connectivity : int
        4 (default) or 8; 4 matches how polygons are formed (pixels touching at a corner
        only are separate objects).

    Notes
    -----
    :meth:`ground` returns one ``polygon`` detection per connected component, in tile
    pixel coordinates, with edges on pixel boundaries and no simplification. Masked
    (nodata or padding) pixels never belong to a component. The score is the mean over
    the component of ``clip(0.5 + (index - threshold) / (2 * scale), 0, 1)``, with
    ``scale`` 0.2 for normalised indices and 20% of the threshold for brightness.
    """

    name = "spectral"

    def __init__(
        self,
        thresholds: Mapping[str, float] | None = None,
        *,
        min_area_m2: float = 0.0,
        simplify_m: float = 0.0,
        connectivity: int = 4,
        marker_colour: str = "red",
    ):
        self.marker_colour = marker_colour
        if connectivity not in (4, 8):
            raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
        if min_area_m2 < 0 or simplify_m < 0:
            raise InputError("min_area_m2 and simplify_m must be >= 0 (metres)")
        self.thresholds = {str(k): float(v) for k, v in (thresholds or {}).items()}
        self.min_area_m2 = float(min_area_m2)
        self.simplify_m = float(simplify_m)
        self.connectivity = connectivity

    @property
    def config(self) -> dict:
        """JSON-serialisable settings (for cache keys)."""
        return {
            "thresholds": dict(sorted(self.thresholds.items())),
            "min_area_m2": self.min_area_m2,
            "simplify_m": self.simplify_m,
            "connectivity": self.connectivity,
            "marker_colour": self.marker_colour,
            "nodata_gap_px": NODATA_GAP_PX,
        }

    def __repr__(self) -> str:
        return f"SpectralGrounder({self.config})"

    @classmethod
    def from_raster(
        cls, src_or_path, classes: Iterable[str] | None = None, bands: list[str] | None = None, **kwargs
    ):
        """A grounder with thresholds fitted on the whole raster (see :func:`fit_thresholds`)."""
        return cls(fit_thresholds(src_or_path, classes, bands), **kwargs)

    @staticmethod
    def supports(label: str) -> bool:
        """Whether a class name maps to a spectral index."""
        return class_family(label) is not None

    def threshold(self, index_name: str) -> float:
        if index_name in self.thresholds:
            return self.thresholds[index_name]
        if index_name.endswith(HIGH):  # no upper split fitted: fall back to the base threshold
            return self.threshold(index_name.removesuffix(HIGH))
        if index_name in DEFAULT_THRESHOLDS:
            return DEFAULT_THRESHOLDS[index_name]
        raise InputError(
            f"no threshold for index {index_name!r}: its units are the raster's; fit one per scene "
            "with fit_thresholds(raster) or SpectralGrounder.from_raster(raster)"
        )

    def ground(
        self, pixels: np.ma.MaskedArray, tile: Tile, classes: list[str], bands: list[str]
    ) -> list[Detection]:
        """Polygons (tile pixel coordinates) of the connected components of each class."""
        pixels = np.ma.asarray(pixels)
        if pixels.ndim != 3 or pixels.shape[0] != len(bands):
            raise InputError(
                f"pixels must be (bands, rows, cols) with {len(bands)} bands, got shape {pixels.shape}"
            )
        roles = band_roles(bands)
        groups: dict[tuple[str, str], list[str]] = {}  # (index, threshold key) -> labels asking
        out: list[Detection] = []
        for label in classes:
            fam = class_family(label)
            if fam is None:
                raise InputError(
                    f"class {label!r} cannot be found from spectral indices; supported classes: "
                    f"{', '.join(sorted(set(SYNONYMS)))}"
                )
            if fam == "marker":  # a coloured outline drawn on the image: the region it encloses
                from georeason.models.overlay import find_markers

                out.extend(find_markers(pixels, bands, label=label, colour=self.marker_colour))
                continue
            name = index_for(fam, roles)
            key = name + HIGH if fam == "built" else name
            labels_for = groups.setdefault((name, key), [])
            if label not in labels_for:
                labels_for.append(label)
        px_w, px_h = pixel_size_m(tile.transform, tile.crs, tile.shape[1] / 2, tile.shape[0] / 2)
        px_area_m2 = px_w * px_h
        unknown = _unknown_pixels(pixels, tile)
        bands_f32 = _BandCache(pixels, roles)  # each band converted once per tile, whatever the indices
        indices: dict[str, np.ma.MaskedArray] = {}
        order = [index_name for index_name, _ in groups]
        for n, ((index_name, key), labels) in enumerate(groups.items()):
            if index_name not in indices:  # built and bright share the brightness index
                indices[index_name] = compute_index(index_name, bands_f32, roles)
            later = order[n + 1 :]
            # memory: a tile's float32 band or index goes once no later group needs it
            bands_f32.keep_only({r for name in later for r in _index_roles(name, roles)})
            idx = indices[index_name] if index_name in later else indices.pop(index_name)
            t = self.threshold(key)
            scale = 0.2 if index_name != "brightness" else max(abs(t) * 0.2, 1e-9)
            values = np.ma.getdata(idx)
            member = classify(values, np.ma.getmaskarray(idx), t)
            member, filled = bridge_nodata_gaps(member, unknown)
            if filled is not None:  # unknown pixels inside an object: neutral confidence
                values = np.where(filled, t, values)
            dets = self._components(member, values, t, scale, labels[0], px_area_m2)
            out.extend(dets)
            # every class name asked gets the components under its own name (lake and
            # water both asked: the same water bodies, once per name; the pipeline then
            # keeps compact ones as lakes and elongated ones as rivers)
            for other in labels[1:]:
                out.extend(
                    Detection(label=other, score=d.score, kind=d.kind, geometry=d.geometry) for d in dets
                )
            del idx, values, member, filled  # not alive while the next group's index is computed
        return out

    def _components(self, member, values, t, scale, label, px_area_m2) -> list[Detection]:
        if not member.any():
            return []
        labels, n = label_components(member, self.connectivity)
        counts, scores = component_scores(labels, n, values, t, scale, member)
        keep = np.ones(n + 1, bool)
        keep[0] = False
        if self.min_area_m2 > 0:
            on_border = np.zeros(n + 1, bool)
            for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
                on_border[edge] = True
            small = counts * px_area_m2 < 0.5 * self.min_area_m2
            keep &= ~(small & ~on_border)
        if not keep[1:].any():
            return []
        # the member pixels are the labelled ones: no lookup when every component is kept
        geoms, values_ = vectorise_labels(
            labels, member if keep[1:].all() else keep[labels], self.connectivity
        )
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = shapely.make_valid(geoms[bad])
        return [
            Detection(label=label, score=float(scores[v - 1]), kind="polygon", geometry=g)
            for g, v in zip(geoms.tolist(), values_.astype(np.int64).tolist())
        ]


class _BandCache(Mapping):
    """Bands of one tile as float32 and their masks, converted once on first use.

    Passed to :func:`compute_index` in place of the masked pixels, so a tile grounded for
    water, vegetation and built-up surfaces converts each band once, not once per index.
    """

    def __init__(self, pixels: np.ma.MaskedArray, roles: Mapping[str, int]):
        self.pixels, self.roles = pixels, roles
        self._data: dict[str, np.ndarray] = {}
        self._mask: dict[str, np.ndarray] = {}
        self.shape = pixels.shape

    def __getitem__(self, role: str) -> np.ndarray:
        if role not in self._data:
            self._data[role] = np.ma.getdata(self.pixels[self.roles[role]]).astype(np.float32)
        return self._data[role]

    def keep_only(self, roles: set[str]) -> None:
        """Let the converted bands (and masks) of every other role go."""
        for cache in (self._data, self._mask):
            for role in [r for r in cache if r not in roles]:
                del cache[role]

    def mask(self, role: str) -> np.ndarray | None:
        """The band's mask; ``None`` when nothing in the tile is masked."""
        if np.ma.getmask(self.pixels) is np.ma.nomask:
            return None
        if role not in self._mask:
            self._mask[role] = np.ma.getmaskarray(self.pixels[self.roles[role]])
        return self._mask[role]

    def __iter__(self):
        return iter(self.roles)

    def __len__(self) -> int:
        return len(self.roles)


def classify(values: np.ndarray, masked: np.ndarray, t: float) -> np.ndarray:
    """Members of a class: ``values > t`` where not ``masked`` (a boolean array)."""
    member = values > t
    member &= ~masked
    return member


def label_components(member: np.ndarray, connectivity: int = 4) -> tuple[np.ndarray, int]:
    """Connected components of a boolean array: ``(labels int32, count)``, 0 = background."""
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, n = ndimage.label(member, structure=structure)
    return labels, int(n)


def component_scores(
    labels: np.ndarray,
    n: int,
    values: np.ndarray,
    t: float,
    scale: float,
    member: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts (index = label) and mean scores (index = label - 1) of the components.

    The score of a pixel is ``clip(0.5 + (value - t) / (2 * scale), 0, 1)``; the mean per
    label is two ``np.bincount`` calls (what ``ndimage.mean`` computes, without one pass
    per label or its checks and copies). ``member`` (``labels != 0``, when the caller has
    it) limits the work to the labelled pixels; the background count (index 0) is then 0.
    The sums add the same pixels in the same order either way: identical scores.

    Examples
    --------
    >>> lab = np.array([[1, 1, 0, 2]], np.int32)
    >>> counts, scores = component_scores(lab, 2, np.array([[0.5, 0.7, 0.0, 0.1]]), 0.3, 0.2)
    >>> counts.tolist(), [round(float(s), 3) for s in scores]
    ([1, 2, 1], [1.0, 0.0])
    """
    flat = labels.ravel()
    vals = np.asarray(values, dtype=np.float32).ravel()
    if member is not None:
        sel = np.asarray(member, dtype=bool).ravel()
        flat, vals = flat[sel], vals[sel]
    flat = flat.astype(np.intp, copy=False)  # bincount's index type: converted once, not twice
    counts = np.bincount(flat, minlength=n + 1)
    # float32 throughout, the same operations in the same order as
    # ``clip(0.5 + (values - t) / (2 * scale), 0, 1)`` on float32 values: identical scores
    conf = vals - np.float32(t)
    conf /= np.float32(2 * scale)
    conf += np.float32(0.5)
    np.clip(conf, 0, 1, out=conf)
    sums = np.bincount(flat, weights=conf, minlength=n + 1)
    return counts, sums[1:] / np.maximum(counts[1:], 1)


def vectorise_labels(
    labels: np.ndarray, mask: np.ndarray, connectivity: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of every labelled component in one pass: ``(geometries, label values)``.

    One ``rasterio.features.shapes`` call over the whole label raster (not one per
    label), the polygons built in bulk with ``shapely.linearrings``/``shapely.polygons``
    from the rings' coordinates (pixel ``(col, row)`` space, edges on pixel boundaries).
    """
    geoms, values = pixel_polygons(labels, mask=mask, connectivity=connectivity)
    return geoms, values
