"""Scheduled deployments of the ``batch`` flow against a local Prefect server.

Two ways, both documented in the README:

- ``georeason serve --cron "0 2 * * *"``: :func:`serve` — a long-running process that
  both schedules and runs (``flow.serve``); simplest on one machine;
- ``prefect deploy --all`` with ``prefect.yaml`` (a *process* work pool) and
  ``prefect worker start --pool georeason-process``: runs survive the deploying shell.
"""

from __future__ import annotations

from typing import Any

from georeason.flows.answer import batch

__all__ = ["DEFAULT_CRON", "deployment", "serve"]

DEFAULT_CRON = "0 2 * * *"  # every night at 02:00 (timezone of the schedule: UTC)


def _parameters(catalog: str | None, questions: str | None, out: str, grounder: str) -> dict[str, Any]:
    params: dict[str, Any] = {"out": out, "grounder": grounder}
    if catalog:
        params["catalog"] = catalog
    if questions:
        params["questions"] = questions
    return params


def deployment(
    name: str = "georeason-nightly",
    cron: str = DEFAULT_CRON,
    catalog: str | None = None,
    questions: str | None = None,
    out: str = "outputs/batch",
    grounder: str = "spectral",
):
    """The batch flow as a deployment object with a cron schedule (not yet applied)."""
    return batch.to_deployment(
        name=name,
        cron=cron,
        parameters=_parameters(catalog, questions, out, grounder),
        tags=["georeason"],
        description="catalog items x questions, on a schedule",
    )


def serve(
    name: str = "georeason-nightly",
    cron: str = DEFAULT_CRON,
    catalog: str | None = None,
    questions: str | None = None,
    out: str = "outputs/batch",
    grounder: str = "spectral",
) -> None:
    """Register the scheduled deployment and run its flow runs in this process (blocks)."""
    batch.serve(
        name=name,
        cron=cron,
        parameters=_parameters(catalog, questions, out, grounder),
        tags=["georeason"],
        description="catalog items x questions, on a schedule",
    )
