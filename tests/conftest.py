"""Shared fixtures.

Prefect: one session-scoped test harness (a local SQLite server on loopback, started
once: ~10 s), with ``PREFECT_HOME`` in a temporary folder so nothing touches the user's
profile. Each flow test passes its own ``results_dir`` under ``tmp_path``, so cached
task results never leak between tests.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

if "PREFECT_HOME" not in os.environ:
    # a temporary Prefect home for this session, removed when it ends (each session's server
    # database is a few MB: left behind, they filled /tmp over many runs)
    _PREFECT_HOME = Path(tempfile.mkdtemp(prefix="georeason-prefect-home-"))
    os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
    atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]

# scripts that tests run under another interpreter (QGIS's system Python), not test modules
collect_ignore_glob = ["clients/*.py"]


@pytest.fixture(scope="session")
def prefect_harness():
    """A Prefect test server for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def write_scene() -> Callable[[Path, int], None]:
    """``benchmarks/make_scene.py``'s ``write_scene(path, size)``: the synthetic 4-band
    uint16 benchmark scene (nodata 0), for tests that need one of its size."""
    spec = importlib.util.spec_from_file_location("make_scene", REPO / "benchmarks" / "make_scene.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_scene
