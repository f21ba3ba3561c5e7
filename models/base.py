"""The one small interface every model-backed grounder implements.

A model grounder turns tiles into images, asks a model about the classes a question
needs, and parses the model's raw text (or post-processed tensors) into pixel-space
:class:`~georeason.geo.grounding.detections.Detection` objects of the tile. Geometry is never left to
the model: the pixel -> CRS mapping, seam merging and all reasoning happen in
:mod:`georeason.geo`.

Subclasses implement :meth:`ModelGrounder.predict` (a batch of images and prompts in,
one list of detections per image out, in the coordinates of the image given). The base
class renders tiles to 8-bit RGB, batches them, maps detections back to tile pixels, and
drops detections over nodata. Weights load lazily on first use, once per process
(:func:`georeason.models.registry.build_grounder` caches instances per worker).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely

from georeason.geo.export.quicklook import rgb_band_indexes, stretch_to_uint8
from georeason.geo.grounding.detections import Detection, pixel_rasterize
from georeason.geo.raster.tiling import Tile
from georeason.models.parsenotes import TileDetections, collect_parse_warnings, notes_for, with_notes

__all__ = ["ModelGrounder", "tile_to_rgb", "RGB_BANDS", "drop_nodata_detections"]

RGB_BANDS = ("red", "green", "blue")


def tile_to_rgb(
    pixels: np.ma.MaskedArray, bands: Sequence[str], lo_pct: float = 2.0, hi_pct: float = 98.0
) -> np.ndarray:
    """An 8-bit RGB image ``(rows, cols, 3)`` of a tile for a vision model.

    Bands are picked by name (red, green, blue), else the first three, else the first
    band repeated; each is stretched between its ``lo_pct`` and ``hi_pct`` percentiles of
    valid pixels (the same rendering as the quicklook). Masked pixels (nodata, padding)
    are black.
    """
    idx = rgb_band_indexes(bands)
    return np.stack([stretch_to_uint8(pixels[i], lo_pct, hi_pct) for i in idx], axis=-1)


def drop_nodata_detections(
    dets: list[Detection], valid: np.ndarray, min_valid: float = 0.5
) -> list[Detection]:
    """Drop detections whose footprint is mostly over nodata/padding (``valid`` is a bool mask)."""
    keep = []
    h, w = valid.shape
    for d in dets:
        if d.kind == "mask":
            m = np.asarray(d.geometry, dtype=bool)
            if m.any() and valid[m].mean() >= min_valid:
                keep.append(d)
            continue
        g = d.geometry
        if d.kind == "point":
            c, r = int(np.clip(g.x, 0, w - 1)), int(np.clip(g.y, 0, h - 1))
            if valid[r, c]:
                keep.append(d)
            continue
        g = shapely.clip_by_rect(g, 0, 0, w, h)
        if g.is_empty:
            continue
        inside = pixel_rasterize([g], (h, w), all_touched=True).astype(bool)
        if inside.any() and valid[inside].mean() >= min_valid:
            keep.append(d)
    return keep


class ModelGrounder(ABC):
    """Base class of model-backed grounders (implements the ``Grounder`` protocol).

    Parameters
    ----------
    config : mapping
        JSON-serialisable settings: ``model_path`` (a local directory or a model id
        found in the local Hugging Face cache; never downloaded), ``batch_size``,
        ``device`` (``auto`` picks cuda, then mps, then cpu), ``dtype`` (``auto``:
        bfloat16 on cuda, float32 elsewhere), prompt templates, thresholds.
    """

    name = "model"

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})
        self.batch_size = int(self.config.get("batch_size", 4))
        self._loaded = False

    # -- to implement -------------------------------------------------------------------
    def load(self) -> None:
        """Load weights/processors (called once, lazily)."""

    @abstractmethod
    def predict(self, images: list[np.ndarray], classes: list[str]) -> list[list[Detection]]:
        """Detections per image, in that image's pixel coordinates."""

    # -- Grounder protocol ----------------------------------------------------------------
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()
            self._loaded = True

    def ground(
        self, pixels: np.ma.MaskedArray, tile: Tile, classes: list[str], bands: list[str]
    ) -> list[Detection]:
        return self.ground_tiles([(pixels, tile)], classes, bands)[0]

    def ground_tiles(
        self, items: Sequence[tuple[np.ma.MaskedArray, Tile]], classes: list[str], bands: list[str]
    ) -> list[list[Detection]]:
        """Ground several tiles, ``batch_size`` images per model call.

        Each tile's list is a :class:`~georeason.models.parsenotes.TileDetections`: its
        ``notes`` (and every detection's ``notes``) are the parse warnings of the model
        outputs for that tile (what a truncated or broken answer lost).
        """
        self.ensure_loaded()
        out: list[list[Detection]] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            images = [tile_to_rgb(px, bands) for px, _ in chunk]
            with collect_parse_warnings() as sink:
                predicted = self.predict(images, list(classes))
            for k, ((px, _), dets) in enumerate(zip(chunk, predicted)):
                valid = np.asarray(~np.ma.getmaskarray(px).all(axis=0), dtype=bool)
                notes = notes_for(sink, k)
                out.append(TileDetections(with_notes(drop_nodata_detections(dets, valid), notes), notes))
        return out
