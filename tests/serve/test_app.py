"""``erpose serve``'s app through the ASGI test client: every route, every bad input, batching, the queue."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import threading
import time
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's note that httpx2 will replace httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from erpose.serve.app import HTTPProblem, create_app, decode_upload  # noqa: E402
from erpose.serve.batcher import MicroBatcher, QueueFullError  # noqa: E402
from erpose.serve.config import ServeConfig  # noqa: E402
from erpose.skeleton import Skeleton  # noqa: E402


class DotBackend:
    """Stand-in model: one person whose 2 keypoints sit on the brightest pixel (input pixels)."""

    skeleton = Skeleton.custom(2, name="dots", sigmas=(0.05, 0.05), limbs=((0, 1),))
    strides = (32,)

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.entered: list[int] = []  # batch sizes as calls start (before the gate)
        self.delay = delay
        self.gate: threading.Event | None = None

    def predict(self, images: np.ndarray, conf: float, max_det: int) -> list[np.ndarray]:
        self.entered.append(len(images))
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(len(images))
        out = []
        for image in images:
            y, x = np.unravel_index(np.argmax(image.sum(0)), image.shape[1:])
            out.append(np.array([[0.9, x, y, 1.0, x + 1, y, 1.0], [0.1, 0, 0, 0.5, 1, 1, 0.5]], np.float32))
        return out


def _png(width: int = 80, height: int = 60, dot=(20, 30)) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, dot, 2, (255, 255, 255), -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


@pytest.fixture()
def client():
    backend = DotBackend()
    app = create_app(backend, ServeConfig(weights="dots.pt", imgsz=64, max_upload_mb=0.05))
    with TestClient(app) as test_client:
        test_client.backend = backend
        yield test_client


def test_predict_raw_body_and_multipart(client):
    raw = client.post("/v1/predict", content=_png(), headers={"content-type": "image/png"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["count"] == 1 and body["image"] == {"width": 80, "height": 60}
    person = body["people"][0]
    assert person["score"] == pytest.approx(0.9) and len(person["keypoints"]) == 2
    assert person["keypoints"][0][:2] == pytest.approx([20, 30], abs=1.5)  # original pixels
    assert len(person["box"]) == 4 and "server" in body["timing_ms"]
    form = client.post("/v1/predict?conf=0.05&draw=true", files={"file": ("a.png", _png(), "image/png")})
    assert form.status_code == 200 and form.json()["count"] == 2
    drawn = cv2.imdecode(np.frombuffer(__import__("base64").b64decode(form.json()["image_jpeg_base64"]), np.uint8), 1)
    assert drawn.shape == (60, 80, 3)


@pytest.mark.parametrize("query,fragment", [
    ("conf=2", "conf=2.0 is outside"), ("conf=abc", "is not a float"), ("max_det=0", "max_det=0 is outside"),
    ("imgsz=50", "not a multiple of 32"), ("imgsz=100000", "outside"), ("draw=maybe", "not true/false"),
    ("imgsz=1312", "imgsz=1312 is outside [32, 1280]"),  # the server's own cap (ServeConfig.max_imgsz)
])
def test_bad_parameters_are_422(client, query, fragment):
    response = client.post(f"/v1/predict?{query}", content=_png())
    assert response.status_code == 422 and fragment in response.json()["error"]


def test_bad_uploads(client):
    assert client.post("/v1/predict", content=b"").status_code == 400
    text = client.post("/v1/predict", content=b"hello, not an image")
    assert text.status_code == 415 and text.json()["error"] == "not a JPEG, PNG or WebP image"
    corrupt = client.post("/v1/predict", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert corrupt.status_code == 400 and "corrupt png" in corrupt.json()["error"]
    jpeg = cv2.imencode(".jpg", np.full((40, 40, 3), 128, np.uint8))[1].tobytes()
    truncated = client.post("/v1/predict", content=jpeg[: len(jpeg) // 2])
    assert truncated.status_code == 400 and "truncated" in truncated.json()["error"]
    just_over = client.post("/v1/predict", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * int(0.05 * 2**20))
    assert just_over.status_code == 413  # the limit is exact for a raw body
    big = client.post("/v1/predict", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 200_000)
    assert big.status_code == 413 and "0.05 MB" in big.json()["error"]
    no_file = client.post("/v1/predict", files={"other": ("a.png", _png(), "image/png")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]
    for response in (text, corrupt, truncated, big, no_file):  # nothing about the server leaks
        assert "/" not in response.json()["error"].replace("JPEG, PNG", "").replace("true/false", "")
    assert client.get("/health").status_code == 200  # still serving
    batcher = client.app.state.batcher  # failed uploads leave nothing announced or queued behind
    assert batcher.arriving_count == 0 and batcher.depth == 0


def test_health_metrics_and_demo_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "dots.pt" and health["skeleton"]["limbs"] == [[0, 1]]
    client.post("/v1/predict", content=_png())
    client.post("/v1/predict", content=b"nope")
    text = client.get("/metrics").text
    assert 'erpose_requests_total{route="/v1/predict",status="200"} 1' in text
    assert 'erpose_requests_total{route="/v1/predict",status="415"} 1' in text
    assert "erpose_predict_seconds_count 2" in text and 'erpose_predict_seconds_bucket{le="+Inf"} 2' in text
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/v1/predict" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: self-contained


def test_token_protects_every_route_but_health():
    app = create_app(DotBackend(), ServeConfig(token="s3cret", imgsz=64))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        for method, path in (("get", "/"), ("get", "/metrics"), ("post", "/v1/predict")):
            response = getattr(client, method)(path)
            assert response.status_code == 401 and "token" in response.json()["error"]
        wrong = client.post("/v1/predict", content=_png(), headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.post("/v1/predict", content=_png(), headers={"authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert client.get("/?token=s3cret").status_code == 200


def test_requests_queued_while_the_model_runs_share_the_next_call():
    backend = DotBackend()
    backend.gate = threading.Event()
    app = create_app(backend, ServeConfig(imgsz=64, max_batch=8, warmup=False))
    with TestClient(app) as client:
        results: list[int] = []

        def send():
            results.append(client.post("/v1/predict", content=_png()).status_code)

        threads = [threading.Thread(target=send) for _ in range(5)]
        threads[0].start()
        deadline = time.monotonic() + 10
        while not backend.entered and time.monotonic() < deadline:  # the first call holds the model
            time.sleep(0.01)
        for t in threads[1:]:
            t.start()
        while time.monotonic() < deadline:  # the rest queue behind it
            if app.state.batcher.depth == 4:
                break
            time.sleep(0.01)
        backend.gate.set()
        for t in threads:
            t.join(10)
        assert results == [200] * 5
        assert backend.calls == [1, 4]  # all that waited went in one call
        assert "erpose_batched_images_total 5" in client.get("/metrics").text


def test_startup_warm_up_runs_every_batch_size_once():
    backend = DotBackend()
    with TestClient(create_app(backend, ServeConfig(imgsz=64, max_batch=4))):
        assert backend.calls == [1, 2, 3, 4]
    cold = DotBackend()
    with TestClient(create_app(cold, ServeConfig(imgsz=64, max_batch=4, warmup=False))):
        assert cold.calls == []


def test_the_model_is_loaded_in_the_thread_that_runs_it(monkeypatch):
    """One thread for load and batches: PyTorch's OpenMP then keeps one thread team (MicroBatcher)."""
    from erpose.engine import predictor
    from erpose.serve.app import app_from_config

    threads: dict[str, set[int]] = {"load": set(), "predict": set()}

    class RecordingBackend(DotBackend):
        def predict(self, images, conf, max_det):
            threads["predict"].add(threading.get_ident())
            return super().predict(images, conf, max_det)

    def load(weights, device="cpu"):
        threads["load"].add(threading.get_ident())
        return RecordingBackend()

    monkeypatch.setattr(predictor, "load_backend", load)
    with TestClient(app_from_config(ServeConfig(weights="dots.pt", imgsz=64, max_batch=2))) as client:
        assert client.post("/v1/predict", content=_png()).status_code == 200
    assert len(threads["load"]) == 1 and threads["predict"] == threads["load"]
    assert threading.get_ident() not in threads["load"]  # not this (the event loop's) thread


def _batcher_calls(wait_s: float, scenario) -> tuple[list[int], float]:
    """Run ``scenario(batcher)`` against a batcher that records its batch sizes; (sizes, seconds)."""
    calls: list[int] = []

    def record(key, payloads):
        calls.append(len(payloads))
        return payloads

    async def main():
        batcher = MicroBatcher(record, max_batch=8, wait_s=wait_s, queue_size=8)
        await batcher.start()
        started = time.perf_counter()
        try:
            await scenario(batcher)
        finally:
            await batcher.stop()
        return time.perf_counter() - started

    seconds = asyncio.run(main())
    return calls, seconds


def test_a_lone_request_does_not_wait_for_the_batch_window():
    async def lone(batcher):
        assert await batcher.submit("k", 1) == 1

    calls, seconds = _batcher_calls(5.0, lone)
    assert calls == [1] and seconds < 1.0  # not the 5 s window: nobody else was on the way


def test_a_batch_waits_for_announced_requests_within_the_window():
    async def two(batcher):
        async def announced():
            with batcher.arriving():
                await asyncio.sleep(0.2)  # still uploading when the first job is collected
            return await batcher.submit("k", 2)

        second = asyncio.create_task(announced())
        await asyncio.sleep(0.05)
        assert batcher.arriving_count == 1
        assert await batcher.submit("k", 1) == 1
        assert await second == 2
        assert batcher.arriving_count == 0

    calls, _ = _batcher_calls(5.0, two)
    assert calls == [2]

    async def never(batcher):  # an announced request that fails before submitting: bounded wait
        with batcher.arriving():
            assert await batcher.submit("k", 1) == 1

    calls, seconds = _batcher_calls(0.3, never)
    assert calls == [1] and 0.3 <= seconds < 3.0


def test_full_queue_answers_503():
    async def scenario():
        release = threading.Event()

        def slow(key, payloads):
            release.wait(5)
            return payloads

        batcher = MicroBatcher(slow, max_batch=1, wait_s=0.0, queue_size=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit("k", 1))
        await asyncio.sleep(0.05)  # the worker took it and is blocked in the model
        queued = [asyncio.create_task(batcher.submit("k", i)) for i in (2, 3)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):
            await batcher.submit("k", 4)
        release.set()
        assert await first == 1 and [await q for q in queued] == [2, 3]
        await batcher.stop()

    asyncio.run(scenario())


def test_decode_upload_kinds():
    webp_ok, webp = cv2.imencode(".webp", np.full((8, 8, 3), 200, np.uint8))
    if webp_ok:
        assert decode_upload(webp.tobytes()).shape == (8, 8, 3)
    with pytest.raises(HTTPProblem) as info:
        decode_upload(io.BytesIO(b"GIF89a....").getvalue())
    assert info.value.status == 415


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_serve_cli_sets_a_passive_openmp_wait_policy_unless_told(monkeypatch, preset, expected):
    uvicorn = pytest.importorskip("uvicorn")
    from erpose.cli import serve as serve_cli
    from erpose.serve import app as app_module

    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    served = []
    monkeypatch.setattr(app_module, "app_from_config", lambda config: ("app", config))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    assert serve_cli.run(parser.parse_args(["--weights", "dots.pt", "--port", "8123"])) == 0
    assert os.environ["OMP_WAIT_POLICY"] == expected
    assert served and served[0][1]["host"] == "127.0.0.1" and served[0][1]["port"] == 8123


def test_a_fixed_batch_onnx_file_is_served_one_image_per_call(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from erpose.engine.predictor import load_backend
    from erpose.export.onnx import OnnxExportConfig, export_onnx
    from erpose.models import build_model

    path = export_onnx(build_model("erpose-n"), tmp_path / "fixed.onnx", OnnxExportConfig(imgsz=64))
    backend = load_backend(path)
    assert backend.session.metadata.dynamic is False
    app = create_app(backend, ServeConfig(weights="fixed.onnx", imgsz=64, max_batch=4))
    with TestClient(app) as client:  # the warm-up of batch sizes 1..max_batch must not break it
        assert client.get("/health").json()["max_batch"] == 1
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(
            client.post("/v1/predict?conf=0", content=_png(64, 64)).status_code)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses == [200] * 3


@pytest.mark.parametrize("policy,spinning", [("PASSIVE", "0"), ("passive", "0"), ("ACTIVE", None), (None, None)])
def test_a_passive_wait_policy_stops_onnx_runtime_spinning_too(monkeypatch, policy, spinning):
    pytest.importorskip("onnxruntime")
    from erpose.runtime.session import session_options

    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    entries = session_options(2).get_session_config_entry
    if spinning is None:
        with pytest.raises(RuntimeError):  # not set: ONNX Runtime's default (spinning)
            entries("session.intra_op.allow_spinning")
    else:
        assert entries("session.intra_op.allow_spinning") == spinning

