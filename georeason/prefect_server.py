"""The Prefect API a run talks to: a started server when one is configured, else a
temporary one on loopback, started early so that it boots while the run gets ready.

``georeason run`` needs a Prefect API. When ``PREFECT_API_URL`` is set (environment or
the active Prefect profile), that server is used, and the run, its task runs and its
artifacts appear in its UI: no temporary server is started. Otherwise Prefect would start
a temporary server itself when the flow begins — after georeason imported Prefect,
checked every input and read the catalog, with Prefect's own server stack imported into
this process just to launch it — and the run waits for its whole boot (importing the
server, migrating its SQLite database) before any work.

:class:`TemporaryServer` (the default, :func:`temporary_server`) starts the same server
(``uvicorn`` on Prefect's ``create_app``, UI off, 127.0.0.1 only, Prefect's database under
``PREFECT_HOME``) *first*, as a subprocess, without importing Prefect here.
:class:`InProcessServer` (``GEOREASON_PREFECT_SERVER=thread``) runs it in a thread of the
run's process instead: Prefect is imported once for the server and the flow (~70 MB less
PSS at the 8000^2 run's peak), but the server's boot and requests then share the run's GIL;
on an otherwise idle 2-core machine the subprocess, which has the other core to itself,
finished sooner (8000^2: 1.1x the wall for the thread at the same CPU, RESULTS.md "Re-run
11"; sample 1.08x in "Quiet-machine re-run 5"), so it stays the default. Either way the command
line imports, checks inputs and reads the catalog while it boots, waits for it only when
the flow starts, and stops it when the run ends. Importing this module imports neither
Prefect nor its server: only the standard library. When it stops, the server first lets
its event consumers take every event the run published (:func:`drain_events_at_shutdown`):
stopping Prefect's services drops what they have not taken, and a run's last events, its
``Completed`` among them, were lost that way when the event persister's writes were slow.

What the temporary server does not run (:data:`TEMPORARY_SERVER_SETTINGS`): it lives only
as long as one run, so the services a long-lived server needs are off: automations
(triggers and their actions: a reaction to this run's events belongs on a started server)
and, on all but one run a day, the events vacuum. That vacuum deletes events older than
Prefect's events retention (``PREFECT_SERVER_EVENTS_RETENTION_PERIOD``, 7 days) from
``PREFECT_HOME``'s database; with temporary servers only, nothing else ever does, and
every sample run adds ~1 MB of events (half of it the quicklook artifact's collection
event, which carries the artifact's data). So the first temporary server of each day
(:func:`events_vacuum_due`: the stamp file :data:`VACUUM_STAMP` in ``PREFECT_HOME`` is
missing or older than :data:`VACUUM_EVERY_S`) runs it, in its background, while the run
works. Nor does it register Prefect's block types in the database at start (nor hash
every installed collection's blocks to find it need not: ~0.5 CPU-s and ~22 MB, importing
dask through prefect-dask): no part of a run uses blocks, and ``prefect server start``
registers them at its own start. Its process starts with Python's garbage collector paused
while Prefect's server is imported (:data:`SERVE_WITHOUT_GC`: ~0.5 CPU-s less). What the
UI shows is kept: the flow run, its task runs (the task run
recorder and the event persister), logs and artifacts. Once its health check answers, a
thread sends it one API request (:meth:`TemporaryServer.start`): the first request makes
FastAPI build its route table (~0.5 s), which then happens while the run still gets
ready instead of in the flow's first API call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from georeason.errors import GeoreasonError, InputError

__all__ = [
    "TemporaryServer",
    "InProcessServer",
    "temporary_server",
    "SERVER_MODE_ENV",
    "configured_api_url",
    "check_api_url",
    "STARTUP_TIMEOUT_S",
    "TEMPORARY_SERVER_SETTINGS",
    "VACUUM_STAMP",
    "VACUUM_EVERY_S",
    "events_vacuum_due",
    "server_settings",
    "prefect_home",
    "import_concurrently",
]

#: Seconds to wait for the temporary server's health check (SQLite migrations on a busy
#: machine can take a while).
STARTUP_TIMEOUT_S = 180.0

#: Prefect settings of the temporary server (environment of its process; the user's own
#: environment wins for each): services a server that lives for one run does not need.
TEMPORARY_SERVER_SETTINGS: dict[str, str] = {
    # automations: evaluated on every event; a started server runs them
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    # the event vacuum trims old events of PREFECT_HOME's database at each start (a scan
    # that grows with the database); "flow_runs"/"orphans" vacuums do not run in an
    # ephemeral server, so naming one of them turns the events vacuum off
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "orphans",
    # block types and schemas are written to the database by the first server that boots
    # on it (`prefect server start` does so at its own start), and nothing of a run needs
    # them; with registration off, Prefect still "memoizes" it at every start, importing
    # every installed Prefect collection (prefect-dask, and with it dask: ~0.5 CPU-s and
    # ~22 MB PSS of the server) only to hash their blocks, unless the memo is off too
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}

#: The stamp file in ``PREFECT_HOME`` whose age says when a temporary server last ran the
#: events vacuum.
VACUUM_STAMP = "georeason-events-vacuum.stamp"

#: Seconds between two runs of the events vacuum by temporary servers (one day).
VACUUM_EVERY_S = 86400.0


def prefect_home() -> Path:
    """``PREFECT_HOME`` (environment, else Prefect's default ``~/.prefect``)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def events_vacuum_due(home: Path | None = None, now: float | None = None) -> bool:
    """Whether a temporary server should run the events vacuum now: the stamp
    :data:`VACUUM_STAMP` in ``home`` (default :func:`prefect_home`) is missing or older than
    :data:`VACUUM_EVERY_S`."""
    stamp = (home or prefect_home()) / VACUUM_STAMP
    try:
        age = (time.time() if now is None else now) - stamp.stat().st_mtime
    except OSError:
        return True
    return age >= VACUUM_EVERY_S or age < 0


def server_settings(vacuum: bool) -> dict[str, str]:
    """The temporary server's Prefect settings the user's environment does not set:
    :data:`TEMPORARY_SERVER_SETTINGS`, no analytics, and with ``vacuum`` Prefect's default
    events vacuum instead of none."""
    settings = {**TEMPORARY_SERVER_SETTINGS, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if vacuum:
        settings["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"] = "events"
    return {k: v for k, v in settings.items() if k not in os.environ}


def _claim_vacuum() -> bool:
    """Whether this temporary server runs the events vacuum (:func:`events_vacuum_due`);
    when it does, the stamp is renewed now (a run that ends before the vacuum is done
    leaves the rest to the next day's: what it deletes is only ever older than the
    retention)."""
    if not events_vacuum_due():
        return False
    stamp = prefect_home() / VACUUM_STAMP
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        return False  # a home we cannot write to: no vacuum rather than one on every run
    return True


#: The request that warms a fresh server (any API route builds FastAPI's route table).
WARM_PATH = "/admin/version"


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment, else from the active Prefect profile
    (``PREFECT_PROFILES_PATH``, else ``PREFECT_HOME/profiles.toml``), else ``None``.

    When Prefect is already imported (a test harness, an embedding program), its current
    setting is the answer instead.
    """
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    profile = (data.get("profiles") or {}).get(active) or {}
    value = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(value) if value else None


def _health(api_url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_api_url(api_url: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`~georeason.errors.InputError` (exit 2) when the configured Prefect
    server does not answer its health check, naming the URL and the fix."""
    if not _health(api_url, timeout_s):
        raise InputError(
            f"PREFECT_API_URL={api_url} does not answer (GET {api_url.rstrip('/')}/health): start the server "
            "(PREFECT_SERVER_ANALYTICS_ENABLED=false prefect server start) or unset PREFECT_API_URL to use "
            "a temporary one"
        )


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` for the server process (Linux): SIGTERM when the thread that started
    it dies (``PR_SET_PDEATHSIG``), even by SIGKILL, so that a killed run leaves no server
    behind. libc is looked up here, in the parent: the child only calls ``prctl``."""
    if sys.platform != "linux":
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)

    def hook() -> None:
        prctl(1, term)  # PR_SET_PDEATHSIG

    return hook


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _warm_request(api_url: str) -> None:
    """Send a fresh server its first API request (:data:`WARM_PATH`: it builds FastAPI's
    route table); a failure is left to the health checks."""
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
        with urllib.request.urlopen(f"{api_url}{WARM_PATH}", timeout=30) as resp:
            resp.read()


#: Seconds a stopping temporary server gives Prefect's in-memory ``events`` topic to be
#: taken by its consumers (:func:`drain_events_at_shutdown`).
EVENTS_DRAIN_S = 30.0

#: Seconds without progress after which that wait ends early (a subscription no consumer
#: reads would otherwise hold the stop for the whole :data:`EVENTS_DRAIN_S`). Long enough
#: for one slow batch write of the event persister, which holds its consumers meanwhile.
EVENTS_STALL_S = 10.0

#: Seconds :meth:`TemporaryServer.stop` and :meth:`InProcessServer.stop` wait for the
#: server to end (the events drained, its services stopped, the event persister's last
#: write) before they end it by force, with a warning; ~0.2 s on an idle machine.
STOP_TIMEOUT_S = 60.0


def _events_backlog() -> Callable[[], int] | None:
    """A function counting the messages waiting in Prefect's in-memory ``events`` topic
    (every subscription's queue and retry queue), or ``None`` when that broker's
    structure is not the one this was written against (Prefect 3.9's
    ``prefect.server.utilities.messaging.memory``: a test pins it) or another broker is
    configured (its queues outlive the server; nothing to wait for)."""
    try:
        from prefect.server.utilities.messaging import memory
        from prefect.settings import get_current_settings

        if get_current_settings().server.events.messaging_broker != memory.__name__:
            return None
        topic = memory.Topic.by_name("events")

        def backlog() -> int:
            return sum(s._queue.qsize() + s._retry.qsize() for s in list(topic._subscriptions))

        backlog()
    except Exception:  # noqa: BLE001 - an unknown structure: stop as Prefect would
        return None
    return backlog


async def _events_taken(timeout_s: float = EVENTS_DRAIN_S, stall_s: float = EVENTS_STALL_S) -> int:
    """Wait until Prefect's in-memory ``events`` topic is empty (at most ``timeout_s``, or
    ``stall_s`` without one message taken); return the messages still waiting."""
    import asyncio

    backlog = _events_backlog()
    if backlog is None:
        return 0
    deadline = time.monotonic() + timeout_s
    left, progress = backlog(), time.monotonic()
    while left and time.monotonic() < deadline and time.monotonic() - progress < stall_s:
        await asyncio.sleep(0.02)
        now = backlog()
        if now < left:
            progress = time.monotonic()
        left = now
    return left


def drain_events_at_shutdown(app: Any) -> Any:
    """Make Prefect's server app, when it shuts down, first let its event consumers take
    every event already published, then stop its services (returns ``app``).

    Prefect's in-memory broker holds each published event in a queue per subscriber
    until the subscriber's consumer takes it; stopping the services cancels the
    consumers and drops what they have not taken. The event persister takes events one
    by one and writes them in batches, so when its writes are slow (a busy disk) the
    run's last events, its ``Completed`` among them, can still be waiting when a
    temporary server stops at the end of the run, and were lost (the run's state, task
    runs, logs and artifacts were all written: only the event feed missed them). What
    the persister has taken it writes as it stops. The wait is bounded
    (:data:`EVENTS_DRAIN_S`, :data:`EVENTS_STALL_S`) and ~0 s when nothing waits.
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> Any:
        async with inner(application) as state:
            try:
                yield state
            finally:
                left = await _events_taken()
                if left:
                    sys.stderr.write(
                        f"georeason: the temporary Prefect server stopped with {left} event(s) "
                        "not yet recorded; the run's records are otherwise complete\n"
                    )

    app.router.lifespan_context = lifespan
    return app


def _warn_forced(timeout_s: float) -> None:
    sys.stderr.write(
        f"georeason: the temporary Prefect server did not stop within {timeout_s:.0f} s and was "
        "ended: the run's last events or logs may be missing from its records\n"
    )


class _LoopbackServer:
    """What the two temporary servers share: the port on 127.0.0.1, the API URL on it, and
    the event set once the server answered its warm-up request (or stopped trying)."""

    port: int
    _warmed: threading.Event

    @property
    def warmed(self) -> bool:
        """Whether the server has answered (and had its warm-up request), or stopped trying."""
        return self._warmed.is_set()

    @property
    def api_url(self) -> str:
        """The server's API URL (``http://127.0.0.1:PORT/api``)."""
        return f"http://127.0.0.1:{self.port}/api"


#: The temporary server's process (``python -c``; argv: Prefect's folder, the port):
#: uvicorn serving Prefect's ``create_app`` on 127.0.0.1, as ``python -m uvicorn --factory``
#: would, but with Python's cyclic garbage collector paused while Prefect's server is
#: imported and its app built (~2.9 CPU-s of allocations that are almost all kept: the
#: collector's passes over them are ~0.5 CPU-s of waste), then one collection, the
#: survivors frozen (never scanned again while the server serves) and the collector back on.
#: uvicorn exits with 3 when the port is taken, as from its command line.
SERVE_WITHOUT_GC = """\
import gc, sys
gc.disable()
sys.path.insert(0, sys.argv[1])
import uvicorn
from prefect.server.api.server import create_app
from georeason.prefect_server import drain_events_at_shutdown
app = drain_events_at_shutdown(create_app(ephemeral=True, final=True))
gc.collect()
gc.freeze()
gc.enable()
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error", lifespan="on")
"""


class TemporaryServer(_LoopbackServer):
    """A temporary Prefect API server on 127.0.0.1 in a subprocess (a context manager).

    :meth:`start` returns at once; :meth:`wait_ready` blocks until the health check
    answers; :meth:`stop` ends it. Its API URL is :attr:`api_url`. On Linux the server
    also ends when the thread that started it ends (call :meth:`start` from the thread
    that lives for the run: ``georeason run`` uses its main thread). ``warm``: a thread
    polls the health check from the start and sends the first API request as soon as it
    answers (:attr:`warmed` is then true). ``gc_pause``: start it with
    :data:`SERVE_WITHOUT_GC` (the default), else with ``python -m uvicorn --factory``
    (the same app and settings; kept for A/B measurements).
    """

    def __init__(self, port: int | None = None, warm: bool = True, gc_pause: bool = True) -> None:
        self.port = port or _free_port()
        self.warm = warm
        self.gc_pause = gc_pause
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._warm: threading.Thread | None = None
        self._warmed = threading.Event()

    @staticmethod
    def environment(vacuum: bool = False) -> dict[str, str]:
        """The server process's environment: this one's, UI off, no analytics, no
        ``PREFECT_API_URL``, and :func:`server_settings` where it sets none."""
        env = {
            **server_settings(vacuum),
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
            "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "1"),
        }
        env.pop("PREFECT_API_URL", None)
        return env

    def start(self) -> TemporaryServer:
        """Start the server process (returns at once)."""
        spec = importlib.util.find_spec("prefect")
        if spec is None or not spec.submodule_search_locations:
            raise GeoreasonError("prefect is not installed: pip install -e . (it is a dependency)")
        app_dir = str(Path(next(iter(spec.submodule_search_locations))).parent)
        env = self.environment(vacuum=_claim_vacuum())
        command = (
            [sys.executable, "-c", SERVE_WITHOUT_GC, app_dir, str(self.port)]
            if self.gc_pause
            else [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                app_dir,
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ]
        )
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent_hook(),
        )
        # the process is started by the calling thread (it dies with that thread); only
        # the health polling and the warm-up request run in the background
        self._warmed.clear()
        if not self.warm:
            self._warmed.set()
            return self
        self._warm = threading.Thread(
            target=self._warm_up, args=(self.process, self.api_url), name="georeason-server-warm", daemon=True
        )
        self._warm.start()
        return self

    def _warm_up(self, proc: subprocess.Popen[bytes], api_url: str) -> None:
        """Poll the health check until it answers, then send one API request (the first
        one builds the server's route table); set :attr:`_warmed` either way, when the
        process ends or after :data:`STARTUP_TIMEOUT_S`."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if _health(api_url, 1.0):
                    _warm_request(api_url)
                    return
                time.sleep(0.05)
        finally:
            self._warmed.set()

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """Block until the server answers its health check; return its API URL.

        Raises
        ------
        GeoreasonError
            When the process exits or does not answer within ``timeout_s``.
        """
        if self._ready:
            return self.api_url
        if self.process is None:
            self.start()
        deadline = time.monotonic() + timeout_s
        # the warm-up thread's health poll and first request, when it is still at them
        self._warmed.wait(timeout=max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code == 3:  # uvicorn: the port was taken meanwhile; try another
                self.port = _free_port()
                self.start()
                continue
            if code is not None:
                raise GeoreasonError(
                    f"the temporary Prefect server exited with code {code} before answering; "
                    "run `prefect server start` yourself and set PREFECT_API_URL"
                )
            if _health(self.api_url, 1.0):
                self._ready = True
                return self.api_url
            time.sleep(0.05)
        self.stop()
        raise GeoreasonError(
            f"the temporary Prefect server did not answer within {timeout_s:.0f} s; "
            "run `prefect server start` yourself and set PREFECT_API_URL"
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server: SIGTERM (uvicorn shuts down: the events drained, Prefect's
        services stopped, the event persister's last write), then SIGKILL after
        ``timeout_s``, with a warning."""
        proc, self.process = self.process, None
        self._ready = False
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            _warn_forced(timeout_s)

    def __enter__(self) -> TemporaryServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


#: Environment variable choosing where ``georeason run``'s temporary server runs:
#: ``process`` (default: :class:`TemporaryServer`) or ``thread`` (:class:`InProcessServer`).
SERVER_MODE_ENV = "GEOREASON_PREFECT_SERVER"


def import_concurrently(*names: str, tries: int = 5) -> None:
    """Import modules while another thread may be importing some of the same ones.

    Python's per-module import locks let two threads import at once; when each holds a
    module the other one needs (a circular import reached from both sides), one of them
    gets ``_DeadlockError`` instead of waiting. That import is then retried once the
    other thread had time to finish (the run's main thread and the temporary server's
    thread both import Prefect's dependencies)."""
    import importlib

    for name in names:
        for attempt in range(tries):
            try:
                importlib.import_module(name)
                break
            except RuntimeError as exc:
                if type(exc).__name__ != "_DeadlockError" or attempt == tries - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))


def _bound_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free loopback port (uvicorn serves on it:
    no window in which another program could take the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(False)
    return sock


class InProcessServer(_LoopbackServer):
    """The temporary Prefect API server inside this process: uvicorn serving Prefect's
    ``create_app(ephemeral=True, final=True)`` on 127.0.0.1 from a daemon thread with its
    own event loop (a context manager, the interface of :class:`TemporaryServer`).

    It shares the interpreter with the run: ``prefect``, pydantic and the rest are
    imported once, not again in a second process. Its imports start in its thread at
    :meth:`start` and overlap what the calling thread does meanwhile. What differs from
    the subprocess, and how:

    - settings only the server should see (:func:`server_settings`, the user's
      environment winning for each) are a Prefect settings context entered in the
      server's thread only: the run's own Prefect client never sees them, and no
      environment variable is set for the run or its worker processes;
    - uvicorn installs no signal handlers off the main thread (``Server.capture_signals``):
      Ctrl-C reaches the run as before, and the server ends with the process;
    - logging is left as the run configured it (``log_config=None``; uvicorn's own
      loggers at ``error``, as the subprocess's ``--log-level error``);
    - :meth:`stop` asks uvicorn to exit and waits for its lifespan shutdown: Prefect's
      services stop, and the event persister writes what it holds, before it returns.
    """

    def __init__(self, warm: bool = True) -> None:
        self.warm = warm
        self._sock: socket.socket | None = None
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: object | None = None  # uvicorn.Server, once built in the thread
        self._error: BaseException | None = None
        self._started = threading.Event()  # serving, or failed
        self._warmed = threading.Event()
        self._ready = False
        self._settings: dict[str, str] = {}

    def start(self) -> InProcessServer:
        """Bind the port and start the server's thread (returns at once)."""
        if self._thread is not None:
            return self
        if importlib.util.find_spec("prefect") is None:
            raise GeoreasonError("prefect is not installed: pip install -e . (it is a dependency)")
        self._sock = _bound_socket()
        self.port = int(self._sock.getsockname()[1])
        self._settings = server_settings(vacuum=_claim_vacuum())
        self._thread = threading.Thread(target=self._serve, name="georeason-prefect-server", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        import asyncio

        try:
            import_concurrently("prefect.settings", "uvicorn", "prefect.server.api.server")
            import prefect.settings
            import uvicorn
            from prefect.server.api.server import create_app
            from prefect.settings import temporary_settings

            updates = {getattr(prefect.settings, k): v for k, v in self._settings.items()}
            with temporary_settings(updates=updates):
                app = drain_events_at_shutdown(create_app(ephemeral=True, final=True))
                config = uvicorn.Config(
                    app,
                    log_config=None,
                    log_level="error",
                    lifespan="on",
                    access_log=False,
                )
                server = uvicorn.Server(config)
                self._server = server
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                watcher = threading.Thread(
                    target=self._watch, args=(server,), name="georeason-server-warm", daemon=True
                )
                watcher.start()
                try:
                    assert self._sock is not None
                    loop.run_until_complete(server.serve(sockets=[self._sock]))
                finally:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()
        except BaseException as exc:  # noqa: BLE001 - reported by wait_ready
            self._error = exc
        finally:
            self._started.set()
            self._warmed.set()
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()

    def _watch(self, server: object) -> None:
        """Wait until uvicorn serves (lifespan startup done), then send the warm-up request."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while not getattr(server, "started", False) and time.monotonic() < deadline:
                if self._error is not None or getattr(server, "should_exit", False):
                    return
                time.sleep(0.02)
            self._started.set()
            if self.warm:
                _warm_request(self.api_url)
        finally:
            self._warmed.set()

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """Block until the server serves; return its API URL.

        Raises
        ------
        GeoreasonError
            When the server fails to start or does not serve within ``timeout_s``.
        """
        if self._ready:
            return self.api_url
        if self._thread is None:
            self.start()
        deadline = time.monotonic() + timeout_s
        self._warmed.wait(timeout=max(0.0, deadline - time.monotonic()))
        self._started.wait(timeout=max(0.0, deadline - time.monotonic()))
        if self._error is not None:
            raise GeoreasonError(
                f"the temporary Prefect server failed to start ({type(self._error).__name__}: {self._error}); "
                "run `prefect server start` yourself and set PREFECT_API_URL"
            ) from self._error
        if not getattr(self._server, "started", False):
            self.stop()
            raise GeoreasonError(
                f"the temporary Prefect server did not answer within {timeout_s:.0f} s; "
                "run `prefect server start` yourself and set PREFECT_API_URL"
            )
        self._ready = True
        return self.api_url

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server: uvicorn exits (the events drained, Prefect's services stopped,
        the event persister's last write); after ``timeout_s`` it is made to exit at once
        (no lifespan shutdown), with a warning."""
        thread, self._thread = self._thread, None
        self._ready = False
        if thread is None:
            return
        server = self._server
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=timeout_s)
        if thread.is_alive() and server is not None:
            server.force_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=2.0)
            _warn_forced(timeout_s)

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def temporary_server() -> TemporaryServer | InProcessServer:
    """The temporary server ``georeason run`` starts when no Prefect API is configured:
    a subprocess (:class:`TemporaryServer`) unless ``GEOREASON_PREFECT_SERVER=thread`` asks
    for one in this process (:class:`InProcessServer`); not started yet."""
    mode = os.environ.get(SERVER_MODE_ENV, "process").strip().lower() or "process"
    if mode not in ("thread", "process"):
        raise InputError(
            f"{SERVER_MODE_ENV}={mode!r} is not a server mode: use thread or process (or unset it)"
        )
    return InProcessServer() if mode == "thread" else TemporaryServer()
