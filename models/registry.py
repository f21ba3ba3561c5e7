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

__all__ = ["GrounderSpec", "register", "build_grounder", "available", "can_ground", "load_counts"]


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
    _FACTORIES[name] = factory
    _SUPPORTS[name] = supports
    if prepare is not None:
        _PREPARE[name] = prepare


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


def build_grounder(spec: GrounderSpec):
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


def _ensure_builtin() -> None:
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    from georeason.models.spectral import SpectralGrounder, class_family

    def spectral(cfg: dict[str, Any]):
        return SpectralGrounder(
            cfg.get("thresholds"),
            min_area_m2=float(cfg.get("min_area_m2", 0.0)),
            simplify_m=float(cfg.get("simplify_m", 0.0)),
            connectivity=int(cfg.get("connectivity", 4)),
            marker_colour=str(cfg.get("marker_colour", "red")),
        )

    register("spectral", spectral, lambda label: class_family(label) is not None, prepare=prepare_spectral)
    _register_model_backends()
    try:  # transformers grounders (georeason[vlm]); registering imports no torch
        from georeason.models.backends.hf import register_hf_backends

        register_hf_backends()
    except ImportError:
        pass


def _register_model_backends() -> None:
    """The remote (OpenAI-compatible API) and recorded-outputs grounders; imported lazily."""

    def remote(cfg: dict[str, Any]):
        from georeason.models.backends.remote import RemoteGrounder

        return RemoteGrounder(cfg)

    def prepare_remote(raster, options: dict[str, Any]) -> dict[str, Any]:
        from georeason.models.backends.remote import prepare_remote as prep

        return prep(raster, options)

    def recorded(cfg: dict[str, Any]):
        from georeason.models.backends.recorded import RecordedGrounder

        return RecordedGrounder(cfg)

    def prepare_recorded(raster, options: dict[str, Any]) -> dict[str, Any]:
        from georeason.models.backends.recorded import prepare_recorded as prep

        return prep(raster, options)

    # open vocabulary: any class can be asked (recorded: a class never recorded fails the tile)
    register("remote", remote, lambda label: True, prepare=prepare_remote)
    register("recorded", recorded, lambda label: True, prepare=prepare_recorded)


def prepare_spectral(raster, options: dict[str, Any]) -> dict[str, Any]:
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
        from georeason.models.spectral import fit_thresholds

        fitted = fit_thresholds(raster, bands=opts.get("bands") or None)  # --bands names them
        opts["thresholds"] = {k: round(float(v), 6) for k, v in fitted.items()}
    if "min_area_m2" not in opts:
        # minimum mapping unit: 3 pixels, measured in metres on the ground (never degrees);
        # single-pixel specks of an index threshold are noise, not objects
        from georeason.geo.raster.io import raster_info

        if raster is None:
            opts["min_area_m2"] = 0.0
        else:
            w_m, h_m = raster_info(raster).res_m
            opts["min_area_m2"] = round(3.0 * w_m * h_m, 3)
    opts.setdefault("simplify_m", 0.0)
    return opts


def prepare_spec(name: str, raster=None, options: dict[str, Any] | None = None) -> GrounderSpec:
    """The spec to run grounder ``name`` on ``raster``, with its per-scene set-up done."""
    _check(name)
    opts = dict(options or {})
    if name in _PREPARE:
        opts = _PREPARE[name](raster, opts)
    return GrounderSpec.of(name, opts)
