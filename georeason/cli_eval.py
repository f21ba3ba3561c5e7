"""``georeason eval``: the evaluation harness on the command line (see :mod:`georeason.evaluation`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from georeason.errors import GeoreasonError

__all__ = ["eval_command"]


def eval_command(
    item: Annotated[
        list[str] | None, typer.Option(help="Catalog item(s) with a truth asset (repeatable).")
    ] = None,
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default: the shipped one).")] = None,
    raster: Annotated[Path | None, typer.Option(help="A raster to evaluate on (with --truth).")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth vector file (classes + geometries) for --raster.")
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option(help="oracle, grounded, recorded or direct (repeatable; default oracle)."),
    ] = None,
    grounder: Annotated[str, typer.Option(help="Grounder of the grounded mode.")] = "spectral",
    outputs: Annotated[
        Path | None, typer.Option(help="Recorded model outputs (JSONL) for --mode recorded.")
    ] = None,
    model_path: Annotated[str | None, typer.Option(help="Model weights for a model grounder.")] = None,
    grounder_option: Annotated[
        list[str] | None, typer.Option(help="Grounder option KEY=VALUE (repeatable).")
    ] = None,
    bands: Annotated[
        str | None, typer.Option(help="Band names of the raster in order, e.g. red,green,blue.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Number of questions per item.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed of the question generator.")] = 0,
    out: Annotated[
        Path, typer.Option(help="Output folder (report.json, report.md, charts, answers).")
    ] = Path("outputs/eval"),
    vlm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible API of the VLM for --mode direct.")
    ] = None,
    vlm_model: Annotated[
        str | None, typer.Option(help="Model name at --vlm-url (default: its first).")
    ] = None,
    tile_px: Annotated[int, typer.Option(help="Tile size for grounding.")] = 1024,
    overlap_px: Annotated[int, typer.Option(help="Tile overlap for grounding.")] = 128,
    min_confidence: Annotated[
        float | None, typer.Option(help="Grounded answers below this confidence abstain (default 0.3).")
    ] = None,
    flow: Annotated[
        bool, typer.Option("--flow", help="Run as the Prefect `evaluate` flow (artifacts).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the overall figures as JSON.")] = False,
) -> None:
    """Evaluate georeason on a labelled scene: EarthSpatialBench-style questions, scored per category."""
    from georeason.cli import _fail, _grounder_options, _local_prefect_defaults

    modes = list(mode or ["oracle"])
    items: list[str | None] = list(item or []) or [None]
    try:
        opts = _grounder_options(outputs, model_path, grounder_option)
        kwargs: dict[str, Any] = dict(
            modes=modes,
            n=n,
            seed=seed,
            grounder=grounder,
            grounder_options=opts,
            vlm_url=vlm_url,
            vlm_model=vlm_model,
            tile_px=tile_px,
            overlap_px=overlap_px,
            min_confidence=min_confidence,
        )
        if flow:
            _local_prefect_defaults()
            from georeason.flows.evaluate import evaluate

            reports = evaluate(
                items=[i for i in items if i],
                catalog=str(catalog) if catalog else None,
                raster=str(raster) if raster else None,
                truth=str(truth) if truth else None,
                bands=bands,
                out=str(out),
                **kwargs,
            )
        else:
            from georeason.evaluation import evaluate_items

            reports = evaluate_items(items, catalog, raster, truth, bands, out, **kwargs)
    except (GeoreasonError, typer.BadParameter) as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {name: {m: t["overall"] for m, t in r["tables"].items()} for name, r in reports.items()}
            )
            + "\n"
        )
        return
    _print_tables(reports)


def _print_tables(reports: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from georeason.evaluation import _HEAD, table_rows

    console = Console()
    for name, r in reports.items():
        for m in r["tables"]:
            t = Table(title=f"{name} · {m}")
            for col in ["category", "reference"] + _HEAD:
                t.add_column(col)
            for row in table_rows(r, m, "by_category_ref"):
                t.add_row(*row)
            o = table_rows({"tables": {m: {"x": [r["tables"][m]["overall"]]}}}, m, "x")[0]
            t.add_row("all", "all", *o, style="bold")
            console.print(t)
        for m, g in r.get("grounding", {}).items():
            for c, v in g["classes"].items():
                console.print(
                    f"{name} · {m} · {g['grounder']} · {c} ({v['extent']}): detection P {v['precision']:.3f} "
                    f"R {v['recall']:.3f} F1 {v['f1']:.3f} ({v['predicted']} found, {v['truth']} true); "
                    f"area IoU {v['iou']:.3f}"
                )
        if r.get("files"):
            console.print(f"report: [bold]{r['files']['markdown']}[/bold]")
