"""The seam merge alone: CPU seconds of :func:`georeason.pipeline.merge_batches` on a scene's
grounded tiles, and a digest of the objects it gives.

``python benchmarks/seam_merge.py CATALOG --item scene8000 --reps 3 [--tiles-cache FILE]``

The item's tiles are grounded once, in this process, for the classes its ``questions.txt``
grounds (as ``ask`` plans them: the same tiles and batches); ``--tiles-cache`` keeps the
grounded batches in a pickle so that another checkout can merge the very same input (run
this script with that checkout first on ``PYTHONPATH``). Each rep merges all batches with
the tile plan (the streamed, row-by-row merge ``ask`` and ``run`` use) and prints its CPU
seconds (``time.process_time``: the load of other processes does not count); the digest
(ids, labels, scores, tiles and WKB of every object) must be the same for two checkouts
that merge alike.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import statistics
import sys
import time
from pathlib import Path


def grounded(catalog: Path, item: str, questions: Path, cache: Path | None) -> tuple:
    """``(job, tiles, batch results)`` of the item, from ``cache`` when it exists."""
    if cache is not None and cache.exists():
        with cache.open("rb") as fh:
            return pickle.load(fh)
    from georeason.catalog import list_items
    from georeason.models.registry import can_ground
    from georeason.pipeline import Pipeline, classes_of_questions, compile_questions, local_map, split_classes

    info = next(i for i in list_items(catalog) if i.id == item)
    texts = [q for q in questions.read_text(encoding="utf-8").splitlines() if q.strip()]
    _, classes, _ = split_classes(
        classes_of_questions(compile_questions(texts)), None, lambda c: can_ground("spectral", c)
    )
    job, tiles, batches = Pipeline().plan_ground(str(info.raster_path), classes)
    result = (job, tiles, list(local_map(job, batches)))
    if cache is not None:
        with cache.open("wb") as fh:
            pickle.dump(result, fh)
    return result


def digest(objects: list) -> str:
    h = hashlib.sha256()
    for o in objects:
        h.update(repr((o.id, o.label, round(o.score, 12), o.tiles)).encode())
        h.update(o.geometry.wkb)
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--item", required=True)
    ap.add_argument("--questions", type=Path, help="default: CATALOG/questions.txt")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tiles-cache", type=Path, help="pickle of the grounded batches (written if absent)")
    args = ap.parse_args(argv)
    from georeason.pipeline import merge_batches

    job, tiles, results = grounded(
        args.catalog, args.item, args.questions or args.catalog / "questions.txt", args.tiles_cache
    )
    cpu = []
    for _ in range(args.reps):
        t0 = time.process_time()
        objects, failures = merge_batches(iter(results), job.classes, job.spec, plan=tiles)
        cpu.append(time.process_time() - t0)
    print(f"georeason from {Path(sys.modules['georeason'].__file__ or '').parent}")
    print(f"load average {os.getloadavg()}")
    print(
        f"{len(tiles)} tiles, {len(objects)} objects, digest {digest(objects)}; merge CPU s "
        f"median {statistics.median(cpu):.3f} (min {min(cpu):.3f}, max {max(cpu):.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
