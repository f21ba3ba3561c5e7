"""Flow-run heartbeats that stop the moment the flow's work ends.

A flow run sends ``prefect.flow-run.heartbeat`` events every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (180 by default) so that a long-lived server
can tell a crashed run from a slow one (an automation that expects them). Prefect's engine
sends them from a thread that sleeps one second at a time, and joins that thread when the
flow ends: every run of ``georeason run`` against a started server ended 0-1 s late
(0.65 s between its last task and its final state on the 8000^2 scene; a temporary server
has no heartbeats at all, so 0.02 s there).

:func:`own_heartbeats` (``georeason run``, around the flow call) turns the engine's off and
hands their frequency to :func:`flow_run_heartbeats`, which the ``answer`` flow enters
around its work: the same event (resource, related flow and tags, as Prefect's engine
builds them), the first at once and then every period, from a thread that waits on an
event and so ends the moment the work does. A flow run started any other way (a
deployment, ``prefect`` itself) keeps Prefect's own heartbeats: the context variable is
unset there.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["HEARTBEAT_EVERY", "own_heartbeats", "flow_run_heartbeats", "heartbeat_event"]

#: Seconds between the heartbeats :func:`flow_run_heartbeats` sends (``None``: it sends none).
HEARTBEAT_EVERY: ContextVar[float | None] = ContextVar("georeason_heartbeat_every", default=None)

#: The event Prefect's engine sends for a running flow.
EVENT = "prefect.flow-run.heartbeat"


@contextlib.contextmanager
def own_heartbeats() -> Iterator[float | None]:
    """Within: Prefect's engine sends no flow-run heartbeats, and :func:`flow_run_heartbeats`
    sends them at the configured frequency instead (yields it; ``None`` when heartbeats are
    off, e.g. against a temporary server)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    every = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
    if not every:
        yield None
        return
    token = HEARTBEAT_EVERY.set(float(every))
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield float(every)
    finally:
        HEARTBEAT_EVERY.reset(token)


def heartbeat_event(flow_run: Any, flow_name: str) -> tuple[dict[str, str], list[Any]]:
    """The heartbeat's resource and related resources for ``flow_run``, as Prefect's flow
    engine builds them (the flow run; its flow, its deployment and its tags as related)."""
    from prefect import __version__
    from prefect.events.related import RelatedResource, tags_as_related_resources

    resource = {
        "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
        "prefect.resource.name": flow_run.name or "",
        "prefect.version": __version__,
    }
    related: list[Any] = []
    if flow_run.flow_id:
        related.append(
            RelatedResource.model_validate(
                {
                    "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": flow_name,
                }
            )
        )
    if flow_run.deployment_id:
        related.append(
            RelatedResource.model_validate(
                {
                    "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                    "prefect.resource.role": "deployment",
                }
            )
        )
    related += tags_as_related_resources(set(flow_run.tags or []))
    return resource, related


@contextlib.contextmanager
def flow_run_heartbeats() -> Iterator[None]:
    """Within a flow run: a heartbeat at once and then every :data:`HEARTBEAT_EVERY`
    seconds until the block ends (at once: the thread waits on an event, not a sleep).
    Nothing when :func:`own_heartbeats` did not ask for them."""
    every = HEARTBEAT_EVERY.get()
    if not every:
        yield
        return
    from prefect.context import FlowRunContext
    from prefect.events import emit_event

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        yield
        return
    resource, related = heartbeat_event(ctx.flow_run, ctx.flow.name if ctx.flow else "")
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # as Prefect's: a lost heartbeat is not an error
                emit_event(event=EVENT, resource=resource, related=related)
            if stop.wait(every):
                return

    # the flow run's context (its settings: the API the events go to)
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(beat,), name="georeason-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
