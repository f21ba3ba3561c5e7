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
from typing import Annotated

import typer

from georeason.errors import GeoreasonError

app = typer.Typer(
    name="georeason",
    help="Spatial reasoning on Earth imagery: exact answers to questions about georeferenced data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _flags_shown_as_flags() -> None:
    """typer 0.29 lists boolean flags with a value type (``--json <bool>``) although they take
    none (``--json true`` is refused): list them as flags."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_georeason", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return shown(self, ctx)

    display_type_rich._georeason = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_shown_as_flags()


@app.callback()
def _options(
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars (they show only on a terminal anyway).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step (Prefect task logs in `run`).")
    ] = False,
) -> None:
    """Spatial reasoning on Earth imagery: exact answers to questions about georeferenced data."""
    from georeason.progress import Verbosity, set_verbosity

    if quiet and verbose:
        _fail(typer.BadParameter("give --quiet or --verbose, not both"))
    set_verbosity(Verbosity.QUIET if quiet else Verbosity.VERBOSE if verbose else Verbosity.NORMAL)


def _local_prefect_defaults() -> None:
    """No network but loopback: the temporary/local Prefect server must not phone home."""
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # the temporary server (SQLite migrations, ~10-30 s on 2 busy cores) may start slowly
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _fail(exc: Exception) -> None:
    msg = str(exc).strip() or type(exc).__name__
    typer.echo(f"georeason: error: {msg}", err=True)
    raise typer.Exit(code=2)


def _grounder_options(outputs: Path | None, model_path: str | None, pairs: list[str] | None) -> dict:
    """Grounder options from --outputs, --model-path and repeated --grounder-option KEY=VALUE.

    A VALUE that parses as JSON (numbers, true/false, lists, objects) is taken as such,
    anything else as a string.
    """
    opts: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--grounder-option {pair!r}: give KEY=VALUE")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    if outputs is not None:
        opts["outputs"] = str(outputs)
    if model_path is not None:
        opts["model_path"] = model_path
    return opts


def _pixel_transform(raster: Path):
    """(fn, crs) mapping raster column/row (pixel corner convention) to world coordinates."""
    from georeason.geo.raster.masks import grid_of, pixel_transform

    return pixel_transform(grid_of(raster))


def _read_questions(path: Path) -> list[str]:
    """Questions from a text (one per line), JSONL (``question`` field) or YAML file."""
    from georeason.config import read_questions

    return [spec.question for spec in read_questions(path)]


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
            table.add_row(
                "details",
                ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()),
            )
    if answer.evidence:
        table.add_row("evidence", _evidence_text(answer.evidence))
    console.print(table)


def _evidence_text(evidence, per_class: int = 8) -> str:
    """Evidence as a person reads it: object ids grouped by class (``building: b1, b2;
    road: road-1``); a computed region (an internal step, no id of its own) is named as
    what it is, ``answer region``.

    Examples
    --------
    >>> from types import SimpleNamespace as E
    >>> _evidence_text([E(id="b1", label="building", role="object"), E(id="$s3", label="region", role="region"),
    ...                 E(id="road-1", label="road", role="reference"), E(id="b2", label="building", role="object")])
    'building: b1, b2; road: road-1; answer region'
    """
    groups: dict[str, list[str]] = {}
    regions = 0
    for e in evidence:
        if e.role == "region" or str(e.id).startswith("$"):
            regions += 1
            continue
        groups.setdefault(str(e.label), []).append(str(e.id))
    parts = [
        f"{cls}: "
        + ", ".join(ids[:per_class])
        + (f" ... ({len(ids)} in all)" if len(ids) > per_class else "")
        for cls, ids in groups.items()
    ]
    if regions:
        parts.append("answer region" if regions == 1 else f"{regions} answer regions")
    return "; ".join(parts)


def _build_scene(
    questions: list[str],
    objects: Path | None,
    raster: Path | None,
    item: str | None,
    catalog: Path | None,
    crs: str | None,
    id_field: str | None,
    class_field: str | None,
    grounder: str,
    tile_px: int,
    overlap_px: int,
    grounder_options: dict | None = None,
    bands: str | None = None,
):
    """The scene to answer against: vector objects, plus classes grounded on the raster.

    Grounding runs in this process (no Prefect) and only for the classes the questions
    need that no vector layer provides.
    """
    from georeason.geo.vector.scene import read_scene

    vector_paths: list[Path] = []
    item_bands: list[str] = []
    if item is not None:
        from georeason.catalog import get_item

        info = get_item(item, catalog)
        if raster is None:
            raster = info.raster_path
            item_bands = list(info.bands)
        vector_paths += list(info.vector_paths)
    vectors = None
    if objects is not None:
        vectors = read_scene(objects, crs=crs, id_field=id_field, class_field=class_field)
    for p in vector_paths:
        s = read_scene(p)
        vectors = s if vectors is None else vectors.extend(s)
    if raster is None:
        if vectors is None:
            raise typer.BadParameter(
                "give --objects FILE, --raster FILE or --item ID (what the question is about)"
            )
        return vectors, None, {}
    from georeason.models.registry import build_grounder, can_ground, prepare_spec
    from georeason.pipeline import classes_of_questions, grounded_scene, sequential_ground, split_classes

    classes = classes_of_questions(questions)
    _, to_ground, _ = split_classes(classes, vectors, lambda c: can_ground(grounder, c))
    fn, rcrs = _pixel_transform(raster)
    if not to_ground:
        if vectors is None:
            from georeason.geo.vector.scene import Scene

            vectors = Scene([], [], [], rcrs, source=str(raster))
        return vectors, raster, {}, {}
    from georeason.models.fitness import annotate_scene, assess, check_bands, raster_bands

    names = raster_bands(str(raster), bands, item_bands)
    check_bands(grounder, to_ground, names, str(raster))  # before any work; advice that works
    opts = dict(grounder_options or {})
    opts.setdefault("bands", names)
    if item is not None:
        opts["item"] = item
    g = build_grounder(prepare_spec(grounder, str(raster), opts))
    from georeason.progress import task

    with task(f"grounding {', '.join(to_ground)} (tiles)", total=None) as advance:
        found, failures = sequential_ground(
            str(raster),
            g,
            to_ground,
            tile_px=tile_px,
            overlap_px=overlap_px,
            progress=lambda n, total: advance(n, total=total),
            bands=names,
        )
    if failures:
        first = failures[0]
        raise GeoreasonError(
            f"{len(failures)} tiles of {raster} failed to ground (first {first.index}: {first.error})"
        )
    scene = grounded_scene(found, rcrs, vectors, source=str(raster))
    fitness = assess(str(raster), grounder, to_ground, names)
    annotate_scene(scene, fitness, grounder)
    return scene, raster, fitness


def _answer_line(ask_english, q: str, scene, pixel, grid_raster, mask: Path, n: int) -> str:
    w = _mask_writer(grid_raster, mask.with_name(f"{mask.stem}-{n:03d}{mask.suffix}"))
    try:
        return json.dumps(ask_english(q, scene, pixel=pixel, mask_writer=w).to_json())
    except GeoreasonError as exc:
        return json.dumps({"question": q, "error": str(exc), "abstained": True, "answer": None})


def _mask_writer(raster: Path | None, mask: Path):
    if raster is None:
        return None
    from georeason.geo.raster.masks import grid_of, mask_writer

    return mask_writer(raster, grid_of(raster), lambda sid: mask)


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question, in English.")] = None,
    objects: Annotated[
        Path | None,
        typer.Option(
            "--objects", "-o", help="Vector file of objects (GeoJSON, GeoPackage, GeoParquet, Shapefile)."
        ),
    ] = None,
    raster: Annotated[
        Path | None,
        typer.Option(
            help="Raster to ground classes on (when no vector layer has them) and whose grid 'pixel' coordinates refer to."
        ),
    ] = None,
    item: Annotated[str | None, typer.Option(help="Catalog item id: its raster and vector assets.")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog folder for --item (default: the shipped data_catalog/).")
    ] = None,
    crs: Annotated[
        str | None, typer.Option(help="CRS of --objects when the file has none, e.g. EPSG:4326.")
    ] = None,
    id_field: Annotated[
        str | None, typer.Option(help="Field holding object ids (default: id, else first unique field).")
    ] = None,
    class_field: Annotated[
        str | None, typer.Option(help="Field holding class labels (default: class/label/category/type).")
    ] = None,
    query: Annotated[
        Path | None, typer.Option(help="Run a JSON query program instead of an English question.")
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option(help="Answer many questions (one per line, or JSONL with 'question'); writes JSONL."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the answer's evidence (.geojson/.gpkg/.parquet); with --questions, the JSONL file."
        ),
    ] = None,
    mask: Annotated[Path, typer.Option(help="Where a pixel answer's mask GeoTIFF goes.")] = Path(
        "georeason-mask.tif"
    ),
    grounder: Annotated[str, typer.Option(help="Grounder for classes found on the raster.")] = "spectral",
    tile_px: Annotated[int, typer.Option(help="Tile size in pixels for grounding.")] = 1024,
    overlap_px: Annotated[int, typer.Option(help="Tile overlap in pixels.")] = 128,
    outputs: Annotated[
        Path | None, typer.Option(help="Recorded model outputs (JSONL) for --grounder recorded.")
    ] = None,
    model_path: Annotated[
        str | None, typer.Option(help="Model weights folder or id (local only) for model grounders.")
    ] = None,
    grounder_option: Annotated[
        list[str] | None,
        typer.Option(help="Grounder option KEY=VALUE (repeatable), e.g. base_url=http://127.0.0.1:8000/v1."),
    ] = None,
    planner: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible chat API (e.g. http://127.0.0.1:8000/v1) that writes programs for questions no template understands."
        ),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            help="Names of the raster's bands in order, e.g. red,green,blue (overrides the file's)."
        ),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option(help="Answers from grounded objects below this confidence abstain (0 answers always)."),
    ] = 0.3,
) -> None:
    """Answer a question about objects in a vector file and/or grounded on a raster."""
    from georeason.geo.export.layers import atomic_path, write_answer_files
    from georeason.geo.language.english import ask as ask_english
    from georeason.geo.language.executor import execute

    given = sum(x is not None for x in (question, query, questions))
    if given != 1:
        _fail(typer.BadParameter("give exactly one of QUESTION, --query FILE or --questions FILE"))
    try:
        lines = _read_questions(questions) if questions is not None else ([question] if question else [])
        scene, grid_raster, fitness = _build_scene(
            lines,
            objects,
            raster,
            item,
            catalog,
            crs,
            id_field,
            class_field,
            grounder,
            tile_px,
            overlap_px,
            _grounder_options(outputs, model_path, grounder_option),
            bands,
        )
        if planner is not None:
            import os

            from georeason.models.language.planner import answer_with_fallback, chat_client

            chat = chat_client(planner, os.environ.get("GEOREASON_PLANNER_MODEL") or None)

            def ask_english(q, scene, pixel=None, mask_writer=None):  # templates first, then the planner
                return answer_with_fallback(q, scene, chat, pixel=pixel, mask_writer=mask_writer)

        from georeason.models.fitness import apply_confidence, confident_asker

        ask_english = confident_asker(ask_english, scene, fitness, min_confidence)
        pixel = _pixel_transform(grid_raster) if grid_raster is not None else None
        writer = _mask_writer(grid_raster, mask)
        if questions is not None:
            from georeason.progress import task

            sink = []
            with task("questions", total=len(lines)) as advance:
                for n, q in enumerate(lines, 1):
                    sink.append(_answer_line(ask_english, q, scene, pixel, grid_raster, mask, n))
                    advance(1)
            text = "\n".join(sink) + "\n"
            if out is None:
                sys.stdout.write(text)
            else:
                with atomic_path(out) as tmp:
                    tmp.write_text(text, encoding="utf-8")
                typer.echo(f"wrote {len(sink)} answers to {out}", err=True)
            return
        if query is not None:
            try:
                program = json.loads(query.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise GeoreasonError(
                    f"cannot read query program {str(query)!r}: {exc}; give a JSON list of steps"
                ) from exc
            answer = apply_confidence(
                execute(program, scene, pixel=pixel, mask_writer=writer), scene, fitness, min_confidence
            )
        else:
            answer = ask_english(question, scene, pixel=pixel, mask_writer=writer)
        if out is not None:
            written = write_answer_files(answer, out)
            if written != [out]:  # one file per geometry type: say where they went
                typer.echo("wrote " + ", ".join(str(w) for w in written), err=True)
    except (GeoreasonError, typer.BadParameter) as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json()) + "\n")
    else:
        _print_answer(answer)


@app.command()
def schema() -> None:
    """Print the JSON Schema of query programs (for constraining a model to valid programs)."""
    from georeason.geo.language.program import program_json_schema

    sys.stdout.write(json.dumps(program_json_schema(), indent=2) + "\n")


@app.command()
def run(
    catalog: Annotated[
        Path | None, typer.Option(help="STAC catalog folder (default: the shipped data_catalog/).")
    ] = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            help="Questions file: YAML/JSONL of {question, item?} or text (default: the catalog's questions.yaml)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: outputs).")] = None,
    grounder: Annotated[
        str | None, typer.Option(help="Grounder for classes not in vector layers (default: spectral).")
    ] = None,
    item: Annotated[list[str] | None, typer.Option(help="Only these catalog items (repeatable).")] = None,
    objects: Annotated[
        list[Path] | None, typer.Option(help="Extra vector layers of objects (repeatable).")
    ] = None,
    tile_px: Annotated[int | None, typer.Option(help="Tile size in pixels (default: 1024).")] = None,
    overlap_px: Annotated[int | None, typer.Option(help="Tile overlap in pixels (default: 128).")] = None,
    max_task_runs: Annotated[
        int | None, typer.Option(help="At most this many tile-batch task runs per item (default: 200).")
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            help="Prefect result storage (the tile cache); default OUT/.results or $GEOREASON_RESULTS."
        ),
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Run tasks on an existing Dask cluster (tcp://host:8786).")
    ] = None,
    dask_workers: Annotated[
        int | None, typer.Option(help="Run tasks on a local Dask cluster of N worker processes.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Worker threads of the default thread-pool runner (default: 4).")
    ] = None,
    outputs: Annotated[
        Path | None, typer.Option(help="Recorded model outputs (JSONL) for --grounder recorded.")
    ] = None,
    model_path: Annotated[
        str | None, typer.Option(help="Model weights folder or id (local only) for model grounders.")
    ] = None,
    grounder_option: Annotated[
        list[str] | None, typer.Option(help="Grounder option KEY=VALUE (repeatable).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML settings (RunConfig fields and a 'model' section); flags override it."),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(help="Band names of the rasters in order, e.g. red,green,blue (overrides eo:bands)."),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(help="Answers from grounded objects below this confidence abstain (default 0.3)."),
    ] = None,
) -> None:
    """Run the `answer` flow (Prefect) on catalog items x questions; write OUT/answers.jsonl and files."""
    import os

    from georeason.config import RunConfig, default_results_dir

    try:
        cfg = RunConfig.load(
            config,
            catalog=catalog,
            questions=questions,
            out=out,
            grounder=grounder,
            tile_px=tile_px,
            overlap_px=overlap_px,
            max_task_runs=max_task_runs,
            dask_address=dask_address,
            dask_workers=dask_workers,
            results_dir=results,
            threads=threads,
            model_path=model_path,
        )
        options = {**cfg.grounder_options, **_grounder_options(outputs, cfg.model_path, grounder_option)}
        if bands is not None:
            from georeason.models.fitness import parse_bands

            options["bands"] = parse_bands(bands)
        if min_confidence is not None:
            options["min_confidence"] = float(min_confidence)
        _local_prefect_defaults()
        from georeason.progress import Verbosity, enabled, live, verbosity

        if enabled() and verbosity() < Verbosity.VERBOSE:
            # progress bars instead of a log line per task (--verbose shows the logs)
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        results_dir = (cfg.results_dir or default_results_dir(cfg.out)).resolve()
        os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(results_dir))
        from georeason.flows.answer import answer
        from georeason.flows.runners import task_runner

        runner = task_runner(
            dask_address=cfg.dask_address, dask_workers=cfg.dask_workers, threads=cfg.threads
        )
        with live():
            result = _run_flow(answer, runner, cfg, options, item, objects, results_dir)
    except GeoreasonError as exc:
        _fail(exc)
    _print_run(result)
    if result["errors"]:
        raise typer.Exit(code=1)


def _run_flow(answer, runner, cfg, options, item, objects, results_dir):
    """The `answer` flow with the run's settings (the CLI draws progress bars around it)."""
    result = answer.with_options(task_runner=runner)(
        catalog=str(cfg.catalog) if cfg.catalog else None,
        questions=str(cfg.questions) if cfg.questions else None,
        out=str(cfg.out),
        grounder=cfg.grounder,
        grounder_options=options,
        items=item,
        objects=[str(p) for p in objects or []],
        tile_px=cfg.tile_px,
        overlap_px=cfg.overlap_px,
        max_task_runs=cfg.max_task_runs,
        results_dir=str(results_dir),
    )
    return result


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="Cron schedule (UTC) of the batch flow.")] = "0 2 * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "georeason-nightly",
    catalog: Annotated[
        Path | None, typer.Option(help="STAC catalog folder (default: the shipped one).")
    ] = None,
    questions: Annotated[
        Path | None, typer.Option(help="Questions file (default: the catalog's questions.yaml).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder; each run writes OUT/<timestamp>/.")] = Path(
        "outputs/batch"
    ),
    grounder: Annotated[str, typer.Option(help="Grounder for classes not in vector layers.")] = "spectral",
) -> None:
    """Serve the `batch` flow on a cron schedule against the Prefect server in PREFECT_API_URL (blocks)."""
    _local_prefect_defaults()
    from georeason.flows.deploy import serve as serve_batch

    serve_batch(
        name=name,
        cron=cron,
        catalog=str(catalog.resolve()) if catalog else None,
        questions=str(questions.resolve()) if questions else None,
        out=str(out.resolve()),
        grounder=grounder,
    )


def _print_run(result) -> None:
    from rich.console import Console
    from rich.table import Table

    from georeason.flows.answer import _fmt

    table = Table(title="georeason answers", show_lines=False)
    for col in ("item", "question", "answer", "kind"):
        table.add_column(col, overflow="fold")
    for r in result["rows"]:
        style = "red" if r.get("error") else "yellow" if r.get("abstained") else ""
        table.add_row(str(r.get("item")), r["question"], _fmt(r), str(r.get("kind") or ""), style=style)
    console = Console()
    console.print(table)
    console.print(
        f"{result['answered']} answered, {result['abstained']} abstained, {result['errors']} errors, "
        f"{result['failed_tiles']} tile failures; answers in [bold]{result['answers']}[/bold]"
    )


def _register_subcommands() -> None:
    from georeason.cli_catalog import catalog_app

    app.add_typer(catalog_app, name="catalog")
    from georeason.cli_eval import eval_command

    app.command(name="eval")(eval_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
