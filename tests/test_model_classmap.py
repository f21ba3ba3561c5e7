"""Free-text class names to known classes: synonym table, fuzzy matching, abstention threshold."""

from __future__ import annotations

import pytest

from georeason.models.language.classmap import SYNONYMS, map_class, map_program_classes

KNOWN = ["building", "lake", "river", "road", "vegetation", "field", "water"]


@pytest.mark.parametrize(
    "name, cls, method",
    [
        ("building", "building", "exact"),
        ("Buildings", "building", "exact"),
        ("the lakes", "lake", "exact"),
        ("houses", "building", "synonym"),
        ("a house", "building", "synonym"),
        ("reservoir", "lake", "synonym"),
        ("Ponds", "lake", "synonym"),
        ("streams", "river", "synonym"),
        ("creek", "river", "synonym"),
        ("streets", "road", "synonym"),
        ("forest", "vegetation", "synonym"),
        ("trees", "vegetation", "synonym"),
        ("farmland", "field", "synonym"),
        ("water bodies", "water", "synonym"),
        ("buildngs", "building", "fuzzy"),
        ("vegetaton", "vegetation", "fuzzy"),
    ],
)
def test_maps_free_names(name, cls, method):
    got, score, how = map_class(name, KNOWN, embedder=False)
    assert (got, how) == (cls, method)
    assert 0 < score <= 1


@pytest.mark.parametrize("name", ["pylons", "cars", "aircraft", "solar panels", "", "clouds"])
def test_unknown_names_abstain(name):
    cls, score, method = map_class(name, KNOWN, embedder=False)
    assert cls is None and score < 0.85 and method == "none"


def test_only_known_classes_are_returned():
    # "pond" is a lake; with no lake class known it is NOT mapped to water (no hypernyms)
    assert map_class("pond", ["building", "water"], embedder=False)[0] is None
    # the known class may itself be a synonym: "buildings" finds a scene class "house"
    assert map_class("buildings", ["house", "road"], embedder=False)[:2] == ("house", 0.9)
    # the original spelling of the known class comes back
    assert map_class("lakes", ["Lake"], embedder=False)[0] == "Lake"
    assert map_class("houses", [], embedder=False) == (None, 0.0, "none")


def test_threshold_is_the_abstention_line():
    # a misspelling passes the default line, not a stricter one
    assert map_class("bulding", KNOWN, embedder=False)[0] == "building"
    assert map_class("bulding", KNOWN, threshold=0.99, embedder=False)[0] is None


def test_synonym_groups_do_not_overlap():
    seen: dict[str, str] = {}
    for canon, syns in SYNONYMS.items():
        for s in (canon, *syns):
            assert s not in seen, f"{s!r} in both {seen.get(s)!r} and {canon!r}"
            seen[s] = canon


def test_embedding_path_with_a_given_embedder():
    """The embedding step with a stand-in embedder (vectors by hand): threshold applies."""
    import numpy as np

    vec = {"pylons": [1, 0, 0], "building": [0.9, 0.1, 0], "lake": [0, 1, 0]}

    def embed(texts):
        return np.array([vec.get(t, [0, 0, 1]) for t in texts], float)

    cls, score, how = map_class("pylons", ["building", "lake"], embedder=embed)
    assert (cls, how) == ("building", "embedding") and score > 0.9
    cls, score, how = map_class("pylons", ["building", "lake"], embedder=embed, embedding_threshold=0.999)
    assert cls is None and how == "embedding"


def test_embedding_path_with_the_packaged_minilm():
    # installed with the vlm extra (README command 1), so this runs in CI
    from georeason.models.language.classmap import load_embedder

    emb = load_embedder()
    assert emb is not None
    cls, score, how = map_class("skyscrapers", ["building", "lake", "river"], embedder=emb)
    assert cls == "building" and how == "embedding"


def test_map_program_classes_rewrites_copies_and_reports():
    steps = [
        {"id": "a", "op": "select", "args": {"cls": "houses"}},
        {"id": "b", "op": "at", "args": {"cls": "pond", "geometry": "$g"}},
        {"id": "c", "op": "select", "args": {"cls": "pylons"}},
        {"id": "d", "op": "count", "args": {"objects": "$a"}},
    ]
    out, mapping = map_program_classes(steps, KNOWN, embedder=False)
    assert [s["args"].get("cls") for s in out] == ["building", "lake", "pylons", None]
    assert steps[0]["args"]["cls"] == "houses"  # input untouched
    assert mapping["houses"] == {"class": "building", "score": 0.9, "method": "synonym"}
    assert mapping["pylons"]["class"] is None
