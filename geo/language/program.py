"""Query programs: the small formal language every question compiles to.

A program is a JSON list of steps, each ``{"id": "s1", "op": "distance", "args": {...}}``.
Arguments are literals or references to earlier steps (``"$s1"``). Each op has typed
arguments (pydantic models, ``extra="forbid"``) and a typed result, so a program is checked
completely *before* anything runs:

1. every step's op is known and its arguments have the right names, types and units;
2. every ``$ref`` names an earlier step, and that step's result type fits the argument;
3. object ids and class names exist in the scene (when a scene is given);
4. the last step is ``answer``.

Any failure raises :class:`~georeason.errors.ProgramValidationError` naming the step and
the argument. :func:`program_json_schema` gives the JSON Schema (``georeason schema``) so
that a language model can be constrained to emit valid programs.

Example (distance between two objects, in metres)::

    [
      {"id": "a", "op": "object", "args": {"id": "lake-1"}},
      {"id": "b", "op": "object", "args": {"id": "b12"}},
      {"id": "d", "op": "distance", "args": {"a": "$a", "b": "$b", "mode": "min", "unit": "m"}},
      {"id": "out", "op": "answer", "args": {"value": "$d"}}
    ]
"""

from __future__ import annotations

import json
import math
import re
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from georeason.errors import ProgramValidationError
from georeason.geo.vector.measure import COMPASS_16, DIRECTION_METHODS
from georeason.geo.vector.topology import PREDICATES

__all__ = [
    "T",
    "OPS",
    "Step",
    "Program",
    "parse_program",
    "validate_program",
    "check_scene",
    "literal_geometry",
    "program_json_schema",
    "REF_PATTERN",
]

REF_PATTERN = r"^\$[A-Za-z_][A-Za-z0-9_\-]*$"
_REF_RE = re.compile(REF_PATTERN)
Ref = Annotated[str, Field(pattern=REF_PATTERN, description="Reference to an earlier step: '$<step id>'")]


class T(str, Enum):
    """Result types of steps."""

    OBJECTS = "objects"  # a set of scene objects
    OBJECT = "object"  # exactly one scene object
    GEOMETRY = "geometry"  # a geometry not (only) from the scene: literal, buffer, union
    NUMBER = "number"
    COUNT = "count"
    BOOLEAN = "boolean"
    STRING = "string"
    PIXELS = "pixels"  # a mask on the raster grid
    ANSWER = "answer"


GEOM_LIKE = (T.OBJECT, T.GEOMETRY)
SET_LIKE = (T.OBJECTS, T.OBJECT)

DistanceUnit = Literal["m", "km", "mi", "ft"]
AreaUnit = Literal["m2", "km2", "ha"]
# The schema's enums come from the tables the geometry code uses (one source of truth):
# the yes/no predicates of :mod:`georeason.geo.vector.topology`, the compass names and
# direction definitions of :mod:`georeason.geo.vector.measure`.
if TYPE_CHECKING:
    Predicate = str
    Compass = str
    DirectionMethod = str
else:
    Predicate = Literal[PREDICATES]
    Compass = Literal[COMPASS_16]
    DirectionMethod = Literal[DIRECTION_METHODS]


class _Args(BaseModel):
    # defer_build: a model's validator is built when first used (a question uses a few of
    # the ~30 ops), not all at import: most of `ask`'s start-up above the import floor
    model_config = ConfigDict(extra="forbid", defer_build=True)
    #: argument name -> accepted result types of the referenced step
    REFS: ClassVar[dict[str, tuple[T, ...]]] = {}


class SelectArgs(_Args):
    """Objects by id list, class and/or attribute equality (all given filters must hold)."""

    ids: list[str] | None = None
    cls: str | None = Field(None, description="Class label, e.g. 'building' (plural forms accepted)")
    where: dict[str, str | int | float | bool] | None = Field(None, description="Attribute equality filters")

    @model_validator(mode="after")
    def _some(self):
        if self.ids is None and self.cls is None and not self.where:
            raise ValueError("give at least one of ids, cls, where")
        return self


class ObjectArgs(_Args):
    """Exactly one object, by id."""

    id: str


class GeometryArgs(_Args):
    """A literal geometry: WKT, a bbox, or a coordinate list (lon/lat unless crs says otherwise)."""

    wkt: str | None = None
    bbox: list[float] | None = Field(None, min_length=4, max_length=4, description="[minx, miny, maxx, maxy]")
    coords: list[list[float]] | None = Field(None, description="[[x, y], ...]")
    shape: Literal["point", "line", "polygon"] | None = Field(None, description="How to read coords")
    crs: str = Field("EPSG:4326", description="CRS of the coordinates, or 'pixel' for raster column/row")

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("wkt", "bbox", "coords") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of wkt, bbox, coords")
        g = literal_geometry(self)  # raises ValueError naming what is wrong
        if self.crs.upper() in _LONLAT_NAMES:
            check_lonlat(g)
        return self


class TheArgs(_Args):
    """One object out of a set: the only one, or the largest/smallest/longest/shortest."""

    REFS = {"objects": SET_LIKE}
    objects: Ref
    pick: Literal["only", "largest", "smallest", "longest", "shortest"] = "only"


class AtArgs(_Args):
    """The object of a class that best overlaps a geometry (IoU >= min_iou), else abstain."""

    REFS = {"geometry": GEOM_LIKE}
    cls: str
    geometry: Ref
    min_iou: float = Field(0.5, ge=0, le=1)


class PairArgs(_Args):
    REFS = {"a": GEOM_LIKE, "b": GEOM_LIKE}
    a: Ref
    b: Ref


class DistanceArgs(PairArgs):
    """Geodesic distance between a and b: minimum ('min') or between centroids ('centroid')."""

    mode: Literal["min", "centroid"] = "min"
    unit: DistanceUnit = "m"


_METHOD_HELP = (
    "How direction is defined: 'nearest_part' = azimuth from a's point nearest to b to b's point "
    "nearest to a (what a person sees on a map; centroids when they touch), 'centroid' = centroid to centroid"
)


class BearingArgs(PairArgs):
    """Forward geodesic azimuth of b seen from a, degrees [0, 360) (centroid to centroid unless method says)."""

    method: DirectionMethod = Field("centroid", description=_METHOD_HELP)


class DirectionArgs(PairArgs):
    """Compass point of b as seen from a (4, 8 or 16 points)."""

    points: Literal[4, 8, 16] = 8
    method: DirectionMethod = Field("nearest_part", description=_METHOD_HELP)


class IsDirectionArgs(PairArgs):
    """Is b in the given compass direction of a? (N/E/S/W +-45 deg, NE... +-22.5, NNE... +-11.25)."""

    direction: Compass
    method: DirectionMethod = Field("nearest_part", description=_METHOD_HELP)


class RelationArgs(PairArgs):
    """The named DE-9IM relation of a to b (equals, within, contains, overlaps, crosses, touches, intersects, disjoint)."""


class PredicateArgs(PairArgs):
    """A yes/no predicate: predicate(a, b), e.g. 'within' = a is within b."""

    predicate: Predicate


class AreaArgs(_Args):
    REFS = {"of": GEOM_LIKE + (T.OBJECTS,)}
    of: Ref
    unit: AreaUnit = "m2"


class LengthArgs(_Args):
    REFS = {"of": GEOM_LIKE}
    of: Ref
    unit: DistanceUnit = "m"


#: Longest distance, in metres, a question may give: the longest geodesic on Earth (half the
#: equator, ~20 004 km); beyond it every object is within any distance.
MAX_DISTANCE_M = 20_037_509.0
#: Largest buffer, in metres. The buffer is drawn in an azimuthal equidistant projection
#: centred on the geometry, exact for distances from its centre; far from the centre the
#: projection (and the reprojected ring) degrades, and past ~5000 km the ring wraps the
#: globe and its polygon inverts (0 objects). 2500 km keeps the error under 1 %.
MAX_BUFFER_M = 2_500_000.0
_UNIT_M = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}  # as the executor's _DIST


def _check_distance(value: float, unit: str, limit_m: float, what: str) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{what} {value!r} {unit} is not a finite number")
    if value * _UNIT_M[unit] > limit_m:
        raise ValueError(
            f"{what} {value:g} {unit} is beyond {limit_m / 1000:g} km, the largest this method measures "
            "correctly; give a smaller distance"
        )


class WithinDistanceArgs(_Args):
    """Objects of a set within a distance of a reference (minimum geodesic distance)."""

    REFS = {"objects": SET_LIKE, "of": GEOM_LIKE}
    objects: Ref
    of: Ref
    distance: float = Field(ge=0, allow_inf_nan=False)
    unit: DistanceUnit = "m"

    @model_validator(mode="after")
    def _range(self):
        _check_distance(self.distance, self.unit, MAX_DISTANCE_M, "distance")
        return self


class InsideArgs(_Args):
    """Objects of a set inside a region: entirely ('within') or partly ('intersects')."""

    REFS = {"objects": SET_LIKE, "region": GEOM_LIKE}
    objects: Ref
    region: Ref
    mode: Literal["within", "intersects"] = "within"


class DistanceFilterArgs(_Args):
    """Objects of a set whose minimum geodesic distance to a reference is in [at_least, at_most] (bounds included)."""

    REFS = {"objects": SET_LIKE, "of": GEOM_LIKE}
    objects: Ref
    of: Ref
    at_least: float | None = Field(None, ge=0)
    at_most: float | None = Field(None, ge=0)
    unit: DistanceUnit = "m"

    @model_validator(mode="after")
    def _bounds(self):
        if self.at_least is None and self.at_most is None:
            raise ValueError("give at_least, at_most or both")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least ({self.at_least}) is larger than at_most ({self.at_most})")
        return self


class InDirectionArgs(_Args):
    """Objects of a set lying in a compass direction of a reference (sectors as is_direction)."""

    REFS = {"objects": SET_LIKE, "of": GEOM_LIKE}
    objects: Ref
    of: Ref
    direction: Compass
    method: DirectionMethod = Field("nearest_part", description=_METHOD_HELP)


class RelatedArgs(_Args):
    """Objects of a set for which predicate(object, to) holds, e.g. 'intersects', 'touches'."""

    REFS = {"objects": SET_LIKE, "to": GEOM_LIKE}
    objects: Ref
    to: Ref
    predicate: Predicate


class AggregateArgs(_Args):
    """mean / sum / min / max / median of a measure over a set: area, length, or distance to a reference."""

    REFS = {"objects": SET_LIKE, "to": GEOM_LIKE}
    objects: Ref
    measure: Literal["area", "length", "distance"]
    stat: Literal["mean", "sum", "min", "max", "median"]
    to: Ref | None = Field(None, description="Reference for measure='distance'")
    unit: Literal["m", "km", "mi", "ft", "m2", "km2", "ha"] | None = None

    @model_validator(mode="after")
    def _fits(self):
        if (self.measure == "distance") != (self.to is not None):
            raise ValueError("measure 'distance' needs 'to' (and only it takes one)")
        areal = self.measure == "area"
        if self.unit is not None and (self.unit in ("m2", "km2", "ha")) != areal:
            raise ValueError(f"unit {self.unit!r} does not fit measure {self.measure!r}")
        return self


class CompareArgs(_Args):
    """Compare a number with another step's number (b) or a literal (value, in unit): a <relation> b."""

    REFS = {"a": (T.NUMBER, T.COUNT), "b": (T.NUMBER, T.COUNT)}
    a: Ref
    relation: Literal["lt", "le", "gt", "ge"]
    b: Ref | None = None
    value: float | None = None
    unit: Literal["m", "km", "mi", "ft", "m2", "km2", "ha", "deg"] | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.b is None) == (self.value is None):
            raise ValueError("give exactly one of b, value")
        return self


class CloserArgs(_Args):
    """Which of two objects is nearer to (or, with farther, farther from) a reference."""

    REFS = {"a": (T.OBJECT,), "b": (T.OBJECT,), "to": GEOM_LIKE}
    a: Ref
    b: Ref
    to: Ref
    farther: bool = False
    mode: Literal["min", "centroid"] = "min"


class BothArgs(_Args):
    """Logical and of two yes/no steps."""

    REFS = {"a": (T.BOOLEAN,), "b": (T.BOOLEAN,)}
    a: Ref
    b: Ref


class CountArgs(_Args):
    REFS = {"objects": SET_LIKE}
    objects: Ref


class RankArgs(_Args):
    """The k objects of a set nearest to / farthest from a reference (the reference itself excluded)."""

    REFS = {"objects": SET_LIKE, "to": GEOM_LIKE}
    objects: Ref
    to: Ref
    k: int = Field(1, ge=1)


class ArgExtremeArgs(_Args):
    """The object of a set with the largest / smallest area or length."""

    REFS = {"objects": SET_LIKE}
    objects: Ref
    by: Literal["area", "length"] = "area"


class UnionArgs(_Args):
    REFS = {"objects": SET_LIKE + (T.GEOMETRY,)}
    objects: Ref


class BufferArgs(_Args):
    """A geodesic buffer: every point within the distance of the geometry."""

    REFS = {"of": GEOM_LIKE + (T.OBJECTS,)}
    of: Ref
    distance: float = Field(ge=0, allow_inf_nan=False)
    unit: DistanceUnit = "m"

    @model_validator(mode="after")
    def _range(self):
        _check_distance(self.distance, self.unit, MAX_BUFFER_M, "buffer distance")
        return self


class IntersectionArgs(_Args):
    """The part of a that is also in b (sets are unioned first)."""

    REFS = {"a": GEOM_LIKE + (T.OBJECTS,), "b": GEOM_LIKE + (T.OBJECTS,)}
    a: Ref
    b: Ref


class PixelsArgs(_Args):
    """A pixel-level answer: the raster pixels whose centre lies in the geometry/objects (a mask GeoTIFF)."""

    REFS = {"of": GEOM_LIKE + (T.OBJECTS,)}
    of: Ref


class TotalAreaArgs(_Args):
    """Area covered by a set (overlaps counted once), optionally clipped to a region."""

    REFS = {"objects": SET_LIKE, "region": GEOM_LIKE}
    objects: Ref
    region: Ref | None = None
    unit: AreaUnit = "m2"


class AnswerArgs(_Args):
    """The final step: which value answers the question."""

    REFS = {"value": tuple(t for t in T if t is not T.ANSWER)}
    value: Ref


#: op name -> (argument model, result type or a function of the args giving it)
OPS: dict[str, tuple[type[_Args], Any]] = {
    "select": (SelectArgs, T.OBJECTS),
    "object": (ObjectArgs, T.OBJECT),
    "geometry": (GeometryArgs, T.GEOMETRY),
    "the": (TheArgs, T.OBJECT),
    "at": (AtArgs, T.OBJECT),
    "distance": (DistanceArgs, T.NUMBER),
    "bearing": (BearingArgs, T.NUMBER),
    "direction": (DirectionArgs, T.STRING),
    "is_direction": (IsDirectionArgs, T.BOOLEAN),
    "relation": (RelationArgs, T.STRING),
    "predicate": (PredicateArgs, T.BOOLEAN),
    "area": (AreaArgs, T.NUMBER),
    "length": (LengthArgs, T.NUMBER),
    "within_distance": (WithinDistanceArgs, T.OBJECTS),
    "inside": (InsideArgs, T.OBJECTS),
    "count": (CountArgs, T.COUNT),
    "nearest": (RankArgs, lambda a: T.OBJECT if a.k == 1 else T.OBJECTS),
    "farthest": (RankArgs, lambda a: T.OBJECT if a.k == 1 else T.OBJECTS),
    "argmax": (ArgExtremeArgs, T.OBJECT),
    "argmin": (ArgExtremeArgs, T.OBJECT),
    "union": (UnionArgs, T.GEOMETRY),
    "buffer": (BufferArgs, T.GEOMETRY),
    "total_area": (TotalAreaArgs, T.NUMBER),
    "intersection": (IntersectionArgs, T.GEOMETRY),
    "pixels": (PixelsArgs, T.PIXELS),
    "distance_filter": (DistanceFilterArgs, T.OBJECTS),
    "in_direction": (InDirectionArgs, T.OBJECTS),
    "related": (RelatedArgs, T.OBJECTS),
    "aggregate": (AggregateArgs, T.NUMBER),
    "compare": (CompareArgs, T.BOOLEAN),
    "closer": (CloserArgs, T.OBJECT),
    "both": (BothArgs, T.BOOLEAN),
    "answer": (AnswerArgs, T.ANSWER),
}

_STEP_ID = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


def _step_model(op: str, args_model: type[_Args]) -> type[BaseModel]:
    return type(
        f"{''.join(p.title() for p in op.split('_'))}Step",
        (BaseModel,),
        {
            "__annotations__": {"id": str, "op": Literal[op], "args": args_model},  # type: ignore[valid-type]
            "model_config": ConfigDict(extra="forbid", defer_build=True),
            "id": Field(pattern=_STEP_ID, description="Step id, referenced later as '$id'"),
            "__doc__": args_model.__doc__,
        },
    )


_STEP_MODELS = {op: _step_model(op, m) for op, (m, _) in OPS.items()}
if TYPE_CHECKING:  # a union built at run time from OPS: opaque to a static checker
    Step = Any
else:
    Step = Annotated[Union[tuple(_STEP_MODELS.values())], Field(discriminator="op")]  # noqa: UP007


class Program(BaseModel):
    """A validated query program: its steps and the result type of each."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)
    steps: list[Step]  # type: ignore[valid-type]

    def types(self) -> dict[str, T]:
        out: dict[str, T] = {}
        for s in self.steps:
            rt = OPS[s.op][1]
            out[s.id] = rt(s.args) if callable(rt) else rt
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [s.model_dump(mode="json", exclude_none=True) for s in self.steps]


def program_json_schema() -> dict[str, Any]:
    """JSON Schema of a program (a JSON array of steps)."""
    schema = TypeAdapter(list[Step]).json_schema()  # type: ignore[valid-type]
    schema["title"] = "georeason query program"
    schema["description"] = (
        "A list of steps; arguments are literals or '$<id>' references to earlier steps; "
        "the last step is 'answer'."
    )
    return schema


def _first_error(exc: ValidationError) -> tuple[str | None, str]:
    err = exc.errors()[0]
    loc = [str(x) for x in err["loc"]]
    arg = None
    if "args" in loc:
        rest = loc[loc.index("args") + 1 :]
        arg = rest[0] if rest else None
    elif loc:
        arg = loc[-1]
    msg = err["msg"]
    if err.get("type") == "literal_error" and "expected" in err.get("ctx", {}):
        msg = f"{msg} (got {err.get('input')!r})"
    return arg, msg


def parse_program(raw: Any) -> list[Step]:
    """Structural check of each step (op known, argument names/types/units right)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProgramValidationError(
                f"program is not valid JSON ({exc}); give a JSON list of steps"
            ) from exc
    if isinstance(raw, dict) and "steps" in raw:
        raw = raw["steps"]
    if not isinstance(raw, list) or not raw:
        raise ProgramValidationError("a program is a non-empty JSON list of steps")
    steps = []
    for n, item in enumerate(raw):
        sid = item.get("id") if isinstance(item, dict) else None
        label = str(sid) if sid is not None else f"#{n + 1}"
        if not isinstance(item, dict):
            raise ProgramValidationError("each step must be an object with id, op, args", step=label)
        op = item.get("op")
        if op not in OPS:
            raise ProgramValidationError(
                f"unknown op {op!r}; known ops: {', '.join(OPS)}", step=label, arg="op"
            )
        try:
            steps.append(_STEP_MODELS[op].model_validate(item))
        except ValidationError as exc:
            arg, msg = _first_error(exc)
            raise ProgramValidationError(msg, step=label, arg=arg) from None
    return steps


def validate_program(raw: Any, scene=None) -> Program:
    """Parse and fully validate a program; with a scene, also check ids and classes exist.

    Raises :class:`ProgramValidationError` naming the step and argument at the first problem.
    """
    steps = parse_program(raw)
    types: dict[str, T] = {}
    for step in steps:
        if step.id in types:
            raise ProgramValidationError(
                "step id used twice; give each step its own id", step=step.id, arg="id"
            )
        args_model = OPS[step.op][0]
        for name, accepted in args_model.REFS.items():
            value = getattr(step.args, name)
            if value is None:
                continue
            ref = value[1:]
            if ref not in types:
                later = any(s.id == ref for s in steps)
                why = "refers to a later step" if later else "refers to no step"
                raise ProgramValidationError(
                    f"{value!r} {why}; reference an earlier step's id", step=step.id, arg=name
                )
            if types[ref] not in accepted:
                raise ProgramValidationError(
                    f"{value!r} is a {types[ref].value}, but this argument takes "
                    f"{' or '.join(t.value for t in accepted)}",
                    step=step.id,
                    arg=name,
                )
        if scene is not None:
            _check_scene(step, scene)
        rt = OPS[step.op][1]
        types[step.id] = rt(step.args) if callable(rt) else rt
    if steps[-1].op != "answer":
        raise ProgramValidationError("the last step must be 'answer'", step=steps[-1].id, arg="op")
    if sum(s.op == "answer" for s in steps) != 1:
        first = next(s for s in steps if s.op == "answer")
        raise ProgramValidationError("only the last step may be 'answer'", step=first.id, arg="op")
    # the steps are validated instances already: no second validation through the union
    return Program.model_construct(steps=steps)


def check_scene(program: Program, scene: Any) -> None:
    """Check that the ids and classes a validated program names exist in ``scene``.

    The scene half of :func:`validate_program`, for a program validated once without a
    scene (a compiled question answered against a scene built later). Raises
    :class:`ProgramValidationError` naming the step and argument.
    """
    for step in program.steps:
        _check_scene(step, scene)


def _check_scene(step, scene) -> None:
    args = step.args
    ids = []
    if step.op == "select" and args.ids:
        ids = args.ids
    elif step.op == "object":
        ids = [args.id]
    for oid in ids:
        if scene.index(oid) is None:
            raise ProgramValidationError(
                f"no object with id {oid!r} in the scene ({len(scene)} objects from {scene.source})",
                step=step.id,
                arg="ids" if step.op == "select" else "id",
            )
    cls = getattr(args, "cls", None)
    if cls is not None and scene.resolve_class(cls) is None:
        raise ProgramValidationError(
            f"no class {cls!r} in the scene; classes are: {', '.join(scene.classes) or '(none)'}",
            step=step.id,
            arg="cls",
        )


_LONLAT_NAMES = ("EPSG:4326", "OGC:CRS84", "CRS84", "WGS84", "LONLAT")


def check_lonlat(g: Any) -> None:
    """Refuse lon/lat coordinates off the Earth, naming the value.

    Latitudes must lie in [-90, 90]. Longitudes may run past +-180 up to +-360, because a
    region that crosses the antimeridian can only be written that way
    (``[179.9, -0.1, 180.1, 0.1]``); beyond that a value is a mistake (swapped axes,
    projected metres given as degrees).

    Examples
    --------
    >>> import shapely
    >>> check_lonlat(shapely.Point(10, 95))
    Traceback (most recent call last):
    ...
    ValueError: latitude 95 is outside [-90, 90]; give lon/lat in degrees (x = longitude, y = latitude) or name the CRS
    """
    import shapely

    xy = shapely.get_coordinates(g)
    if len(xy) == 0:
        return
    bad_lat = xy[abs(xy[:, 1]) > 90]
    if len(bad_lat):
        raise ValueError(
            f"latitude {bad_lat[0, 1]:g} is outside [-90, 90]; give lon/lat in degrees "
            "(x = longitude, y = latitude) or name the CRS"
        )
    bad_lon = xy[abs(xy[:, 0]) > 360]
    if len(bad_lon):
        raise ValueError(
            f"longitude {bad_lon[0, 0]:g} is outside [-360, 360]; give lon/lat in degrees or name the CRS"
        )


def literal_geometry(args: GeometryArgs):
    """The shapely geometry a :class:`GeometryArgs` describes, in ``args.crs`` coordinates."""
    import shapely

    if args.wkt is not None:
        try:
            g = shapely.from_wkt(args.wkt)
        except Exception as exc:  # shapely.errors.GEOSException
            raise ValueError(f"cannot read WKT {args.wkt[:60]!r}: {exc}") from None
    elif args.bbox is not None:
        x0, y0, x1, y1 = args.bbox
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"bbox {args.bbox} needs minx < maxx and miny < maxy")
        g = shapely.box(x0, y0, x1, y1)
    else:
        pts = args.coords or []
        if any(len(p) != 2 for p in pts):
            raise ValueError("coords must be [x, y] pairs")
        shape = args.shape or (
            "point" if len(pts) == 1 else "polygon" if len(pts) >= 4 and pts[0] == pts[-1] else "line"
        )
        try:
            g = {"point": shapely.Point, "line": shapely.LineString, "polygon": shapely.Polygon}[shape](
                pts[0] if shape == "point" else pts
            )
        except Exception as exc:
            raise ValueError(f"cannot make a {shape} from {len(pts)} coordinate pairs: {exc}") from None
    if g.is_empty:
        raise ValueError("the geometry is empty")
    if args.crs.lower() != "pixel":
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        from georeason.errors import CRSMismatchError
        from georeason.geo.vector.crs import check_coordinates

        try:
            crs = CRS.from_user_input(args.crs)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {args.crs!r} ({exc})") from None
        try:
            check_coordinates(g.bounds, crs, "the geometry")
        except CRSMismatchError as exc:
            raise ValueError(str(exc)) from None
    elif not all(map(math.isfinite, g.bounds)):
        raise ValueError(f"pixel coordinates {list(g.bounds)} are not finite")
    if not g.is_valid:
        raise ValueError(f"the geometry is invalid ({shapely.is_valid_reason(g)})")
    return g


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and bool(_REF_RE.match(value))
