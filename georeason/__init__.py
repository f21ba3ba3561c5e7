"""georeason: spatial reasoning on Earth imagery.

The geometry is computed, never guessed: models localise, :mod:`georeason.geo` decides.
"""

__version__ = "0.1.0"
