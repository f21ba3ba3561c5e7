"""Write ``sample/recorded_outputs.jsonl``: what a *perfect* model would print for the sample scene.

Run as ``python data_catalog/make_recorded.py`` (``--out FILE``, ``--tile-px``,
``--overlap-px``). Deterministic.

For every tile of the plan ``plan_tiles(sample_scene.tif, tile_px=1024, overlap_px=128)``
(so the windows match a run with ``--tile-px 1024 --overlap-px 128`` exactly), the
ground-truth objects of each class (``sample_truth.gpkg``, in the raster CRS) are
clipped to the tile window, converted to that tile's pixel coordinates and encoded the
way the model would print them. The geometry is perfect; the quantisation of each
format is real:

* ``building`` as **Qwen2.5-VL** JSON (``format: qwen2.5``): ``bbox_2d`` in integer
  absolute pixels of the model's input image, which is the tile resized by the
  Qwen2.5-VL processor (``smart_resize`` with the processor defaults ``min_pixels``
  3136 and ``max_pixels`` 12845056: 1024 x 1024 -> 1036 x 1036, recorded as
  ``input_size``), in a ``json`` code fence as the model prints it. Empty tiles: ``[]``.
* ``building`` again as **RemoteReasoner** (``format: remotereasoner``), a second
  source: ``<think>..</think><answer>[[x1, y1, x2, y2], ...]</answer>`` in integer pixels
  of the tile. Both sources see the same buildings; the seam merge's NMS keeps one.
* ``lake``, ``river``, ``water`` (lakes and the river) and ``vegetation`` as **Florence-2**
  ``<REFERRING_EXPRESSION_SEGMENTATION>`` raw text: polygons of ``<loc_N>`` x/y pairs,
  N = floor(coordinate / (side / 1000)) clipped to 0..999 (Florence-2's quantiser), the
  parts of one answer separated by ``<sep>``. Florence-2 always draws *something* for a
  referring expression, so tiles without such an object have no entry for that class
  (the recorded grounder gives no detections there). Polygons are simplified by 0.5 px
  first (the bins are 1.024 px), which keeps the file small.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import shapely

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample"
DEFAULT_OUT = SAMPLE / "recorded_outputs.jsonl"
ITEM = "sample"
TILE_PX, OVERLAP_PX = 1024, 128
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 56 * 56, 14 * 14 * 4 * 16384  # Qwen2.5-VL processor defaults
POLYGON_CLASSES = {
    "lake": ("lake",),
    "river": ("river",),
    "water": ("lake", "river"),
    "vegetation": ("vegetation",),
}
RES = "<REFERRING_EXPRESSION_SEGMENTATION>"


def qwen25_text(
    boxes: list[tuple[float, float, float, float]],
    size: tuple[int, int],
    input_size: tuple[int, int],
    label: str,
) -> str:
    """Qwen2.5-VL's JSON grounding answer for boxes given in tile pixels."""
    sx, sy = input_size[0] / size[0], input_size[1] / size[1]
    items = []
    for x0, y0, x1, y1 in boxes:
        b = [round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)]
        items.append("\t" + json.dumps({"bbox_2d": b, "label": label}))
    body = "[\n" + ",\n".join(items) + "\n]" if items else "[]"
    return f"```json\n{body}\n```"


def remotereasoner_text(boxes: list[tuple[float, float, float, float]], label: str) -> str:
    """RemoteReasoner's answer: integer pixel boxes inside ``<answer>``."""
    lst = [[round(x0), round(y0), round(x1), round(y1)] for x0, y0, x1, y1 in boxes]
    think = (
        f"The image shows {len(lst)} {label} object(s) with the typical shape and texture."
        if lst
        else f"I see no {label} in this image."
    )
    return f"<think>{think}</think><answer>{json.dumps(lst, separators=(', ', ': '))}</answer>"


def _bin(v: float, side: int) -> int:
    return int(min(999, max(0, math.floor(v / (side / 1000.0)))))


def florence_res_text(polygons: list, size: tuple[int, int]) -> str:
    """Florence-2 ``<REFERRING_EXPRESSION_SEGMENTATION>`` raw text for polygons in tile pixels."""
    rings = []
    for poly in polygons:
        ring = list(poly.exterior.coords)[:-1]
        toks = "".join(f"<loc_{_bin(x, size[0])}><loc_{_bin(y, size[1])}>" for x, y in ring)
        rings.append(toks)
    return "</s><s>" + "<sep>".join(rings) + "</s>"


def _polygons(g) -> list:
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]


def build(out: Path = DEFAULT_OUT, tile_px: int = TILE_PX, overlap_px: int = OVERLAP_PX) -> int:
    import geopandas as gpd

    from georeason.geo.grounding.detections import world_to_pixel
    from georeason.geo.raster.io import as_dataset
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.models.formats import smart_resize

    truth = gpd.read_file(SAMPLE / "sample_truth.gpkg")
    with as_dataset(str(SAMPLE / "sample_scene.tif")) as src:
        if truth.crs is None or truth.crs.to_wkt() != src.crs.to_wkt():
            truth = truth.to_crs(src.crs.to_wkt())
        tiles = list(plan_tiles(src, tile_px, overlap_px))
    by_class = {c: list(truth.geometry[truth["class"] == c]) for c in truth["class"].unique()}
    lines = []
    for tile in tiles:
        w = tile.window
        size = (int(w.width), int(w.height))
        frame = shapely.box(0, 0, size[0], size[1])
        base = {
            "item": ITEM,
            "tile": list(tile.index),
            "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
        }

        def clipped(classes):
            out = []
            for c in classes:
                for g in by_class.get(c, []):
                    pg = shapely.intersection(world_to_pixel(g, tile), frame)  # noqa: B023
                    if not pg.is_empty and pg.area > 0:
                        out.append(pg)
            return out

        boxes = [tuple(g.bounds) for g in clipped(["building"])]
        boxes.sort(key=lambda b: (b[1], b[0]))
        h_in, w_in = smart_resize(
            size[1], size[0], factor=28, min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS
        )
        lines.append(
            {
                **base,
                "class": "building",
                "format": "qwen2.5",
                "input_size": [w_in, h_in],
                "text": qwen25_text(boxes, size, (w_in, h_in), "building"),
            }
        )
        lines.append(
            {
                **base,
                "class": "building",
                "format": "remotereasoner",
                "text": remotereasoner_text(boxes, "building"),
            }
        )
        for cls, sources in POLYGON_CLASSES.items():
            polys = []
            for g in clipped(sources):
                polys.extend(_polygons(shapely.simplify(g, 0.5)))
            if not polys:
                continue
            polys.sort(key=lambda p: (p.bounds[1], p.bounds[0]))
            lines.append(
                {
                    **base,
                    "class": cls,
                    "format": "florence",
                    "task": RES,
                    "text": florence_res_text(polys, size),
                }
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    tmp.replace(out)
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tile-px", type=int, default=TILE_PX)
    ap.add_argument("--overlap-px", type=int, default=OVERLAP_PX)
    a = ap.parse_args(argv)
    n = build(a.out, a.tile_px, a.overlap_px)
    print(f"wrote {n} entries to {a.out} ({a.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
