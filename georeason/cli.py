"""The ``georeason`` command line.

Contract (scripts and schedulers depend on it):

- exit 0: an answer, or an abstention with its reason;
- exit 1: a run that finished with errors or tile failures; an internal error (one line,
  ``--debug`` shows the traceback);
- exit 2: bad input or a question no template understands (one message on stderr), found
  before any heavy work.

``ask`` and ``schema`` never import torch, transformers or prefect, so they start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperOption

from georeason.cli_ask import DEBUG, ask_command, error_line, grounder_options_of, internal_line
from georeason.cli_catalog import catalog_app, policy_of
from georeason.errors import GeoreasonError
from georeason.models.fitness import DEFAULT_MIN_CONFIDENCE, parse_bands
from georeason.progress import Verbosity, enabled, live, set_verbosity, verbosity

# Start-up: `ask` about a vector file must not pay for what it does not use (rasterio,
# scipy, pystac, rich off a terminal, pyogrio ...), so the rest is imported where used.
if TYPE_CHECKING:
    from georeason.catalog import AssetPolicy
    from georeason.config import RunConfig
    from georeason.workers import WorkerPool

__all__ = ["app", "main", "fail", "grounder_options_of", "local_prefect_defaults"]

app = typer.Typer(
    name="georeason",
    help="Spatial reasoning on Earth imagery: exact answers to questions about georeferenced data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ``--debug``: one flag for the typer commands and ask's typer-free implementation
_DEBUG = DEBUG


def _internal(exc: BaseException) -> None:
    """An unexpected exception: one line (exit 1), the traceback only with ``--debug``."""
    msg = " ".join(str(exc).split()) or "(no message)"
    _internal_line(f"{type(exc).__name__}: {msg}", "".join(traceback.format_exception(exc)))


def _internal_line(what: str, trace: str | None) -> None:
    """``georeason: internal error: KeyError: ...`` (exit 1); ``trace`` printed with ``--debug``."""
    internal_line(what, trace)
    raise typer.Exit(code=1)


def _policy(allow_external: bool, asset_root: list[Path] | None) -> AssetPolicy:
    return policy_of(allow_external, asset_root)


AllowExternal = Annotated[
    bool,
    typer.Option(
        "--allow-external",
        help="Trust the catalog: follow absolute paths and symlinks leading outside its folder (URLs stay refused).",
    ),
]
AssetRoot = Annotated[
    list[Path] | None,
    typer.Option("--asset-root", metavar="DIR", help="Also allow catalog assets inside DIR (repeatable)."),
]


def _flags_shown_as_flags() -> None:
    """typer 0.29 lists boolean flags with a value type (``--json <bool>``) although they take
    none (``--json true`` is refused): list them as flags."""
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
    debug: Annotated[
        bool, typer.Option("--debug", help="Show Python tracebacks of errors (for bug reports).")
    ] = False,
) -> None:
    """Spatial reasoning on Earth imagery: exact answers to questions about georeferenced data."""
    _DEBUG["on"] = debug
    if quiet and verbose:
        fail(typer.BadParameter("give --quiet or --verbose, not both"))
    set_verbosity(Verbosity.QUIET if quiet else Verbosity.VERBOSE if verbose else Verbosity.NORMAL)


def local_prefect_defaults() -> None:
    """No network but loopback: the temporary/local Prefect server must not phone home."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # the temporary server (SQLite migrations, ~10-30 s on 2 busy cores) may start slowly
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def fail(exc: Exception) -> None:
    error_line(exc)
    raise typer.Exit(code=2)


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
    ] = DEFAULT_MIN_CONFIDENCE,
    evidence_geometry: Annotated[
        bool,
        typer.Option(
            help="With --questions: write every evidence object's geometry into the JSONL (by default objects "
            "from the vector files are named by id, class and role; computed regions and grounded objects keep theirs)."
        ),
    ] = False,
    allow_external: AllowExternal = False,
    asset_root: AssetRoot = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Processes grounding the raster's tiles (default: one per CPU for a raster of 16 tiles "
            "or more, else 1; 1 grounds in this process)."
        ),
    ] = None,
) -> None:
    """Answer a question about objects in a vector file and/or grounded on a raster."""
    ask_command(
        question=question,
        objects=objects,
        raster=raster,
        item=item,
        catalog=catalog,
        crs=crs,
        id_field=id_field,
        class_field=class_field,
        query=query,
        questions=questions,
        as_json=as_json,
        out=out,
        mask=mask,
        grounder=grounder,
        tile_px=tile_px,
        overlap_px=overlap_px,
        outputs=outputs,
        model_path=model_path,
        grounder_option=grounder_option,
        planner=planner,
        bands=bands,
        min_confidence=min_confidence,
        evidence_geometry=evidence_geometry,
        allow_external=allow_external,
        asset_root=asset_root,
        workers=workers,
    )


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
        int | None, typer.Option(help="Worker threads of the thread runner (default: 4).")
    ] = None,
    runner: Annotated[
        str | None,
        typer.Option(
            help="Where tile batches are grounded: process (worker processes; default with more than "
            "one CPU), thread (GIL-releasing model backends), dask (with --dask-*)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes of the process runner (default: one per CPU).")
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
    allow_external: AllowExternal = False,
    asset_root: AssetRoot = None,
) -> None:
    """Run the `answer` flow (Prefect) on catalog items x questions; write OUT/answers.jsonl and files."""
    from georeason.prefect_server import (
        check_api_url,
        configured_api_url,
        import_concurrently,
        temporary_server,
    )

    local_prefect_defaults()
    api_url = configured_api_url()
    # no server configured: start a temporary one first (a subprocess by default), so it
    # boots while the run imports and checks its inputs
    try:
        server = temporary_server().start() if api_url is None else None
    except GeoreasonError as exc:
        fail(exc)
    ahead = None
    from georeason.catalog import ALLOW_EXTERNAL_ENV, ASSET_ROOTS_ENV
    from georeason.config import RunConfig, default_results_dir
    from georeason.preflight import preflight_run
    from georeason.runstate import OutputLock, result_of

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
            runner=runner,
            workers=workers,
            model_path=model_path,
        )
        options = {**cfg.grounder_options, **grounder_options_of(outputs, cfg.model_path, grounder_option)}
        if bands is not None:
            options["bands"] = parse_bands(bands)
        if min_confidence is not None:
            options["min_confidence"] = float(min_confidence)
        if enabled() and verbosity() < Verbosity.VERBOSE:
            # progress bars instead of a log line per task (--verbose shows the logs)
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        results_dir = (cfg.results_dir or default_results_dir(cfg.out)).resolve()
        # every user mistake is found here, before Prefect starts or a tile is read
        policy = _policy(allow_external, asset_root)
        plan = preflight_run(
            cfg.catalog,
            cfg.questions,
            cfg.out,
            item,
            list(objects or []),
            cfg.grounder,
            options,
            policy,
            results_dir,
            config,
        )
        if api_url is not None:
            check_api_url(api_url)  # a configured server that does not answer: exit 2, before any work
        if policy.allow_external:
            os.environ[ALLOW_EXTERNAL_ENV] = "1"
        if policy.roots:
            os.environ[ASSET_ROOTS_ENV] = os.pathsep.join(str(r) for r in policy.roots)
        local_prefect_defaults()
        os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(results_dir))
        # the worker pool starts and the first item's tiles ground while Prefect is imported
        # and its server boots; the flow takes the pool and the results
        ahead = _ground_ahead(cfg, options, item, objects, results_dir)
        from georeason.geo.vector.scene import gc_paused  # the flow imports it anyway

        # Prefect may be being imported by the temporary server's thread right now
        with gc_paused():  # its passes over Prefect's import: ~0.25 CPU-s
            import_concurrently("georeason.flows.answer", "georeason.flows.runners")
        from georeason.flows.answer import answer
        from georeason.flows.runners import runner_for

        chosen = runner_for(
            dask_address=cfg.dask_address,
            dask_workers=cfg.dask_workers,
            threads=cfg.threads,
            runner=cfg.runner,
            workers=cfg.workers,
            grounder=cfg.grounder,
        )
        # one writer per output folder: taken here, before Prefect starts, so that a refusal is
        # one line (the flow takes it again, re-entrantly, when run without the CLI)
        # the flow's first task reads the first item's vector layers (pyogrio, ~90 MB):
        # imported ahead only then, not held while a raster-only run grounds
        reads_vectors = bool(objects) or any(i.vector_paths for i in plan.items[:1])
        with OutputLock(cfg.out), _prefect_api(server, reads_vectors), live():
            state = _run_flow(answer, chosen, cfg, options, item, objects, results_dir)
        result = result_of(state)  # re-raises if the flow itself failed (after the checks above)
    except (GeoreasonError, typer.BadParameter) as exc:
        fail(exc)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user without --debug
        _internal(exc)
    finally:
        if ahead is not None:
            ahead.close()  # the flow closed it when it took it; else nothing took it
        if server is not None:
            server.stop()
        _EXIT_EARLY.set()  # the records are complete: main() may skip the interpreter's teardown
    _print_run(result)
    if result["errors"] or result["failed_tiles"]:
        typer.echo(f"georeason: run ended in state {state.name}: {state.message}", err=True)
        raise typer.Exit(code=1)


def _ground_ahead(
    cfg: RunConfig,
    options: dict[str, Any],
    item: list[str] | None,
    objects: list[Path] | None,
    results_dir: Path,
) -> WorkerPool | None:
    """With the process runner (:func:`georeason.flows.runners.runner_for`'s choice, made
    here without importing Prefect): start its worker pool now, submit the first item's
    tile batches (:func:`georeason.workers.ground_ahead`) and offer the pool to the flow.
    Returns the pool (the caller closes it), or ``None`` for the other runners."""
    import threading

    from georeason.models.registry import portable, prefers_processes
    from georeason.workers import WorkerPool, default_workers, ground_ahead, offer_pool, run_pipeline

    if cfg.dask_address or cfg.dask_workers or cfg.runner in ("thread", "dask") or not portable(cfg.grounder):
        return None
    if cfg.runner is None and not (default_workers() > 1 and prefers_processes(cfg.grounder)):
        return None
    n = max(1, int(cfg.workers or default_workers()))
    pool = WorkerPool(n)
    threading.Thread(target=pool.warm, name="georeason-warm", daemon=True).start()  # forkserver boot
    offer_pool(pool)
    pipeline = run_pipeline(
        cfg.grounder,
        options,
        tile_px=cfg.tile_px,
        overlap_px=cfg.overlap_px,
        max_task_runs=cfg.max_task_runs,
        parallel=n,
    )
    ground_ahead(
        pool,
        pipeline,
        catalog=cfg.catalog,
        questions=cfg.questions,
        items=item,
        objects=list(objects or []),
        results_dir=results_dir,
    )
    return pool


@contextlib.contextmanager
def _prefect_api(server: Any, reads_vectors: bool = False) -> Iterator[None]:
    """Point Prefect at the temporary ``server`` (when there is one) for the flow run:
    wait for its health check, then set ``PREFECT_API_URL`` (environment, for worker
    processes, and Prefect's settings; flow-run heartbeats off) until the run ends."""
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if not server.warmed:
        from georeason.geo.vector.scene import gc_paused

        with gc_paused():  # while the server still boots, not in the flow's serial part
            _import_ahead(reads_vectors)
    t0 = time.perf_counter()
    url = server.wait_ready()
    if verbosity() >= Verbosity.VERBOSE:
        typer.echo(
            f"georeason: temporary Prefect server at {url} (waited {time.perf_counter() - t0:.1f} s)",
            err=True,
        )
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        # no flow-run heartbeats: they let a long-lived server notice a crashed run, while
        # this server ends with the run; the engine joins their thread (up to 1 s) at the end
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            try:
                yield
            finally:
                _drain_prefect()  # logs and events reach the server before it stops
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


#: Modules the ``answer`` flow imports on first use (measured with ``python -X importtime``
#: on the sample run: ~0.5 s, and pyogrio 0.77 s): the seam merge, the export, Prefect's
#: parameter encoder and its engines.
FLOW_LAZY_IMPORTS = (
    "georeason.geo.grounding.seams",
    "georeason.geo.export.item",
    "PIL.Image",
    "fastapi.encoders",
    "prefect.flow_engine",
    "prefect.task_engine",
)


def _import_ahead(reads_vectors: bool) -> None:
    """Import :data:`FLOW_LAZY_IMPORTS` now (the run waits for its temporary server
    anyway), and the vector reader when the flow starts by reading vector layers; one that
    fails is left to the flow, which reports it where it is used."""
    import importlib

    for name in (*FLOW_LAZY_IMPORTS, *(("pyogrio",) if reads_vectors else ())):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _drain_prefect(timeout_s: float = 10.0) -> None:
    """Send Prefect's queued logs and events now (as ``prefect_test_harness`` does before
    it stops its server); otherwise they are sent at exit, to a stopped server, retried."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout_s, at_exit=False)


def _run_flow(
    answer: Any,
    runner: Any,
    cfg: RunConfig,
    options: dict[str, Any],
    item: list[str] | None,
    objects: list[Path] | None,
    results_dir: Path,
) -> Any:
    """The `answer` flow's final state, run with the run's settings (the CLI draws progress
    bars around it)."""
    from georeason.flows.heartbeats import own_heartbeats

    # heartbeats (a started server) sent by the flow itself: they stop when its work ends,
    # where the engine's end up to 1 s later
    with own_heartbeats():
        result = answer.with_options(task_runner=runner.task_runner)(
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
            processes=runner.processes,
            return_state=True,
        )
    return result  # the final state: a run with errors or tile failures is Failed


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
    local_prefect_defaults()
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

    from georeason.pipeline import row_text

    table = Table(title="georeason answers", show_lines=False)
    for col in ("item", "question", "answer", "kind"):
        table.add_column(col, overflow="fold")
    for r in result["rows"]:
        style = "red" if r.get("error") else "yellow" if r.get("abstained") else ""
        table.add_row(str(r.get("item")), r["question"], row_text(r), str(r.get("kind") or ""), style=style)
    console = Console()
    console.print(table)
    console.print(
        f"{result['answered']} answered, {result['abstained']} abstained, {result['errors']} errors, "
        f"{result['failed_tiles']} tile failures; answers in [bold]{result['answers']}[/bold]"
    )


def _register_subcommands() -> None:
    app.add_typer(catalog_app, name="catalog")
    from georeason.cli_eval import eval_command  # cli_eval uses this module's helpers: imported last

    app.command(name="eval")(eval_command)


_register_subcommands()


def main() -> None:
    try:
        app()  # typer's standalone mode ends in SystemExit, on success too
    except SystemExit as exc:
        if _EXIT_EARLY.is_set():
            _exit_now(exc.code)
        raise


#: Set by ``run`` once its records are complete (the flow ended, Prefect's logs and events
#: were sent, the temporary server stopped): :func:`main` then ends the process without
#: tearing the interpreter down.
_EXIT_EARLY = threading.Event()


def _exit_now(code: object) -> None:
    """End the process as ``SystemExit(code)`` would, minus the interpreter's teardown.

    What an exit runs is run here, in Python's order: the other non-daemon threads are
    joined, the ``atexit`` handlers (Prefect's included) run, logging is flushed and shut
    down, stdout and stderr are flushed. What is skipped is freeing every object and module
    one by one (~0.8 s after a sample ``run``, ~2 s with the temporary server in this
    process: its SQLAlchemy, FastAPI and pydantic state), which writes nothing.
    """
    import atexit
    import logging

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
