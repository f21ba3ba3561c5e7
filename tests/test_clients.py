"""What users see, checked with the real clients: GDAL (ogrinfo/gdalinfo), QGIS 3 headless, and
the Prefect UI in headless Chromium (Playwright for Python driving /usr/bin/chromium).

One sample run (both shipped items) is made against a Prefect server this module starts on
loopback; every export of it is then opened by path in GDAL and QGIS, and the flow run's
pages are opened in the browser. Screenshots go to ``$GEOREASON_SCREENSHOTS`` (default: a
temporary folder); ``docs/img`` holds the ones the documentation uses.

The clients come from Debian (``.ci/run`` installs them: gdal-bin, python3-qgis,
qgis-providers, chromium; Playwright from pip). Without them a local run skips with the
reason; in CI (``CI=true``) a missing client fails the test instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


CHROMIUM = Path("/usr/bin/chromium")
SYSTEM_PYTHON = Path("/usr/bin/python3")
QGIS_CHECK = Path(__file__).parent / "clients" / "qgis_check.py"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def need(ok: bool, reason: str) -> None:
    """Skip locally when a client is missing; fail in CI, where .ci/run installs it."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI must have {reason} (.ci/run installs it)")
    print(f"SKIP: {reason} not installed (Debian: apt-get install gdal-bin python3-qgis chromium)")
    pytest.skip(f"{reason} not installed")


def _has_qgis() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    r = subprocess.run([str(SYSTEM_PYTHON), "-c", "import qgis.core"], capture_output=True, timeout=120)
    return r.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout_s: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("GEOREASON_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` (API and UI) on a free loopback port; yields its base URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/health", 240)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def sample_run(prefect_server, tmp_path_factory):
    """``georeason run`` of the shipped catalog against the loopback server; yields (out dir, flow run id)."""
    out = tmp_path_factory.mktemp("run") / "outputs"
    env = {
        **os.environ,
        "PREFECT_API_URL": f"{prefect_server}/api",
        "PREFECT_HOME": str(tmp_path_factory.mktemp("client-home")),
        "PREFECT_LOGGING_TO_API_ENABLED": "true",  # the run's logs in the UI (the test session turns them off)
    }
    r = subprocess.run(
        [sys.executable, "-m", "georeason.cli", "run", "--out", str(out), "--max-task-runs", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    req = urllib.request.Request(
        f"{prefect_server}/api/flow_runs/filter",
        data=json.dumps({"sort": "START_TIME_DESC", "limit": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        (run,) = json.loads(resp.read())
    return out, run


def _exports(out: Path) -> list[Path]:
    return sorted(
        p for p in out.rglob("*") if p.suffix in (".geojson", ".gpkg", ".tif") and ".results" not in p.parts
    )


def test_gdal_opens_every_export_without_warnings(sample_run):
    need(shutil.which("ogrinfo") is not None and shutil.which("gdalinfo") is not None, "GDAL (gdal-bin)")
    out, _ = sample_run
    exports = _exports(out)
    assert len(exports) > 20
    for path in exports:
        tool = "gdalinfo" if path.suffix == ".tif" else "ogrinfo"
        args = [tool, str(path)] if tool == "gdalinfo" else [tool, "-ro", "-al", "-so", str(path)]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{path}: {r.stderr}"
        text = r.stdout + r.stderr
        assert "Warning" not in text and "ERROR" not in text, f"{path}: {text[-2000:]}"
        if tool == "gdalinfo":
            assert 'ID["EPSG",' in r.stdout, f"{path} has no CRS"
            continue
        # every layer: a CRS and a single geometry type; records without geometry say why
        layers = [blk for blk in r.stdout.split("Layer name: ")[1:]]
        assert layers, f"{path}: no layer"
        for blk in layers:
            assert "Feature Count:" in blk
            gtype = blk.split("Geometry: ", 1)[1].splitlines()[0]
            if gtype in ("Unknown (any)", "None"):
                # an abstention/error: one record with status and reason
                df = _read(path)
                assert (
                    len(df) == 1 and df["status"].iloc[0] in ("abstained", "error") and df["reason"].iloc[0]
                )
            else:
                assert gtype.startswith("Multi"), f"{path}: {gtype}"
                assert 'ID["EPSG",' in blk, f"{path}: layer without CRS"
    gpkg = out / "sample" / "objects.gpkg"
    r = subprocess.run(["ogrinfo", "-ro", str(gpkg)], capture_output=True, text=True)
    assert "objects_polygons (Multi Polygon)" in r.stdout and "objects_lines (Multi Line String)" in r.stdout


def _read(path: Path):
    import pyogrio

    return pyogrio.read_dataframe(path)


def test_qgis_draws_every_feature_of_every_export(sample_run, screenshots):
    need(_has_qgis(), "QGIS Python bindings (python3-qgis)")
    out, _ = sample_run
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(screenshots)}
    for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(k, None)
    r = subprocess.run(
        [str(SYSTEM_PYTHON), str(QGIS_CHECK), str(out), str(screenshots / "qgis")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    vectors = report["vectors"]
    assert len(vectors) > 20
    total = 0
    for name, v in vectors.items():
        assert v["valid"], name
        assert v["other_type"] == 0, f"{name}: features of another geometry type are not drawn"
        if v["geometry_type"] == "NoGeometry":  # an abstention's record: a table row
            assert v["features"] == v["null_geometry"] == 1, name
            continue
        assert v["drawn"] == v["features"] > 0, f"{name}: {v}"
        assert v["painted_px"] > 0, f"{name}: nothing painted"
        assert v["crs"] in ("EPSG:4326", "EPSG:32633", "EPSG:32618"), name
        total += v["drawn"]
    # the question whose buildings QGIS used to skip: all 18 drawn, the road in its own file
    q04 = "sample/q04-how-many-buildings-within-200-m-road-1"
    assert vectors[f"{q04}.polygons.geojson"]["drawn"] == 18
    assert vectors[f"{q04}.lines.geojson"]["geometry_type"] == "MultiLineString"
    for name, rast in report["rasters"].items():
        assert rast["valid"] and rast["crs"].startswith("EPSG:"), name
    for name, proj in report["projects"].items():
        assert proj["read"] and proj["crs"] in ("EPSG:32633", "EPSG:32618"), name
        assert proj["layers"] and all(lyr["valid"] for lyr in proj["layers"]), proj["layers"]
        kinds = {lyr["renderer"] for lyr in proj["layers"]}
        assert {"categorizedSymbol", "singleSymbol", "multibandcolor"} <= kinds, kinds
        assert proj["painted_px"] > 1000 and Path(proj["png"]).stat().st_size > 0
    assert "paletted" in {
        lyr["renderer"] for p in report["projects"].values() for lyr in p["layers"]
    }  # masks
    print(f"QGIS drew {total} features in {len(vectors)} layers; screenshots in {screenshots / 'qgis'}")


def _browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
    return pw, browser


def test_prefect_ui_shows_run_state_named_tasks_and_the_quicklook(prefect_server, sample_run, screenshots):
    need(CHROMIUM.exists(), "Chromium (/usr/bin/chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "Playwright for Python (pip install playwright)")
    _, run = sample_run
    pw, browser = _browser()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{prefect_server}/runs/flow-run/{run['id']}", wait_until="networkidle", timeout=120_000)
        page.get_by_text("Completed").first.wait_for(timeout=60_000)
        assert run["name"].startswith("data_catalog ")  # named from the catalog and the time
        page.get_by_text(run["name"]).first.wait_for(timeout=30_000)
        page.screenshot(path=str(screenshots / "prefect-flow-run.png"))
        # task runs named by item and tile range
        page.get_by_text("Task Runs", exact=True).first.click()
        page.get_by_text("sample: ground tiles").first.wait_for(timeout=60_000)
        names = page.get_by_text("sample: ground tiles").all_inner_texts()
        assert any(".." in n for n in names), names  # a tile range, e.g. (0, 0)..(1, 0)
        page.screenshot(path=str(screenshots / "prefect-task-runs.png"))
        # artifacts: listed, with descriptions; the quicklook image actually loads
        page.get_by_text("Artifacts", exact=True).last.click()
        page.get_by_text("georeason-quicklook-sample").first.wait_for(timeout=60_000)
        page.screenshot(path=str(screenshots / "prefect-artifacts.png"))
        # every artifact has a description
        req = urllib.request.Request(
            f"{prefect_server}/api/artifacts/filter",
            data=json.dumps({"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            arts = json.loads(resp.read())
        assert {a["type"] for a in arts} >= {"markdown", "table", "progress"}
        assert all(a.get("description") for a in arts), [a["key"] for a in arts if not a.get("description")]
        assert all(a["data"] == 100 for a in arts if a["type"] == "progress")  # every tile grounded
        # the quicklook artifact's page shows the pictures: loaded, not refused
        (ql,) = [a for a in arts if a["key"] == "georeason-quicklook-sample"]
        page.goto(f"{prefect_server}/artifacts/artifact/{ql['id']}", wait_until="networkidle")
        img = page.locator("img[src^='data:image/jpeg']").first
        img.wait_for(timeout=60_000)
        widths = page.eval_on_selector_all(
            "img[src^='data:image/jpeg']", "els => els.map(e => e.naturalWidth)"
        )
        assert len(widths) >= 2 and all(w > 0 for w in widths), widths  # the item's and each answer's
        page.screenshot(path=str(screenshots / "prefect-quicklook.png"), full_page=False)
    finally:
        browser.close()
        pw.stop()
