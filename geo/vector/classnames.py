"""Class names in the singular, by :mod:`inflect` (no hand-written suffix stripping).

Questions say "lakes", "trees", "buses", "geese"; layers and grounders label objects
"lake", "tree", "bus", "goose". :func:`singular` maps the first to the second, and
:func:`class_forms` lists the names to try when resolving a class (as given, then
singular), so that prompts, logs and object labels keep the word's meaning.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["singular", "class_forms"]


@cache
def _engine() -> Any:
    # inflect takes a second or two to import (big word tables, typeguard): loaded on
    # first use so that commands that never name a class start fast
    import inflect

    return inflect.engine()


@cache
def singular(name: str) -> str:
    """The singular of a (normalised, lower-case) class name; the name if it is singular.

    Only the last word changes (``water bodies`` -> ``water body``). A word ending in
    ``s`` that is its own singular (``bus``, ``gas``, ``grass``, ``oasis``) is kept.

    Examples
    --------
    >>> [singular(w) for w in ["lakes", "trees", "houses", "buses", "geese", "bus", "grass"]]
    ['lake', 'tree', 'house', 'bus', 'goose', 'bus', 'grass']
    >>> singular("water bodies"), singular("forest")
    ('water body', 'forest')
    """
    p = _engine()
    s = p.singular_noun(name)
    if not s or s == name:
        return name
    # inflect strips a final "s" from singulars too ("bus" -> "bu"); a word whose plural
    # turns back into it is a singular already
    if s == name[:-1] and p.singular_noun(p.plural_noun(name)) == name:
        return name
    return str(s)


def class_forms(name: str) -> list[str]:
    """Names to try for a class, in order: as given, then its singular (if different).

    Examples
    --------
    >>> class_forms("lakes"), class_forms("lake")
    (['lakes', 'lake'], ['lake'])
    """
    s = singular(name)
    return [name] if s == name else [name, s]
