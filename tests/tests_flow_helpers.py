"""Helpers for flow tests: a grounder that logs the tiles it grounds and can fail or die.

Importable by the test process and by the subprocesses the kill/resume test starts.
Behaviour is driven by environment variables so that a subprocess can be configured:

- ``GEOREASON_TEST_TILE_LOG``: file to which each grounded tile index is appended;
- ``GEOREASON_TEST_DIE_AFTER``: after this many tiles, the process exits at once
  (``os._exit``: no cleanup, like a kill);
- ``GEOREASON_TEST_FAIL_TILE``: ``row,col`` of a tile whose grounding always raises;
- ``GEOREASON_TEST_TILE_SLEEP``: seconds to sleep per tile (keeps a run busy).
"""

from __future__ import annotations

import os
import threading

from georeason.models.registry import prepare_spectral, register
from georeason.models.spectral import SpectralGrounder, class_family

_lock = threading.Lock()
_count = 0


class LoggingGrounder(SpectralGrounder):
    name = "logging-spectral"

    def ground(self, pixels, tile, classes, bands):
        global _count
        fail = os.environ.get("GEOREASON_TEST_FAIL_TILE")
        if fail and tuple(int(x) for x in fail.split(",")) == tuple(tile.index):
            raise RuntimeError(f"injected failure on tile {tile.index}")
        out = super().ground(pixels, tile, classes, bands)
        if os.environ.get("GEOREASON_TEST_TILE_SLEEP"):
            import time

            time.sleep(float(os.environ["GEOREASON_TEST_TILE_SLEEP"]))
        with _lock:
            log = os.environ.get("GEOREASON_TEST_TILE_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(f"{tile.index[0]},{tile.index[1]}\n")
            _count += 1
            die = os.environ.get("GEOREASON_TEST_DIE_AFTER")
            if die and _count >= int(die):
                os._exit(137)
        return out


def _factory(cfg):
    return LoggingGrounder(
        cfg.get("thresholds"),
        min_area_m2=float(cfg.get("min_area_m2", 0.0)),
        simplify_m=float(cfg.get("simplify_m", 0.0)),
    )


def register_logging_grounder() -> None:
    register(
        "logging-spectral", _factory, lambda label: class_family(label) is not None, prepare=prepare_spectral
    )


def check_against_truth(rows, truth, questions):
    """Each flow answer equals the same question asked of the ground-truth vectors.

    Tolerances follow from 10 m pixels: distances within 3 pixels (30 m), areas within
    3 %; counts, booleans and categories exact; object answers must overlap the truth's
    answer object with IoU > 0.8; region answers must name as many objects as the truth.
    """
    import pytest
    import shapely

    from georeason.geo.language.english import ask

    by_q = {r["question"]: r for r in rows}
    for q in questions:
        r = by_q[q]
        assert not r.get("error"), r
        if r["kind"] == "pixel":  # checked against the raster grid by the caller
            assert not r["abstained"] and r["answer"] > 0, r
            continue
        want = ask(q, truth)
        assert r["abstained"] == want.abstained, (q, r.get("reason"), want.reason)
        if want.abstained:
            continue
        if r["kind"] == "count":
            assert r["answer"] == want.value, q
        elif r["kind"] == "scalar" and r["unit"] in ("m", "km"):
            tol = 30.0 if r["unit"] == "m" else 0.03
            assert r["answer"] == pytest.approx(want.value, abs=tol), q
        elif r["kind"] == "scalar":
            assert r["answer"] == pytest.approx(want.value, rel=0.03), q
        elif r["kind"] in ("boolean", "categorical"):
            assert r["answer"] == want.value, q
        elif r["kind"] == "object":
            got = next(shapely.geometry.shape(e["geometry"]) for e in r["evidence"] if e["id"] == r["answer"])
            ref = truth.lonlat[truth.index(want.value)]
            iou = shapely.area(shapely.intersection(got, ref)) / shapely.area(shapely.union(got, ref))
            assert iou > 0.8, (q, iou)
        elif r["kind"] == "region":
            assert len(r["answer"]) == len(want.value), q
