"""Build the ``neon`` catalog item: a real 0.1 m aerial RGB tile with 61 hand-labelled tree crowns.

Run as ``python data_catalog/make_neon.py`` (deterministic but for the GeoPackage's own
timestamps). Inputs, shipped in ``data_catalog/neon/``:

* ``OSBS_029.tif`` — 400 x 400 px, uint8 RGB, 0.1 m, EPSG:32617 (UTM 17N); NEON AOP camera
  data, site OSBS (Ordway-Swisher Biological Station, Florida). NEON data are openly
  released; attribution: National Ecological Observatory Network (NEON), Battelle.
* ``OSBS_029.csv`` — 61 hand-annotated tree-crown boxes in *pixel* coordinates (column/row
  from the top-left corner; ``image_path,xmin,ymin,xmax,ymax,label``), from the DeepForest
  project's sample data (weecology/DeepForest, MIT licence).

Outputs:

* ``neon_truth.gpkg`` — the boxes as polygons in the raster CRS (pixel corners mapped with the
  raster's affine transform), ids ``tree-1`` .. ``tree-61`` in CSV order, class ``tree``. It is
  attached to the item as the asset ``truth`` with role ``truth`` (not ``vector``): questions
  on the item are answered from the imagery, and ``georeason eval`` scores them against it.
* ``recorded_outputs.jsonl`` — the same boxes as a **Qwen2.5-VL** grounding answer
  (``bbox_2d`` JSON in pixels of the model's resized input, see ``make_recorded.py``) for each
  tile of ``plan_tiles(tile_px=1024, overlap_px=128)``, so ``--grounder recorded`` replays a
  perfect tree detector through the real parser (its quantisation included).
* the item JSON in ``data_catalog/neon/`` and its link in ``data_catalog/catalog.json``; the
  ``sample`` item gets its ground truth (``sample_truth.gpkg``) attached as asset ``truth`` too.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import shapely

HERE = Path(__file__).resolve().parent
NEON = HERE / "neon"
RASTER = NEON / "OSBS_029.tif"
LABELS = NEON / "OSBS_029.csv"
TRUTH = NEON / "neon_truth.gpkg"
RECORDED = NEON / "recorded_outputs.jsonl"
ITEM = "neon"
SOURCE = (
    "NEON AOP RGB camera tile OSBS_029 (National Ecological Observatory Network, openly released); "
    "tree-crown boxes hand-annotated by the DeepForest project (weecology/DeepForest, MIT licence)"
)


def read_boxes(path: Path = LABELS) -> list[tuple[float, float, float, float]]:
    """Pixel boxes ``(xmin, ymin, xmax, ymax)`` from the DeepForest-style CSV, in file order."""
    with open(path, newline="", encoding="utf-8") as f:
        return [
            (float(r["xmin"]), float(r["ymin"]), float(r["xmax"]), float(r["ymax"]))
            for r in csv.DictReader(f)
        ]


def write_truth() -> int:
    import geopandas as gpd
    import rasterio

    with rasterio.open(RASTER) as src:
        t, crs = src.transform, src.crs
    geoms = [
        shapely.transform(shapely.box(*b), lambda xy: np.column_stack(t * (xy[:, 0], xy[:, 1])))
        for b in read_boxes()
    ]
    gdf = gpd.GeoDataFrame(
        {"id": [f"tree-{i}" for i in range(1, len(geoms) + 1)], "class": ["tree"] * len(geoms)},
        geometry=geoms,
        crs=crs.to_wkt(),
    )
    TRUTH.unlink(missing_ok=True)
    gdf.to_file(TRUTH, driver="GPKG", layer="truth")
    return len(gdf)


def write_recorded(tile_px: int = 1024, overlap_px: int = 128) -> int:
    sys.path.insert(0, str(HERE))
    from make_recorded import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, qwen25_text

    from georeason.geo.raster.io import as_dataset
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.parsers import smart_resize

    boxes = read_boxes()
    with as_dataset(str(RASTER)) as src:
        tiles = list(plan_tiles(src, tile_px, overlap_px))
    lines = []
    for tile in tiles:
        w = tile.window
        size = (int(w.width), int(w.height))
        frame = shapely.box(
            int(w.col_off), int(w.row_off), int(w.col_off) + size[0], int(w.row_off) + size[1]
        )
        inside = []
        for b in boxes:
            g = shapely.intersection(shapely.box(*b), frame)
            if not g.is_empty and g.area > 0:
                x0, y0, x1, y1 = g.bounds
                inside.append((x0 - w.col_off, y0 - w.row_off, x1 - w.col_off, y1 - w.row_off))
        h_in, w_in = smart_resize(
            size[1], size[0], factor=28, min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS
        )
        lines.append(
            {
                "item": ITEM,
                "tile": list(tile.index),
                "window": [int(w.col_off), int(w.row_off), size[0], size[1]],
                "class": "tree",
                "format": "qwen2.5",
                "input_size": [w_in, h_in],
                "text": qwen25_text(inside, size, (w_in, h_in), "tree"),
            }
        )
    RECORDED.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return len(lines)


def write_item() -> None:
    from georeason.catalog import add_item, add_truth_asset

    add_item(HERE, RASTER, item_id=ITEM, replace=True)
    item_json = HERE / ITEM / f"{ITEM}.json"
    add_truth_asset(
        item_json,
        TRUTH,
        SOURCE + "; pixel boxes of OSBS_029.csv mapped to EPSG:32617 polygons by data_catalog/make_neon.py",
    )
    # the synthetic sample's ground truth, attached the same way (eval scores against it)
    add_truth_asset(
        HERE / "sample" / "sample.json",
        HERE / "sample" / "sample_truth.gpkg",
        "every object of the synthetic sample scene, as drawn by data_catalog/make_sample.py",
    )


def main() -> int:
    n = write_truth()
    k = write_recorded()
    write_item()
    print(f"wrote {n} truth boxes to {TRUTH}, {k} recorded tile answers to {RECORDED}, item {ITEM!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
