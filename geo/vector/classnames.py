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
    # loaded on first use so that commands that never name a class start fast
    import typeguard

    # inflect decorates 23 engine methods with typeguard's @typechecked, which re-reads,
    # re-parses and recompiles inflect's 4000-line module once per method at import: 1.5-2 s
    # of CPU, more than a 2000-question batch takes. The checks only guard inflect's own
    # argument types (we pass str); import it with the decorator as it is under ``python -O``
    # (a no-op), then put the decorator back.
    real = typeguard.typechecked
    typeguard.typechecked = _unchecked  # type: ignore[assignment]
    try:
        import inflect
    finally:
        typeguard.typechecked = real
    return inflect.engine()


def _unchecked(target: Any = None, **_: Any) -> Any:
    """``typeguard.typechecked`` as it is under ``python -O``: the target unchanged."""
    return target if target is not None else _unchecked


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
