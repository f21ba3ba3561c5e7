"""The tile cache: grounding results stored as plain data, never as pickles.

Prefect's result persistence reads the serializer named *inside* each stored file
(``"serializer": {"type": "pickle"}``), so any file planted in the results folder would be
unpickled (code execution) by a later run. Tile results therefore do not go through
Prefect's result store at all: the ``ground-tiles`` task looks them up here, by a key it
computes, and stores them as JSON:

.. code-block:: json

    {"format": "georeason-tile-batch/1", "key": "<sha256>",
     "tiles": [{"index": [0, 1],
                "detections": [{"label": "water", "score": 0.9, "kind": "polygon",
                                "whole": false, "wkb": "0103...", "notes": []}],
                "notes": ["lake: qwen2.5: output is truncated; ..."],
                "cells": {"core": [0, 896, 1024, 1024],
                          "sums": {"dtype": "uint32", "shape": [3, 52, 52], "b64": "..."}}}],
     "basemap_cells": {"k": 20, "bands": [3, 2, 1], "kind": "u"}}

Geometries are WKB (hex); ``mask`` detections are bit-packed boolean arrays (base64) with
their shape. ``notes`` are the parse warnings of the model outputs (per detection and per
tile), kept so that a cached batch reports what its outputs lost as a fresh one does.

``cells``: where the run sums its quicklook basemap from the tiles it reads
(:class:`georeason.geo.export.quicklook.BasemapSums`), each tile's share of it (its
:class:`~georeason.geo.export.quicklook.CellSums`: the core's sums, and valid-pixel counts
where some pixel is not valid, per basemap cell: little-endian arrays in base64) is stored
with its detections, and the cells they were summed into (``basemap_cells``: ``k``, display
bands, dtype kind) once per file. A run that takes every batch from the cache then has its
basemap without reading the raster again (a 20000^2 scene: ~16 CPU-s, and ~50 MB off the
run's peak, benchmarks/RESULTS.md, re-run 8). An entry without them (written before, or for
other cells) is used for its detections and the basemap is read from the file, as when a
tile failed.
Reading validates everything (format, key, the tile indices asked for,
finite scores, known kinds, parseable geometry): a corrupt, truncated or foreign file is
ignored (and replaced once the batch is recomputed), never trusted. Files are written to a
temporary name and renamed, so a killed run leaves no partial file under its final name;
temporaries of dead processes are removed when the cache is opened.

The key (:func:`batch_key`) is the SHA-256 of the raster's *content*, the tile windows,
the grounder name and configuration, the classes, the band names and
:data:`CACHE_VERSION`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from georeason.errors import GeoreasonWarning

__all__ = [
    "CACHE_VERSION",
    "FORMAT",
    "batch_key",
    "job_batch_key",
    "dumps_batch",
    "loads_batch",
    "TileCache",
    "CacheWarning",
]

#: Bumped whenever grounding or the stored format changes meaning (old entries are then ignored).
CACHE_VERSION = "2"  # 2: parse-warning notes per tile and detection
FORMAT = "georeason-tile-batch/1"
_KINDS = ("box", "polygon", "mask", "point")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class CacheWarning(GeoreasonWarning):
    """A cache file was unusable (corrupt, foreign, stale) and is recomputed."""


def _tile_key(t: Any) -> list:
    w, c = t.window, t.core
    return [
        [int(t.index[0]), int(t.index[1])],
        [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
        [int(c.col_off), int(c.row_off), int(c.width), int(c.height)],
    ]


def batch_key(
    raster_sha256: str,
    tiles: Sequence[Any],
    grounder: str,
    config_json: str,
    classes: Sequence[str],
    bands: Sequence[str],
) -> str:
    """The cache key of one batch: hex SHA-256 over everything the result depends on.

    Examples
    --------
    >>> len(batch_key("ab" * 32, [], "spectral", "{}", ["water"], ["red"]))
    64
    """
    doc = {
        "v": CACHE_VERSION,
        "raster": raster_sha256,
        "tiles": [_tile_key(t) for t in tiles],
        "grounder": grounder,
        "config": config_json,
        "classes": sorted(classes),
        "bands": list(bands),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def job_batch_key(job: Any, tiles: Sequence[Any]) -> str | None:
    """:func:`batch_key` of a batch of ``job`` (a :class:`~georeason.pipeline.GroundJob`:
    its raster's content hash, grounder name and configuration, classes and bands); ``None``
    when the job has no content hash (nothing is cached then)."""
    if not job.raster_sha256:
        return None
    return batch_key(job.raster_sha256, tiles, job.spec.name, job.spec.config_json, job.classes, job.bands)


def _det_json(d: Any) -> dict[str, Any]:
    score = float(d.score)
    if not math.isfinite(score):
        raise ValueError(f"detection score {score!r} is not finite")
    out: dict[str, Any] = {"label": str(d.label), "score": score, "kind": d.kind, "whole": bool(d.whole)}
    if d.notes:
        out["notes"] = [str(n) for n in d.notes]
    if d.kind == "mask":
        m = np.asarray(d.geometry, dtype=bool)
        out["mask"] = {"shape": list(m.shape), "bits": base64.b64encode(np.packbits(m).tobytes()).decode()}
    else:
        out["wkb"] = shapely.to_wkb(d.geometry, hex=True)
    return out


def _cells_id(cells: Any) -> dict[str, Any]:
    """What identifies a :class:`~georeason.geo.export.quicklook.BasemapCells` in a stored
    file (its raster's size and grid are the key's: the raster's content)."""
    return {"k": int(cells.k), "bands": [int(b) for b in cells.bands], "kind": str(cells.kind)}


def _array_json(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.name, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def _array_from(obj: Any, dtypes: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
    """The array stored by :func:`_array_json`, checked: one of ``dtypes``, ``shape``, all
    its bytes, finite."""
    if not isinstance(obj, dict) or obj.get("dtype") not in dtypes:
        raise ValueError("basemap cell array of an unexpected type")
    if obj.get("shape") != list(shape):
        raise ValueError("basemap cell array of another shape")
    dtype = np.dtype(str(obj["dtype"])).newbyteorder("<")
    raw = base64.b64decode(str(obj.get("b64", "")), validate=True)
    if len(raw) != dtype.itemsize * math.prod(shape):
        raise ValueError("basemap cell array size does not match its shape")
    a = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("basemap cell sums are not finite")
    return a


def _cell_sums_json(part: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"core": [int(v) for v in part.core], "sums": _array_json(part.sums)}
    if part.counts is not None:
        out["counts"] = _array_json(part.counts)
    return out


def _cell_sums_from(obj: Any, tile: Any, cells: Any) -> Any:
    """A tile's stored :class:`~georeason.geo.export.quicklook.CellSums`, checked against
    its core and ``cells`` (so that adding it to the basemap's sums cannot fail)."""
    from georeason.geo.export.quicklook import COUNT_DTYPES, SUM_DTYPES, CellSums, cell_sums_shape

    c = tile.core
    core = (int(c.row_off), int(c.col_off), int(c.height), int(c.width))
    if not isinstance(obj, dict) or obj.get("core") != list(core):
        raise ValueError("basemap cells of another core")
    shape = cell_sums_shape(cells, core)
    sums = _array_from(obj.get("sums"), SUM_DTYPES.get(cells.kind, ()), shape)
    counts = _array_from(obj["counts"], COUNT_DTYPES, shape) if obj.get("counts") is not None else None
    return CellSums((int(tile.index[0]), int(tile.index[1])), core, sums, counts)


def dumps_batch(key: str, result: Any, cells: Any = None) -> bytes:
    """JSON bytes of a :class:`~georeason.pipeline.BatchResult` (without failures); with
    ``cells`` (the job's :class:`~georeason.geo.export.quicklook.BasemapCells`), each tile's
    basemap share in ``result.cells`` too."""
    notes: dict[tuple[int, int], list[str]] = {}
    for n in getattr(result, "notes", ()):
        notes.setdefault(tuple(n.index), []).append(str(n.message))
    parts = {tuple(p.index): p for p in getattr(result, "cells", ())} if cells is not None else {}
    tiles = []
    for t, dets in result.results:
        index = (int(t.index[0]), int(t.index[1]))
        entry: dict[str, Any] = {"index": list(index), "detections": [_det_json(d) for d in dets]}
        if notes.get(index):
            entry["notes"] = notes[index]
        if index in parts:
            entry["cells"] = _cell_sums_json(parts[index])
        tiles.append(entry)
    doc: dict[str, Any] = {"format": FORMAT, "key": key, "tiles": tiles}
    if parts:
        doc["basemap_cells"] = _cells_id(cells)
    return json.dumps(doc, allow_nan=False).encode()


def _det_from(obj: Any) -> Any:
    from georeason.geo.grounding.detections import Detection

    if not isinstance(obj, dict):
        raise ValueError("detection is not an object")
    kind = obj.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    score = obj.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ValueError("score is not a finite number")
    label = obj.get("label")
    if not isinstance(label, str):
        raise ValueError("label is not a string")
    if kind == "mask":
        m = obj.get("mask")
        if not isinstance(m, dict):
            raise ValueError("mask missing")
        shape = m.get("shape")
        if not (
            isinstance(shape, list)
            and len(shape) == 2
            and all(isinstance(x, int) and 0 < x <= 1 << 16 for x in shape)
        ):
            raise ValueError("bad mask shape")
        bits = np.frombuffer(base64.b64decode(str(m.get("bits", "")), validate=True), dtype=np.uint8)
        n = shape[0] * shape[1]
        if bits.size != (n + 7) // 8:
            raise ValueError("mask size does not match its shape")
        geom: Any = np.unpackbits(bits)[:n].astype(bool).reshape(shape)
    else:
        wkb = obj.get("wkb")
        if not isinstance(wkb, str) or not re.fullmatch(r"[0-9A-Fa-f]+", wkb):
            raise ValueError("wkb is not hex")
        geom = shapely.from_wkb(wkb)
    return Detection(label, float(score), kind, geom, whole=bool(obj.get("whole", False)), notes=_notes(obj))


def _notes(obj: dict[str, Any]) -> tuple[str, ...]:
    notes = obj.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError("notes is not a list of strings")
    return tuple(notes)


def loads_batch(data: bytes, key: str, tiles: Sequence[Any], cells: Any = None) -> Any:
    """The :class:`~georeason.pipeline.BatchResult` stored in ``data`` for ``tiles``; with
    ``cells``, the tiles' basemap shares stored for those cells too (none when the file
    has none, or has them for other cells).

    Raises
    ------
    ValueError
        Anything unexpected: not JSON, another format or key, other tiles, a bad
        detection. (Callers recompute.)
    """
    from georeason.pipeline import BatchResult, TileNote

    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a georeason tile-batch file")
    if doc.get("key") != key:
        raise ValueError("stored for another key")
    stored = doc.get("tiles")
    if not isinstance(stored, list) or len(stored) != len(tiles):
        raise ValueError("tile count differs")
    results = []
    notes: list[Any] = []
    parts: list[Any] = []
    with_cells = cells is not None and doc.get("basemap_cells") == _cells_id(cells)
    for t, s in zip(tiles, stored):
        if not isinstance(s, dict) or s.get("index") != [int(t.index[0]), int(t.index[1])]:
            raise ValueError("tile index differs")
        dets = s.get("detections")
        if not isinstance(dets, list):
            raise ValueError("detections is not a list")
        results.append((t, tuple(_det_from(d) for d in dets)))
        notes.extend(TileNote((int(t.index[0]), int(t.index[1])), m) for m in _notes(s))
        if with_cells and s.get("cells") is not None:
            parts.append(_cell_sums_from(s["cells"], t, cells))
    return BatchResult(tuple(results), (), tuple(notes), cells=tuple(parts))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TileCache:
    """Tile-batch results as JSON files in ``folder`` (``<key>.json``)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder) / "tiles"
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.folder.glob(".*.tmp"):  # left by a killed run
            m = re.match(r"^\.[0-9a-f]{64}\.(\d+)\.", tmp.name)
            if m is None or not _pid_alive(int(m.group(1))):
                tmp.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"bad cache key {key!r}")
        return self.folder / f"{key}.json"

    def get(self, key: str, tiles: Sequence[Any], cells: Any = None) -> Any | None:
        """The stored batch, or ``None`` (absent, or unusable: a :class:`CacheWarning` says
        why); with ``cells``, its tiles' basemap shares where stored (:func:`loads_batch`)."""
        p = self.path(key)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"tile cache {p}: unreadable ({exc}); recomputing", CacheWarning, stacklevel=2)
            return None
        try:
            return loads_batch(data, key, tiles, cells)
        except Exception as exc:  # noqa: BLE001 - any defect means: do not trust, recompute
            warnings.warn(
                f"tile cache {p}: not a valid entry ({exc}); recomputing", CacheWarning, stacklevel=2
            )
            return None

    def put(self, key: str, result: Any, cells: Any = None) -> Path:
        """Store a batch atomically (temporary file, then rename); with ``cells``, its
        tiles' basemap shares too (:func:`dumps_batch`)."""
        p = self.path(key)
        data = dumps_batch(key, result, cells)
        tmp = self.folder / f".{key}.{os.getpid()}.{id(result)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return p
