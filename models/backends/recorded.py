"""Recorded model outputs as a grounder (grounder ``recorded``).

Raw model texts computed elsewhere (a GPU box, a hosted API, last month's run) are kept in
a JSONL file and post-processed here — parsed, mapped to the CRS, seam-merged, reasoned
over — reproducibly and without the model. The parsing is the same code the live
backends use (:mod:`georeason.models.formats`), so a recorded run and a live run with the
same texts give the same answers.

File format: one JSON object per line (blank lines and lines starting with ``#`` are
skipped)::

    {"item": "sample", "tile": [0, 1], "window": [896, 0, 1024, 1024], "class": "building",
     "format": "qwen2.5", "input_size": [1036, 1036], "text": "```json\\n[{\\"bbox_2d\\": ...}]\\n```"}

``item`` (str)
    catalog item id (or any scene name) the tile belongs to.
``window`` ([col_off, row_off, width, height], ints)
    the tile's window in raster pixels, as :func:`georeason.geo.raster.tiling.plan_tiles` gives it
    (``width``/``height`` are the full tile, padding included). **Entries are keyed on item
    and window**, not on the tile index, so a renumbered plan still finds them.
``tile`` ([row, col], optional)
    the tile index, informational only.
``class`` (str)
    the class the model was asked about; detections are labelled with the class the
    question asks (matched through :func:`georeason.models.language.classmap.map_class`, so
    ``houses`` finds the ``building`` entries).
``format`` (str)
    the model's output format: ``qwen2.5`` (JSON ``bbox_2d`` in absolute pixels of the
    model's input image), ``qwen3`` (0-1000), ``qwen2``, ``florence`` (``<loc_N>`` tokens,
    with ``task``), ``remotereasoner`` (``<answer>[[...]]</answer>``), ``geochat``, ...:
    whatever :func:`georeason.models.formats.parse_output` accepts.
``text`` (str, or for ``florence`` the post-processed dict)
    what the model printed, verbatim.
``task`` (str, ``florence``)
    the Florence task token, e.g. ``<OD>``, ``<REFERRING_EXPRESSION_SEGMENTATION>``.
``input_size`` ([w, h], ``qwen2.5``)
    the size of the image the model saw (after the processor's ``smart_resize``).
``image_size`` ([w, h], optional)
    the size of the image the model was given; default the window's width and height.

Lookups: a window recorded for the item but without an entry for the class asked gives
no detections for that class (logged at debug level: the model was not asked). A window
not recorded at all for the item, or a class no entry of the file has, is an error
(:class:`~georeason.errors.ModelError`): the outputs were recorded for another tile plan
(rerun with the same ``--tile-px``/``--overlap-px``) or without that class, and answering
from nothing would be a guess. The pipeline records such tiles as failed and the
answers that need them abstain.

Configuration: ``outputs`` (path of the JSONL file), ``item`` (set by the ``answer`` flow
to the catalog item; ``georeason ask --item`` sets it too; when absent and the file holds
one item, that item). :func:`prepare_recorded` (run once per scene) reads and validates the
whole file — errors name the file and line — and adds the file's SHA-256 to the config, so
the tile cache is keyed on the recorded content, not its path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from georeason.errors import InputError, ModelError
from georeason.geo.grounding.detections import Detection
from georeason.geo.raster.tiling import Tile
from georeason.models.base import ModelGrounder, drop_nodata_detections
from georeason.models.parsenotes import TileDetections, collect_parse_warnings, notes_for, parsing, with_notes

__all__ = ["RecordedGrounder", "Entry", "read_outputs", "prepare_recorded", "REQUIRED_FIELDS"]

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("item", "window", "class", "format", "text")


class Entry:
    """One validated line of a recorded-outputs file."""

    __slots__ = ("item", "window", "cls", "format", "text", "task", "input_size", "image_size", "line")

    def __init__(self, item, window, cls, fmt, text, task, input_size, image_size, line):
        self.item, self.window, self.cls, self.format, self.text = item, window, cls, fmt, text
        self.task, self.input_size, self.image_size, self.line = task, input_size, image_size, line


def _ints(value, n: int, what: str, where: str, positive_from: int = 0) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == int(v) for v in value
        )
    ):
        raise InputError(f"{where}: {what!r} must be a list of {n} integers, got {value!r}")
    out = tuple(int(v) for v in value)
    if any(v <= 0 for v in out[positive_from:]):
        raise InputError(f"{where}: {what!r} sizes must be positive, got {value!r}")
    return out


def _norm_format(fmt: str) -> str:
    """The parsers' name for a format (``Qwen2.5-VL`` -> ``qwen2.5``); InputError if unknown."""
    from georeason.models.formats import normalize_format as norm

    return norm(fmt)


def read_outputs(path: str | Path) -> list[Entry]:
    """Read and validate a recorded-outputs JSONL file (see module doc).

    Raises :class:`InputError` naming the file and line of the first problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot read recorded outputs {str(path)!r}: {exc}; give the JSONL file with --outputs"
        ) from exc
    entries: list[Entry] = []
    seen: dict[tuple, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise InputError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
        missing = [f for f in REQUIRED_FIELDS if f not in obj]
        if missing:
            raise InputError(
                f"{where}: missing field(s) {', '.join(missing)} (each line needs {', '.join(REQUIRED_FIELDS)})"
            )
        if not isinstance(obj["item"], str) or not obj["item"]:
            raise InputError(f"{where}: 'item' must be a non-empty string")
        if not isinstance(obj["class"], str) or not obj["class"].strip():
            raise InputError(f"{where}: 'class' must be a non-empty string")
        window = _ints(obj["window"], 4, "window", where, positive_from=2)
        if window[0] < 0 or window[1] < 0:
            raise InputError(f"{where}: 'window' offsets must be >= 0, got {obj['window']!r}")
        if not isinstance(obj["format"], str):
            raise InputError(f"{where}: 'format' must be a string such as \"qwen2.5\"")
        try:
            fmt = _norm_format(obj["format"])
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if fmt == "auto":
            raise InputError(f"{where}: record the model's real format, not 'auto'")
        body = obj["text"]
        if not isinstance(body, str) and not (isinstance(body, dict) and fmt == "florence"):
            raise InputError(f"{where}: 'text' must be the model's output as a string")
        task = obj.get("task")
        if fmt == "florence":
            if not task:
                raise InputError(f"{where}: a florence entry needs 'task' (e.g. \"<OD>\")")
            from georeason.models.formats import FLORENCE_TASKS

            if str(task).strip().upper() not in FLORENCE_TASKS:
                raise InputError(
                    f"{where}: unknown Florence-2 task {task!r}; known: {', '.join(FLORENCE_TASKS)}"
                )
        input_size = (
            _ints(obj["input_size"], 2, "input_size", where) if obj.get("input_size") is not None else None
        )
        image_size = (
            _ints(obj["image_size"], 2, "image_size", where) if obj.get("image_size") is not None else None
        )
        if "tile" in obj and obj["tile"] is not None:
            _ints(obj["tile"], 2, "tile", where, positive_from=2)
        from georeason.geo.vector.scene import normalise_class

        cls = normalise_class(obj["class"])
        key = (obj["item"], window, cls, fmt, str(task))
        if key in seen:
            raise InputError(
                f"{where}: duplicate entry for item {obj['item']!r}, window {list(window)}, "
                f"class {cls!r}, format {fmt!r} (first on line {seen[key]})"
            )
        seen[key] = n
        entries.append(Entry(obj["item"], window, cls, fmt, body, task, input_size, image_size, n))
    if not entries:
        raise InputError(f"recorded outputs {str(path)!r} hold no entries")
    return entries


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare_recorded(raster, options: dict[str, Any]) -> dict[str, Any]:
    """Validate the recorded outputs once per scene; the config names file, content hash and item."""
    opts = dict(options)
    if not opts.get("outputs"):
        raise InputError(
            "the recorded grounder needs the outputs file: --outputs FILE (grounder option 'outputs')"
        )
    path = Path(opts["outputs"]).expanduser().resolve()
    entries = read_outputs(path)
    items = sorted({e.item for e in entries})
    item = opts.get("item")
    if item is None:
        if len(items) != 1:
            raise InputError(
                f"recorded outputs {str(path)!r} hold items {', '.join(items)}; say which (--item)"
            )
        item = items[0]
    if item not in items:
        raise InputError(
            f"recorded outputs {str(path)!r} have no entries for item {item!r}; items: {', '.join(items)}"
        )
    if raster is not None:
        from georeason.geo.raster.io import as_dataset

        with as_dataset(str(raster), check_read=False) as src:
            h, w = src.height, src.width
        for e in entries:
            if e.item == item and (e.window[0] >= w or e.window[1] >= h):
                raise InputError(
                    f"{path} line {e.line}: window {list(e.window)} starts outside raster "
                    f"{raster} ({w} x {h} px); is this the right item?"
                )
    opts["outputs"] = str(path)
    opts["outputs_sha256"] = _sha256(path)
    opts["item"] = item
    return opts


class RecordedGrounder(ModelGrounder):
    """Replays recorded model outputs for the tiles of one item (see module doc)."""

    name = "recorded"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        if not self.config.get("outputs"):
            raise InputError(
                "the recorded grounder needs the outputs file: --outputs FILE (grounder option 'outputs')"
            )
        self._by_window: dict[tuple, dict[str, list[Entry]]] = {}
        self._classes: set[str] = set()
        self._item: str | None = self.config.get("item")
        self._lock = threading.Lock()

    def load(self) -> None:
        path = Path(self.config["outputs"])
        want = self.config.get("outputs_sha256")
        if want and _sha256(path) != want:
            raise ModelError(f"recorded outputs {str(path)!r} changed since the run was prepared; run again")
        entries = read_outputs(path)
        if self._item is None:
            items = {e.item for e in entries}
            if len(items) != 1:
                raise InputError(
                    f"recorded outputs {str(path)!r} hold items {', '.join(sorted(items))}; say which (item)"
                )
            self._item = items.pop()
        by_window: dict[tuple, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
        for e in entries:
            if e.item == self._item:
                by_window[e.window][e.cls].append(e)
        self._by_window = {k: dict(v) for k, v in by_window.items()}
        self._classes = {c for v in self._by_window.values() for c in v}

    def ensure_loaded(self) -> None:
        with self._lock:
            super().ensure_loaded()

    def _recorded_class(self, label: str) -> str:
        from georeason.geo.vector.scene import normalise_class
        from georeason.models.language.classmap import map_class

        cls, _, _ = map_class(normalise_class(label), sorted(self._classes), embedder=False)
        if cls is None:
            raise ModelError(
                f"recorded outputs {self.config['outputs']!r} have no entries for class {label!r} "
                f"(item {self._item!r} has: {', '.join(sorted(self._classes))}); record that class "
                "or ground it with another grounder"
            )
        return cls

    def detections(self, tile: Tile, classes: Sequence[str]) -> TileDetections:
        """The parsed detections recorded for ``tile``'s window, labelled with the classes asked.

        The parse warnings of each recorded output (e.g. a truncated answer whose last
        object was dropped) are on its detections' ``notes`` and on the returned list's.
        """
        from georeason.models.formats import parse_output

        self.ensure_loaded()
        w = tile.window
        key = (int(w.col_off), int(w.row_off), int(w.width), int(w.height))
        per_class = self._by_window.get(key)
        if per_class is None:
            sizes = sorted({(k[2], k[3]) for k in self._by_window})
            raise ModelError(
                f"recorded outputs {self.config['outputs']!r} have no entry for item {self._item!r} window "
                f"{list(key)} (tile {tile.index}); they were recorded for tiles of {sizes[:3]} px: run with the "
                "same --tile-px and --overlap-px as the recording"
            )
        out: list[Detection] = []
        tile_notes: list[str] = []
        for label in classes:
            rec = self._recorded_class(label)
            entries = per_class.get(rec, [])
            if not entries:
                log.debug(
                    "recorded: no %r entry for window %s of %s; no detections", rec, list(key), self._item
                )
            for e in entries:
                size = e.image_size or (key[2], key[3])
                kw: dict[str, Any] = {"label": label}
                if e.input_size is not None:
                    kw["input_size"] = e.input_size
                if e.task is not None:
                    kw["task"] = e.task
                try:
                    with collect_parse_warnings() as sink, parsing(label=label):
                        dets = parse_output(e.text, e.format, tuple(size), **kw)
                except Exception as exc:
                    raise ModelError(
                        f"{self.config['outputs']} line {e.line}: cannot parse the {e.format} output: {exc}"
                    ) from exc
                if tuple(size) != (key[2], key[3]):  # recorded on a resized image: back to tile pixels
                    from shapely import affinity

                    fx, fy = key[2] / size[0], key[3] / size[1]
                    dets = [
                        d
                        if d.kind == "mask"
                        else Detection(
                            d.label, d.score, d.kind, affinity.scale(d.geometry, fx, fy, origin=(0, 0))
                        )
                        for d in dets
                    ]
                notes = tuple(f"{n} (recorded line {e.line})" for n in notes_for(sink))
                tile_notes.extend(notes)
                out.extend(
                    with_notes(
                        (
                            d if d.label == label else Detection(label, float(d.score), d.kind, d.geometry)
                            for d in dets
                        ),
                        notes,
                    )
                )
        return TileDetections(out, tile_notes)

    def predict(self, images, classes):  # pragma: no cover - tiles, not images, are the key here
        raise ModelError("the recorded grounder looks outputs up by tile window; call ground/ground_tiles")

    def ground_tiles(
        self, items: Sequence[tuple[np.ma.MaskedArray, Tile]], classes: list[str], bands: list[str]
    ) -> list[list[Detection]]:
        out = []
        for px, tile in items:
            dets = self.detections(tile, classes)
            valid = ~np.ma.getmaskarray(px).all(axis=0)
            out.append(TileDetections(drop_nodata_detections(dets, valid), dets.notes))
        return out
