"""Build the synthetic sample scene and its ground truth, and copy the real Landsat scene.

Run as ``python -m georeason.data_catalog.make_sample`` or
``python data_catalog/make_sample.py`` (``--out DIR`` to write elsewhere). Deterministic:
the same seed gives the same pixels and vectors.

Writes, under ``data_catalog/``:

* ``sample/sample_scene.tif``: 2000 x 2000 px, 10 m, EPSG:32633 (UTM 33N, near 45.9 N
  15 E), 4 bands uint16 (blue, green, red, nir; surface reflectance x 10000, band
  descriptions set), tiled 256 x 256, DEFLATE + predictor 2, nodata 0 outside a tilted
  square footprint (a nodata collar, as in a real scene). Three lakes (lake-1 clearly
  the largest), a winding river, vegetation patches, bare fields, buildings and two
  asphalt roads. Spectra: water NDWI ~ +0.5, vegetation NDVI ~ +0.8, buildings the
  brightest; roads are dark enough not to join the buildings into one bright object.
* ``sample/sample_truth.geojson`` (RFC 7946, lon/lat) and ``sample/sample_truth.gpkg``
  (EPSG:32633): fields ``id`` and ``class`` (lake, river, building, road, vegetation,
  field); roads are LineStrings (centre lines), everything else polygons.
* ``landsat/landsat_rgb_utm18n.tif``: a copy of the real Landsat RGB scene with band
  descriptions red, green, blue set (metadata-only update of the copy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely import LineString, Polygon, affinity

SEED = 20240611
SIZE_PX = 2000
RES_M = 10.0
CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_090_000.0)  # upper-left corner (x, y)
BANDS = ("blue", "green", "red", "nir")

# Reflectance x 10000 for (blue, green, red, nir).
SPECTRA = {
    "background": (800, 1000, 1200, 2000),  # dry grass / mixed land: NDVI ~ 0.25
    "field": (1300, 1600, 1900, 2300),  # bare soil: NDVI ~ 0.1, bright-ish
    "vegetation": (300, 600, 350, 3500),  # forest: NDVI ~ 0.82
    "water": (600, 500, 300, 150),  # NDWI ~ 0.54
    "road": (900, 950, 1000, 1100),  # asphalt: darker than roofs, not vegetated
    "building": (2800, 2900, 3000, 3100),  # bright roofs
}

DEFAULT_OUT = Path(__file__).resolve().parent
LANDSAT_SRC = Path(__file__).resolve().parents[1].parent / "shared" / "real" / "landsat_rgb_utm18n.tif"


def _transform():
    return from_origin(ORIGIN[0], ORIGIN[1], RES_M, RES_M)


def _px_to_world(g):
    """Pixel (col, row) geometry -> UTM."""
    return affinity.affine_transform(g, [RES_M, 0, 0, -RES_M, ORIGIN[0], ORIGIN[1]])


def _blob(rng, cx, cy, r, roughness=0.18, n=64) -> Polygon:
    """An irregular closed shape (pixel coordinates) of mean radius r."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in (2, 3, 5):
        rad += roughness / k * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    return Polygon(np.column_stack([cx + r * rad * np.cos(ang), cy + r * rad * np.sin(ang)]))


def footprint_px() -> Polygon:
    """Valid-data footprint: a square of 1760 px rotated by 7 degrees about the centre."""
    c = SIZE_PX / 2
    sq = shapely.box(c - 880, c - 880, c + 880, c + 880)
    return affinity.rotate(sq, 7, origin=(c, c))


def build_objects(seed: int = SEED) -> list[tuple[str, str, object]]:
    """``(id, class, geometry in pixel coordinates)`` for every truth object."""
    rng = np.random.default_rng(seed)
    foot = footprint_px()
    inner = foot.buffer(-20)
    objs: list[tuple[str, str, object]] = []

    # River: winding band from the north edge to the east edge, in the north third.
    t = np.linspace(0, 1, 400)
    xs = 250 + 1750 * t
    ys = 120 + 480 * t + 70 * np.sin(t * 5 * np.pi)
    river_line = LineString(np.column_stack([xs, ys])).intersection(foot.buffer(-5))
    river = river_line.buffer(4.5, cap_style="flat")
    objs.append(("river-1", "river", river))

    roads = [
        ("road-1", LineString([(0, 1330), (900, 1300), (2000, 1360)]).intersection(foot.buffer(-5))),
        ("road-2", LineString([(1450, 820), (1480, 1300), (1440, 2000)]).intersection(foot.buffer(-5))),
    ]
    # lake-3, the smallest, is a pond just south of road-1: its shore is 8 px (80 m) from
    # the road's centre line, so "water within 150 m of road-1" has an answer.
    pond = _blob(rng, 430, 1500, 50)
    gap = shapely.distance(pond, roads[0][1])
    pond = affinity.translate(pond, 0, -(gap - 8.0))
    lakes = [
        ("lake-1", _blob(rng, 720, 1000, 190)),
        ("lake-2", _blob(rng, 1700, 1650, 75)),
        ("lake-3", pond),
    ]
    objs += [(i, "lake", g) for i, g in lakes]
    objs += [(i, "road", g) for i, g in roads]
    road_polys = [g.buffer(1.5, cap_style="flat") for _, g in roads]

    occupied = shapely.union_all(
        [river.buffer(8)] + [g.buffer(8) for _, g in lakes] + [p.buffer(3) for p in road_polys]
    )

    # Buildings: 32 rectangles 4-8 px (40-80 m) along the roads.
    buildings = []
    line1, line2 = roads[0][1], roads[1][1]
    tries = 0
    while len(buildings) < 32 and tries < 5000:
        tries += 1
        line = line1 if rng.random() < 0.6 else line2
        p = line.interpolate(rng.uniform(0.05, 0.95), normalized=True)
        side = rng.choice([-1, 1])
        off = rng.uniform(8, 25) * side
        w, h = rng.uniform(4, 8), rng.uniform(4, 8)
        if line is line1:
            cx, cy = p.x, p.y + off
        else:
            cx, cy = p.x + off, p.y
        b = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if not inner.contains(b) or b.buffer(3).intersects(occupied):
            continue
        buildings.append(b)
        occupied = occupied.union(b.buffer(3))
    objs += [(f"b{k + 1}", "building", g) for k, g in enumerate(buildings)]

    # Vegetation patches and bare fields, placed where nothing else is.
    def place(kind, n, make):
        nonlocal occupied
        out, tries = [], 0
        while len(out) < n and tries < 2000:
            tries += 1
            g = make()
            if not inner.contains(g) or g.buffer(6).intersects(occupied):
                continue
            out.append(g)
            occupied = occupied.union(g.buffer(6))
        return out

    veg = place(
        "vegetation",
        6,
        lambda: _blob(rng, rng.uniform(150, 1850), rng.uniform(150, 1850), rng.uniform(40, 110), 0.3),
    )
    objs += [(f"vegetation-{k + 1}", "vegetation", g) for k, g in enumerate(veg)]

    def field():
        cx, cy = rng.uniform(150, 1850), rng.uniform(150, 1850)
        w, h = rng.uniform(60, 150), rng.uniform(40, 100)
        return affinity.rotate(
            shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), rng.uniform(-30, 30)
        )

    fields = place("field", 6, field)
    objs += [(f"field-{k + 1}", "field", g) for k, g in enumerate(fields)]
    return objs


def render(objs, seed: int = SEED) -> np.ndarray:
    """The 4-band uint16 image (bands, rows, cols) for the objects."""
    rng = np.random.default_rng(seed + 1)
    shape = (SIZE_PX, SIZE_PX)
    order = ["background", "field", "vegetation", "water", "road", "building"]
    cls_img = np.zeros(shape, np.uint8)  # index into order
    layer = {
        "field": "field",
        "vegetation": "vegetation",
        "lake": "water",
        "river": "water",
        "building": "building",
    }
    for kind in ("field", "vegetation", "lake", "river", "building"):
        geoms = [g for _, c, g in objs if c == kind]
        if geoms:
            m = rasterize(geoms, out_shape=shape, all_touched=False).astype(bool)
            cls_img[m] = order.index(layer[kind])
        if kind == "vegetation":  # roads go over fields and vegetation, under water
            roads = [g.buffer(1.5, cap_style="flat") for _, c, g in objs if c == "road"]
            m = rasterize(roads, out_shape=shape).astype(bool)
            cls_img[m] = order.index("road")
    spectra = np.array([SPECTRA[k] for k in order], np.float32)  # (classes, 4)
    img = spectra[cls_img].transpose(2, 0, 1)  # (4, rows, cols)
    # Smooth, low-amplitude texture (compresses well with predictor 2): +-4% on a 32 px grid.
    coarse = rng.normal(0, 1, (4, SIZE_PX // 32 + 2, SIZE_PX // 32 + 2)).astype(np.float32)
    yy = np.linspace(0, SIZE_PX // 32, SIZE_PX)
    y0 = np.floor(yy).astype(int)
    fy = (yy - y0)[:, None]
    tex = np.empty((4, SIZE_PX, SIZE_PX), np.float32)
    for b in range(4):
        rows = coarse[b][y0] * (1 - fy) + coarse[b][y0 + 1] * fy  # (rows, cols_coarse)
        tex[b] = rows[:, y0] * (1 - fy.T) + rows[:, y0 + 1] * fy.T
    img *= 1 + 0.04 * tex
    img = np.clip(np.round(img / 4) * 4, 1, 10000).astype(np.uint16)  # quantise to 4: smaller file
    valid = rasterize([footprint_px()], out_shape=shape).astype(bool)
    img[:, ~valid] = 0
    return img


def write_scene(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=SIZE_PX,
        height=SIZE_PX,
        count=4,
        dtype="uint16",
        crs=CRS,
        transform=_transform(),
        nodata=0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=2,
        zlevel=9,
        interleave="pixel",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(SOURCE="georeason synthetic sample", SEED=str(SEED))


def write_truth(out_dir: Path, objs) -> None:
    import geopandas as gpd

    rows = []
    for oid, cls, g in objs:
        world = _px_to_world(g)
        if cls != "road":
            world = shapely.make_valid(shapely.normalize(world))
        rows.append({"id": oid, "class": cls, "geometry": world})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    gpkg = out_dir / "sample_truth.gpkg"
    gj = out_dir / "sample_truth.geojson"
    roads = (
        out_dir / "sample_roads.geojson"
    )  # the item's vector asset: what a user would have (an OSM-like road layer)
    for p in (gpkg, gj, roads):
        if p.exists():
            p.unlink()
    os.environ.setdefault("OGR_CURRENT_DATE", "2024-06-11T00:00:00Z")  # reproducible GPKG timestamps
    gdf.to_file(gpkg, driver="GPKG", layer="sample_truth", engine="pyogrio")
    gdf.to_crs("EPSG:4326").to_file(gj, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "YES"})
    gdf[gdf["class"] == "road"].to_crs("EPSG:4326").to_file(
        roads, driver="GeoJSON", engine="pyogrio", layer_options={"RFC7946": "YES"}
    )


def copy_landsat(dst: Path, src: Path = LANDSAT_SRC) -> None:
    """Copy the real Landsat scene and name its bands red, green, blue (metadata only)."""
    if not src.exists():
        print(f"note: {src} not found; Landsat copy skipped", file=sys.stderr)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    with rasterio.open(dst, "r+") as ds:
        for i, name in enumerate(("red", "green", "blue"), start=1):
            if not ds.descriptions[i - 1]:
                ds.set_band_description(i, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="data_catalog directory to write into")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-landsat", action="store_true", help="do not copy the Landsat scene")
    args = ap.parse_args(argv)
    objs = build_objects(args.seed)
    img = render(objs, args.seed)
    scene = args.out / "sample" / "sample_scene.tif"
    write_scene(scene, img)
    write_truth(args.out / "sample", objs)
    if not args.no_landsat:
        copy_landsat(args.out / "landsat" / "landsat_rgb_utm18n.tif")
    counts: dict[str, int] = {}
    for _, c, _ in objs:
        counts[c] = counts.get(c, 0) + 1
    print(f"wrote {scene} ({scene.stat().st_size / 1e6:.2f} MB); objects: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
