"""Vectorising by row bands (``pixel_polygons``) gives exactly what one plain
``rasterio.features.shapes`` call over the whole array gives: the same polygons, vertex for
vertex, in the same order, with the same values."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape

from georeason.geo.grounding import detections
from georeason.geo.grounding.detections import pixel_polygons


def _plain(array: np.ndarray, mask: np.ndarray, connectivity: int) -> list[tuple[str, float]]:
    """One ``shapes`` call over the whole array, shifted back to pixel space by hand."""
    found = shapes(array, mask=mask, connectivity=connectivity, transform=Affine.translation(5, 5))
    return [(shapely.transform(shape(g), lambda xy: xy - 5).wkt, float(v)) for g, v in found]


def _labels(rng: np.random.Generator, h: int, w: int, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Blobby random components (some ragged, some with holes), labelled, a few dropped."""
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)), rng.uniform(1, 4))
    member = field > rng.uniform(0.05, 0.4) * field.std() * 3
    member &= rng.random((h, w)) > 0.05  # specks and holes
    member[:, rng.integers(0, w) :] &= rng.random() > 0.5  # sometimes an empty right part
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, n = ndimage.label(member, structure=structure)
    keep = rng.random(n + 1) > 0.2
    keep[0] = False
    return labels.astype(np.int32), keep[labels]


@pytest.mark.parametrize("merge_px", [0, 1, 200, None])
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("seed", range(6))
def test_bands_equal_one_shapes_call(monkeypatch, seed: int, connectivity: int, merge_px: int | None) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 160)), int(rng.integers(1, 160))
    labels, mask = _labels(rng, h, w, connectivity)
    if merge_px is not None:
        monkeypatch.setattr(detections, "_BAND_MERGE_PX", merge_px)
    geoms, values = pixel_polygons(labels, mask=mask, connectivity=connectivity)
    got = [(g.wkt, float(v)) for g, v in zip(geoms, values)]
    assert got == _plain(labels, mask, connectivity)


def test_bands_split_where_rows_are_empty(monkeypatch) -> None:
    """Several bands really are used (so the test above exercises the split)."""
    m = np.zeros((40, 30), bool)
    m[2:5, 3:9] = True
    m[20:22, 10:30] = True
    m[35, 0] = True
    assert detections._bands(m, m.shape, merge_px=0) == [(2, 5, 3, 9), (20, 22, 10, 30), (35, 36, 0, 1)]
    assert detections._bands(m, m.shape, merge_px=10**9) == [(2, 36, 0, 30)]
    assert detections._bands(np.zeros((3, 3), bool), (3, 3)) == []


def test_no_mask_and_empty() -> None:
    a = np.array([[1, 1, 2], [3, 3, 2]], np.int32)
    geoms, values = pixel_polygons(a)
    assert [(g.wkt, float(v)) for g, v in zip(geoms, values)] == _plain(a, None, 4)
    geoms, values = pixel_polygons(a, mask=np.zeros(a.shape, bool))
    assert geoms.size == 0 and values.size == 0
