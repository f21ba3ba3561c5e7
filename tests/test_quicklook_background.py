"""Answers' quicklooks written on a thread of their own (geo/export/item.py, ItemFiles.add):
every one is on disk when the item finishes, at most QUICKLOOKS_AHEAD wait at once, and an
error writing one is raised, not lost."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import CRS

from georeason.errors import ExportError
from georeason.geo.export import item as item_mod
from georeason.geo.export.quicklook import Basemap
from georeason.geo.language.answer import Answer, Evidence

CRS_UTM = CRS.from_epsg(32633)


def _files(tmp_path: Path) -> item_mod.ItemFiles:
    geoms = [shapely.box(500000 + 100 * i, 4600000, 500050 + 100 * i, 4600050) for i in range(3)]
    base = Basemap(
        np.zeros((8, 8, 3), np.uint8), (500000.0, 4599000.0, 501000.0, 4600100.0), ["r", "g", "b"], []
    )
    files = item_mod.ItemFiles(
        tmp_path, "scene.tif", ["a", "b", "c"], ["lake"] * 3, geoms, CRS_UTM, item="x", basemap=base
    )
    files._objects = _done()  # the objects' files are not what these tests are about
    return files


def _done():
    from concurrent.futures import Future

    f: Future[None] = Future()
    f.set_result(None)
    return f


def _answer(n: int) -> Answer:
    ev = Evidence(f"o{n}", "lake", shapely.box(500000, 4600000, 500010, 4600010), CRS_UTM)
    return Answer(n, "count", evidence=[ev], question=f"q{n}")


def _add(files: item_mod.ItemFiles, tmp_path: Path, n: int) -> str | None:
    return files.add(_answer(n), {"geojson": str(tmp_path / f"{n:02d}_q.geojson")})


def test_quicklooks_are_written_meanwhile_bounded_and_all_there_at_the_end(tmp_path, monkeypatch) -> None:
    release = threading.Event()
    started: list[str] = []
    written: list[str] = []

    def slow(raster, path, **kw):
        started.append(Path(path).name)
        release.wait(10)
        Path(path).write_bytes(b"png")
        written.append(Path(path).name)
        return Path(path)

    monkeypatch.setattr(item_mod, "write_quicklook", slow)
    monkeypatch.setattr(item_mod, "write_project", lambda path, *a, **k: Path(path))
    files = _files(tmp_path)
    files._look_pool = item_mod.ThreadPoolExecutor(1)  # as start(background=True) makes it
    first = _add(files, tmp_path, 1)
    assert first == str(tmp_path / "01_q.png")
    assert written == []  # add returned while its quicklook is still being written
    # the next answer's add waits for the one before (QUICKLOOKS_AHEAD = 1): run it in a thread
    t = threading.Thread(target=_add, args=(files, tmp_path, 2))
    t.start()
    t.join(0.3)
    assert t.is_alive() and started == ["01_q.png"]  # answer 2's quicklook not started yet
    release.set()
    t.join(10)
    out = files.finish()
    assert written == ["01_q.png", "02_q.png"] == started
    assert out["answer_quicklooks"] == [str(tmp_path / "01_q.png"), str(tmp_path / "02_q.png")]
    assert all(Path(p).exists() for p in out["answer_quicklooks"])


def test_an_error_writing_a_quicklook_is_raised_by_finish(tmp_path, monkeypatch) -> None:
    def broken(raster, path, **kw):
        raise ExportError(f"could not write {path}: disk full")

    monkeypatch.setattr(item_mod, "write_quicklook", broken)
    files = _files(tmp_path)
    files._look_pool = item_mod.ThreadPoolExecutor(1)
    _add(files, tmp_path, 1)
    with pytest.raises(ExportError, match="disk full"):
        files.finish()
