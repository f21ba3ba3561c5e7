"""The scene catalog: a self-contained STAC catalog of georeferenced rasters (and vectors).

Layout (pystac's default for a ``SELF_CONTAINED`` catalog)::

    DIR/catalog.json                 the root catalog (links to items, relative hrefs)
    DIR/<item id>/<item id>.json     one STAC item per scene
    DIR/<item id>/<raster>.tif       the raster asset (key ``image``, role ``data``)
    DIR/<item id>/<vectors>.geojson  optional vector assets (key ``vector-<stem>``,
                                     roles ``vector`` and ``labels``)

Every href is relative, so the catalog folder can be moved or copied as a whole.

Each item records, for its raster:

* the footprint in EPSG:4326 (item ``geometry``, densified edges, and ``bbox``);
* the CRS with the projection extension v2: ``proj:code`` (``"EPSG:32618"``) or, for a CRS
  without an authority code, ``proj:code: null`` and ``proj:wkt2``; ``proj:transform`` (the
  six GDAL/affine coefficients ``a, b, c, d, e, f``) and ``proj:shape`` (``[rows, cols]``);
* the resolution: ``gsd`` (the pixel size of ``proj:transform``, mean of width and height,
  when the CRS is in metres; else metres measured at the raster centre) and
  ``georeason:pixel_size_m`` (``[width, height]`` in ground metres at the raster centre);
* the bands in STAC 1.1 ``bands`` on the asset: ``name``, ``eo:common_name`` (EO extension
  v2.0), ``data_type``, ``nodata`` and ``raster:spatial_resolution`` (raster extension v2.0);
* the checksum in ``file:checksum`` (file extension v2.1): a SHA-256 *multihash*, i.e. the
  hex digest prefixed with ``1220`` (0x12 = sha2-256, 0x20 = 32 bytes), and ``file:size``;
  vector assets carry the same two fields.

``datetime`` is the acquisition time from the raster's metadata when it has one (GDAL's
``IMAGERY`` domain, keys such as ``DATE_ACQUIRED``; else the TIFF ``DateTime`` tag), else
the one passed to :func:`add_item` (``catalog add --datetime``), else the time the item was
added; ``georeason:datetime_source`` says which (``"metadata:<KEY>"``, ``"tiff"``,
``"given"``, ``"added"``), and an added time is also titled so in the item (``title``), so
that nobody takes it for an acquisition time.

Adding a scene (:func:`add_item`) validates everything first (raster georeferencing and
readability, vector readability and CRS, the item id, file name clashes) and only then
writes: files are copied to a temporary name in the destination folder and renamed into
place (``os.replace``), the item JSON next, and ``catalog.json`` last. A refused add leaves
the catalog folder byte-for-byte unchanged. Files from outside the catalog folder are
copied into ``DIR/<item id>/`` (the catalog stays self-contained and relocatable); files
already inside the catalog folder are referenced where they are. Replacing an item
(``replace=True``) rewrites its JSON and copies its new files; files of the old item that
are no longer referenced are left on disk (never deleted).

:func:`validate_catalog` does structural checks, then validates every item and catalog
against the JSON schemas shipped in ``data_catalog/schemas`` (STAC core and the extensions
used; see :mod:`georeason.stac_schemas`), offline.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from georeason.errors import (
    CatalogError,
    GeoreasonError,
    MissingCRSError,
    VectorReadError,
)

__all__ = [
    "ItemInfo",
    "default_catalog_dir",
    "load_catalog",
    "add_item",
    "list_items",
    "get_item",
    "validate_catalog",
    "sha256_multihash",
    "RASTER_ASSET_KEY",
    "AssetPolicy",
    "ConfinedStacIO",
    "add_truth_asset",
]

#: Key of the raster asset in every item.
RASTER_ASSET_KEY = "image"
#: Prefix of vector asset keys (``vector-<file stem>``).
VECTOR_ASSET_PREFIX = "vector-"
CATALOG_FILE = "catalog.json"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MULTIHASH_SHA256 = "1220"

_RASTER_MEDIA = {
    "GTiff": pystac.MediaType.GEOTIFF,
    "COG": pystac.MediaType.COG,
    "JP2OpenJPEG": pystac.MediaType.JPEG2000,
    "PNG": pystac.MediaType.PNG,
    "JPEG": pystac.MediaType.JPEG,
}
_EO_COMMON_NAMES = frozenset(
    "coastal blue green red yellow pan rededge nir nir08 nir09 cirrus swir16 swir22 lwir lwir11 lwir12".split()
)
_VECTOR_MEDIA = {
    ".geojson": pystac.MediaType.GEOJSON,
    ".json": pystac.MediaType.GEOJSON,
    ".gpkg": pystac.MediaType.GEOPACKAGE,
    ".parquet": pystac.MediaType.PARQUET,
    ".geoparquet": pystac.MediaType.PARQUET,
    ".fgb": "application/vnd.flatgeobuf",
}


# --------------------------------------------------------------------------- helpers


def default_catalog_dir() -> Path:
    """The catalog shipped with georeason (the ``data_catalog/`` folder of the repository)."""
    import georeason.data_catalog

    return Path(georeason.data_catalog.__file__).resolve().parent


def sha256_multihash(hex_digest: str) -> str:
    """The ``file:checksum`` multihash of a hex SHA-256 digest.

    Examples
    --------
    >>> sha256_multihash("ab" * 32)[:8]
    '1220abab'
    """
    return _MULTIHASH_SHA256 + hex_digest.lower()


def _hex_from_multihash(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(_MULTIHASH_SHA256) and len(value) == 68:
        return value[4:].lower()
    return None


def _sha256(path: Path) -> str:
    from georeason.geo.raster.io import file_sha256

    return file_sha256(path)


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _file_mode() -> int:
    """rw for everyone the umask allows (mkstemp creates 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUM_ARRAY = re.compile(r"\[\s*(?:" + _NUM + r"|null)(?:\s*,\s*(?:" + _NUM + r"|null))*\s*\]")


def _json_bytes(d: dict) -> bytes:
    """Indented JSON with arrays of plain numbers on one line (coordinates stay readable)."""
    text = json.dumps(d, indent=2, ensure_ascii=False)
    text = _NUM_ARRAY.sub(
        lambda m: "[" + ", ".join(x.strip() for x in m.group(0)[1:-1].split(",")) + "]", text
    )
    return (text + "\n").encode("utf-8")


def _round_coords(geom: dict, ndigits: int = 7) -> dict:
    def r(c):
        if isinstance(c, (list, tuple)):
            return [r(x) for x in c]
        return round(float(c), ndigits)

    return {"type": geom["type"], "coordinates": r(geom["coordinates"])}


def _crs_fields(crs) -> dict[str, Any]:
    """Projection extension v2 fields for a pyproj CRS."""
    auth = crs.to_authority(min_confidence=90)
    if auth is not None:
        return {"proj:code": f"{auth[0]}:{auth[1]}"}
    return {"proj:code": None, "proj:wkt2": crs.to_wkt()}


def _crs_label(props: dict) -> str:
    code = props.get("proj:code")
    if code:
        return str(code)
    if props.get("proj:epsg"):
        return f"EPSG:{props['proj:epsg']}"
    wkt = props.get("proj:wkt2")
    if wkt:
        try:
            from pyproj import CRS

            return CRS.from_wkt(wkt).name
        except Exception:  # noqa: BLE001 - a label only
            return "WKT2"
    return "?"


def _crs_from_props(props: dict):
    from pyproj import CRS

    if props.get("proj:code"):
        return CRS.from_user_input(props["proj:code"])
    if props.get("proj:epsg"):
        return CRS.from_epsg(int(props["proj:epsg"]))
    if props.get("proj:wkt2"):
        return CRS.from_wkt(props["proj:wkt2"])
    if props.get("proj:projjson"):
        return CRS.from_json_dict(props["proj:projjson"])
    return None


#: Metadata items that hold an acquisition time, in the order they are trusted: GDAL's
#: IMAGERY domain (filled by its readers of satellite metadata), then common keys in the
#: default domain (Landsat MTL ``DATE_ACQUIRED``, ``ACQUISITION_DATE``, ...). The TIFF
#: ``DateTime`` tag comes last: it is when the file was made, often but not always the
#: acquisition, and is labelled ``tiff`` so that a reader can tell.
_ACQUISITION_KEYS = (
    ("IMAGERY", "ACQUISITIONDATETIME"),
    ("", "ACQUISITION_DATETIME"),
    ("", "ACQUISITIONDATETIME"),
    ("", "DATETIME_ACQUIRED"),
    ("", "ACQUISITION_DATE"),
    ("", "DATE_ACQUIRED"),
    ("", "SENSING_TIME"),
    ("", "IMAGE_DATE"),
)


def _parse_when(text: str) -> _dt.datetime | None:
    t = text.strip().replace("Z", "+00:00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y%m%d"):
        try:
            return _dt.datetime.strptime(t[: len(_dt.datetime(2000, 1, 1).strftime(fmt))], fmt).replace(
                tzinfo=_dt.UTC
            )
        except ValueError:
            continue
    try:
        when = _dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def _raster_datetime(path: Path) -> tuple[_dt.datetime, str] | None:
    """(acquisition time, source) from the raster's metadata, else ``None``.

    ``source`` is ``"metadata:<KEY>"`` for an acquisition key (see ``_ACQUISITION_KEYS``) or
    ``"tiff"`` for the TIFF ``DateTime`` tag.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            domains = {"": src.tags()}
            if "IMAGERY" in (src.tag_namespaces() or []):
                domains["IMAGERY"] = src.tags(ns="IMAGERY")
    except Exception:  # noqa: BLE001 - optional metadata
        return None
    for ns, key in _ACQUISITION_KEYS:
        value = domains.get(ns, {}).get(key)
        if value and (when := _parse_when(value)) is not None:
            return when, f"metadata:{key}"
    tag = domains[""].get("TIFFTAG_DATETIME")
    if tag and (when := _parse_when(tag)) is not None:
        return when, "tiff"
    return None


def _tiff_datetime(path: Path) -> _dt.datetime | None:
    found = _raster_datetime(path)
    return found[0] if found else None


def _default_id(raster: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", raster.stem).strip("-._")
    return stem or "item"


# --------------------------------------------------------------------------- confinement

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
ALLOW_EXTERNAL_ENV = "GEOREASON_ALLOW_EXTERNAL_ASSETS"
ASSET_ROOTS_ENV = "GEOREASON_ASSET_ROOTS"


@dataclass(frozen=True)
class AssetPolicy:
    """Where a catalog's content may point.

    By default every STAC link and asset href must resolve, symlinks followed, inside the
    catalog folder or one of ``roots`` (folders the user names). ``allow_external=True``
    (``--allow-external``) also accepts absolute paths and symlinks that lead elsewhere on
    the local disk. URLs (``http://``, ``s3://``, ...) are always refused: nothing in a
    catalog can make georeason open a network connection.
    """

    roots: tuple[Path, ...] = ()
    allow_external: bool = False

    @classmethod
    def from_env(cls) -> AssetPolicy:
        """The policy the CLI sets for flows: ``$GEOREASON_ALLOW_EXTERNAL_ASSETS=1`` and
        ``$GEOREASON_ASSET_ROOTS`` (folders separated by ``os.pathsep``)."""
        roots = tuple(Path(r) for r in os.environ.get(ASSET_ROOTS_ENV, "").split(os.pathsep) if r)
        allow = os.environ.get(ALLOW_EXTERNAL_ENV, "").strip().lower() in ("1", "true", "yes")
        return cls(roots, allow)


def _is_url(href: str) -> bool:
    return bool(_URL_RE.match(href)) and not href.lower().startswith("file://")


def confine_href(
    href: str,
    base: Path | None,
    catalog_root: Path,
    policy: AssetPolicy,
    what: str,
    absolute_ok: bool = False,
) -> Path:
    """The local file an href names, if the policy lets the catalog point there.

    ``base`` is the folder relative hrefs start from (the JSON file's folder). Raises
    :class:`CatalogError` naming the href for a URL, for an absolute path or ``..`` or
    symlink leading outside the catalog root (and the user's roots) unless
    ``policy.allow_external``. ``absolute_ok``: an absolute path is judged only by where it
    leads (pystac hands links to :class:`ConfinedStacIO` already made absolute).

    Examples
    --------
    >>> confine_href("a/b.tif", Path("/c"), Path("/c"), AssetPolicy(), "asset").as_posix()
    '/c/a/b.tif'
    """
    if _is_url(href):
        raise CatalogError(
            f"{what} href {href!r} is a URL; georeason never fetches catalog content over the network "
            "(download the file and reference it by a relative path)"
        )
    raw = href[7:] if href.lower().startswith("file://") else href
    absolute = os.path.isabs(raw) or bool(re.match(r"^[A-Za-z]:[\\/]", raw))
    if absolute and not policy.allow_external and not absolute_ok:
        raise CatalogError(
            f"{what} href {href!r} is an absolute path; catalogs may only point inside their folder "
            f"{str(catalog_root)!r} (pass --allow-external to trust it)"
        )
    path = Path(raw) if absolute or base is None else base / raw
    real = Path(os.path.realpath(path))
    if policy.allow_external:
        return real
    for root in (catalog_root, *policy.roots):
        if _is_inside(real, root):
            return real
    raise CatalogError(
        f"{what} href {href!r} resolves to {str(real)!r}, outside the catalog folder {str(catalog_root)!r} "
        "(a '..' path or a symlink); pass --asset-root DIR to allow that folder, or --allow-external"
    )


class ConfinedStacIO(pystac.stac_io.DefaultStacIO):
    """pystac I/O that reads only local JSON inside the catalog (see :class:`AssetPolicy`).

    pystac resolves links lazily (``get_items`` reads each item's href through the root's
    ``StacIO``); with this class, a link to ``http://...`` or outside the catalog raises
    :class:`CatalogError` instead of being fetched. Writing is not supported.
    """

    def __init__(self, catalog_root: Path, policy: AssetPolicy) -> None:
        super().__init__()
        self.catalog_root = Path(os.path.realpath(catalog_root))
        self.policy = policy

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(os.fspath(source))
        path = confine_href(href, None, self.catalog_root, self.policy, "catalog link", absolute_ok=True)
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"catalog file {str(path)!r} is not readable ({exc})") from exc

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        raise CatalogError("ConfinedStacIO is read-only; georeason writes catalogs with add_item")


def _catalog_error_in(exc: BaseException) -> CatalogError | None:
    """The :class:`CatalogError` that pystac wrapped (``STACError`` ... ``from``), if any."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, CatalogError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ItemInfo:
    """One catalog item, as :func:`list_items` reports it.

    ``raster_path`` and ``vector_paths`` are absolute (resolved against the item's JSON, so
    they follow the catalog wherever it is). ``crs`` is ``"EPSG:xxxx"`` (or the CRS name
    when it has no code); ``footprint`` is the item geometry in EPSG:4326; ``sha256`` the
    recorded hex digest of the raster; ``gsd`` the pixel size in metres; ``shape`` is
    ``(rows, cols)``.
    """

    id: str
    raster_path: Path
    vector_paths: list[Path]
    crs: str
    bands: list[str]
    sha256: str | None
    footprint: BaseGeometry
    bbox: tuple[float, ...] | None
    shape: tuple[int, int] | None = None
    gsd: float | None = None
    size_bytes: int | None = None
    datetime: str | None = None
    item_path: Path | None = None
    vector_sha256: list[str | None] = field(default_factory=list)
    #: Ground-truth layers (assets with role ``truth``): what ``georeason eval`` scores against.
    #: They are not read as objects when questions are answered.
    truth_paths: list[Path] = field(default_factory=list)

    def raster_inputs(self) -> dict[str, Any]:
        """The keyword arguments a :class:`~georeason.pipeline.Pipeline` grounds this item's
        raster with (``raster``, ``item``, ``raster_sha256``, ``item_bands``), the same for
        planning it ahead (``plan_item``) and answering it (``run_iter``)."""
        return {
            "raster": str(self.raster_path),
            "item": self.id,
            "raster_sha256": self.sha256,
            "item_bands": self.bands,
        }

    def vector_sources(self, objects: Sequence[str | os.PathLike] = ()) -> list[str]:
        """The vector layers whose objects questions about this item read: its own, then
        ``objects`` (a run's ``--objects``)."""
        return [str(p) for p in self.vector_paths] + [str(p) for p in objects]


# --------------------------------------------------------------------------- loading


def _catalog_file(catalog_dir: str | os.PathLike) -> Path:
    p = Path(catalog_dir)
    return p if p.name == CATALOG_FILE and p.is_file() else p / CATALOG_FILE


def load_catalog(catalog_dir: str | os.PathLike, policy: AssetPolicy | None = None) -> pystac.Catalog:
    """Open the STAC catalog in ``catalog_dir`` (a folder holding ``catalog.json``).

    Links are resolved through :class:`ConfinedStacIO`: only local files inside the
    catalog folder (or the policy's roots) are ever read, never a URL.

    Raises
    ------
    CatalogError
        No ``catalog.json`` there, or it is not a readable STAC catalog.
    """
    path = _catalog_file(catalog_dir)
    if not path.is_file():
        raise CatalogError(
            f"no STAC catalog at {str(Path(catalog_dir))!r} ({CATALOG_FILE} not found); "
            "create one with `georeason catalog add RASTER --catalog DIR` or check --catalog"
        )
    policy = policy if policy is not None else AssetPolicy.from_env()
    try:
        cat = pystac.Catalog.from_file(
            str(path.absolute()), stac_io=ConfinedStacIO(path.absolute().parent, policy)
        )
    except Exception as exc:  # noqa: BLE001 - pystac/json raise many types
        inner = _catalog_error_in(exc)
        if inner is not None:
            raise inner from exc
        msg = " ".join(str(exc).split())
        raise CatalogError(
            f"catalog {str(path)!r} is not a readable STAC catalog ({msg}); fix or remove it"
        ) from exc
    return cat


def _asset_path(item: pystac.Item, asset: pystac.Asset, root: Path, policy: AssetPolicy) -> Path:
    self_href = item.get_self_href()
    base = Path(self_href).parent if self_href and not _is_url(self_href) else root
    return confine_href(asset.href, base, root, policy, f"item {item.id!r} asset")


def _item_info(item: pystac.Item, root: Path | None = None, policy: AssetPolicy | None = None) -> ItemInfo:
    props = item.properties
    policy = policy if policy is not None else AssetPolicy.from_env()
    if root is None:
        cat_root = item.get_root()
        href = cat_root.get_self_href() if cat_root is not None else item.get_self_href()
        root = Path(href).parent if href else Path.cwd()
    root = Path(os.path.realpath(root))
    if not isinstance(item.id, str) or not _ID_RE.match(item.id) or item.id in (".", "..", "catalog"):
        raise CatalogError(
            f"catalog item id {item.id!r} is not a plain name (letters, digits, '_', '-', '.'); "
            "it would name a folder outside the output folder; fix the item's 'id'"
        )
    raster_asset = item.assets.get(RASTER_ASSET_KEY)
    if raster_asset is None:
        data = [a for a in item.assets.values() if a.has_role("data")]
        if not data:
            raise CatalogError(f"item {item.id!r} has no raster asset ({RASTER_ASSET_KEY!r} or role 'data')")
        raster_asset = data[0]
    raster_path = _asset_path(item, raster_asset, root, policy)
    vectors = [
        a
        for k, a in item.assets.items()
        if a is not raster_asset
        and (a.has_role("vector") or a.has_role("labels"))
        and not a.has_role("truth")
    ]
    bands = [
        b.get("name", f"band{i + 1}")
        for i, b in enumerate(
            raster_asset.extra_fields.get("eo:bands") or raster_asset.extra_fields.get("bands") or []
        )
    ]
    shp = props.get("proj:shape")
    return ItemInfo(
        id=item.id,
        raster_path=raster_path,
        vector_paths=[_asset_path(item, a, root, policy) for a in vectors],
        crs=_crs_label(props),
        bands=bands,
        sha256=_hex_from_multihash(raster_asset.extra_fields.get("file:checksum")),
        footprint=shape(item.geometry) if item.geometry else None,
        bbox=tuple(item.bbox) if item.bbox else None,
        shape=tuple(shp) if shp else None,
        gsd=props.get("gsd"),
        size_bytes=raster_asset.extra_fields.get("file:size"),
        datetime=props.get("datetime") or props.get("start_datetime"),
        item_path=Path(str(item.get_self_href())) if item.get_self_href() else None,
        vector_sha256=[_hex_from_multihash(a.extra_fields.get("file:checksum")) for a in vectors],
        truth_paths=[
            Path(a.get_absolute_href() or a.href) for a in item.assets.values() if a.has_role("truth")
        ],
    )


def list_items(
    catalog_dir: str | os.PathLike | None = None,
    policy: AssetPolicy | None = None,
    advance: Callable[..., None] | None = None,
) -> list[ItemInfo]:
    """The items of the catalog (default: the shipped one), sorted by id.

    ``advance(n=1, total=None)`` (optional, e.g. a :func:`georeason.progress.task`) is told
    the item count once the links are read and then called once per item described.

    Every link and asset href is confined (see :class:`AssetPolicy`, default
    :meth:`AssetPolicy.from_env`); an item id that is not a plain folder name, a URL, or
    a path leading outside the catalog raises :class:`CatalogError` naming it.
    """
    catalog_dir = catalog_dir or default_catalog_dir()
    policy = policy if policy is not None else AssetPolicy.from_env()
    cat = load_catalog(catalog_dir, policy)
    root = Path(os.path.realpath(_catalog_file(catalog_dir).absolute().parent))
    try:
        items = list(cat.get_items(recursive=True))
    except Exception as exc:  # noqa: BLE001
        inner = _catalog_error_in(exc)
        if inner is not None:
            raise CatalogError(f"catalog {str(catalog_dir)!r}: {inner}") from exc
        msg = " ".join(str(exc).split())
        raise CatalogError(
            f"catalog {str(catalog_dir)!r} has an unreadable item ({msg}); run `georeason catalog validate`"
        ) from exc
    tick = advance if advance is not None else (lambda n=1, total=None: None)
    tick(0, total=len(items))
    infos = []
    for it in items:
        infos.append(_item_info(it, root, policy))
        tick(1)
    infos.sort(key=lambda i: i.id)
    seen: set[str] = set()
    for i in infos:
        if i.id in seen:
            raise CatalogError(f"catalog {str(catalog_dir)!r} has two items with id {i.id!r}; rename one")
        seen.add(i.id)
    return infos


def get_item(
    item_id: str, catalog_dir: str | os.PathLike | None = None, policy: AssetPolicy | None = None
) -> ItemInfo:
    """One item by id (``CatalogError`` naming the known ids if absent)."""
    items = list_items(catalog_dir, policy)
    for it in items:
        if it.id == item_id:
            return it
    raise CatalogError(
        f"no item {item_id!r} in catalog {str(catalog_dir or default_catalog_dir())!r}; "
        f"known items: {', '.join(i.id for i in items) or '(none)'}"
    )


# --------------------------------------------------------------------------- adding


@dataclass
class _Placement:
    src: Path  # absolute source file
    dest: Path  # absolute final location inside the catalog
    copy: bool  # False: already inside the catalog, referenced in place
    sha256: str
    size: int


def _check_vector(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise VectorReadError(f"vector file {str(path)!r} does not exist; check the --vectors path")
    ext = path.suffix.lower()
    if ext == ".shp":
        raise CatalogError(
            f"vector file {str(path)!r} is a shapefile (several files); convert it first, e.g. "
            f"`ogr2ogr -f GPKG {path.with_suffix('.gpkg').name} {path.name}`"
        )
    if ext not in _VECTOR_MEDIA:
        raise CatalogError(
            f"vector file {str(path)!r} has an unsupported extension {ext!r}; give GeoJSON, GeoPackage, "
            "GeoParquet or FlatGeobuf"
        )
    try:
        import pyogrio

        info = pyogrio.read_info(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio raises many types; name the file
        msg = " ".join(str(exc).split())
        raise VectorReadError(
            f"vector file {str(path)!r} could not be read ({msg}); give a valid GeoJSON/GeoPackage/GeoParquet file"
        ) from exc
    if not info.get("crs"):
        raise MissingCRSError(
            f"vector file {str(path)!r} has no CRS; assign one first, e.g. `ogr2ogr -a_srs EPSG:XXXX out.gpkg {path.name}`"
        )
    return info


def _plan(src: Path, catalog_dir: Path, item_dir: Path, replace: bool) -> _Placement:
    src = src.resolve()
    if _is_inside(src, catalog_dir):
        return _Placement(src, src, False, _sha256(src), src.stat().st_size)
    dest = item_dir / src.name
    digest = _sha256(src)
    if dest.exists() and not replace:
        if dest.is_file() and _sha256(dest) == digest:
            return _Placement(src, dest, False, digest, src.stat().st_size)
        raise CatalogError(
            f"cannot copy {str(src)!r}: {str(dest)!r} already exists in the catalog with other content; "
            "remove it, rename the input, or pass --replace"
        )
    return _Placement(src, dest, True, digest, src.stat().st_size)


def add_item(
    catalog_dir: str | os.PathLike | None,
    raster: str | os.PathLike,
    vectors: Iterable[str | os.PathLike] | None = None,
    item_id: str | None = None,
    replace: bool = False,
    datetime: _dt.datetime | str | None = None,
    bands: str | list[str] | None = None,
) -> pystac.Item:
    """Add a georeferenced raster (and optional vector layers) to the catalog.

    Parameters
    ----------
    catalog_dir : path or None
        Folder of the catalog (``None``: the shipped one). Created, with a new
        ``catalog.json``, if it does not hold one yet.
    raster : path
        A local raster GDAL reads (GeoTIFF, COG, ...) with a CRS and a real geotransform.
    vectors : paths, optional
        Vector layers of the same scene (GeoJSON, GeoPackage, GeoParquet, FlatGeobuf).
    item_id : str, optional
        Default: the raster's file stem.
    replace : bool
        Overwrite an existing item of the same id (else ``CatalogError``).
    datetime : datetime or ISO string, optional
        Acquisition time when the file carries none (TIFF ``DATETIME`` tag wins).
    bands : "red,green,blue" or list, optional
        Band names in order, recorded as ``eo:bands`` instead of the file's own (for files
        without band descriptions); one name per band.

    Returns
    -------
    pystac.Item
        The written item (its self href is its JSON file in the catalog).

    Raises
    ------
    NotGeoreferencedError
        No CRS, or an identity (pixel) transform.
    RasterReadError
        Missing, unreadable, truncated or corrupt raster.
    RotatedRasterError
        Rotated/sheared geotransform.
    VectorReadError, MissingCRSError
        A vector file is unreadable or has no CRS.
    CatalogError
        Bad id, id exists (without ``replace``), file clash, or a broken catalog.

    Nothing is written unless every check passes.
    """
    from georeason.geo.raster.io import raster_info

    catalog_dir = Path(catalog_dir) if catalog_dir is not None else default_catalog_dir()
    catalog_dir = catalog_dir.absolute()
    raster = Path(raster)
    vector_files = [Path(v) for v in (vectors or [])]

    # ---- validate everything (no writes) ------------------------------------------------
    if catalog_dir.exists() and not catalog_dir.is_dir():
        raise CatalogError(
            f"catalog path {str(catalog_dir)!r} is a file, not a folder; give a folder for --catalog"
        )
    cat_file = catalog_dir / CATALOG_FILE
    if cat_file.exists():
        cat = load_catalog(catalog_dir)
    else:
        cat = None

    if not raster.is_file():
        from georeason.errors import RasterReadError

        raise RasterReadError(f"raster {str(raster)!r} does not exist or is not a file; check the path")
    info = raster_info(raster)  # raises NotGeoreferenced/RasterRead/Rotated errors naming the file
    if bands is not None:
        import dataclasses

        from georeason.models.fitness import parse_bands

        names = parse_bands(bands, len(info.band_names), where=f"--bands for {str(raster)!r}")
        info = dataclasses.replace(info, band_names=tuple(names or ()))

    item_id = item_id if item_id is not None else _default_id(raster)
    if not _ID_RE.match(item_id) or item_id in (".", "..") or item_id == "catalog":
        raise CatalogError(
            f"item id {item_id!r} is not usable as a folder name; use letters, digits, '_', '-', '.' "
            "(pass --id to choose one)"
        )
    existing = None
    if cat is not None:
        try:
            for it in cat.get_items(recursive=False):
                if it.id == item_id:
                    existing = it
                    break
        except Exception as exc:  # noqa: BLE001
            msg = " ".join(str(exc).split())
            raise CatalogError(
                f"catalog {str(cat_file)!r} links to an unreadable item ({msg}); run `georeason catalog validate`"
            ) from exc
    if existing is not None and not replace:
        raise CatalogError(
            f"item {item_id!r} already exists in catalog {str(catalog_dir)!r} (adding {str(raster)!r}); "
            "pass --replace to overwrite it, or --id to choose another id"
        )

    vector_infos = [_check_vector(v) for v in vector_files]

    item_dir = catalog_dir / item_id
    item_file = item_dir / f"{item_id}.json"
    if item_dir.exists() and not item_dir.is_dir():
        raise CatalogError(f"{str(item_dir)!r} exists and is not a folder; remove it or choose another --id")
    placements = [_plan(raster, catalog_dir, item_dir, replace)]
    placements += [_plan(v, catalog_dir, item_dir, replace) for v in vector_files]
    dests = [p.dest for p in placements]
    if len(set(dests)) != len(dests):
        raise CatalogError(
            "two input files would land on the same name in the catalog "
            f"({', '.join(sorted({d.name for d in dests if dests.count(d) > 1}))}); rename one"
        )
    if any(d == item_file for d in dests):
        raise CatalogError(f"an input file is named {item_file.name!r}, the item's own JSON; rename it")
    keys = [VECTOR_ASSET_PREFIX + re.sub(r"[^A-Za-z0-9_.-]+", "-", v.stem) for v in vector_files]
    if len(set(keys)) != len(keys):
        raise CatalogError("two vector files have the same name stem; rename one so each asset key is unique")

    # ---- datetime -------------------------------------------------------------------------
    found = _raster_datetime(raster)
    when, source = found if found else (None, "")
    if when is None and datetime is not None:
        source = "given"
        if isinstance(datetime, str):
            try:
                when = _dt.datetime.fromisoformat(datetime.replace("Z", "+00:00"))
            except ValueError as exc:
                raise CatalogError(
                    f"datetime {datetime!r} is not ISO 8601; give e.g. 2021-06-01T10:30:00Z"
                ) from exc
        else:
            when = datetime
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
    if when is None:
        source = "added"
        when = _dt.datetime.now(_dt.UTC).replace(microsecond=0)

    # ---- build the item (in memory) -------------------------------------------------------
    item = _build_item(item_id, info, placements, vector_files, vector_infos, keys, when, source)
    if cat is None:
        cat = pystac.Catalog(
            id=catalog_dir.name or "catalog",
            description="georeason scenes: georeferenced rasters and their vector layers",
            title="georeason catalog",
            catalog_type=pystac.CatalogType.SELF_CONTAINED,
        )
        cat.set_self_href(str(cat_file))
    cat.catalog_type = pystac.CatalogType.SELF_CONTAINED
    if existing is not None:
        cat.remove_item(existing.id)
    cat.add_item(item)
    item.set_self_href(str(item_file))
    item.make_asset_hrefs_relative()
    item_bytes = _json_bytes(item.to_dict(include_self_link=False, transform_hrefs=True))
    cat_bytes = _json_bytes(cat.to_dict(include_self_link=False, transform_hrefs=True))

    # ---- write: assets, item JSON, catalog.json last ---------------------------------------
    created: list[Path] = []
    made_dirs: list[Path] = []
    try:
        for d in (catalog_dir, item_dir):
            if not d.exists():
                d.mkdir(parents=True)
                made_dirs.append(d)
        for p in placements:
            if p.copy:
                is_new = not p.dest.exists()
                _atomic_copy(p.src, p.dest)
                if is_new:
                    created.append(p.dest)
                if _sha256(p.dest) != p.sha256:
                    raise CatalogError(
                        f"copy of {str(p.src)!r} to {str(p.dest)!r} does not match its checksum; retry"
                    )
        is_new = not item_file.exists()
        _atomic_write_bytes(item_file, item_bytes)
        if is_new:
            created.append(item_file)
        _atomic_write_bytes(cat_file, cat_bytes)
    except BaseException:
        for f in reversed(created):
            f.unlink(missing_ok=True)
        for d in reversed(made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    return item


def _build_item(item_id, info, placements, vectors, vector_infos, keys, when, source) -> pystac.Item:
    fp = info.footprint_lonlat
    geom = _round_coords(mapping(fp))
    bbox = [round(v, 7) for v in fp.bounds]
    t = info.transform
    w_m, h_m = info.res_m
    props: dict[str, Any] = {
        "gsd": _gsd(info),
        "georeason:pixel_size_m": [round(w_m, 4), round(h_m, 4)],
        "georeason:datetime_source": source,
        **({"title": f"{item_id} (datetime: time added, acquisition unknown)"} if source == "added" else {}),
        **_crs_fields(info.crs),
        "proj:shape": [info.height, info.width],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
    }
    item = pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=bbox,
        datetime=when,
        properties=props,
        stac_extensions=[
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ],
    )
    rp = placements[0]
    driver = _raster_driver(rp.dest if not rp.copy else rp.src)
    bands = []
    for name in info.band_names:
        b: dict[str, Any] = {"name": name}
        if name in _EO_COMMON_NAMES:
            b["eo:common_name"] = name
        b["data_type"] = info.dtype
        if info.nodata is not None:
            b["nodata"] = _json_number(info.nodata)
        b["raster:spatial_resolution"] = props["gsd"]
        bands.append(b)
    item.add_asset(
        RASTER_ASSET_KEY,
        pystac.Asset(
            href=str(rp.dest),
            media_type=_RASTER_MEDIA.get(driver or "", None),
            roles=["data"],
            title=rp.src.name,
            extra_fields={
                "bands": bands,
                "file:checksum": sha256_multihash(rp.sha256),
                "file:size": rp.size,
            },
        ),
    )
    for key, vp, vinfo, placement in zip(keys, vectors, vector_infos, placements[1:]):
        extra: dict[str, Any] = {
            "file:checksum": sha256_multihash(placement.sha256),
            "file:size": placement.size,
            "georeason:feature_count": int(vinfo.get("features", -1)),
        }
        try:
            from pyproj import CRS

            extra.update(_crs_fields(CRS.from_user_input(vinfo["crs"])))
        except Exception:  # noqa: BLE001 - metadata only
            pass
        if vinfo.get("geometry_type"):
            extra["georeason:geometry_type"] = vinfo["geometry_type"]
        item.add_asset(
            key,
            pystac.Asset(
                href=str(placement.dest),
                media_type=_VECTOR_MEDIA[vp.suffix.lower()],
                roles=["vector", "labels"],
                title=vp.name,
                extra_fields=extra,
            ),
        )
    return item


def _gsd(info) -> float:
    """Ground sample distance in metres, consistent with ``proj:transform``: the transform's
    pixel size (mean of width and height) when the CRS unit is the metre, else the ground
    size measured at the raster centre (geographic or foot-based CRSs)."""
    import math

    t = info.transform
    try:
        unit = info.crs.axis_info[0].unit_name if info.crs is not None and info.crs.axis_info else ""
    except AttributeError:
        unit = ""
    if unit in ("metre", "meter"):
        return round((math.hypot(t.a, t.d) + math.hypot(t.b, t.e)) / 2, 4)
    w_m, h_m = info.res_m
    return round((w_m + h_m) / 2, 4)


def add_truth_asset(item_json: str | os.PathLike, truth: str | os.PathLike, description: str) -> None:
    """Attach a ground-truth vector file (already in the item's folder) as asset ``truth``.

    The asset has role ``truth`` only, so answering questions never reads it as objects;
    ``georeason eval`` scores answers and grounding against it. Checksum and size are
    recorded like every other asset's.
    """
    import hashlib

    item_json, truth = Path(item_json), Path(truth)
    if truth.parent.resolve() != item_json.parent.resolve():
        raise CatalogError(
            f"truth file {str(truth)!r} must be in the item's folder {str(item_json.parent)!r}"
        )
    info = _check_vector(truth)
    d = json.loads(item_json.read_text(encoding="utf-8"))
    data = truth.read_bytes()
    asset: dict[str, Any] = {
        "href": f"./{truth.name}",
        "type": str(_VECTOR_MEDIA[truth.suffix.lower()]),
        "title": f"{truth.name} (ground truth)",
        "description": description,
        "roles": ["truth"],
        "file:checksum": sha256_multihash(hashlib.sha256(data).hexdigest()),
        "file:size": len(data),
        "georeason:feature_count": int(info.get("features", -1)),
    }
    d["assets"]["truth"] = asset
    _atomic_write_bytes(item_json, _json_bytes(d))


def _json_number(v: float):
    import math

    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return int(v) if float(v).is_integer() else float(v)


def _raster_driver(path: Path) -> str | None:
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.driver
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- validation


def validate_catalog(
    catalog_dir: str | os.PathLike | None = None,
    *,
    check_rasters: bool = True,
    policy: AssetPolicy | None = None,
    advance: Callable[..., None] | None = None,
) -> list[str]:
    """Problems found in the catalog (an empty list: all good).

    ``advance(n=1)`` (optional, e.g. a :func:`georeason.progress.task`) is called once per
    item file checked.

    Structural checks, then the shipped JSON schemas (offline): ``catalog.json`` and every
    linked item parse and have the required STAC fields; every asset href is relative and
    its file exists; ``file:checksum`` and ``file:size`` match; the bbox matches the
    geometry; and (``check_rasters``) each raster opens, is georeferenced, has readable
    blocks, and its CRS, transform, shape and band count match the item. Confinement
    (:class:`AssetPolicy`): URLs, absolute paths, ``..`` paths and symlinks leading
    outside the catalog folder, and item ids that are not plain folder names, are
    reported; nothing outside the catalog (or the policy's roots) is opened.
    """
    catalog_dir = Path(catalog_dir) if catalog_dir is not None else default_catalog_dir()
    problems: list[str] = []
    root = _catalog_file(catalog_dir)
    if not root.is_file():
        return [
            f"{root}: catalog file not found; create the catalog with `georeason catalog add RASTER --catalog DIR`"
        ]
    seen_ids: dict[str, Path] = {}
    ctx = _Confine(
        Path(os.path.realpath(root.parent)),
        policy if policy is not None else AssetPolicy.from_env(),
        advance if advance is not None else (lambda n=1, total=None: None),
    )
    _validate_catalog_file(root, problems, seen_ids, check_rasters, depth=0, ctx=ctx)
    problems += _schema_problems([root, *seen_ids.values()])
    return problems


@dataclass(frozen=True)
class _Confine:
    root: Path
    policy: AssetPolicy
    advance: Callable[..., None]

    def path(self, href: str, base: Path, what: str, problems: list[str]) -> Path | None:
        try:
            return confine_href(href, base, self.root, self.policy, what)
        except CatalogError as exc:
            problems.append(str(exc))
            return None


def _schema_problems(paths: list[Path]) -> list[str]:
    """JSON-schema problems of the STAC files (offline, shipped schemas)."""
    from georeason.stac_schemas import schema_problems

    out: list[str] = []
    for path in paths:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # already reported by the structural checks
        out += schema_problems(doc, str(path))
    return out


def _read_json(path: Path, problems: list[str]) -> dict | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: linked file is missing")
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: not readable JSON ({' '.join(str(exc).split())})")
        return None
    if not isinstance(d, dict):
        problems.append(f"{path}: JSON is not an object")
        return None
    return d


def _validate_catalog_file(
    path: Path, problems: list[str], seen: dict[str, Path], check_rasters: bool, depth: int, ctx: _Confine
) -> None:
    d = _read_json(path, problems)
    if d is None:
        return
    if d.get("type") not in ("Catalog", "Collection"):
        problems.append(f"{path}: 'type' is {d.get('type')!r}, expected 'Catalog' or 'Collection'")
    for key in ("stac_version", "id", "description", "links"):
        if key not in d:
            problems.append(f"{path}: missing required field {key!r}")
    for link in d.get("links") or []:
        rel, href = link.get("rel"), link.get("href")
        if rel not in ("item", "child"):
            continue
        if not isinstance(href, str) or not href:
            problems.append(f"{path}: a {rel!r} link has no href")
            continue
        if _is_absolute_href(href):
            problems.append(
                f"{path}: {rel} link {href!r} is absolute; the catalog must use relative hrefs to be movable"
            )
            if not ctx.policy.allow_external or _is_url(href):
                continue
        target = ctx.path(href, path.parent, f"{path}: {rel} link", problems)
        if target is None:
            continue
        if rel == "child":
            if depth > 20:
                problems.append(f"{path}: catalog nesting too deep (a link cycle?)")
                continue
            _validate_catalog_file(target, problems, seen, check_rasters, depth + 1, ctx)
        else:
            _validate_item_file(target, problems, seen, check_rasters, ctx)


def _is_absolute_href(href: str) -> bool:
    return (
        bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", href))
        or href.startswith("/")
        or bool(re.match(r"^[A-Za-z]:[\\/]", href))
    )


def _validate_item_file(
    path: Path, problems: list[str], seen: dict[str, Path], check_rasters: bool, ctx: _Confine
) -> None:
    ctx.advance(1)
    d = _read_json(path, problems)
    if d is None:
        return
    where = f"item {d.get('id', '?')!r} ({path})"
    iid_ = d.get("id")
    if not isinstance(iid_, str) or not _ID_RE.match(iid_) or iid_ in (".", "..", "catalog"):
        problems.append(
            f"{where}: item id {iid_!r} is not a plain name (letters, digits, '_', '-', '.'); "
            "as a folder name it could lead outside the output folder"
        )
    if d.get("type") != "Feature":
        problems.append(f"{where}: 'type' is {d.get('type')!r}, expected 'Feature'")
    for key in ("stac_version", "id", "geometry", "bbox", "properties", "links", "assets"):
        if key not in d:
            problems.append(f"{where}: missing required field {key!r}")
    iid = d.get("id")
    if isinstance(iid, str):
        if iid in seen and seen[iid] != path:
            problems.append(f"{where}: duplicate item id (also {seen[iid]})")
        seen[iid] = path
    props = d.get("properties") or {}
    if not (props.get("datetime") or (props.get("start_datetime") and props.get("end_datetime"))):
        problems.append(f"{where}: needs 'datetime' (or 'start_datetime' and 'end_datetime')")
    geom = None
    try:
        if d.get("geometry"):
            geom = shape(d["geometry"])
            if not geom.is_valid or geom.is_empty:
                problems.append(f"{where}: footprint geometry is invalid or empty")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{where}: footprint geometry is not GeoJSON ({exc})")
    bbox = d.get("bbox")
    if geom is not None and isinstance(bbox, list) and len(bbox) == 4:
        gb = geom.bounds
        if any(abs(a - b) > 1e-6 for a, b in zip(gb, bbox)):
            problems.append(f"{where}: bbox {bbox} does not match the footprint bounds {list(gb)}")
        if not (
            -180 <= bbox[0] <= 180
            and -90 <= bbox[1] <= 90
            and -180 <= bbox[2] <= 180
            and -90 <= bbox[3] <= 90
        ):
            problems.append(f"{where}: bbox {bbox} is not in lon/lat degrees (EPSG:4326)")
    crs = None
    try:
        crs = _crs_from_props(props)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{where}: proj fields do not give a usable CRS ({' '.join(str(exc).split())})")
    if crs is None and "proj:code" not in props and "proj:wkt2" not in props:
        problems.append(f"{where}: no CRS recorded (proj:code / proj:wkt2)")

    assets = d.get("assets") or {}
    raster_key = (
        RASTER_ASSET_KEY
        if RASTER_ASSET_KEY in assets
        else next((k for k, a in assets.items() if "data" in (a.get("roles") or [])), None)
    )
    if raster_key is None:
        problems.append(f"{where}: no raster asset ({RASTER_ASSET_KEY!r} or role 'data')")
    for key, asset in assets.items():
        href = asset.get("href")
        if not isinstance(href, str) or not href:
            problems.append(f"{where}: asset {key!r} has no href")
            continue
        if _is_absolute_href(href):
            problems.append(
                f"{where}: asset {key!r} href {href!r} is absolute; use a path relative to the item"
            )
            if not ctx.policy.allow_external or _is_url(href):
                continue
        fpath = ctx.path(href, path.parent, f"{where}: asset {key!r}", problems)
        if fpath is None:
            continue
        if not fpath.is_file():
            problems.append(f"{where}: asset {key!r} file {fpath} is missing")
            continue
        size = asset.get("file:size")
        if size is not None and fpath.stat().st_size != size:
            problems.append(
                f"{where}: asset {key!r} file {fpath} has {fpath.stat().st_size} bytes, the catalog records {size}"
            )
        checksum = asset.get("file:checksum")
        want = _hex_from_multihash(checksum)
        if checksum is None:
            problems.append(f"{where}: asset {key!r} has no file:checksum")
        elif want is None:
            problems.append(f"{where}: asset {key!r} file:checksum {checksum!r} is not a SHA-256 multihash")
        else:
            got = _sha256(fpath)
            if got != want:
                problems.append(
                    f"{where}: asset {key!r} file {fpath} does not match its checksum (the file changed); "
                    "re-add it with `georeason catalog add ... --replace`"
                )
        if key == raster_key and check_rasters:
            _validate_raster(fpath, asset, props, crs, where, problems)


def _validate_raster(fpath: Path, asset: dict, props: dict, crs, where: str, problems: list[str]) -> None:
    from georeason.geo.raster.io import open_raster, to_pyproj_crs

    try:
        with open_raster(fpath) as src:
            rcrs = to_pyproj_crs(src.crs)
            t = src.transform
            shape_ = [src.height, src.width]
            count = src.count
    except GeoreasonError as exc:
        problems.append(f"{where}: {' '.join(str(exc).split())}")
        return
    if crs is not None and not rcrs.equals(crs, ignore_axis_order=True):
        problems.append(
            f"{where}: raster CRS {rcrs.to_string()} differs from the recorded {_crs_label(props)}"
        )
    ps = props.get("proj:shape")
    if ps is not None and list(ps) != shape_:
        problems.append(f"{where}: raster shape {shape_} differs from proj:shape {ps}")
    pt = props.get("proj:transform")
    if pt is not None:
        mine = [t.a, t.b, t.c, t.d, t.e, t.f]
        if len(pt) < 6 or any(abs(a - b) > 1e-9 * max(1.0, abs(a)) for a, b in zip(mine, pt[:6])):
            problems.append(f"{where}: raster transform {mine} differs from proj:transform {pt}")
    bands = asset.get("eo:bands") or asset.get("bands")
    if bands is not None and len(bands) != count:
        problems.append(f"{where}: raster has {count} bands, the item lists {len(bands)}")
