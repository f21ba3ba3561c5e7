"""Ground a raster with a grounder *instance* through the one pipeline path.

Tests build grounders by hand (fixed boxes, masks, spectral thresholds); this registers
the instance under a test name and grounds through :meth:`georeason.pipeline.Pipeline.ground`
— the path ``georeason ask`` and the flows take — with the grounder settings
(``min_area_m2``, ``simplify_m``) given as options, i.e. in the grounder spec; and
writes the small RGB GeoTIFF such tests ground (:func:`geotiff`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin

from georeason.geo.grounding.detections import GroundedObject
from georeason.models.registry import register
from georeason.pipeline import Pipeline


def ground_raster(
    raster: Any,
    grounder: Any,
    classes: list[str],
    *,
    tile_px: int = 1024,
    overlap_px: int = 128,
    **options: Any,
) -> list[GroundedObject]:
    """Merged objects of ``grounder`` on ``raster`` (every tile must ground)."""
    name = f"test-{type(grounder).__name__}-{id(grounder)}"
    register(name, lambda cfg: grounder, lambda label: True)
    result = Pipeline(grounder=name, grounder_options=options, tile_px=tile_px, overlap_px=overlap_px).ground(
        str(raster), classes
    )
    assert not result.failures, result.failures
    return result.objects


def geotiff(
    path: Path, width: int = 64, height: int = 64, origin: tuple[float, float] = (500000, 5_000_000)
) -> Path:
    """A 3-band uint8 RGB GeoTIFF of random pixels in UTM 33N, 10 m pixels, its top-left
    corner at ``origin``."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (3, height, width), dtype=np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(*origin, 10, 10),
    ) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue")
    return path
