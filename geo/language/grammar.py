"""The grammar of georeason's controlled spatial English, and its compiler to programs.

A question is parsed with a `lark <https://lark-parser.readthedocs.io>`_ Earley parser over
the grammar below, then compiled, node by node, into the typed query program of
:mod:`georeason.geo.language.program`. Nothing is guessed: a word the grammar does not
know stops the parse with :class:`~georeason.errors.QuestionParseError` naming the words
it did not understand. Class names are open vocabulary, but only words that are not part
of the grammar (``lie``, ``nearest``, ``within`` ... are not) can form one, so "How many
buildings lie within 0.5 km of A?" selects ``buildings`` and "the nearest well" (nearest to
what?) is an error, never a class.

The pieces:

- **lexicon** (:data:`UNITS`, :data:`DIRECTIONS`, :data:`PREDICATE_WORDS`, :data:`SELECTORS`,
  :data:`STATS`): the synonyms each word of the grammar stands for;
- **references**: ``#b7`` / ``b7`` / ``building b7`` / ``object b7``, ``the <class>``, ``the
  <selector> <class> [constraints]``, ``the <class> at [pixel] <geometry>``, ``the region
  <geometry>``, WKT, bboxes, points, coordinate lists (lon/lat unless tagged ``(EPSG:nnnn)``
  or the question says ``pixel(s)`` anywhere: then its untagged coordinates are pixels), ``the nearest <class> to <ref>``, ``its nearest <class>``, ``the
  <class> <constraints> that is closest to it``, ``it`` (the last reference named);
- **sets**: a class and constraints joined by ``and``: distance bounds (``within 2 km of``,
  ``more than 500 m from``, ``between 1 and 2 km from``), direction sectors (``north of``,
  ``to the north-east of``, ``above`` = north on the map), topological predicates
  (``inside``, ``touching``, ``that cross``);
- **questions**: every form in :data:`FORMS`, each with examples; the README's table, the
  parse-error message and the planner's worked examples are generated from them.

Direction words between objects use the *nearest-part* definition by default (see
:func:`georeason.geo.vector.measure.direction_azimuth`); ``by centroid`` / ``centre to
centre`` asks for the centroid azimuth.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import re
import sys
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from georeason.errors import QuestionParseError
from georeason.geo.language.shapes import cache_dir, trusted_cache_file, write_cache_file
from georeason.geo.vector.measure import COMPASS_16

# lark imports the optional ``regex`` module when it is installed (10 ms of a 0.38 s ``ask``);
# it is used only with ``Lark(regex=True)`` and for ``\p{..}`` classes while building a
# grammar, neither of which this grammar does, so lark is imported with it hidden (lark
# then takes the ``re`` branch it takes wherever ``regex`` is not installed); a ``regex``
# imported before, or by anyone after, is untouched.
_HIDE_REGEX = "regex" not in sys.modules
if _HIDE_REGEX:
    sys.modules["regex"] = None  # type: ignore[assignment]
try:
    import lark
    from lark import Lark, Token, Transformer, Tree
    from lark.exceptions import UnexpectedEOF, UnexpectedInput, VisitError
    from lark.grammar import NonTerminal, Symbol, Terminal
    from lark.lexer import BasicLexer, LexerThread, Scanner
finally:
    if _HIDE_REGEX and sys.modules.get("regex", 0) is None:
        del sys.modules["regex"]

__all__ = [
    "FORMS",
    "Form",
    "UNITS",
    "DIRECTIONS",
    "PREDICATE_WORDS",
    "SELECTORS",
    "STATS",
    "parse",
    "compile_tree",
    "parser",
]

# ---------------------------------------------------------------------------------------
# lexicon
# ---------------------------------------------------------------------------------------
#: Distance unit words (typos people make included) -> (program unit, factor to it).
UNITS: dict[str, tuple[str, float]] = {}
for _names, _unit, _f in (
    (
        ("m", "meter", "meters", "metre", "metres", "mtr", "mtrs", "mts", "metrs", "meteres", "meterss"),
        "m",
        1.0,
    ),
    (("metters", "mters", "meteres", "metes"), "m", 1.0),
    (("km", "kms", "kilometer", "kilometers", "kilometre", "kilometres", "klm", "kmt", "kmts"), "km", 1.0),
    (("kilometeres", "kilomters", "kilometrs", "kilomiters", "kilo", "kilos"), "km", 1.0),
    (("ft", "feet", "foot", "feets"), "ft", 1.0),
    (("mi", "mile", "miles", "mls"), "mi", 1.0),
):
    for _n in _names:
        UNITS[_n] = (_unit, _f)

#: Output area units named after "in ...".
AREA_UNITS = {
    "m2": "m2",
    "m²": "m2",
    "square meters": "m2",
    "square metres": "m2",
    "square meter": "m2",
    "square metre": "m2",
    "km2": "km2",
    "km²": "km2",
    "sq km": "km2",
    "square km": "km2",
    "sq m": "m2",
    "square m": "m2",
    "square kilometers": "km2",
    "square kilometres": "km2",
    "square kilometer": "km2",
    "square kilometre": "km2",
    "ha": "ha",
    "hectare": "ha",
    "hectares": "ha",
}

#: Direction words -> compass name (map terms: above = north, below = south, left = west).
DIRECTIONS: dict[str, str] = {}
for _name, _words in {
    "N": ("north", "northern", "northward", "above", "up"),
    "S": ("south", "southern", "southward", "below", "under"),
    "E": ("east", "eastern", "eastward", "right"),
    "W": ("west", "western", "westward", "left"),
    "NE": ("northeast", "north-east", "north east", "upper right"),
    "NW": ("northwest", "north-west", "north west", "upper left"),
    "SE": ("southeast", "south-east", "south east", "lower right"),
    "SW": ("southwest", "south-west", "south west", "lower left"),
}.items():
    for _w in _words:
        DIRECTIONS[_w] = _name
for _c in COMPASS_16:  # the one compass table (geo.vector.measure)
    DIRECTIONS.setdefault(_c.lower(), _c)
for _c in ("NNE", "ENE", "ESE", "SSE", "SSW", "WSW", "WNW", "NNW"):
    _full = {"N": "north", "E": "east", "S": "south", "W": "west"}
    _first = _full[_c[0]]
    _rest = {"NE": "northeast", "SE": "southeast", "SW": "southwest", "NW": "northwest"}[
        _c[1:] if _c[1:] in ("NE", "SE", "SW", "NW") else _c[:0:-1]
    ]
    DIRECTIONS.setdefault(f"{_first}-{_rest}", _c)

#: Topological words -> program predicate (the subject is the first object).
PREDICATE_WORDS = {
    "intersect": "intersects",
    "intersects": "intersects",
    "intersecting": "intersects",
    "touch": "touches",
    "touches": "touches",
    "touching": "touches",
    "border": "touches",
    "borders": "touches",
    "bordering": "touches",
    "adjoin": "touches",
    "adjoins": "touches",
    "adjoining": "touches",
    "adjacent to": "touches",
    "overlap": "overlaps",
    "overlaps": "overlaps",
    "overlapping": "overlaps",
    "cross": "crosses",
    "crosses": "crosses",
    "crossing": "crosses",
    "contain": "contains",
    "contains": "contains",
    "containing": "contains",
    "cover": "covers",
    "covers": "covers",
    "covering": "covers",
    "within": "within",
    "inside": "within",
    "in": "within",
    "contained in": "within",
    "disjoint from": "disjoint",
    "disjoint with": "disjoint",
    "separate from": "disjoint",
    "outside": "disjoint",
    "outside of": "disjoint",
    "equal to": "equals",
    "identical to": "equals",
    "the same as": "equals",
    "covered by": "covered_by",
}

#: Selector words -> the program's ``pick`` / argmax-argmin by.
SELECTORS = {
    "largest": "largest",
    "biggest": "largest",
    "smallest": "smallest",
    "tiniest": "smallest",
    "longest": "longest",
    "shortest": "shortest",
}

#: Aggregate words -> program stat.
STATS = {
    "average": "mean",
    "mean": "mean",
    "median": "median",
    "sum": "sum",
    "summed": "sum",
    "minimum": "min",
    "min": "min",
    "maximum": "max",
    "max": "max",
    "greatest": "max",
}

_NOT_VERBS = ("within", "inside", "in", "outside")
_NUM = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_CNUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"  # a coordinate (no thousands commas)
_UNIT_RE = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
_AREA_RE = "|".join(sorted((re.escape(u).replace(r"\ ", r"\s+") for u in AREA_UNITS), key=len, reverse=True))
_DIR_RE = "|".join(sorted((re.escape(d).replace(r"\ ", r"\s+") for d in DIRECTIONS), key=len, reverse=True))
_END = r"(?![\w\-])"

# ---------------------------------------------------------------------------------------
# the grammar ("word"i are keywords; each becomes a terminal that must end at a word end)
# ---------------------------------------------------------------------------------------
_GRAMMAR = r"""
start: _lead* _q
_q: question unit_suffix?
  | question "," question_unit

_lead: "please"i | "tell"i "me"i | "can"i "you"i "tell"i? "me"i? | "could"i "you"i "tell"i? "me"i?
     | "do"i "you"i "know"i | "i"i "want"i "to"i "know"i | "hey"i | "so"i | "ok"i | "compute"i
     | "calculate"i | "measure"i | "determine"i

unit_suffix: ","? "in"i (dunit_w | aunit_w)
question_unit: "in"i (dunit_w | aunit_w)
unit_inline: "in"i (dunit_w | aunit_w)

?question: q_distance | q_direction | q_bearing | q_is | q_pair | q_relation | q_count
         | q_rank | q_extreme | q_area | q_length | q_total | q_aggregate | q_closer | q_list
         | q_pixels | q_which_ref | q_exists

// ---- references ------------------------------------------------------------------------
?ref: sref | ref_rank
?sref: ref_id | ref_the | ref_sel | ref_at | ref_geom | ref_it | ref_its

ref_id: HASHID
      | "the"i? ("object"i | "feature"i | "id"i) (HASHID | BAREID | WORD)
      | "the"i? cls (HASHID | BAREID)
      | "the"i (HASHID | BAREID)
      | BAREID
      | CAP_A
ref_the: "the"i cls
ref_sel: "the"i? selector_w set
ref_at: "the"i? cls ("at"i | "located"i "at"i | "in"i | "covering"i) geom
ref_geom: ("the"i | "a"i | CAP_A)? ("region"i | "zone"i | "location"i | "place"i | "geometry"i | "area"i)? geom
ref_it: "it"i | "that"i | "there"i
ref_its: "its"i rank_w cls
ref_rank: "the"i rank_w cls _tofrom ref
        | "the"i set ("that"i | "which"i)? ("is"i | "lies"i)? rank_w _tofrom ref

geom: gtag* (_article? shape_w)? gtag* GEOMLIT gtag*
_article: "the"i | "a"i | "an"i | CAP_A
gtag: PIXELTAG | CRSTAG | LONLATTAG

cls: WORD (WORD | _clsnoun) ~ 0..2
_clsnoun: "region"i | "regions"i | "area"i | "areas"i | "zone"i | "zones"i | "place"i | "places"i
set: ("all"i | "any"i | "every"i | "each"i)? "the"i? ("of"i "the"i)? cls constraints?
constraints: _be* constraint (_join _be* constraint)*
_join: ","? "and"i | ","
_be: "are"i | "is"i | "lie"i | "lies"i | "lying"i | "located"i | "situated"i | "that"i | "which"i
   | "there"i | "exist"i | "exists"i | "found"i | "sit"i | "sitting"i | "placed"i | "positioned"i
   | "standing"i | "stand"i

?constraint: c_within | c_beyond | c_between | c_dir | c_pred
c_within: _lessthan DIST _away? _ofrom sref
c_beyond: _morethan DIST _away? _ofrom sref
c_between: "between"i (DIST | NUMBER) ("and"i | "to"i | "-") DIST _away? _ofrom sref
c_dir: dirphrase sref method?
c_pred: predword_w sref
      | "do"i "not"i predword_w sref -> c_not_pred

_lessthan: ("within"i | "in"i) _a "distance"i "of"i | "within"i | "less"i "than"i | "closer"i "than"i | "nearer"i "than"i
         | "under"i | "no"i "more"i "than"i | "not"i "more"i "than"i | "at"i "most"i | "up"i "to"i
         | "in"i | "inside"i | "below"i
_a: "a"i | CAP_A
_morethan: "more"i "than"i | "farther"i "than"i | "further"i "than"i | "over"i | "beyond"i
         | "at"i "least"i | "greater"i "than"i | "outside"i
_away: "away"i | "distant"i | "off"i
_ofrom: "of"i | "from"i | "to"i | "around"i
_tofrom: "to"i | "from"i

dirphrase: ("to"i | "on"i | "in"i) "the"i dir_w ("of"i | "from"i | "side"i "of"i)
         | "due"i? dir_w ("of"i | "from"i)
         | "directly"i dir_w ("of"i | "from"i)
         | "directly"i? dir_w
method: ","? ("by"i | "using"i | "based"i "on"i | "from"i | "measured"i "between"i)? "the"i? centroidword_w
      | "(" centroidword_w ")"
      | ","? ("by"i | "using"i)? "the"i? "nearest"i ("part"i | "parts"i | "point"i | "points"i)

// ---- questions --------------------------------------------------------------------------
_what: "what"i ("is"i | "'s"i | "was"i)? | "what's"i | "whats"i | "give"i "me"i | "find"i | "get"i
     | "show"i "me"i? | "return"i | "report"i
_the: "the"i
_is: "is"i | "are"i | "was"i
_how_far: "how"i "far"i
_dist_word: "distance"i | "distances"i | "separation"i | "gap"i | "spacing"i
_dmod: "geodesic"i | "minimum"i | "shortest"i | "straight-line"i | "straight"i "line"i | "minimal"i
     | "ground"i | "actual"i | "closest"i
centres: "the"i? ("centres"i | "centers"i | "centroids"i | "centre"i | "center"i | "centroid"i | "middle"i | "middles"i) "of"i
cmode: "centre-to-centre"i | "center-to-center"i | "centroid-to-centroid"i | "centroid"i | "center"i | "centre"i
     | "centre"i "to"i "centre"i | "center"i "to"i "center"i

q_distance: _what? _the? cmode? _dmod? _dist_word cmode? unit_inline? ("between"i | "separating"i) centres? ref "and"i ref method_dist?  -> distance
          | _what? _the? _dmod? _dist_word unit_inline? "to"i ref "from"i ref                                         -> distance
          | _how_far _is "it"i "between"i ref "and"i ref                                                            -> distance
          | _what? _the? cmode? _dmod? _dist_word cmode? unit_inline? "from"i centres? ref "to"i centres? ref method_dist?         -> distance
          | _what? _the? cmode? _dmod? _dist_word cmode? "of"i centres? ref "from"i centres? ref method_dist?         -> distance
          | _what? _the? cmode? _dmod? _dist_word centres? ref ("to"i | "and"i | "-") ref method_dist?               -> distance
          | _how_far "away"i? _is centres? ref "from"i centres? ref "away"i? method_dist?                           -> distance
          | _how_far "apart"i _is centres? ref "and"i ref method_dist?                                            -> distance
          | _how_far _is centres? ref "and"i ref "apart"i? method_dist?                                           -> distance
          | _how_far _is "it"i "from"i ref "to"i ref method_dist?                                                 -> distance
          | _how_far "does"i ref "lie"i "from"i ref                                                               -> distance
          | "how"i ("close"i | "near"i) _is ref ("to"i | "from"i) ref                                             -> distance
          | "how"i "many"i dunit_w ("separate"i | "separates"i) ref ("from"i | "and"i) ref                         -> distance_in
          | "how"i "many"i dunit_w "apart"i _is ref "and"i ref                                                      -> distance_in
          | "how"i "many"i dunit_w _is ref "from"i ref "away"i?                                                     -> distance_in
          | "how"i "many"i dunit_w _is "it"i "from"i ref "to"i ref                                                  -> distance_in
          | "how"i "many"i dunit_w _is "there"i "between"i ref "and"i ref                                           -> distance_in
method_dist: ","? ("centre"i "to"i "centre"i | "center"i "to"i "center"i | "centre-to-centre"i | "center-to-center"i
           | "between"i "centroids"i | "between"i "centres"i | "between"i "centers"i | "by"i "centroid"i | "(" centroidword_w ")")

_which: "which"i | "what"i
_direction: "direction"i | "compass"i "direction"i | "cardinal"i "direction"i | "way"i | "side"i
p16: P16
q_direction: "in"i? _which p16? cmode? _direction _is ref ("from"i | "of"i | "relative"i "to"i | "with"i "respect"i "to"i | "as"i "seen"i "from"i) ref method?  -> direction_tf
           | "in"i? _which p16? cmode? _direction "does"i ref ("lie"i | "sit"i | "go"i)? ("from"i | "of"i | "relative"i "to"i) ref method?                    -> direction_tf
           | _what? _the? p16? cmode? _direction ("of"i | "to"i) ref ("from"i | "relative"i "to"i | "as"i "seen"i "from"i) ref method?                 -> direction_tf
           | _what? _the? p16? cmode? _direction "from"i ref "to"i ref method?                                                                 -> direction_ft
           | "where"i _is ref ("relative"i "to"i | "with"i "respect"i "to"i | "from"i | "compared"i "to"i) ref method?                            -> direction_tf
           | ref _is "in"i _which _direction ("of"i | "from"i) ref method?                                                                     -> direction_tf
           | "direction"i ref "to"i ref method?                                                                                                -> direction_ft

_bearing_word: "bearing"i | "azimuth"i | "heading"i
q_bearing: _what? _the? cmode? _bearing_word "from"i ref "to"i ref method?                    -> bearing_ft
         | _what? _the? cmode? _bearing_word ("of"i | "to"i) ref ("from"i | "relative"i "to"i) ref method?   -> bearing_tf
         | _bearing_word ref "to"i ref method?                                               -> bearing_ft

// yes/no about one subject: conditions joined by "and"
q_is: _is ref ("located"i | "situated"i | "lying"i | "found"i | "lie"i | "lies"i)? cond (_join cond)*   -> is_q
    | "does"i ref ("lie"i | "sit"i | "fall"i | "stand"i) cond (_join cond)*        -> is_q
    | "does"i ref ("located"i | "situated"i | "lying"i)? k_dir (_join cond)*        -> is_q
    | ref _is cond (_join cond)*                                                     -> is_q
    | ("does"i | "do"i) ref predverb_w ref                                             -> does_q
?cond: k_within | k_beyond | k_between | k_dir | k_pred | k_closer | k_bigger | k_closer_to_than
k_within: _lessthan DIST _away? _ofrom sref
k_beyond: _morethan DIST _away? _ofrom sref
k_between: "between"i (DIST | NUMBER) ("and"i | "to"i | "-") DIST _away? _ofrom sref
k_dir: dirphrase sref method? _map_tail?
k_pred: ("completely"i | "entirely"i | "fully"i | "wholly"i | "totally"i)? predword_w ref
k_closer: closer_w _tofrom ref "than"i ref ("is"i | "does"i)?
k_closer_to_than: closer_w _tofrom ref "than"i _tofrom ref
k_bigger: bigger_w "than"i ref

q_pair: ("are"i | "do"i) ref "and"i ref pairword_w                                   -> pair_q

_relation_word: _rel_mod? ("relation"i | "relationship"i | "relations"i | "relationships"i) | "topology"i | "de-9im"i
_rel_mod: "topological"i | "spatial"i | "de-9im"i | "de9im"i
q_relation: _what? _the? _relation_word ("between"i | "of"i) ref ("and"i | "to"i | "with"i) ref  -> relation
          | "how"i ("is"i | "does"i) ref ("relate"i | "related"i) ("to"i | "with"i) ref              -> relation
          | "how"i "are"i ref "and"i ref ("spatially"i | "topologically"i)? ("related"i | "arranged"i)   -> relation
          | _relation_word ref ref                                                               -> relation

_howmany: "how"i "many"i | "count"i ("the"i | "all"i)? | "number"i "of"i | _what _the "number"i "of"i
        | _what _the "count"i "of"i
_there_tail: ("are"i | "is"i)? "there"i | "exist"i | ("are"i | "is"i)? ("in"i | "on"i) "the"i ("scene"i | "image"i | "picture"i | "map"i)
           | "in"i "total"i | "altogether"i
q_count: _howmany set _there_tail*                                            -> count
       | "how"i "many"i cls ("does"i | "do"i) ref ("contain"i | "have"i | "hold"i | "include"i)   -> count_contained

_rank_verb: "is"i | "are"i | "lies"i | "lie"i | "sits"i | "is"i "located"i | "is"i "situated"i
k_num: NUMBER
q_rank: _which set _rank_verb? _the? rank_w "one"i? _away? _tofrom ref               -> rank
      | _which set _rank_verb? closer_w _away? _tofrom ref                               -> rank_cmp
      | _which k_num cls _rank_verb? _the? rank_w _away? _tofrom ref                   -> rank_k
      | _what (_is? _the)? rank_w set _away? _tofrom ref                               -> rank_pre
      | _which _is _the rank_w set _away? _tofrom ref                                  -> rank_pre
      | _what (_is? _the)? k_num rank_w set _away? _tofrom ref                         -> rank_pre_k
      | _the? rank_w set _away? _tofrom ref                                            -> rank_pre

q_exists: ("are"i | "is"i) "there"i ("any"i | "some"i)? set                       -> exists
        | ("does"i | "do"i) set "exist"i                                          -> exists

q_extreme: _which _is _the selector_w set                -> extreme
         | _which set _is _the? selector_w               -> extreme_post
         | ("find"i | "show"i | "name"i | "give"i "me"i | "get"i) _the selector_w set  -> extreme
         | _the? selector_w set                          -> extreme

_area_word: "area"i | "size"i | "surface"i "area"i | "footprint"i
q_area: _what? _the? ("geodesic"i | "surface"i)? _area_word ("of"i | "covered"i "by"i) ref  -> area
      | "how"i ("large"i | "big"i) _is ref                            -> area
      | "how"i "much"i "area"i "does"i ref ("cover"i | "take"i "up"i | "occupy"i)   -> area
      | "how"i "many"i aunit_w ("is"i | "does"i) ref ("cover"i | "have"i | "occupy"i)?  -> area_in
      | ref "area"i                                                     -> area
q_length: _what? _the? "geodesic"i? ("length"i | "perimeter"i | "circumference"i) "of"i ref   -> length
        | "how"i "long"i _is ref                                                  -> length
        | "how"i "many"i dunit_w "long"i _is ref                                     -> length_in
q_total: _what? _the? ("total"i | "combined"i | "overall"i | "whole"i) _area_word ("of"i | "covered"i "by"i | "occupied"i "by"i) set -> total_area
       | "how"i "much"i "area"i "do"i set ("cover"i | "occupy"i | "take"i "up"i)        -> total_area

_map_tail: ("on"i | "in"i) "the"i ("map"i | "image"i | "picture"i)
q_aggregate.2: _what? _the? stat_w _dist_word ("from"i | "of"i | "between"i) set ("to"i | "from"i | "and"i) ref  -> agg_distance
           | _what? _the? stat_w ("area"i | "size"i | "areas"i | "sizes"i) "of"i set                  -> agg_area
           | _what? _the? stat_w ("length"i | "lengths"i) "of"i set                                   -> agg_length
           | _what? _the? "sum"i "of"i "the"i? ("areas"i | "sizes"i) "of"i set                       -> agg_area_sum
           | _what? _the? "sum"i "of"i "the"i? "lengths"i "of"i set                                 -> agg_length_sum
           | "on"i "average"i ","? _how_far ("are"i | "is"i) set ("from"i | "to"i) ref              -> agg_distance_mean
           | _how_far ("are"i | "is"i) set ("from"i | "to"i) ref "on"i "average"i                   -> agg_distance_mean

q_closer: _which "of"i ref ("and"i | "or"i) ref _is closer_w _tofrom ref        -> closer
        | _which _is closer_w _tofrom ref ("," | ":")? CHOICE? ref "or"i CHOICE? ref            -> closer_post
        | _which "one"i _is closer_w _tofrom ref ("," | ":")? CHOICE? ref "or"i CHOICE? ref     -> closer_post
        | "is"i ref "or"i ref closer_w _tofrom ref                              -> closer

_show: "show"i "me"i? | "list"i | "find"i | "give"i "me"i? | "display"i | "return"i | "highlight"i | "select"i
     | "which"i | "what"i | "name"i | "get"i | "enumerate"i | "identify"i
q_list: _show "me"i? ("all"i | "every"i | "the"i)* set _there_tail*                 -> list
q_which_ref: (_which _is | "find"i | "show"i "me"i? | "name"i | "identify"i | _what _is) ref_rank  -> which_ref

_pixels_word: PIXELTAG
q_pixels: ("which"i | "what"i | "show"i "me"i? | "find"i | "mask"i) "all"i? "the"i? _pixels_word ("are"i | "that"i "are"i | "of"i | "belong"i "to"i) set  -> pixels
        | ("show"i | "find"i | "mask"i) "me"i? "all"i? "the"i? cls _pixels_word constraints?    -> pixels_of

// ---- terminals ----------------------------------------------------------------------------
P16: /(?:16|8|4|sixteen|eight|four)[\s\-]*points?(?![\w\-])/i
HASHID: /#[\w][\w.:\-]*(?<![.:])/
CHOICE: /\(\s*(?:first|second|1|2|a|b|i|ii)\s*\)/i
CAP_A.2: /A(?![\w\-])/
BAREID: /(?i:(?!EPSG:)(?!de-?9im)(?!(?:km|m|mi|ft|sq)\d?(?![\w\-])))(?:[A-Za-z][\w.:\-]*\d[\w.:\-]*(?<![.:])|[A-DF-HJ-MO-RT-VX-Z])(?![\w\-])/
NUMBER: /[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?![\w])/
DIST: /(?:__NUM__)\s*(?:__UNIT__)__END__/i
PIXELTAG: /(?:\(\s*pixels?(?:\s+coordinates)?\s*\)|(?:in\s+)?(?:image\s+)?pixels?(?:\s+coordinates)?)(?![\w\-])/i
CRSTAG: /(?:\(\s*EPSG:\d+\s*\)|(?:in\s+)?EPSG:\d+)/i
LONLATTAG: /(?:\(\s*(?:lon\/lat|lonlat|wgs84|wgs\s*84)\s*\)|(?:in\s+)?(?:lon\/lat|lonlat|wgs84|wgs\s*84))(?![\w\-])/i
GEOMLIT: /(?:(?:POINT|LINESTRING|POLYGON|MULTIPOINT|MULTILINESTRING|MULTIPOLYGON)\s*(?:ZM|Z|M)?\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)|\[\s*[\[\(][^\[\]]*?[\]\)](?:\s*,\s*[\[\(][^\[\]]*?[\]\)])*\s*\]|\(\s*\([^()]*?\)(?:\s*,\s*\([^()]*?\))*\s*\)|[\[\(]\s*__CNUM__(?:\s*[,\s]\s*__CNUM__){1,3}\s*[\]\)])/i
WORD: /(?!(?i:__RESERVED__)(?![\w\-]))[A-Za-z]{2,}(?:-[A-Za-z]+)*(?![\w\-])/

%import common.WS
%ignore WS
"""

#: Words that never form part of a class name (beyond the grammar's own keywords).
_EXTRA_RESERVED = (
    "a an the of to from in on at by with and or than as is are was be been lie lies lying "
    "located situated which what that how many much far close near nearest closest farthest "
    "furthest distant most more less pixel pixels point line polyline linestring polygon bbox "
    "box rectangle region zone area object objects feature features thing things item items "
    "its it there their them this these those one ones"
).split()


#: Word classes of the grammar: rule name -> (terminal-like kind the compiler reads, phrases).
_WORD_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dir_w": ("DIR", tuple(DIRECTIONS)),
    "selector_w": ("SELECTOR", tuple(SELECTORS)),
    "rank_w": ("RANK", ("nearest", "closest", "farthest", "furthest", "most distant", "remotest")),
    "stat_w": ("STAT", (*STATS, "smallest", "largest", "shortest", "longest")),
    "closer_w": ("CLOSER", ("closer", "nearer", "farther", "further", "more distant")),
    "bigger_w": ("BIGGER", ("larger", "bigger", "smaller", "longer", "shorter")),
    "centroidword_w": ("CENTROIDWORD", ("centroid", "centroids", "centre", "centres", "center", "centers")),
    "shape_w": (
        "SHAPE",
        ("point", "line", "polyline", "linestring", "polygon", "bbox", "box", "bounding box", "rectangle"),
    ),
    "predword_w": (
        "PREDWORD",
        (
            *PREDICATE_WORDS,
            "next to",
            "inside of",
            "contained within",
            "contained by",
            "part of",
        ),
    ),
    "predverb_w": (
        "PREDVERB",
        (
            *(w for w in PREDICATE_WORDS if " " not in w and not w.endswith("ing") and w not in _NOT_VERBS),
            "lie in",
            "lie within",
            "lie inside",
            "sit in",
            "sit within",
            "fall in",
            "fall within",
        ),
    ),
    "pairword_w": (
        "PAIRWORD",
        (
            "disjoint",
            "touching",
            "adjacent",
            "bordering",
            "equal",
            "the same",
            "identical",
            "overlapping",
            "intersecting",
            "connected",
            "separate",
            "apart",
            "intersect",
            "overlap",
            "touch",
            "cross",
            "border",
            "meet",
        ),
    ),
    "dunit_w": ("DUNIT", tuple(UNITS)),
    "aunit_w": ("AUNIT", tuple(AREA_UNITS)),
}


def _nullable_options(text: str) -> str:
    """Rewrite ``x?`` and ``(a | b)?`` in rules as nullable helper rules.

    Lark expands each optional into two copies of its rule, so a rule with k optionals
    becomes 2**k rules and Earley prediction slows down accordingly; a nullable rule keeps
    it one rule (the parse trees are the same: helper rules start with ``_`` and inline).
    """
    head, sep, tail = text.partition("// ---- terminals")
    extra: dict[str, str] = {}

    def name_for(body: str) -> str:
        return extra.setdefault(body.strip(), f"_opt{len(extra)}")

    while True:
        new = re.sub(r"\(([^()\n]*)\)\?", lambda m: name_for(m.group(1)), head)
        new = re.sub(r"(?<![\w\"])([A-Za-z_][A-Za-z0-9_]*)\?(?![\w])", lambda m: name_for(m.group(1)), new)
        if new == head:
            break
        head = new
    rules = "".join(f"{name}: {body} |\n" for body, name in extra.items())
    return head + rules + sep + tail


#: Keyword terminal name -> its word (for error messages; filled by :func:`_grammar_text`).
_KEYWORD_TEXT: dict[str, str] = {}


def _keyword_text() -> dict[str, str]:
    """:data:`_KEYWORD_TEXT`, filled (a parser loaded from the cache skips the grammar text)."""
    _grammar_text()
    return _KEYWORD_TEXT


@lru_cache(maxsize=1)
def _grammar_text() -> str:
    text = _GRAMMAR
    for rule, (_kind, phrases) in _WORD_RULES.items():
        alts = sorted({" ".join(f'"{w}"i' for w in p.split()) for p in phrases})
        text += f"{rule}: " + " | ".join(alts) + "\n"
    # sorted longest first, ties by text: the same grammar text in every process (the key
    # of the cached parser); set order would differ with string hashing
    literals = sorted(set(re.findall(r'"([^"\s]+)"i', text)), key=lambda w: (-len(w), w))
    words = set(_EXTRA_RESERVED) | {w.lower() for w in literals if re.fullmatch(r"[A-Za-z][\w'\-]*", w)}
    words |= {"centroid", "centroids", "centre", "centres", "center", "centers", "closer", "nearer"}
    reserved = "|".join(sorted((re.escape(w) for w in words), key=lambda w: (-len(w), w)))
    defs = []
    for n, lit in enumerate(literals):
        name = "K_" + re.sub(r"[^A-Z0-9]", "_", lit.upper()) + f"_{n}"
        end = _END if lit[-1].isalnum() or lit[-1] == "²" else ""
        flags = "" if lit == "a" else "i"  # "A" alone is an object id, "a" the article
        defs.append(f"{name}: /{re.escape(lit)}{end}/{flags}")
        _KEYWORD_TEXT[name] = lit
        text = text.replace(f'"{lit}"i', name)
    text = _nullable_options(text)
    text = (
        text.replace("__NUM__", _NUM)
        .replace("__CNUM__", _CNUM)
        .replace("__UNIT__", _UNIT_RE)
        .replace("__AREA__", _AREA_RE)
        .replace("__DIR__", _DIR_RE)
        .replace("__END__", _END)
        .replace("__RESERVED__", reserved)
    )
    return text + "\n" + "\n".join(defs) + "\n"


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The Earley parser of the question grammar (built once).

    Building it (grammar analysis, ~0.3 s) would be most of ``ask``'s start-up, so the
    built parser is kept on disk (:func:`parser_cache_path`, keyed by this module's source
    and the lark and Python versions) and loaded from there (~0.02 s) by later processes,
    with its lexer's scanner built (lark builds it on the first question: ~30 ms, half of
    it matching every keyword against every other terminal). Lark caches only LALR
    parsers itself. A missing, stale or unreadable cache file is rebuilt; an unwritable
    cache folder only costs the rebuild.
    """
    path = parser_cache_path()
    try:
        with open(path, "rb") as fh:
            if trusted_cache_file(fh.fileno()):
                cached = _ParserUnpickler(fh).load()
                if isinstance(cached, Lark):
                    return cached
    except Exception:  # noqa: BLE001 - any unreadable or refused cache is rebuilt
        pass
    built = Lark(_grammar_text(), start="start", parser="earley", lexer="basic", ambiguity="resolve")
    lexer = getattr(built.parser, "lexer", None)
    if type(lexer) is BasicLexer:
        assert isinstance(lexer.scanner, Scanner)  # built now, so that it is kept in the file
    # the grammar's definitions (``Lark.grammar``) are used only while building: left out of
    # the file they are a third of it and three quarters of its load time (52 -> 13 ms)
    definitions, built.grammar = built.grammar, None  # type: ignore[assignment]
    try:
        built = _interned(built)
        write_cache_file(path, lambda fh: _ModulePickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(built))
    except Exception:  # noqa: BLE001 - no cache (read-only home, unpicklable): build each time
        pass
    finally:
        built.grammar = definitions
    return built


def _interned(built: Lark) -> Lark:
    """A copy of ``built`` with one object per grammar symbol.

    Lark makes a new ``NonTerminal``/``Terminal`` each time a rule names a symbol (2,555
    objects for 563 symbols); they are equal by name, so the Earley parser's sets and
    dicts fall back to Python-level ``__eq__`` calls whenever two copies meet. With one
    object per symbol those lookups stop at identity (a question parses ~14% faster) and
    the cache file holds 2,000 fewer objects. Symbols stay equal to the same symbols as
    before (a ``Terminal``'s ``filter_out``, which equality ignores, is kept apart)."""
    symbols: dict[tuple[Any, ...], Symbol] = {}

    class Out(_ModulePickler):
        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is NonTerminal:
                return ("N", obj.name)
            if type(obj) is Terminal:
                return ("T", obj.name, obj.filter_out)
            return None

    class In(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid not in symbols:
                symbols[pid] = NonTerminal(pid[1]) if pid[0] == "N" else Terminal(pid[1], filter_out=pid[2])
            return symbols[pid]

    buf = io.BytesIO()
    Out(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(built)
    buf.seek(0)
    copy = In(buf).load()
    if not isinstance(copy, Lark):
        raise TypeError("the interned parser is not a parser")
    return copy


def parser_cache_path(text: str | None = None) -> Path:
    """Where the built parser is cached: ``$GEOREASON_CACHE_DIR`` (default
    ``$XDG_CACHE_HOME/georeason``, else ``~/.cache/georeason``) / ``grammar-<key>.pickle``.

    The key hashes ``text`` when given; else this module's source and the compass table it
    takes from :mod:`~georeason.geo.vector.measure` (everything the grammar text is made
    from: making the text itself costs ~10 ms), or the grammar text where the source
    cannot be read. Both with lark's and Python's versions and the file's format."""
    if text is None:
        try:
            text = "source\0" + Path(__file__).read_text(encoding="utf-8") + "\0" + repr(COMPASS_16)
        except OSError:
            text = _grammar_text()
    key = hashlib.sha256(
        "\0".join([text, lark.__version__, sys.version, _CACHE_FORMAT]).encode()
    ).hexdigest()[:20]
    return cache_dir() / f"grammar-{key}.pickle"


# What a cached parser may name when it is loaded: exactly the lark classes a built Earley
# parser consists of, ``functools.partial`` over those, and module references (lark keeps
# ``re`` in its lexer settings) limited to ``_CACHE_MODULES``. Anything else in the file
# (a planted ``os.system``, ``builtins.eval``, ...) is refused and the parser rebuilt: a
# cache file can make georeason slower, never run code.
_CACHE_GLOBALS = frozenset(
    {
        ("functools", "partial"),
        ("lark.common", "LexerConf"),
        ("lark.common", "ParserConf"),
        ("lark.grammar", "NonTerminal"),
        ("lark.grammar", "Rule"),
        ("lark.grammar", "RuleOptions"),
        ("lark.grammar", "Terminal"),
        ("lark.lark", "Lark"),
        ("lark.lark", "LarkOptions"),
        ("lark.lexer", "BasicLexer"),
        ("lark.lexer", "PatternRE"),
        ("lark.lexer", "PatternStr"),
        ("lark.lexer", "Scanner"),
        ("lark.lexer", "UnlessCallback"),
        ("lark.lexer", "TerminalDef"),
        ("lark.lexer", "Token"),
        ("lark.parse_tree_builder", "ChildFilterLALR_NoPlaceholders"),
        ("lark.parse_tree_builder", "ExpandSingleChild"),
        ("lark.parse_tree_builder", "ParseTreeBuilder"),
        ("lark.parser_frontends", "ParsingFrontend"),
        ("lark.parser_frontends", "_match_earley_basic"),
        ("lark.parsers.earley", "Parser"),
        ("lark.parsers.earley_forest", "ForestSumVisitor"),
        ("lark.parsers.earley_forest", "StableSymbolNode"),
        ("lark.tree", "Meta"),
        ("lark.tree", "Tree"),
        ("lark.utils", "OrderedSet"),
        ("re", "_compile"),  # a compiled regular expression: ``re._compile(pattern, flags)``
        ("georeason.geo.language.grammar", "_compiled_regex"),  # ... or from its code
    }
)
_CACHE_MODULES = frozenset({"re"})
#: what the file holds: a built parser without its grammar definitions, its lexer's scanner
#: built, one object per symbol, regular expressions with their code (part of the key)
_CACHE_FORMAT = "earley-without-definitions-with-scanner-interned-sre-3"


def _cached_module(name: str) -> types.ModuleType:
    if name not in _CACHE_MODULES:
        raise pickle.UnpicklingError(f"module {name!r} is not allowed in a parser cache")
    return importlib.import_module(name)


class _ParserUnpickler(pickle.Unpickler):
    """Loads a cached parser, resolving only the names in ``_CACHE_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("importlib", "import_module"):
            return _cached_module
        if (module, name) not in _CACHE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a parser cache")
        return super().find_class(module, name)


class _ModulePickler(pickle.Pickler):
    """Pickles module references (lark keeps the ``re`` module in its lexer settings) by
    name, and compiled regular expressions with their compiled code (:func:`_regex_code`)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, re.Pattern):
            args = _regex_code(obj)
            if args is not None:
                return _compiled_regex, args
        return NotImplemented


# Python's ``re`` compiles an expression in Python (``re._parser``, ``re._compiler``) and
# hands the resulting code to the C engine (``_sre.compile``). The lexer's one expression
# of 402 terminals (19,600 characters) takes ~15 ms to compile: a third of loading the
# cached parser, for the same code every time. The cache keeps the code (the file's key
# includes Python's exact version) and loading hands it to the engine directly, which
# checks it (invalid code raises); any failure compiles the text as ``re`` would.
_SRE = importlib.import_module("_sre")


def _regex_code(p: re.Pattern[Any]) -> tuple[Any, ...] | None:
    """The arguments of ``_sre.compile`` that make ``p`` (checked: the pattern they make
    equals ``p``), or ``None``."""
    try:
        parser_mod = importlib.import_module("re._parser")
        compiler_mod = importlib.import_module("re._compiler")
        parsed = parser_mod.parse(p.pattern, p.flags)
        code = [int(c) for c in compiler_mod._code(parsed, p.flags)]  # plain ints (not named constants)
        groupindex = dict(parsed.state.groupdict)
        indexgroup: list[str | None] = [None] * parsed.state.groups
        for k, i in groupindex.items():
            indexgroup[i] = k
        args = (
            p.pattern,
            p.flags | parsed.state.flags,
            code,
            parsed.state.groups - 1,
            groupindex,
            tuple(indexgroup),
        )
        if _SRE.compile(*args) != p:
            return None
    except Exception:  # noqa: BLE001 - another Python's internals: pickled as re does
        return None
    return args


def _compiled_regex(
    pattern: Any,
    flags: int,
    code: list[int],
    groups: int,
    groupindex: dict[str, int],
    indexgroup: tuple[Any, ...],
) -> re.Pattern[Any]:
    """The compiled regular expression of :func:`_regex_code`'s arguments; compiled from
    its text when the engine refuses them."""
    try:
        compiled = _SRE.compile(pattern, flags, code, groups, groupindex, indexgroup)
        if isinstance(compiled, re.Pattern) and compiled.pattern == pattern:
            return compiled
    except Exception:  # noqa: BLE001 - refused code: compile the text
        pass
    return re.compile(pattern, flags)


@lru_cache(maxsize=1)
def _lexer() -> BasicLexer:
    """The parser's basic lexer: the one its Earley front end lexes with (loaded with the
    cached parser, so not built again: building one checks every terminal's regular
    expression, ~10 ms), else built once. ``Lark.lex`` of an Earley parser builds a new
    one on each call: 7 ms a question."""
    own = getattr(parser().parser, "lexer", None)
    return own if type(own) is BasicLexer else BasicLexer(parser().lexer_conf)


def _lex(text: str) -> list[Token]:
    """The tokens of ``text``, as ``parser().lex(text)`` gives them."""
    return list(LexerThread.from_text(_lexer(), text).lex(None))


# ---------------------------------------------------------------------------------------
# compiling a parse tree into program steps
# ---------------------------------------------------------------------------------------
@dataclass
class _Ref:
    """A compiled reference: the step ref and whether it is one scene object."""

    ref: str
    is_object: bool
    text: str = ""


@dataclass
class _Set:
    """A class and its constraints, compiled into select + filter steps on demand."""

    cls: str
    constraints: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Geom:
    tags: list[str]
    shape: str | None
    literal: str


class _Builder:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self._n = 0
        self.last: _Ref | None = None
        self.pixel_question = False
        self.out_unit: str | None = None

    def add(self, op: str, **args: Any) -> str:
        self._n += 1
        sid = f"s{self._n}"
        self.steps.append({"id": sid, "op": op, "args": {k: v for k, v in args.items() if v is not None}})
        return f"${sid}"

    def answer(self, ref: str) -> list[dict[str, Any]]:
        self.add("answer", value=ref)
        return self.steps

    def select(self, s: _Set) -> str:
        objs = self.add("select", cls=s.cls)
        for op, args in s.constraints:
            objs = self.add(op, objects=objs, **args)
        return objs


def _tokens(children: list[Any], kind: str | None = None) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and (kind is None or c.type == kind)]


def _of(children: list[Any], typ: type) -> list[Any]:
    return [c for c in children if isinstance(c, typ)]


def _dist(tok: Token) -> tuple[float, str]:
    m = re.fullmatch(rf"({_NUM})\s*(.+)", str(tok).strip(), re.IGNORECASE)
    assert m is not None
    unit, factor = UNITS[m.group(2).lower()]
    return float(m.group(1).replace(",", "")) * factor, unit


def _number(tok: Token) -> float:
    return float(str(tok).replace(",", ""))


def _to_m(value: float, unit: str) -> float:
    return value * {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}[unit]


class _Marker(str):
    """A flag a rule contributes to its parent (centroid mode, 16 points, a method)."""


class _Compiler(Transformer):
    """Bottom-up: references become steps as they are met (left to right), so ``it`` and
    ``its`` refer to the reference named last."""

    def __init__(self, builder: _Builder) -> None:
        super().__init__()
        self.b = builder

    # -- leaves ----------------------------------------------------------------------------
    def __default__(self, data, children, meta):
        kind = _WORD_RULES.get(str(data), (None,))[0]
        if kind is not None:  # a word class: one token of that kind, its words joined
            return Token(kind, " ".join(str(t) for t in children).lower())
        return super().__default__(data, children, meta)

    def cls(self, ch):
        return " ".join(str(t).lower() for t in _tokens(ch))

    def gtag(self, ch):
        return ch[0]

    def geom(self, ch):
        toks = _tokens(ch)
        tags = [str(t) for t in toks if t.type in ("PIXELTAG", "CRSTAG", "LONLATTAG")]
        shape = next((str(t).lower() for t in toks if t.type == "SHAPE"), None)
        lit = next(str(t) for t in toks if t.type == "GEOMLIT")
        if any(re.search("pixel", t, re.IGNORECASE) for t in tags):
            self.b.pixel_question = True
        return _Geom(tags, shape, lit)

    def centres(self, ch):
        return _Marker("centroid")

    def cmode(self, ch):
        return _Marker("centroid")

    def method_dist(self, ch):
        return _Marker("centroid")

    def method(self, ch):
        words = " ".join(str(t).lower() for t in _tokens(ch))
        return _Marker("nearest_part" if "nearest" in words else "centroid_method")

    def p16(self, ch):
        n = re.search(r"\d+|sixteen|eight", " ".join(str(t) for t in _tokens(ch)), re.IGNORECASE)
        word = n.group(0).lower() if n else "8"
        return _Marker("points:" + {"sixteen": "16", "eight": "8"}.get(word, word))

    def unit_suffix(self, ch):
        tok = _tokens(ch)[-1]
        self.b.out_unit = _out_unit(str(tok))
        return _Marker("unit")

    question_unit = unit_suffix
    unit_inline = unit_suffix

    def k_num(self, ch):
        return _Marker("k:" + str(int(_number(_tokens(ch)[0]))))

    # -- references --------------------------------------------------------------------------
    def _ref(self, ref: str, is_object: bool, text: str = "") -> _Ref:
        r = _Ref(ref, is_object, text)
        self.b.last = r
        return r

    def ref_id(self, ch):
        tok = next(t for t in _tokens(ch) if t.type in ("HASHID", "BAREID", "WORD", "CAP_A"))
        oid = str(tok).lstrip("#")
        return self._ref(self.b.add("object", id=oid), True, oid)

    def ref_the(self, ch):
        cls = ch[-1]
        objs = self.b.add("select", cls=cls)
        return self._ref(self.b.add("the", objects=objs, pick="only"), True, f"the {cls}")

    def ref_sel(self, ch):
        sel = SELECTORS[str(_tokens(ch, "SELECTOR")[0]).lower()]
        s = _of(ch, _Set)[0]
        return self._ref(self.b.add("the", objects=self.b.select(s), pick=sel), True, f"the {sel} {s.cls}")

    def ref_at(self, ch):
        cls = next(c for c in ch if isinstance(c, str) and not isinstance(c, Token))
        g = self._geometry(_of(ch, _Geom)[0])
        return self._ref(self.b.add("at", cls=cls, geometry=g), True, f"the {cls} at ...")

    def ref_geom(self, ch):
        return self._ref(self._geometry(_of(ch, _Geom)[0]), False, "the given geometry")

    def ref_it(self, ch):
        if self.b.last is None:
            raise QuestionParseError("'it' refers to nothing named before it; name the object instead")
        return self.b.last

    def ref_its(self, ch):  # does not become 'it': "its nearest well" leaves 'it' the lake
        if self.b.last is None:
            raise QuestionParseError("'its' refers to nothing named before it; name the object instead")
        op = _rank_op(_tokens(ch, "RANK")[0])
        cls = [c for c in ch if isinstance(c, str) and not isinstance(c, (Token, _Marker))][-1]
        to = self.b.last
        ref = self.b.add(op, objects=self.b.add("select", cls=cls), to=to.ref, k=1)
        return _Ref(ref, True, f"its {op} {cls}")

    def ref_rank(self, ch):
        op = _rank_op(_tokens(ch, "RANK")[0])
        to = _of(ch, _Ref)[-1]
        sets = _of(ch, _Set)
        if sets:
            objs = self.b.select(sets[0])
        else:
            cls = [c for c in ch if isinstance(c, str) and not isinstance(c, Token)][0]
            objs = self.b.add("select", cls=cls)
        # a ranked reference does not become 'it': in "the nearest building to the lake
        # from it", 'it' is the lake
        return _Ref(self.b.add(op, objects=objs, to=to.ref, k=1), True, f"the {op} ...")

    def _geometry(self, g: _Geom) -> str:
        crs = "EPSG:4326"
        for t in g.tags:
            m = re.search(r"EPSG:\d+", t, re.IGNORECASE)
            if m:
                crs = m.group(0).upper()
            elif re.search("pixel", t, re.IGNORECASE):
                crs = "pixel"
        if (
            crs == "EPSG:4326"
            and self.b.pixel_question
            and not any(re.search(r"lon|wgs", t, re.IGNORECASE) for t in g.tags)
        ):
            crs = "pixel"
        shape = {
            "polyline": "line",
            "linestring": "line",
            "line": "line",
            "polygon": "polygon",
            "point": "point",
        }.get(g.shape or "")
        lit = g.literal.strip()
        m = re.fullmatch(rf"point\s*\(\s*({_CNUM})\s*,\s*({_CNUM})\s*\)", lit, re.IGNORECASE)
        if m:  # "point (x, y)": the shape word and a coordinate pair, not WKT
            return self.b.add(
                "geometry", coords=[[float(m.group(1)), float(m.group(2))]], shape="point", crs=crs
            )
        if re.match(r"[A-Za-z]", lit):
            return self.b.add("geometry", wkt=lit, crs=crs)
        nums = [float(x) for x in re.findall(_CNUM, lit)]
        if re.match(r"^[\[\(]\s*[\[\(]", lit):
            if len(nums) % 2:
                raise QuestionParseError(f"the coordinate list {lit!r} has an odd number of values")
            pts = [[nums[i], nums[i + 1]] for i in range(0, len(nums), 2)]
            return self.b.add("geometry", coords=pts, shape=shape, crs=crs)
        if len(nums) == 4:
            return self.b.add("geometry", bbox=nums, crs=crs)
        if len(nums) == 2:
            return self.b.add("geometry", coords=[nums], shape="point", crs=crs)
        raise QuestionParseError(f"cannot read the geometry {lit!r}: give 2 numbers (a point) or 4 (a bbox)")

    # -- sets -------------------------------------------------------------------------------
    def set(self, ch):
        cls = [c for c in ch if isinstance(c, str) and not isinstance(c, Token)][0]
        cons = next((c for c in ch if isinstance(c, list)), [])
        return _Set(cls, cons)

    def constraints(self, ch):
        return [c for c in ch if isinstance(c, tuple)]

    def c_within(self, ch):
        d, u = _dist(_tokens(ch, "DIST")[0])
        return ("within_distance", {"of": _of(ch, _Ref)[-1].ref, "distance": d, "unit": u})

    def c_beyond(self, ch):
        d, u = _dist(_tokens(ch, "DIST")[0])
        return ("distance_filter", {"of": _of(ch, _Ref)[-1].ref, "at_least": d, "unit": u})

    def c_between(self, ch):
        lo, hi, u = _range(ch)
        return ("distance_filter", {"of": _of(ch, _Ref)[-1].ref, "at_least": lo, "at_most": hi, "unit": u})

    def c_dir(self, ch):
        d = _of(ch, _Direction)[0]
        return ("in_direction", {"of": _of(ch, _Ref)[-1].ref, "direction": d.name, "method": _method(ch)})

    def c_pred(self, ch):
        p = _pred(_tokens(ch, "PREDWORD")[0])
        ref = _of(ch, _Ref)[-1].ref
        if p == "within":
            return ("inside", {"region": ref, "mode": "within"})
        return ("related", {"to": ref, "predicate": p})

    def c_not_pred(self, ch):
        p = _pred(_tokens(ch, "PREDWORD")[0])
        if p != "intersects":
            raise QuestionParseError(
                f"'do not {_tokens(ch, 'PREDWORD')[0]}' is not supported; ask for the relation"
            )
        return ("related", {"to": _of(ch, _Ref)[-1].ref, "predicate": "disjoint"})

    def dirphrase(self, ch):
        return _Direction(DIRECTIONS[re.sub(r"\s+", " ", str(_tokens(ch, "DIR")[0]).lower())])

    # -- questions --------------------------------------------------------------------------
    def start(self, ch):
        return next(c for c in ch if isinstance(c, (_Pending, _Bool)))

    def _distance(self, ch, unit: str | None = None):
        refs = _of(ch, _Ref)
        mode = "centroid" if any(isinstance(c, _Marker) and c == "centroid" for c in ch) else "min"
        return _Pending("distance", {"a": refs[0].ref, "b": refs[1].ref, "mode": mode}, "length", unit)

    def distance(self, ch):
        return self._distance(ch)

    def distance_in(self, ch):
        return self._distance(ch, _out_unit(str(_tokens(ch, "DUNIT")[0])))

    def _direction(self, to: _Ref, frm: _Ref, ch):
        points = 8
        for c in ch:
            if isinstance(c, _Marker) and c.startswith("points:"):
                points = int(c.split(":")[1])
        return _Pending(
            "direction", {"a": frm.ref, "b": to.ref, "points": points, "method": _method(ch)}, None, None
        )

    def direction_tf(self, ch):
        refs = _of(ch, _Ref)
        return self._direction(refs[0], refs[1], ch)

    def direction_ft(self, ch):
        refs = _of(ch, _Ref)
        return self._direction(refs[1], refs[0], ch)

    def bearing_ft(self, ch):
        refs = _of(ch, _Ref)
        return _Pending("bearing", {"a": refs[0].ref, "b": refs[1].ref, "method": _method(ch, "centroid")})

    def bearing_tf(self, ch):
        refs = _of(ch, _Ref)
        return _Pending("bearing", {"a": refs[1].ref, "b": refs[0].ref, "method": _method(ch, "centroid")})

    # yes/no conditions: functions of the subject
    def k_within(self, ch):
        d, u = _dist(_tokens(ch, "DIST")[0])
        return _Cond("distance", _of(ch, _Ref)[-1], "le", d, u)

    def k_beyond(self, ch):
        d, u = _dist(_tokens(ch, "DIST")[0])
        words = " ".join(str(t).lower() for t in _tokens(ch))
        rel = "ge" if "least" in words else "gt"
        return _Cond("distance", _of(ch, _Ref)[-1], rel, d, u)

    def k_between(self, ch):
        lo, hi, u = _range(ch)
        return _Cond("between", _of(ch, _Ref)[-1], "between", (lo, hi), u)

    def k_dir(self, ch):
        d = _of(ch, _Direction)[0]
        return _Cond("direction", _of(ch, _Ref)[-1], d.name, _method(ch), None)

    def k_pred(self, ch):
        return _Cond("predicate", _of(ch, _Ref)[-1], _pred(_tokens(ch, "PREDWORD")[0]), None, None)

    def k_closer(self, ch):
        refs = _of(ch, _Ref)
        rel = "lt" if _closer(ch) else "gt"
        return _Cond("closer_than_other", refs[0], rel, refs[1], None)

    def k_closer_to_than(self, ch):
        refs = _of(ch, _Ref)
        rel = "lt" if _closer(ch) else "gt"
        return _Cond("closer_to_than", refs[0], rel, refs[1], None)

    def k_bigger(self, ch):
        word = str(_tokens(ch, "BIGGER")[0]).lower()
        measure = "area" if word in ("larger", "bigger", "smaller") else "length"
        rel = "gt" if word in ("larger", "bigger", "longer") else "lt"
        return _Cond("bigger", _of(ch, _Ref)[-1], rel, measure, None)

    def is_q(self, ch):
        subject = _of(ch, _Ref)[0]
        conds = _of(ch, _Cond)
        return _Bool(subject, conds)

    def does_q(self, ch):
        refs = _of(ch, _Ref)
        word = re.sub(r"\s+", " ", str(_tokens(ch, "PREDVERB")[0]).lower())
        word = re.sub(r"^(?:lie|sit|fall) ", "", word)
        p = PREDICATE_WORDS.get(word) or PREDICATE_WORDS[word + "s"]
        return _Pending("predicate", {"a": refs[0].ref, "b": refs[1].ref, "predicate": p})

    def pair_q(self, ch):
        refs = _of(ch, _Ref)
        word = re.sub(r"\s+", " ", str(_tokens(ch, "PAIRWORD")[0]).lower())
        if word in ("separate", "apart"):
            word = "disjoint"
        pred = {
            "disjoint": "disjoint",
            "touching": "touches",
            "touch": "touches",
            "adjacent": "touches",
            "bordering": "touches",
            "border": "touches",
            "meet": "touches",
            "equal": "equals",
            "the same": "equals",
            "identical": "equals",
            "overlapping": "intersects",
            "overlap": "intersects",
            "intersecting": "intersects",
            "intersect": "intersects",
            "connected": "intersects",
            "cross": "crosses",
        }[word]
        return _Pending("predicate", {"a": refs[0].ref, "b": refs[1].ref, "predicate": pred})

    def relation(self, ch):
        refs = _of(ch, _Ref)
        return _Pending("relation", {"a": refs[0].ref, "b": refs[1].ref})

    def count(self, ch):
        return _Pending("count", {"objects": self.b.select(_of(ch, _Set)[0])})

    def count_contained(self, ch):
        cls = [c for c in ch if isinstance(c, str) and not isinstance(c, Token)][0]
        ref = _of(ch, _Ref)[-1]
        objs = self.b.add("inside", objects=self.b.add("select", cls=cls), region=ref.ref, mode="within")
        return _Pending("count", {"objects": objs})

    def _rank(self, ch, k: int = 1):
        op = _rank_op(_tokens(ch, "RANK")[0])
        for c in ch:
            if isinstance(c, _Marker) and c.startswith("k:"):
                k = int(c[2:])
        sets = _of(ch, _Set)
        to = _of(ch, _Ref)[-1]
        if sets:
            objs = self.b.select(sets[0])
        else:
            cls = [c for c in ch if isinstance(c, str) and not isinstance(c, (Token, _Marker))][0]
            objs = self.b.add("select", cls=cls)
        return _Pending(op, {"objects": objs, "to": to.ref, "k": k})

    rank = _rank

    def rank_cmp(self, ch):  # "which lake is closer to the well": the nearer of the set
        word = str(_tokens(ch, "CLOSER")[0]).lower()
        to = _of(ch, _Ref)[-1]
        objs = self.b.select(_of(ch, _Set)[0])
        op = "nearest" if word in ("closer", "nearer") else "farthest"
        return _Pending(op, {"objects": objs, "to": to.ref, "k": 1})

    def exists(self, ch):
        n = self.b.add("count", objects=self.b.select(_of(ch, _Set)[0]))
        return _Pending("compare", {"a": n, "relation": "gt", "value": 0})

    rank_k = _rank
    rank_pre = _rank
    rank_pre_k = _rank

    def _extreme(self, ch):
        sel = SELECTORS[str(_tokens(ch, "SELECTOR")[0]).lower()]
        op = "argmax" if sel in ("largest", "longest") else "argmin"
        by = "area" if sel in ("largest", "smallest") else "length"
        return _Pending(op, {"objects": self.b.select(_of(ch, _Set)[0]), "by": by})

    extreme = _extreme
    extreme_post = _extreme

    def area(self, ch):
        return _Pending("area", {"of": _of(ch, _Ref)[-1].ref}, "area")

    def area_in(self, ch):
        return _Pending(
            "area", {"of": _of(ch, _Ref)[-1].ref}, "area", _out_unit(str(_tokens(ch, "AUNIT")[0]))
        )

    def length(self, ch):
        return _Pending("length", {"of": _of(ch, _Ref)[-1].ref}, "length")

    def length_in(self, ch):
        return _Pending(
            "length", {"of": _of(ch, _Ref)[-1].ref}, "length", _out_unit(str(_tokens(ch, "DUNIT")[0]))
        )

    def total_area(self, ch):
        s = _of(ch, _Set)[0]
        region = None
        if s.constraints and s.constraints[-1][0] == "inside":
            region = s.constraints[-1][1]["region"]
            s = _Set(s.cls, s.constraints[:-1])
        return _Pending("total_area", {"objects": self.b.select(s), "region": region}, "area")

    def _aggregate(self, ch, measure: str, stat: str | None = None):
        if stat is None:
            stat = _stat(_tokens(ch, "STAT")[0], measure)
        s = _of(ch, _Set)[0]
        refs = _of(ch, _Ref)
        args: dict[str, Any] = {"objects": self.b.select(s), "measure": measure, "stat": stat}
        if measure == "distance":
            args["to"] = refs[-1].ref
        return _Pending("aggregate", args, "area" if measure == "area" else "length")

    def agg_distance(self, ch):
        return self._aggregate(ch, "distance")

    def agg_distance_mean(self, ch):
        return self._aggregate(ch, "distance", "mean")

    def agg_area(self, ch):
        return self._aggregate(ch, "area")

    def agg_area_sum(self, ch):
        return self._aggregate(ch, "area", "sum")

    def agg_length(self, ch):
        return self._aggregate(ch, "length")

    def agg_length_sum(self, ch):
        return self._aggregate(ch, "length", "sum")

    def closer(self, ch):
        refs = _of(ch, _Ref)
        return self._closer_of(refs[0], refs[1], refs[2], ch)

    def closer_post(self, ch):
        refs = _of(ch, _Ref)
        return self._closer_of(refs[1], refs[2], refs[0], ch)

    def _closer_of(self, a: _Ref, b: _Ref, to: _Ref, ch):
        for r in (a, b):
            if not r.is_object:
                raise QuestionParseError(
                    f"'which of ...' compares objects; {r.text or 'a geometry'} is not one (name objects by id or class)"
                )
        return _Pending("closer", {"a": a.ref, "b": b.ref, "to": to.ref, "farther": not _closer(ch)})

    def list(self, ch):
        s = _of(ch, _Set)[0]
        if not s.constraints:
            return _Pending("select_only", {"set": s})
        return _Pending("set", {"objects": self.b.select(s)})

    def which_ref(self, ch):
        return _Pending("ref", {"ref": _of(ch, _Ref)[0].ref})

    def pixels(self, ch):
        return self._pixels(_of(ch, _Set)[0])

    def pixels_of(self, ch):
        cls = [c for c in ch if isinstance(c, str) and not isinstance(c, Token)][0]
        cons = next((c for c in ch if isinstance(c, list)), [])
        return self._pixels(_Set(cls, cons))

    def _pixels(self, s: _Set):
        # pixel answers clip to the zone asked for (a buffer or a region), as masks should
        if len(s.constraints) == 1 and s.constraints[0][0] in ("within_distance", "inside"):
            op, args = s.constraints[0]
            objs = self.b.add("select", cls=s.cls)
            if op == "inside":
                zone = args["region"]
            else:
                zone = self.b.add("buffer", of=args["of"], distance=args["distance"], unit=args["unit"])
            return _Pending("pixels", {"of": self.b.add("intersection", a=objs, b=zone)})
        return _Pending("pixels", {"of": self.b.select(s)})


@dataclass
class _Direction:
    name: str


@dataclass
class _Cond:
    kind: str
    ref: _Ref
    rel: str
    value: Any
    unit: str | None


@dataclass
class _Bool:
    subject: _Ref
    conds: list[_Cond]


@dataclass
class _Pending:
    """The question's main op, finished (unit applied) once the whole question is read."""

    op: str
    args: dict[str, Any]
    measure: str | None = None
    unit: str | None = None


def _method(ch: list[Any], default: str = "nearest_part") -> str:
    for c in ch:
        if isinstance(c, _Marker) and c == "centroid_method":
            return "centroid"
        if isinstance(c, _Marker) and c == "nearest_part":
            return "nearest_part"
        if isinstance(c, _Marker) and c == "centroid":
            return "centroid"
    return default


def _closer(ch: list[Any]) -> bool:
    word = str(_tokens(ch, "CLOSER")[0]).lower()
    return word in ("closer", "nearer")


def _range(ch: list[Any]) -> tuple[float, float, str]:
    hi, unit = _dist(_tokens(ch, "DIST")[-1])
    if len(_tokens(ch, "DIST")) == 2:
        lo_v, lo_u = _dist(_tokens(ch, "DIST")[0])
        lo = _to_m(lo_v, lo_u) / _to_m(1.0, unit)
    else:
        lo = _number(_tokens(ch, "NUMBER")[0])
    if lo > hi:
        lo, hi = hi, lo
    return lo, hi, unit


def _pred(tok: Token) -> str:
    word = re.sub(r"\s+", " ", str(tok).lower())
    word = {
        "next to": "touching",
        "inside of": "inside",
        "part of": "within",
        "contained within": "contained in",
    }.get(word, word)
    if word == "contained by":
        word = "contained in"
    return PREDICATE_WORDS[word]


def _rank_op(tok: Token) -> str:
    return "nearest" if str(tok).lower() in ("nearest", "closest") else "farthest"


def _stat(tok: Token, measure: str) -> str:
    word = str(tok).lower()
    if word in STATS:
        return STATS[word]
    return "max" if word in ("largest", "longest") else "min"


def _out_unit(word: str) -> str:
    w = re.sub(r"\s+", " ", word.strip().lower())
    if w in AREA_UNITS:
        return AREA_UNITS[w]
    if w in ("kilometers", "kilometres"):
        return "km"
    return UNITS[w][0]


def _finish(b: _Builder, result: Any) -> list[dict[str, Any]]:
    """Add the question's final steps (its unit applied) and the answer."""
    if isinstance(result, _Bool):
        return b.answer(_compile_bool(b, result))
    assert isinstance(result, _Pending), result
    args = dict(result.args)
    unit = result.unit or b.out_unit
    if result.op == "ref":
        return b.answer(args["ref"])
    if result.op == "select_only":
        return b.answer(b.select(args["set"]))
    if result.op == "set":
        return b.answer(args["objects"])
    if result.measure == "length":
        if unit in ("m2", "km2", "ha"):
            raise QuestionParseError(
                f"a distance or length cannot be given in {unit}; ask in m, km, mi or ft"
            )
        args["unit"] = unit or "m"
    elif result.measure == "area":
        if unit is not None and unit not in ("m2", "km2", "ha"):
            raise QuestionParseError(f"an area cannot be given in {unit}; ask in m2, km2 or hectares")
        args["unit"] = unit or "m2"
    elif unit is not None:
        raise QuestionParseError(f"this question's answer has no unit, but it asks for {unit}")
    return b.answer(b.add(result.op, **args))


def _compile_bool(b: _Builder, q: _Bool) -> str:
    parts: list[str] = []
    x = q.subject
    for c in q.conds:
        if c.kind == "distance":
            d = b.add("distance", a=x.ref, b=c.ref.ref, mode="min", unit="m")
            parts.append(b.add("compare", a=d, relation=c.rel, value=c.value, unit=c.unit))
        elif c.kind == "between":
            d = b.add("distance", a=x.ref, b=c.ref.ref, mode="min", unit="m")
            lo, hi = c.value
            lo_ok = b.add("compare", a=d, relation="ge", value=lo, unit=c.unit)
            hi_ok = b.add("compare", a=d, relation="le", value=hi, unit=c.unit)
            parts.append(b.add("both", a=lo_ok, b=hi_ok))
        elif c.kind == "direction":
            parts.append(b.add("is_direction", a=c.ref.ref, b=x.ref, direction=c.rel, method=c.value))
        elif c.kind == "predicate":
            parts.append(b.add("predicate", a=x.ref, b=c.ref.ref, predicate=c.rel))
        elif c.kind == "closer_than_other":  # x closer to ref than other is
            d1 = b.add("distance", a=x.ref, b=c.ref.ref, mode="min", unit="m")
            d2 = b.add("distance", a=c.value.ref, b=c.ref.ref, mode="min", unit="m")
            parts.append(b.add("compare", a=d1, b=d2, relation=c.rel))
        elif c.kind == "closer_to_than":  # x closer to ref than to other
            d1 = b.add("distance", a=x.ref, b=c.ref.ref, mode="min", unit="m")
            d2 = b.add("distance", a=x.ref, b=c.value.ref, mode="min", unit="m")
            parts.append(b.add("compare", a=d1, b=d2, relation=c.rel))
        elif c.kind == "bigger":
            op = c.value
            unit = "m2" if op == "area" else "m"
            m1 = b.add(op, of=x.ref, unit=unit)
            m2 = b.add(op, of=c.ref.ref, unit=unit)
            parts.append(b.add("compare", a=m1, b=m2, relation=c.rel))
    out = parts[0]
    for p in parts[1:]:
        out = b.add("both", a=out, b=p)
    return out


def _preprocess(question: str) -> str:
    q = question.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    q = q.replace("\u2013", "-").replace("\u2014", " - ")
    q = q.strip()
    q = re.sub(r"[?.!]+\s*$", "", q).strip()
    return q


def parse(question: str) -> Tree:
    """Parse a question into its lark tree; raises :class:`QuestionParseError` naming the words not understood."""
    q = _preprocess(question)
    if not q:
        raise QuestionParseError("the question is empty")
    try:
        tokens = _lex(q)
    except UnexpectedInput:
        tokens = None  # a character no terminal takes: the parse below names it
    shape = tuple(t.type for t in tokens) if tokens is not None else None
    template = _SHAPES.get(shape) if shape is not None else None
    if template is not None and tokens is not None:
        rest = iter(t for t in tokens if t.type in _KEPT)
        try:
            tree = _refill(template, rest)
            if next(rest, None) is None:  # every token placed
                return tree
        except (StopIteration, ValueError):
            pass  # cannot happen for one token-type sequence; parse afresh if it does
    try:
        tree = parser().parse(q)
    except UnexpectedInput as exc:
        raise QuestionParseError(_explain(q, exc)) from None
    if shape is not None and len(_SHAPES) < _SHAPES_MAX:
        _SHAPES[shape] = tree
        _KEPT.update(t.type for t in tree.scan_values(lambda v: isinstance(v, Token)))
    return tree


#: Parse trees by the question's sequence of token types. With the basic lexer the Earley
#: parser sees only token types, so two questions with the same sequence ("the building at
#: the polygon GEOMLIT in pixels ...", other coordinates) have the same tree but for the
#: token values: the second question refills the first one's tree with its own tokens
#: instead of parsing again (the Earley parse is ~95% of the cost of a question).
_SHAPES: dict[tuple[str, ...], Tree] = {}
_SHAPES_MAX = 4096
#: Token types that appear in trees (the others, like "," and "(", are filtered out).
_KEPT: set[str] = set()


def _refill(tree: Tree, tokens: Any) -> Tree:
    """A copy of ``tree`` whose tokens, in order, are ``tokens`` (same types)."""
    children: list[Any] = []
    for c in tree.children:
        if isinstance(c, Tree):
            children.append(_refill(c, tokens))
        elif isinstance(c, Token):
            t = next(tokens)
            if t.type != c.type:
                raise ValueError(f"token {t.type} where the cached tree has {c.type}")
            children.append(t)
        else:
            children.append(c)
    return Tree(tree.data, children)


def compile_tree(tree: Tree) -> list[dict[str, Any]]:
    """Compile a parse tree to program steps (not yet validated)."""
    b = _Builder()
    # a question that says "pixel(s)" anywhere reads its untagged coordinates as pixels
    # (the rule of the templates before the grammar): order does not matter
    b.pixel_question = any(t.type == "PIXELTAG" for t in tree.scan_values(lambda v: isinstance(v, Token)))
    try:
        result = _Compiler(b).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, QuestionParseError):
            raise exc.orig_exc from None
        raise
    return _finish(b, result)


def _explain(q: str, exc: UnexpectedInput) -> str:
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or (token is not None and token.type == "$END"):
        expected = _readable(getattr(exc, "expected", None) or set())
        return f"the question stops too early: after {q!r} the grammar expected {expected}"
    pos = token.start_pos if token is not None else getattr(exc, "pos_in_stream", None)
    if pos is None:
        pos = len(q)
    done, rest = q[:pos].strip(), q[pos:].strip()
    words = " ".join(rest.split()[:6])
    allowed = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    expected = _readable(allowed)
    if not done:
        return f"the words {words!r} were not understood at the start of the question"
    return f"the words {words!r} were not understood (after {done!r}); the grammar expected {expected} there"


_TERMINAL_NAMES = {
    "HASHID": "an id like #b7",
    "BAREID": "an id like b7",
    "WORD": "a class name",
    "DIST": "a distance like 500 m",
    "NUMBER": "a number",
    "DUNIT": "a unit (m, km, mi, ft)",
    "AUNIT": "an area unit (m2, km2, ha)",
    "DIR": "a direction (north, NE, ...)",
    "SELECTOR": "largest/smallest/longest/shortest",
    "RANK": "nearest/closest/farthest",
    "STAT": "average/sum/min/max",
    "CLOSER": "closer/farther",
    "BIGGER": "larger/smaller/longer/shorter",
    "GEOMLIT": "a geometry (WKT, [minx, miny, maxx, maxy], (x, y), [[x, y], ...])",
    "PREDWORD": "a relation word (inside, touching, ...)",
    "PREDVERB": "a relation verb (touch, cross, ...)",
    "PAIRWORD": "a relation word (disjoint, touching, ...)",
    "SHAPE": "point/line/polygon",
}


def _readable(names: Any) -> str:
    kinds, words = set(), set()
    for n in set(names):
        if n.startswith("K_"):
            words.add(repr(_keyword_text().get(n, n)))
        elif n in _WORD_RULES:
            kinds.add(_TERMINAL_NAMES.get(_WORD_RULES[n][0], n))
        elif n in _TERMINAL_NAMES:
            kinds.add(_TERMINAL_NAMES[n])
    out = sorted(kinds) + sorted(words)
    if not out:
        return "something else"
    if len(out) > 12:
        out = out[:12] + ["..."]
    return "one of: " + ", ".join(out)


# ---------------------------------------------------------------------------------------
# the forms, with examples (README table, error message, planner examples)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """One question form: its name, a line describing it, and examples that parse."""

    name: str
    describe: str
    examples: tuple[str, ...]


FORMS: tuple[Form, ...] = (
    Form(
        "distance",
        "minimum geodesic distance (centroid distance when asked: centres of, center-to-center)",
        (
            "What is the distance between #b1 and #lake-1?",
            "How far apart are b7 and b6?",
            "How many meters separate building b7 from building b2?",
            "distance b7 to b2 in kilometers",
            "How close is the river to #b1?",
            "What is the center-to-center distance between #b1 and #b2?",
        ),
    ),
    Form(
        "direction",
        "compass direction of B seen from A (nearest parts; 'by centroid' for centroids; 4/8/16 points)",
        (
            "In which direction is #b5 from the largest lake?",
            "In what direction does b2 lie from b1?",
            "What is the 16-point direction from #b1 to #b6?",
            "In which direction is #b5 from the largest lake by centroid?",
        ),
    ),
    Form(
        "bearing",
        "azimuth in degrees from A to B (centroids unless 'by nearest parts')",
        ("What is the bearing from #b1 to #b6?",),
    ),
    Form(
        "yes/no: direction",
        "is B north of A (N/E/S/W within 45°, NE.. 22.5°, NNE.. 11.25°; above/below = N/S on the map)",
        (
            "Is #b5 north of the largest lake?",
            "Is the smallest lake to the south-west of road-1?",
            "Is b3 above the river?",
            "Is #b5 north of the largest lake by centroid?",
        ),
    ),
    Form(
        "yes/no: distance",
        "is A within / beyond / between distances of B",
        (
            "Is #b1 within 500 m of the largest lake?",
            "Is b7 more than 2km away from the river?",
            "Is #b2 between 1 and 3 km from #b6?",
        ),
    ),
    Form(
        "yes/no: comparisons",
        "is A closer to C than B is; closer to B than to C; larger or longer than B",
        (
            "Is #b1 closer to the river than #b8 is?",
            "Is b1 closer to the river than to the road?",
            "Is the largest lake bigger than #park-1?",
        ),
    ),
    Form(
        "yes/no: several conditions",
        "conditions joined by 'and' ('it' = the object named last)",
        ("Is #b6 within 2 km of #park-1 and north of it?",),
    ),
    Form(
        "yes/no: any",
        "is there any object of a class meeting constraints",
        ("Are there any buildings within 100 m of the river?",),
    ),
    Form(
        "topology",
        "the DE-9IM relation, or one predicate (touch/adjacent/border, inside/within/in, cross, overlap ...)",
        (
            "What is the topological relation between the river and the largest lake?",
            "How are #b1 and #b2 spatially related?",
            "Are #b1 and #b2 touching?",
            "Does the river cross road-1?",
            "Is #b1 inside #park-1?",
        ),
    ),
    Form(
        "counts",
        "how many objects of a class meet constraints (distance bounds, ranges, directions, relations)",
        (
            "How many buildings are within 500 m of the largest lake?",
            "How many buildings lie within 0.5 km of lake-1?",
            "Number of buildings less than 500 meters from #lake-1?",
            "How many buildings are between 1 and 2 km from the river?",
            "How many buildings are within 2 km of #park-1 and north of it?",
            "How many buildings intersect #park-1?",
            "How many lakes are there?",
        ),
    ),
    Form(
        "which of two",
        "which of two objects is closer to (farther from) a third",
        (
            "Which of #b1 and #b8 is closer to the river?",
            "Which is farther from #well-1: b3 or b7?",
            "Which is closer to the river: (first) #b1 or (second) #b8?",
        ),
    ),
    Form(
        "nearest / farthest",
        "the object of a set nearest to (farthest from) a reference; chains with 'it' and 'its'",
        (
            "Which building is nearest to the river?",
            "What is the closest building to #well-1?",
            "Which lake is closer to the well?",
            "Which building east of the river is closest to it?",
            "What is the distance from #lake-1 to its nearest building?",
        ),
    ),
    Form(
        "largest / smallest",
        "the largest/smallest (area) or longest/shortest (length) object of a set",
        ("Which is the largest lake?", "Which lake is the smallest?", "Which is the longest road?"),
    ),
    Form(
        "measures",
        "area, length or perimeter of an object (in m2/km2/ha, m/km/mi/ft)",
        (
            "What is the area of #park-1?",
            "What is the area of the largest lake in hectares?",
            "What is the length of the river in km?",
            "How long is road-1 in miles?",
        ),
    ),
    Form(
        "aggregates",
        "total area covered by a set (overlaps once); mean/sum/min/max of distance, area or length",
        (
            "What is the total area of lakes?",
            "What is the average distance from the buildings to #well-1?",
            "What is the maximum distance between the buildings and the river in km?",
            "What is the mean area of the lakes?",
            "What is the sum of the lengths of the roads?",
        ),
    ),
    Form(
        "region answers",
        "the objects of a set meeting constraints",
        (
            "Show all buildings within 500 m of #lake-1.",
            "Which buildings are south of road-1?",
            "List the buildings inside #park-1.",
        ),
    ),
    Form(
        "pixel answers",
        "a mask GeoTIFF of the pixels (needs --raster)",
        ("Which pixels are lakes?", "Which pixels are buildings within 100 m of #b1?"),
    ),
    Form(
        "references",
        "#id or id with a digit, 'building b7', 'the <class>', 'the largest <class>', 'the <class> at [pixel] "
        "<geometry>', 'the region <geometry>', WKT, [minx, miny, maxx, maxy], (x, y), [[x, y], ...]; lon/lat "
        "unless the question says 'pixel(s)' (then every untagged coordinate in it is a pixel) or tagged '(EPSG:nnnn)'",
        (
            "How far is the lake at [9.195, 47.672, 9.198, 47.674] from #b1?",
            "How far is the building at the polygon [[475, 392], [475, 395], [479, 395], [479, 392]] in pixels from #b1?",
            "How far is #b1 from POINT (9.18 47.66)?",
            "How far is #well-1 from (9.18, 47.67)?",
        ),
    ),
)
