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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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


@dataclass
class RunConfig:
    """Everything a run needs; CLI flags override file values which override defaults."""

    catalog: Path | None = None  # None: the shipped data_catalog/
    questions: Path | None = None  # None: the catalog's questions.yaml
    out: Path = Path("outputs")
    grounder: str = "spectral"
    grounder_options: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    tile_px: int = 1024
    overlap_px: int = 128
    max_task_runs: int = 200  # tile batches per item: bounds orchestration overhead
    dask_address: str | None = None
    dask_workers: int | None = None
    results_dir: Path | None = None
    threads: int = 4

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> RunConfig:
        values: dict[str, Any] = {}
        if path is not None:
            import yaml

            try:
                values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read config file {str(path)!r}: {exc}") from exc
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
        names = {f.name for f in fields(cls)}
        for f in names:
            env = os.environ.get(f"GEOREASON_{f.upper()}")
            if env is not None and f not in ("grounder_options",):
                values[f] = env
        unknown = set(values) - names
        if unknown:
            raise InputError(
                f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        for name in ("catalog", "questions", "out", "results_dir"):
            v = getattr(cfg, name)
            if v is not None and not isinstance(v, Path):
                setattr(cfg, name, Path(v))
        for name in ("tile_px", "overlap_px", "max_task_runs", "threads"):
            setattr(cfg, name, int(getattr(cfg, name)))
        if cfg.dask_workers is not None:
            cfg.dask_workers = int(cfg.dask_workers)
        if cfg.tile_px <= 0 or not (0 <= cfg.overlap_px < cfg.tile_px):
            raise InputError(
                f"tile_px={cfg.tile_px}, overlap_px={cfg.overlap_px}: need 0 <= overlap_px < tile_px"
            )
        return cfg

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
