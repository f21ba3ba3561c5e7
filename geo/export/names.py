"""File names from free text, by :mod:`slugify` (python-slugify): the one ``slug`` helper."""

from __future__ import annotations

from slugify import slugify

__all__ = ["slug", "answer_stem"]


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


def answer_stem(n: int, question: str) -> str:
    """The file stem of the ``n``-th answer of a run: ``q03-how-many-lakes-are-there``.

    Examples
    --------
    >>> answer_stem(3, "How many lakes are there?")
    'q03-how-many-lakes-are-there'
    """
    return f"q{n:02d}-{slug(question)}"
