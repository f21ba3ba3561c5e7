"""One error tree for georeason.

Every exception a user can meet derives from :class:`GeoreasonError` and, where it fits,
from the matching built-in (``ValueError``, ``OSError``, ``LookupError``) so that callers
can catch either. Messages name the input that was wrong and say what to do about it; the
CLI prints ``str(exc)`` on one line and exits with status 2.

Warnings are classes too, so users can filter them (``warnings.simplefilter``).
"""

from __future__ import annotations

__all__ = [
    "GeoreasonError",
    "InputError",
    "VectorReadError",
    "MissingCRSError",
    "CRSMismatchError",
    "InvalidGeometryError",
    "UnknownObjectError",
    "ProgramValidationError",
    "QuestionParseError",
    "ExportError",
    "RasterError",
    "NotGeoreferencedError",
    "RasterReadError",
    "RotatedRasterError",
    "TileReadError",
    "CatalogError",
    "ModelError",
    "ModelNotFoundError",
    "GeoreasonWarning",
    "GeometryRepairedWarning",
    "NodataWarning",
    "ParseWarning",
]


class GeoreasonError(Exception):
    """Root of every georeason error."""


class InputError(GeoreasonError, ValueError):
    """A user-supplied input (file, flag, value) is unusable."""


class VectorReadError(GeoreasonError, OSError):
    """A vector file could not be opened or read."""


class MissingCRSError(InputError):
    """Geometry arrived without a coordinate reference system."""


class CRSMismatchError(InputError):
    """Two inputs that must share a CRS do not."""


class InvalidGeometryError(InputError):
    """A geometry is invalid and could not (or may not) be repaired."""


class UnknownObjectError(GeoreasonError, LookupError):
    """An object id or class named by a query is not in the scene."""


class ProgramValidationError(InputError):
    """A query program failed validation; nothing was executed.

    ``step`` and ``arg`` name the offending step id and argument when known.
    """

    def __init__(self, message: str, step: str | None = None, arg: str | None = None):
        self.step = step
        self.arg = arg
        where = ""
        if step is not None:
            where = f"step {step!r}"
            if arg is not None:
                where += f", argument {arg!r}"
            where += ": "
        super().__init__(where + message)


class QuestionParseError(InputError):
    """An English question matched none of the supported forms."""


class ExportError(GeoreasonError, OSError):
    """An output file could not be written."""


class RasterError(GeoreasonError):
    """Root of raster problems."""


class NotGeoreferencedError(RasterError, ValueError):
    """A raster has no CRS or only an identity (pixel) transform."""


class RasterReadError(RasterError, OSError):
    """A raster could not be opened or is truncated/corrupt."""


class RotatedRasterError(RasterError, ValueError):
    """A raster's geotransform has rotation/shear terms, which tiling does not support."""


class TileReadError(RasterError, OSError):
    """One tile failed to read or process (other tiles carry on)."""


class CatalogError(GeoreasonError, ValueError):
    """The STAC catalog is missing, invalid, or an item is refused."""


class ModelError(GeoreasonError, RuntimeError):
    """A grounding model failed to load or run."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """Model weights are not in the given directory nor the local Hugging Face cache."""


class GeoreasonWarning(UserWarning):
    """Root of georeason warnings."""


class GeometryRepairedWarning(GeoreasonWarning):
    """An invalid input geometry was repaired with ``shapely.make_valid``."""


class NodataWarning(GeoreasonWarning):
    """Nodata handling changed what was read or written."""


class ParseWarning(GeoreasonWarning):
    """Model output was partly unusable; the unusable part was dropped or clipped."""
