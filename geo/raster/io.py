"""Opening and describing georeferenced rasters, with refusals that say what to do.

Every raster georeason reads goes through :func:`open_raster`, which refuses early and by
name what the rest of the code cannot handle:

* no CRS, or an identity (pixel) geotransform -> :class:`NotGeoreferencedError`;
* rotation or shear terms in the geotransform -> :class:`RotatedRasterError`;
* a file that cannot be opened, or whose blocks cannot be decoded (truncated or corrupt
  TIFFs often open fine and fail only when a block is read) -> :class:`RasterReadError`.

Paths may be local paths, ``file://`` URLs (turned into paths), or anything GDAL opens by
name: ``/vsicurl/https://...``, ``/vsis3/...``, ``https://...``. The same code serves all.

Pixel sizes are reported in metres (:func:`pixel_size_m`): for projected CRSs from the
axis unit, for geographic CRSs measured on the WGS84 ellipsoid at the given pixel.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Geod
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.warp import transform_geom
from shapely import Polygon
from shapely.geometry import shape

from georeason.errors import NotGeoreferencedError, RasterReadError, RotatedRasterError
from georeason.geo.cpus import usable_cpus
from georeason.geo.vector.crs import LONLAT, transformer

# -- GDAL's block cache, bounded before GDAL first sizes it --------------------------------
#: Default size (MB) of GDAL's raster block cache in georeason, unless ``GDAL_CACHEMAX`` is
#: set in the environment (then GDAL's own setting wins). GDAL's default, 5% of RAM, is
#: 6 GB on a 128 GB machine and filled during a scene's threshold fit; tiles are read once
#: in order, so a small cache loses little (at most the blocks a tile row shares with the
#: next are decoded twice). 64 MB: the 8000² ``ask`` peaks ~240 MB lower than with 256 MB
#: (benchmarks/RESULTS.md, "memory").
#: Override: ``GEOREASON_GDAL_CACHEMAX_MB``.
DEFAULT_GDAL_CACHEMAX_MB = 64


def env_mb(name: str, otherwise: str, environ: Mapping[str, str] | None = None) -> int | None:
    """The size in MB that the environment variable ``name`` gives as a positive integer
    (digits only); ``None`` when it is unset or empty, and, with a warning that says
    ``otherwise`` (what is used instead), when it holds anything else."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    if raw:
        warnings.warn(f"{name}={raw!r} is not a positive integer (MB); {otherwise}", stacklevel=3)
    return None


def gdal_cache_mb(environ: dict[str, str] | None = None) -> int:
    """The block cache size (MB) georeason asks GDAL for: ``GEOREASON_GDAL_CACHEMAX_MB``
    when it is a positive integer, else :data:`DEFAULT_GDAL_CACHEMAX_MB`."""
    mb = env_mb("GEOREASON_GDAL_CACHEMAX_MB", f"using {DEFAULT_GDAL_CACHEMAX_MB}", environ)
    return DEFAULT_GDAL_CACHEMAX_MB if mb is None else mb


if "GDAL_CACHEMAX" not in os.environ:  # GDAL reads it once, at its first block read
    #     (importing rasterio does not size the cache; the first read does)
    os.environ["GDAL_CACHEMAX"] = f"{gdal_cache_mb()}MB"

__all__ = [
    "env_mb",
    "apply_transform",
    "RasterInfo",
    "normalize_path",
    "open_raster",
    "check_raster",
    "as_dataset",
    "raster_info",
    "band_names",
    "pixel_size_m",
    "pixel_sizes_m",
    "file_sha256",
    "to_pyproj_crs",
    "nearest_rows",
    "read_decimated",
    "release_heap",
    "usable_cpus",
    "decoding_threads",
]

_GEOD = Geod(ellps="WGS84")

_MALLOC_TRIM: Any = False  # not looked up yet; None: this C library has no malloc_trim


def release_heap() -> bool:
    """Hand the C heap's free pages back to the operating system (glibc's ``malloc_trim(0)``);
    ``False`` where the C library has no such call (then nothing is done).

    Large numpy arrays and GDAL's blocks are ``malloc``-ed; once freed, glibc keeps most of
    them in the process (its trim threshold rises with the largest block freed), so a
    process that read a whole scene once holds that memory until it exits: measured +124 MB
    of freed-but-kept heap after the 8000^2 threshold fit, and ~50 MB in each grounding
    worker after a batch (benchmarks/RESULTS.md, "lean"). Costs ~1 ms; values are untouched.

    Examples
    --------
    >>> release_heap() in (True, False)
    True
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is False:
        import ctypes

        try:
            _MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)
        except OSError:  # no C library to load symbols from
            _MALLOC_TRIM = None
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


# Names GDAL opens itself; they are passed through untouched.
_GDAL_PREFIXES = ("/vsi", "http://", "https://", "s3://", "gs://", "az://")


def normalize_path(path_or_url: str | os.PathLike) -> str:
    """Return the name to hand to GDAL for a path, ``file://`` URL or GDAL virtual path.

    ``file://`` URLs become local paths (percent-escapes decoded); ``/vsi...`` and remote
    URLs pass through; anything else is treated as a local path.

    Examples
    --------
    >>> normalize_path("file:///tmp/a%20b.tif")
    '/tmp/a b.tif'
    >>> normalize_path("/vsicurl/https://example.com/x.tif")
    '/vsicurl/https://example.com/x.tif'
    """
    s = os.fspath(path_or_url)
    if s.startswith("file://"):
        parsed = urlparse(s)
        if parsed.netloc not in ("", "localhost"):
            return "//" + parsed.netloc + url2pathname(unquote(parsed.path))
        return url2pathname(unquote(parsed.path))
    return s


def _is_local(name: str) -> bool:
    return not name.startswith(_GDAL_PREFIXES)


def to_pyproj_crs(crs: Any) -> CRS:
    """A :class:`pyproj.CRS` from a rasterio CRS (or anything pyproj accepts)."""
    if isinstance(crs, CRS):
        return crs
    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def _name(src: DatasetReader) -> str:
    return str(getattr(src, "name", src))


def check_raster(src: DatasetReader, *, check_read: bool = True) -> None:
    """Raise if an open dataset is not georeferenced, is rotated, or has unreadable blocks.

    Parameters
    ----------
    src : rasterio.io.DatasetReader
        An open dataset.
    check_read : bool
        Also read a few blocks: a tiny decimated read of band 1 (which touches blocks
        spread over the whole raster) and the last block of every band (truncated files
        lose their last blocks first). This costs a few blocks, not the raster.

    Raises
    ------
    NotGeoreferencedError, RotatedRasterError, RasterReadError
    """
    name = _name(src)
    if src.crs is None:
        raise NotGeoreferencedError(
            f"raster {name} has no coordinate reference system; assign one with "
            f"`gdal_edit.py -a_srs EPSG:XXXX {name}` (or rasterio: open with mode 'r+' and "
            "set `dataset.crs`), or reproject it with gdalwarp -t_srs"
        )
    t = src.transform
    if t.is_identity or (t.a == 1 and t.e == 1 and t.b == 0 and t.d == 0 and t.c == 0 and t.f == 0):
        hint = " (it has GCPs: warp it with `gdalwarp -t_srs EPSG:XXXX`)" if src.gcps[0] else ""
        raise NotGeoreferencedError(
            f"raster {name} has an identity geotransform, i.e. pixel coordinates only{hint}; "
            f"set its georeferencing with `gdal_edit.py -a_ullr ULX ULY LRX LRY -a_srs EPSG:XXXX {name}` "
            "or pass a georeferenced raster"
        )
    if t.b != 0 or t.d != 0:
        raise RotatedRasterError(
            f"raster {name} has a rotated/sheared geotransform {tuple(t)[:6]}; tiling needs a "
            f"north-up (or south-up) grid: warp it first with `gdalwarp -t_srs {src.crs} {name} out.tif`"
        )
    if t.a == 0 or t.e == 0:
        raise NotGeoreferencedError(f"raster {name} has a degenerate geotransform {tuple(t)[:6]}")
    if check_read:
        _check_blocks(src)


#: Files whose blocks were already read back in this process: ``(path, size, mtime_ns)``.
#: The check decodes a decimated sample of the whole first band (on a file without
#: overviews, every block of it), so it is done once per file version, not per open.
_BLOCKS_CHECKED: set[tuple[str, int, int]] = set()


def _file_key(src: DatasetReader) -> tuple[str, int, int] | None:
    name = _name(src)
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        return None  # not a local file (/vsicurl/..., MEM): checked every time
    return (os.path.realpath(name), st.st_size, st.st_mtime_ns)


def _check_blocks(src: DatasetReader) -> None:
    key = _file_key(src)
    if key is not None and key in _BLOCKS_CHECKED:
        return
    _read_check_blocks(src)
    if key is not None:
        _BLOCKS_CHECKED.add(key)


def _read_check_blocks(src: DatasetReader) -> None:
    name = _name(src)
    try:
        oh, ow = min(src.height, 16), min(src.width, 16)
        if not _prefetch_scene_samples(src, (src.count, oh, ow)):
            src.read(1, out_shape=(oh, ow))
        for bidx in range(1, src.count + 1):
            bh, bw = src.block_shapes[bidx - 1]
            nrow = -(-src.height // bh)
            ncol = -(-src.width // bw)
            for win in {src.block_window(bidx, nrow - 1, ncol - 1), src.block_window(bidx, 0, 0)}:
                src.read(bidx, window=win)
    except RasterioError as exc:
        detail = str(exc.__cause__ or exc).strip()
        raise RasterReadError(
            f"raster {name} could not be read: it looks truncated or corrupt ({detail}); "
            "download or copy it again, or check it with `gdalinfo -checksum`"
        ) from exc


def nearest_rows(n_src: int, n_out: int) -> np.ndarray:
    """Source rows (or columns) GDAL's nearest-neighbour resampling takes for ``n_out`` samples.

    GDAL maps output pixel ``i`` to source pixel ``floor((i + 0.5) * n_src / n_out + 1e-10)``
    (``GDALRasterBand::IRasterIO``, clamped to the raster); :func:`read_decimated` checks
    it gives exactly GDAL's samples (``tests/test_raster_decimated.py``).

    Examples
    --------
    >>> nearest_rows(10, 4).tolist()
    [1, 3, 6, 8]
    """
    i = np.arange(n_out, dtype=np.float64)
    idx = np.floor((i + 0.5) * (n_src / n_out) + 1e-10).astype(np.int64)
    return np.clip(idx, 0, n_src - 1)


#: Long sides (pixels) of the decimated samples the scene-level passes read: the threshold
#: fit (:func:`georeason.models.spectral.fit_thresholds`, 1024) and the class fitness check
#: (:mod:`georeason.models.fitness`, 512). The block check of :func:`check_raster` reads
#: them in its own pass over the file, so a file without overviews is decoded once for
#: all three, not three times. Another size is simply read when asked (same values).
SCENE_SAMPLE_PX = (1024, 512)

#: Samples read ahead by the block check, each handed out once by :func:`read_decimated`:
#: ``(file key, out_shape) -> sample``. Bounded: the samples of the last file only.
_PREFETCHED: dict[tuple[tuple[str, int, int], tuple[int, int, int]], np.ma.MaskedArray] = {}


def decimated_shape(src: DatasetReader, max_px: int) -> tuple[int, int, int]:
    """``(bands, rows, cols)`` of a sample of ``src`` with at most ``max_px`` on the long side.

    The raster is decimated by the integer factor ``ceil(long side / max_px)`` (at least 1).

    Examples
    --------
    >>> class R: count, height, width = 4, 8000, 6000
    >>> decimated_shape(R(), 1024), decimated_shape(R(), 512), decimated_shape(R(), 10**5)
    ((4, 1000, 750), (4, 500, 375), (4, 8000, 6000))
    """
    f = max(1, math.ceil(max(src.height, src.width) / max_px))
    return (src.count, max(1, math.ceil(src.height / f)), max(1, math.ceil(src.width / f)))


def _plain_for_decimation(src: DatasetReader, out_shape: tuple[int, int, int]) -> bool:
    """Whether :func:`_decimate` gives GDAL's nearest samples for ``out_shape`` (see
    :func:`read_decimated`)."""
    from rasterio.enums import MaskFlags

    count, oh, ow = out_shape
    plain = all(
        flags in ([MaskFlags.all_valid], [MaskFlags.nodata]) for flags in src.mask_flag_enums
    ) and not any(src.overviews(b) for b in range(1, src.count + 1))
    plain = plain and all(np.issubdtype(np.dtype(d), np.integer) for d in src.dtypes)
    plain = plain and len(set(src.dtypes)) == 1
    return plain and count == src.count and oh <= src.height and ow <= src.width


@contextmanager
def decoding_threads(src: DatasetReader) -> Iterator[DatasetReader]:
    """``src``'s local GeoTIFF opened again with GDAL decoding the blocks of each read on
    every usable CPU (the GTiff driver's ``NUM_THREADS`` open option: a read that spans
    several compressed blocks decodes them in parallel, the same values); ``src`` itself
    when there is one CPU, another driver, or no local file.

    For the scene-wide passes that run alone, before the grounding workers start: the
    decimated pass over the 8000^2 scene (16 DEFLATE blocks a strip) takes 0.78 s instead
    of 1.42 s on 2 cores, for the same CPU time (benchmarks/RESULTS.md, re-run 9).
    """
    n = usable_cpus()
    if n < 2 or src.driver != "GTiff" or _file_key(src) is None:
        yield src
        return
    try:
        threaded = rasterio.open(_name(src), NUM_THREADS=str(n))
    except RasterioError:
        yield src
        return
    with threaded:
        yield threaded


def _decimate(src: DatasetReader, out_shapes: list[tuple[int, int, int]]) -> list[np.ma.MaskedArray]:
    """Nearest samples of ``src`` at each of ``out_shapes``, in one pass over the file.

    One block row at a time (bounded memory: one strip), only the rows some shape samples,
    at full resolution, its blocks decoded on every CPU (:func:`decoding_threads`); each
    shape takes GDAL's sample rows and columns with numpy.
    """
    with decoding_threads(src) as threaded:
        return _decimate_from(threaded, out_shapes)


def _decimate_from(src: DatasetReader, out_shapes: list[tuple[int, int, int]]) -> list[np.ma.MaskedArray]:
    from rasterio.enums import MaskFlags
    from rasterio.windows import Window

    plans = [(nearest_rows(src.height, oh), nearest_rows(src.width, ow)) for _, oh, ow in out_shapes]
    datas = [np.empty(shape, dtype=src.dtypes[0]) for shape in out_shapes]
    bh = src.block_shapes[0][0] if src.block_shapes else 256
    bh = max(1, min(bh, 1024))
    for r0 in range(0, src.height, bh):
        sels = [np.flatnonzero((rows >= r0) & (rows < r0 + bh)) for rows, _ in plans]
        last = [int(rows[sel[-1]]) for (rows, _), sel in zip(plans, sels) if sel.size]
        if not last:
            continue
        strip = src.read(window=Window(0, r0, src.width, max(last) + 1 - r0))
        for (rows, cols), sel, data in zip(plans, sels, datas):
            if sel.size:
                data[:, sel, :] = strip[:, rows[sel] - r0][:, :, cols]
    out = []
    for data in datas:
        mask = np.zeros(data.shape, bool)
        for b, nd in enumerate(src.nodatavals):
            if nd is not None and src.mask_flag_enums[b] == [MaskFlags.nodata]:
                mask[b] = data[b] == nd
        out.append(np.ma.MaskedArray(data, mask=mask))
    return out


def _prefetch_scene_samples(src: DatasetReader, check_shape: tuple[int, int, int]) -> bool:
    """The block check's read, done as one pass that also keeps the scene samples.

    Reads ``check_shape`` (the check's sample: it touches blocks spread over the whole
    raster) together with the samples of :data:`SCENE_SAMPLE_PX`, keeping the latter for
    :func:`read_decimated`. Only local files that :func:`read_decimated` decimates itself;
    returns ``False`` (nothing read) otherwise.
    """
    key = _file_key(src)
    if key is None:
        return False
    wanted = list(dict.fromkeys(decimated_shape(src, px) for px in SCENE_SAMPLE_PX))
    if not all(_plain_for_decimation(src, s) for s in [*wanted, check_shape]):
        return False
    samples = _decimate(src, [*wanted, check_shape])[:-1]
    _PREFETCHED.clear()  # the last file's samples only
    for out_shape, sample in zip(wanted, samples):
        _PREFETCHED[(key, out_shape)] = sample
    return True


def read_decimated(src: DatasetReader, out_shape: tuple[int, int, int]) -> np.ma.MaskedArray:
    """``src.read(out_shape=out_shape, masked=True, resampling=nearest)``, in bounded time.

    On a compressed file without overviews GDAL's decimated read decodes blocks several
    times (measured 10-20 s for an 8000 x 8000 4-band DEFLATE file whose blocks decode in
    3 s). This reads the rows GDAL would sample, one block row at a time at full resolution
    (bounded memory: one strip), and takes GDAL's sample columns with numpy: the same
    values and mask. Files with overviews (GDAL reads those), masks that are not
    ``value == nodata`` (mask bands, alpha), float or mixed data types and enlargements
    use GDAL's own read. A sample the block check already read in its pass over this file
    (:data:`SCENE_SAMPLE_PX`) is handed out without reading again, once.
    """
    from rasterio.enums import Resampling

    out_shape = (int(out_shape[0]), int(out_shape[1]), int(out_shape[2]))
    key = _file_key(src)
    ahead = _PREFETCHED.pop((key, out_shape), None) if key is not None else None
    if ahead is not None:  # (pop, not test-then-pop: safe when threads read at once)
        return ahead
    if not _plain_for_decimation(src, out_shape):
        return src.read(out_shape=out_shape, masked=True, resampling=Resampling.nearest)
    return _decimate(src, [out_shape])[0]


@contextmanager
def open_raster(path_or_url: str | os.PathLike, *, check_read: bool = True) -> Iterator[DatasetReader]:
    """Open a raster for reading and check it (see :func:`check_raster`).

    Use as a context manager; the dataset is closed on exit.

    Parameters
    ----------
    path_or_url : str or PathLike
        Local path, ``file://`` URL, or GDAL name (``/vsicurl/...``, ``https://...``).
    check_read : bool
        Read a few blocks to detect truncated files (default True).

    Raises
    ------
    RasterReadError
        Missing, unreadable, truncated or corrupt file (the message names it).
    NotGeoreferencedError, RotatedRasterError
        See :func:`check_raster`.
    """
    name = normalize_path(path_or_url)
    if _is_local(name) and not Path(name).exists():
        raise RasterReadError(f"raster {path_or_url} does not exist; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(name)
    except RasterioError as exc:
        raise RasterReadError(
            f"raster {path_or_url} could not be opened ({exc}); it is not a raster GDAL "
            "reads, or it is truncated or corrupt"
        ) from exc
    try:
        check_raster(src, check_read=check_read)
        yield src
    finally:
        src.close()


@contextmanager
def as_dataset(
    src_or_path: DatasetReader | str | os.PathLike[str], *, check_read: bool = True
) -> Iterator[DatasetReader]:
    """Yield a checked dataset: an open one as is (not closed on exit), or open a path."""
    if isinstance(src_or_path, DatasetReader) or hasattr(src_or_path, "read_masks"):
        check_raster(src_or_path, check_read=False)
        yield src_or_path
    else:
        with open_raster(src_or_path, check_read=check_read) as src:
            yield src


_COLORINTERP_NAMES = {
    ColorInterp.red: "red",
    ColorInterp.green: "green",
    ColorInterp.blue: "blue",
    ColorInterp.alpha: "alpha",
    ColorInterp.gray: "gray",
}


def band_names(src: DatasetReader) -> tuple[str, ...]:
    """Band names: the band description, else the colour interpretation, else ``band<i>``.

    Names are lower-cased (``"Red"`` -> ``"red"``).
    """
    names = []
    for i, desc in enumerate(src.descriptions):
        if desc:
            names.append(desc.strip().lower())
            continue
        ci = src.colorinterp[i] if i < len(src.colorinterp) else None
        if ci in _COLORINTERP_NAMES and not (ci == ColorInterp.gray and src.count > 1):
            names.append(_COLORINTERP_NAMES[ci])
        else:
            names.append(f"band{i + 1}")
    return tuple(names)


def pixel_size_m(transform: Affine, crs: Any, col: float = 0.5, row: float = 0.5) -> tuple[float, float]:
    """Width and height on the ground of the pixel at ``(col, row)``, in metres.

    The midpoints of the pixel's sides are taken to lon/lat and their separations
    measured on the WGS84 ellipsoid, for every CRS: so the width of a geographic pixel
    shrinks with the cosine of the latitude, a UTM pixel includes the projection's scale
    factor (within 0.1% of its nominal size) and a Web Mercator pixel is its true size.

    Examples
    --------
    >>> from affine import Affine
    >>> [round(v, 1) for v in pixel_size_m(Affine(10, 0, 500000, 0, -10, 5e6), "EPSG:32633")]
    [10.0, 10.0]
    >>> w, h = pixel_size_m(Affine(1e-4, 0, 15, 0, -1e-4, 60.00005), "EPSG:4326")
    >>> round(w, 2), round(h, 2)
    (5.58, 11.14)
    """
    w, h = pixel_sizes_m(transform, crs, np.array([col], float), np.array([row], float))
    return float(w[0]), float(h[0])


def pixel_sizes_m(
    transform: Affine, crs: Any, cols: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`pixel_size_m`: ground width and height (metres) at many pixels."""
    crs = to_pyproj_crs(crs)
    cols = np.asarray(cols, float)
    rows = np.asarray(rows, float)
    cc = np.concatenate([cols - 0.5, cols + 0.5, cols, cols])
    rr = np.concatenate([rows, rows, rows - 0.5, rows + 0.5])
    xs, ys = apply_transform(transform, cc, rr)
    if crs.is_geographic:
        lon, lat = xs, ys
    else:
        lon, lat = transformer(crs, LONLAT).transform(xs, ys)
    lon = np.asarray(lon).reshape(4, -1)
    lat = np.asarray(lat).reshape(4, -1)
    _, _, w = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, h = _GEOD.inv(lon[2], lat[2], lon[3], lat[3])
    return np.asarray(w, float), np.asarray(h, float)


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a local file, read in ``chunk_size`` chunks (bounded memory).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    >>> os.unlink(f.name)
    """
    h = hashlib.sha256()
    with open(normalize_path(path), "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class RasterInfo:
    """What georeason needs to know about a raster, without reading its pixels.

    ``bounds`` are ``(left, bottom, right, top)`` in the raster CRS whatever the sign of
    the transform's ``e``; ``res`` is ``(|a|, |e|)`` in CRS units and ``res_m`` the pixel
    size in metres at the raster centre; ``footprint_lonlat`` is the raster's outline
    (densified edges, so curved in lon/lat as it should be) in EPSG:4326.
    """

    path: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    band_names: tuple[str, ...]
    descriptions: tuple[str | None, ...]
    bounds: tuple[float, float, float, float]
    footprint_lonlat: Polygon
    res: tuple[float, float]
    res_m: tuple[float, float]
    block_shape: tuple[int, int]
    sha256: str | None = None


def apply_transform(transform: Affine, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of pixel ``(col, row)`` arrays under an affine transform (``transform @``).

    Examples
    --------
    >>> apply_transform(Affine(10, 0, 500, 0, -10, 900), np.array([0.0, 2.0]), np.array([0.0, 1.0]))
    (array([500., 520.]), array([900., 890.]))
    """
    xs, ys = transform @ (cols, rows)  # type: ignore[operator]  # affine's stubs say floats; arrays work
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _footprint_lonlat(transform: Affine, crs: CRS, width: int, height: int, n: int = 32) -> Polygon:
    t = np.linspace(0.0, 1.0, n + 1)[:-1]
    cols = np.concatenate([t * width, np.full(n, width), (1 - t) * width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * height, np.full(n, height), (1 - t) * height])
    xs, ys = apply_transform(transform, cols, rows)
    ring = list(zip(np.asarray(xs).tolist(), np.asarray(ys).tolist()))
    ring.append(ring[0])
    geom = {"type": "Polygon", "coordinates": [ring]}
    out = shape(transform_geom(crs.to_wkt(), "EPSG:4326", geom))
    return out.buffer(0) if not out.is_valid else out


def raster_info(path_or_url: str | os.PathLike, *, checksum: bool = False) -> RasterInfo:
    """Describe a raster (metadata only; ``checksum=True`` also hashes a local file).

    Raises the errors of :func:`open_raster`.
    """
    name = normalize_path(path_or_url)
    with open_raster(name) as src:
        crs = to_pyproj_crs(src.crs)
        t = src.transform
        corners_x, corners_y = t @ (
            np.array([0, src.width, 0, src.width]),
            np.array([0, 0, src.height, src.height]),
        )
        bounds = (float(min(corners_x)), float(min(corners_y)), float(max(corners_x)), float(max(corners_y)))
        info = RasterInfo(
            path=name,
            crs=crs,
            transform=t,
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=src.dtypes[0],
            nodata=src.nodata,
            band_names=band_names(src),
            descriptions=tuple(src.descriptions),
            bounds=bounds,
            footprint_lonlat=_footprint_lonlat(t, crs, src.width, src.height),
            res=(abs(t.a), abs(t.e)),
            res_m=pixel_size_m(t, crs, src.width / 2, src.height / 2),
            block_shape=tuple(src.block_shapes[0]),
            sha256=file_sha256(name) if checksum and _is_local(name) else None,
        )
    return info
