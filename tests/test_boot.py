"""The temporary Prefect server of ``georeason run`` (issue 11, "boot"): the services it
turns off must not lose what the UI shows. A real run with its temporary server, then its
records read back through the API of a second server on the same database: the flow run,
every task run (recorded from events by the server's task run recorder), logs and
artifacts; and the settings the temporary server is started with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from grounding_helpers import geotiff

REPO = Path(__file__).resolve().parents[1]


def _post(api: str, path: str, body: dict) -> list[dict]:
    req = urllib.request.Request(
        f"{api}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    return out["events"] if isinstance(out, dict) and "events" in out else out


def test_temporary_server_settings_are_the_users_to_override(monkeypatch):
    """The services turned off are named settings, and the user's environment wins."""
    from georeason.prefect_server import TEMPORARY_SERVER_SETTINGS

    assert TEMPORARY_SERVER_SETTINGS["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "false"
    # Prefect's own parsing: the events vacuum is off, the task run recorder and the event
    # persister (what the UI's task runs come from) stay on
    for k, v in TEMPORARY_SERVER_SETTINGS.items():
        monkeypatch.setenv(k, v)
    from prefect.settings import Settings

    settings = Settings()
    services = settings.server.services
    assert "events" not in services.db_vacuum.enabled_vacuum_types
    assert services.triggers.enabled is False
    assert services.task_run_recorder.enabled is True
    assert services.event_persister.enabled is True
    # no block registration at start, nor its memo (which imports every Prefect collection)
    assert settings.server.register_blocks_on_start is False
    assert settings.server.memoize_block_auto_registration is False

    from georeason.prefect_server import TemporaryServer

    monkeypatch.delenv("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED")
    monkeypatch.delenv("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:1/api")
    env = TemporaryServer.environment()
    assert env["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "false"
    assert "PREFECT_API_URL" not in env and env["PREFECT_UI_ENABLED"] == "0"
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "true")  # the user's choice wins
    assert TemporaryServer.environment()["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "true"


#: ``georeason run`` with Prefect's event persister slowed down (each event it takes holds
#: its consumer 0.2 s more, as a slow disk's batch writes do): the run's last events are
#: still waiting in Prefect's in-memory topic when the run ends. Without the drain at the
#: server's shutdown (``drain_events_at_shutdown``) 11 of the sample run's 38 events were
#: recorded, its ``prefect.flow-run.Completed`` not among them (as CI once saw unslowed).
SLOW_EVENT_PERSISTER_RUN = """\
import asyncio, contextlib, sys

import prefect.server.events.services.event_persister as persister

handler_of = persister.create_handler


@contextlib.asynccontextmanager
async def slow_handler(**kwargs):
    async with handler_of(**kwargs) as handle:
        async def slow(message):
            await handle(message)
            await asyncio.sleep(0.2)

        yield slow


if __name__ == "__main__":  # worker processes import this file again
    persister.create_handler = slow_handler
    from georeason.cli import main

    sys.argv = ["georeason", *sys.argv[1:]]
    main()
"""


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_run_with_its_temporary_server_records_run_task_runs_logs_and_artifacts(tmp_path, monkeypatch, mode):
    """``process``: the server in a subprocess (the default); ``thread``: in the run's
    process (the process ends without the interpreter's teardown once the records are
    complete), with a slow event persister (:data:`SLOW_EVENT_PERSISTER_RUN`)."""
    from georeason.prefect_server import TemporaryServer

    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_TO_API_ENABLED": "true",
        "GEOREASON_PREFECT_SERVER": mode,
        # the server's own log at DEBUG: what its event persister received and wrote (and any
        # flush it retried) goes to the run's stderr, quoted below if an event is missing
        "PREFECT_SERVER_LOGGING_LEVEL": "DEBUG",
    }
    env.pop("PREFECT_API_URL", None)
    out = tmp_path / "out"
    if mode == "thread":
        script = tmp_path / "slow_persister_run.py"
        script.write_text(SLOW_EVENT_PERSISTER_RUN)
        command = [sys.executable, str(script)]
    else:
        command = [sys.executable, "-m", "georeason.cli"]
    run = subprocess.run(
        [*command, "run", "--item", "sample", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    n_answers = len((out / "answers.jsonl").read_text().splitlines())
    # the event persister's account of the run's events (task runs' left out) and of its
    # writes, and any error line
    persister = "\n".join(
        line
        for line in run.stderr.splitlines()
        if ("event_persister" in line or "rror" in line) and "prefect.task-run." not in line
    )[-6000:]

    # a second server on the same database reads back what the first one recorded
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with TemporaryServer() as server:
        api = server.wait_ready()
        (flow_run,) = _post(api, "/flow_runs/filter", {"flows": {"name": {"any_": ["georeason-answer"]}}})
        assert flow_run["state_type"] == "COMPLETED"
        fr = flow_run["id"]
        task_runs = _post(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [fr]}}})
        names = sorted(t["name"] for t in task_runs)
        assert "sample: load vectors" in names and "sample: answer and export" in names, names
        assert sum(n.startswith("sample: ground tile") for n in names) >= 2, names
        assert {t["state_type"] for t in task_runs} == {"COMPLETED"}, [
            (t["name"], t["state_type"]) for t in task_runs
        ]
        logs = _post(api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [fr]}}})
        messages = [x["message"] for x in logs]
        assert f"wrote {n_answers} answers to {out.resolve() / 'answers.jsonl'}" in messages
        assert any(m.startswith("[sample] How many lakes are there? -> ") for m in messages)
        artifacts = _post(api, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [fr]}}})
        keys = {a["key"] for a in artifacts}
        # the progress artifact, updated at most once a second, always ends at 100 %
        (progress,) = [a for a in artifacts if a["key"] == "georeason-progress-sample"]
        assert float(progress["data"]) == 100.0
        assert {
            "georeason-summary",
            "georeason-answers",
            "georeason-outputs",
            "georeason-quicklook-sample",
        } <= keys
        # no flow-run heartbeats against a server that ends with the run
        events = _post(
            api,
            "/events/filter",
            {
                "filter": {
                    "event": {"prefix": ["prefect.flow-run."]},
                    "any_resource": {"id": [f"prefect.flow-run.{fr}"]},
                }
            },
        )
        kinds = {e["event"] for e in events}
        assert "prefect.flow-run.Completed" in kinds, (kinds, persister)
        assert "prefect.flow-run.heartbeat" not in kinds, kinds
        # every task run's three state events and every artifact's: none lost at the stop
        every = _post(api, "/events/filter", {"filter": {"any_resource": {"id": [f"prefect.flow-run.{fr}"]}}})
        for state in ("Pending", "Running", "Completed"):
            n = sum(e["event"] == f"prefect.task-run.{state}" for e in every)
            assert n == len(task_runs), (state, n, len(task_runs), persister)
        assert sum(e["event"] == "prefect.artifact.created" for e in every) == len(artifacts)
        assert "not yet recorded" not in run.stderr and "did not stop within" not in run.stderr


def test_in_process_server_keeps_its_settings_and_signals_to_itself(tmp_path, monkeypatch):
    """The temporary server in a thread of this process: its service settings are seen by
    the server (its own API reports them) and not by this process's Prefect settings; no
    signal handler is taken from the main thread; stop() ends its thread."""
    import signal
    import threading

    from georeason.prefect_server import VACUUM_STAMP

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / VACUUM_STAMP).touch()  # vacuumed today: not this server's job
    for k in TEMPORARY_SERVER_SETTINGS_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import get_current_settings

    from georeason.prefect_server import InProcessServer

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    settings_before = get_current_settings().hash_key()
    server = InProcessServer().start()
    try:
        api = server.wait_ready(timeout_s=300)
        assert api == f"http://127.0.0.1:{server.port}/api"
        with urllib.request.urlopen(f"{api}/health", timeout=30) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"{api}/admin/settings", timeout=30) as resp:
            seen = json.loads(resp.read())
        services = seen["server"]["services"]
        assert services["triggers"]["enabled"] is False
        assert "events" not in services["db_vacuum"]["enabled"]
        assert services["task_run_recorder"]["enabled"] is True
        assert seen["server"]["analytics_enabled"] is False
        # this process's settings and environment are untouched (the server's come from a
        # settings context of its own thread)
        assert get_current_settings().hash_key() == settings_before
        assert not any(k in os.environ for k in TEMPORARY_SERVER_SETTINGS_KEYS)
        assert {s: signal.getsignal(s) for s in before} == before
        assert any(t.name == "georeason-prefect-server" for t in threading.enumerate())
    finally:
        server.stop()
    assert not any(t.name == "georeason-prefect-server" for t in threading.enumerate())


def test_server_mode_is_checked(monkeypatch, tmp_path):
    """GEOREASON_PREFECT_SERVER picks the subprocess (default) or the thread; anything else
    is one line and exit 2 from `run`."""
    from typer.testing import CliRunner

    from georeason.cli import app
    from georeason.errors import InputError
    from georeason.prefect_server import InProcessServer, TemporaryServer, temporary_server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("GEOREASON_PREFECT_SERVER", "thread")
    assert isinstance(temporary_server(), InProcessServer)
    monkeypatch.delenv("GEOREASON_PREFECT_SERVER")
    assert isinstance(temporary_server(), TemporaryServer)
    monkeypatch.setenv("GEOREASON_PREFECT_SERVER", "fork")
    with pytest.raises(InputError, match="GEOREASON_PREFECT_SERVER='fork'.*thread or process"):
        temporary_server()
    # no API configured, even when an earlier test left Prefect's settings pointing at one
    # (then `run` would start no temporary server and never read the mode)
    monkeypatch.setattr("georeason.prefect_server.configured_api_url", lambda: None)
    res = CliRunner().invoke(app, ["run", "--item", "sample", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "GEOREASON_PREFECT_SERVER='fork'" in res.output and "Traceback" not in res.output


TEMPORARY_SERVER_SETTINGS_KEYS = (
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
)


def test_events_vacuum_runs_on_one_temporary_server_a_day(tmp_path, monkeypatch):
    """Prefect's events vacuum (deleting events past the retention) is off in temporary
    servers except the first of each day, stamped in PREFECT_HOME; the user's setting wins."""
    import time

    from prefect.settings import Settings

    from georeason.prefect_server import VACUUM_STAMP, _claim_vacuum, events_vacuum_due, server_settings

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    stamp = tmp_path / VACUUM_STAMP
    assert events_vacuum_due() and not stamp.exists()
    assert _claim_vacuum() is True and stamp.exists()  # the first server of the day
    assert _claim_vacuum() is False  # the next ones that day
    day_ago = time.time() - 86400 - 60
    os.utime(stamp, (day_ago, day_ago))
    assert events_vacuum_due() and _claim_vacuum() is True and not events_vacuum_due()

    for vacuum, on in ((True, True), (False, False)):
        values = server_settings(vacuum)
        assert values["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        services = Settings().server.services
        assert ("events" in services.db_vacuum.enabled_vacuum_types) is on
        assert services.triggers.enabled is False
        for k in values:
            monkeypatch.delenv(k)
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", "events,flow_runs")  # the user's choice
    assert "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED" not in server_settings(False)


def test_import_concurrently_retries_an_import_deadlock_only(monkeypatch):
    """The run's main thread and the server's thread import Prefect's dependencies at once:
    a ``_DeadlockError`` (Python's answer to two threads each holding a module the other
    needs) is retried; any other error is raised."""
    import importlib
    import importlib._bootstrap as bootstrap

    from georeason.prefect_server import import_concurrently

    calls: list[str] = []
    real = importlib.import_module

    def flaky(name, package=None):
        calls.append(name)
        if len(calls) < 3:
            raise bootstrap._DeadlockError(f"deadlock detected by _ModuleLock({name!r})")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", flaky)
    import_concurrently("json")
    assert calls == ["json", "json", "json"]

    def broken(name, package=None):
        raise RuntimeError("not a deadlock")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(RuntimeError, match="not a deadlock"):
        import_concurrently("json")


def test_artifact_thumbnails_are_made_from_the_page_in_memory(tmp_path, monkeypatch):
    """While ``keep_thumbnails`` is open (the ``answer`` flow), a quicklook's thumbnail is
    made from the page as it is written, not by decoding the PNG again, and is the same data
    URI as the one made from the file; it is taken once, at the size asked for; a file
    changed since it was written, or another size, is decoded; nothing is kept outside."""
    import PIL.Image
    import shapely

    from georeason.flows.answer import ANSWER_THUMB_PX, ITEM_THUMB_PX, _thumbnail_px
    from georeason.geo.export import quicklook
    from georeason.geo.export.quicklook import keep_thumbnails, thumbnail_data_uri, write_quicklook

    raster = geotiff(tmp_path / "scene.tif", 200, 150, origin=(499900, 5001100))
    objects = [shapely.Point(500500, 5000800).buffer(100)]
    real_open = PIL.Image.open
    opened: list[str] = []

    def counting_open(fp, *a, **k):
        opened.append(str(fp))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    assert _thumbnail_px(tmp_path / "quicklook.png") == ITEM_THUMB_PX != ANSWER_THUMB_PX
    with keep_thumbnails(_thumbnail_px):
        item = write_quicklook(raster, tmp_path / "quicklook.png", objects=objects, classes=["lake"])
        png = write_quicklook(raster, tmp_path / "q01.png", evidence=objects, title="Lakes?")
        other = write_quicklook(raster, tmp_path / "q02.png", title="Evidence")
        third = write_quicklook(raster, tmp_path / "q03.png", title="Third")
        item_memory = thumbnail_data_uri(item, ITEM_THUMB_PX)
        from_memory = thumbnail_data_uri(png, ANSWER_THUMB_PX)
        assert opened == []  # no decode
        # the other page: its file replaced since it was written -> the new file is decoded
        write_quicklook(raster, tmp_path / "x.png", title="Something else")
        (tmp_path / "x.png").replace(other)
        changed = thumbnail_data_uri(other, ANSWER_THUMB_PX)
        assert opened == [str(other)]
        thumbnail_data_uri(third, 300)  # a size not made ahead: decoded
        assert opened[-1] == str(third)
    assert quicklook._THUMBS is None  # dropped on exit
    # the references: the PNGs decoded
    assert from_memory == thumbnail_data_uri(png, ANSWER_THUMB_PX) and opened[-1] == str(png)
    assert item_memory == thumbnail_data_uri(item, ITEM_THUMB_PX) and opened[-1] == str(item)
    assert from_memory.startswith("data:image/jpeg;base64,") and from_memory != item_memory
    assert changed == thumbnail_data_uri(other, ANSWER_THUMB_PX)
    # outside keep_thumbnails nothing is made or kept
    write_quicklook(raster, tmp_path / "s.png", title="Later")
    assert quicklook._THUMBS is None and quicklook._take_thumbnail(tmp_path / "s.png", 480) is None


def test_gc_paused_restores_the_collector_as_it_was():
    """``gc_paused`` turns the cyclic collector off for its block only, and leaves it off
    after the block when it was off before."""
    import gc

    from georeason.geo.vector.scene import gc_paused
    from georeason.prefect_server import SERVE_WITHOUT_GC

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    # the server's process turns it back on (frozen survivors) before it serves
    lines = SERVE_WITHOUT_GC.splitlines()
    assert lines.index("gc.disable()") < lines.index("gc.enable()") < len(lines) - 1
    assert "uvicorn.run(" in lines[-1] and "create_app(ephemeral=True, final=True)" in SERVE_WITHOUT_GC


def test_prefect_in_memory_broker_is_the_structure_the_drain_reads(fresh_topics):
    """``_events_backlog`` reads private parts of Prefect's in-memory broker (each
    subscription's queues): a Prefect that changes them fails here, not silently."""
    from georeason.prefect_server import _events_backlog

    backlog = _events_backlog()
    assert backlog is not None and backlog() == 0


@pytest.fixture
def fresh_topics(monkeypatch):
    """Prefect's in-memory topics, empty for this test: an in-process server started
    earlier in this process (another test) leaves a subscription on ``events`` that no
    consumer reads (one of Prefect's services does not unsubscribe when it stops)."""
    from prefect.server.utilities.messaging.memory import Topic

    monkeypatch.setattr(Topic, "_topics", {})


def _with_subscription(body):
    """Run ``body(subscription, publish)`` on a fresh subscription of Prefect's in-memory
    ``events`` topic, in a new event loop; unsubscribe afterwards."""
    import asyncio

    from prefect.server.utilities.messaging.memory import MemoryMessage, Topic

    topic = Topic.by_name("events")

    async def main():
        sub = topic.subscribe()
        try:

            async def publish(n):
                for i in range(n):
                    await topic.publish(MemoryMessage(str(i).encode(), {"id": str(i)}))

            return await body(sub, publish)
        finally:
            topic.unsubscribe(sub)

    return asyncio.run(main())


def test_the_drain_waits_until_a_slow_consumer_took_every_event(fresh_topics):
    """Ten events, a consumer taking one every 20 ms: the drain returns 0 once all ten are
    taken (not before: the count taken is checked), well within its limit."""
    import asyncio
    import time

    from georeason.prefect_server import _events_taken

    async def body(sub, publish):
        taken = []

        async def consume():
            while True:
                taken.append(await sub.get())
                await asyncio.sleep(0.02)

        await publish(10)
        task = asyncio.create_task(consume())
        t0 = time.monotonic()
        left = await _events_taken(timeout_s=10.0, stall_s=1.0)
        waited = time.monotonic() - t0
        task.cancel()
        return left, len(taken), waited

    left, n_taken, waited = _with_subscription(body)
    assert (left, n_taken) == (0, 10)
    assert 0.1 < waited < 5.0, waited


def test_the_drain_stops_waiting_for_a_subscription_nobody_reads(fresh_topics):
    """Three events no consumer takes: the drain gives up after ``stall_s`` without
    progress and says how many are left."""
    import time

    from georeason.prefect_server import _events_taken

    async def body(sub, publish):
        await publish(3)
        t0 = time.monotonic()
        left = await _events_taken(timeout_s=10.0, stall_s=0.2)
        return left, time.monotonic() - t0

    left, waited = _with_subscription(body)
    assert left == 3
    assert 0.2 <= waited < 2.0, waited


def test_the_drain_runs_before_the_apps_own_shutdown(fresh_topics):
    """``drain_events_at_shutdown`` wraps the app's lifespan: at its shutdown the topic is
    drained first (a consumer still taking events), then the app's own shutdown runs (there,
    Prefect stops its services); startup is the app's own."""
    import asyncio
    import contextlib

    from fastapi import FastAPI
    from prefect.server.utilities.messaging.memory import MemoryMessage, Topic
    from starlette.testclient import TestClient

    from georeason.prefect_server import _events_backlog, drain_events_at_shutdown

    topic = Topic.by_name("events")
    seen: dict[str, object] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        sub = topic.subscribe()
        taken = []

        async def consume():
            while True:
                taken.append(await sub.get())
                await asyncio.sleep(0.02)

        task = asyncio.create_task(consume())
        for i in range(8):
            await topic.publish(MemoryMessage(str(i).encode(), {"id": str(i)}))
        seen["started"] = True
        try:
            yield
        finally:
            backlog = _events_backlog()
            assert backlog is not None
            seen["left at the app's shutdown"] = backlog()
            seen["taken"] = len(taken)
            task.cancel()
            topic.unsubscribe(sub)

    app = drain_events_at_shutdown(FastAPI(lifespan=lifespan))
    with TestClient(app):
        pass
    assert seen == {"started": True, "left at the app's shutdown": 0, "taken": 8}
