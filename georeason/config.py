"""Run configuration and questions files.

A questions file is YAML (a list of ``{question, item?}`` or of plain strings, or a mapping
with a ``questions`` list), JSONL (one ``{"question": ..., "item": ...}`` per line), or plain
text (one question per line; ``#`` starts a comment). A question without ``item`` is asked
of every catalog item.

Settings come from, in increasing priority: defaults here, a YAML file given with
``--config``, environment variables ``GEOREASON_*``, and CLI flags. The file's keys are the
fields of :class:`RunConfig`, plus a ``model`` section for the grounder::

    grounder: qwen2.5-vl          # or inside the model section
    tile_px: 1024
    model:
      model_path: /models/qwen2.5-vl-7b
      batch_size: 8
      max_new_tokens: 512
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from georeason.errors import InputError

__all__ = ["QuestionSpec", "RunConfig", "read_questions", "default_results_dir"]


@dataclass(frozen=True)
class QuestionSpec:
    """One question, optionally bound to one catalog item."""

    question: str
    item: str | None = None


def _spec(obj: Any, where: str) -> QuestionSpec:
    if isinstance(obj, str):
        return QuestionSpec(obj.strip())
    if isinstance(obj, dict) and isinstance(obj.get("question"), str):
        item = obj.get("item")
        return QuestionSpec(obj["question"].strip(), None if item is None else str(item))
    raise InputError(
        f"{where}: each question must be a string or a mapping with a 'question' string, got {obj!r}"
    )


def read_questions(path: str | Path) -> list[QuestionSpec]:
    """Read a YAML, JSONL or plain-text questions file (see module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read questions file {str(path)!r}: {exc}; check the path") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"questions file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8"
        ) from exc
    suffix = path.suffix.lower()
    specs: list[QuestionSpec] = []
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"questions file {str(path)!r} is not valid YAML: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("questions")
        if not isinstance(data, list):
            raise InputError(
                f"questions file {str(path)!r} must hold a list of questions (or a 'questions:' list)"
            )
        specs = [_spec(q, f"{path} entry {i + 1}") for i, q in enumerate(data)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("{"):
                try:
                    specs.append(_spec(json.loads(s), f"{path} line {n}"))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path} line {n} is not valid JSON: {exc}") from exc
            else:
                specs.append(QuestionSpec(s))
    if not specs:
        raise InputError(f"questions file {str(path)!r} has no questions")
    return specs


def default_results_dir(out: Path) -> Path:
    """Where Prefect task results (the tile cache) persist: ``$GEOREASON_RESULTS`` or ``OUT/.results``."""
    env = os.environ.get("GEOREASON_RESULTS")
    return Path(env).expanduser().resolve() if env else (Path(out) / ".results").resolve()


_SOURCES = ("default", "config file", "environment", "flag")


def _explain(exc: Any, sources: dict[str, str]) -> str:
    """One line per bad setting: key, where it came from, the value, the expected type."""
    parts = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ())) or ("settings",)
        key = ".".join(str(x) for x in loc)
        top = str(loc[0])
        where = sources.get(top, "default")
        if where == "environment":
            where = f"environment GEOREASON_{top.upper()}"
        value = err.get("input")
        msg = str(err.get("msg", "invalid")).replace("Input should be", "expected")
        msg = msg.removeprefix("Value error, ")
        if top == "settings":
            parts.append(msg)
        else:
            parts.append(f"setting {key}={value!r} (from {where}): {msg}")
    return "; ".join(parts)


class RunConfig(BaseModel):
    """Everything a run needs; CLI flags override environment over file values over defaults.

    Validated by pydantic: a wrong type or range (``tile_px: abc``,
    ``GEOREASON_TILE_PX=big``, ``threads: -3``) raises :class:`InputError` naming the key,
    where it came from, the value and the expected type.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True)

    catalog: Path | None = None  # None: the shipped data_catalog/
    questions: Path | None = None  # None: the catalog's questions.yaml
    out: Path = Path("outputs")
    grounder: str = "spectral"
    grounder_options: dict[str, Any] = Field(default_factory=dict)
    model_path: str | None = None
    tile_px: int = Field(1024, gt=0, le=1_000_000)
    overlap_px: int = Field(128, ge=0)
    max_task_runs: int = Field(200, gt=0)  # tile batches per item: bounds orchestration overhead
    dask_address: str | None = None
    dask_workers: int | None = Field(None, gt=0)
    results_dir: Path | None = None
    threads: int = Field(4, gt=0, le=1024)
    #: how tile batches are grounded: worker processes (default with more than one CPU),
    #: threads (for GIL-releasing model backends), or Dask (implied by dask_address/dask_workers)
    runner: Literal["process", "thread", "dask"] | None = None
    workers: int | None = Field(None, gt=0, le=1024)  # worker processes (default: one per CPU)

    @model_validator(mode="after")
    def _one_runner(self) -> RunConfig:
        if (self.dask_address or self.dask_workers) and self.runner in ("process", "thread"):
            raise ValueError(
                f"runner={self.runner} cannot be used with dask_address/dask_workers; "
                "give --runner dask, or drop the Dask settings"
            )
        return self

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> RunConfig:
        if not (0 <= self.overlap_px < self.tile_px):
            raise ValueError(
                f"tile_px={self.tile_px}, overlap_px={self.overlap_px}: need 0 <= overlap_px < tile_px"
            )
        return self

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> RunConfig:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        if path is not None:
            import yaml

            try:
                values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                msg = " ".join(str(exc).split())
                raise InputError(f"cannot read config file {str(path)!r}: {msg}") from exc
            if not isinstance(values, dict):
                raise InputError(f"config file {str(path)!r} must be a mapping of settings")
            model = values.pop("model", None)
            if model is not None:  # the model section: grounder name + its options
                if not isinstance(model, dict):
                    raise InputError(
                        f"config file {str(path)!r}: 'model' must be a mapping (grounder, model_path, ...)"
                    )
                model = dict(model)
                if "grounder" in model:
                    values["grounder"] = model.pop("grounder")
                if "model_path" in model:
                    values["model_path"] = model.pop("model_path")
                values["grounder_options"] = {**(values.get("grounder_options") or {}), **model}
            sources.update({str(k): "config file" for k in values})
        names = set(cls.model_fields)
        for f in names:
            env = os.environ.get(f"GEOREASON_{f.upper()}")
            if env is not None and f not in ("grounder_options",):
                values[f] = env
                sources[f] = "environment"
        unknown = {str(k) for k in values} - names
        if unknown:
            raise InputError(
                f"unknown setting(s) {', '.join(sorted(unknown))}"
                + (f" in config file {str(path)!r}" if path is not None else "")
                + f"; known: {', '.join(sorted(names))}"
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        sources.update({k: "flag" for k in given})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise InputError(_explain(exc, sources)) from None

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.model_dump().items()}
