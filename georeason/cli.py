"""The ``georeason`` command line.

Contract (scripts and schedulers depend on it):

- exit 0: an answer, or an abstention with its reason;
- exit 2: bad input or a question no template understands (one message on stderr).

``ask`` and ``schema`` never import torch, transformers or prefect, so they start fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from georeason.errors import GeoreasonError

app = typer.Typer(
    name="georeason",
    help="Spatial reasoning on Earth imagery: exact answers to questions about georeferenced data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(exc: Exception) -> None:
    msg = str(exc).strip() or type(exc).__name__
    typer.echo(f"georeason: error: {msg}", err=True)
    raise typer.Exit(code=2)


def _pixel_transform(raster: Path):
    """(fn, crs) mapping raster column/row (pixel corner convention) to world coordinates."""
    import numpy as np
    import rasterio

    from georeason.errors import NotGeoreferencedError, RasterReadError

    try:
        with rasterio.open(raster) as src:
            transform, crs = src.transform, src.crs
    except rasterio.errors.RasterioIOError as exc:
        raise RasterReadError(f"cannot open raster {str(raster)!r}: {exc}; give a readable GeoTIFF") from exc
    if crs is None or transform.is_identity:
        raise NotGeoreferencedError(
            f"raster {str(raster)!r} is not georeferenced (no CRS or an identity transform); "
            "pixel coordinates cannot be placed on Earth: assign a CRS and geotransform first"
        )

    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = transform * (coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    from pyproj import CRS

    return fn, CRS.from_user_input(crs.to_wkt())


def _read_questions(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read questions file {str(path)!r}: {exc}") from exc
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                out.append(str(json.loads(line)["question"]))
            except (json.JSONDecodeError, KeyError) as exc:
                raise typer.BadParameter(
                    f"{str(path)!r} line {n}: a JSONL line needs a 'question' field ({exc})"
                ) from exc
        else:
            out.append(line)
    return out


def _print_answer(answer) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan")
    table.add_column()
    if answer.question:
        table.add_row("question", answer.question)
    style = "yellow" if answer.abstained else "bold green"
    table.add_row("answer", f"[{style}]{answer.text()}[/{style}]")
    table.add_row("kind", answer.kind)
    if answer.details:
        shown = {k: v for k, v in answer.details.items() if not isinstance(v, dict)}
        if shown:
            table.add_row("details", ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    if answer.evidence:
        table.add_row("evidence", ", ".join(f"{e.id} ({e.label})" for e in answer.evidence[:12])
                      + (" ..." if len(answer.evidence) > 12 else ""))
    console.print(table)


@app.command()
def ask(
    question: Annotated[Optional[str], typer.Argument(help="The question, in English.")] = None,
    objects: Annotated[Optional[Path], typer.Option("--objects", "-o", help="Vector file of objects (GeoJSON, GeoPackage, GeoParquet, Shapefile).")] = None,
    raster: Annotated[Optional[Path], typer.Option(help="Raster whose grid 'pixel' coordinates refer to.")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of --objects when the file has none, e.g. EPSG:4326.")] = None,
    id_field: Annotated[Optional[str], typer.Option(help="Field holding object ids (default: id, else first unique field).")] = None,
    class_field: Annotated[Optional[str], typer.Option(help="Field holding class labels (default: class/label/category/type).")] = None,
    query: Annotated[Optional[Path], typer.Option(help="Run a JSON query program instead of an English question.")] = None,
    questions: Annotated[Optional[Path], typer.Option(help="Answer many questions (one per line, or JSONL with 'question'); writes JSONL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Write the answer's evidence (.geojson/.gpkg/.parquet); with --questions, the JSONL file.")] = None,
) -> None:
    """Answer a question about objects in a vector file."""
    from georeason.geo.english import ask as ask_english
    from georeason.geo.executor import execute
    from georeason.geo.export import atomic_path, write_answer
    from georeason.geo.scene import read_scene

    given = sum(x is not None for x in (question, query, questions))
    if given != 1:
        _fail(typer.BadParameter("give exactly one of QUESTION, --query FILE or --questions FILE"))
    if objects is None:
        _fail(typer.BadParameter("--objects FILE is required (the objects the question is about)"))
    try:
        scene = read_scene(objects, crs=crs, id_field=id_field, class_field=class_field)
        pixel = _pixel_transform(raster) if raster is not None else None
        if questions is not None:
            lines = _read_questions(questions)
            target = out or None
            sink = []
            for q in lines:
                try:
                    sink.append(json.dumps(ask_english(q, scene, pixel=pixel).to_json()))
                except GeoreasonError as exc:
                    sink.append(json.dumps({"question": q, "error": str(exc), "abstained": True, "answer": None}))
            text = "\n".join(sink) + "\n"
            if target is None:
                sys.stdout.write(text)
            else:
                with atomic_path(target) as tmp:
                    tmp.write_text(text, encoding="utf-8")
                typer.echo(f"wrote {len(sink)} answers to {target}", err=True)
            return
        if query is not None:
            try:
                program = json.loads(query.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise GeoreasonError(f"cannot read query program {str(query)!r}: {exc}; give a JSON list of steps") from exc
            answer = execute(program, scene, pixel=pixel)
        else:
            answer = ask_english(question, scene, pixel=pixel)
        if out is not None:
            write_answer(answer, out)
    except (GeoreasonError, typer.BadParameter) as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json()) + "\n")
    else:
        _print_answer(answer)


@app.command()
def schema() -> None:
    """Print the JSON Schema of query programs (for constraining a model to valid programs)."""
    from georeason.geo.program import program_json_schema

    sys.stdout.write(json.dumps(program_json_schema(), indent=2) + "\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
