"""The export tail writes the same bytes as the plain per-geometry algorithm it replaced.

The expected GeoJSON text is built here independently of the code under test: pyproj's
transformer on the coordinates, shapely's orientation and rounding, ``shapely.geometry.mapping``
and ``json.dumps`` of a hand-built dict per feature. The item export's in-memory shortcuts
(the answer layers' families and roles carried, not read back; the basemap read in another
thread; each object's GeoJSON made once) are checked against the same export done the
plain way into the same folder: every file equal byte for byte (GeoPackages feature for
feature, their timestamps differ).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

from georeason.geo.export.item import export_item_files
from georeason.geo.export.layers import answer_stem, dedupe_classes, write_answer_files, write_error_record
from georeason.geo.language.answer import Answer, Evidence
from georeason.geo.vector.scene import Scene
from georeason.pipeline import Pipeline, export_item_outputs

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data_catalog" / "sample"
UTM = CRS.from_epsg(32633)
LONLAT = CRS.from_epsg(4326)
FAMILIES = ("polygons", "lines", "points")


# ----------------------------------------------------------------- independent reference


def _simple_parts(g):
    """Non-collection parts of ``g``, recursively, with the family of each."""
    out = []
    for p in shapely.get_parts(g):
        t = p.geom_type
        if t in ("Polygon", "MultiPolygon"):
            out += [(q, "polygons") for q in shapely.get_parts(p)]
        elif t in ("LineString", "MultiLineString", "LinearRing"):
            out += [(q, "lines") for q in shapely.get_parts(p)]
        elif t in ("Point", "MultiPoint"):
            out += [(q, "points") for q in shapely.get_parts(p)]
        else:
            fams = {f for _, f in _simple_parts(p)}
            if len(fams) == 1:
                out += _simple_parts(p)
    return out


def _ref_geometry(parts, fam: str, crs: CRS) -> dict:
    make = {"polygons": shapely.MultiPolygon, "lines": shapely.MultiLineString, "points": shapely.MultiPoint}
    multi = make[fam](parts)
    if not crs.equals(LONLAT):
        tr = Transformer.from_crs(crs, LONLAT, always_xy=True)
        multi = shapely.transform(multi, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    multi = shapely.set_precision(shapely.orient_polygons(multi, exterior_cw=False), 1e-7, mode="pointwise")
    return shapely.geometry.mapping(multi)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _ref_features(items) -> dict[str, list[dict]]:
    """items: (id, props, geometry, crs) -> features per family, in the given order."""
    by_fam: dict[str, list[dict]] = {}
    for fid, props, geom, crs in items:
        if geom is None or geom.is_empty:
            continue
        parts = _simple_parts(geom)
        for fam in FAMILIES:
            mine = [p for p, f in parts if f == fam]
            if mine:
                feat = {
                    "type": "Feature",
                    "id": fid,
                    "properties": props,
                    "geometry": _ref_geometry(mine, fam, crs),
                }
                by_fam.setdefault(fam, []).append(feat)
    return by_fam


def _ref_answer_texts(answer: Answer, path: Path) -> dict[Path, str]:
    base = {
        "question": answer.question,
        "answer": answer.value,
        "unit": answer.unit,
        "kind": answer.kind,
        "status": "abstained" if answer.abstained else "answered",
        "abstained": answer.abstained,
        "reason": answer.reason,
    }
    conf = answer.details.get("confidence")
    if conf:  # grounded objects' confidence, on every row
        base |= {"confidence": conf.get("score"), "confidence_notes": "; ".join(conf.get("notes") or [])}
    top = {
        "question": answer.question,
        "answer": answer.value,
        "unit": answer.unit,
        "kind": answer.kind,
        "abstained": answer.abstained,
        "reason": answer.reason,
        "query": answer.query,
        "details": answer.details,
    }
    items = [
        (e.id, {"id": e.id, "class": e.label, "role": e.role, **base}, e.geometry, e.crs)
        for e in answer.evidence
    ]
    by_fam = _ref_features(items)
    if not by_fam:
        record = {"id": None, "class": None, "role": "record", **base}
        record.pop("confidence", None), record.pop("confidence_notes", None)
        record["answer"] = (
            json.dumps(answer.value) if isinstance(answer.value, (list, dict)) else answer.value
        )
        fc = {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": record, "geometry": None}],
        }
        return {path: _dumps({**fc, "properties": top})}
    one = len(by_fam) == 1
    return {
        (path if one else path.with_name(f"{path.stem}.{fam}{path.suffix}")): _dumps(
            {"type": "FeatureCollection", "features": feats, "properties": top}
        )
        for fam, feats in by_fam.items()
    }


# ----------------------------------------------------------------- a synthetic scene


def _raster(path: Path) -> Path:
    data = (np.arange(4 * 60 * 60, dtype="uint16").reshape(4, 60, 60) * 7) % 3000
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=60,
        height=60,
        count=4,
        dtype="uint16",
        crs=UTM,
        transform=from_origin(500000, 5001200, 20, 20),
    ) as dst:
        dst.write(data)
    return path


@pytest.fixture
def synthetic() -> tuple[Scene, list[Answer]]:
    """Every geometry type, a clockwise exterior with a hole, a collection mixing families,
    an empty geometry, evidence in two CRSs, non-ASCII names, a record-only answer."""
    park = shapely.Polygon(
        [(500000, 5000000), (500000, 5000400), (500400, 5000400), (500400, 5000000)],
        [[(500100, 5000100), (500300, 5000100), (500300, 5000300), (500100, 5000300)]],
    )
    geoms = [
        park,
        shapely.MultiPolygon(
            [shapely.box(500500, 5000500, 500520, 5000523.3), shapely.box(500600, 5000600, 500610, 5000610)]
        ),
        shapely.LineString([(500000, 5000500), (501000, 5000500.123456)]),
        shapely.MultiLineString(
            [[(500000, 5000000), (500000, 5001000)], [(500010, 5000000), (500010, 5000010)]]
        ),
        shapely.Point(500777.77777, 5000333.33333),
        shapely.MultiPoint([(500001, 5000001), (500002, 5000003)]),
        shapely.GeometryCollection(
            [
                shapely.box(500800, 5000800, 500850, 5000850),
                shapely.LineString([(500800, 5000800), (500900, 5000900)]),
            ]
        ),
        shapely.Point(500500, 5000800).buffer(100),
    ]
    ids = ["park-1", "dépôt-1", "road-1", "road-2", "well-1", "wells-1", "mixed-1", "lake-1"]
    labels = ["park", "dépôt", "road", "road", "well", "well", "site", "lake"]
    scene = Scene(ids, labels, geoms, UTM)
    ev = [Evidence(i, lab, g, UTM, "object") for i, lab, g in zip(ids, labels, geoms)]
    lonlat_box = shapely.box(15.0000001, 45.1, 15.001, 45.10100004)  # given in lon/lat
    answers = [
        Answer(len(ev), "count", evidence=ev, question="How many things are there?", details={"n": [1, 2]}),
        Answer(
            3.5,
            "scalar",
            unit="m2",
            evidence=[ev[0], ev[7], Evidence("$s1", "region", lonlat_box, LONLAT, "region")],
            question="Which region is near the park?",
        ),
        Answer.abstain("no lake in the scene", question="What is the area of the lake?"),
        Answer(
            True, "boolean", evidence=[Evidence("x-1", "x", shapely.Polygon(), UTM)], question="Is it empty?"
        ),
    ]
    return scene, answers


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _same_gpkg(a: Path, b: Path) -> None:
    layers = [n for n, _ in pyogrio.list_layers(a)]
    assert layers == [n for n, _ in pyogrio.list_layers(b)]
    for name in layers:
        da, db = pyogrio.read_dataframe(a, layer=name), pyogrio.read_dataframe(b, layer=name)
        assert da.drop(columns="geometry").equals(db.drop(columns="geometry"))
        assert list(shapely.to_wkb(da.geometry.values)) == list(shapely.to_wkb(db.geometry.values))


# ----------------------------------------------------------------- tests


def test_answer_files_equal_the_reference_text(synthetic, tmp_path):
    _, answers = synthetic
    for n, a in enumerate(answers, 1):
        path = tmp_path / f"{answer_stem(n, a.question or '')}.geojson"
        written = write_answer_files(a, path)
        want = _ref_answer_texts(a, path)
        assert sorted(written) == sorted(want)
        for p, text in want.items():
            assert p.read_text(encoding="utf-8") == text, p.name


@pytest.mark.parametrize("chunk", [1, 3, 50])
def test_answer_files_written_in_chunks_equal_the_reference_text(synthetic, tmp_path, monkeypatch, chunk):
    """An answer of more coordinates than TEXT_CHUNK_COORDS (and no shared cache) is written
    with its texts made a chunk at a time (runs of one CRS: the evidence here is in two)."""
    import georeason.geo.export.layers as layers_mod

    monkeypatch.setattr(layers_mod, "TEXT_CHUNK_COORDS", chunk)
    _, answers = synthetic
    for n, a in enumerate(answers, 1):
        path = tmp_path / f"{answer_stem(n, a.question or '')}.geojson"
        written = write_answer_files(a, path)
        want = _ref_answer_texts(a, path)
        assert sorted(written) == sorted(want)
        for p, text in want.items():
            assert p.read_text(encoding="utf-8") == text, p.name


def test_answer_files_are_rfc7946_and_keep_the_geometries(synthetic, tmp_path):
    """Properties, independently of any reference text: counter-clockwise exteriors,
    1e-7 degree coordinates, the input geometry within that precision, every id once per family."""
    _, answers = synthetic
    a = answers[0]
    files = write_answer_files(a, tmp_path / "a.geojson")
    tr = Transformer.from_crs(UTM, LONLAT, always_xy=True)
    seen: dict[str, set[str]] = {}
    for f in files:
        doc = json.loads(f.read_text(encoding="utf-8"))
        fam = f.name.split(".")[1]
        for feat in doc["features"]:
            seen.setdefault(fam, set()).add(feat["id"])
            g = shapely.geometry.shape(feat["geometry"])
            xy = shapely.get_coordinates(g)
            assert np.allclose(xy * 1e7, np.round(xy * 1e7), atol=1e-6)  # rounded to 1e-7 degrees
            for poly in shapely.get_parts(g) if fam == "polygons" else []:
                assert poly.exterior.is_ccw and all(not r.is_ccw for r in poly.interiors)
            src = next(e.geometry for e in a.evidence if e.id == feat["id"])
            src_parts = [
                p
                for p in shapely.get_parts(src)
                if fam[:-1] in p.geom_type.lower().replace("linestring", "line")
            ]
            if src.geom_type == "GeometryCollection":
                src_parts = [
                    p for p in shapely.get_parts(src) if (fam == "polygons") == (p.geom_type == "Polygon")
                ]
            want = shapely.transform(
                shapely.GeometryCollection(src_parts),
                lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])),
            )
            assert shapely.hausdorff_distance(g, want) <= 1e-7
    assert seen == {
        "polygons": {"park-1", "dépôt-1", "mixed-1", "lake-1"},
        "lines": {"road-1", "road-2", "mixed-1"},
        "points": {"well-1", "wells-1"},
    }


def test_non_finite_coordinate_is_an_export_error(tmp_path):
    from georeason.errors import ExportError

    a = Answer(1, "count", evidence=[Evidence("p", "p", shapely.Point(math.nan, 1.0), LONLAT)], question="q?")
    with pytest.raises(ExportError, match="could not write"):
        write_answer_files(a, tmp_path / "a.geojson")


def _plain_export(out: Path, raster: Path, scene: Scene, answers: list) -> None:
    """The export the way it was done before: each answer file written on its own, the item
    files found by reading them back, the basemap read in this thread."""
    outputs = []
    for n, a in enumerate(answers, 1):
        path = out / f"{answer_stem(n, a.question or '')}.geojson"
        if isinstance(a, Answer):
            written = write_answer_files(a, path)
            files = {"geojson": str(written[0])}
            if len(written) > 1:
                files["parts"] = [str(w) for w in written]
        else:
            files = {"geojson": str(write_error_record(a.question, a.error, path))}
        outputs.append(files)
    export_item_files(
        out,
        raster,
        [str(i) for i in scene.ids],
        [str(lab) for lab in scene.labels],
        list(scene.geoms),
        scene.crs,
        [a if isinstance(a, Answer) else None for a in answers],
        outputs,
        scores=list(scene.scores),
        sources=[a.get("source", "vector") for a in scene.attrs],
        item=out.name,
    )


def _check_same_as_plain(out: Path, raster: Path, scene: Scene, answers: list) -> dict[str, bytes]:
    export_item_outputs(out.name, str(raster), answers, scene, out)
    fast = _files(out)
    shutil.copy(out / "objects.gpkg", out.parent / "fast.gpkg")
    for p in out.iterdir():
        if p.is_file():
            p.unlink()
    _plain_export(out, raster, scene, answers)
    plain = _files(out)
    assert sorted(fast) == sorted(plain)
    for name in fast:
        if name.endswith(".gpkg"):
            _same_gpkg(out.parent / "fast.gpkg", out / name)
        else:
            assert fast[name] == plain[name], name
    return fast


def test_item_export_equals_the_plain_export(synthetic, tmp_path):
    scene, answers = synthetic
    raster = _raster(tmp_path / "scene.tif")
    out = tmp_path / "out" / "synthetic"
    fast = _check_same_as_plain(out, raster, scene, answers)
    # objects.*.geojson: the reference text, objects deduplicated as before
    keep, also = dedupe_classes(scene.ids, scene.labels, scene.geoms)
    items = [
        (
            scene.ids[i],
            {
                "id": scene.ids[i],
                "class": scene.labels[i],
                "also": ", ".join(a) or None,
                "score": None,
                "source": "vector",
            },
            scene.geoms[i],
            UTM,
        )
        for i, a in zip(keep, also)
    ]
    for fam, feats in _ref_features(items).items():
        assert fast[f"objects.{fam}.geojson"].decode() == _dumps(
            {"type": "FeatureCollection", "features": feats}
        )
    assert {"q01-how-many-things.png", "quicklook.png", "synthetic.qgs"} <= set(fast)


def test_shipped_sample_export_equals_the_plain_export(tmp_path):
    """The shipped sample item, grounded and answered as `run` does, exported both ways."""
    import yaml

    questions = [
        q["question"]
        for q in yaml.safe_load((REPO / "data_catalog" / "questions.yaml").read_text())["questions"]
        if q.get("item") == "sample"
    ]
    from georeason.pipeline import read_vectors

    raster = SAMPLE / "sample_scene.tif"
    out = tmp_path / "out" / "sample"
    result = Pipeline().run(
        questions,
        raster=str(raster),
        vectors=read_vectors([SAMPLE / "sample_roads.geojson"]),
        item="sample",
        mask_path=lambda n, q: out / "masks" / f"{answer_stem(n, q)}.tif",
    )
    fast = _check_same_as_plain(out, raster, result.scene, result.answers)
    for n, a in enumerate(result.answers, 1):
        if isinstance(a, Answer):
            path = out / f"{answer_stem(n, a.question or '')}.geojson"
            for p, text in _ref_answer_texts(a, path).items():
                got = fast[p.name].decode()
                k = next((i for i, (x, y) in enumerate(zip(got, text)) if x != y), min(len(got), len(text)))
                assert got == text, (p.name, got[k - 200 : k + 100], text[k - 200 : k + 100])
    assert sum(name.endswith(".geojson") for name in fast) >= len(questions)


def _reference_draw(img, overlay, inv, min_side: float) -> int:
    """The quicklook overlay drawn ring by ring (the drawing code before rings were mapped in bulk)."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    line = (*overlay.colour, 255)
    fill = (*overlay.colour, overlay.fill_alpha) if overlay.fill_alpha else None

    def px(coords) -> list[float]:
        out: list[float] = []
        for c in coords:
            out += list(inv @ (c[0], c[1]))
        return out

    drawn = 0
    for g in overlay.geoms:
        if g.geom_type.endswith("Polygon"):
            b = g.bounds
            if max(b[2] - b[0], b[3] - b[1]) < min_side:
                continue
        for part in shapely.get_parts(g):
            t = part.geom_type
            if t == "Polygon":
                if fill:
                    d.polygon(px(part.exterior.coords), fill=fill)
                    for hole in part.interiors:
                        d.polygon(px(hole.coords), fill=(0, 0, 0, 0))
                for ring in (part.exterior, *part.interiors):
                    d.line(px(ring.coords), fill=line, width=overlay.width_px)
            elif t in ("LineString", "LinearRing"):
                d.line(px(part.coords), fill=line, width=max(overlay.width_px, 2))
            elif t == "Point":
                x, y = inv @ (part.x, part.y)
                r = 3 + overlay.width_px
                d.ellipse((x - r, y - r, x + r, y + r), outline=(0, 0, 0, 255), fill=line)
        drawn += 1
    img.alpha_composite(layer)
    return drawn


@pytest.mark.parametrize("fill_alpha", [0, 90])
def test_quicklook_overlay_equals_ring_by_ring_drawing(synthetic, fill_alpha):
    from affine import Affine
    from PIL import Image

    from georeason.geo.export.quicklook import Overlay, _draw_geoms

    scene, _ = synthetic
    geoms = [*scene.geoms, shapely.box(500000, 5000000, 500001, 5000001)]  # the last: too small to draw
    inv = ~(Affine(7.3, 0, 499950, 0, -7.3, 5001100))
    got, want = (Image.new("RGBA", (160, 170), (20, 40, 60, 255)) for _ in range(2))
    overlay = Overlay(geoms, "x", (255, 0, 200), width_px=2, fill_alpha=fill_alpha)
    assert _draw_geoms(got, overlay, inv, 14.6) == _reference_draw(want, overlay, inv, 14.6) == len(geoms) - 1
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_texts_converted_in_chunks_equal_one_bulk_call(monkeypatch, chunk):
    # the export converts millions of coordinates in chunks to bound its Python lists; a
    # geometry's text must not depend on which others share its chunk
    import georeason.geo.export.layers as layers_mod

    rng = np.random.default_rng(7)
    geoms = [
        shapely.Point(500_000 + rng.uniform(0, 1e4), 5_000_000 + rng.uniform(0, 1e4)).buffer(
            rng.uniform(5, 200), quad_segs=int(rng.integers(1, 16))
        )
        for _ in range(120)
    ] + [shapely.LineString([(500_000, 5_000_000), (500_100, 5_000_050)]), shapely.Point(500_001, 5_000_001)]
    crs = CRS.from_epsg(32633)
    whole = [json.dumps(g, allow_nan=False) for g in layers_mod.rfc7946_geometries(geoms, crs, 7)]
    monkeypatch.setattr(layers_mod, "TEXT_CHUNK_COORDS", chunk)
    assert layers_mod.rfc7946_texts(geoms, crs, 7) == whole
