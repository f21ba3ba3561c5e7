"""The one path from questions and a raster to answers, shared by ``ask`` and the flows.

:class:`Pipeline` answers the questions about one item (a raster and/or vector layers):

1. **compile** — each question becomes a validated program once
   (:func:`compile_questions`); the classes it needs, its execution and its export all use
   that :class:`CompiledQuestion`;
2. **split classes** — classes in the vector layers are read from them, the others are
   grounded on the raster if the grounder can find them (:func:`split_classes`);
3. **fit** — the grounder's per-scene set-up, once (:func:`georeason.models.registry.prepare_spec`):
   its :class:`~georeason.models.registry.GrounderSpec` is the one place grounder settings
   (``min_area_m2``, ``simplify_m``, thresholds, ...) come from;
4. **plan and ground** — the tile plan cut into at most ``max_batches`` batches
   (:func:`plan_batches`), each grounded by :func:`ground_job_batch` through a pluggable
   :data:`Mapper`: :func:`local_map` (a plain loop, used by ``georeason ask``) or the
   Prefect ``task.map`` of :func:`georeason.tasks.raster.prefect_map` (thread pool, or
   Dask through prefect-dask; it also names task runs by tile range and keeps a progress
   artifact). A tile whose read or grounding raises — any exception type — is a
   :class:`TileFailure`; the other tiles carry on. :attr:`Pipeline.progress` hears of each
   finished batch (``ask`` draws terminal bars from it);
5. **merge** — seams merged and water split into lakes and rivers by shape
   (:func:`merge_batches`);
6. **scene** — grounded objects plus vector-layer objects (:func:`grounded_scene`);
7. **answer** — each compiled question executed against the scene (:func:`answer_questions`),
   giving :class:`~georeason.geo.language.answer.Answer` objects (geometry in the scene's
   CRS; exporters convert to lon/lat when they need it), each with the confidence summary
   of :mod:`georeason.models.fitness` (below ``min_confidence`` it abstains). Answers that depend on a grounded
   class abstain, naming the failed tile, when a failed tile could change them
   (:func:`failure_affects`); the others answer. Every question gets a line: an
   exception while answering one is its :class:`QuestionError`, never the run's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import traceback
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from georeason.errors import GeoreasonError, InputError, QuestionParseError
from georeason.geo.language.answer import Answer
from georeason.geo.language.english import compile_program
from georeason.geo.language.executor import GroupBatch, answer_program
from georeason.geo.language.program import Program
from georeason.geo.vector.classnames import class_forms, singular
from georeason.geo.vector.crs import LONLAT, reproject
from georeason.geo.vector.measure import distance_m
from georeason.geo.vector.scene import Scene, normalise_class, read_scene
from georeason.models.fitness import (
    DEFAULT_MIN_CONFIDENCE,
    ClassFitness,
    annotate_scene,
    apply_confidence,
    assess,
    check_bands,
    grounded_index,
    raster_bands,
)

if TYPE_CHECKING:  # rasterio, scipy and the grounders load only when a raster is grounded
    from georeason.geo.export.quicklook import Basemap, BasemapCells, BasemapSums, CellSums
    from georeason.geo.grounding.detections import Detection, GroundedObject, Grounder
    from georeason.geo.raster.grid import RasterGrid
    from georeason.geo.raster.masks import ValidCells
    from georeason.geo.raster.tiling import Tile
    from georeason.models.registry import GrounderSpec

__all__ = [
    "TileFailure",
    "TileNote",
    "BatchResult",
    "CompiledQuestion",
    "QuestionError",
    "Outcome",
    "GroundJob",
    "Mapper",
    "TileProgress",
    "Progress",
    "AnswerContext",
    "ItemResult",
    "Grounding",
    "Pipeline",
    "compile_questions",
    "classes_needed",
    "classes_of_questions",
    "split_classes",
    "canonical_class",
    "plan_batches",
    "ground_batch",
    "ground_job_batch",
    "local_map",
    "merge_batches",
    "relabel_water",
    "is_linear",
    "grounded_scene",
    "answer_questions",
    "iter_answers",
    "failure_affects",
    "outcome_row",
    "outcome_jsonl",
    "outcome_jsonl_parts",
    "export_item_outputs",
    "ItemExport",
    "ItemStream",
    "row_text",
    "read_vectors",
    "LINEAR_WATER",
    "AREAL_WATER",
]

log = logging.getLogger("georeason.pipeline")

#: Water classes that are long and thin; the others are areal water bodies (singular forms).
LINEAR_WATER = frozenset({"river", "stream", "canal", "creek", "channel"})
AREAL_WATER = frozenset({"lake", "pond", "reservoir", "sea", "water body", "lagoon", "basin"})
#: A water body is linear when its area is this many times that of its largest inscribed
#: circle: about 1 for a round lake, 2-10 for lobed lakes and coasts, hundreds for a river
#: (a 90 m wide, 38 km long river: ~500). Unlike perimeter-based elongation, this is not
#: fooled by a ragged coastline.
LINEAR_AREA_RATIO = 25.0
#: At most this many model-output warnings are logged one by one per grounding (all of them
#: reach the answers).
MAX_LOGGED_NOTES = 20


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class CompiledQuestion:
    """A question compiled once: its validated program, or why it could not be compiled.

    ``program`` is ``None`` when no template understands the question (``error`` says
    why); such a question may still be answered by a planner, else it is reported. A
    question understood but whose program is refused (``invalid``: a latitude of 95, a
    distance beyond the Earth's) is reported, never handed to a planner.
    """

    text: str
    program: Program | None
    error: str | None = None
    invalid: bool = False
    #: the traceback when compiling raised an unexpected exception (a bug: ``internal error``)
    trace: str | None = field(default=None, compare=False, repr=False)

    @cached_property
    def classes(self) -> list[str]:
        """Classes the program selects, normalised, in order (none for an uncompiled question)."""
        return [] if self.program is None else classes_needed(self.program.to_json())


def compile_questions(questions: Iterable[str]) -> list[CompiledQuestion]:
    """Compile each question once (:func:`georeason.geo.language.english.compile_program`).

    Examples
    --------
    >>> [c.program is not None for c in compile_questions(["How many lakes are there?", "Why?"])]
    [True, False]
    """
    out = []
    for q in questions:
        try:
            out.append(CompiledQuestion(q, compile_program(q)))
        except QuestionParseError as exc:
            out.append(CompiledQuestion(q, None, str(exc)))
        except GeoreasonError as exc:  # understood, but the program is refused (values out of range)
            out.append(CompiledQuestion(q, None, " ".join(str(exc).split()), invalid=True))
        except Exception as exc:  # noqa: BLE001 - every question gets a line, even after a bug
            msg = " ".join(str(exc).split()) or type(exc).__name__
            err = f"internal error {type(exc).__name__}: {msg}"
            out.append(CompiledQuestion(q, None, err, invalid=True, trace=traceback.format_exc()))
    return out


def classes_needed(program_steps: Iterable[dict[str, Any]]) -> list[str]:
    """Class names a program selects (``select``/``at`` steps), normalised, in order.

    Examples
    --------
    >>> classes_needed([{"op": "select", "args": {"cls": "Buildings"}}, {"op": "at", "args": {"cls": "lake"}}])
    ['buildings', 'lake']
    """
    out: list[str] = []
    for s in program_steps:
        cls = (s.get("args") or {}).get("cls")
        if cls and s.get("op") in ("select", "at"):
            c = normalise_class(cls)
            if c not in out:
                out.append(c)
    return out


def classes_of_questions(questions: Iterable[CompiledQuestion]) -> list[str]:
    """Classes the programs of compiled questions select, in order, each once.

    A question no template understands contributes nothing here; it is reported when it
    is answered.

    Examples
    --------
    >>> classes_of_questions(compile_questions(["How many lakes are there?", "Why?", "Which lake is nearest to #r1?"]))
    ['lakes', 'lake']
    """
    out: list[str] = []
    for cq in questions:
        for c in cq.classes:
            if c not in out:
                out.append(c)
    return out


def split_classes(
    classes: Sequence[str], vector_scene: Scene | None, can_ground: Callable[[str], bool]
) -> tuple[list[str], list[str], list[str]]:
    """Split classes into (from vector layers, to ground, unavailable).

    A class present in the vector layers is taken from them (exact geometry beats
    detection); otherwise it is grounded if ``can_ground(cls)``; else it is unavailable
    and questions about it abstain.
    """
    vec: list[str] = []
    ground: list[str] = []
    missing: list[str] = []
    for c in classes:
        if vector_scene is not None and vector_scene.resolve_class(c) is not None:
            vec.append(c)
            continue
        canon = canonical_class(c, can_ground)
        if canon is None:
            missing.append(c)
        elif canon not in ground:
            ground.append(canon)
    return vec, ground, missing


def canonical_class(label: str, can_ground: Callable[[str], bool]) -> str | None:
    """The singular of a class name if a grounder supports it, else the name, else ``None``.

    Grounded objects are labelled with this form (and a model is prompted with it), so
    ``lakes`` and ``lake`` in two questions ground once as ``lake`` and both resolve.

    Examples
    --------
    >>> canonical_class("Geese", lambda c: True), canonical_class("Buses", lambda c: True)
    ('goose', 'bus')
    >>> canonical_class("Buildings", lambda c: c in {"building", "buildings"})
    'building'
    """
    name = normalise_class(label)
    for cand in dict.fromkeys([singular(name), name]):
        if can_ground(cand):
            return cand
    return None


# --------------------------------------------------------------------------- grounding


@dataclass(frozen=True)
class TileFailure:
    """A tile whose read or grounding failed; the run carries on without it."""

    index: tuple[int, int]
    error: str
    #: ``(left, bottom, right, top)`` of the tile's core in the raster CRS (the area whose
    #: objects are lost); ``None`` when unknown (then every grounded answer abstains).
    bounds: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class TileNote:
    """A warning about one tile's grounding: what the model's output there lost (a
    :class:`~georeason.errors.ParseWarning`, e.g. a truncated answer whose unfinished
    object was dropped). Carried to the answers that use the grounded classes
    (``details.model_output_warnings``) and to the run's logs."""

    index: tuple[int, int]
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"tile": list(self.index), "warning": self.message}


@dataclass(frozen=True)
class BatchResult:
    """What one batch of tiles produced."""

    results: tuple[tuple[Tile, tuple[Detection, ...]], ...]
    failures: tuple[TileFailure, ...] = ()
    #: parse warnings of the grounder's model outputs, per tile
    notes: tuple[TileNote, ...] = ()
    #: the tiles whose core held no valid pixel: read, not grounded (in ``results``, with
    #: no detections)
    skipped: tuple[tuple[int, int], ...] = ()
    #: each read tile's share of the quicklook basemap (when the job asks for it,
    #: :attr:`GroundJob.cells`): small arrays, summed by :class:`~georeason.geo.export.quicklook.BasemapSums`
    cells: tuple[CellSums, ...] = ()


@dataclass(frozen=True)
class GroundJob:
    """What a worker needs to ground batches of one raster (small, picklable, hashable).

    ``raster_sha256`` (content, not path) keys the flow's tile cache; ``None`` when
    not known (``ask`` does not cache).
    """

    raster: str
    spec: GrounderSpec
    classes: tuple[str, ...]
    bands: tuple[str, ...]
    raster_sha256: str | None = None
    #: the catalog item (names task runs, progress artifacts and bars); not part of the cache key
    item: str | None = None
    #: the quicklook basemap's cells: a worker sums each tile it reads into them
    #: (:func:`~georeason.geo.export.quicklook.cell_sums`), so the export need not read the
    #: file again; ``None``: no basemap from the tiles
    cells: BasemapCells | None = None


#: ``tiles_done(n)``: called as each batch finishes, with its number of tiles.
TileProgress: TypeAlias = Callable[[int], None]
#: ``progress(what, n, total)``: ``n`` more units of ``what`` done out of ``total``
#: (``"grounding lake (tiles)"``, ``"questions"``); drawn as bars by :mod:`georeason.progress`.
Progress: TypeAlias = Callable[[str, int, int], None]
#: ``map(job, batches, tiles_done) -> one BatchResult per batch``: how batches are farmed
#: out; ``tiles_done`` (may be ``None``) is called as each batch finishes. A mapper may
#: yield the results as they come (:func:`local_map` does): the pipeline seam-merges each
#: batch as it arrives and drops its detections, so memory does not grow with the scene.
Mapper: TypeAlias = Callable[[GroundJob, list[list["Tile"]], TileProgress | None], Iterable[BatchResult]]


def plan_batches(tiles: Sequence[Tile], max_batches: int = 200, min_batch: int = 1) -> list[list[Tile]]:
    """Cut a tile plan into at most ``max_batches`` contiguous batches of near-equal size
    (sizes differ by at most one, the larger first; each at least ``min_batch`` tiles where
    there are enough): as many batches as asked when there are enough tiles, so that the
    batches spread evenly over the workers (25 tiles in 6 batches: 5, 4, 4, 4, 4, 4 rather
    than 5 batches of 5 for 2 workers).

    Examples
    --------
    >>> [len(b) for b in plan_batches(list(range(10)), max_batches=4)]
    [3, 3, 2, 2]
    >>> [len(b) for b in plan_batches(list(range(10)), max_batches=4, min_batch=4)]
    [5, 5]
    """
    n = len(tiles)
    if n == 0:
        return []
    count = max(1, min(max(1, max_batches), n // max(1, min_batch)))
    size, extra = divmod(n, count)
    out, start = [], 0
    for i in range(count):
        stop = start + size + (1 if i < extra else 0)
        out.append(list(tiles[start:stop]))
        start = stop
    return out


def _failure(tile: Tile, exc: BaseException) -> TileFailure:
    return TileFailure(
        (int(tile.index[0]), int(tile.index[1])), f"{type(exc).__name__}: {exc}", tile.core_bounds
    )


def ground_batch(
    src: Any,
    tiles: Sequence[Tile],
    grounder: Grounder,
    classes: Sequence[str],
    bands: Sequence[str],
    cells: BasemapCells | None = None,
) -> BatchResult:
    """Read and ground each tile of a batch from an open dataset ``src``.

    A tile whose core holds no valid pixel (:func:`~georeason.geo.raster.tiling.core_has_valid`,
    on the data just read) is not grounded: the grounder is never called on it, it has no
    detections and is listed in :attr:`BatchResult.skipped`. With ``cells``, each tile read
    also gives its share of the quicklook basemap (:attr:`BatchResult.cells`).

    A tile that fails — a read error or *any* exception the grounder raises (a model
    grounder's ``KeyError`` as much as a ``TileReadError``) — becomes a
    :class:`TileFailure`; the remaining tiles are still processed. Model grounders with
    ``ground_tiles`` get the batch in one call; if that call fails, the tiles are
    grounded one at a time so that only the tiles that really fail are lost.
    """
    from georeason.geo.raster.tiling import core_has_valid, read_tile
    from georeason.models.parsenotes import collect_parse_warnings, notes_for

    results: list[tuple[Tile, tuple[Detection, ...]]] = []
    failures: list[TileFailure] = []
    notes: list[TileNote] = []
    skipped: list[tuple[int, int]] = []
    parts: dict[tuple[int, int], CellSums] = {}

    def read(tile: Tile) -> Any | None:
        """The tile's pixels, or ``None`` when its core has no valid pixel (then it is a
        result without detections, and skipped); its basemap share taken on the way."""
        pixels = read_tile(src, tile)
        if cells is not None:
            from georeason.geo.export.quicklook import cell_sums

            part = cell_sums(cells, tile.index, tile.core, tile.core_in_tile, pixels)
            if part is not None:
                parts[part.index] = part
        if core_has_valid(pixels, tile):
            return pixels
        skipped.append((int(tile.index[0]), int(tile.index[1])))
        results.append((tile, ()))
        return None

    def done() -> BatchResult:  # results in the batch's tile order, skipped tiles among them
        ordered = sorted(results, key=lambda r: tile_order[r[0].index])
        return BatchResult(
            tuple(ordered), tuple(failures), tuple(notes), tuple(skipped), tuple(parts.values())
        )

    tile_order = {t.index: n for n, t in enumerate(tiles)}
    batched = getattr(grounder, "ground_tiles", None)
    if batched is not None and len(tiles) > 1:
        pairs: list[tuple[Any, Tile]] = []
        for tile in tiles:
            try:
                px = read(tile)
            except Exception as exc:  # noqa: BLE001 - any read error is this tile's failure
                failures.append(_failure(tile, exc))
                continue
            if px is not None:
                pairs.append((px, tile))
        try:
            per_tile = []
            if pairs:
                with collect_parse_warnings() as sink:  # warnings no tile list carried: every tile's
                    per_tile = batched(pairs, list(classes), list(bands))
            got = [(tile, tuple(dets)) for (_, tile), dets in zip(pairs, per_tile)]
            for (_, tile), dets in zip(pairs, per_tile):
                notes.extend(_tile_notes(tile, (*getattr(dets, "notes", ()), *notes_for(sink))))
            results.extend(got)
            return done()
        except Exception:  # noqa: BLE001 - retried tile by tile below
            notes.clear()
            ready = {t.index: px for px, t in pairs}
            for tile in [t for _, t in pairs]:
                _ground_one(tile, ready.pop(tile.index), grounder, classes, bands, results, failures, notes)
            return done()
    for tile in tiles:
        try:
            pixels = read(tile)
        except Exception as exc:  # noqa: BLE001 - any read error is this tile's failure
            failures.append(_failure(tile, exc))
            continue
        if pixels is not None:
            _ground_one(tile, pixels, grounder, classes, bands, results, failures, notes)
            del pixels
    return done()


def _ground_one(
    tile: Tile,
    pixels: Any,
    grounder: Grounder,
    classes: Sequence[str],
    bands: Sequence[str],
    results: list[tuple[Tile, tuple[Detection, ...]]],
    failures: list[TileFailure],
    notes: list[TileNote],
) -> None:
    """Ground one read tile into ``results`` (or its failure into ``failures``)."""
    from georeason.models.parsenotes import collect_parse_warnings, notes_for

    try:
        with collect_parse_warnings() as sink:
            found = grounder.ground(pixels, tile, list(classes), list(bands))
        dets = tuple(found)
    except Exception as exc:  # noqa: BLE001 - any grounder error is this tile's failure
        failures.append(_failure(tile, exc))
        return
    results.append((tile, dets))
    notes.extend(_tile_notes(tile, (*getattr(found, "notes", ()), *notes_for(sink))))


def _tile_notes(tile: Tile, messages: Iterable[str]) -> list[TileNote]:
    index = (int(tile.index[0]), int(tile.index[1]))
    return [TileNote(index, m) for m in dict.fromkeys(messages)]


def ground_job_batch(job: GroundJob, tiles: Sequence[Tile]) -> BatchResult:
    """Ground one batch of ``job`` (the grounder is built once per process and reused)."""
    from georeason.geo.raster.io import as_dataset
    from georeason.models.registry import build_grounder

    grounder = build_grounder(job.spec)
    with as_dataset(job.raster, check_read=False) as src:
        return ground_batch(src, tiles, grounder, job.classes, job.bands, job.cells)


def local_map(
    job: GroundJob, batches: list[list[Tile]], tiles_done: TileProgress | None = None
) -> Iterator[BatchResult]:
    """The plain-loop :data:`Mapper`: batches one after another in this process, each
    result yielded as soon as it is grounded (nothing is kept here).

    The raster is opened once for all batches (a Prefect or Dask worker opens it per
    batch, :func:`ground_job_batch`); ``tiles_done(n)`` is called after each batch.
    """
    from georeason.geo.raster.io import as_dataset
    from georeason.models.registry import build_grounder

    grounder = build_grounder(job.spec)
    with as_dataset(job.raster, check_read=False) as src:
        for b in batches:
            result = ground_batch(src, b, grounder, job.classes, job.bands, job.cells)
            if tiles_done is not None:
                tiles_done(len(b))
            yield result


def relabel_water(objects: list[GroundedObject], asked: Sequence[str] = ()) -> list[GroundedObject]:
    """Keep, under each water class name, only the water bodies of that shape.

    A grounder finds *water*; a question asks for lakes or rivers. A river is not a lake:
    objects labelled with an areal water class (lake, pond, ...) are kept only if compact,
    those with a linear class (river, canal, ...) only if long and thin: area over the area
    of the largest inscribed circle above :data:`LINEAR_AREA_RATIO`. Generic ``water`` and
    every other class pass unchanged. (A grounder emits each water body once per class
    name asked.)
    """
    out: list[GroundedObject] = []
    shape: dict[int, bool] = {}  # lake and river share each water body's geometry: one test
    for o in objects:
        lab = singular(normalise_class(o.label))
        linear, areal = lab in LINEAR_WATER, lab in AREAL_WATER
        if linear or areal:
            key = id(o.geometry)
            if key not in shape:
                shape[key] = is_linear(o.geometry)
            if shape[key] != linear:
                continue
        out.append(o)
    return out


def is_linear(g: BaseGeometry) -> bool:
    """Whether a polygon is long and thin (see :data:`LINEAR_AREA_RATIO`).

    Examples
    --------
    >>> is_linear(shapely.box(0, 0, 1000, 9)), is_linear(shapely.Point(0, 0).buffer(50))
    (True, False)
    """
    a = g.area
    if a <= 0:
        return True
    parts = shapely.get_parts(g)
    big = max(parts, key=lambda p: p.area)
    r = shapely.length(shapely.maximum_inscribed_circle(big, tolerance=max(big.length, 1.0) * 1e-4))
    return bool(r <= 0 or a / (math.pi * r * r) > LINEAR_AREA_RATIO)


def merge_batches(
    batches: Iterable[BatchResult],
    classes: Sequence[str],
    spec: GrounderSpec | None = None,
    *,
    iou_threshold: float = 0.5,
    plan: Sequence[Tile] | None = None,
    notes: list[TileNote] | None = None,
) -> tuple[list[GroundedObject], list[TileFailure]]:
    """Seam-merge all batches of one raster; return (objects with ids, failures).

    ``batches`` is consumed lazily: with the tile ``plan`` the seams are merged row by row
    as rows complete (:class:`~georeason.geo.grounding.seams.SeamMerger`) and each batch's
    detections are dropped once added, so a scene of any size is merged in the memory of
    a few tile rows plus its final objects. ``notes`` (when given) collects the batches'
    :class:`TileNote`. The minimum mapping unit (``min_area_m2``) and simplification
    (``simplify_m``) come from ``spec.config`` — the one place grounder settings live —
    whatever the grounder.
    """
    from georeason.geo.grounding.seams import SeamMerger, assign_ids

    cfg = spec.config if spec is not None else {}
    merger = SeamMerger(
        iou_threshold=iou_threshold,
        min_area_m2=float(cfg.get("min_area_m2", 0.0)),
        simplify_m=float(cfg.get("simplify_m", 0.0)),
        plan=plan,
    )
    failures: list[TileFailure] = []
    for b in batches:
        for tile, dets in b.results:
            merger.add(tile, dets)
        for f in b.failures:
            merger.skip(f.index)
        failures.extend(b.failures)
        if notes is not None:
            notes.extend(b.notes)
        del b  # the batch's detections go now, not after the last batch
    return assign_ids(relabel_water(merger.finish(), classes)), failures


def grounded_scene(
    objects: Sequence[GroundedObject], crs: CRS, vectors: Scene | None = None, source: str = "grounded"
) -> Scene:
    """One scene of grounded objects (ids like ``lake-1``) plus vector-layer objects.

    Vector objects keep their ids; a grounded id that collides with one gets a ``g:`` prefix.
    """
    taken = set(vectors.ids) if vectors is not None else set()
    ids = [(f"g:{o.id}" if o.id in taken else o.id) for o in objects]
    scene = Scene(
        ids,
        [o.label for o in objects],
        [o.geometry for o in objects],
        crs,
        scores=[o.score for o in objects],
        attrs=[{"source": "grounded", "kind": o.kind, "tiles": len(o.tiles)} for o in objects],
        source=source,
    )
    if vectors is None or len(vectors) == 0:
        return scene
    if len(scene) == 0:
        return Scene(
            vectors.ids,
            vectors.labels,
            reproject(vectors.geoms, vectors.crs, scene.crs),
            scene.crs,
            scores=vectors.scores,
            attrs=vectors.attrs,
            source=vectors.source,
        )
    return scene.extend(vectors)


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class QuestionError:
    """A question that could not be answered at all (no template, bad input): reported, not raised."""

    question: str
    error: str
    #: the traceback of an unexpected exception (``error`` then starts ``internal error``);
    #: ``ask --debug`` shows it
    trace: str | None = field(default=None, compare=False, repr=False)

    @property
    def internal(self) -> bool:
        """Whether an unexpected exception (a bug, not bad input) caused it."""
        return self.trace is not None

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "error": self.error, "abstained": True, "answer": None}


#: What answering one question gives.
Outcome: TypeAlias = Answer | QuestionError


@dataclass(frozen=True)
class AnswerContext:
    """What answering needs beyond the scene: the item's grid (pixel coordinates and
    pixel-answer masks) and where the ``n``-th question's mask goes."""

    grid: RasterGrid | None = None
    mask_path: Callable[[int, str], Path] | None = None
    #: answers English questions no template understands (e.g. an LLM planner)
    fallback: Callable[[str, Scene, AnswerContext, int], Answer] | None = None
    #: runs on every executed answer (the confidence summary and threshold of
    #: :mod:`georeason.models.fitness`)
    post: Callable[[Answer], Answer] | None = None
    #: ``answered(n, total)``: ``n`` more questions answered out of ``total``
    answered: Callable[[int, int], None] | None = None
    #: the raster's cells known valid (:attr:`Grounding.valid_cells`): masks skip reading them
    known_valid: ValidCells | None = None

    def finish(self, answer: Answer) -> Answer:
        return self.post(answer) if self.post is not None else answer

    def mask_writer(self, n: int, question: str) -> Any:
        if self.grid is None or self.mask_path is None:
            return None
        mask_path = self.mask_path
        return self.grid.mask_writer(lambda sid: mask_path(n, question), self.known_valid)

    @property
    def pixel(self) -> Any:
        return self.grid.pixel if self.grid is not None else None


def answer_questions(
    compiled: Sequence[CompiledQuestion],
    scene: Scene,
    ctx: AnswerContext | None = None,
    *,
    grounded: Sequence[str] = (),
    failures: Sequence[TileFailure] = (),
    not_grounded: str | None = None,
    notes: Sequence[TileNote] = (),
) -> list[Outcome]:
    """Answer compiled questions against one scene, in order.

    A question that cannot be compiled (and that no ``ctx.fallback`` answers) or that
    hits bad input (or any exception: ``internal error ...``) gives a :class:`QuestionError`
    without stopping the rest. When tiles failed to ground, answers that depend on a
    grounded class abstain naming the failed tile if the lost area could change them
    (:func:`failure_affects`): counting or ranking with part of the raster missing would
    be a guess; answers away from the failed tiles, and from vector layers alone, are given. ``not_grounded`` (why the grounded classes
    could not be grounded at all) makes the same answers abstain with that reason.
    ``notes`` (what the grounder's model outputs lost: truncated or broken answers) are
    listed in ``details["model_output_warnings"]`` of every answer that uses a grounded
    class they concern, so a count from a truncated output says so in its JSON.
    """
    return list(
        iter_answers(
            compiled, scene, ctx, grounded=grounded, failures=failures, not_grounded=not_grounded, notes=notes
        )
    )


def iter_answers(
    compiled: Sequence[CompiledQuestion],
    scene: Scene,
    ctx: AnswerContext | None = None,
    *,
    grounded: Sequence[str] = (),
    failures: Sequence[TileFailure] = (),
    not_grounded: str | None = None,
    notes: Sequence[TileNote] = (),
) -> Iterator[Outcome]:
    """:func:`answer_questions` one answer at a time: each question is answered when the
    next outcome is asked for, so a consumer that writes and drops each answer (the flow's
    ``answer-export`` task) never holds them all."""
    ctx = ctx or AnswerContext()
    grounded_set = {singular(normalise_class(c)) for c in grounded}
    batch = None
    if len(compiled) > 1:  # same-shaped group queries of all the questions, one call per shape
        batch = GroupBatch(scene)
        batch.prefetch([cq.program for cq in compiled], pixel=ctx.pixel)
    for n, cq in enumerate(compiled, 1):
        outcome: Outcome
        try:
            outcome = _with_notes(
                _answer_one(n, cq, scene, ctx, grounded_set, failures, not_grounded, batch),
                cq,
                grounded_set,
                notes,
            )
        except Exception as exc:  # noqa: BLE001 - every question gets a line; one never sinks the rest
            err = " ".join(str(exc).split()) or type(exc).__name__
            trace = None
            if not isinstance(exc, GeoreasonError):
                err = f"internal error {type(exc).__name__}: {err}"
                trace = traceback.format_exc()
            outcome = QuestionError(cq.text, err, trace)
        if ctx.answered is not None:
            ctx.answered(1, len(compiled))
        yield outcome
        del outcome  # the consumer's copy is the only one left


def _with_notes(
    outcome: Outcome, cq: CompiledQuestion, grounded_set: set[str], notes: Sequence[TileNote]
) -> Outcome:
    """The answer with the model-output warnings of the grounded classes it uses."""
    if not notes or not isinstance(outcome, Answer):
        return outcome
    uses = {singular(f) for c in cq.classes for f in class_forms(c)} & grounded_set
    if not uses:
        return outcome
    mine = []
    for n in notes:
        cls = singular(normalise_class(n.message.split(": ", 1)[0])) if ": " in n.message else ""
        if cls not in grounded_set or cls in uses:  # about this answer's classes, or about no class
            mine.append(n.to_json())
    if mine:
        outcome.details["model_output_warnings"] = mine
    return outcome


def _answer_one(
    n: int,
    cq: CompiledQuestion,
    scene: Scene,
    ctx: AnswerContext,
    grounded_set: set[str],
    failures: Sequence[TileFailure],
    not_grounded: str | None,
    batch: GroupBatch | None = None,
) -> Outcome:
    if cq.program is None:
        if ctx.fallback is None or cq.invalid:
            return QuestionError(cq.text, cq.error or "cannot parse the question", cq.trace)
        return ctx.finish(ctx.fallback(cq.text, scene, ctx, n))
    uses = {c for c in cq.classes if grounded_set and grounded_set & {singular(f) for f in class_forms(c)}}
    if not_grounded and uses:
        return Answer.abstain(not_grounded, question=cq.text, query=cq.program.to_json())
    answer = None
    why = None
    if failures and uses:
        if any(f.bounds is None for f in failures):
            why = "the failed tiles' extent is unknown"
        else:
            answer = _execute(n, cq, cq.program, scene, ctx, batch)
            why = failure_affects(cq.program.to_json(), answer, failures, scene.crs, uses)
    if why is not None:
        first = failures[0]
        return Answer.abstain(
            f"{len(failures)} tile(s) failed to ground (tile {first.index}: {first.error}); "
            f"an answer about {', '.join(sorted(uses))} from the remaining tiles could be wrong ({why})",
            question=cq.text,
            query=cq.program.to_json(),
        )
    if answer is None:
        answer = _execute(n, cq, cq.program, scene, ctx, batch)
    return ctx.finish(answer)


def _execute(
    n: int,
    cq: CompiledQuestion,
    program: Program,
    scene: Scene,
    ctx: AnswerContext,
    batch: GroupBatch | None = None,
) -> Answer:
    return answer_program(
        program,
        scene,
        question=cq.text,
        pixel=ctx.pixel,
        mask_writer=ctx.mask_writer(n, cq.text),
        batch=batch,
    )


#: Ops that restrict a class to a place: objects in a failed tile matter only near it.
_SCOPING_OPS = {"within_distance": "objects", "inside": "objects"}


def failure_affects(
    steps: Sequence[dict[str, Any]],
    answer: Answer,
    failures: Sequence[TileFailure],
    crs: CRS,
    grounded: set[str],
) -> str | None:
    """Why failed tiles could change this answer, or ``None`` when they cannot.

    The lost area is the union of the failed tiles' cores. An answer is affected when

    * any of its evidence touches the lost area; or
    * a grounded class is used whole (counted, ranked, its largest taken, ...): objects
      in the lost area are missing from it; or
    * a grounded class is restricted to a place (``within_distance``, ``inside``) that
      reaches the lost area.

    Answers whose evidence and scope lie away from every failed tile are kept.
    ``grounded`` are the (normalised) class names of the program that were grounded.
    """
    lost = reproject(
        shapely.union_all([shapely.box(*f.bounds) for f in failures if f.bounds is not None]), crs, LONLAT
    )
    for e in answer.evidence:
        if e.lonlat().intersects(lost):
            return f"its evidence {e.id} lies on a failed tile"
    selects = {
        s["id"]
        for s in steps
        if s.get("op") in ("select", "at")
        and normalise_class((s.get("args") or {}).get("cls") or "") in grounded
    }
    refs = {e.id: e for e in answer.evidence if e.role != "result"}
    for s in steps:
        args = s.get("args") or {}
        used = {k for k, v in args.items() if isinstance(v, str) and v.startswith("$") and v[1:] in selects}
        if not used:
            continue
        if s.get("op") not in _SCOPING_OPS or used != {_SCOPING_OPS[s["op"]]}:
            return f"it uses every {', '.join(sorted(grounded))} object, and some are on failed tiles"
        if not refs:
            return "its place could not be checked against the failed tiles"
        place = shapely.union_all([e.lonlat() for e in refs.values()])
        if s["op"] == "inside":
            if place.intersects(lost):
                return "its region reaches a failed tile"
        else:
            unit_m = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}.get(args.get("unit", "m"))
            if unit_m is None:
                return f"its distance unit {args.get('unit')!r} is unknown here"
            reach_m = float(args.get("distance", 0.0)) * unit_m
            if distance_m(place, lost) <= reach_m:
                return f"a failed tile lies within {args.get('distance')} {args.get('unit', 'm')} of its reference"
    return None


def row_text(row: dict[str, Any], full: bool = False) -> str:
    """A one-line rendering of an answer row (terminal tables, Prefect artifacts); an error
    by its first line unless ``full``.

    Examples
    --------
    >>> row_text({"answer": 1234.5678, "unit": "m"}), row_text({"abstained": True, "reason": "no lake"})
    ('1,234.57 m', 'abstained: no lake')
    >>> row_text({"error": "bad\\nwhy"}), row_text({"error": "bad\\nwhy"}, full=True)
    ('error: bad', 'error: bad\\nwhy')
    """
    if row.get("error"):
        err = str(row["error"])
        return f"error: {err if full else err.splitlines()[0]}"
    if row.get("abstained"):
        return f"abstained: {row.get('reason')}"
    v = row.get("answer")
    if isinstance(v, float):
        v = f"{v:,.6g}"
    elif isinstance(v, list):
        v = ", ".join(map(str, v[:10])) + (" ..." if len(v) > 10 else "")
    return f"{v} {row.get('unit') or ''}".strip()


def read_vectors(paths: Iterable[str | Path]) -> Scene | None:
    """One scene of the objects in vector files (each in its own CRS, joined in the first's).

    ``None`` when no path is given. The pipeline reprojects it to the raster's CRS.
    """
    scene: Scene | None = None
    for p in paths:
        s = read_scene(p)
        scene = s if scene is None else scene.extend(s)
    return scene


class ItemExport:
    """An item's files written as its answers come: :meth:`add` writes one answer's GIS
    layers (``q01-how-many-lakes.geojson``, RFC 7946, one file per geometry type; a
    null-geometry record for a question that failed), its quicklook and styles, and returns
    its ``answers.jsonl`` row; the caller drops the answer. The objects' files
    (``objects.gpkg``, ``objects.geojson``, ``quicklook.png``) depend only on the scene and
    are written meanwhile in a background thread (:class:`georeason.geo.export.item.ItemFiles`);
    :meth:`finish` waits for them and writes the QGIS project, returning the item's files.

    Object GeoJSON texts are shared with the answer files when the scene has at most
    :data:`~georeason.geo.export.item.SHARED_TEXT_COORDS` coordinates, else each file makes
    its own and none is kept (see there why). Use as a context manager (or call
    :meth:`close`) so that the background work is waited for after an error.

    ``basemap``: the quicklook basemap, or the :class:`~georeason.geo.export.quicklook.BasemapSums`
    of the tiles grounding read (:attr:`Grounding.basemap`: the same picture without reading
    the raster again); ``None``: read from ``raster``.
    """

    def __init__(
        self,
        item: str,
        raster: str,
        scene: Scene,
        out_dir: str | Path,
        *,
        background: bool = True,
        basemap: BasemapSums | Basemap | None = None,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        from georeason.geo.export.item import SHARED_TEXT_COORDS, ItemFiles
        from georeason.geo.export.layers import GeoJSONCache
        from georeason.geo.export.quicklook import BasemapSums, basemap_or_read

        self.item = item
        self.out = Path(out_dir)
        geoms = list(scene.geoms)
        coords = int(shapely.get_num_coordinates(np.asarray(geoms, dtype=object)).sum()) if geoms else 0
        # each object's GeoJSON made once for the answer files and objects.geojson, if it is small
        self.cache = GeoJSONCache() if coords <= SHARED_TEXT_COORDS else None
        self._n = 0
        # the quicklook basemap: from the sums of the tiles grounding read (``basemap``, a
        # :class:`BasemapSums`), else read from the raster (block means, mostly outside the
        # GIL), on another core while this thread answers and writes the GeoJSON
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="basemap")
        sums = basemap if isinstance(basemap, BasemapSums) else None
        base = (
            self._pool.submit(basemap_or_read, sums, raster)
            if basemap is None or sums is not None
            else basemap
        )
        self.files = ItemFiles(
            self.out,
            raster,
            [str(i) for i in scene.ids],
            [str(lab) for lab in scene.labels],
            geoms,
            scene.crs,
            scores=list(scene.scores),
            sources=[a.get("source", "vector") for a in scene.attrs],
            item=item,
            geojson=self.cache,
            basemap=base,
        ).start(background)

    def add(self, outcome: Outcome) -> dict[str, Any]:
        """Write the next answer's files; return its ``answers.jsonl`` row (with ``item`` and
        ``outputs``, absolute paths; a large answer's evidence by id, its geometry in its layer)."""
        from georeason.geo.export.layers import (
            answer_stem,
            write_answer_geojson,
            write_error_record,
        )

        self._n += 1
        a = outcome
        if isinstance(a, Answer) and len(a.evidence) > EVIDENCE_CHUNK:
            # a large answer's evidence by id: its geometry is in the answer's layer (outputs)
            row = a.to_json(geometry=False)
            row["item"] = self.item
        else:
            row = outcome_row(a, self.item)
        path = self.out / f"{answer_stem(self._n, a.question or '')}.geojson"
        if isinstance(a, Answer):
            # no shared cache: a large answer's texts are made in chunks as its file is written
            layers = write_answer_geojson(a, path, self.cache)
            files: dict[str, Any] = {"geojson": str(layers[0].path)}
            if len(layers) > 1:
                files["parts"] = [str(w.path) for w in layers]
            if "mask" in a.details:
                files["mask"] = str(a.details["mask"])
            png = self.files.add(a, files, {str(w.path): w for w in layers})
        else:
            files = {"geojson": str(write_error_record(a.question, a.error, path))}
            png = self.files.add(None, files)
        if png:
            files["quicklook"] = png
        row["outputs"] = files
        from georeason.geo.raster.io import release_heap

        # freed coordinate lists and texts of a scene-wide answer go back to the system
        # before the next answer (20000^2 vegetation answer: 844 -> 559 MB resident after it)
        release_heap()
        return row

    def finish(self) -> dict[str, Any]:
        """Wait for the objects' files; write the styles and QGIS project; the item's files."""
        try:
            item_files = self.files.finish()
        finally:
            self.close()
        item_files.pop("answer_quicklooks", None)
        return item_files

    def close(self) -> None:
        """Wait for the background work (after an error, its own error is not raised)."""
        self.files.close()
        self._pool.shutdown()

    def __enter__(self) -> ItemExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_item_outputs(
    item: str,
    raster: str,
    answers: Iterable[Outcome],
    scene: Scene,
    out_dir: str | Path,
    *,
    basemap: BasemapSums | Basemap | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write an item's files from its answers (:class:`ItemExport`, each answer's files as
    it comes): per answer its GIS layers, per item the objects, quicklooks, QGIS styles and
    project (:class:`georeason.geo.export.item.ItemFiles`).

    ``basemap``: the quicklook basemap already made, or summed from the grounded tiles
    (:attr:`Grounding.basemap`); else it is read from ``raster``.

    Returns the ``answers.jsonl`` rows (with ``item`` and ``outputs``, absolute paths) and
    the item's files.
    """
    with ItemExport(item, raster, scene, out_dir, basemap=basemap) as export:
        rows = [export.add(a) for a in answers]
        return rows, export.finish()


def outcome_row(outcome: Outcome, item: str | None = None) -> dict[str, Any]:
    """The JSON object of an answer (``ask --json``; one line of ``answers.jsonl``), with ``item``."""
    row = outcome.to_json()
    if item is not None:
        row["item"] = item
    return row


#: Evidence is turned into JSON this many objects at a time (:func:`outcome_jsonl`); an
#: answers-file row (``run``) keeps the geometry of at most this many evidence objects
#: inline, a larger answer's evidence is named by id (its geometry is in the answer's layer).
EVIDENCE_CHUNK = 256


def outcome_jsonl(outcome: Outcome, item: str | None = None, *, geometry: bool = True) -> str:
    r"""One JSON line of an answer: ``json.dumps(row) + "\n"`` byte for byte, where ``row``
    is :func:`outcome_row` (or ``Answer.to_json(geometry=False)`` with ``item``), but built
    :data:`EVIDENCE_CHUNK` evidence objects at a time, so an answer resting on every
    vegetation patch of a scene never holds all their GeoJSON coordinates as Python lists
    at once. Raises ``ValueError`` on a non-finite number (as ``json.dumps`` with
    ``allow_nan=False``). :func:`outcome_jsonl_parts` gives the same text in pieces.

    Examples
    --------
    >>> a = Answer(3, "count", question="How many?")
    >>> outcome_jsonl(a, "x") == json.dumps(outcome_row(a, "x")) + "\n"
    True
    """
    return "".join(outcome_jsonl_parts(outcome, item, geometry=geometry))


def outcome_jsonl_parts(outcome: Outcome, item: str | None = None, *, geometry: bool = True) -> Iterator[str]:
    """:func:`outcome_jsonl` in pieces (one evidence object each), for writing a line
    without ever holding it whole: the 115 MB line of a 20000² scene's vegetation answer
    was held three to four times over (the pieces, their join, the line). Raises
    ``ValueError`` on a non-finite number when the piece holding it is made."""
    if not isinstance(outcome, Answer) or len(outcome.evidence) <= EVIDENCE_CHUNK:
        row = outcome.to_json(geometry) if isinstance(outcome, Answer) else outcome.to_json()
        if item is not None:
            row["item"] = item
        yield json.dumps(row, allow_nan=False) + "\n"
        return
    ev = outcome.evidence
    head = replace(outcome, evidence=[]).to_json(geometry)
    if item is not None:
        head["item"] = item
    for n, (k, v) in enumerate(head.items()):
        yield ("{" if n == 0 else ", ") + f"{json.dumps(k)}: "
        if k == "evidence":
            yield "["
            for i in range(0, len(ev), EVIDENCE_CHUNK):
                sub = replace(outcome, evidence=ev[i : i + EVIDENCE_CHUNK]).to_json(geometry)["evidence"]
                for m, e in enumerate(sub):
                    yield ("" if i == 0 and m == 0 else ", ") + json.dumps(e, allow_nan=False)
            yield "]"
        else:
            yield json.dumps(v, allow_nan=False)
    yield "}\n"


# --------------------------------------------------------------------------- the pipeline


@dataclass
class Grounding:
    """Objects grounded on one raster (merged, with ids), the tiles that failed, and how."""

    objects: list[GroundedObject]
    failures: list[TileFailure]
    spec: GrounderSpec | None = None
    tiles: int = 0
    #: what the grounder's model outputs lost, per tile (parse warnings)
    notes: list[TileNote] = field(default_factory=list)
    #: the quicklook basemap summed from every tile grounded (:attr:`Pipeline.basemap`);
    #: ``None`` when not asked for or not every tile was read here
    basemap: BasemapSums | None = field(default=None, repr=False)
    #: tiles read but not grounded: no valid pixel in their core
    skipped: int = 0
    #: the raster's cells known valid from the tiles' basemap sums (a pixel-answer mask
    #: then reads the raster's nodata only elsewhere); ``None`` when not every tile was summed
    valid_cells: ValidCells | None = field(default=None, repr=False)


@dataclass
class ItemResult:
    """What :meth:`Pipeline.run` produced for one item."""

    answers: list[Outcome]
    scene: Scene
    grid: RasterGrid | None
    questions: list[CompiledQuestion]
    grounding: Grounding = field(default_factory=lambda: Grounding([], []))
    grounded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fitness: dict[str, ClassFitness] | None = None

    @property
    def failures(self) -> list[TileFailure]:
        """Tiles that failed to ground."""
        return self.grounding.failures

    @property
    def objects(self) -> list[GroundedObject]:
        """The grounded objects (merged, with ids)."""
        return self.grounding.objects


@dataclass
class ItemStream(ItemResult):
    """What :meth:`Pipeline.run_iter` gives: an :class:`ItemResult` whose ``answers`` list
    is empty and whose answers come from :attr:`stream`, each question answered when its
    outcome is asked for (the scene is grounded and complete already)."""

    stream: Iterator[Outcome] = field(default_factory=lambda: iter(()))


@dataclass
class Pipeline:
    """Questions about one item -> answers, through one path (see the module doc).

    ``grounder`` and ``grounder_options`` name the grounder and its options (the
    :class:`GrounderSpec` built from them is the only source of grounder settings);
    ``map`` farms out tile batches (:func:`local_map` by default).
    """

    grounder: str = "spectral"
    grounder_options: dict[str, Any] = field(default_factory=dict)
    tile_px: int = 1024
    overlap_px: int = 128
    max_batches: int = 200
    #: at most this many tiles in a batch (0: no bound): a scene with more tiles than
    #: ``max_batches * max_batch_tiles`` is cut into more batches, up to :attr:`batch_limit`.
    #: A batch's detections and basemap shares wait in its worker until the batch ends, and
    #: arrive in the caller at once: smaller batches, smaller peaks on both sides
    max_batch_tiles: int = 0
    #: the most batches :attr:`max_batch_tiles` may raise the count to
    batch_limit: int = 200
    map: Mapper = local_map
    logger: logging.Logger | logging.LoggerAdapter[Any] = log
    #: ``progress(what, n, total)`` as tiles are grounded and (when more than one) questions
    #: answered: ``ask`` draws it as terminal bars (:mod:`georeason.progress`)
    progress: Progress | None = None
    #: band names overriding the raster's (``--bands``); else the catalog's, else the file's
    bands: str | Sequence[str] | None = None
    #: answers from grounded objects below this confidence abstain
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    #: band names that cannot ground the classes asked: ``"raise"`` the advice (``ask``: exit 2,
    #: before any work) or ``"abstain"`` with it on the answers that need them (a batch run:
    #: one item's bad bands do not stop the others)
    on_unusable_bands: Literal["raise", "abstain"] = "raise"
    #: plans made ahead by :meth:`plan_item`, by :meth:`_plan_key`: :meth:`plan_ground` takes
    #: one (once) instead of fitting the grounder and planning the tiles again. ``georeason
    #: run`` plans in the command line while Prefect starts and hands them to the flow's
    #: pipeline with the worker pool (:func:`georeason.workers.take_plans`)
    plans: dict[Hashable, tuple[GroundJob, list[Tile], list[list[Tile]]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: sum the quicklook basemap from the tiles grounding reads (:attr:`GroundJob.cells`,
    #: :attr:`Grounding.basemap`): for callers that export quicklooks (``georeason run``),
    #: which then do not read the raster again for it
    basemap: bool = False

    def _plan_key(
        self,
        raster: str,
        classes: Sequence[str],
        item: str | None,
        raster_sha256: str | None,
        bands: Sequence[str] | None,
    ) -> Hashable:
        """What a plan depends on: this pipeline's grounder, options and tiling, the
        arguments, and the raster file as it is now (device, inode, size, mtime)."""
        st = Path(raster).stat()
        return (
            raster,
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
            tuple(classes),
            item,
            raster_sha256,
            tuple(bands) if bands else None,
            self.grounder,
            json.dumps(self.grounder_options, sort_keys=True, default=repr),
            self.tile_px,
            self.overlap_px,
            self.max_batches,
            self.max_batch_tiles,
            self.batch_limit,
            self.basemap,
        )

    def plan_ground(
        self,
        raster: str | Path,
        classes: Sequence[str],
        *,
        grid: RasterGrid | None = None,
        item: str | None = None,
        raster_sha256: str | None = None,
        bands: Sequence[str] | None = None,
    ) -> tuple[GroundJob, list[Tile], list[list[Tile]]]:
        """The grounding :meth:`ground` would do, without doing it: the grounder fitted
        (its :class:`GrounderSpec`), the tiles and their batches, as a :class:`GroundJob`.
        A plan :meth:`plan_item` made ahead for the same inputs (:attr:`plans`) is taken
        instead of planning again."""
        raster = str(raster)
        if self.plans:
            with contextlib.suppress(OSError):  # an unreadable path is reported by the planning below
                ahead = self.plans.pop(self._plan_key(raster, classes, item, raster_sha256, bands), None)
                if ahead is not None:
                    return ahead
        from georeason.geo.raster.grid import RasterGrid
        from georeason.geo.raster.io import as_dataset, release_heap
        from georeason.geo.raster.tiling import plan_tiles
        from georeason.models.registry import prepare_spec

        grid = grid or RasterGrid.read(raster)
        options = dict(self.grounder_options)
        names = tuple(bands) if bands else grid.bands
        options.setdefault("bands", list(names))
        if item is not None:  # the grounder's per-scene set-up may key on it (recorded outputs)
            options["item"] = item
        spec = prepare_spec(self.grounder, raster, options)
        cells = None
        with as_dataset(raster) as src:
            # every tile: a tile whose core is all nodata is skipped by the worker that reads
            # it (ground_batch), not by a plan-time scan that decoded the whole file
            tiles = list(plan_tiles(src, self.tile_px, self.overlap_px, skip_nodata=False))
            if self.basemap:
                from georeason.geo.export.quicklook import basemap_cells

                cells = basemap_cells(src)
        release_heap()  # the fit's blocks, freed with the dataset: not kept through grounding
        count = self.max_batches
        if self.max_batch_tiles > 0:  # more batches where they would be too large, within the limit
            count = min(max(count, -(-len(tiles) // self.max_batch_tiles)), max(count, self.batch_limit))
        batches = plan_batches(tiles, count)
        job = GroundJob(raster, spec, tuple(classes), names, raster_sha256, item, cells)
        return job, tiles, batches

    def plan_item(
        self,
        questions: Sequence[CompiledQuestion],
        *,
        raster: str | Path,
        vectors: Scene | None = None,
        item: str | None = None,
        raster_sha256: str | None = None,
        item_bands: Sequence[str] = (),
    ) -> tuple[GroundJob, list[list[Tile]]] | None:
        """The tile batches :meth:`run` would ground for these questions (the same job and
        the same batches), or ``None`` when it would ground nothing (every class in the
        vector layers, or bands that cannot ground them). Logs nothing: a caller may
        ground them ahead (:meth:`georeason.workers.WorkerPool.prefetch`)."""
        from georeason.models.registry import can_ground

        raster = str(raster)
        classes = classes_of_questions(questions)
        _, to_ground, _ = split_classes(classes, vectors, lambda c: can_ground(self.grounder, c))
        if not to_ground:
            return None
        names = raster_bands(raster, self.bands, item_bands)
        try:
            check_bands(self.grounder, to_ground, names, raster)
        except InputError:
            return None
        job, tiles, batches = self.plan_ground(
            raster, to_ground, item=item, raster_sha256=raster_sha256, bands=names
        )
        # kept for the :meth:`ground` of the same inputs (this pipeline's, or the one it is handed to)
        self.plans[self._plan_key(raster, to_ground, item, raster_sha256, names)] = (job, tiles, batches)
        return job, batches

    def ground(
        self,
        raster: str | Path,
        classes: Sequence[str],
        *,
        grid: RasterGrid | None = None,
        item: str | None = None,
        raster_sha256: str | None = None,
        bands: Sequence[str] | None = None,
    ) -> Grounding:
        """Fit the grounder, plan tiles, ground the batches through :attr:`map`, merge seams.

        The one grounding loop (``ask``, the flows, the tests and the benchmarks all come
        here). ``classes`` are the class names to ask the grounder for; ``bands`` name the
        raster's bands (default: the file's).
        """
        if not classes:
            raise InputError("no classes to ground; pass at least one class name")
        raster = str(raster)
        where = f"[{item}] " if item else ""
        job, tiles, batches = self.plan_ground(
            raster, classes, grid=grid, item=item, raster_sha256=raster_sha256, bands=bands
        )
        spec = job.spec
        self.logger.info("%sgrounder %s config %s", where, spec.name, spec.config_json[:300])
        self.logger.info(
            "%sgrounding %s on %d tiles of %d px (overlap %d) in %d batches",
            where,
            ", ".join(classes),
            len(tiles),
            self.tile_px,
            self.overlap_px,
            len(batches),
        )
        done = self.map(job, batches, self._tiles_done(classes, len(tiles)))
        sums: BasemapSums | None = None
        if job.cells is not None:
            from georeason.geo.export.quicklook import BasemapSums

            sums = BasemapSums(job.cells, (t.index for t in tiles))
        skipped: list[tuple[int, int]] = []

        def taken(results: Iterable[BatchResult]) -> Iterator[BatchResult]:
            """Each batch on to the merge, its basemap share and skipped tiles taken first."""
            for b in results:
                if sums is not None:
                    for part in b.cells:
                        sums.add(part)
                skipped.extend(b.skipped)
                yield b
                del b

        notes: list[TileNote] = []
        objects, failures = merge_batches(taken(done), classes, spec, plan=tiles, notes=notes)
        del done
        self.logger.info(
            "%smerged into %d objects (%d tile failures%s)",
            where,
            len(objects),
            len(failures),
            f"; {len(skipped)} tiles not grounded: no valid pixel in their core" if skipped else "",
        )
        if notes:
            self.logger.warning(
                "%sthe grounder's output was partly unusable on %d tile(s) (%d warning(s); the "
                "answers that use %s list them under details.model_output_warnings)",
                where,
                len({n.index for n in notes}),
                len(notes),
                ", ".join(classes),
            )
            for n in notes[:MAX_LOGGED_NOTES]:
                self.logger.warning("%stile %s: %s", where, n.index, n.message)
            if len(notes) > MAX_LOGGED_NOTES:
                self.logger.warning("%s... and %d more", where, len(notes) - MAX_LOGGED_NOTES)
        if failures:
            self.logger.error(
                "%s%d tile(s) failed to ground (first: tile %s: %s); dependent answers abstain",
                where,
                len(failures),
                failures[0].index,
                failures[0].error,
            )
        if sums is not None and not sums.complete:
            sums = None  # a tile not read here (failed, or from the tile cache): the export reads the file
        valid = sums.valid_cells() if sums is not None else None
        return Grounding(objects, failures, spec, len(tiles), notes, sums, len(skipped), valid)

    def run(
        self,
        questions: Sequence[str] | Sequence[CompiledQuestion],
        *,
        raster: str | Path | None = None,
        vectors: Scene | None = None,
        item: str | None = None,
        raster_sha256: str | None = None,
        mask_path: Callable[[int, str], Path] | None = None,
        fallback: Callable[[str, Scene, AnswerContext, int], Answer] | None = None,
        grid: RasterGrid | None = None,
        item_bands: Sequence[str] = (),
    ) -> ItemResult:
        """Answer ``questions`` about ``raster`` and/or ``vectors`` (at least one of them).

        ``item_bands`` are the band names a catalog records for the raster (STAC
        ``eo:bands``); :attr:`bands` overrides them.
        """
        s = self.run_iter(
            questions,
            raster=raster,
            vectors=vectors,
            item=item,
            raster_sha256=raster_sha256,
            mask_path=mask_path,
            fallback=fallback,
            grid=grid,
            item_bands=item_bands,
            _listed=True,
        )
        return ItemResult(
            s.answers, s.scene, s.grid, s.questions, s.grounding, s.grounded, s.missing, s.fitness
        )

    def run_iter(
        self,
        questions: Sequence[str] | Sequence[CompiledQuestion],
        *,
        raster: str | Path | None = None,
        vectors: Scene | None = None,
        item: str | None = None,
        raster_sha256: str | None = None,
        mask_path: Callable[[int, str], Path] | None = None,
        fallback: Callable[[str, Scene, AnswerContext, int], Answer] | None = None,
        grid: RasterGrid | None = None,
        item_bands: Sequence[str] = (),
        _listed: bool = False,
    ) -> ItemStream:
        """:meth:`run` with the answers to come: the item is grounded (and its scene made)
        here, and each question is answered as :attr:`ItemStream.stream` is consumed, so a
        consumer that exports and drops each answer never holds them all (the flow)."""
        if all(isinstance(q, CompiledQuestion) for q in questions):
            cqs = [q for q in questions if isinstance(q, CompiledQuestion)]
        else:
            cqs = compile_questions([str(q) for q in questions])
        if raster is None:
            if vectors is None:
                raise InputError(
                    "give --objects FILE, --raster FILE or --item ID (what the question is about)"
                )
            ctx = AnswerContext(None, mask_path, fallback, self._post(vectors, None), self._answered(cqs))
            if _listed:
                return ItemStream(answer_questions(cqs, vectors, ctx), vectors, None, cqs)
            return ItemStream([], vectors, None, cqs, stream=iter_answers(cqs, vectors, ctx))
        from georeason.geo.raster.grid import RasterGrid
        from georeason.models.registry import can_ground

        raster = str(raster)
        grid = grid or RasterGrid.read(raster)
        where = f"[{item}] " if item else ""
        classes = classes_of_questions(cqs)
        _, to_ground, missing = split_classes(classes, vectors, lambda c: can_ground(self.grounder, c))
        if missing:
            self.logger.warning(
                "%sno vector layer has, and grounder %r cannot find: %s (those questions abstain)",
                where,
                self.grounder,
                ", ".join(missing),
            )
        g = Grounding([], [])
        fitness = None
        not_grounded = None
        if to_ground:
            names = raster_bands(raster, self.bands, item_bands)
            try:
                check_bands(self.grounder, to_ground, names, raster)  # before any work; advice that works
            except InputError as exc:
                if self.on_unusable_bands == "raise":
                    raise
                self.logger.error("%s%s", where, exc)
                not_grounded = str(exc)
        if to_ground and not_grounded is None:
            g = self.ground(raster, to_ground, grid=grid, item=item, raster_sha256=raster_sha256, bands=names)
        scene = grounded_scene(g.objects, grid.crs, vectors, source=f"item {item}" if item else raster)
        if to_ground and not_grounded is None:
            # grounded objects marked instance/cover, with what their confidence rests on
            fitness = assess(raster, self.grounder, to_ground, names)
            annotate_scene(scene, fitness, self.grounder)
        ctx = AnswerContext(
            grid, mask_path, fallback, self._post(scene, fitness), self._answered(cqs), g.valid_cells
        )
        how: dict[str, Any] = {
            "grounded": to_ground,
            "failures": g.failures,
            "not_grounded": not_grounded,
            "notes": g.notes,
        }
        if _listed:
            answers = answer_questions(cqs, scene, ctx, **how)
            return ItemStream(answers, scene, grid, cqs, g, to_ground, missing, fitness)
        stream = iter_answers(cqs, scene, ctx, **how)
        return ItemStream([], scene, grid, cqs, g, to_ground, missing, fitness, stream=stream)

    def _tiles_done(self, classes: Sequence[str], total: int) -> TileProgress | None:
        report = self.progress
        if report is None:
            return None
        what = f"grounding {', '.join(classes)} (tiles)"

        def tiles_done(n: int) -> None:
            report(what, n, total)

        return tiles_done

    def _answered(self, questions: Sequence[CompiledQuestion]) -> Callable[[int, int], None] | None:
        report = self.progress
        if report is None or len(questions) < 2:  # one question: its answer is the progress
            return None

        def answered(n: int, total: int) -> None:
            report("questions", n, total)

        return answered

    def _post(self, scene: Scene, fitness: dict[str, ClassFitness] | None) -> Callable[[Answer], Answer]:
        grounded: dict[str, int] | None = None  # built on the first answer, shared by the rest

        def post(answer: Answer) -> Answer:
            nonlocal grounded
            if grounded is None:
                grounded = grounded_index(scene)
            return apply_confidence(answer, scene, fitness, self.min_confidence, grounded)

        return post
