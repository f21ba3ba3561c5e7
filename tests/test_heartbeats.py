"""`georeason run`'s flow-run heartbeats (flows/heartbeats.py): the engine's off, the flow's
own on at the same frequency, the same event, and none left running when the work ends."""

from __future__ import annotations

import time

import prefect.events
import pytest
from prefect import flow, tags
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from georeason.flows.heartbeats import EVENT, flow_run_heartbeats, own_heartbeats


def _events(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: sent.append(kw))
    return sent


@flow(name="heartbeat-probe")
def _probe(hold_s: float) -> dict:
    ctx = FlowRunContext.get()
    assert ctx is not None
    seen = {"engine_every": PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value(), "flow_run": ctx.flow_run}
    t0 = time.perf_counter()
    with flow_run_heartbeats():
        time.sleep(hold_s)
        t1 = time.perf_counter()
    seen["exit_s"] = time.perf_counter() - t1
    seen["body_s"] = t1 - t0
    return seen


def test_run_sends_the_flows_own_heartbeats_and_ends_them_at_once(prefect_harness, monkeypatch) -> None:
    sent = _events(monkeypatch)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        with own_heartbeats() as every, tags("nightly"):
            seen = _probe(0.3)
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 30  # restored after the run
    assert every == 30.0
    assert seen["engine_every"] is None  # the engine sends none meanwhile
    run = seen["flow_run"]
    # the first at once, the next only after 30 s: exactly one in a 0.3 s flow
    assert [e["event"] for e in sent] == [EVENT] == ["prefect.flow-run.heartbeat"]
    (beat,) = sent
    assert beat["resource"]["prefect.resource.id"] == f"prefect.flow-run.{run.id}"
    assert beat["resource"]["prefect.resource.name"] == run.name
    related = {(r["prefect.resource.role"], r["prefect.resource.id"]) for r in beat["related"]}
    assert ("flow", f"prefect.flow.{run.flow_id}") in related
    assert ("tag", "prefect.tag.nightly") in related
    names = {r["prefect.resource.role"]: r.get("prefect.resource.name") for r in beat["related"]}
    assert names["flow"] == "heartbeat-probe"
    # the 30 s wait ends with the work: not the up-to-1-s join of the engine's thread
    assert seen["exit_s"] < 0.2, seen["exit_s"]


def test_no_heartbeats_when_off_or_outside_run(prefect_harness, monkeypatch) -> None:
    sent = _events(monkeypatch)
    # a temporary server's runs: the frequency is off, so neither the engine nor the flow sends
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with own_heartbeats() as every:
            seen = _probe(0.05)
    assert every is None and seen["engine_every"] is None
    # a flow run not started by `georeason run` (a deployment): the engine's own, not ours
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        seen = _probe(0.05)
    assert seen["engine_every"] == 30
    assert sent == []
