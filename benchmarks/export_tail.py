"""The `run` command's export tail alone, in process: wall and CPU seconds of
:func:`georeason.pipeline.export_item_outputs` (the flow's ``answer-export`` export) on one item.

Usage::

    # once: ground and answer the item, keep the answers and the scene in a pickle
    python benchmarks/export_tail.py /tmp/e2e/c8k --item scene8000 --save /tmp/export/c8k.pkl
    # then: time the export of those answers (--reps times, into the same folder)
    python benchmarks/export_tail.py --load /tmp/export/c8k.pkl --out /tmp/export/bench --reps 3

The first rep of a process pays the export's imports (pyogrio, geopandas, PIL); the
report prints each rep and the median of the reps after the first. Compare two versions of
the code by running this script under each (A B A B, whole processes or reps), on the same
pickle, with the same ``--out`` (the QGIS project's layer ids hash the output paths).
CPU seconds are the process's (every thread's) CPU time.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import time
from pathlib import Path


def _save(catalog: Path, item: str, pkl: Path, out: Path) -> None:
    from georeason.catalog import list_items
    from georeason.config import read_questions
    from georeason.geo.export.layers import answer_stem
    from georeason.pipeline import Pipeline

    info = next(i for i in list_items(catalog) if i.id == item)
    qs = [s.question for s in read_questions(catalog / "questions.txt")]
    item_out = out / item
    result = Pipeline().run(
        qs,
        raster=str(info.raster_path),
        item=item,
        mask_path=lambda n, q: item_out / "masks" / f"{answer_stem(n, q)}.tif",
        item_bands=info.bands,
    )
    pkl.parent.mkdir(parents=True, exist_ok=True)
    with open(pkl, "wb") as f:
        pickle.dump(
            {"item": item, "raster": str(info.raster_path), "answers": result.answers, "scene": result.scene},
            f,
        )
    print(f"saved {len(result.answers)} answers, {len(result.scene)} objects to {pkl}")


def _clear(item_out: Path) -> None:
    """Remove what an export wrote (the masks the answers point to stay)."""
    if item_out.exists():
        for p in item_out.iterdir():
            if p.name != "masks":
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def _time(pkl: Path, out: Path, reps: int) -> None:
    from georeason.pipeline import export_item_outputs

    with open(pkl, "rb") as f:
        d = pickle.load(f)
    item_out = out / d["item"]
    walls, cpus = [], []
    for rep in range(reps):
        _clear(item_out)
        t0, c0 = time.perf_counter(), time.process_time()
        export_item_outputs(d["item"], d["raster"], d["answers"], d["scene"], item_out)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"rep {rep + 1}: wall {walls[-1]:.2f} s, cpu {cpus[-1]:.2f} s")
    warm = slice(1, None) if reps > 1 else slice(None)
    print(
        f"export median (reps after the first): wall {statistics.median(walls[warm]):.2f} s, "
        f"cpu {statistics.median(cpus[warm]):.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("catalog", nargs="?", type=Path)
    ap.add_argument("--item")
    ap.add_argument("--save", type=Path, help="ground and answer the item, pickle the result here")
    ap.add_argument("--load", type=Path, help="time the export of a pickled result")
    ap.add_argument("--out", type=Path, default=Path("/tmp/export/bench"))
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if a.save:
        if a.catalog is None or a.item is None:
            ap.error("--save needs a catalog and --item")
        _save(a.catalog, a.item, a.save, a.out)
    elif a.load:
        _time(a.load, a.out, a.reps)
    else:
        ap.error("give --save or --load")


if __name__ == "__main__":
    main()
