"""The ``evaluate`` flow: :func:`georeason.evaluation.run_eval` per catalog item, as Prefect tasks.

Each item is one task (its report under ``OUT/<item>/``); the flow writes ``OUT/summary.md``
and publishes artifacts in the Prefect UI: the summary as markdown and the overall figures
per item and mode as a table. ``georeason eval --flow`` runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

__all__ = ["evaluate"]


@task(name="evaluate-item", cache_policy=NO_CACHE)
def evaluate_item(
    item: str | None,
    catalog: str | None,
    raster: str | None,
    truth: str | None,
    bands: str | None,
    out: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Questions, answers and scores for one item (or one raster + truth file)."""
    from georeason.evaluation import evaluate_items

    reports = evaluate_items([item], catalog, raster, truth, bands, Path(out), **settings)
    return next(iter(reports.values()))


@flow(name="evaluate", log_prints=True)
def evaluate(
    items: list[str] | None = None,
    catalog: str | None = None,
    raster: str | None = None,
    truth: str | None = None,
    bands: str | None = None,
    out: str = "outputs/eval",
    modes: list[str] | None = None,
    n: int = 200,
    seed: int = 0,
    grounder: str = "spectral",
    grounder_options: dict[str, Any] | None = None,
    vlm_url: str | None = None,
    vlm_model: str | None = None,
    tile_px: int = 1024,
    overlap_px: int = 128,
    min_confidence: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate each item; summary and artifacts at the end."""
    from georeason.evaluation import _err, _pct, render_summary

    settings = dict(
        modes=list(modes or ["oracle"]),
        n=n,
        seed=seed,
        grounder=grounder,
        grounder_options=grounder_options or {},
        vlm_url=vlm_url,
        vlm_model=vlm_model,
        tile_px=tile_px,
        overlap_px=overlap_px,
        min_confidence=min_confidence,
    )
    names: list[str | None] = list(items or []) or [None]
    futures = []
    for it in names:
        sub = str(Path(out) / it) if (it and len(names) > 1) else out
        futures.append((it, evaluate_item.submit(it, catalog, raster, truth, bands, sub, settings)))
    reports: dict[str, dict[str, Any]] = {}
    for it, fut in futures:
        rep = fut.result()
        reports[it or Path(rep["settings"]["raster"]).stem] = rep
    summary = render_summary(reports)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "summary.md").write_text(summary + "\n", encoding="utf-8")
    create_markdown_artifact(markdown="# georeason eval\n\n" + summary, key="georeason-eval-summary")
    create_table_artifact(
        table=[
            {
                "item": name,
                "mode": m,
                "questions": t["overall"]["n"],
                "accuracy": _pct(t["overall"]["accuracy"]),
                "answered": _pct(t["overall"]["answered"]),
                "median_rel_err": _err(t["overall"]["median_rel_err"]),
                "max_rel_err": _err(t["overall"]["max_rel_err"]),
            }
            for name, r in reports.items()
            for m, t in r["tables"].items()
        ],
        key="georeason-eval-overall",
    )
    for name, r in reports.items():
        print(
            f"{name}: " + ", ".join(f"{m} {_pct(t['overall']['accuracy'])}" for m, t in r["tables"].items())
        )
    return reports
