"""Names from free text, by :mod:`slugify` (python-slugify): the one ``slug`` helper.

Answer file stems (ids kept, filler words dropped) are
:func:`georeason.geo.export.layers.answer_stem`.
"""

from __future__ import annotations

from slugify import slugify

__all__ = ["slug"]


def slug(text: str, max_length: int = 40, fallback: str = "q") -> str:
    """A lower-case ASCII file-name stem of ``text`` (words joined by ``-``), at most ``max_length``.

    Accents are transliterated; an empty result gives ``fallback``.

    Examples
    --------
    >>> slug("How many lakes are there?")
    'how-many-lakes-are-there'
    >>> slug("Où est le lac ?"), slug("???")
    ('ou-est-le-lac', 'q')
    """
    return slugify(text, max_length=max_length, word_boundary=False) or fallback
