"""Memory and time of `run`'s answering phase alone, in one process, step by step.

    python benchmarks/answer_memory.py ground CATALOG --item ID --scene FILE.pkl
    python benchmarks/answer_memory.py answer FILE.pkl --out DIR [--no-export]

``ground`` grounds an item the way `run` does (``Pipeline.run_iter``, questions from
``CATALOG/questions.txt``) and pickles the scene, the raster path, the questions and what
the answering needs (grounded classes, fitness). ``answer`` loads it and answers and exports
the questions as the flow's ``answer-export`` task does (``iter_answers`` into
``ItemExport``: objects written in a background thread, the basemap read on another),
sampling this process's RSS every 20 ms, and prints the peak and, for each step (each
answer, each export, the objects' GeoPackage and GeoJSON, every quicklook), when it ran and
the highest RSS seen meanwhile. Prefect is not imported: the flow process holds ~110 MB more.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil


def ground(catalog: Path, item: str, questions: Path, scene_file: Path) -> None:
    import georeason.pipeline as pm
    from georeason.catalog import list_items
    from georeason.config import read_questions

    info = next(i for i in list_items(catalog) if i.id == item)
    qs = [s.question for s in read_questions(questions)]
    s = pm.Pipeline().run_iter(qs, raster=str(info.raster_path), item=item, item_bands=info.bands)
    with scene_file.open("wb") as fh:
        pickle.dump(
            {
                "scene": s.scene,
                "raster": str(info.raster_path),
                "qs": qs,
                "grounded": s.grounded,
                "fitness": s.fitness,
            },
            fh,
        )
    print(f"{len(s.scene)} objects -> {scene_file}")


def answer(scene_file: Path, out: Path, export: bool = True) -> None:
    import georeason.geo.export.item as item_mod
    import georeason.pipeline as pm
    from georeason.geo.export.layers import answer_stem
    from georeason.geo.raster.grid import RasterGrid
    from georeason.geo.raster.io import release_heap

    proc = psutil.Process()
    t0 = [time.perf_counter()]
    samples: list[tuple[float, int]] = []
    events: list[tuple[float, float, str]] = []

    def sampler() -> None:
        while True:
            samples.append((time.perf_counter() - t0[0], proc.memory_info().rss >> 20))
            time.sleep(0.02)

    def timed(owner: Any, name: str, label: str) -> None:
        fn: Callable[..., Any] = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter() - t0[0]
            try:
                return fn(*a, **k)
            finally:
                events.append((t, time.perf_counter() - t0[0], label))

        setattr(owner, name, wrapper)

    timed(item_mod, "write_layers", "objects.gpkg")
    timed(item_mod, "write_feature_collection", "objects.geojson")
    timed(item_mod, "write_quicklook", "quicklook")
    with scene_file.open("rb") as fh:
        d = pickle.load(fh)
    scene, raster = d["scene"], d["raster"]
    release_heap()
    threading.Thread(target=sampler, daemon=True).start()
    grid = RasterGrid.read(raster)
    cqs = pm.compile_questions(d["qs"])
    ctx = pm.AnswerContext(
        grid,
        lambda n, q: out / "masks" / f"{answer_stem(n, q)}.tif",
        None,
        pm.Pipeline()._post(scene, d["fitness"]),
        None,
    )
    stream = pm.iter_answers(cqs, scene, ctx, grounded=d["grounded"])
    t0[0] = time.perf_counter()
    cpu0 = time.process_time()
    exp = pm.ItemExport("item", raster, scene, out) if export else None
    try:
        for i in range(len(cqs)):
            t = time.perf_counter() - t0[0]
            outcome = next(stream)
            t2 = time.perf_counter() - t0[0]
            events.append((t, t2, f"answer q{i + 1}"))
            if exp is not None:
                exp.add(outcome)
                events.append((t2, time.perf_counter() - t0[0], f"export q{i + 1}"))
            del outcome
        if exp is not None:
            t = time.perf_counter() - t0[0]
            exp.finish()
            events.append((t, time.perf_counter() - t0[0], "finish"))
    finally:
        if exp is not None:
            exp.close()
    wall, cpu = time.perf_counter() - t0[0], time.process_time() - cpu0
    time.sleep(0.05)
    peak = max(samples, key=lambda s: s[1])
    print(
        f"{len(scene)} objects; wall {wall:.2f} s, CPU {cpu:.2f} s; RSS at start {samples[0][1]} MB, "
        f"peak {peak[1]} MB at {peak[0]:.2f} s"
    )
    for a, b, label in sorted(events):
        seen = [m for s, m in samples if a <= s <= b]
        print(f"  {a:7.2f}-{b:7.2f} s  {label:18s} max RSS {max(seen) if seen else '-'} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("ground", help="ground an item and pickle its scene")
    g.add_argument("catalog", type=Path)
    g.add_argument("--item", required=True)
    g.add_argument("--questions", type=Path, help="default: CATALOG/questions.txt")
    g.add_argument("--scene", type=Path, required=True, help="pickle to write")
    a = sub.add_parser("answer", help="answer and export from a pickled scene, with an RSS timeline")
    a.add_argument("scene", type=Path)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--no-export", action="store_true", help="answer only")
    args = ap.parse_args(argv)
    if args.cmd == "ground":
        ground(args.catalog, args.item, args.questions or args.catalog / "questions.txt", args.scene)
    else:
        answer(args.scene, args.out, export=not args.no_export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
