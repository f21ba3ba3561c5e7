"""Per-tile spectral grounding CPU and the scene-level reads, in one process, with a digest.

``python benchmarks/tile_grounding.py CATALOG --item scene8000 --reps 3``

Two figures, both CPU seconds of this process (``time.process_time``), so they hold up on a
loaded machine better than wall time:

- **scene reads**: opening the raster with its block check, the threshold fit
  (``fit_thresholds``) and the fitness separations (``models.fitness._separations``): the
  passes over the whole file before the tiles are read;
- **tile grounding**: every tile of the pipeline's plan (default tile size and overlap) read
  into memory first, then ``SpectralGrounder.ground`` on each for the classes of the
  benchmark questions (lake, river, water, vegetation), ``--reps`` times; the median is
  reported with Mpx per CPU-second (tile pixels, overlaps included).

It prints a digest of every detection (label, score, kind, geometry WKB, in order) so two
versions of the code can be checked to give identical detections. ``--import-from DIR``
runs an older checkout instead of the installed package (``DIR/georeason`` laid out as the
installed package; the editable finder is removed from ``sys.meta_path``), e.g. to compare
with the code before a change::

    python benchmarks/side_by_side.py -n 3 --vs 'python benchmarks/tile_grounding.py C --item I \\
        --import-from /tmp/base-pkg' -- python benchmarks/tile_grounding.py C --item I
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog")
    ap.add_argument("--item", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--classes", default="lake,river,water,vegetation")
    ap.add_argument("--import-from", help="a folder holding an older georeason package to time instead")
    args = ap.parse_args(argv)
    if args.import_from:
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, args.import_from)

    import georeason
    from georeason.catalog import list_items
    from georeason.geo.raster.io import as_dataset, band_names, open_raster
    from georeason.geo.raster.tiling import plan_tiles, read_tile
    from georeason.models.fitness import _separations
    from georeason.models.registry import build_grounder, prepare_spec
    from georeason.pipeline import Pipeline

    info = next(i for i in list_items(args.catalog) if i.id == args.item)
    raster = str(info.raster_path)
    t0 = time.process_time()
    with open_raster(raster) as src:
        bands = list(band_names(src))
    spec = prepare_spec("spectral", raster, {"bands": bands})  # the threshold fit
    _separations(raster, bands)
    scene_reads = time.process_time() - t0
    grounder = build_grounder(spec)
    pipe = Pipeline("spectral")
    classes = args.classes.split(",")
    with as_dataset(raster, check_read=False) as src:
        tiles = list(plan_tiles(src, pipe.tile_px, pipe.overlap_px))
        t0 = time.process_time()
        data = [(read_tile(src, t), t) for t in tiles]
        reading = time.process_time() - t0
    times = []
    out: list = []
    for _ in range(args.reps):
        t0 = time.process_time()
        out = [grounder.ground(px, t, classes, bands) for px, t in data]
        times.append(time.process_time() - t0)
    mpx = sum(t.shape[0] * t.shape[1] for _, t in data) / 1e6
    digest = hashlib.sha256()
    n = 0
    for dets in out:
        for d in dets:
            n += 1
            digest.update(f"{d.label}|{d.score!r}|{d.kind}|".encode())
            digest.update(d.geometry.wkb)
    med = statistics.median(times)
    print(f"code: {georeason.__file__}")
    print(f"scene reads (block check, threshold fit, fitness): {scene_reads:.2f} CPU-s")
    print(f"tile reads: {len(data)} tiles, {mpx:.1f} Mpx, {reading:.2f} CPU-s")
    print(
        f"tile grounding: median {med:.2f} CPU-s of {args.reps} (min {min(times):.2f}, max {max(times):.2f}); "
        f"{mpx / med:.1f} Mpx per CPU-s"
    )
    print(f"{n} detections, digest {digest.hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
