"""georeason: spatial reasoning on Earth imagery.

The geometry is computed, never guessed: models localise, :mod:`georeason.geo` decides.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:  # the version is written once, in pyproject.toml
    __version__ = version("georeason")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
