"""The remote grounder against a real local HTTP server that speaks the OpenAI chat API.

:class:`FakeOpenAI` (also used by ``test_model_planner.py``) listens on 127.0.0.1 on an
ephemeral port. As a "vision model" it decodes the PNG it is sent, finds the bright
blobs in it, and answers like Qwen2.5-VL would: JSON ``bbox_2d`` in absolute pixels of
the image *after* the Qwen2.5-VL processor's ``smart_resize`` (integers: the
quantisation is real). As a "chat model" it replies with scripted texts. It records
every request, can fail the next N requests with HTTP 503, and can delay replies.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import shapely

from georeason.errors import InputError, ModelError

_DECODE_LOCK = threading.Lock()


class FakeOpenAI:
    """A loopback OpenAI-compatible server (``/v1/models``, ``/v1/chat/completions``)."""

    def __init__(self, model: str = "fake-qwen2.5-vl"):
        self.model = model
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.fail_next = 0  # answer this many next chat requests with HTTP 503
        self.fail_status = 503
        self.delay = 0.0
        self.replies: list[str] = []  # scripted text replies (chat without image)
        self.reply_fn: Callable[[dict], str] | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    fail = fake.fail_next > 0
                    if fail:
                        fake.fail_next -= 1
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    if fail:
                        self._send(fake.fail_status, {"error": {"message": "overloaded, try again"}})
                        return
                    if body.get("model") != fake.model:
                        self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
                        return
                    text = fake.answer(body)
                    self._send(
                        200,
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "model": fake.model,
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text},
                                }
                            ],
                        },
                    )
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # -- the "models" ------------------------------------------------------------------
    def answer(self, body: dict) -> str:
        image = None
        for m in body["messages"]:
            if isinstance(m.get("content"), list):
                for part in m["content"]:
                    if part.get("type") == "image_url":
                        image = part["image_url"]["url"]
        if image is not None:
            return self.ground(image, body)
        if self.reply_fn is not None:
            return self.reply_fn(body)
        return self.replies.pop(0) if self.replies else "I cannot help with that."

    @staticmethod
    def ground(data_url: str, body: dict) -> str:
        """Qwen2.5-VL-style answer: bright blobs as bbox_2d in smart_resized input pixels."""
        from scipy import ndimage

        from georeason.models.backends.remote import decode_png
        from georeason.models.formats import smart_resize

        assert data_url.startswith("data:image/png;base64,")
        with _DECODE_LOCK:  # warnings.catch_warnings in decode_png is not thread-safe
            img = decode_png(base64.b64decode(data_url.split(",", 1)[1]))
        h, w = img.shape[:2]
        h_in, w_in = smart_resize(h, w, 28, 56 * 56, 14 * 14 * 4 * 16384)  # processor defaults
        bright = img[..., :3].min(axis=2) >= 200
        lab, _ = ndimage.label(bright)
        items = []
        for sl in ndimage.find_objects(lab):
            r0, r1, c0, c1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            box = [round(c0 * w_in / w), round(r0 * h_in / h), round(c1 * w_in / w), round(r1 * h_in / h)]
            items.append({"bbox_2d": box, "label": "building"})
        return "```json\n" + json.dumps(items, indent=2) + "\n```"


@pytest.fixture
def fake_server():
    srv = FakeOpenAI().start()
    try:
        yield srv
    finally:
        srv.stop()


# -- units ------------------------------------------------------------------------------------


def _image_with_squares(size=(200, 300), squares=((20, 30, 8), (100, 150, 10), (170, 10, 6))):
    """RGB uint8 (rows, cols, 3), black with white squares (row, col, side)."""
    img = np.zeros(size + (3,), np.uint8)
    for r, c, s in squares:
        img[r : r + s, c : c + s] = 255
    return img


def test_png_round_trip_without_pillow():
    from georeason.models.backends.remote import decode_png, encode_png, png_data_url

    img = _image_with_squares()
    assert np.array_equal(decode_png(encode_png(img)), img)
    assert png_data_url(img).startswith("data:image/png;base64,iVBOR")  # the PNG signature


def _remote(fake, **cfg):
    from georeason.models.registry import build_grounder, prepare_spec

    opts = {"base_url": fake.base_url, "retries": 2, "backoff": 0.01, "timeout": 10, **cfg}
    return build_grounder(prepare_spec("remote", None, opts))


def test_predict_boxes_back_in_image_pixels(fake_server):
    squares = ((20, 30, 8), (100, 150, 10), (170, 10, 6))
    g = _remote(fake_server)
    (dets,) = g.predict([_image_with_squares(squares=squares)], ["building"])
    assert len(dets) == 3 and all(d.kind == "box" and d.label == "building" for d in dets)
    got = sorted(d.geometry.bounds for d in dets)
    want = sorted((float(c), float(r), float(c + s), float(r + s)) for r, c, s in squares)
    # 300 x 200 -> smart_resize 308 x 196: integer coordinates there, ~0.5 px here
    for gb, wb in zip(got, want):
        assert np.allclose(gb, wb, atol=0.8), (gb, wb)
    (req,) = fake_server.requests
    assert req["model"] == "fake-qwen2.5-vl"  # discovered from /v1/models
    parts = req["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and "building" in parts[1]["text"]


def test_one_request_per_tile_and_class_run_concurrently(fake_server):
    fake_server.delay = 0.2
    g = _remote(fake_server, batch_size=4, model="fake-qwen2.5-vl")
    imgs = [_image_with_squares() for _ in range(4)]
    t0 = time.perf_counter()
    out = g.predict(imgs, ["building", "house"])
    took = time.perf_counter() - t0
    assert len(fake_server.requests) == 8
    assert [len(d) for d in out] == [6, 6, 6, 6]  # 3 per class; labelled with the class asked
    assert {d.label for d in out[0]} == {"building", "house"}
    assert fake_server.max_in_flight >= 3 and took < 8 * 0.2


def test_retries_5xx_then_succeeds(fake_server):
    fake_server.fail_next = 2
    g = _remote(fake_server, model="fake-qwen2.5-vl", retries=2)
    (dets,) = g.predict([_image_with_squares()], ["building"])
    assert len(dets) == 3 and len(fake_server.requests) == 3


def test_gives_up_after_retries_and_does_not_retry_4xx(fake_server):
    fake_server.fail_next = 10
    g = _remote(fake_server, model="fake-qwen2.5-vl", retries=1)
    with pytest.raises(ModelError, match="failed after 2 attempts.*503"):
        g.predict([_image_with_squares()], ["building"])
    assert len(fake_server.requests) == 2
    fake_server.fail_next, fake_server.requests = 0, []
    bad = _remote(fake_server, model="no-such-model", retries=3)
    with pytest.raises(ModelError, match="HTTP 404.*does not exist"):
        bad.predict([_image_with_squares()], ["building"])
    assert len(fake_server.requests) == 1


def test_connection_refused_is_a_model_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    from georeason.models.backends.remote import ChatClient

    client = ChatClient(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ModelError, match="failed after 2 attempts"):
        client([{"role": "user", "content": "hi"}])


def test_api_key_from_the_named_env_var_only(fake_server, monkeypatch):
    monkeypatch.setenv("GEOREASON_TEST_KEY", "sk-test-123")
    g = _remote(fake_server, model="fake-qwen2.5-vl", api_key_env="GEOREASON_TEST_KEY")
    g.predict([_image_with_squares()], ["building"])
    assert fake_server.headers[-1].get("Authorization") == "Bearer sk-test-123"
    assert "sk-test-123" not in json.dumps(g.config)


def test_config_errors():
    from georeason.models.registry import prepare_spec

    with pytest.raises(InputError, match="base_url"):
        prepare_spec("remote", None, {})
    with pytest.raises(InputError, match="not an http"):
        from georeason.models.backends.remote import ChatClient

        ChatClient("127.0.0.1:8000")


# -- end to end through the answer flow -----------------------------------------------------

SQUARES_PX = [  # (col, row, side) of bright "buildings" on a 600 x 600 px, 10 m scene
    (40, 40, 8),
    (120, 60, 6),
    (210, 100, 8),
    (220, 220, 8),
    (300, 150, 6),
    (330, 400, 10),
    (410, 410, 7),
    (500, 80, 8),
    (90, 500, 6),
    (250, 520, 8),
    (520, 300, 9),
    (440, 220, 6),
    (186, 300, 8),
    (380, 186, 8),
]
ORIGIN = (500_000.0, 5_100_000.0)


@pytest.fixture(scope="module")
def building_catalog(tmp_path_factory):
    """A catalog with one synthetic RGB scene of bright squares and a road layer; truth vectors."""
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin

    from georeason.catalog import add_item

    root = tmp_path_factory.mktemp("remote-cat")
    tr = from_origin(ORIGIN[0], ORIGIN[1], 10.0, 10.0)
    data = np.full((3, 600, 600), 500, np.uint16)
    for c, r, s in SQUARES_PX:
        data[:, r : r + s, c : c + s] = 3000
    tif = root / "squares.tif"
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=600,
        height=600,
        count=3,
        dtype="uint16",
        crs="EPSG:32633",
        transform=tr,
    ) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue")

    def px(c, r):
        return ORIGIN[0] + c * 10.0, ORIGIN[1] - r * 10.0

    road = shapely.LineString([px(0, 300), px(600, 320)])
    roads = gpd.GeoDataFrame({"id": ["road-1"], "class": ["road"]}, geometry=[road], crs="EPSG:32633")
    roads_path = root / "roads.geojson"
    roads.to_crs("EPSG:4326").to_file(roads_path, driver="GeoJSON")
    blds = [shapely.box(*px(c, r + s), *px(c + s, r)) for c, r, s in SQUARES_PX]
    truth = gpd.GeoDataFrame(
        {
            "id": [f"b{i}" for i in range(len(blds))] + ["road-1"],
            "class": ["building"] * len(blds) + ["road"],
        },
        geometry=blds + [road],
        crs="EPSG:32633",
    )
    truth_path = root / "truth.gpkg"
    truth.to_file(truth_path, driver="GPKG")
    add_item(root / "cat", tif, vectors=[roads_path], item_id="squares")
    return root / "cat", truth_path


def test_answer_flow_with_the_remote_grounder(prefect_harness, fake_server, building_catalog, tmp_path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from tests_flow_helpers import check_against_truth

    from georeason.flows.answer import answer
    from georeason.geo.raster.tiling import plan_tiles
    from georeason.geo.vector.scene import read_scene

    catalog, truth_path = building_catalog
    questions = [
        "How many buildings are there?",
        "How many buildings are within 200 m of #road-1?",
        "Which building is nearest to #road-1?",
        "Show all buildings within 100 m of #road-1.",
    ]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"question": q, "item": "squares"}) + "\n" for q in questions))
    fake_server.fail_next = 1  # the first request fails: the client retries it
    result = answer.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        catalog=str(catalog),
        questions=str(qfile),
        out=str(tmp_path / "out"),
        results_dir=str(tmp_path / "results"),
        grounder="remote",
        grounder_options={
            "base_url": fake_server.base_url,
            "format": "qwen2.5",
            "retries": 2,
            "backoff": 0.01,
            "batch_size": 3,
        },
        tile_px=256,
        overlap_px=64,
    )
    assert result["errors"] == 0 and result["failed_tiles"] == 0
    from georeason.runstate import answer_rows

    rows = answer_rows(result["answers"])  # the flow returns a summary; answers are in the file
    truth = read_scene(truth_path)
    check_against_truth(rows, truth, questions)
    assert rows[0]["answer"] == len(SQUARES_PX)
    # every tile was sent once (plus the retried request), as a PNG of the full tile
    tif = next(Path(catalog).rglob("*.tif"))
    n_tiles = len(list(plan_tiles(str(tif), 256, 64)))
    assert n_tiles > 4
    images = [r for r in fake_server.requests if isinstance(r["messages"][0]["content"], list)]
    assert len(images) == n_tiles + 1
    # buildings straddling seams came back as one object each, close to the truth squares
    # objects.geojson, or one file per geometry type when the item's objects mix them
    objs = [
        f
        for path in sorted((tmp_path / "out" / "squares").glob("objects*.geojson"))
        for f in json.loads(path.read_text())["features"]
    ]
    got = [shapely.geometry.shape(f["geometry"]) for f in objs if f["properties"].get("class") == "building"]
    assert len(got) == len(SQUARES_PX)
