"""A chat model as planner, against the loopback OpenAI-compatible server of test_model_remote.

Nothing the model writes runs unvalidated: ``execute`` is instrumented to fail the test if
it is ever handed anything but a validated :class:`Program`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_model_remote import FakeOpenAI

from georeason.geo.language.english import ask
from georeason.geo.language.program import Program
from georeason.geo.vector.scene import read_scene

REPO = Path(__file__).resolve().parents[1]
TOWN = REPO / "examples" / "town.geojson"
QUESTION = "Tell me the number of buildings that stand no more than 300 metres from the biggest lake"

VALID = {
    "steps": [
        {"id": "lakes", "op": "select", "args": {"cls": "lake"}},
        {"id": "lake", "op": "the", "args": {"objects": "$lakes", "pick": "largest"}},
        {"id": "bld", "op": "select", "args": {"cls": "building"}},
        {
            "id": "near",
            "op": "within_distance",
            "args": {"objects": "$bld", "of": "$lake", "distance": 300, "unit": "m"},
        },
        {"id": "n", "op": "count", "args": {"objects": "$near"}},
        {"id": "out", "op": "answer", "args": {"value": "$n"}},
    ]
}
#: refers to a later step: structurally invalid
INVALID = {
    "steps": [
        {"id": "n", "op": "count", "args": {"objects": "$near"}},
        {"id": "lakes", "op": "select", "args": {"cls": "lake"}},
        {
            "id": "near",
            "op": "within_distance",
            "args": {"objects": "$lakes", "of": "$lakes", "distance": 300},
        },
        {"id": "out", "op": "answer", "args": {"value": "$n"}},
    ]
}


@pytest.fixture(scope="module")
def scene():
    return read_scene(TOWN)


@pytest.fixture
def server():
    srv = FakeOpenAI(model="fake-planner").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def executed(monkeypatch):
    """Calls of ``execute``; each must get a validated Program."""
    import georeason.geo.language.executor as ex

    calls = []
    real = ex.execute

    def guarded(program, *a, **kw):
        assert isinstance(program, Program), f"execute got an unvalidated {type(program).__name__}"
        calls.append(program)
        return real(program, *a, **kw)

    monkeypatch.setattr(ex, "execute", guarded)
    return calls


def _client(server):
    from georeason.models.language.planner import chat_client

    return chat_client(server.base_url, retries=0, timeout=10)


def test_valid_program_answers(server, scene, executed):
    from georeason.models.language.planner import plan_and_answer

    want = ask("How many buildings are within 300 m of the largest lake?", scene)
    executed.clear()
    server.replies = ["```json\n" + json.dumps(VALID) + "\n```"]
    ans = plan_and_answer(QUESTION, scene, _client(server))
    assert not ans.abstained and ans.value == want.value and ans.kind == "count"
    assert ans.details["planner"]["attempts"] == 1 and len(ans.details["planner"]["raw"]) == 1
    assert len(executed) == 1
    (req,) = server.requests
    # the schema constrains the reply (response_format) and is in the prompt, with examples
    rf = req["response_format"]
    assert (
        rf["type"] == "json_schema" and rf["json_schema"]["schema"]["properties"]["steps"]["type"] == "array"
    )
    prompt = req["messages"][-1]["content"]
    assert '"within_distance"' in prompt and "Question: How many buildings are within 500 m" in prompt
    assert QUESTION in prompt and "building (8)" in prompt  # the scene's classes


def test_invalid_program_is_repaired_once_with_the_error(server, scene, executed):
    from georeason.models.language.planner import plan_and_answer

    server.replies = [json.dumps(INVALID), json.dumps(VALID)]
    ans = plan_and_answer(QUESTION, scene, _client(server))
    assert not ans.abstained and ans.details["planner"]["attempts"] == 2
    first_error = ans.details["planner"]["errors"][0]
    assert "refers to a later step" in first_error
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": json.dumps(INVALID)}
    assert first_error in second[-1]["content"]
    assert len(executed) == 1


def test_still_invalid_abstains_and_nothing_runs(server, scene, executed):
    from georeason.models.language.planner import plan_and_answer

    bad_class = json.loads(json.dumps(VALID))
    bad_class["steps"][2]["args"]["cls"] = "aircraft"
    server.replies = [json.dumps(INVALID), json.dumps(bad_class), json.dumps(VALID)]
    ans = plan_and_answer(QUESTION, scene, _client(server))
    assert ans.abstained and ans.value is None
    assert "invalid after 2 attempts" in ans.reason and "no class 'aircraft'" in ans.reason
    assert len(server.requests) == 2  # one repair only
    assert executed == []
    assert ans.details["planner"]["raw"] == [json.dumps(INVALID), json.dumps(bad_class)]


def test_prose_without_json_is_repaired(scene, executed):
    from georeason.models.language.planner import plan_and_answer

    replies = iter(["I think there are about 3 buildings.", json.dumps(VALID["steps"])])
    seen = []

    def chat(messages):  # any callable will do
        seen.append(messages)
        return next(replies)

    ans = plan_and_answer(QUESTION, scene, chat)
    assert not ans.abstained and ans.details["planner"]["attempts"] == 2
    assert "holds no JSON program" in seen[1][-1]["content"]


def test_free_class_names_are_mapped_before_validation(scene, executed):
    from georeason.models.language.planner import plan_and_answer

    prog = json.loads(json.dumps(VALID))
    prog["steps"][2]["args"]["cls"] = "houses"
    prog["steps"][0]["args"]["cls"] = "reservoirs"
    ans = plan_and_answer(QUESTION, scene, lambda m: json.dumps(prog))
    assert not ans.abstained and ans.details["planner"]["attempts"] == 1
    cm = ans.details["planner"]["class_map"]
    assert cm["houses"]["class"] == "building" and cm["reservoirs"]["class"] == "lake"
    assert executed[0].steps[2].args.cls == "building"


def test_templates_first_planner_only_for_unparsed(scene, executed):
    from georeason.errors import QuestionParseError
    from georeason.models.language.planner import answer_with_fallback

    def chat(messages):
        raise AssertionError("the planner must not be asked a template question")

    ans = answer_with_fallback("How many buildings are within 300 m of the largest lake?", scene, chat)
    assert "planner" not in ans.details
    with pytest.raises(QuestionParseError):
        answer_with_fallback(QUESTION, scene, None)
    ans = answer_with_fallback(QUESTION, scene, lambda m: json.dumps(VALID))
    assert ans.details["planner"]["attempts"] == 1


def test_cli_ask_with_planner(server, monkeypatch):
    from typer.testing import CliRunner

    from georeason.cli import app

    monkeypatch.delenv("GEOREASON_PLANNER_MODEL", raising=False)
    server.replies = [json.dumps(VALID)]
    res = CliRunner().invoke(
        app, ["ask", QUESTION, "--objects", str(TOWN), "--planner", server.base_url, "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert (
        out["answer"]
        == ask("How many buildings are within 300 m of the largest lake?", read_scene(TOWN)).value
    )
    assert out["details"]["planner"]["attempts"] == 1
    assert server.requests[0]["model"] == "fake-planner"  # discovered from /v1/models
    # a template question never reaches the server
    n = len(server.requests)
    res = CliRunner().invoke(
        app,
        ["ask", "How many lakes are there?", "--objects", str(TOWN), "--planner", server.base_url, "--json"],
    )
    assert res.exit_code == 0 and len(server.requests) == n
    # without --planner the same question is a parse error (exit 2)
    res = CliRunner().invoke(app, ["ask", QUESTION, "--objects", str(TOWN)])
    assert res.exit_code == 2
