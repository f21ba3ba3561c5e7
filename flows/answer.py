"""Prefect flows: ``answer`` (catalog items x questions -> answers and files) and ``batch``.

Orchestration only: which tasks, in what order, on which runner. The work is in
:mod:`georeason.tasks` (thin tasks) over :mod:`georeason.geo` (pure logic).

``answer``: for each catalog item, the questions for it are compiled to find the classes
they need; classes present in the item's vector assets are read from them, the others are
grounded on the raster: tiles are planned, cut into at most ``max_task_runs`` batches
(orchestration stays cheap whatever the raster size), grounded in parallel (cached per
batch, keyed on raster content), seam-merged, and the questions answered. Outputs: per
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from georeason.config import default_results_dir, read_questions
from georeason.geo.export.layers import atomic_path, relative_outputs
from georeason.models.registry import can_ground
from georeason.pipeline import TileFailure, classes_of_questions, plan_batches, split_classes
from georeason.progress import reporter
from georeason.tasks.answer import answer_item, export_item, load_vectors
from georeason.tasks.raster import fit_grounder, ground_tiles, merge_tiles, plan_item_tiles

__all__ = ["answer", "batch", "run_item"]


def _named(item: str):
    """``named(task, what)``: the task with a run name saying what it does for which item."""

    def named(task, what: str):
        return task.with_options(task_run_name=f"{item}: {what}")

    return named


def _batch_run_name(item: str):
    """Run name of a tile batch: the item and the batch's tile range (tile grid row, col)."""

    def name() -> str:
        from prefect.runtime import task_run

        tiles = task_run.parameters.get("tiles") or []
        if not tiles:
            return f"{item}: ground tiles"
        first, last = tuple(tiles[0].index), tuple(tiles[-1].index)
        span = f"tile {first}" if len(tiles) == 1 else f"tiles {first}..{last} ({len(tiles)})"
        return f"{item}: ground {span}"

    return name


def _flow_run_name() -> str:
    """Flow run name: the catalog's folder name and the UTC start time."""
    from prefect.runtime import flow_run

    catalog = flow_run.parameters.get("catalog")
    name = Path(catalog).name if catalog else "data_catalog"
    return f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"


def run_item(
    info,
    questions: list[str],
    out: Path,
    grounder: str,
    grounder_options: dict[str, Any],
    objects: list[str],
    tile_px: int,
    overlap_px: int,
    max_task_runs: int,
    results_dir: Path,
):
    """Answer the questions for one catalog item (tasks submitted to the flow's runner)."""
    log = get_run_logger()
    raster = str(info.raster_path)
    item_out = out / info.id
    bands = list(grounder_options.get("bands") or info.bands)  # run --bands, else the item's eo:bands
    from georeason.geo.raster.io import as_dataset

    with as_dataset(raster, check_read=False) as src:
        crs_wkt = src.crs.to_wkt()
    vector_paths = [str(p) for p in info.vector_paths] + list(objects)
    named = _named(info.id)
    vectors = named(load_vectors, "load vectors")(vector_paths, crs_wkt) if vector_paths else None
    classes = classes_of_questions(questions)
    _, to_ground, missing = split_classes(classes, vectors, lambda c: can_ground(grounder, c))
    if missing:
        log.warning(
            "[%s] no vector layer has, and grounder %r cannot find: %s (those questions abstain)",
            info.id,
            grounder,
            ", ".join(missing),
        )
    objects_found, failures = [], []
    if to_ground:
        # the item id goes to the grounder's per-scene set-up (recorded outputs are keyed on it)
        spec = named(fit_grounder, "fit grounder")(
            raster, grounder, {**grounder_options, "bands": bands, "item": info.id}
        )
        tiles = named(plan_item_tiles, "plan tiles")(raster, tile_px, overlap_px)
        batches = plan_batches(tiles, max_task_runs)
        task = ground_tiles.with_options(result_storage=results_dir, task_run_name=_batch_run_name(info.id))
        progress_id: Any = create_progress_artifact(
            0.0,
            key=f"georeason-progress-{_key(info.id)}",
            description=f"{info.id}: tiles grounded ({len(tiles)} tiles in {len(batches)} batches)",
        )
        bar = reporter()
        bar.start(f"tiles:{info.id}", f"{info.id}: grounding tiles", total=len(tiles))
        tiles_done = 0
        log.info(
            "[%s] grounding %s on %d tiles in %d batches",
            info.id,
            ", ".join(to_ground),
            len(tiles),
            len(batches),
        )
        futures = task.map(
            unmapped(raster),
            unmapped(info.sha256),
            batches,
            unmapped(spec),
            unmapped(to_ground),
            unmapped(bands),
        )
        done = []
        for b, fut in zip(batches, futures):
            fut.wait()
            tiles_done += len(b)
            update_progress_artifact(progress_id, 100.0 * tiles_done / max(1, len(tiles)))
            bar.advance(f"tiles:{info.id}", len(b))
            if fut.state.is_completed():
                done.append(fut.result())
                continue
            # A failed batch is re-run tile by tile: only the tiles that really fail are lost.
            log.warning("[%s] batch of %d tiles failed; retrying tile by tile", info.id, len(b))
            singles = task.map(
                unmapped(raster),
                unmapped(info.sha256),
                [[t] for t in b],
                unmapped(spec),
                unmapped(to_ground),
                unmapped(bands),
            )
            for t, f in zip(b, singles):
                f.wait()
                if f.state.is_completed():
                    done.append(f.result())
                else:
                    err = f.result(raise_on_failure=False)
                    failures.append(TileFailure(tuple(t.index), f"{type(err).__name__}: {err}"))
        objects_found, merge_failures = named(merge_tiles, "merge seams")(done, to_ground, spec)
        failures += merge_failures
        if failures:
            log.error("[%s] %d tiles failed to ground; dependent answers abstain", info.id, len(failures))
    rows, scene = named(answer_item, f"answer {len(questions)} questions")(
        info.id,
        raster,
        crs_wkt,
        objects_found,
        failures,
        vectors,
        questions,
        to_ground,
        str(item_out),
        grounder=grounder,
        bands=bands,
        min_confidence=grounder_options.get("min_confidence"),
    )
    reporter().advance("questions", len(questions))
    files = named(export_item, "export")(info.id, raster, scene, rows, str(item_out))
    for r, png in zip(rows, files.pop("answer_quicklooks", None) or []):
        if png:
            r.setdefault("outputs", {})["quicklook"] = png
    return rows, files, failures


@flow(name="georeason-answer", log_prints=True, flow_run_name=_flow_run_name)
def answer(
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
) -> dict[str, Any]:
    """Answer the questions about the items of a STAC catalog; write ``OUT/answers.jsonl`` and files."""
    from georeason.catalog import default_catalog_dir, list_items

    log = get_run_logger()
    cat_dir = Path(catalog) if catalog else default_catalog_dir()
    out_dir = Path(out).resolve()
    results = Path(results_dir) if results_dir else default_results_dir(out_dir)
    results.mkdir(parents=True, exist_ok=True)
    qpath = Path(questions) if questions else cat_dir / "questions.yaml"
    specs = read_questions(qpath)
    infos = list_items(cat_dir)
    if items:
        unknown = set(items) - {i.id for i in infos}
        if unknown:
            raise ValueError(f"no item(s) {', '.join(sorted(unknown))} in catalog {cat_dir}")
        infos = [i for i in infos if i.id in items]
    all_rows: list[dict] = []
    outputs: dict[str, dict[str, str]] = {}
    failed_tiles = 0
    n_questions = sum(1 for info in infos for s in specs if s.item in (None, info.id))
    reporter().start("questions", "questions answered", total=n_questions)
    for info in infos:
        qs = [s.question for s in specs if s.item in (None, info.id)]
        if not qs:
            continue
        rows, files, failures = run_item(
            info,
            qs,
            out_dir,
            grounder,
            grounder_options or {},
            list(objects or []),
            tile_px,
            overlap_px,
            max_task_runs,
            results,
        )
        all_rows.extend(rows)
        outputs[info.id] = files
        failed_tiles += len(failures)
    jsonl = out_dir / "answers.jsonl"
    with atomic_path(jsonl) as tmp:
        # paths relative to answers.jsonl: the folder can be moved or shared as a whole
        lines = [
            {**r, "outputs": relative_outputs(r["outputs"], out_dir)} if r.get("outputs") else r
            for r in all_rows
        ]
        tmp.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    summary = _artifacts(all_rows, outputs, out_dir, cat_dir, qpath, failed_tiles)
    log.info("wrote %d answers to %s", len(all_rows), jsonl)
    return {"answers": str(jsonl), "rows": all_rows, "outputs": outputs, **summary}


def _fmt(r: dict, full: bool = False) -> str:
    """An answer as text: the whole of it (``full``) or its first line."""
    if r.get("error"):
        err = r["error"] if full else r["error"].splitlines()[0]
        return f"error: {err}"
    if r.get("abstained"):
        return f"abstained: {r.get('reason')}"
    v = r.get("answer")
    if isinstance(v, float):
        v = f"{v:,.6g}"
    elif isinstance(v, list):
        v = ", ".join(map(str, v[:10])) + (" ..." if len(v) > 10 else "")
    return f"{v} {r.get('unit') or ''}".strip()


#: Longest answer text in the table artifact (the summary artifact has the full text).
TABLE_TEXT = 90


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "/")


def _artifacts(rows, outputs, out_dir: Path, cat_dir: Path, qpath: Path, failed_tiles: int) -> dict[str, int]:
    import textwrap

    from georeason.geo.export.quicklook import thumbnail_data_uri

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
            f"| {r.get('item')} | {_md_cell(r['question'])} | {_md_cell(_fmt(r, full=True))} | {r.get('kind', '')} |"
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
                "answer": textwrap.shorten(_fmt(r), TABLE_TEXT, placeholder=" ..."),
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
    for item, files in outputs.items():
        if "quicklook" not in files:
            continue
        parts = [f"# {item}", f"![{item} quicklook]({thumbnail_data_uri(files['quicklook'])})"]
        for r in rows:
            png = (r.get("outputs") or {}).get("quicklook")
            if r.get("item") == item and png and Path(png).exists():
                parts.append(
                    f"## {_md_cell(r['question'])}\n{_md_cell(_fmt(r))}\n\n![answer]({thumbnail_data_uri(png, 480)})"
                )
        create_markdown_artifact(
            "\n\n".join(parts),
            key=f"georeason-quicklook-{_key(item)}",
            description=f"{item}: quicklook of the objects and of each answer (files in {out_dir / item})",
        )
    return {"answered": answered, "abstained": abstained, "errors": errors, "failed_tiles": failed_tiles}


def _key(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "item"


@flow(name="georeason-batch", log_prints=True)
def batch(
    catalog: str | None = None,
    questions: str | None = None,
    out: str = "outputs/batch",
    grounder: str = "spectral",
    tile_px: int = 1024,
    overlap_px: int = 128,
) -> dict[str, Any]:
    """Scheduled batch: every catalog item x the questions file, into ``OUT/<UTC timestamp>/``.

    The tile cache is shared across runs (``OUT/.results``), so a scheduled rerun over
    unchanged rasters only re-answers; ``OUT/latest.txt`` names the newest run folder.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(out) / stamp
    result = answer(
        catalog=catalog,
        questions=questions,
        out=str(run_dir),
        grounder=grounder,
        tile_px=tile_px,
        overlap_px=overlap_px,
        results_dir=str(default_results_dir(Path(out))),
    )
    with atomic_path(Path(out) / "latest.txt") as tmp:
        tmp.write_text(str(run_dir.resolve()) + "\n", encoding="utf-8")
    return {k: v for k, v in result.items() if k != "rows"}
