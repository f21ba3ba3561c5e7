"""Ground a raster with a grounder *instance* through the one pipeline path.

Tests build grounders by hand (fixed boxes, masks, spectral thresholds); this registers
the instance under a test name and grounds through :meth:`georeason.pipeline.Pipeline.ground`
— the path ``georeason ask`` and the flows take — with the grounder settings
(``min_area_m2``, ``simplify_m``) given as options, i.e. in the grounder spec.
"""

from __future__ import annotations

from typing import Any

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
