"""Grounder registry: names to grounder instances, built once per process.

A :class:`GrounderSpec` (name + JSON config) is what travels between Prefect tasks and
Dask workers; :func:`build_grounder` turns it into a grounder and caches it per process,
so a model-backed grounder loads its weights once per worker, not once per tile.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from georeason.errors import InputError
from georeason.geo.raster.grid import RasterGrid
from georeason.models.backends import hf
from georeason.models.backends.recorded import RecordedGrounder, prepare_recorded
from georeason.models.backends.remote import RemoteGrounder, prepare_remote
from georeason.models.spectral import SpectralGrounder, class_family, fit_thresholds

__all__ = [
    "GrounderSpec",
    "register",
    "build_grounder",
    "available",
    "can_ground",
    "load_counts",
    "prepare_spec",
    "prepare_spectral",
]


@dataclass(frozen=True)
class GrounderSpec:
    """A grounder by name and JSON-serialisable configuration."""

    name: str
    config_json: str = "{}"

    @classmethod
    def of(cls, name: str, config: dict[str, Any] | None = None) -> GrounderSpec:
        return cls(name, json.dumps(config or {}, sort_keys=True, default=str))

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def key(self) -> str:
        """Stable hash of name and config (cache keys)."""
        return hashlib.sha256(f"{self.name}\0{self.config_json}".encode()).hexdigest()


_FACTORIES: dict[str, Callable[[dict[str, Any]], Any]] = {}
_SUPPORTS: dict[str, Callable[[str], bool]] = {}
_PREPARE: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
_CACHE: dict[GrounderSpec, Any] = {}
_LOCK = threading.Lock()
#: How many times each grounder spec was built in this process (tests assert "once per worker").
load_counts: dict[str, int] = {}


def register(
    name: str,
    factory: Callable[[dict[str, Any]], Any],
    supports: Callable[[str], bool],
    prepare: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Register a grounder.

    ``factory(config) -> grounder``; ``supports(label) -> bool``; optional
    ``prepare(raster, options) -> config`` does per-scene set-up once, before tiles are
    farmed out (e.g. fitting spectral thresholds on the whole scene).
    """
    with _LOCK:
        _FACTORIES[name] = factory
        _SUPPORTS[name] = supports
        _PREPARE.pop(name, None)
        if prepare is not None:
            _PREPARE[name] = prepare
        for spec in [s for s in _CACHE if s.name == name]:  # a re-registered name builds anew
            del _CACHE[spec]


def portable(name: str) -> bool:
    """Whether a fresh process builds grounder ``name`` the same way: it is one of the
    built-in grounders, not registered (or replaced) at run time in this process only.
    Only portable grounders can ground in worker processes (:mod:`georeason.workers`)."""
    _ensure_builtin()
    return name in _BUILTIN and _BUILTIN[name] is _FACTORIES.get(name)


#: Built-in grounders whose work is Python holding the GIL (worker processes by default);
#: the others wait on a model (torch releases the GIL; a remote API is I/O) and would load
#: one model copy per process: threads by default.
GIL_BOUND = frozenset({"spectral", "recorded"})


def prefers_processes(name: str) -> bool:
    """Whether grounder ``name`` grounds faster in worker processes than in threads by
    default (:data:`GIL_BOUND` and :func:`portable`)."""
    return name in GIL_BOUND and portable(name)


def available() -> list[str]:
    _ensure_builtin()
    return sorted(_FACTORIES)


def _check(name: str) -> None:
    _ensure_builtin()
    if name not in _FACTORIES:
        raise InputError(f"unknown grounder {name!r}; available: {', '.join(sorted(_FACTORIES))}")


def can_ground(name: str, label: str) -> bool:
    """Whether grounder ``name`` can find objects of class ``label``."""
    _check(name)
    return bool(_SUPPORTS[name](label))


def build_grounder(spec: GrounderSpec) -> Any:
    """The grounder for ``spec``, built once per process and reused."""
    _check(spec.name)
    with _LOCK:
        g = _CACHE.get(spec)
        if g is None:
            g = _FACTORIES[spec.name](spec.config)
            _CACHE[spec] = g
            load_counts[spec.name] = load_counts.get(spec.name, 0) + 1
        return g


_BUILTIN_DONE = False
#: factories of the built-in grounders (what every process registers)
_BUILTIN: dict[str, Callable[[dict[str, Any]], Any]] = {}


def _ensure_builtin() -> None:
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    register("spectral", _spectral, lambda label: class_family(label) is not None, prepare=prepare_spectral)
    # open vocabulary: any class can be asked (recorded: a class never recorded fails the tile)
    register("remote", RemoteGrounder, lambda label: True, prepare=prepare_remote)
    register("recorded", RecordedGrounder, lambda label: True, prepare=prepare_recorded)
    # transformers grounders (georeason[vlm]): registering them imports neither torch nor
    # transformers; building one without them raises a ModelError saying how to install them
    for name, cls in hf.BACKENDS.items():
        register(name, cls, hf.open_vocabulary)
    for name in ("spectral", "remote", "recorded", *hf.BACKENDS):
        _BUILTIN[name] = _FACTORIES[name]


def _spectral(cfg: dict[str, Any]) -> SpectralGrounder:
    return SpectralGrounder(
        cfg.get("thresholds"),
        min_area_m2=float(cfg.get("min_area_m2", 0.0)),
        simplify_m=float(cfg.get("simplify_m", 0.0)),
        connectivity=int(cfg.get("connectivity", 4)),
        marker_colour=str(cfg.get("marker_colour", "red")),
    )


def prepare_spectral(raster: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Fit Otsu thresholds once on the whole scene, for every index family the bands allow.

    Fitting all families (not only the classes asked) keeps the config — and the tile cache
    keyed on it — independent of the questions. ``options["thresholds"]`` overrides. The
    default minimum object area is three pixels' ground area in m² (``min_area_m2``
    overrides; 0 keeps every pixel).
    """
    opts = dict(options)
    if not opts.get("thresholds"):
        if raster is None:
            raise InputError("the spectral grounder needs a raster to fit its thresholds on")
        fitted = fit_thresholds(raster, bands=opts.get("bands") or None)  # --bands names them
        opts["thresholds"] = {k: round(float(v), 6) for k, v in fitted.items()}
    if "min_area_m2" not in opts:
        # minimum mapping unit: 3 pixels, measured in metres on the ground (never degrees);
        # single-pixel specks of an index threshold are noise, not objects
        if raster is None:
            opts["min_area_m2"] = 0.0
        else:
            w_m, h_m = RasterGrid.read(raster).res_m
            opts["min_area_m2"] = round(3.0 * w_m * h_m, 3)
    opts.setdefault("simplify_m", 0.0)
    return opts


def prepare_spec(name: str, raster: str | None = None, options: dict[str, Any] | None = None) -> GrounderSpec:
    """The spec to run grounder ``name`` on ``raster``, with its per-scene set-up done."""
    _check(name)
    opts = dict(options or {})
    if name in _PREPARE:
        opts = _PREPARE[name](raster, opts)
    return GrounderSpec.of(name, opts)
