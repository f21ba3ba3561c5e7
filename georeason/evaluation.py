"""``georeason eval``: an EarthSpatialBench-style evaluation on a labelled scene.

Input: a catalog item with a ground-truth asset (role ``truth``), or a raster plus a truth
vector file. Questions come from :func:`georeason.geo.evaluation.questions.generate`
(expected answers by pyproj/shapely, never by the parser or executor) and are answered
in one or more modes:

* ``oracle`` — against the truth objects themselves: a self-check of the reasoning (every
  category and reference mode, overlay included, must be 100% correct with metric errors
  below 0.1%);
* ``grounded`` — against objects a grounder finds on the raster (``--grounder``: spectral,
  recorded, a transformers model, remote), plus the item's vector layers; answers carry
  the confidence summary and abstain below ``min_confidence`` exactly as ``ask`` does;
* ``recorded`` — ``grounded`` with the recorded-outputs grounder and the item's
  ``recorded_outputs.jsonl`` (or ``--outputs``);
* ``direct`` — the question and the image (with the overlay drawn) sent to a vision-language
  model behind an OpenAI-compatible API (``--vlm-url``); its free text is parsed and scored.

Overlay references: for each question that says "the marked region", a copy of the image
(8-bit RGB, same grid and CRS) gets a 2-pixel red box outline, and georeason's overlay
grounder finds the marked region on that copy — the reference goes through the same
imagery path as in real use, in every mode.

Questions that name truth objects by id (``#b12``) are asked in ``oracle`` mode only (ids
of objects found on imagery are the grounder's own); ids of the item's vector layers
(roads) are known to every mode.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from georeason import progress as bars
from georeason.errors import InputError
from georeason.geo.evaluation.questions import EvalQuestion, TruthObject, generate
from georeason.geo.evaluation.score import (
    combine,
    cover_iou,
    detection_metrics,
    parse_free_text,
    score,
    summarise,
)
from georeason.geo.raster.grid import RasterGrid
from georeason.geo.vector.scene import Scene, read_scene

__all__ = ["EvalInput", "load_input", "run_eval", "MODES", "render_markdown", "write_charts"]

MODES = ("oracle", "grounded", "recorded", "direct")
_UNIT_FACTORS = {
    ("km", "m"): 1000.0,
    ("m", "km"): 1e-3,
    ("m2", "ha"): 1e-4,
    ("km2", "ha"): 100.0,
    ("ha", "m2"): 1e4,
}


@dataclass
class EvalInput:
    """What an evaluation runs on: the raster, its truth (raster CRS) and vector layers."""

    raster: Path
    truth: Scene
    vectors: Scene | None = None
    bands: list[str] = field(default_factory=list)
    item: str | None = None
    recorded: Path | None = None


def load_input(
    item: str | None = None,
    catalog: str | Path | None = None,
    raster: str | Path | None = None,
    truth: str | Path | None = None,
    bands: str | Sequence[str] | None = None,
) -> EvalInput:
    """Resolve an item (raster, truth asset, vector assets, ``eo:bands``) or a raster + truth file."""
    from georeason.geo.vector.crs import reproject
    from georeason.models.fitness import raster_bands

    vectors: Scene | None = None
    recorded = None
    item_bands: list[str] = []
    if item is not None:
        from georeason.catalog import get_item

        info = get_item(item, catalog)
        raster = raster or info.raster_path
        item_bands = list(info.bands)
        if truth is None:
            if not info.truth_paths:
                raise InputError(
                    f"item {item!r} has no ground-truth asset (role 'truth'); pass --truth FILE "
                    "(a vector file of classes and geometries)"
                )
            truth = info.truth_paths[0]
        for p in info.vector_paths:
            s = read_scene(p)
            vectors = s if vectors is None else vectors.extend(s)
        rec = Path(info.raster_path).parent / "recorded_outputs.jsonl"
        recorded = rec if rec.is_file() else None
    if raster is None or truth is None:
        raise InputError("give --item ID (with a truth asset), or --raster FILE and --truth FILE")
    raster = Path(raster)
    if not raster.is_file():
        raise InputError(f"raster {str(raster)!r} does not exist; check the path")
    grid = RasterGrid.read(raster)
    t = read_scene(truth)
    t = Scene(
        t.ids, t.labels, reproject(t.geoms, t.crs, grid.crs), grid.crs, attrs=t.attrs, source=str(truth)
    )
    if vectors is not None:
        vectors = Scene(
            vectors.ids,
            vectors.labels,
            reproject(vectors.geoms, vectors.crs, grid.crs),
            grid.crs,
            attrs=vectors.attrs,
            source=vectors.source,
        )
    names = raster_bands(str(raster), bands, item_bands)
    return EvalInput(raster, t, vectors, names, item, recorded)


def _truth_objects(scene: Scene) -> list[TruthObject]:
    return [TruthObject(str(i), str(c), g) for i, c, g in zip(scene.ids, scene.labels, scene.geoms)]


def _grid(raster: Path):
    return RasterGrid.read(raster)


# -- overlays -------------------------------------------------------------------------------------


def _rgb(raster: Path, bands: Sequence[str]) -> np.ndarray:
    """The whole raster as 8-bit RGB ``(rows, cols, 3)`` (the model/quicklook rendering)."""
    import rasterio

    from georeason.models.base import tile_to_rgb

    with rasterio.open(raster) as src:
        px = src.read(masked=True)
    return tile_to_rgb(px, list(bands))


def draw_overlay(rgb: np.ndarray, box: Sequence[int], stroke: int = 2) -> np.ndarray:
    """A copy of ``rgb`` with a red outline of pixel box ``[c0, r0, c1, r1]`` (stroke inside the box)."""
    c0, r0, c1, r1 = (int(v) for v in box)
    img = rgb.copy()
    red = np.array([255, 0, 0], np.uint8)
    img[r0 : r0 + stroke, c0:c1] = red
    img[r1 - stroke : r1, c0:c1] = red
    img[r0:r1, c0 : c0 + stroke] = red
    img[r0:r1, c1 - stroke : c1] = red
    return img


def write_overlay_copy(raster: Path, rgb: np.ndarray, box: Sequence[int], out: Path) -> Path:
    """An 8-bit RGB GeoTIFF on ``raster``'s grid with the marker drawn (band names red, green, blue)."""
    import rasterio

    with rasterio.open(raster) as src:
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 3,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "compress": "deflate",
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    img = draw_overlay(rgb, box)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.moveaxis(img, -1, 0))
        for i, n in enumerate(("red", "green", "blue"), 1):
            dst.set_band_description(i, n)
    return out


def find_marked_region(copy: Path) -> Scene:
    """The marked region on an overlay copy, found by the overlay grounder (one tile, whole image)."""
    from georeason.pipeline import Pipeline, grounded_scene

    grid = RasterGrid.read(copy)
    side = max(grid.width, grid.height)
    # the overlay marker is found by the spectral grounder, every pixel of it kept
    pipeline = Pipeline("spectral", {"min_area_m2": 0.0, "simplify_m": 0.0}, tile_px=side, overlap_px=0)
    grounding = pipeline.ground(str(copy), ["marked region"], grid=grid)
    found, failures = grounding.objects, grounding.failures
    if failures:
        raise InputError(f"overlay copy {copy} could not be read ({failures[0].error})")
    scene = grounded_scene(found, grid.crs, source=str(copy))
    for a in scene.attrs:
        a["source"] = "overlay"  # a reference drawn by the user, not a grounded object
    return scene


# -- answering ------------------------------------------------------------------------------------


def _to_unit(value: Any, unit: str | None, want: str | None) -> Any:
    if value is None or unit == want or unit is None or want is None:
        return value
    f = _UNIT_FACTORS.get((unit, want))
    return float(value) * f if f is not None else value


def _answer_georeason(
    q: EvalQuestion,
    scene: Scene,
    pixel,
    post: Callable[[Any, Scene], Any] | None = None,
) -> dict[str, Any]:
    """Answer through georeason (templates -> program -> executor) and combine the asks."""
    from georeason.errors import GeoreasonError
    from georeason.geo.language.english import ask

    values, reasons, confidence = [], [], None
    answered_geom = None
    for text in q.asks:
        try:
            a = ask(text, scene, pixel=pixel)
        except GeoreasonError as exc:
            return {"value": None, "abstained": True, "reason": f"error: {exc}", "asked": q.asks}
        if post is not None:
            a = post(a, scene)
        if a.details.get("confidence"):
            confidence = a.details["confidence"]
        if a.abstained:
            return {
                "value": None,
                "abstained": True,
                "reason": a.reason,
                "asked": q.asks,
                "confidence": confidence,
            }
        v = _to_unit(
            a.value, a.unit, q.unit if q.kind == "metric" else ("m" if q.combine != "single" else None)
        )
        if q.kind == "object" and isinstance(a.value, str):
            i = scene.index(a.value)
            answered_geom = scene.geoms[i] if i is not None else None
        values.append(v)
        reasons.append(a.reason)
    value = combine(q.combine, values)
    return {
        "value": value,
        "abstained": False,
        "reason": None,
        "asked": q.asks,
        "confidence": confidence,
        "_geom": answered_geom,
    }


def _vlm_messages(q: EvalQuestion, data_url: str, size: tuple[int, int], gsd: float) -> list[dict]:
    system = (
        "You answer spatial questions about one satellite or aerial image. North is up. The image is "
        f"{size[0]} x {size[1]} pixels; one pixel is about {gsd:.3g} m on the ground. Pixel coordinates are "
        "[column, row] from the top-left corner. Be concise."
    )
    return [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": f"{q.text} {q.answer_format}"},
            ],
        },
    ]


def _png_data_url(img: np.ndarray) -> str:
    from georeason.models.backends.remote import encode_png

    return "data:image/png;base64," + base64.b64encode(encode_png(img)).decode("ascii")


# -- the run --------------------------------------------------------------------------------------


def run_eval(
    inp: EvalInput,
    modes: Sequence[str] = ("oracle",),
    n: int = 200,
    seed: int = 0,
    grounder: str = "spectral",
    grounder_options: dict[str, Any] | None = None,
    out: Path | None = None,
    vlm_url: str | None = None,
    vlm_model: str | None = None,
    tile_px: int = 1024,
    overlap_px: int = 128,
    min_confidence: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate questions, answer them in each mode, score; write files under ``out`` if given.

    Returns the report: ``questions`` (count), ``modes``, ``rows`` (one scored row per
    question and mode), ``tables`` (per mode: by category x reference mode, by category, by
    reference mode, overall), ``grounding`` (per grounded mode and class: detection P/R/F1
    at IoU 0.5 for instance classes, area IoU for cover classes) and ``settings``.
    """
    from georeason.models.fitness import DEFAULT_MIN_CONFIDENCE

    for m in modes:
        if m not in MODES:
            raise InputError(f"unknown mode {m!r}; use one of {', '.join(MODES)}")
    if "direct" in modes and not vlm_url:
        raise InputError(
            "--mode direct needs --vlm-url URL (an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1)"
        )
    if n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    say = progress or (lambda s: None)
    min_conf = DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)
    grid = _grid(inp.raster)
    pixel = grid.pixel
    public = [str(i) for i in inp.vectors.ids] if inp.vectors is not None else []
    questions = generate(
        _truth_objects(inp.truth),
        grid.crs,
        grid.transform,
        (grid.height, grid.width),
        n=n,
        seed=seed,
        public_ids=public,
    )
    say(f"{len(questions)} questions generated")
    work = Path(out) if out is not None else Path(_tmpdir())
    rgb = _rgb(inp.raster, inp.bands)
    markers: dict[tuple[int, ...], tuple[Scene, Path]] = {}
    for q in questions:
        if q.overlay_px is not None and tuple(q.overlay_px) not in markers:
            path = work / "overlays" / f"overlay-{'-'.join(map(str, q.overlay_px))}.tif"
            write_overlay_copy(inp.raster, rgb, q.overlay_px, path)
            markers[tuple(q.overlay_px)] = (find_marked_region(path), path)
    rows: list[dict[str, Any]] = []
    grounding: dict[str, Any] = {}
    for mode in modes:
        say(f"mode {mode}")
        if mode == "direct":
            rows += _run_direct(questions, inp, rgb, markers, vlm_url or "", vlm_model, grid)
            continue
        post = None
        if mode == "oracle":
            base = inp.truth
        else:
            g = "recorded" if mode == "recorded" else grounder
            opts = dict(grounder_options or {})
            if mode == "recorded":
                if "outputs" not in opts:
                    if inp.recorded is None:
                        raise InputError(
                            "--mode recorded needs recorded model outputs: pass --outputs FILE "
                            "(or ship recorded_outputs.jsonl beside the item's raster)"
                        )
                    opts["outputs"] = str(inp.recorded)
            base, fitness, found = _ground(inp, g, opts, tile_px, overlap_px)
            grounding[mode] = _grounding_metrics(inp, g, found)

            def post(a, scn, fitness=fitness):  # type: ignore[no-untyped-def]
                from georeason.models.fitness import apply_confidence

                return apply_confidence(a, scn, fitness, min_conf)

        asked = [q for q in questions if mode == "oracle" or not q.truth_ids]
        # a rich bar (count, ETA) on a terminal; nothing when stdout is not a TTY
        with bars.task(f"{inp.item}: {mode} questions", len(asked)) as advance:
            for q in asked:
                scene = base
                if q.overlay_px is not None:
                    scene = base.extend(markers[tuple(q.overlay_px)][0])
                res = _answer_georeason(q, scene, pixel, post)
                rows.append(_row(q, mode, res))
                advance()
    report = {
        "settings": {
            "item": inp.item,
            "raster": str(inp.raster),
            "truth": inp.truth.source,
            "n": n,
            "seed": seed,
            "modes": list(modes),
            "grounder": grounder,
            "min_confidence": min_conf,
            "tile_px": tile_px,
            "overlap_px": overlap_px,
            "vlm_url": vlm_url,
            "bands": inp.bands,
        },
        "questions": len(questions),
        "rows": rows,
        "tables": _tables(rows, modes),
        "grounding": grounding,
    }
    if out is not None:
        write_report(report, questions, Path(out))
    return report


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="georeason-eval-")


def _row(q: EvalQuestion, mode: str, res: dict[str, Any]) -> dict[str, Any]:
    s = score(
        q.to_json(), res.get("value"), res.get("abstained", False), res.get("_geom"), res.get("_px_box")
    )
    value = res.get("value")
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    return {
        "qid": q.qid,
        "mode": mode,
        "category": q.category,
        "task": q.task,
        "ref_mode": q.ref_mode,
        "kind": q.kind,
        "question": q.text,
        "asked": res.get("asked"),
        "expected": q.expected,
        "unit": q.unit,
        "answer": value,
        "reason": res.get("reason"),
        "confidence": res.get("confidence"),
        "raw": res.get("raw"),
        **s,
    }


def _ground(inp: EvalInput, grounder: str, options: dict[str, Any], tile_px: int, overlap_px: int):
    """Ground the truth classes (those no vector layer has) on the raster, as ``ask`` does."""
    from georeason.models.fitness import annotate_scene, assess, check_bands
    from georeason.models.registry import can_ground
    from georeason.pipeline import Pipeline, grounded_scene

    classes = sorted({str(c) for c in inp.truth.labels})
    vec = set(inp.vectors.labels) if inp.vectors is not None else set()
    to_ground = [c for c in classes if c not in vec and can_ground(grounder, c)]
    if grounder == "recorded" and options.get("outputs"):
        # replayed outputs hold only the classes the model was asked for: the rest is not found
        from georeason.models.backends.recorded import read_outputs

        item = options.get("item", inp.item)
        have = {
            str(e.cls).lower() for e in read_outputs(options["outputs"]) if item is None or e.item == item
        }
        to_ground = [c for c in to_ground if c in have]
    check_bands(grounder, to_ground, inp.bands, str(inp.raster))
    opts = dict(options)
    opts.setdefault("bands", inp.bands)
    if inp.item is not None:
        opts.setdefault("item", inp.item)
    pipeline = Pipeline(grounder, opts, tile_px=tile_px, overlap_px=overlap_px)
    grounding = pipeline.ground(str(inp.raster), to_ground, bands=inp.bands)
    found, failures = grounding.objects, grounding.failures
    if failures:
        raise InputError(f"{len(failures)} tile(s) of {inp.raster} failed to ground ({failures[0].error})")
    grid = _grid(inp.raster)
    scene = grounded_scene(found, grid.crs, inp.vectors, source=f"{grounder} on {inp.raster.name}")
    fitness = assess(str(inp.raster), grounder, to_ground, inp.bands)
    annotate_scene(scene, fitness, grounder)
    return scene, fitness, found


def _grounding_metrics(inp: EvalInput, grounder: str, found) -> dict[str, Any]:
    from georeason.models.fitness import class_extent

    out: dict[str, Any] = {"grounder": grounder, "classes": {}}
    vec = set(inp.vectors.labels) if inp.vectors is not None else set()
    labelled = shapely.union_all(list(inp.truth.geoms))
    for c in sorted({str(x) for x in inp.truth.labels}):
        if c in vec:
            continue
        truth = [g for g, lab in zip(inp.truth.geoms, inp.truth.labels) if lab == c]
        pred = [o.geometry for o in found if o.label == c]
        extent, _ = class_extent(grounder, c)
        # both figures for every class: for a cover class the detection figures show what
        # counting its connected pieces as objects would give (why it abstains)
        m: dict[str, Any] = {"extent": extent, **detection_metrics(pred, truth), **cover_iou(pred, truth)}
        # inside the labelled areas (partial truth, e.g. the hand-made Landsat areas): the share
        # of each class's truth found, and of the grounded area there that has the right class
        pu = shapely.union_all(pred) if pred else shapely.GeometryCollection()
        tu = shapely.union_all(truth)
        hit = shapely.intersection(pu, tu).area if not pu.is_empty else 0.0
        in_lab = shapely.intersection(pu, labelled).area if not pu.is_empty else 0.0
        m["area_recall"] = hit / tu.area if tu.area > 0 else None
        m["labelled_precision"] = hit / in_lab if in_lab > 0 else None
        if len(truth) <= 30:
            ids = [str(i) for i, lab in zip(inp.truth.ids, inp.truth.labels) if lab == c]
            m["per_object_recall"] = {
                i: (shapely.intersection(pu, g).area / g.area if g.area > 0 and not pu.is_empty else 0.0)
                for i, g in zip(ids, truth)
            }
        out["classes"][c] = m
    return out


def _run_direct(
    questions, inp: EvalInput, rgb, markers, url: str, model: str | None, grid
) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    from georeason.errors import GeoreasonError
    from georeason.models.backends.remote import ChatClient
    from georeason.models.fitness import _gsd_m

    chat = ChatClient(url, model, max_tokens=256)
    gsd = _gsd_m(str(inp.raster))
    base_url = _png_data_url(rgb)
    urls: dict[tuple[int, ...], str] = {}
    for key in markers:
        urls[key] = _png_data_url(draw_overlay(rgb, key))
    size = (grid.width, grid.height)

    def one(q: EvalQuestion) -> dict[str, Any]:
        data = urls[tuple(q.overlay_px)] if q.overlay_px is not None else base_url
        try:
            text = chat(_vlm_messages(q, data, size, gsd))
        except GeoreasonError as exc:
            return _row(
                q, "direct", {"value": None, "abstained": True, "reason": f"error: {exc}", "raw": None}
            )
        value, abstained, box = parse_free_text(text, q.to_json())
        return _row(
            q,
            "direct",
            {
                "value": value,
                "abstained": abstained,
                "raw": text,
                "_px_box": box,
                "reason": "the model declined" if abstained else None,
            },
        )

    qs = [q for q in questions if not q.truth_ids]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, qs))


def _tables(rows: list[dict[str, Any]], modes: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        rs = [r for r in rows if r["mode"] == mode]
        if not rs:
            continue
        out[mode] = {
            "by_category_ref": summarise(rs, ["category", "ref_mode"]),
            "by_category": summarise(rs, ["category"]),
            "by_task": summarise(rs, ["category", "task"]),
            "by_ref_mode": summarise(rs, ["ref_mode"]),
            "overall": summarise([{**r, "all": "all"} for r in rs], ["all"])[0],
        }
    return out


# -- reports --------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _err(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.3g}%"


def table_rows(report: dict[str, Any], mode: str, by: str = "by_category_ref") -> list[list[str]]:
    """Rows for a terminal/markdown table: keys, n, accuracy, answered, errors, abstention P/R."""
    out = []
    for r in report["tables"].get(mode, {}).get(by, []):
        keys = [str(r[k]) for k in ("category", "task", "ref_mode") if k in r]
        out.append(
            keys
            + [
                str(r["n"]),
                _pct(r["accuracy"]),
                _pct(r["answered"]),
                _err(r["median_rel_err"]),
                _err(r["max_rel_err"]),
                _pct(r["abstention_precision"]),
                _pct(r["abstention_recall"]),
            ]
        )
    return out


_HEAD = ["n", "accuracy", "answered", "median rel. err", "max rel. err", "abstention P", "abstention R"]


def render_markdown(report: dict[str, Any], charts: dict[str, str] | None = None) -> str:
    """The markdown report: settings, per mode the overall line and tables, grounding metrics."""
    s = report["settings"]
    lines = [
        f"# georeason eval: {s.get('item') or Path(s['raster']).name}",
        "",
        f"{report['questions']} questions (seed {s['seed']}), modes: {', '.join(s['modes'])}; "
        f"grounder `{s['grounder']}`, min confidence {s['min_confidence']}.",
        "",
    ]
    for mode, t in report["tables"].items():
        o = t["overall"]
        lines += [
            f"## {mode}",
            "",
            f"Overall: {o['n']} questions, accuracy {_pct(o['accuracy'])}, answered {_pct(o['answered'])}, "
            f"metric relative error median {_err(o['median_rel_err'])} / max {_err(o['max_rel_err'])}, "
            f"abstention precision {_pct(o['abstention_precision'])} / recall {_pct(o['abstention_recall'])}.",
            "",
        ]
        for by, keys in (
            ("by_category", ["category"]),
            ("by_ref_mode", ["reference"]),
            ("by_category_ref", ["category", "reference"]),
        ):
            head = keys + _HEAD
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(r) + " |" for r in table_rows(report, mode, by)]
            lines.append("")
        if charts and mode in charts:
            lines += [f"![{mode}]({charts[mode]})", ""]
    if report["grounding"]:
        lines += [
            "## Grounding against the truth",
            "",
            "| mode | grounder | class | extent | metric | precision | recall | F1 / IoU | predicted | truth |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for mode, gm in report["grounding"].items():
            for c, m in gm["classes"].items():
                lines.append(
                    f"| {mode} | {gm['grounder']} | {c} | {m['extent']} | P/R/F1 @ IoU 0.5 | {_pct(m['precision'])} | "
                    f"{_pct(m['recall'])} | {_pct(m['f1'])} | {m['predicted']} | {m['truth']} |"
                )
                lines.append(
                    f"| {mode} | {gm['grounder']} | {c} | {m['extent']} | area IoU | - | - | {_pct(m['iou'])} | "
                    f"{m['predicted_area'] / 1e4:.4g} ha | {m['truth_area'] / 1e4:.4g} ha |"
                )
        lines.append("")
    return "\n".join(lines)


def write_charts(report: dict[str, Any], out: Path) -> dict[str, str]:
    """One PNG bar chart per mode: accuracy by category (pillow; no matplotlib needed)."""
    from PIL import Image, ImageDraw

    files = {}
    for mode, t in report["tables"].items():
        rows = t["by_category"]
        w, h, pad, bar = 640, 300, 50, 60
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        d.text((pad, 8), f"{mode}: accuracy by category", fill="black")
        d.line([(pad, h - pad), (w - 10, h - pad)], fill="black")
        d.line([(pad, 30), (pad, h - pad)], fill="black")
        for frac in (0.0, 0.5, 1.0):
            y = h - pad - frac * (h - pad - 30)
            d.text((8, y - 6), f"{int(frac * 100)}%", fill="black")
        for k, r in enumerate(rows):
            x0 = pad + 20 + k * (bar + 40)
            top = h - pad - r["accuracy"] * (h - pad - 30)
            d.rectangle([x0, top, x0 + bar, h - pad], fill=(60, 120, 200))
            d.text((x0, h - pad + 6), str(r["category"])[:12], fill="black")
            d.text((x0 + 8, top - 14), f"{100 * r['accuracy']:.0f}%", fill="black")
        path = out / f"accuracy-{mode}.png"
        img.save(path)
        files[mode] = path.name
    return files


def write_report(report: dict[str, Any], questions: list[EvalQuestion], out: Path) -> dict[str, str]:
    """``report.json``, ``report.md`` (+ PNG charts), ``questions.jsonl``, ``answers.jsonl`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(report, out)
    files = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "questions": out / "questions.jsonl",
        "answers": out / "answers.jsonl",
    }
    slim = {k: v for k, v in report.items() if k != "rows"}
    files["json"].write_text(json.dumps(slim, indent=2, default=str) + "\n", encoding="utf-8")
    files["markdown"].write_text(render_markdown(report, charts) + "\n", encoding="utf-8")
    files["questions"].write_text(
        "".join(json.dumps(q.to_json(), default=str) + "\n" for q in questions), encoding="utf-8"
    )
    files["answers"].write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, default=str) + "\n"
            for r in report["rows"]
        ),
        encoding="utf-8",
    )
    report["files"] = {k: str(v) for k, v in files.items()} | {
        f"chart_{m}": str(out / p) for m, p in charts.items()
    }
    return report["files"]


def evaluate_items(
    items: Sequence[str | None],
    catalog: str | Path | None,
    raster: str | Path | None,
    truth: str | Path | None,
    bands: str | None,
    out: Path,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Run :func:`run_eval` for each item (or the one raster + truth); write ``OUT/<name>/`` and
    ``OUT/summary.md`` (overall and grounding tables of every item: what the README shows).

    ``recorded`` mode is skipped, with a note, for an item that has no recorded outputs.
    """
    reports: dict[str, dict[str, Any]] = {}
    multi = len(items) > 1
    for it in items:
        inp = load_input(it, catalog, raster, truth, bands)
        name = it or Path(inp.raster).stem
        modes = list(kwargs.get("modes", ["oracle"]))
        skipped = []
        opts = kwargs.get("grounder_options") or {}
        if "recorded" in modes and inp.recorded is None and "outputs" not in opts and multi:
            modes.remove("recorded")
            skipped.append("recorded (no recorded outputs for this item)")
        rep = run_eval(inp, **{**kwargs, "modes": modes}, out=Path(out) / name if multi else Path(out))
        rep["skipped"] = skipped
        reports[name] = rep
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "summary.md").write_text(render_summary(reports) + "\n", encoding="utf-8")
    return reports


def _accuracy_table(reports: dict, title: str, field: str, columns: list[str]) -> list[str]:
    """Markdown lines: accuracy (and count) per item and mode for each value of ``field``,
    from the rows ``by_<field>`` of each report's tables."""
    rows_key = f"by_{field}"
    lines = ["", f"Accuracy by {title}:", "", "| item | mode | " + " | ".join(columns) + " |"]
    lines.append("|---|---|" + "---|" * len(columns))
    for name, r in reports.items():
        for m, t in r["tables"].items():
            by = {x[field]: x for x in t[rows_key]}
            cells = [f"{_pct(by[c]['accuracy'])} ({by[c]['n']})" if c in by else "-" for c in columns]
            lines.append(f"| {name} | {m} | " + " | ".join(cells) + " |")
    return lines


def render_summary(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown: one line per item x mode (overall figures), then per category, then grounding."""
    lines = [
        "| item | mode | questions | accuracy | answered | median rel. err | max rel. err | abstention P | abstention R |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        for m, t in r["tables"].items():
            o = t["overall"]
            lines.append(
                f"| {name} | {m} | {o['n']} | {_pct(o['accuracy'])} | {_pct(o['answered'])} | "
                f"{_err(o['median_rel_err'])} | {_err(o['max_rel_err'])} | {_pct(o['abstention_precision'])} | "
                f"{_pct(o['abstention_recall'])} |"
            )
    lines += _accuracy_table(
        reports, "category", "category", ["distance", "direction", "topology", "group", "unanswerable"]
    )
    lines += _accuracy_table(
        reports, "reference mode", "ref_mode", ["id", "text", "bbox", "polygon", "polyline", "wkt", "overlay"]
    )
    g_lines = []
    for name, r in reports.items():
        for m, gm in r.get("grounding", {}).items():
            for c, v in gm["classes"].items():
                g_lines.append(
                    f"| {name} | {m} | {gm['grounder']} | {c} | {v['extent']} | {_pct(v['precision'])} | "
                    f"{_pct(v['recall'])} | {_pct(v['f1'])} | {v['predicted']} / {v['truth']} | {_pct(v['iou'])} | "
                    f"{_pct(v.get('area_recall'))} | {_pct(v.get('labelled_precision'))} |"
                )
    if g_lines:
        lines += [
            "",
            "Grounding against the truth (detection P/R/F1 at IoU 0.5, the figure for instance classes; area IoU, the figure for cover classes; both shown for every class):",
            "",
            "| item | mode | grounder | class | extent | precision | recall | F1 | found / true | area IoU "
            "| area recall | precision in labelled areas |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ] + g_lines
    skipped = [f"{name}: {s}" for name, r in reports.items() for s in r.get("skipped", [])]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped) + "."]
    return "\n".join(lines)
