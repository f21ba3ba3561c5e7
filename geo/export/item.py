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

import functools
import json
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    iter_rfc7946_texts,
    split_by_family,
    write_feature_collection,
    write_layers,
)
from georeason.geo.export.qgis import ANSWER, EVIDENCE, LayerSpec, write_project, write_qml
from georeason.geo.export.quicklook import Basemap, read_basemap, write_quicklook
from georeason.geo.language.answer import Answer, Evidence
from georeason.geo.vector.crs import LONLAT, reproject

__all__ = ["export_item_files", "ItemFiles", "SHARED_TEXT_COORDS", "answer_paths", "answer_subtitle"]


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


#: Scenes with at most this many coordinates share their objects' GeoJSON texts between
#: ``objects.geojson`` and the answer files (:class:`~georeason.geo.export.layers.GeoJSONCache`):
#: an answer's evidence is mostly the scene's objects, so each text is made once (on the
#: 8000² test scene, ~0.5 M coordinates, that saves about a second of CPU) and the texts
#: held cost ~40 bytes a coordinate (~20 MB there). A larger scene (the 20000² one: several
#: million coordinates, >100 MB of texts) writes ``objects.geojson`` a chunk at a time
#: without keeping any text, and each answer file makes its own: memory stays bounded
#: whatever the scene, for the price of making some texts twice.
SHARED_TEXT_COORDS = 1_000_000

#: Answers' quicklooks waiting or being written at once (:meth:`ItemFiles.add` with a
#: background start): one, written while the next answer is computed; a further one waits
#: for it. Encoding a 1000 px page is ~0.1 s outside the GIL (the 8000^2 scene's seven
#: answers: 0.55 s of the answering thread before, benchmarks/RESULTS.md re-run 10).
QUICKLOOKS_AHEAD = 1


class ItemFiles:
    """An item's files written as its answers come (:func:`export_item_files` in steps).

    Built once the scene is known: :meth:`start` writes the objects (``objects.gpkg``,
    ``objects.geojson``, ``quicklook.png``) in a background thread (GDAL/pyogrio writing,
    raster reading and PIL drawing release the GIL; the GeoJSON text making does not, and
    shares the item's :class:`GeoJSONCache` under its lock), while the caller answers the
    questions; :meth:`add` writes one answer's quicklook and styles as soon as its layers
    are written and keeps only its layer specs; :meth:`finish` waits for the objects and
    writes the object styles and the QGIS project. Arguments as :func:`export_item_files`.
    """

    def __init__(
        self,
        out_dir: str | Path,
        raster: str | Path,
        ids: Sequence[str],
        labels: Sequence[str],
        geoms: Sequence[BaseGeometry],
        crs: CRS,
        *,
        scores: Sequence[float | None] | None = None,
        sources: Sequence[str] | None = None,
        item: str | None = None,
        max_px: int = 1000,
        geojson: GeoJSONCache | None = None,
        basemap: Basemap | Future[Basemap] | None = None,
    ) -> None:
        self.out = Path(out_dir)
        self.raster = raster
        self.item = item or self.out.name
        self.crs = crs
        self.max_px = max_px
        self._basemap = basemap
        self._base: Basemap | None = None
        keep, also = dedupe_classes(ids, labels, geoms)
        self.props = [
            {
                "id": str(ids[i]),
                "class": str(labels[i]),
                "also": ", ".join(a) or None,
                "score": None if scores is None or scores[i] is None else float(scores[i]),  # type: ignore[arg-type]
                "source": "vector" if sources is None else str(sources[i]),
            }
            for i, a in zip(keep, also)
        ]
        self.kept_geoms = [geoms[i] for i in keep]
        self.classes = [p["class"] for p in self.props]
        self.cache = geojson
        self.files: dict[str, Any] = {}
        self.obj_layers: list[LayerSpec] = []
        self.answer_layers: list[LayerSpec] = []
        self.mask_layers: list[LayerSpec] = []
        self.pngs: list[str | None] = []
        self._objects: Future[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        # answers' quicklooks: drawn and encoded on a thread of their own while the next
        # answer is computed (PNG encoding runs outside the GIL), at most
        # QUICKLOOKS_AHEAD waiting, so their evidence is held no longer than that
        self._looks: deque[Future[Path]] = deque()
        self._look_pool: ThreadPoolExecutor | None = None

    def start(self, background: bool = True) -> ItemFiles:
        """Write the objects' files, in a background thread unless ``background`` is false
        (and then the answers' quicklooks too, as :meth:`add` is called)."""
        if self._objects is None:
            if background:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="georeason-objects")
                self._look_pool = ThreadPoolExecutor(1, thread_name_prefix="georeason-quicklooks")
                self._objects = self._pool.submit(self._write_objects)
            else:
                done: Future[None] = Future()
                self._write_objects()
                done.set_result(None)
                self._objects = done
        return self

    def base(self) -> Basemap:
        """The basemap (read here if none was given; a future given is waited for)."""
        if self._base is None:
            b = self._basemap
            self._base = (
                b.result()
                if isinstance(b, Future)
                else read_basemap(self.raster, self.max_px)
                if b is None
                else b
            )
        return self._base

    def _write_objects(self) -> None:
        out, props, kept_geoms, crs = self.out, self.props, self.kept_geoms, self.crs
        files: dict[str, Any] = {}
        if props:
            fams = split_by_family(props, kept_geoms)
            gpkg = write_layers({f"objects_{f}": v for f, v in fams.items()}, crs, out / "objects.gpkg")
            files["gpkg"] = str(gpkg)
            for fam in fams:
                fam_classes = tuple(dict.fromkeys(r["class"] for r in fams[fam][0]))
                self.obj_layers.append(
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
            del fams
            pairs = [(n, fam) for n, g in enumerate(kept_geoms) for fam in families_of(g)]
            by_fam: dict[str, list[int]] = {}
            for n, fam in pairs:
                by_fam.setdefault(fam, []).append(n)
            for fam in FAMILIES:
                if fam in by_fam:
                    one = len(by_fam) == 1
                    name = "objects.geojson" if one else f"objects.{fam}.geojson"
                    key = "objects_geojson" if one else f"objects_{fam}_geojson"
                    files[key] = str(write_feature_collection(self._features(by_fam[fam], fam), out / name))
        classes = list(dict.fromkeys(self.classes))
        files["quicklook"] = str(
            write_quicklook(
                self.raster,
                out / "quicklook.png",
                objects=kept_geoms,
                classes=self.classes,
                title=f"{self.item}: {len(kept_geoms)} objects",
                subtitle=", ".join(f"{c} ({self.classes.count(c)})" for c in classes),
                basemap=self.base(),
            )
        )
        self.files.update(files)

    def _features(self, members: list[int], fam: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
        """(id, properties, geometry text) of the kept objects ``members`` as ``fam``: texts
        from the shared cache, or (no cache) made ~TEXT_CHUNK_COORDS coordinates at a time
        as they are written, none kept."""
        geoms, props = self.kept_geoms, self.props
        texts = (
            self.cache.texts([geoms[n] for n in members], [fam] * len(members), self.crs)
            if self.cache is not None
            else iter_rfc7946_texts([geoms[n] for n in members], self.crs, family=fam)
        )
        for n, text in zip(members, texts):
            yield props[n]["id"], props[n], text

    def add(
        self,
        answer: Answer | None,
        written: Mapping[str, Any],
        layers_written: Mapping[str, AnswerLayer] | None = None,
    ) -> str | None:
        """Write one answer's quicklook and styles (its layers are ``written``: ``geojson``,
        ``parts``, ``mask``; ``layers_written`` says what each holds); returns the
        quicklook's path, ``None`` when the answer has no geometry to show."""
        out = self.out
        png_path: str | None = None
        paths = answer_paths(written, out)
        ev, region = _evidence(answer, self.crs) if answer is not None else ([], [])
        if answer is not None and paths and (ev or region):
            png = paths[0].with_name(paths[0].name.split(".")[0] + ".png")
            look = functools.partial(
                write_quicklook,
                self.raster,
                png,
                objects=self.kept_geoms,
                classes=self.classes,
                evidence=ev,
                region=region,
                title=str(answer.question),
                subtitle=answer_subtitle(answer),
                basemap=self.base(),
            )
            if self._look_pool is None:
                look()
            else:
                while len(self._looks) >= QUICKLOOKS_AHEAD:
                    self._looks.popleft().result()  # an earlier quicklook's error is raised here
                self._looks.append(self._look_pool.submit(look))
            png_path = str(png)
        self.pngs.append(png_path)
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
            self.answer_layers.append(spec)
        mask = written.get("mask") or (answer.details.get("mask") if answer is not None else None)
        if mask:
            mp = Path(mask) if Path(mask).is_absolute() else out / mask
            if mp.exists():
                spec = LayerSpec(
                    f"mask {mp.stem}", str(mp), "raster", mask=True, colour=ANSWER, visible=False
                )
                write_qml(mp.with_suffix(".qml"), spec.renderer())
                self.mask_layers.append(spec)
        return png_path

    def finish(self) -> dict[str, Any]:
        """Wait for the objects' files, write their styles and the QGIS project; return the
        item's files (``gpkg``, ``objects_geojson``..., ``quicklook``, ``answer_quicklooks``,
        ``project``)."""
        self.start(background=False)
        try:
            while self._looks:
                self._looks.popleft().result()  # every answer's quicklook is written
            assert self._objects is not None
            self._objects.result()  # an error writing the objects is raised here
        finally:
            self.close()
        out, base = self.out, self.base()
        for spec in self.obj_layers:
            write_qml(Path(str(out / f"objects.{spec.family}.qml")), spec.renderer())
        answer_layers = list(self.answer_layers)
        # the first answer layer is shown, the others are listed (ticked off) to keep the map readable
        if answer_layers:
            answer_layers[0] = _visible(answer_layers[0])
        layers = (
            answer_layers
            + self.mask_layers
            + self.obj_layers
            + [
                LayerSpec(
                    f"{self.item} raster", str(self.raster), "raster", bands=base.bands, stretch=base.stretch
                )
            ]
        )
        files = dict(self.files)
        files["answer_quicklooks"] = list(self.pngs)
        files["project"] = str(
            write_project(out / f"{self.item}.qgs", f"georeason: {self.item}", self.crs, layers)
        )
        return files

    def close(self) -> None:
        """Wait for the background threads, without raising their errors (after an error
        elsewhere: quicklooks not started are dropped); harmless when done."""
        for pool in (self._look_pool, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._looks.clear()


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
    answer files written before (none given: one made here); ``basemap`` is the raster read
    for display (or a future of it, read meanwhile in another thread), else it is read here.
    :class:`ItemFiles` does the same as the answers come.
    """
    if len(answers) != len(outputs):
        raise ValueError(f"{len(answers)} answers but {len(outputs)} output records")
    files = ItemFiles(
        out_dir,
        raster,
        ids,
        labels,
        geoms,
        crs,
        scores=scores,
        sources=sources,
        item=item,
        max_px=max_px,
        geojson=geojson if geojson is not None else GeoJSONCache(),
        basemap=basemap,
    ).start(background=False)
    for answer, written in zip(answers, outputs):
        files.add(answer, written, layers_written)
    return files.finish()


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
