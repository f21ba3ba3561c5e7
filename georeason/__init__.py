"""georeason: spatial reasoning on Earth imagery.

The geometry is computed, never guessed: models localise, :mod:`georeason.geo` decides.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # looked up on first use, not at import: importlib.metadata scans the installed
    # distributions, a measurable share of `georeason ask`'s start-up
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:  # the version is written once, in pyproject.toml
            v = version("georeason")
        except PackageNotFoundError:  # running from a source tree that was never installed
            v = "0+unknown"
        globals()["__version__"] = v
        return v
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
