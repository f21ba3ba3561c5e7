"""The format registry's public entry under its first name (see :mod:`georeason.models.formats`)."""

from georeason.models.formats import *  # noqa: F403
from georeason.models.formats import __all__  # noqa: F401
