"""Query programs: the JSON Schema, validation before execution, and error reporting."""

from __future__ import annotations

import copy
import json

import jsonschema  # noqa: E402  (installed with prefect, a core dependency)
import pytest
from shapely import LineString, box

from georeason.errors import InputError, ProgramValidationError
from georeason.geo.language.english import compile_question
from georeason.geo.language.executor import execute
from georeason.geo.language.program import (
    OPS,
    Program,
    T,
    parse_program,
    program_json_schema,
    validate_program,
)
from georeason.geo.vector.scene import Scene


@pytest.fixture(scope="module")
def schema():
    return program_json_schema()


@pytest.fixture(scope="module")
def validator(schema):
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def scene():
    return Scene(
        ["b1", "b2", "lake-1", "lake-2", "r1"],
        ["building", "building", "lake", "lake", "river"],
        [
            box(10.0, 50.0, 10.001, 50.001),
            box(10.01, 50.0, 10.011, 50.001),
            box(10.02, 50.02, 10.03, 50.03),
            box(10.04, 50.04, 10.041, 50.041),
            LineString([(9.9, 49.9), (10.1, 50.1)]),
        ],
        "EPSG:4326",
        source="test-scene",
    )


def answer(ref="$x", sid="out"):
    return {"id": sid, "op": "answer", "args": {"value": ref}}


VALID = [
    {"id": "a", "op": "object", "args": {"id": "b1"}},
    {"id": "b", "op": "object", "args": {"id": "b2"}},
    {"id": "x", "op": "distance", "args": {"a": "$a", "b": "$b", "mode": "min", "unit": "m"}},
    answer(),
]


# ---------------------------------------------------------------------------------------
# the JSON Schema
# ---------------------------------------------------------------------------------------
def test_schema_is_a_valid_json_schema(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    assert schema["type"] == "array"
    assert schema["title"]
    json.dumps(schema)  # serialisable


def test_schema_lists_every_op(schema):
    text = json.dumps(schema)
    for op in OPS:
        assert f'"{op}"' in text, op


def test_schema_accepts_valid_program(validator):
    validator.validate(VALID)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param([{"id": "x", "op": "teleport", "args": {}}], id="unknown-op"),
        pytest.param(
            [{"id": "x", "op": "distance", "args": {"a": "$a", "b": "$b", "unit": "furlong"}}], id="bad-unit"
        ),
        pytest.param([{"id": "x", "op": "distance", "args": {"a": "a", "b": "$b"}}], id="ref-without-dollar"),
        pytest.param([{"id": "x", "op": "object", "args": {"id": "b1", "colour": "red"}}], id="extra-arg"),
        pytest.param([{"id": "x", "op": "object"}], id="no-args"),
        pytest.param([{"id": "1x", "op": "object", "args": {"id": "b1"}}], id="bad-step-id"),
        pytest.param(
            [{"id": "x", "op": "nearest", "args": {"objects": "$a", "to": "$b", "k": 0}}], id="k-zero"
        ),
        pytest.param(
            [{"id": "x", "op": "within_distance", "args": {"objects": "$a", "of": "$b", "distance": -1}}],
            id="negative-distance",
        ),
        pytest.param({"id": "x"}, id="not-a-list"),
    ],
)
def test_schema_rejects_structural_errors(validator, bad):
    assert not validator.is_valid(bad)
    with pytest.raises(ProgramValidationError):
        validate_program(bad)


# ---------------------------------------------------------------------------------------
# every English question form compiles to a program valid under the schema
# ---------------------------------------------------------------------------------------
QUESTIONS = [
    # distances
    "What is the distance between #b1 and #b2?",
    "What is the distance between #b1 and #b2 in km?",
    "What's the geodesic distance between object b1 and the river?",
    "Distance from #b1 to #b2",
    "How far is #b1 from the largest lake?",
    "How far apart are #b1 and #b2?",
    "How far is it from #b1 to #b2 in kilometres?",
    "What is the distance between the centres of #b1 and #b2?",
    "What is the distance between #b1 and POINT (10.5 50.5)?",
    "How far is #b1 from (10.5, 50.5)?",
    "How far is #b1 from [[10.5, 50.5], [10.6, 50.6]]?",
    "How far is #b1 from the region [10.5, 50.5, 10.6, 50.6]?",
    "How far is #b1 from the lake at [10.02, 50.02, 10.03, 50.03]?",
    "How far is #b1 from POINT (500000 5540000) (EPSG:32632)?",
    "How far is #b1 from (120, 45) in pixels?",
    # directions
    "In which direction is #b2 from #b1?",
    "What is the direction from #b1 to #b2?",
    "What is the 16-point direction from #b1 to #b2?",
    "In which 16-point compass direction is #b2 from #b1?",
    "Where is #b2 relative to #b1?",
    "What is the bearing from #b1 to #b2?",
    "What is the azimuth of #b2 from #b1?",
    "Is #b2 north of #b1?",
    "Is #b2 to the northeast of #b1?",
    "Is #b2 NNE of #b1?",
    "Does #b2 lie south-west of #b1?",
    # topology
    "What is the topological relation between #b1 and #b2?",
    "What is the relationship between #b1 and the river?",
    "How does #b1 relate to #b2?",
    "Does #b1 intersect #b2?",
    "Does #b1 touch #b2?",
    "Does the river cross #b1?",
    "Does #b1 overlap #b2?",
    "Does #b1 contain #b2?",
    "Does #b1 cover #b2?",
    "Is #b1 within #b2?",
    "Is #b1 inside #b2?",
    "Is #b1 completely contained in #b2?",
    "Is #b1 disjoint from #b2?",
    "Is #b1 equal to #b2?",
    "Is #b1 covered by #b2?",
    "Are #b1 and #b2 disjoint?",
    "Are #b1 and #b2 the same?",
    "Do #b1 and #b2 intersect?",
    "Do #b1 and #b2 touch?",
    # counts and sets
    "How many buildings are within 500 m of #b1?",
    "How many buildings are within 2 km of the river?",
    "How many buildings are within 1000 feet of #b1?",
    "How many buildings are inside the region POLYGON ((9 49, 11 49, 11 51, 9 51, 9 49))?",
    "How many lakes are there?",
    "Count the buildings",
    "Show all buildings within 200 m of #b1.",
    "List the buildings inside [9, 49, 11, 51]",
    "Which buildings are within 2 km of the river?",
    # nearest / farthest
    "Which building is nearest to the largest lake?",
    "Which building is closest to #lake-1?",
    "What is the closest building to #lake-1?",
    "Which building is farthest from #lake-1?",
    "Which building is the furthest from #lake-1?",
    "Find the most distant building from #lake-1",
    # extremes
    "Which is the largest lake?",
    "Which is the smallest lake?",
    "Which is the longest river?",
    "Which is the shortest river?",
    "Which lake is the biggest?",
    "Find the largest lake",
    # measures
    "What is the area of the largest lake?",
    "What is the area of #lake-1 in km2?",
    "What is the area of #lake-1 in hectares?",
    "What is the area of #lake-1 in square kilometres?",
    "How big is #lake-1?",
    "How large is the smallest lake?",
    "What is the length of the river?",
    "What is the length of the river in km?",
    "What is the perimeter of #lake-1?",
    "How long is the river?",
    "What is the total area of lakes?",
    "What is the total area of lakes inside [9, 49, 11, 51]?",
    "What is the total area covered by all the lakes in km2?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_question_compiles_to_schema_valid_program(question, validator, scene):
    steps = compile_question(question)
    validator.validate(steps)
    program = validate_program(steps)
    assert isinstance(program, Program)
    assert program.steps[-1].op == "answer"
    # and against the scene (every id and class in these questions exists)
    validate_program(steps, scene)
    # the program survives a JSON round trip
    assert validate_program(json.dumps(steps)).to_json() == program.to_json()


PIXEL_QUESTIONS = [
    "Which pixels are lakes?",
    "Which pixels are lakes within 100 m of #b1?",
    "Which pixels are buildings inside [9, 49, 11, 51]?",
]


@pytest.mark.skipif("pixels" not in OPS, reason="no pixel-answer op in this build")
@pytest.mark.parametrize("question", PIXEL_QUESTIONS)
def test_pixel_question_compiles_to_schema_valid_program(question, validator, scene):
    steps = compile_question(question)
    validator.validate(steps)
    validate_program(steps, scene)
    assert steps[-2]["op"] == "pixels"


def test_question_forms_cover_every_query_op():
    """Each SUPPORTED_FORMS family is exercised: the final ops of QUESTIONS cover them all."""
    final_ops = {compile_question(q)[-2]["op"] for q in QUESTIONS}
    assert final_ops >= {
        "distance",
        "direction",
        "bearing",
        "is_direction",
        "relation",
        "predicate",
        "count",
        "within_distance",
        "inside",
        "nearest",
        "farthest",
        "argmax",
        "argmin",
        "area",
        "length",
        "total_area",
    }
    all_ops = {s["op"] for q in QUESTIONS for s in compile_question(q)}
    assert {"object", "select", "the", "at", "geometry"} <= all_ops


def test_program_types():
    program = validate_program(
        [
            {"id": "s", "op": "select", "args": {"cls": "building"}},
            {"id": "o", "op": "object", "args": {"id": "lake-1"}},
            {"id": "n1", "op": "nearest", "args": {"objects": "$s", "to": "$o"}},
            {"id": "n2", "op": "nearest", "args": {"objects": "$s", "to": "$o", "k": 2}},
            {"id": "c", "op": "count", "args": {"objects": "$n2"}},
            answer("$c"),
        ]
    )
    assert program.types() == {
        "s": T.OBJECTS,
        "o": T.OBJECT,
        "n1": T.OBJECT,
        "n2": T.OBJECTS,
        "c": T.COUNT,
        "out": T.ANSWER,
    }


def test_program_accepts_steps_wrapper_and_json_text():
    assert len(validate_program({"steps": VALID}).steps) == 4
    assert len(validate_program(json.dumps(VALID)).steps) == 4


# ---------------------------------------------------------------------------------------
# rejected programs name the step and the argument
# ---------------------------------------------------------------------------------------
def _with(step_index, **changes):
    prog = copy.deepcopy(VALID)
    prog[step_index].update(changes)
    return prog


def _rejected(program, scene=None) -> ProgramValidationError:
    with pytest.raises(ProgramValidationError) as info:
        validate_program(program, scene)
    exc = info.value
    assert isinstance(exc, InputError) and isinstance(exc, ValueError)
    return exc


def test_unknown_op():
    exc = _rejected(_with(2, op="teleport"))
    assert exc.step == "x" and exc.arg == "op"
    assert "unknown op 'teleport'" in str(exc)
    assert "distance" in str(exc)  # lists the known ops
    assert str(exc).startswith("step 'x', argument 'op': ")


def test_bad_unit():
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["unit"] = "furlong"
    exc = _rejected(prog)
    assert exc.step == "x" and exc.arg == "unit"
    assert "furlong" in str(exc)
    assert "'m'" in str(exc) and "'km'" in str(exc)


def test_bad_area_unit():
    prog = [
        {"id": "o", "op": "object", "args": {"id": "lake-1"}},
        {"id": "x", "op": "area", "args": {"of": "$o", "unit": "acre"}},
        answer(),
    ]
    exc = _rejected(prog)
    assert (exc.step, exc.arg) == ("x", "unit")
    assert "acre" in str(exc)


def test_dangling_ref():
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["b"] = "$nowhere"
    exc = _rejected(prog)
    assert exc.step == "x" and exc.arg == "b"
    assert "'$nowhere' refers to no step" in str(exc)


def test_forward_ref():
    prog = [
        {"id": "x", "op": "distance", "args": {"a": "$a", "b": "$b"}},
        {"id": "a", "op": "object", "args": {"id": "b1"}},
        {"id": "b", "op": "object", "args": {"id": "b2"}},
        answer(),
    ]
    exc = _rejected(prog)
    assert exc.step == "x" and exc.arg == "a"
    assert "refers to a later step" in str(exc)


def test_self_ref_is_a_forward_ref():
    prog = [{"id": "x", "op": "count", "args": {"objects": "$x"}}, answer()]
    exc = _rejected(prog)
    assert exc.step == "x" and exc.arg == "objects"
    assert "later step" in str(exc)


def test_wrong_ref_type_count_of_a_number():
    prog = copy.deepcopy(VALID[:3]) + [
        {"id": "c", "op": "count", "args": {"objects": "$x"}},
        answer("$c"),
    ]
    exc = _rejected(prog)
    assert exc.step == "c" and exc.arg == "objects"
    assert "'$x' is a number" in str(exc)
    assert "objects" in str(exc)


def test_wrong_ref_type_distance_of_a_set():
    prog = [
        {"id": "s", "op": "select", "args": {"cls": "building"}},
        {"id": "o", "op": "object", "args": {"id": "b1"}},
        {"id": "x", "op": "distance", "args": {"a": "$s", "b": "$o"}},
        answer(),
    ]
    exc = _rejected(prog)
    assert (exc.step, exc.arg) == ("x", "a")
    assert "'$s' is a objects" in str(exc)
    assert "takes object or geometry" in str(exc)


def test_wrong_ref_type_answer_of_answer():
    prog = copy.deepcopy(VALID) + [answer("$out", sid="again")]
    exc = _rejected(prog)
    assert exc.step == "again" and exc.arg == "value"


def test_unknown_class_with_scene(scene):
    prog = [
        {"id": "s", "op": "select", "args": {"cls": "volcano"}},
        {"id": "c", "op": "count", "args": {"objects": "$s"}},
        answer("$c"),
    ]
    validate_program(prog)  # structurally fine without a scene
    exc = _rejected(prog, scene)
    assert (exc.step, exc.arg) == ("s", "cls")
    assert "volcano" in str(exc)
    assert "building" in str(exc) and "lake" in str(exc)  # lists the classes


def test_plural_class_is_known(scene):
    prog = [
        {"id": "s", "op": "select", "args": {"cls": "Buildings"}},
        {"id": "c", "op": "count", "args": {"objects": "$s"}},
        answer("$c"),
    ]
    validate_program(prog, scene)
    assert execute(prog, scene).value == 2


def test_unknown_id_with_scene(scene):
    prog = _with(1, args={"id": "b99"})
    validate_program(prog)
    exc = _rejected(prog, scene)
    assert (exc.step, exc.arg) == ("b", "id")
    assert "'b99'" in str(exc) and "test-scene" in str(exc)


def test_unknown_id_in_select_with_scene(scene):
    prog = [
        {"id": "s", "op": "select", "args": {"ids": ["b1", "zz"]}},
        {"id": "c", "op": "count", "args": {"objects": "$s"}},
        answer("$c"),
    ]
    exc = _rejected(prog, scene)
    assert (exc.step, exc.arg) == ("s", "ids")
    assert "'zz'" in str(exc)


def test_unknown_class_in_at_with_scene(scene):
    prog = [
        {"id": "g", "op": "geometry", "args": {"bbox": [10, 50, 11, 51]}},
        {"id": "x", "op": "at", "args": {"cls": "pond", "geometry": "$g"}},
        answer(),
    ]
    exc = _rejected(prog, scene)
    assert (exc.step, exc.arg) == ("x", "cls")


def test_last_step_not_answer():
    exc = _rejected(VALID[:3])
    assert exc.step == "x" and exc.arg == "op"
    assert "last step must be 'answer'" in str(exc)


def test_answer_before_the_end():
    prog = copy.deepcopy(VALID[:3]) + [
        answer(sid="early"),
        {"id": "y", "op": "object", "args": {"id": "b1"}},
        answer("$y"),
    ]
    exc = _rejected(prog)
    assert exc.step == "early" and exc.arg == "op"


def test_duplicate_step_id():
    prog = copy.deepcopy(VALID)
    prog[1]["id"] = "a"
    exc = _rejected(prog)
    assert exc.step == "a" and exc.arg == "id"
    assert "twice" in str(exc)


def test_missing_required_arg():
    prog = copy.deepcopy(VALID)
    del prog[2]["args"]["b"]
    exc = _rejected(prog)
    assert (exc.step, exc.arg) == ("x", "b")


def test_extra_arg_forbidden():
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["colour"] = "red"
    exc = _rejected(prog)
    assert (exc.step, exc.arg) == ("x", "colour")


def test_ref_must_be_a_reference():
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["a"] = "a"
    exc = _rejected(prog)
    assert (exc.step, exc.arg) == ("x", "a")


def test_step_without_id_is_named_by_position():
    prog = [{"op": "teleport", "args": {}}, answer()]
    exc = _rejected(prog)
    assert exc.step == "#1"


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"bbox": [1, 1, 0, 0]}, "minx < maxx"),
        ({"wkt": "POINT (1"}, "WKT"),
        ({"wkt": "POINT (1 1)", "bbox": [0, 0, 1, 1]}, "exactly one"),
        ({}, "exactly one"),
        ({"coords": [[0, 0, 0]]}, "pairs"),
        ({"wkt": "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"}, "invalid"),
    ],
)
def test_bad_literal_geometry(args, fragment):
    prog = [{"id": "g", "op": "geometry", "args": args}, answer("$g")]
    exc = _rejected(prog)
    assert exc.step == "g"
    assert fragment in str(exc)


@pytest.mark.parametrize("raw", ["", "[]", "not json", "{}", "[1, 2]", '{"steps": []}'])
def test_not_a_program(raw):
    with pytest.raises(ProgramValidationError):
        validate_program(raw)


def test_parse_program_is_structural_only():
    # a dangling reference passes the structural parse but not full validation
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["b"] = "$nowhere"
    assert len(parse_program(prog)) == 4
    with pytest.raises(ProgramValidationError):
        validate_program(prog)


def test_execute_validates_before_running(scene):
    prog = copy.deepcopy(VALID)
    prog[2]["args"]["unit"] = "furlong"
    with pytest.raises(ProgramValidationError):
        execute(prog, scene)
    prog = _with(0, args={"id": "nope"})
    with pytest.raises(ProgramValidationError) as info:
        execute(prog, scene)
    assert info.value.step == "a"


def test_valid_program_executes(scene):
    ans = execute(VALID, scene)
    assert not ans.abstained
    assert ans.unit == "m" and ans.kind == "scalar"
    assert ans.query == validate_program(VALID).to_json()
    assert {e.id for e in ans.evidence} == {"b1", "b2"}


def test_schema_enums_come_from_the_geometry_tables():
    """Predicates and compass names in the schema are the tables the geometry code uses."""
    from georeason.geo.vector.measure import COMPASS_16, DIRECTION_METHODS
    from georeason.geo.vector.topology import PREDICATES

    text = json.dumps(program_json_schema())
    schema = program_json_schema()["$defs"]
    assert schema["PredicateArgs"]["properties"]["predicate"]["enum"] == list(PREDICATES)
    assert schema["IsDirectionArgs"]["properties"]["direction"]["enum"] == list(COMPASS_16)
    assert schema["InDirectionArgs"]["properties"]["direction"]["enum"] == list(COMPASS_16)
    assert schema["DirectionArgs"]["properties"]["method"]["enum"] == list(DIRECTION_METHODS)
    for op in ("distance_filter", "in_direction", "related", "aggregate", "compare", "closer", "both"):
        assert f'"const": "{op}"' in text


@pytest.mark.parametrize(
    "steps, arg",
    [
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {"id": "o", "op": "object", "args": {"id": "x"}},
                {"id": "f", "op": "distance_filter", "args": {"objects": "$s", "of": "$o"}},
            ],
            "args",
        ),
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {"id": "o", "op": "object", "args": {"id": "x"}},
                {
                    "id": "f",
                    "op": "distance_filter",
                    "args": {"objects": "$s", "of": "$o", "at_least": 5, "at_most": 1},
                },
            ],
            "args",
        ),
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {
                    "id": "f",
                    "op": "aggregate",
                    "args": {"objects": "$s", "measure": "distance", "stat": "mean"},
                },
            ],
            "args",
        ),
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {
                    "id": "f",
                    "op": "aggregate",
                    "args": {"objects": "$s", "measure": "area", "stat": "mean", "unit": "km"},
                },
            ],
            "args",
        ),
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {"id": "c", "op": "compare", "args": {"a": "$s", "relation": "lt", "value": 3}},
            ],
            "a",
        ),
        (
            [
                {"id": "s", "op": "select", "args": {"cls": "b"}},
                {"id": "o", "op": "object", "args": {"id": "x"}},
                {"id": "c", "op": "closer", "args": {"a": "$s", "b": "$o", "to": "$o"}},
            ],
            "a",
        ),
    ],
)
def test_new_ops_are_validated(steps, arg):
    with pytest.raises(ProgramValidationError) as info:
        validate_program(steps + [answer("$" + steps[-1]["id"])])
    assert info.value.step == steps[-1]["id"]
    if arg != "args":
        assert info.value.arg == arg
