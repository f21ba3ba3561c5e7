"""``georeason ask``: the command's work, without typer (the fast path's and typer's).

:mod:`georeason.cli` declares ``ask``'s options with typer and calls :func:`ask_command`;
the console script's entry point (:mod:`georeason.cli_entry`) calls it directly for the
common invocations, so that one question does not pay for importing typer, click and
building the whole command tree (about 60 ms of a 0.44 s answer). Nothing here imports
typer: errors are one line on stderr and :class:`SystemExit` (2 for bad input, 1 for an
internal error), as ``typer.Exit`` gives under the full command line.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from georeason.errors import GeoreasonError, InputError
from georeason.models.fitness import DEFAULT_MIN_CONFIDENCE

if TYPE_CHECKING:
    from georeason.geo.language.answer import Answer
    from georeason.pipeline import ItemResult

__all__ = [
    "DEBUG",
    "MIN_POOL_TILES",
    "ask_command",
    "ask_workers",
    "error_line",
    "grounder_options_of",
    "internal_line",
]

#: ``ask`` grounds in worker processes (every core) from this many tiles up: below it the
#: pool's start (a forkserver importing the grounding stack, about a CPU-second) costs
#: more than the second core saves.
MIN_POOL_TILES = 16
#: Tile batches per worker for ``ask``: more than ``run``'s few large batches, so that the
#: seam merge (in this process) starts on the first rows while the workers ground the rest.
ASK_BATCHES_PER_WORKER = 6

#: ``--debug`` (set by the command line's global options): tracebacks with errors
DEBUG = {"on": False}


def _echo_err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error_line(exc: BaseException) -> None:
    """Print ``georeason: error: <message>`` (the traceback first with ``--debug``)."""
    if DEBUG["on"]:
        traceback.print_exception(exc)
    msg = " ".join(str(exc).split()) or type(exc).__name__
    _echo_err(f"georeason: error: {msg}")


def internal_line(what: str, trace: str | None) -> None:
    """Print ``georeason: internal error: KeyError: ...``; ``trace`` first with ``--debug``."""
    if DEBUG["on"] and trace:
        _echo_err(trace.rstrip())
    _echo_err(f"georeason: internal error: {what} (rerun with --debug for the traceback)")


def _fail(exc: BaseException) -> NoReturn:
    error_line(exc)
    raise SystemExit(2)


def _internal_exit(what: str, trace: str | None) -> NoReturn:
    internal_line(what, trace)
    raise SystemExit(1)


def _internal(exc: BaseException) -> NoReturn:
    """An unexpected exception: one line (exit 1), the traceback only with ``--debug``."""
    msg = " ".join(str(exc).split()) or "(no message)"
    _internal_exit(f"{type(exc).__name__}: {msg}", "".join(traceback.format_exception(exc)))


def grounder_options_of(outputs: Path | None, model_path: str | None, pairs: list[str] | None) -> dict:
    """Grounder options from --outputs, --model-path and repeated --grounder-option KEY=VALUE.

    A VALUE that parses as JSON (numbers, true/false, lists, objects) is taken as such,
    anything else as a string.
    """
    opts: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--grounder-option {pair!r}: give KEY=VALUE")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    if outputs is not None:
        opts["outputs"] = str(outputs)
    if model_path is not None:
        opts["model_path"] = model_path
    return opts


def _finite_json(row: dict[str, Any]) -> str:
    """``json.dumps`` of a result row; a NaN/Infinity anywhere makes it an error row instead."""
    try:  # json refuses any non-finite number: only a refused row is walked to name it
        return json.dumps(row, allow_nan=False)
    except ValueError:
        from georeason.runstate import finite_row

        return json.dumps(finite_row(row), allow_nan=False)


def _batch_line(outcome: Any, geometry: bool) -> str:
    """``_finite_json(_batch_row(outcome, geometry)) + "\\n"``, evidence encoded in chunks
    (:func:`~georeason.pipeline.outcome_jsonl`); a non-finite number: the error row."""
    from georeason.pipeline import outcome_jsonl

    try:
        return outcome_jsonl(outcome, geometry=geometry)
    except ValueError:
        return _finite_json(_batch_row(outcome, geometry)) + "\n"


def _write_batch_line(fh: Any, outcome: Any, geometry: bool) -> None:
    """Write :func:`_batch_line` to the text file ``fh`` in pieces
    (:func:`~georeason.pipeline.outcome_jsonl_parts`); on a non-finite number the pieces
    written are cut off again and the error row written instead."""
    from georeason.pipeline import outcome_jsonl_parts

    start = fh.tell()
    try:
        for piece in outcome_jsonl_parts(outcome, geometry=geometry):
            fh.write(piece)
    except ValueError:
        fh.seek(start)
        fh.truncate()
        fh.write(_finite_json(_batch_row(outcome, geometry)) + "\n")


def _batch_row(outcome: Any, geometry: bool) -> dict[str, Any]:
    """One ``ask --questions`` line: :func:`~georeason.pipeline.outcome_row`, evidence
    without the geometry of objects unless ``geometry``."""
    from georeason.geo.language.answer import Answer
    from georeason.pipeline import outcome_row

    if not geometry and isinstance(outcome, Answer):
        return outcome.to_json(geometry=False)
    return outcome_row(outcome)


def _read_questions(path: Path) -> list[str]:
    """Questions from a text (one per line), JSONL (``question`` field) or YAML file."""
    from georeason.config import read_questions

    return [spec.question for spec in read_questions(path)]


def _print_answer(answer: Answer) -> None:
    rows = _answer_rows(answer)
    if not sys.stdout.isatty():  # plain lines, no rich import (start-up) and no wrapping
        width = max(len(k) for k, _, _ in rows)
        sys.stdout.write("".join(f"{k:<{width}}  {v}\n" for k, v, _ in rows))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan")
    table.add_column()
    for k, v, style in rows:
        table.add_row(k, f"[{style}]{escape(v)}[/{style}]" if style else escape(v))
    console.print(table)


def _answer_rows(answer: Answer) -> list[tuple[str, str, str]]:
    """``(label, text, rich style)`` of each line of the answer table."""
    rows = []
    if answer.question:
        rows.append(("question", answer.question, ""))
    rows.append(("answer", answer.text(), "yellow" if answer.abstained else "bold green"))
    rows.append(("kind", answer.kind, ""))
    if answer.details:
        shown = {k: v for k, v in answer.details.items() if not isinstance(v, dict)}
        if shown:
            rows.append(
                (
                    "details",
                    ", ".join(
                        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
                    ),
                    "",
                )
            )
    if answer.evidence:
        rows.append(("evidence", _evidence_text(answer.evidence), ""))
    return rows


def _evidence_text(evidence: Any, per_class: int = 8) -> str:
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


def ask_workers(
    workers: int | None, raster: Path | None, grounder: str, tile_px: int, overlap_px: int
) -> int:
    """How many processes ``ask`` grounds ``raster``'s tiles in (1: in this process).

    ``workers`` given (``--workers N``) is taken as it is (1 forces in-process grounding);
    by default: one per CPU (:func:`georeason.workers.default_workers`) when there is more
    than one, the grounder is one that grounds faster in processes
    (:func:`georeason.models.registry.prefers_processes`) and the raster has at least
    :data:`MIN_POOL_TILES` tiles; else 1.
    """
    if workers is not None:
        if workers < 1:
            raise InputError(f"--workers {workers}: give 1 (ground in this process) or more")
        if workers > 1 and raster is not None:
            from georeason.models.registry import portable

            if not portable(grounder):
                raise InputError(
                    f"--workers {workers}: grounder {grounder!r} cannot be built in worker processes; "
                    "use --workers 1"
                )
        return workers if raster is not None else 1
    if raster is None:  # vector files only: nothing to ground
        return 1
    from georeason.models.registry import prefers_processes
    from georeason.workers import default_workers

    n = default_workers()
    if n < 2 or not prefers_processes(grounder):
        return 1
    import rasterio

    from georeason.geo.raster.tiling import tile_layout

    try:
        with rasterio.open(raster) as src:
            rows, cols = tile_layout(src, tile_px, overlap_px)  # the layout plan_tiles uses
    except Exception:  # noqa: BLE001 - the pipeline opens it again and reports what is wrong
        return 1
    return n if len(rows) * len(cols) >= MIN_POOL_TILES else 1


def _pool_mapper(workers: int) -> tuple[Any, Callable[[], None]]:
    """A :data:`~georeason.pipeline.Mapper` grounding in a new
    :class:`~georeason.workers.WorkerPool` of ``workers`` processes (started now, in the
    background, while this process reads vectors and fits the grounder), and the pool's
    ``close``. The pool is closed as soon as the last batch is grounded, and its forkserver
    stopped (it holds the preloaded grounding stack, ~60-80 MB PSS): the workers' memory is
    gone before the answers are computed. The workers' GDAL cache is bounded by the pool
    (:data:`georeason.workers.WORKER_GDAL_CACHEMAX_MB`)."""
    import threading

    from georeason.workers import WorkerPool, pool_map, release_after

    pool = WorkerPool(workers)
    threading.Thread(target=pool.warm, name="georeason-warm", daemon=True).start()

    def close() -> None:
        pool.close(stop_forkserver=True)

    return release_after(pool_map(pool), close), close


def _run_pipeline(
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
    grounder_options: dict[str, Any],
    mask_path: Callable[[int, str], Path],
    fallback: Callable[..., Any] | None = None,
    bands: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    policy: Any = None,
    workers: int | None = None,
) -> ItemResult:
    """Answer ``questions`` through the one pipeline (:class:`georeason.pipeline.Pipeline`),
    no Prefect: tile batches grounded in this process (a plain loop) or, for a raster of
    many tiles on more than one CPU, in worker processes (:func:`ask_workers`); progress
    bars (tiles grounded, questions answered) on a terminal."""
    from georeason.geo.vector.scene import read_scene
    from georeason.pipeline import Pipeline, read_vectors
    from georeason.progress import bars

    vector_paths: list[Path] = []
    item_bands: list[str] = []
    if item is not None:
        from georeason.catalog import get_item

        info = get_item(item, catalog, policy)
        if raster is None:
            raster = info.raster_path
            item_bands = list(info.bands)
        vector_paths += list(info.vector_paths)
    vectors = None
    if objects is not None:
        vectors = read_scene(objects, crs=crs, id_field=id_field, class_field=class_field)
    more = read_vectors(vector_paths)
    if more is not None:
        vectors = more if vectors is None else vectors.extend(more)
    if vectors is not None:
        # the objects (one dict each) live as long as this command: keep the cyclic garbage
        # collector from walking them again and again while the questions are answered
        gc.freeze()
    if raster is None and vectors is None:
        raise InputError("give --objects FILE, --raster FILE or --item ID (what the question is about)")
    n = ask_workers(workers, raster, grounder, tile_px, overlap_px)
    extra: dict[str, Any] = {}
    close: Callable[[], None] | None = None
    if n > 1:
        extra["map"], close = _pool_mapper(n)
        extra["max_batches"] = ASK_BATCHES_PER_WORKER * n
    try:
        with bars() as progress:
            pipeline = Pipeline(
                grounder=grounder,
                grounder_options=grounder_options,
                tile_px=tile_px,
                overlap_px=overlap_px,
                bands=bands,
                min_confidence=min_confidence,
                progress=progress,
                **extra,
            )
            return pipeline.run(
                questions,
                raster=raster,
                vectors=vectors,
                item=item,
                mask_path=mask_path,
                fallback=fallback,
                item_bands=item_bands,
            )
    finally:
        if close is not None:  # nothing grounded (every class in the vector files, an error)
            close()


def _check_ask_outputs(
    out: Path | None,
    mask: Path,
    objects: Path | None,
    raster: Path | None,
    item: str | None,
    catalog: Path | None,
    questions: Path | None,
    query: Path | None,
    outputs: Path | None,
    policy: Any,
) -> None:
    """Refuse --out/--mask (and the numbered masks of --questions) that would overwrite an input."""
    from georeason.preflight import check_outputs

    inputs: list = [p for p in (objects, raster, questions, query, outputs) if p is not None]
    if item is not None:
        from georeason.catalog import get_item

        info = get_item(item, catalog, policy)
        inputs += [info.raster_path, *info.vector_paths]
        if info.item_path is not None:
            inputs.append(info.item_path)
    outs: list[tuple[str, Any]] = [("--out", out), ("--mask", mask)]  # a None path is no output
    if questions is not None and mask is not None:
        for i in inputs:
            name = Path(i).name
            if Path(i).parent.resolve() == Path(mask).parent.resolve() and re.fullmatch(
                re.escape(Path(mask).stem) + r"-\d{3}" + re.escape(Path(mask).suffix), name
            ):
                outs.append(("--mask", i))
    check_outputs(outs, inputs)


def ask_command(
    question: str | None = None,
    objects: Path | None = None,
    raster: Path | None = None,
    item: str | None = None,
    catalog: Path | None = None,
    crs: str | None = None,
    id_field: str | None = None,
    class_field: str | None = None,
    query: Path | None = None,
    questions: Path | None = None,
    as_json: bool = False,
    out: Path | None = None,
    mask: Path = Path("georeason-mask.tif"),
    grounder: str = "spectral",
    tile_px: int = 1024,
    overlap_px: int = 128,
    outputs: Path | None = None,
    model_path: str | None = None,
    grounder_option: list[str] | None = None,
    planner: str | None = None,
    bands: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    evidence_geometry: bool = False,
    allow_external: bool = False,
    asset_root: list[Path] | None = None,
    workers: int | None = None,
) -> None:
    """``georeason ask`` with its options' values (see :func:`georeason.cli.ask`): prints
    the answer, or one error line and :class:`SystemExit` (2: bad input, 1: internal)."""
    given = sum(x is not None for x in (question, query, questions))
    if given != 1:
        _fail(InputError("give exactly one of QUESTION, --query FILE or --questions FILE"))
    try:
        # the asset policy matters only for a catalog item (building it imports pystac)
        policy = None
        if item is not None:
            from georeason.cli_catalog import policy_of

            policy = policy_of(allow_external, asset_root)
        _check_ask_outputs(out, mask, objects, raster, item, catalog, questions, query, outputs, policy)
        if tile_px <= 0 or not (0 <= overlap_px < tile_px):
            raise InputError(
                f"--tile-px {tile_px} --overlap-px {overlap_px}: need tile_px > 0 and 0 <= overlap_px < tile_px"
            )
        lines = (
            _read_questions(questions)
            if questions is not None
            else ([question] if question is not None else [])
        )
        fallback = None
        if planner is not None:
            from georeason.models.language.planner import chat_client, plan_and_answer

            chat = chat_client(planner, os.environ.get("GEOREASON_PLANNER_MODEL") or None)

            def fallback(q, scene, ctx, n):  # questions no template understands go to the planner
                return plan_and_answer(q, scene, chat, pixel=ctx.pixel, mask_writer=ctx.mask_writer(n, q))

        def mask_path(n: int, q: str) -> Path:
            if questions is None:
                return mask
            return mask.with_name(f"{mask.stem}-{n:03d}{mask.suffix}")

        result = _run_pipeline(
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
            grounder_options_of(outputs, model_path, grounder_option),
            mask_path,
            fallback,
            bands,
            min_confidence,
            policy,
            workers,
        )
        from georeason.pipeline import QuestionError

        if questions is not None:
            # one line per question, whatever happened to it; numbers finite (else an error line).
            # Evidence objects that all come from vector files are named by id (the files
            # have their geometry) unless --evidence-geometry; grounded ones keep theirs.
            geometry = evidence_geometry or bool(result.grounded)
            # written line by line, each built in chunks: memory holds one answer's text
            batch_lines = (_batch_line(a, geometry) for a in result.answers)
            if out is None:
                for line in batch_lines:
                    sys.stdout.write(line)
            else:
                from georeason.geo.export.layers import atomic_path

                with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as fh:
                    for a in result.answers:  # piece by piece: a line is never held whole
                        _write_batch_line(fh, a, geometry)
                _echo_err(f"wrote {len(result.answers)} answers to {out}")
            return
        if query is not None:
            from georeason.geo.language.executor import execute
            from georeason.models.fitness import apply_confidence

            try:
                program = json.loads(query.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise GeoreasonError(
                    f"cannot read query program {str(query)!r}: {exc}; give a JSON list of steps"
                ) from exc
            grid = result.grid
            answer = apply_confidence(
                execute(
                    program,
                    result.scene,
                    pixel=grid.pixel if grid else None,
                    mask_writer=grid.mask_writer(lambda sid: mask) if grid else None,
                ),
                result.scene,
                result.fitness,
                min_confidence,
            )
        else:
            (answer,) = result.answers
            if isinstance(answer, QuestionError):
                if answer.internal:
                    _internal_exit(answer.error.removeprefix("internal error "), answer.trace)
                raise GeoreasonError(answer.error)
        if out is not None:
            from georeason.geo.export.layers import write_answer_files

            written = write_answer_files(answer, out)
            if written != [out]:  # one file per geometry type: say where they went
                _echo_err("wrote " + ", ".join(str(w) for w in written))
    except GeoreasonError as exc:
        _fail(exc)
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user without --debug
        _internal(exc)
    if as_json:
        sys.stdout.write(_finite_json(answer.to_json()) + "\n")
    else:
        _print_answer(answer)
