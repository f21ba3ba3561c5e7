"""Everything a GIS user opens for one item: objects, per-answer quicklooks and styles, a QGIS project.

:func:`export_item_files` is what the flow's export step calls once an item's questions are
answered: it writes into ``OUT/<item>/``

- ``objects.gpkg`` (raster CRS, version 1.3): one layer per geometry family
  (``objects_polygons``, ``objects_lines``, ...), each geometry once (see
  :func:`~georeason.geo.export.layers.dedupe_classes`), fields ``id``, ``class``, ``also``,
  ``score``, ``source``;
- ``objects.geojson`` (RFC 7946), or one file per family when the objects mix them;
- ``quicklook.png`` (all objects) and ``qNN-<question>.png`` per answered question;
- a ``.qml`` style beside every answer layer and mask, and ``<item>.qgs``: raster, objects by
  class, evidence, answer regions and masks, styled, with relative paths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.geo.export.layers import (
    FAMILIES,
    AnswerLayer,
    GeoJSONCache,
    dedupe_classes,
    families_of,
    geometry_family,
    split_by_family,
    write_feature_collection,
    write_layers,
)
from georeason.geo.export.qgis import ANSWER, EVIDENCE, LayerSpec, write_project, write_qml
from georeason.geo.export.quicklook import Basemap, read_basemap, write_quicklook
from georeason.geo.language.answer import Answer, Evidence
from georeason.geo.vector.crs import LONLAT, reproject

__all__ = ["export_item_files", "answer_paths", "answer_subtitle"]


def answer_paths(outputs: Mapping[str, Any], base: Path) -> list[Path]:
    """The GeoJSON files of one answer (``outputs["geojson"]`` and ``outputs["parts"]``),
    relative paths taken from ``base``."""
    paths = [outputs["geojson"]] if outputs.get("geojson") else []
    paths += [p for p in outputs.get("parts") or [] if p not in paths]
    return [(Path(p) if Path(p).is_absolute() else base / p) for p in paths]


def answer_subtitle(answer: Answer) -> str:
    """The answer as a person reads it: ``Answer: 3`` / ``Abstained: <reason>``.

    Examples
    --------
    >>> answer_subtitle(Answer(10877.639, "scalar", unit="m2")), answer_subtitle(Answer(True, "boolean"))
    ('Answer: 10,878 m2', 'Answer: yes')
    >>> answer_subtitle(Answer.abstain("no lake in the scene"))
    'Abstained: no lake in the scene'
    """
    if answer.abstained:
        return f"Abstained: {answer.reason}"
    v = answer.value
    if isinstance(v, bool):
        v = "yes" if v else "no"
    elif isinstance(v, float):
        v = _readable(v)
    elif isinstance(v, list):
        v = ", ".join(map(str, v[:12])) + (f" ... ({len(v)} in all)" if len(v) > 12 else "")
    unit = answer.unit or ""
    return f"Answer: {v} {unit}".strip()


def _readable(v: float) -> str:
    """Four significant digits without an exponent: ``10,878``, ``2.346``, ``0.01234``.

    Examples
    --------
    >>> _readable(10877.639), _readable(2.34567), _readable(0.0123449)
    ('10,878', '2.346', '0.01234')
    """
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def _evidence(answer: Answer, crs: CRS) -> tuple[list[BaseGeometry], list[BaseGeometry]]:
    """(evidence outlines, answer regions) of an answer, in ``crs``: each evidence geometry
    taken in its own CRS and reprojected once per CRS (no lon/lat GeoJSON round trip)."""
    ev: list[BaseGeometry] = []
    region: list[BaseGeometry] = []
    by_crs: dict[int, tuple[CRS, list[Evidence]]] = {}
    for e in answer.evidence:
        if e.geometry is not None and not e.geometry.is_empty:
            by_crs.setdefault(id(e.crs), (e.crs, []))[1].append(e)
    for src_crs, items in by_crs.values():
        geoms = reproject([e.geometry for e in items], src_crs, crs)
        for e, g in zip(items, geoms):
            (region if e.role == "region" else ev).append(g)
    return ev, region


def export_item_files(
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
    """Write an item's objects, quicklooks, styles and QGIS project; return ``{name: path}``.

    ``ids``/``labels``/``geoms`` are the item's scene (geometries in ``crs``, the raster's).
    ``answers`` are its :class:`~georeason.geo.language.answer.Answer` objects (evidence in
    its own CRS; ``None`` for a question that could not be answered at all) and
    ``outputs`` the files written for each (``geojson``, ``parts``, ``mask``), in the same
    order. ``answer_quicklooks`` in the result lists each answer's quicklook path (``None``
    when it has no geometry to show), in that order.

    ``layers_written`` (path -> :class:`~georeason.geo.export.layers.AnswerLayer`, as
    :func:`~georeason.geo.export.layers.write_answer_geojson` returns) says what each answer
    file holds, so it is not read back; ``geojson`` shares the objects' GeoJSON with the
    answer files written before; ``basemap`` is the raster read for display (or a future of
    it, read meanwhile in another thread), else it is read here.
    """
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
        answer_layers[0] = _visible(answer_layers[0])
    layers = (
        answer_layers
        + mask_layers
        + obj_layers
        + [LayerSpec(f"{item} raster", str(raster), "raster", bands=base.bands, stretch=base.stretch)]
    )
    files["answer_quicklooks"] = pngs
    files["project"] = str(write_project(out / f"{item}.qgs", f"georeason: {item}", crs, layers))
    return files


def _visible(spec: LayerSpec) -> LayerSpec:
    from dataclasses import replace

    return replace(spec, visible=True)


def _family_of_geojson(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fams = {
        geometry_family(shapely.geometry.shape(f["geometry"]))
        for f in doc.get("features", [])
        if f.get("geometry")
    }
    fams.discard(None)
    return fams.pop() if len(fams) == 1 else None


def _has_role(path: Path, role: str) -> bool:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return any((f.get("properties") or {}).get("role") == role for f in doc.get("features", []))
