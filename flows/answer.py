"""Prefect flows: ``answer`` (catalog items x questions -> answers and files) and ``batch``.

Orchestration only: which tasks, in what order, on which runner. Each item goes through
the one path of :class:`georeason.pipeline.Pipeline` (the same as ``georeason ask``), with
tile batches fanned out by :func:`georeason.tasks.raster.prefect_map` on the flow's task
runner (threads, or Dask through prefect-dask).

``answer``: every question is compiled once; for each catalog item, classes present in
the item's vector assets are read from them, the others are grounded on the raster: tiles
are planned, cut into at most ``max_task_runs`` batches (orchestration stays cheap
whatever the raster size), grounded in parallel (cached per batch, keyed on raster
content), seam-merged, and the questions answered. Outputs: per
answer a GeoJSON (and a mask GeoTIFF for pixel answers), per item a GeoPackage, an
objects GeoJSON, quicklook PNGs (item and per answer), QGIS styles and project, and
``answers.jsonl``. In the Prefect UI: a progress artifact per item while tiles ground,
task runs named by item and tile range, a flow run named by catalog and time, a markdown
summary (full answers), a table of answers (long reasons shortened), and per item a
markdown artifact showing its quicklooks (embedded as small JPEG ``data:`` images: the
UI renders them, while browsers refuse ``file://`` links).
"""

from __future__ import annotations

import json
import shutil
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from georeason.catalog import ItemInfo, default_catalog_dir, list_items
from georeason.config import default_results_dir, read_questions
from georeason.errors import CatalogError
from georeason.flows.heartbeats import flow_run_heartbeats
from georeason.geo.export.layers import answer_stem, atomic_path
from georeason.geo.export.names import slug
from georeason.geo.export.quicklook import keep_thumbnails, thumbnail_data_uri
from georeason.models.registry import portable, prefers_processes
from georeason.pipeline import (
    CompiledQuestion,
    Mapper,
    Pipeline,
    TileFailure,
    row_text,
)
from georeason.progress import reporter
from georeason.runstate import OutputLock, finite_row, result_of, run_state, write_manifest
from georeason.tasks.answer import answer_item, load_vectors, relative_row
from georeason.tasks.raster import prefect_map, register_pool, unregister_pool
from georeason.workers import (
    BATCHES_PER_WORKER,
    WorkerPool,
    default_workers,
    next_item_ahead,
    release_after,
    run_pipeline,
    take_compiled,
    take_offered_pool,
    take_plans,
)

__all__ = ["answer", "batch", "run_item", "BATCHES_PER_WORKER"]


def _flow_run_name() -> str:
    """Flow run name: the catalog's folder name and the UTC start time."""
    from prefect.runtime import flow_run

    catalog = flow_run.parameters.get("catalog")
    name = Path(catalog).name if catalog else "data_catalog"
    return f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"


def run_item(
    info: ItemInfo,
    questions: list[CompiledQuestion],
    out: Path,
    pipeline: Pipeline,
    objects: list[str],
    grounded: Callable[[], None] | None = None,
    rows: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[TileFailure]]:
    """Ground one catalog item through ``pipeline``, then answer its compiled questions and
    export each answer as it comes (the ``answer-export`` task): its files and its
    ``answers.jsonl`` line (into ``rows``, paths relative to ``out``; default
    ``OUT/<item>/.answers.jsonl.part``) are written and the answer dropped, while the
    item's objects are written in a background thread.

    ``grounded`` is called once the item is grounded, before its questions are answered
    (the flow frees its worker processes there after the last item, if its grounding did
    not already). Returns the rows without their evidence, the item's files and the tiles
    that failed."""
    item_out = out / info.id
    vector_paths = info.vector_sources(objects)
    vectors = (
        load_vectors.with_options(task_run_name=f"{info.id}: load vectors")(vector_paths)
        if vector_paths
        else None
    )
    result = pipeline.run_iter(
        questions,
        vectors=vectors,
        mask_path=lambda n, q: item_out / "masks" / f"{answer_stem(n, q)}.tif",
        **info.raster_inputs(),
    )
    if grounded is not None:
        grounded()
    rows = rows or item_out / ".answers.jsonl.part"
    rows.parent.mkdir(parents=True, exist_ok=True)
    # quote(): Prefect must not walk the answers (an iterator, answered as it is consumed)
    # nor every coordinate of the scene
    slim, files = answer_item.with_options(task_run_name=f"{info.id}: answer and export")(
        info.id,
        str(info.raster_path),
        quote(result.stream),
        quote(result.scene),
        str(item_out),
        str(rows),
        str(out),
        quote(result.grounding.basemap),  # the quicklook basemap summed from the tiles
    )
    reporter().advance("questions", len(questions))
    return slim, files, result.failures


@flow(name="georeason-answer", log_prints=True, flow_run_name=_flow_run_name)
def answer(  # returns the result dict, or a Failed state named AnsweredWithErrors holding it
    catalog: str | None = None,
    questions: str | None = None,
    out: str = "outputs",
    grounder: str = "spectral",
    grounder_options: dict[str, Any] | None = None,
    items: list[str] | None = None,
    objects: list[str] | None = None,
    tile_px: int = 1024,
    overlap_px: int = 128,
    max_task_runs: int = 200,
    results_dir: str | None = None,
    processes: int | None = None,
) -> dict[str, Any]:
    """Answer the questions about the items of a STAC catalog; write ``OUT/answers.jsonl`` and files.

    ``processes``: worker processes that ground the tile batches (a
    :class:`~georeason.workers.WorkerPool`); ``None``: one per CPU when there is more than
    one, else none; ``0``: ground in the task runner's own workers (threads or Dask).
    Returns a summary (counts, where ``answers.jsonl`` and the files are), not the answers:
    :func:`georeason.runstate.result_of` reads the rows back from ``answers.jsonl``.
    """
    log = get_run_logger()
    cat_dir = Path(catalog) if catalog else default_catalog_dir()
    out_dir = Path(out).resolve()
    results = Path(results_dir) if results_dir else default_results_dir(out_dir)
    qpath = Path(questions) if questions else cat_dir / "questions.yaml"
    specs = read_questions(qpath)
    infos = list_items(cat_dir)
    if items:
        unknown = set(items) - {i.id for i in infos}
        if unknown:
            raise CatalogError(
                f"no item(s) {', '.join(sorted(unknown))} in catalog {cat_dir}; "
                f"valid items: {', '.join(i.id for i in infos)}"
            )
        infos = [i for i in infos if i.id in items]
    n_proc = _auto_processes(grounder) if processes is None else int(processes)
    if n_proc > 0 and not portable(grounder):
        log.warning(
            "grounder %r is registered in this process only: grounding in threads, not worker processes",
            grounder,
        )
        n_proc = 0
    with OutputLock(out_dir), ExitStack() as stack:  # one writer per output folder
        results.mkdir(parents=True, exist_ok=True)
        # each quicklook's artifact thumbnail is made as it is written, from the page in memory
        stack.enter_context(keep_thumbnails(_thumbnail_px))
        # `georeason run`'s heartbeats: they stop the moment the work ends (flows/heartbeats.py)
        stack.enter_context(flow_run_heartbeats())
        pool_key = None
        offered = None
        pool = None
        if n_proc > 0:
            # a pool the command line started (perhaps grounding the first item ahead), else a new one
            offered = take_offered_pool(n_proc)
            pool = stack.enter_context(offered or WorkerPool(n_proc))
            if offered is None:
                pool.warm()  # workers start while vectors are read and the grounder is fitted
            pool_key = register_pool(pool)
            stack.callback(unregister_pool, pool_key)
        parallel = n_proc or _runner_workers()
        pipeline = run_pipeline(
            grounder,
            grounder_options,
            tile_px=tile_px,
            overlap_px=overlap_px,
            max_task_runs=max_task_runs,
            parallel=parallel,
            map=prefect_map(results, pool_key),
            logger=log,
        )
        # the worker processes (and their forkserver) go as soon as the last item is grounded:
        # answering and export run in this process, and idle workers only hold memory
        last_item = _ReleaseAfterLast(pool)
        pipeline.map = last_item.wrap(pipeline.map)
        take_plans(pipeline, offered)  # the grounder fitted and tiles planned ahead: not done twice
        # every question is compiled once per run, whatever the number of items it is asked of
        # (those `georeason run` compiled ahead, while Prefect started, are not compiled again)
        compiled = dict(zip([s.question for s in specs], take_compiled([s.question for s in specs], offered)))
        all_rows: list[dict[str, Any]] = []
        outputs: dict[str, dict[str, Any]] = {}
        failed_tiles = 0
        n_questions = sum(1 for info in infos for s in specs if s.item in (None, info.id))
        reporter().start("questions", "questions answered", total=n_questions)
        todo = [(info, [compiled[s.question] for s in specs if s.item in (None, info.id)]) for info in infos]
        todo = [(info, qs) for info, qs in todo if qs]
        jsonl = out_dir / "answers.jsonl"
        # each item's answers.jsonl lines are written as its answers come, into a part file
        # beside its outputs (a fixed name: a run killed midway leaves nothing a rerun does not
        # replace); a failed item's lines are its error rows; answers.jsonl is made from the
        # parts at the end (a temporary file renamed into place)
        pieces: list[Path | str] = []
        # the next item's first batches, submitted once this item is grounded: the workers
        # ground them while this item is answered (one thread at a time; joined before the
        # next item plans, since the plan it makes is taken there)
        ahead: list[threading.Thread] = []
        try:
            for n, (info, qs) in enumerate(todo, 1):
                for thread in ahead:
                    thread.join()
                ahead.clear()
                last_item.armed = n == len(todo)
                part = out_dir / info.id / ".answers.jsonl.part"

                nxt = todo[n] if n < len(todo) else None

                def grounded(nxt: tuple[ItemInfo, list[CompiledQuestion]] | None = nxt) -> None:
                    last_item.release()
                    if pool is not None and nxt is not None:
                        ahead.append(
                            next_item_ahead(pool, pipeline, *nxt, objects=objects or [], results_dir=results)
                        )

                try:
                    rows, files, failures = run_item(
                        info,
                        qs,
                        out_dir,
                        pipeline,
                        list(objects or []),
                        grounded=grounded,
                        rows=part,
                    )
                    pieces.append(part)
                except Exception as exc:  # noqa: BLE001 - one item's failure never loses the other answers
                    part.unlink(missing_ok=True)
                    msg = " ".join(str(exc).split()) or type(exc).__name__
                    log.error("[%s] item failed: %s: %s", info.id, type(exc).__name__, msg)
                    err = f"item {info.id!r} failed: {msg}"
                    rows = [
                        {"question": q.text, "item": info.id, "error": err, "abstained": True, "answer": None}
                        for q in qs
                    ]
                    files, failures = {}, []
                    # paths relative to answers.jsonl: the folder can be moved or shared as a whole
                    pieces.append(
                        "".join(
                            json.dumps(relative_row(finite_row(r), out_dir), allow_nan=False) + "\n"
                            for r in rows
                        )
                    )
                all_rows.extend(rows)
                outputs[info.id] = files
                failed_tiles += len(failures)
            with atomic_path(jsonl) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                for piece in pieces:
                    if isinstance(piece, str):
                        fh.write(piece)
                    else:
                        with open(piece, encoding="utf-8") as src:
                            shutil.copyfileobj(src, fh)
        finally:
            for thread in ahead:  # an item that failed after it was grounded
                thread.join()
            for piece in pieces:
                if isinstance(piece, Path):
                    piece.unlink(missing_ok=True)
        summary = _artifacts(all_rows, outputs, out_dir, cat_dir, qpath, failed_tiles)
        written: list[str | Path] = [jsonl, *(f for files in outputs.values() for f in files.values())]
        for r in all_rows:
            for o in (r.get("outputs") or {}).values():
                written += (
                    [o]
                    if isinstance(o, str)
                    else [x for x in o if isinstance(x, str)]
                    if isinstance(o, list)
                    else []
                )
        inputs = [qpath, *(p for i in infos for p in (i.raster_path, *i.vector_paths))]
        write_manifest(
            out_dir, written, {"catalog": str(cat_dir), "questions": str(qpath), **summary}, protect=inputs
        )
    log.info("wrote %d answers to %s", len(all_rows), jsonl)
    # a summary, not the rows: a flow's result is walked and stored by Prefect
    return run_state({"answers": str(jsonl), "outputs": outputs, **summary})


class _ReleaseAfterLast:
    """Closes the flow's worker pool (and stops its forkserver) as soon as the last item's
    tile batches are all merged (:meth:`wrap` of the pipeline's mapper), or when the last
    item is answered without grounding (:meth:`release`). ``armed``: the item running now
    is the last. A batch re-run tile by tile after a failure happens inside the mapper,
    before the pool goes; a pool is closed once (closing again is harmless)."""

    def __init__(self, pool: WorkerPool | None) -> None:
        self.pool = pool
        self.armed = False

    def release(self) -> None:
        if self.armed and self.pool is not None:
            pool, self.pool = self.pool, None
            # in the background: the workers' exit is waited for there, not by the answers
            threading.Thread(
                target=pool.close, kwargs={"stop_forkserver": True}, name="georeason-release", daemon=True
            ).start()

    def wrap(self, mapper: Mapper) -> Mapper:
        return release_after(mapper, self.release)  # every batch consumed: the seam merge has what it needs


def _auto_processes(grounder: str) -> int:
    """Grounding processes by default: one per CPU when there is more than one, the
    grounder is GIL-bound (:func:`georeason.models.registry.prefers_processes`: not a model
    that releases the GIL and would be loaded once per process) and the task runner is a
    thread pool in this process (a Dask runner has its own processes)."""
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None) if ctx else None
    n = default_workers()
    return n if n > 1 and prefers_processes(grounder) and isinstance(runner, ThreadPoolTaskRunner) else 0


def _runner_workers() -> int:
    """Workers of the flow's thread-pool task runner; 0 when unknown (Dask)."""
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None) if ctx else None
    return int(getattr(runner, "_max_workers", 0) or 0)


#: Longest answer text in the table artifact (the summary artifact has the full text).
TABLE_TEXT = 90

#: Long side in pixels of the thumbnails in the quicklook artifacts: the item's quicklook,
#: each answer's.
ITEM_THUMB_PX = 640
ANSWER_THUMB_PX = 480


def _thumbnail_px(png: Path) -> int:
    """Thumbnail size of a quicklook the flow writes: the item's (``quicklook.png``) or an answer's."""
    return ITEM_THUMB_PX if png.name == "quicklook.png" else ANSWER_THUMB_PX


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "/")


def _artifacts(
    rows: list[dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    out_dir: Path,
    cat_dir: Path,
    qpath: Path,
    failed_tiles: int,
) -> dict[str, int]:
    answered = sum(1 for r in rows if not r.get("abstained") and not r.get("error"))
    abstained = sum(1 for r in rows if r.get("abstained") and not r.get("error"))
    errors = sum(1 for r in rows if r.get("error"))
    md = [
        "# georeason run",
        f"- catalog: `{cat_dir}`\n- questions: `{qpath}`\n- outputs: `{out_dir}`",
        f"- **{answered} answered, {abstained} abstained, {errors} errors**; {failed_tiles} tile failures",
        "",
        "| item | question | answer | kind |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        md.append(
            f"| {r.get('item')} | {_md_cell(r['question'])} | {_md_cell(row_text(r, full=True))} | {r.get('kind', '')} |"
        )
    for item, files in outputs.items():
        md.append(
            f"\n**{item}** (in `{out_dir / item}`): "
            + ", ".join(f"`{Path(v).name}`" for v in files.values() if isinstance(v, str))
        )
    create_markdown_artifact(
        "\n".join(md),
        key="georeason-summary",
        description="georeason run: counts and every answer in full (errors and abstention reasons unabridged)",
    )
    create_table_artifact(
        [
            {
                "item": r.get("item"),
                "question": r["question"],
                "answer": textwrap.shorten(row_text(r), TABLE_TEXT, placeholder=" ..."),
                "kind": r.get("kind"),
                "unit": r.get("unit"),
                "abstained": bool(r.get("abstained")),
            }
            for r in rows
        ],
        key="georeason-answers",
        description=f"answers of this run (texts over {TABLE_TEXT} characters shortened; full text in georeason-summary)",
    )
    create_markdown_artifact(
        f"Outputs of this run are in `{out_dir}`: `answers.jsonl` (paths relative to it) and one folder per "
        "item with GeoJSON/GeoPackage layers, quicklook PNGs, QGIS styles (`.qml`) and a QGIS project "
        "(`<item>.qgs`).",
        key="georeason-outputs",
        description=f"where the outputs are: {out_dir}",
    )
    # the thumbnails: made as the quicklooks were written (keep_thumbnails); any other is
    # decoded, scaled and encoded here, in threads (Pillow releases the GIL)
    wanted = [(files["quicklook"], ITEM_THUMB_PX) for files in outputs.values() if "quicklook" in files]
    for r in rows:
        png = (r.get("outputs") or {}).get("quicklook")
        if r.get("item") in outputs and png and Path(png).exists():
            wanted.append((png, ANSWER_THUMB_PX))
    with ThreadPoolExecutor(max_workers=default_workers()) as threads:
        thumbs = dict(zip(wanted, threads.map(lambda w: thumbnail_data_uri(*w), wanted)))
    for item, files in outputs.items():
        if "quicklook" not in files:
            continue
        parts = [f"# {item}", f"![{item} quicklook]({thumbs[(files['quicklook'], ITEM_THUMB_PX)]})"]
        for r in rows:
            png = (r.get("outputs") or {}).get("quicklook")
            if r.get("item") == item and png and Path(png).exists():
                parts.append(
                    f"## {_md_cell(r['question'])}\n{_md_cell(row_text(r))}\n\n![answer]({thumbs[(png, ANSWER_THUMB_PX)]})"
                )
        create_markdown_artifact(
            "\n\n".join(parts),
            key=f"georeason-quicklook-{slug(item, fallback='item')}",
            description=f"{item}: quicklook of the objects and of each answer (files in {out_dir / item})",
        )
    return {"answered": answered, "abstained": abstained, "errors": errors, "failed_tiles": failed_tiles}


@flow(name="georeason-batch", log_prints=True)
def batch(
    catalog: str | None = None,
    questions: str | None = None,
    out: str = "outputs/batch",
    grounder: str = "spectral",
    tile_px: int = 1024,
    overlap_px: int = 128,
) -> Any:
    """Scheduled batch: every catalog item x the questions file, into ``OUT/<UTC timestamp>/``.

    The tile cache is shared across runs (``OUT/.results``), so a scheduled rerun over
    unchanged rasters only re-answers; ``OUT/latest.txt`` names the newest run folder.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(out) / stamp
    state = answer(
        catalog=catalog,
        questions=questions,
        out=str(run_dir),
        grounder=grounder,
        tile_px=tile_px,
        overlap_px=overlap_px,
        results_dir=str(default_results_dir(Path(out))),
        return_state=True,
    )
    result = result_of(state)
    with atomic_path(Path(out) / "latest.txt") as tmp:
        tmp.write_text(str(run_dir.resolve()) + "\n", encoding="utf-8")
    return run_state({k: v for k, v in result.items() if k != "rows"})
