"""A batch of questions answers exactly as each question alone (``ask --questions``).

The batch path (:class:`georeason.geo.language.executor.GroupBatch`, used by
:func:`georeason.pipeline.answer_questions` for more than one question) runs same-shaped
group queries of many questions as one ``within_distance_many`` / ``nearest_many`` call and
shares compiled programs between questions that differ only in their ``#ids``. The
yardstick here is the one-question path (a batch of one question shares nothing), on random
scenes: the JSON lines must be the same, byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from typer.testing import CliRunner

from georeason.cli import app
from georeason.geo.language import english
from georeason.geo.language.answer import Answer
from georeason.geo.vector import group
from georeason.geo.vector.scene import Scene
from georeason.pipeline import AnswerContext, answer_questions, compile_questions

REPO = Path(__file__).resolve().parents[1]
G = Geod(ellps="WGS84")


def _rect(lon: float, lat: float, w: float, h: float, a: float) -> shapely.Polygon:
    pts = []
    for dx, dy in [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]:
        lo, la, _ = G.fwd(lon, lat, np.degrees(np.arctan2(dx, dy)) + a, float(np.hypot(dx, dy)))
        pts.append((lo, la))
    return shapely.Polygon(pts)


def _scene(
    seed: int, crs: str, centres: list[tuple[float, float]], n_bld: int = 600, n_site: int = 30
) -> Scene:
    """Buildings (rotated rectangles), sites (points and small polygons), lakes and a road
    scattered around ``centres`` (lon/lat) within ~3 km, in ``crs``."""
    rng = np.random.default_rng(seed)
    ids, labels, geoms = [], [], []

    def at() -> tuple[float, float]:
        lon0, lat0 = centres[rng.integers(len(centres))]
        lo, la, _ = G.fwd(lon0, lat0, rng.uniform(0, 360), rng.uniform(0, 3000))
        return float(lo), float(la)

    for i in range(n_bld):
        ids.append(f"b{i}")
        labels.append("building")
        geoms.append(_rect(*at(), rng.uniform(8, 30), rng.uniform(6, 20), rng.uniform(0, 180)))
    for i in range(n_site):
        ids.append(f"r{i}")
        labels.append("site")
        p = shapely.Point(*at())
        geoms.append(p if i % 3 else _rect(p.x, p.y, 40, 40, rng.uniform(0, 90)))
    for i in range(3):
        ids.append(f"lake-{i + 1}")
        labels.append("lake")
        geoms.append(_rect(*at(), 200 + 150 * i, 120 + 50 * i, rng.uniform(0, 90)))
    ids.append("road-1")
    labels.append("road")
    lo1, la1 = at()
    lo2, la2, _ = G.fwd(lo1, la1, rng.uniform(0, 360), 2500.0)
    geoms.append(shapely.LineString([(lo1, la1), (lo2, la2)]))
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    geoms = [shapely.transform(g, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1]))) for g in geoms]
    return Scene(ids, labels, geoms, crs)


def _questions(seed: int, scene: Scene, n: int = 160) -> list[str]:
    rng = np.random.default_rng(seed)
    sites = [i for i in scene.ids if i.startswith("r")]  # and road-1
    blds = [i for i in scene.ids if i.startswith("b")]
    lon, lat = shapely.get_coordinates(scene.lonlat[0])[0]
    forms = [
        lambda: f"How many buildings are within {rng.choice([100, 250])} m of #{rng.choice(sites)}?",
        lambda: f"Which building is nearest to #{rng.choice(sites)}?",
        lambda: f"How many buildings are within 150 m of #{rng.choice(blds)}?",  # the reference is a building
        lambda: f"Which building is nearest to #{rng.choice(blds)}?",
        lambda: f"Show all buildings within 80 m of #{rng.choice(sites)}.",
        lambda: f"Are there any buildings within 30 m of #{rng.choice(sites)}?",
        lambda: f"What is the distance from #{rng.choice(sites)} to its nearest building?",
        lambda: "Which building is nearest to the largest lake?",
        lambda: "How many buildings are within 300 m of the largest lake?",
        lambda: f"Which of #{rng.choice(blds)} and #{rng.choice(blds)} is closer to #{rng.choice(sites)}?",
        lambda: f"How many buildings are within 200 m of #nosuch{rng.integers(9)}?",
        lambda: "Why is the sky blue?",
        lambda: f"How many buildings are within 200 m of ({lon + rng.uniform(-0.01, 0.01):.5f}, {lat:.5f})?",
        lambda: f"How many sites are within 2 km of #{rng.choice(sites)}?",
        lambda: f"Which building is nearest to #{rng.choice(sites)} and how far?",  # not understood
        lambda: f"How many buildings are within 200 m of #{rng.choice(sites)}",  # no question mark
    ]
    qs = [forms[int(rng.integers(len(forms)))]() for _ in range(n)]
    return qs + qs[:10]  # repeated questions share their queries too


def _lines(outcomes, geometry: bool = True) -> list[str]:
    return [
        json.dumps(o.to_json(geometry=geometry) if isinstance(o, Answer) else o.to_json()) for o in outcomes
    ]


SCENES = [
    # UTM 32N, 80-100 km east of the central meridian: the planar frame path
    ("utm", 1, "EPSG:32632", [(10.15, 50.05), (10.2, 50.08)]),
    # lon/lat, two clusters 1500 km apart: no frame spans them (per-reference path)
    ("lonlat-wide", 2, "EPSG:4326", [(5.0, 52.0), (27.0, 52.5)]),
    # lon/lat on both sides of the antimeridian at 65 N
    ("antimeridian", 3, "EPSG:4326", [(179.98, 65.0), (-179.99, 65.01)]),
]


@pytest.mark.parametrize(("name", "seed", "crs", "centres"), SCENES, ids=[s[0] for s in SCENES])
def test_batch_answers_equal_one_by_one(name, seed, crs, centres, monkeypatch):
    scene = _scene(seed, crs, centres)
    qs = _questions(seed, scene)
    calls: list[int] = []
    real_within, real_nearest = group.within_distance_many, group.nearest_many

    def within_many(scene, idx, refs, distance):
        calls.append(len(refs))
        return real_within(scene, idx, refs, distance)

    def nearest_many(scene, idx, refs, k=1):
        calls.append(len(refs))
        return real_nearest(scene, idx, refs, k)

    monkeypatch.setattr(group, "within_distance_many", within_many)
    monkeypatch.setattr(group, "nearest_many", nearest_many)
    alone = [answer_questions(compile_questions([q]), scene, AnswerContext())[0] for q in qs]
    assert max(calls) == 1  # a question alone shares nothing
    calls.clear()
    batch = answer_questions(compile_questions(qs), scene, AnswerContext())
    assert _lines(batch) == _lines(alone)
    assert _lines(batch, geometry=False) == _lines(alone, geometry=False)
    # the group queries were shared: one call served many questions' references
    n_within = sum(q.startswith("How many buildings are within") and "#r" in q for q in qs)
    assert max(calls) >= n_within // 3 > 3
    assert len(calls) < len(qs) // 2
    # and the batch answered what it should: counts and ids, not abstentions
    answered = [o for o in batch if isinstance(o, Answer) and not o.abstained]
    assert len(answered) > len(qs) // 2


def test_a_failing_batched_call_leaves_each_question_to_itself(monkeypatch):
    scene = _scene(4, "EPSG:32632", [(10.15, 50.05)])
    qs = _questions(4, scene, n=60)
    alone = [answer_questions(compile_questions([q]), scene, AnswerContext())[0] for q in qs]
    real = group.within_distance_many

    def broken(scene, idx, refs, distance):
        if len(refs) > 1:
            raise RuntimeError("batched call fails")
        return real(scene, idx, refs, distance)

    monkeypatch.setattr(group, "within_distance_many", broken)
    batch = answer_questions(compile_questions(qs), scene, AnswerContext())
    assert _lines(batch) == _lines(alone)


def test_questions_differing_in_ids_share_one_parse_and_compile_alike():
    qs = [
        "How many buildings are within 200 m of #r1?",
        "How many buildings are within 200 m of #site.7?",
        "How many buildings are within 200 m of #Lake-B:2?",
        "What is the distance between #b1 and #b1?",
        "What is the distance between #b1 and #b2?",
        "What is the distance between #x and #y?",
        "Is #b3 closer to #b4 than to #b3?",
        "Is #b5 closer to #b6 than to #b7?",
    ]
    for q in qs:
        expected = english._parsed_json(q)  # the grammar's own parse and compile
        assert english.compile_question(q) == json.loads(expected)
    # repeats of a learnt shape do not parse again
    english.compile_question("How many buildings are within 200 m of #r1?")
    parsed = english._parsed_json.cache_info().misses
    for i in range(20):
        prog = english.compile_question(f"How many buildings are within 200 m of #q{i}x?")
        assert prog[0]["args"]["id"] == f"q{i}x"
    assert english._parsed_json.cache_info().misses == parsed
    # a question with brackets (a '#' could sit in a literal) is parsed as it is
    assert english._id_shape("How far is #b1 from POINT (9.18 47.66)?") is None


def _ask(args: list[str]) -> str:
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output[-2000:]
    return res.output


def test_ask_questions_lines_name_file_objects_by_id(tmp_path):
    town = REPO / "examples" / "town.geojson"
    qs = [
        "How many buildings are within 500 m of #lake-1?",
        "Which building is nearest to the river?",
        "Which pixels are lakes?",  # an error line: no raster
        "How far is #b1 from POINT (9.18 47.66)?",
        "Show all buildings within 300 m of #b1.",
    ]
    qfile = tmp_path / "q.txt"
    qfile.write_text("\n".join(qs) + "\n")
    light, full = tmp_path / "light.jsonl", tmp_path / "full.jsonl"
    _ask(["ask", "--questions", str(qfile), "--objects", str(town), "--out", str(light)])
    _ask(
        ["ask", "--questions", str(qfile), "--objects", str(town), "--out", str(full), "--evidence-geometry"]
    )
    rows_l = [json.loads(x) for x in light.read_text().splitlines()]
    rows_f = [json.loads(x) for x in full.read_text().splitlines()]
    assert [r["question"] for r in rows_l] == qs
    for rl, rf in zip(rows_l, rows_f):
        assert {k: v for k, v in rl.items() if k != "evidence"} == {
            k: v for k, v in rf.items() if k != "evidence"
        }
        if "error" in rf:
            continue
        assert [(e["id"], e["class"], e["role"]) for e in rl["evidence"]] == [
            (e["id"], e["class"], e["role"]) for e in rf["evidence"]
        ]
        for el, ef in zip(rl["evidence"], rf["evidence"]):
            assert "geometry" in ef
            # objects of the file: by id only; a region the question gave keeps its geometry
            assert ("geometry" in el) == el["id"].startswith("$")
            if "geometry" in el:
                assert el["geometry"] == ef["geometry"]
    # the full lines are exactly the one-question ``ask --json`` answers
    for q, rf in zip(qs, rows_f):
        if "error" in rf:
            continue
        one = json.loads(_ask(["ask", q, "--objects", str(town), "--json"]))
        assert one == rf
    counts = rows_l[0]
    assert counts["answer"] == sum(e["role"] == "result" for e in counts["evidence"]) > 0


def test_inflect_loads_without_leaving_typeguard_changed():
    code = (
        "import typeguard; t = typeguard.typechecked\n"
        "from georeason.geo.vector.classnames import singular\n"
        "assert [singular(w) for w in ('lakes', 'buses', 'geese', 'water bodies')] == "
        "['lake', 'bus', 'goose', 'water body']\n"
        "assert typeguard.typechecked is t\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
