"""Share of questions understood and answered right, by form, on the phrasing test set.

The set (``tests/phrasing_set.py``) holds questions written as different users write them
(short, long, terse, unit typos, with and without ``#``, mixed units, pixel references,
qualitative comparisons, compositional questions) over the shipped scenes
(``examples/town.geojson``, ``data_catalog/sample/sample_truth.geojson``) and a scene of
long and large objects, each with an answer computed with pyproj/shapely directly.

Run: ``python benchmarks/phrasing.py [--out benchmarks/results/phrasing.md]``. It prints
(and writes) a Markdown table: per form, the questions, how many were understood (parsed
into a program), and how many were right; wrong or not understood questions are listed
below it. ``tests/test_phrasing.py`` asserts the same run is 100 % right.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import phrasing_set as P  # noqa: E402


def run() -> str:
    t0 = time.perf_counter()
    cases = P.cases()
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    misses: list[str] = []
    for c in cases:
        result, detail = P.run_case(c)
        r = rows[c.form]
        r[0] += 1
        r[1] += result != "not understood"
        r[2] += result == "right"
        if result != "right":
            misses.append(f"- {c.form}: {c.question!r}: {result} ({detail})")
    seconds = time.perf_counter() - t0
    lines = [
        "| form | questions | understood | right |",
        "| --- | ---: | ---: | ---: |",
    ]
    total = [0, 0, 0]
    for form, (n, u, ok) in sorted(rows.items()):
        lines.append(f"| {form} | {n} | {u} ({100 * u / n:.0f} %) | {ok} ({100 * ok / n:.0f} %) |")
        total = [total[0] + n, total[1] + u, total[2] + ok]
    n, u, ok = total
    lines.append(f"| **all** | **{n}** | **{u} ({100 * u / n:.1f} %)** | **{ok} ({100 * ok / n:.1f} %)** |")
    scenes = sorted({c.scene for c in cases})
    out = "\n".join(lines) + "\n"
    out += f"\n{n} questions over the scenes {', '.join(scenes)}; {seconds:.0f} s including the reference answers.\n"
    if misses:
        out += "\nWrong or not understood:\n" + "\n".join(misses) + "\n"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = ap.parse_args()
    text = run()
    sys.stdout.write(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
