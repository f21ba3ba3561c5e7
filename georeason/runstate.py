"""Run bookkeeping: one writer per output folder, a manifest of outputs, finite JSON rows.

* :class:`OutputLock` — ``OUT/.georeason.lock`` holds the writer's pid and host; a second
  run into the same folder refuses (:class:`OutputLockedError`, exit 2) while the holder
  lives; a lock left by a dead process (kill -9) is taken over.
* :func:`write_manifest` — ``OUT/manifest.json`` lists the files this run wrote; files
  an earlier run listed that this run did not write again (answers of questions since
  removed, items no longer asked) are deleted, so the folder holds one run's outputs.
* :func:`finite_row` — a result row with a NaN or infinite number becomes an error row:
  no ``NaN``/``Infinity`` ever reaches a JSON file.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from georeason.errors import GeoreasonError, InputError

__all__ = [
    "RunFailedError",
    "result_of",
    "answer_rows",
    "run_state",
    "verify_raster_checksum",
    "OutputLock",
    "OutputLockedError",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "write_manifest",
    "finite_row",
]

LOCK_NAME = ".georeason.lock"
MANIFEST_NAME = "manifest.json"


class OutputLockedError(InputError):
    """Another live run writes into the same output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Exclusive writer lock on an output folder (a context manager).

    Created with ``O_CREAT | O_EXCL`` so two processes cannot both take it. The file
    holds ``{"pid": ..., "host": ...}``; a lock of a process that no longer runs on this
    host is stale and taken over. Re-entrant within one process (the CLI and the flow it
    starts may both take it).
    """

    _held: dict[str, int] = {}

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._mine = False

    def __enter__(self) -> OutputLock:
        key = str(self.path.resolve())
        if OutputLock._held.get(key):
            OutputLock._held[key] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise OutputLockedError(
                        f"output folder {str(self.folder)!r} is in use by another georeason run "
                        f"(pid {holder.get('pid')} on {holder.get('host')}); wait for it to finish or choose "
                        f"another --out (remove {str(self.path)!r} only if that process is gone)"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its writer is dead
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._mine = True
            OutputLock._held[key] = 1
            return self
        raise OutputLockedError(f"could not take the lock {str(self.path)!r}; retry")

    def _holder(self) -> dict[str, Any] | None:
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}  # being written, or garbage: treated as held only if fresh

    def _stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") not in (None, socket.gethostname()):
            return False  # another machine's run: cannot tell, so it is not stale
        if not isinstance(pid, int):
            import time

            try:
                return time.time() - self.path.stat().st_mtime > 60
            except OSError:
                return True
        return not _alive(pid)

    def __exit__(self, *exc: object) -> None:
        key = str(self.path.resolve())
        n = OutputLock._held.get(key, 0)
        if n > 1:
            OutputLock._held[key] = n - 1
            return
        OutputLock._held.pop(key, None)
        if self._mine:
            self.path.unlink(missing_ok=True)


def write_manifest(
    out: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    info: dict[str, Any],
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``OUT/manifest.json`` (this run's files, relative) and delete files an earlier
    manifest listed that this run did not write (never one outside ``out``, a symlink, or
    one of ``protect``: the run's inputs). A file's QGIS style beside it (``x.qml`` for
    ``x.geojson`` or ``x.tif``) is listed with it. Returns the manifest path."""
    from georeason.geo.export.layers import atomic_path

    out = Path(out).resolve()
    mine: list[str] = []
    for f in files:
        p = Path(f).resolve()
        style = p.with_suffix(".qml")
        for q in (p, style) if style != p and style.is_file() else (p,):
            try:
                mine.append(q.relative_to(out).as_posix())
            except ValueError:
                continue
    mine = list(dict.fromkeys(mine))
    manifest = out / MANIFEST_NAME
    old: list[str] = []
    try:
        d = json.loads(manifest.read_text(encoding="utf-8"))
        if isinstance(d, dict) and isinstance(d.get("files"), list):
            old = [x for x in d["files"] if isinstance(x, str)]
    except (OSError, ValueError):
        pass
    keep = set(mine)
    guarded = {os.path.realpath(p) for p in protect}
    for rel in old:
        if rel in keep:
            continue
        p = (out / rel).resolve()
        try:
            p.relative_to(out)  # a doctored manifest cannot delete outside OUT
        except ValueError:
            continue
        if p.is_file() and not p.is_symlink() and os.path.realpath(p) not in guarded:
            p.unlink(missing_ok=True)
            parent = p.parent
            while parent != out:
                try:
                    parent.rmdir()  # only if now empty
                except OSError:
                    break
                parent = parent.parent
    doc = {**info, "files": sorted(keep)}
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return manifest


def _nonfinite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{path or 'value'}={obj!r}"
    if isinstance(obj, dict):
        for k, v in obj.items():
            r = _nonfinite(v, f"{path}.{k}" if path else str(k))
            if r:
                return r
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            r = _nonfinite(v, f"{path}[{i}]")
            if r:
                return r
    return None


def finite_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` itself, or an error row naming the first NaN/infinite number in it.

    Examples
    --------
    >>> finite_row({"question": "q", "answer": float("nan")})["error"]
    'the answer is not a finite number (answer=nan)'
    """
    bad = _nonfinite(row)
    if bad is None:
        return row
    return {
        "question": row.get("question"),
        "item": row.get("item"),
        "error": f"the answer is not a finite number ({bad})",
        "abstained": True,
        "answer": None,
    }


#: rasters whose checksum this process verified, by path, file identity and times
#: (``georeason run`` checks before Prefect starts and again as the flow grounds: one hash)
_VERIFIED: set[tuple[Any, ...]] = set()


def verify_raster_checksum(info: Any) -> None:
    """The raster's current content matches the catalog's ``file:checksum`` (else error).

    The tile cache is keyed on this checksum, so a raster edited in place must not be
    answered from results of its old content. A file that matched is not hashed again in
    this process while its inode, size, mtime and ctime stay the same.

    Raises
    ------
    CatalogError
        Naming the file and how to re-register it.
    """
    from georeason.errors import CatalogError
    from georeason.geo.raster.io import file_sha256

    if not info.sha256:
        raise CatalogError(
            f"item {info.id!r}: the catalog records no checksum for {str(info.raster_path)!r}; "
            f"re-register it with `georeason catalog add {info.raster_path} --id {info.id} --update`"
        )
    try:
        st = os.stat(info.raster_path)
        seen: tuple[Any, ...] | None = (
            str(info.raster_path),
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            info.sha256,
        )
    except OSError:
        seen = None
    if seen is not None and seen in _VERIFIED:
        return  # hashed in this process, and the file has not changed since (same inode, size, times)
    current = file_sha256(info.raster_path)
    if current == info.sha256 and seen is not None:
        _VERIFIED.add(seen)
    if current != info.sha256:
        raise CatalogError(
            f"item {info.id!r}: raster {str(info.raster_path)!r} changed since it was catalogued "
            f"(SHA-256 {current[:12]}..., catalog says {info.sha256[:12]}...); re-register it with "
            f"`georeason catalog add {info.raster_path} --id {info.id} --update`"
        )


#: Name of the final Prefect state of a run that finished with errors or tile failures.
FAILED_STATE_NAME = "AnsweredWithErrors"


class RunFailedError(GeoreasonError, RuntimeError):
    """A run finished, but some questions errored or tiles failed.

    Raised by calling the ``answer`` flow directly; ``.result`` holds everything the run
    produced (rows, outputs, counts), which was written to ``answers.jsonl`` as well.
    """

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.result))


def result_of(state: Any) -> dict[str, Any]:
    """The result dict of a finished ``answer``/``batch`` flow run state (completed or
    :data:`FAILED_STATE_NAME`); re-raises any other failure.

    The flow returns a small summary (answers travel in files, not through Prefect); when
    it names its ``answers.jsonl`` and carries no ``rows``, the rows are read back from
    that file (:func:`answer_rows`: output paths absolute again).
    """
    res = state.result(raise_on_failure=False)
    if isinstance(res, RunFailedError):
        res = res.result
    elif isinstance(res, BaseException):
        raise res
    if isinstance(res, dict) and "rows" not in res and res.get("answers"):
        jsonl = Path(res["answers"])
        if jsonl.is_file():
            res = {**res, "rows": answer_rows(jsonl)}
    return res


def answer_rows(jsonl: str | Path) -> list[dict[str, Any]]:
    """The rows of an ``answers.jsonl``, with their ``outputs`` and ``details.mask`` paths
    (relative to the file's folder there) made absolute again."""
    base = Path(jsonl).resolve().parent

    def absolute(v: Any) -> Any:
        if isinstance(v, list):
            return [absolute(x) for x in v]
        if isinstance(v, str) and v and not Path(v).is_absolute():
            return str(base / v)
        return v

    rows = []
    for line in Path(jsonl).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if isinstance(row.get("outputs"), dict):
                row["outputs"] = {k: absolute(v) for k, v in row["outputs"].items()}
            if isinstance(row.get("details"), dict) and isinstance(row["details"].get("mask"), str):
                row["details"]["mask"] = absolute(row["details"]["mask"])
            rows.append(row)
    return rows


def run_state(result: dict[str, Any]) -> Any:
    """The flow's return value: ``result`` itself, or a *Failed* Prefect state named
    :data:`FAILED_STATE_NAME` when a question errored or tiles failed, so the UI shows the
    run as failed with the reason. Its data is a :class:`RunFailedError` holding
    ``result`` (calling the flow raises it; :func:`result_of` unwraps a state)."""
    errors, tiles = int(result.get("errors", 0)), int(result.get("failed_tiles", 0))
    if not errors and not tiles:
        return result
    from prefect.states import Failed

    reasons = []
    if errors:
        reasons.append(f"{errors} question(s) ended in an error")
    if tiles:
        reasons.append(f"{tiles} tile(s) failed to ground (answers touching them abstained)")
    message = "; ".join(reasons) + f"; answers in {result.get('answers')}"
    return Failed(message=message, data=RunFailedError(message, result), name=FAILED_STATE_NAME)
