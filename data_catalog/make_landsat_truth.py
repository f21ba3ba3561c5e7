"""Hand-made truth for the ``landsat`` item: a few areas labelled water or vegetation by eye.

Run as ``python data_catalog/make_landsat_truth.py``. The scene (Landsat 7 RGB, ~300 m, the
Bahamas) shows Andros Island: the turquoise Great Bahama Bank to the west, the deep, dark
Tongue of the Ocean to the east, greenish shallow banks beyond it, and the forested island
in between, under scattered cumulus.

How the truth was made: the scene was rendered (2-98% stretch, the quicklook rendering) with
a 100-pixel grid, and boxes were drawn (pixel column/row, below) where one class fills the
box by visual interpretation: three kinds of water and the island's vegetation. Clouds are
not labelled: inside each box, pixels whose mean visible value exceeds 120 (the cumulus
tops; the water and forest below are darker than 110 in every band) and nodata pixels are
cut out, so the truth polygons follow the clear pixels. The truth is **partial**: only
these areas are labelled, so grounding is scored inside them (recall of each area, and the
share of grounded pixels inside labelled areas that carry the right class), not by IoU over
the scene.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import shapely

HERE = Path(__file__).resolve().parent
RASTER = HERE / "landsat" / "landsat_rgb_utm18n.tif"
TRUTH = HERE / "landsat" / "landsat_truth.gpkg"
CLOUD_MEAN = 120

#: id -> (class, [col0, row0, col1, row1], what it is)
AREAS = {
    "water-deep-1": ("water", [430, 380, 470, 420], "Tongue of the Ocean, deep and dark"),
    "water-deep-2": ("water", [440, 460, 480, 500], "Tongue of the Ocean, deep and dark"),
    "water-green-1": ("water", [450, 540, 490, 580], "green shallow water east of the island"),
    "water-green-2": ("water", [470, 620, 500, 660], "green shallow water east of the island"),
    "water-green-3": ("water", [600, 190, 660, 240], "green shallow bank east of the Tongue"),
    "water-green-4": ("water", [620, 300, 680, 340], "green shallow bank east of the Tongue"),
    "water-turquoise-1": ("water", [70, 300, 130, 360], "turquoise Great Bahama Bank"),
    "water-turquoise-2": ("water", [60, 420, 110, 470], "turquoise Great Bahama Bank"),
    "water-turquoise-3": ("water", [160, 30, 200, 60], "turquoise Great Bahama Bank"),
    "water-turquoise-4": ("water", [120, 250, 160, 290], "turquoise Great Bahama Bank"),
    "vegetation-1": ("vegetation", [330, 420, 370, 450], "Andros Island forest"),
    "vegetation-2": ("vegetation", [400, 530, 430, 560], "Andros Island forest"),
    "vegetation-3": ("vegetation", [270, 250, 300, 280], "Andros Island forest"),
    "vegetation-4": ("vegetation", [350, 330, 380, 360], "Andros Island forest"),
    "vegetation-5": ("vegetation", [240, 300, 270, 330], "Andros Island forest"),
}


def build() -> int:
    import geopandas as gpd
    import rasterio
    from rasterio.features import shapes

    with rasterio.open(RASTER) as src:
        px = src.read(masked=True).astype("float64")
        t, crs = src.transform, src.crs
    clear = (px.mean(axis=0) <= CLOUD_MEAN).filled(False)
    ids, classes, notes, geoms = [], [], [], []
    for oid, (cls, (c0, r0, c1, r1), note) in AREAS.items():
        keep = np.zeros(clear.shape, bool)
        keep[r0:r1, c0:c1] = clear[r0:r1, c0:c1]
        polys = [
            shapely.geometry.shape(g) for g, v in shapes(keep.astype("uint8"), mask=keep, transform=t) if v
        ]
        ids.append(oid)
        classes.append(cls)
        notes.append(note)
        geoms.append(shapely.union_all(polys))
    gdf = gpd.GeoDataFrame({"id": ids, "class": classes, "note": notes}, geometry=geoms, crs=crs.to_wkt())
    TRUTH.unlink(missing_ok=True)
    gdf.to_file(TRUTH, driver="GPKG", layer="truth")
    from georeason.catalog import add_truth_asset

    add_truth_asset(
        HERE / "landsat" / "landsat.json",
        TRUTH,
        "partial truth made by hand (data_catalog/make_landsat_truth.py): areas labelled water (deep, green, "
        "turquoise) or vegetation by visual interpretation, cloud pixels cut out",
    )
    return len(gdf)


if __name__ == "__main__":
    print(f"wrote {build()} labelled areas to {TRUTH}")
    sys.exit(0)
