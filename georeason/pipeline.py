"""Rasters to scenes: the pure steps the Prefect flow and ``ask --raster`` share.

The flow (``georeason.flows.answer``) runs these steps as tasks — tile batches mapped in
parallel, cached per batch — and ``georeason ask --raster`` runs them in one process
without Prefect. Either way the result is the same :class:`~georeason.geo.vector.scene.Scene`.

Steps:

1. :func:`classes_needed` — which classes a question's program selects;
2. :func:`split_classes` — which of those come from vector layers and which must be grounded;
3. :func:`plan_batches` — the tile plan cut into at most ``max_batches`` batches;
4. :func:`ground_batch` — read and ground the tiles of one batch; a tile that fails is
   recorded as a :class:`TileFailure` and the other tiles carry on;
5. :func:`merge_batches` — seam merge (:func:`georeason.geo.grounding.seams.merge_detections`) and
   water bodies split into areal (lake, pond, ...) and linear (river, canal, ...) by shape;
6. :func:`grounded_scene` — grounded objects plus vector-layer objects in one scene.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import shapely

from georeason.errors import GeoreasonError
from georeason.geo.grounding.detections import Detection, GroundedObject, Grounder
from georeason.geo.grounding.seams import merge_detections
from georeason.geo.raster.tiling import Tile, read_tile
from georeason.geo.vector.crs import reproject
from georeason.geo.vector.scene import Scene, normalise_class

__all__ = [
    "TileFailure",
    "BatchResult",
    "classes_needed",
    "classes_of_questions",
    "split_classes",
    "plan_batches",
    "ground_batch",
    "merge_batches",
    "relabel_water",
    "grounded_scene",
    "LINEAR_WATER",
    "AREAL_WATER",
]

#: Water classes that are long and thin; the others are areal water bodies.
LINEAR_WATER = frozenset(
    {"river", "rivers", "stream", "streams", "canal", "canals", "creek", "creeks", "channel", "channels"}
)
AREAL_WATER = frozenset(
    {
        "lake",
        "lakes",
        "pond",
        "ponds",
        "reservoir",
        "reservoirs",
        "sea",
        "water body",
        "water bodies",
        "lagoon",
        "lagoons",
        "basin",
        "basins",
    }
)
#: A water body is linear when its area is this many times that of its largest inscribed
#: circle: about 1 for a round lake, 2-10 for lobed lakes and coasts, hundreds for a river
#: (a 90 m wide, 38 km long river: ~500). Unlike perimeter-based elongation, this is not
#: fooled by a ragged coastline.
LINEAR_AREA_RATIO = 25.0


@dataclass(frozen=True)
class TileFailure:
    """A tile whose read or grounding failed; the run carries on without it."""

    index: tuple[int, int]
    error: str


@dataclass(frozen=True)
class BatchResult:
    """What one batch of tiles produced."""

    results: tuple[tuple[Tile, tuple[Detection, ...]], ...]
    failures: tuple[TileFailure, ...] = ()


def classes_needed(program_steps: Iterable[dict]) -> list[str]:
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


def classes_of_questions(questions: Iterable[str]) -> list[str]:
    """Classes the programs of English questions select, in order, each once.

    A question no template understands contributes nothing here; it is reported when it
    is answered.

    Examples
    --------
    >>> classes_of_questions(["How many lakes are there?", "Why?", "Which lake is nearest to #r1?"])
    ['lakes', 'lake']
    """
    from georeason.errors import QuestionParseError
    from georeason.geo.language.english import compile_question

    out: list[str] = []
    for q in questions:
        try:
            steps = compile_question(q)
        except QuestionParseError:
            continue
        for c in classes_needed(steps):
            if c not in out:
                out.append(c)
    return out


def split_classes(
    classes: Sequence[str], vector_scene: Scene | None, can_ground
) -> tuple[list[str], list[str], list[str]]:
    """Split classes into (from vector layers, to ground, unavailable).

    A class present in the vector layers is taken from them (exact geometry beats
    detection); otherwise it is grounded if ``can_ground(cls)``; else it is unavailable
    and questions about it abstain.
    """
    vec, ground, missing = [], [], []
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


def canonical_class(label: str, can_ground) -> str | None:
    """The singular form of a class name that a grounder supports, else the name, else ``None``.

    Grounded objects are labelled with this form, so ``lakes`` and ``lake`` in two
    questions ground once and both resolve (:meth:`Scene.resolve_class` tries singulars).

    Examples
    --------
    >>> canonical_class("Buildings", lambda c: c in {"building", "buildings"})
    'building'
    """
    from georeason.geo.vector.scene import _singulars

    name = normalise_class(label)
    forms = _singulars(name)
    for cand in forms[1:] + forms[:1]:
        if can_ground(cand):
            return cand
    return None


def plan_batches(tiles: Sequence[Tile], max_batches: int = 200, min_batch: int = 1) -> list[list[Tile]]:
    """Cut a tile plan into at most ``max_batches`` contiguous batches of near-equal size.

    Examples
    --------
    >>> [len(b) for b in plan_batches(list(range(10)), max_batches=4)]
    [3, 3, 3, 1]
    """
    n = len(tiles)
    if n == 0:
        return []
    size = max(min_batch, math.ceil(n / max(1, max_batches)))
    return [list(tiles[i : i + size]) for i in range(0, n, size)]


def ground_batch(
    src, tiles: Sequence[Tile], grounder: Grounder, classes: list[str], bands: list[str]
) -> BatchResult:
    """Read and ground each tile of a batch from an open dataset ``src``.

    A tile that fails (read error, grounder error) becomes a :class:`TileFailure`;
    the remaining tiles are still processed.
    """
    results, failures = [], []
    batched = getattr(grounder, "ground_tiles", None)
    if batched is not None and len(tiles) > 1:
        # model grounders batch several tiles per model call; a failing batch falls back
        # to one tile at a time below, so only the tiles that really fail are lost
        read: list[tuple] = []
        for tile in tiles:
            try:
                read.append((read_tile(src, tile), tile))
            except (GeoreasonError, OSError, ValueError, RuntimeError, MemoryError) as exc:
                failures.append(TileFailure(tuple(tile.index), f"{type(exc).__name__}: {exc}"))
        try:
            per_tile = batched(read, list(classes), list(bands))
            results = [(tile, tuple(dets)) for (_, tile), dets in zip(read, per_tile)]
            return BatchResult(tuple(results), tuple(failures))
        except (GeoreasonError, OSError, ValueError, RuntimeError, MemoryError):
            tiles = [t for _, t in read]
    for tile in tiles:
        try:
            pixels = read_tile(src, tile)
            dets = tuple(grounder.ground(pixels, tile, list(classes), list(bands)))
        except (GeoreasonError, OSError, ValueError, RuntimeError, MemoryError) as exc:
            failures.append(TileFailure(tuple(tile.index), f"{type(exc).__name__}: {exc}"))
            continue
        results.append((tile, dets))
    return BatchResult(tuple(results), tuple(failures))


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
    for o in objects:
        lab = normalise_class(o.label)
        linear, areal = lab in LINEAR_WATER, lab in AREAL_WATER
        if (linear or areal) and (is_linear(o.geometry) != linear):
            continue
        out.append(o)
    return out


def is_linear(g) -> bool:
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
    *,
    iou_threshold: float = 0.5,
    min_area_m2: float = 0.0,
    simplify_m: float = 0.0,
) -> tuple[list[GroundedObject], list[TileFailure]]:
    """Seam-merge all batches of one raster; return (objects with ids, failures)."""
    from georeason.geo.grounding.seams import assign_ids

    pairs, failures = [], []
    for b in batches:
        pairs.extend(b.results)
        failures.extend(b.failures)
    objects = merge_detections(
        pairs, iou_threshold=iou_threshold, min_area_m2=min_area_m2, simplify_m=simplify_m
    )
    return assign_ids(relabel_water(objects, classes)), failures


def grounded_scene(
    objects: Sequence[GroundedObject], crs, vectors: Scene | None = None, source: str = "grounded"
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


def sequential_ground(
    raster,
    grounder: Grounder,
    classes: list[str],
    tile_px: int = 1024,
    overlap_px: int = 128,
    max_batches: int = 200,
    progress: Callable[[int, int], None] | None = None,
    bands: Sequence[str] | None = None,
) -> tuple[list[GroundedObject], list[TileFailure]]:
    """The whole grounding path in one process (no Prefect): plan, ground, merge.

    ``progress(n, total)`` (optional) is called after each batch with its number of tiles
    and the raster's total. ``bands`` names the raster's bands (``--bands``, STAC
    ``eo:bands``); default: the file's band descriptions.
    """
    from georeason.geo.raster.io import as_dataset, band_names
    from georeason.geo.raster.tiling import plan_tiles

    with as_dataset(raster) as src:
        bands = list(bands) if bands else list(band_names(src))
        tiles = list(plan_tiles(src, tile_px, overlap_px))
        batches = []
        for b in plan_batches(tiles, max_batches):
            batches.append(ground_batch(src, b, grounder, classes, bands))
            if progress is not None:
                progress(len(b), len(tiles))
    return merge_batches(
        batches,
        classes,
        min_area_m2=getattr(grounder, "min_area_m2", 0.0),
        simplify_m=getattr(grounder, "simplify_m", 0.0),
    )


def _slug(text: str, n: int = 40) -> str:
    import re

    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:n].rstrip("-") or "q"


def answer_questions(
    scene: Scene,
    questions: Sequence[str],
    out_dir,
    raster=None,
    grounded: Sequence[str] = (),
    failures: Sequence[TileFailure] = (),
    item: str | None = None,
    post=None,
) -> list[dict]:
    """Answer questions against one scene; write each answer's GeoJSON (and mask) under ``out_dir``.

    ``post(answer) -> answer``, if given, runs on each answer before it is written (the
    confidence summary and threshold of :mod:`georeason.models.fitness`).

    Returns one JSON object per question (the ``ask --json`` object plus ``item`` and
    ``outputs``); a question that cannot be parsed gives ``{"question", "item", "error"}``
    without stopping the rest. When tiles failed to ground, answers that depend on a
    grounded class abstain: counting or ranking with part of the raster missing would be
    a guess.
    """
    from pathlib import Path

    from georeason.errors import GeoreasonError
    from georeason.geo.export.layers import answer_stem, write_answer_files, write_error_record
    from georeason.geo.language.answer import Answer
    from georeason.geo.language.english import ask, compile_question

    out_dir = Path(out_dir)
    grid = pixel = None
    if raster is not None:
        from georeason.geo.raster.masks import grid_of, pixel_transform

        grid = grid_of(raster)
        pixel = pixel_transform(grid)
    rows: list[dict] = []
    from georeason.geo.vector.scene import _singulars

    grounded_set = {normalise_class(c) for c in grounded}

    def _grounded_in(steps) -> set[str]:
        return {c for c in classes_needed(steps) if grounded_set & set(_singulars(c))}

    for n, q in enumerate(questions, 1):
        stem = answer_stem(n, q)

        writer = None
        if grid is not None:
            from georeason.geo.raster.masks import mask_writer

            writer = mask_writer(raster, grid, lambda sid, stem=stem: out_dir / "masks" / f"{stem}.tif")

        try:
            steps = compile_question(q)
            uses_grounded = _grounded_in(steps)
            if failures and uses_grounded:
                first = failures[0]
                ans = Answer.abstain(
                    f"{len(failures)} tile(s) failed to ground ({first.index}: {first.error}); an answer about "
                    f"{', '.join(sorted(uses_grounded))} from the remaining tiles could be wrong",
                    question=q,
                    query=steps,
                )
            else:
                ans = ask(q, scene, pixel=pixel, mask_writer=writer)
                if post is not None:
                    ans = post(ans)
        except GeoreasonError as exc:
            err = str(exc)
            record = write_error_record(q, err, out_dir / f"{stem}.geojson")
            rows.append(
                {
                    "question": q,
                    "item": item,
                    "error": err,
                    "abstained": True,
                    "answer": None,
                    "outputs": {"geojson": str(record)},
                }
            )
            continue
        row = ans.to_json()
        row["item"] = item
        written = write_answer_files(ans, out_dir / f"{stem}.geojson")
        outputs: dict = {"geojson": str(written[0])}
        if len(written) > 1:
            outputs["parts"] = [str(w) for w in written]
        if "mask" in ans.details:
            outputs["mask"] = ans.details["mask"]
        row["outputs"] = outputs
        rows.append(row)
    return rows
