"""Checks done before any heavy work: inputs exist and parse, outputs never land on inputs.

``georeason run`` calls :func:`preflight_run` before it starts Prefect, and ``georeason
ask`` calls :func:`check_outputs` before it reads a tile: every user mistake found here is
one :class:`~georeason.errors.InputError` (or :class:`~georeason.errors.CatalogError`,
:class:`~georeason.errors.ModelNotFoundError`) naming the input, which the CLI prints on
one line with exit status 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from georeason.errors import CatalogError, InputError, ModelNotFoundError

__all__ = [
    "RunPlan",
    "preflight_run",
    "check_outputs",
    "check_grounder_ready",
    "check_items",
    "run_outputs",
]


@dataclass(frozen=True)
class RunPlan:
    """What :func:`preflight_run` found: the items to run and the questions file read."""

    items: tuple[Any, ...]  # ItemInfo
    questions: Path
    inputs: tuple[Path, ...]


def _real(p: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(Path(p).expanduser()))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_outputs(
    outputs: Iterable[tuple[str, str | os.PathLike[str]]], inputs: Iterable[str | os.PathLike[str]]
) -> None:
    """Refuse any output that resolves (symlinks followed) to an input, or a folder holding one.

    ``outputs`` are ``(flag, path)`` pairs; a path ending in ``/`` or an existing folder
    is an output *folder*: an input inside it is refused too (the run writes there).

    Raises
    ------
    InputError
        Naming the flag, the output and the input it would overwrite.
    """
    ins = [(Path(i), _real(i)) for i in inputs if i is not None]
    for flag, out in outputs:
        if out is None:
            continue
        o = _real(out)
        for given, real in ins:
            if o == real:
                raise InputError(
                    f"{flag} {str(out)!r} is the input {str(given)!r}; writing there would destroy it. "
                    "Choose another output path"
                )


def check_output_folder(
    flag: str,
    folder: str | os.PathLike[str],
    written: Iterable[Path],
    inputs: Iterable[str | os.PathLike[str]],
) -> None:
    """Refuse an output folder when a file the run writes (``written``: paths or folders
    inside it) is, or contains, an input."""
    fold = _real(folder)
    for i in inputs:
        real = _real(i)
        if real == fold:
            raise InputError(f"{flag} {str(folder)!r} is the input {str(i)!r}; choose another output folder")
        for w in written:
            wr = _real(w)
            if real == wr or _inside(real, wr):
                raise InputError(
                    f"{flag} {str(folder)!r}: the run would write {str(w)!r}, which holds the input {str(i)!r}; "
                    "choose another output folder"
                )


def run_outputs(out: Path, item_ids: Sequence[str]) -> list[Path]:
    """Files and folders a run writes under ``out`` (see :mod:`georeason.flows.answer`)."""
    paths = [out / "answers.jsonl", out / "manifest.json", out / ".georeason.lock"]
    paths += [out / i for i in item_ids]
    return paths


def check_items(wanted: Sequence[str] | None, infos: Sequence[Any], catalog: str | os.PathLike[str]) -> None:
    """Every ``--item`` names a catalog item (else :class:`CatalogError` listing them)."""
    known = [i.id for i in infos]
    unknown = [w for w in wanted or () if w not in known]
    if unknown:
        raise CatalogError(
            f"no item {', '.join(repr(u) for u in unknown)} in catalog {str(catalog)!r}; "
            f"valid items: {', '.join(known) or '(none)'}"
        )


def check_grounder_ready(name: str, options: dict[str, Any]) -> None:
    """The grounder exists and its weights / outputs file are there (nothing loaded, no tile read).

    Raises
    ------
    InputError
        Unknown grounder; a recorded grounder without its outputs file.
    ModelNotFoundError
        A transformers grounder whose weights are neither a folder nor in the local cache
        (names what was tried).
    """
    from georeason.models.registry import available

    names = available()
    if name not in names:
        raise InputError(f"unknown grounder {name!r}; available: {', '.join(names)}")
    if name == "recorded":
        outputs = options.get("outputs")
        if not outputs:
            raise InputError("the recorded grounder needs the outputs file: --outputs FILE")
        if not Path(str(outputs)).expanduser().is_file():
            raise InputError(f"recorded outputs file {str(outputs)!r} does not exist; check --outputs")
        return
    try:
        from georeason.models.backends.hf import DEFAULT_MODELS, resolve_model_path
    except ImportError:
        return
    if name not in DEFAULT_MODELS:
        return
    ref = str(options.get("model_path") or DEFAULT_MODELS[name])
    try:
        resolve_model_path(
            ref, backend=name, cache_dir=options.get("cache_dir"), revision=options.get("revision")
        )
    except ModelNotFoundError:
        raise
    if options.get("sam_model_path"):
        resolve_model_path(
            str(options["sam_model_path"]), backend="sam", cache_dir=options.get("sam_cache_dir")
        )


_ITEM_DIR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def preflight_run(
    catalog: str | os.PathLike[str] | None,
    questions: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    items: Sequence[str] | None,
    objects: Sequence[str | os.PathLike[str]],
    grounder: str,
    options: dict[str, Any],
    policy: Any = None,
    results_dir: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
) -> RunPlan:
    """Everything ``georeason run`` can check before it starts a flow.

    The catalog opens (confined), ``--item`` names exist, the questions file reads and
    names only catalog items, ``--objects`` files exist, the grounder is ready (weights
    found), and no output (``OUT/answers.jsonl``, ``OUT/<item>/``, the results cache)
    is or holds an input.
    """
    from georeason.catalog import CATALOG_FILE, default_catalog_dir, list_items
    from georeason.config import read_questions

    cat_dir = Path(catalog) if catalog is not None else default_catalog_dir()
    if not (cat_dir / CATALOG_FILE).is_file() and not (cat_dir.name == CATALOG_FILE and cat_dir.is_file()):
        raise CatalogError(
            f"no STAC catalog at {str(cat_dir)!r} ({CATALOG_FILE} not found); check --catalog "
            "or create one with `georeason catalog add RASTER --catalog DIR`"
        )
    infos = list_items(cat_dir, policy)
    check_items(items, infos, cat_dir)
    qpath = Path(questions) if questions is not None else cat_dir / "questions.yaml"
    specs = read_questions(qpath)
    known = {i.id for i in infos}
    for n, s in enumerate(specs, 1):
        if s.item is not None and s.item not in known:
            raise InputError(
                f"questions file {str(qpath)!r}, question {n} ({s.question[:60]!r}) names item {s.item!r}, "
                f"which is not in catalog {str(cat_dir)!r}; valid items: {', '.join(sorted(known)) or '(none)'}"
            )
    for o in objects:
        if not Path(o).is_file():
            raise InputError(f"--objects file {str(o)!r} does not exist; check the path")
    check_grounder_ready(grounder, options)
    chosen = [i for i in infos if not items or i.id in items]
    inputs: list[Path] = [cat_dir / CATALOG_FILE, qpath, *(Path(o) for o in objects)]
    if config is not None:
        inputs.append(Path(config))
    if options.get("outputs"):
        inputs.append(Path(str(options["outputs"])))
    for i in infos:
        inputs.append(i.raster_path)
        inputs.extend(i.vector_paths)
        if i.item_path is not None:
            inputs.append(i.item_path)
    outp = Path(out)
    written = run_outputs(outp, [i.id for i in chosen])
    if results_dir is not None:
        written.append(Path(results_dir))
    check_output_folder("--out", outp, written, inputs)
    from georeason.runstate import verify_raster_checksum

    for i in chosen:  # the tile cache is keyed on content: an edited raster must be re-registered
        verify_raster_checksum(i)
    if outp.exists() and not outp.is_dir():
        raise InputError(f"--out {str(outp)!r} is a file; give a folder")
    return RunPlan(tuple(chosen), qpath, tuple(inputs))
