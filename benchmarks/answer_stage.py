"""The answering stage alone, per question: CPU seconds and memory, on a grounded scene.

Grounding a 20000² scene takes minutes; this grounds an item once and keeps what
``answer_questions`` receives (the scene, pickled), then answers the catalog's questions
against it one at a time, printing per question the CPU seconds, the RSS before, the
process's maximum RSS after (``ru_maxrss``, which sees peaks inside GEOS calls that a
sampling thread misses) and the answer, with a digest of each pixel-answer mask.

    python benchmarks/answer_stage.py ground CATALOG ITEM SCENE.pkl
    python benchmarks/answer_stage.py answer SCENE.pkl QUESTIONS.txt OUTDIR [--base DIR] [--only 2,7]

``--base DIR``: import georeason from DIR instead (an older checkout laid out as the
installed package), for a side-by-side run in the same virtualenv. ``STEPS=1`` in the
environment also prints each program step's CPU seconds and RSS.
"""

from __future__ import annotations

import sys

ARGS = sys.argv[1:]
if "--base" in ARGS:
    _k = ARGS.index("--base")
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, ARGS[_k + 1])
    del ARGS[_k : _k + 2]

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ground(catalog: Path, item: str, out: Path) -> None:
    import georeason.pipeline as pm
    from georeason.catalog import list_items
    from georeason.config import read_questions

    info = next(i for i in list_items(catalog) if i.id == item)
    qs = [s.question for s in read_questions(catalog / "questions.txt")]

    class _Stop(Exception):
        pass

    def grab(compiled: Any, scene: Any, ctx: Any = None, **kw: Any) -> Any:
        with open(out, "wb") as f:
            pickle.dump({"scene": scene, "kw": kw, "raster": str(info.raster_path)}, f, protocol=5)
        raise _Stop

    pm.answer_questions = grab  # type: ignore[assignment]
    t = time.perf_counter()
    try:
        pm.Pipeline().run(qs, raster=str(info.raster_path), item=item, item_bands=info.bands)
    except _Stop:
        pass
    print(f"grounded and kept in {time.perf_counter() - t:.1f} s; max RSS {_maxrss_mb():.0f} MB")


def answer(pkl: Path, qfile: Path, out: Path, only: set[int] | None) -> None:
    import rasterio

    import georeason.pipeline as pm
    from georeason.config import read_questions
    from georeason.geo.raster.grid import RasterGrid

    proc = psutil.Process()
    print("georeason from", pm.__file__, flush=True)
    if os.environ.get("STEPS"):
        import georeason.geo.language.executor as ex

        def wrap(name: str) -> Any:
            f = getattr(ex._Run, name)

            def g(self: Any, a: Any, sid: str) -> Any:
                t = time.process_time()
                r = f(self, a, sid)
                print(
                    f"    {name:18s} cpu {time.process_time() - t:6.2f} s RSS "
                    f"{proc.memory_info().rss / 2**20:6.0f} maxrss {_maxrss_mb():6.0f}",
                    flush=True,
                )
                return r

            return g

        for n in [n for n in dir(ex._Run) if n.startswith("op_")]:
            setattr(ex._Run, n, wrap(n))
    out.mkdir(parents=True, exist_ok=True)
    with open(pkl, "rb") as f:
        d = pickle.load(f)  # noqa: S301 - a file this script wrote
    scene, kw = d["scene"], d["kw"]
    grid = RasterGrid.read(d["raster"])
    cqs = pm.compile_questions([s.question for s in read_questions(qfile)])
    print(f"scene: {len(scene)} objects, RSS {proc.memory_info().rss / 2**20:.0f} MB", flush=True)
    ctx = pm.AnswerContext(grid, lambda n, q: out / f"mask-{n}.tif")
    rows, masks, total = [], {}, 0.0
    grounded = {"lake", "river", "vegetation", "water"}
    for n, cq in enumerate(cqs, 1):
        if only and n not in only:
            continue
        before = proc.memory_info().rss
        c = time.process_time()
        ans = pm._answer_one(n, cq, scene, ctx, grounded, kw.get("failures", ()), None)
        cpu = time.process_time() - c
        total += cpu
        j = ans.to_json(geometry=False) if hasattr(ans, "to_json") else {"error": str(ans)}
        j.get("details", {}).pop("mask", None)
        rows.append(j)
        m = out / f"mask-{n}.tif"
        if m.exists():
            h = hashlib.sha256()
            with rasterio.open(m) as r:  # by rows: a 20000² mask is not read whole
                for row in range(0, r.height, 512):
                    h.update(r.read(1, window=((row, min(row + 512, r.height)), (0, r.width))).tobytes())
            masks[n] = h.hexdigest()[:16]
        print(
            f"q{n} cpu {cpu:7.2f} s RSS before {before / 2**20:6.0f} MB maxrss {_maxrss_mb():6.0f} MB "
            f"value {str(j.get('answer'))[:40]} {j.get('reason') or ''} mask {masks.get(n, '')}",
            flush=True,
        )
    with open(out / "answers.json", "w") as f:
        json.dump({"answers": rows, "masks": masks}, f, indent=1, default=str)
    print(f"answering CPU {total:.2f} s; max RSS of the process {_maxrss_mb():.0f} MB")


if __name__ == "__main__":
    if not ARGS or ARGS[0] not in ("ground", "answer"):
        sys.exit(__doc__)
    if ARGS[0] == "ground":
        ground(Path(ARGS[1]), ARGS[2], Path(ARGS[3]))
    else:
        only = None
        if "--only" in ARGS:
            k = ARGS.index("--only")
            only = {int(x) for x in ARGS[k + 1].split(",")}
            del ARGS[k : k + 2]
        answer(Path(ARGS[1]), Path(ARGS[2]), Path(ARGS[3]), only)
