"""``erpose serve`` as a real process on a free loopback port, talked to over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    """``erpose serve`` on 127.0.0.1 with a fresh erpose-n at 64 px; yields its base URL."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ERPOSE_SERVE_TOKEN": "t0ken"}
    process = subprocess.Popen(
        [sys.executable, "-m", "erpose.cli.main", "serve", "--weights", "erpose-n", "--port", str(port),
         "--imgsz", "64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if process.poll() is not None:
                pytest.fail(f"erpose serve exited: {process.stdout.read()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("erpose serve did not come up within 60 s")
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_serve_process_end_to_end(server):
    url, process = server
    health = httpx.get(url + "/health").json()
    assert health["model"] == "erpose-n" and health["auth"] is True and len(health["skeleton"]["keypoint_names"]) == 17
    image = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))[1].tobytes()
    assert httpx.post(url + "/v1/predict", content=image).status_code == 401
    auth = {"authorization": "Bearer t0ken"}
    response = httpx.post(url + "/v1/predict?conf=0&max_det=3", files={"file": ("x.jpg", image, "image/jpeg")},
                          headers=auth, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and body["image"] == {"width": 64, "height": 48}
    assert all(len(p["keypoints"]) == 17 for p in body["people"])
    assert httpx.post(url + "/v1/predict", content=b"nope", headers=auth).status_code == 415
    assert "erpose_requests_total" in httpx.get(url + "/metrics", headers=auth).text
    assert process.poll() is None  # bad input did not take it down
