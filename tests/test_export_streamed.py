"""A streamed export (each answer written as it comes, the objects in a background thread,
``answers.jsonl`` line by line) writes the same files as the export it replaced, which held
every answer until the item was exported.

The reference is the previous code itself (``export_item_outputs`` and ``export_item_files``
as they were before streaming, copied here verbatim), run on the shipped sample item with
answers of every kind (objects, a region, a pixel mask, an abstention, a question that
fails), and on the synthetic scene of ``test_export_identical.py`` above and below the
shared-text budget. Every file equal byte for byte (GeoPackages feature for feature, their
timestamps differ; PNGs pixel for pixel), and ``answers.jsonl`` line for line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
import yaml
from PIL import Image
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

import georeason.geo.export.item as item_mod
import georeason.geo.export.layers as layers_mod
from georeason.geo.export.item import _evidence, _family_of_geojson, _has_role, answer_paths, answer_subtitle
from georeason.geo.export.layers import (
    FAMILIES,
    AnswerLayer,
    GeoJSONCache,
    answer_stem,
    dedupe_classes,
    families_of,
    split_by_family,
    write_feature_collection,
    write_layers,
)
from georeason.geo.export.qgis import ANSWER, EVIDENCE, LayerSpec, write_project, write_qml
from georeason.geo.export.quicklook import Basemap, read_basemap, write_quicklook
from georeason.geo.language.answer import Answer
from georeason.geo.vector.crs import LONLAT
from georeason.geo.vector.scene import Scene
from georeason.pipeline import EVIDENCE_CHUNK, Outcome, Pipeline, outcome_row, read_vectors
from georeason.runstate import finite_row
from georeason.tasks import answer as answer_task

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"


# ----------------------------------------------------------------- the code before streaming


def _old_export_item_files(
    out_dir: str | Path,
    raster: str | Path,
    ids: Sequence[str],
    labels: Sequence[str],
    geoms: Sequence[BaseGeometry],
    crs: CRS,
    answers: Sequence[Answer | None],
    outputs: Sequence[Mapping[str, Any]],
    *,
    scores: Sequence[float | None] | None = None,
    sources: Sequence[str] | None = None,
    item: str | None = None,
    max_px: int = 1000,
    layers_written: Mapping[str, AnswerLayer] | None = None,
    geojson: GeoJSONCache | None = None,
    basemap: Basemap | Future[Basemap] | None = None,
) -> dict[str, Any]:
    """The item export before streaming (objects first, then the answers), verbatim."""
    out = Path(out_dir)
    item = item or out.name
    files: dict[str, Any] = {}
    keep, also = dedupe_classes(ids, labels, geoms)
    props = [
        {
            "id": str(ids[i]),
            "class": str(labels[i]),
            "also": ", ".join(a) or None,
            "score": None if scores is None or scores[i] is None else float(scores[i]),  # type: ignore[arg-type]
            "source": "vector" if sources is None else str(sources[i]),
        }
        for i, a in zip(keep, also)
    ]
    kept_geoms = [geoms[i] for i in keep]
    classes = list(dict.fromkeys(p["class"] for p in props))
    layers: list[LayerSpec] = []
    obj_layers: list[LayerSpec] = []
    if props:
        fams = split_by_family(props, kept_geoms)
        gpkg = write_layers({f"objects_{f}": v for f, v in fams.items()}, crs, out / "objects.gpkg")
        files["gpkg"] = str(gpkg)
        for fam in fams:
            fam_classes = tuple(dict.fromkeys(r["class"] for r in fams[fam][0]))
            obj_layers.append(
                LayerSpec(
                    f"objects ({fam})",
                    f"{gpkg}|layername=objects_{fam}",
                    "vector",
                    fam,
                    classes=fam_classes,
                    fill_alpha=40,
                    width_mm=0.3,
                )
            )
        cache = geojson if geojson is not None else GeoJSONCache()
        pairs = [(n, fam) for n, g in enumerate(kept_geoms) for fam in families_of(g)]
        texts = cache.texts([kept_geoms[n] for n, _ in pairs], [f for _, f in pairs], crs)
        feats: dict[str, list[tuple[Any, dict[str, Any], str]]] = {}
        for (n, fam), text in zip(pairs, texts):
            feats.setdefault(fam, []).append((props[n]["id"], props[n], text))
        for fam in FAMILIES:
            if fam in feats:
                one = len(feats) == 1
                name = "objects.geojson" if one else f"objects.{fam}.geojson"
                key = "objects_geojson" if one else f"objects_{fam}_geojson"
                files[key] = str(write_feature_collection(feats[fam], out / name))
    if isinstance(basemap, Future):
        base = basemap.result()
    elif basemap is None:
        base = read_basemap(raster, max_px)
    else:
        base = basemap
    files["quicklook"] = str(
        write_quicklook(
            raster,
            out / "quicklook.png",
            objects=kept_geoms,
            classes=[p["class"] for p in props],
            title=f"{item}: {len(kept_geoms)} objects",
            subtitle=", ".join(f"{c} ({sum(p['class'] == c for p in props)})" for c in classes),
            basemap=base,
        )
    )
    answer_layers: list[LayerSpec] = []
    mask_layers: list[LayerSpec] = []
    pngs: list[str | None] = []
    if len(answers) != len(outputs):
        raise ValueError(f"{len(answers)} answers but {len(outputs)} output records")
    for answer, written in zip(answers, outputs):
        pngs.append(None)
        paths = answer_paths(written, out)
        ev, region = _evidence(answer, crs) if answer is not None else ([], [])
        if answer is not None and paths and (ev or region):
            png = paths[0].with_name(paths[0].name.split(".")[0] + ".png")
            write_quicklook(
                raster,
                png,
                objects=kept_geoms,
                classes=[p["class"] for p in props],
                evidence=ev,
                region=region,
                title=str(answer.question),
                subtitle=answer_subtitle(answer),
                basemap=base,
            )
            pngs[-1] = str(png)
        for apath in paths:
            known = (layers_written or {}).get(str(apath))
            if known is not None:
                fam, is_region = known.family, "region" in known.roles
            else:
                fam = _family_of_geojson(apath)
                is_region = fam is not None and apath.exists() and _has_role(apath, "region")
            if fam is None:
                continue
            colour = ANSWER if is_region else EVIDENCE
            spec = LayerSpec(
                apath.name.removesuffix(".geojson"),
                str(apath),
                "vector",
                fam,
                colour=colour,
                fill_alpha=80 if is_region else 0,
                width_mm=0.6,
                visible=False,
                crs=LONLAT,
            )
            write_qml(apath.with_suffix(".qml"), spec.renderer())
            answer_layers.append(spec)
        mask = written.get("mask") or (answer.details.get("mask") if answer is not None else None)
        if mask:
            mp = Path(mask) if Path(mask).is_absolute() else out / mask
            if mp.exists():
                spec = LayerSpec(
                    f"mask {mp.stem}", str(mp), "raster", mask=True, colour=ANSWER, visible=False
                )
                write_qml(mp.with_suffix(".qml"), spec.renderer())
                mask_layers.append(spec)
    for spec in obj_layers:
        write_qml(Path(str(out / f"objects.{spec.family}.qml")), spec.renderer())
    # the first answer layer is shown, the others are listed (ticked off) to keep the map readable
    if answer_layers:
        answer_layers[0] = replace(answer_layers[0], visible=True)
    layers = (
        answer_layers
        + mask_layers
        + obj_layers
        + [LayerSpec(f"{item} raster", str(raster), "raster", bands=base.bands, stretch=base.stretch)]
    )
    files["answer_quicklooks"] = pngs
    files["project"] = str(write_project(out / f"{item}.qgs", f"georeason: {item}", crs, layers))
    return files


def _old_export_item_outputs(
    item: str, raster: str, answers: Sequence[Outcome], scene: Scene, out_dir: str | Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``export_item_outputs`` before streaming (every answer held until the item is exported), verbatim."""
    from concurrent.futures import ThreadPoolExecutor

    from georeason.geo.export.layers import (
        GeoJSONCache,
        answer_stem,
        write_answer_geojson,
        write_error_record,
    )
    from georeason.geo.export.quicklook import read_basemap

    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    written_layers: dict[str, AnswerLayer] = {}
    cache = GeoJSONCache()  # each object's GeoJSON made once for the answer files and objects.geojson
    with ThreadPoolExecutor(1, thread_name_prefix="basemap") as pool:
        # the quicklook basemap (raster reading and block means, mostly outside the GIL) is
        # read on another core while this thread writes the GeoJSON
        basemap = pool.submit(read_basemap, raster)
        for n, a in enumerate(answers, 1):
            if isinstance(a, Answer) and len(a.evidence) > EVIDENCE_CHUNK:
                # a large answer's evidence by id: its geometry is in the answer's layer (outputs)
                row = a.to_json(geometry=False)
                row["item"] = item
            else:
                row = outcome_row(a, item)
            path = out / f"{answer_stem(n, a.question or '')}.geojson"
            if isinstance(a, Answer):
                layers = write_answer_geojson(a, path, cache)
                written_layers.update((str(w.path), w) for w in layers)
                files: dict[str, Any] = {"geojson": str(layers[0].path)}
                if len(layers) > 1:
                    files["parts"] = [str(w.path) for w in layers]
                if "mask" in a.details:
                    files["mask"] = str(a.details["mask"])
            else:
                files = {"geojson": str(write_error_record(a.question, a.error, path))}
            row["outputs"] = files
            rows.append(row)
            outputs.append(files)
        item_files = _old_export_item_files(
            out,
            raster,
            [str(i) for i in scene.ids],
            [str(lab) for lab in scene.labels],
            list(scene.geoms),
            scene.crs,
            [a if isinstance(a, Answer) else None for a in answers],
            outputs,
            scores=list(scene.scores),
            sources=[a.get("source", "vector") for a in scene.attrs],
            item=item,
            layers_written=written_layers,
            geojson=cache,
            basemap=basemap,
        )
    for files, png in zip(outputs, item_files.pop("answer_quicklooks", None) or []):
        if png:
            files["quicklook"] = png
    return rows, item_files


def _old_relative_row(row: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The flow's ``_relative_row`` before streaming, verbatim."""
    from georeason.geo.export.layers import relative_outputs

    if row.get("outputs"):
        row = {**row, "outputs": relative_outputs(row["outputs"], out_dir)}
    details = row.get("details")
    if isinstance(details, dict) and isinstance(details.get("mask"), str):
        row = {**row, "details": {**details, "mask": relative_outputs({"m": details["mask"]}, out_dir)["m"]}}
    return row


# ----------------------------------------------------------------- helpers


#: A question no template understands: a QuestionError row and an error record file.
BAD = "Frobnicate the zorp of #road-1 backwards?"


def _questions() -> list[str]:
    doc = yaml.safe_load((REPO / "data_catalog" / "questions.yaml").read_text())
    return [q["question"] for q in doc["questions"] if q.get("item") == "sample"] + [BAD]


def _run(pipeline_out: Path, stream: bool):
    out = pipeline_out / "sample"
    kw: dict[str, Any] = {
        "raster": str(SAMPLE / "sample_scene.tif"),
        "vectors": read_vectors([SAMPLE / "sample_roads.geojson"]),
        "item": "sample",
        "mask_path": lambda n, q: out / "masks" / f"{answer_stem(n, q)}.tif",
    }
    p = Pipeline()
    return p.run_iter(_questions(), **kw) if stream else p.run(_questions(), **kw)


def _tree(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_gpkg(a: Path, b: Path) -> None:
    layers = [n for n, _ in pyogrio.list_layers(a)]
    assert layers == [n for n, _ in pyogrio.list_layers(b)]
    for name in layers:
        da, db = pyogrio.read_dataframe(a, layer=name), pyogrio.read_dataframe(b, layer=name)
        assert da.drop(columns="geometry").equals(db.drop(columns="geometry"))
        assert list(shapely.to_wkb(da.geometry.values)) == list(shapely.to_wkb(db.geometry.values))


def _same_trees(old: Path, new: Path) -> list[str]:
    """Every file under ``old`` and ``new`` equal (same names); the names compared."""
    a, b = _tree(old), _tree(new)
    assert sorted(a) == sorted(b)
    for name in a:
        if name.endswith(".gpkg"):
            _same_gpkg(a[name], b[name])
        elif name.endswith(".png"):
            with Image.open(a[name]) as ia, Image.open(b[name]) as ib:
                assert ia.mode == ib.mode and ia.size == ib.size, name
                assert np.array_equal(np.asarray(ia), np.asarray(ib)), name
        else:
            assert a[name].read_bytes() == b[name].read_bytes(), name
    return list(a)


# ----------------------------------------------------------------- tests


@pytest.mark.parametrize("shared", [True, False], ids=["shared-texts", "over-budget"])
def test_streamed_export_equals_the_export_before_streaming(tmp_path, monkeypatch, shared):
    """The flow's answer-export task, fed the answers as they are made, against the old
    export of the same answers held in a list: same files, same answers.jsonl lines, same
    item files. ``over-budget``: no text shared, objects.geojson and the answer files written
    40 coordinates a chunk."""
    if not shared:
        monkeypatch.setattr(item_mod, "SHARED_TEXT_COORDS", 0)
        # objects.geojson and the answer files in chunks (both made by layers.iter_rfc7946_texts)
        monkeypatch.setattr(layers_mod, "TEXT_CHUNK_COORDS", 40)
    import logging

    monkeypatch.setattr(answer_task, "get_run_logger", lambda: logging.getLogger("test"))
    # both written into the same folder (paths and the project's layer ids depend on it):
    # the old export's moved aside before the streamed one is written
    root = tmp_path / "out"
    before = _run(root, stream=False)
    answers = before.answers
    kinds = {
        "error": sum(not isinstance(a, Answer) for a in answers),
        "abstained": sum(isinstance(a, Answer) and a.abstained for a in answers),
        "mask": sum(isinstance(a, Answer) and "mask" in a.details for a in answers),
        "region": sum(isinstance(a, Answer) and any(e.role == "region" for e in a.evidence) for a in answers),
        "objects": sum(
            isinstance(a, Answer) and any(e.role != "region" for e in a.evidence) for a in answers
        ),
    }
    assert all(kinds.values()), kinds  # every kind of answer is compared
    rows_old, files_old = _old_export_item_outputs(
        "sample", str(SAMPLE / "sample_scene.tif"), answers, before.scene, root / "sample"
    )
    lines_old = [json.dumps(_old_relative_row(finite_row(r), root), allow_nan=False) + "\n" for r in rows_old]
    del before, answers
    shutil.move(root, tmp_path / "old")

    after = _run(root, stream=True)
    assert after.answers == []  # nothing answered yet: the task answers as it consumes
    part = tmp_path / "new.part"
    slim, files_new = answer_task.answer_item.fn(
        "sample",
        str(SAMPLE / "sample_scene.tif"),
        after.stream,
        after.scene,
        str(root / "sample"),
        str(part),
        str(root),
    )
    assert part.read_text(encoding="utf-8") == "".join(lines_old)
    names = _same_trees(tmp_path / "old", root)
    assert "sample/objects.polygons.geojson" in names and any(n.startswith("sample/masks/") for n in names)
    assert files_new == files_old
    # the rows kept for the run's summary: the same without their evidence
    want = [{k: v for k, v in finite_row(r).items() if k != "evidence"} for r in rows_old]
    assert json.loads(json.dumps(slim)) == json.loads(json.dumps(want))


def test_each_answer_is_written_and_dropped_before_the_next_is_made(tmp_path, monkeypatch):
    """Streaming for real: when the task asks for answer k+1, answer k's files are on disk and
    no reference to answer k is left."""
    import gc
    import logging
    import weakref

    monkeypatch.setattr(answer_task, "get_run_logger", lambda: logging.getLogger("test"))
    result = _run(tmp_path, stream=True)
    seen: list[tuple[Path, weakref.ref]] = []
    checked = 0

    def watched():
        nonlocal checked
        for n, a in enumerate(result.stream, 1):
            if seen:
                gc.collect()
                path, ref = seen[-1]
                assert list(path.parent.glob(f"{path.stem}*.geojson")), (
                    path
                )  # stem.geojson or stem.<family>.geojson
                assert ref() is None, f"answer {n - 1} still held when answer {n} is asked for"
                checked += 1
            seen.append((tmp_path / "sample" / f"{answer_stem(n, a.question or '')}.geojson", weakref.ref(a)))
            yield a
            del a

    answer_task.answer_item.fn(
        "sample",
        str(SAMPLE / "sample_scene.tif"),
        watched(),
        result.scene,
        str(tmp_path / "sample"),
        str(tmp_path / "rows.part"),
        str(tmp_path),
    )
    assert checked == len(_questions()) - 1
