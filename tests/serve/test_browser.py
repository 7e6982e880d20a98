"""The demo page in a real headless Chromium: it uploads a generated image and draws the skeletons.

Chromium comes from Debian (``apt-get install -y chromium``; ``.ci/run`` installs it). The page
takes ``?demo_image=<data URL>`` and predicts on it at load; ``--dump-dom`` then shows the person
count and how many canvas pixels the drawing changed. Skips where no Chromium can be found.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import cv2
import numpy as np
import pytest

uvicorn = pytest.importorskip("uvicorn")

from erpose.serve.app import create_app  # noqa: E402
from erpose.serve.config import ServeConfig  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("ERPOSE_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install -y chromium)")
#: Flags for a root, offline, headless run (without the background-networking ones Chromium
#: keeps trying to reach Google's hosts, which this machine's closed network refuses).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


class TwoPointBackend:
    """One person, two keypoints a limb apart, around the brightest pixel (input pixels)."""

    from erpose.skeleton import Skeleton

    skeleton = Skeleton.custom(2, name="dots", sigmas=(0.05, 0.05), limbs=((0, 1),))
    strides = (32,)

    def predict(self, images, conf, max_det):
        out = []
        for image in images:
            y, x = np.unravel_index(np.argmax(image.sum(0)), image.shape[1:])
            out.append(np.array([[0.9, x - 15, y, 1.0, x + 15, y + 10, 1.0]], np.float32))
        return out


@pytest.fixture()
def live_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(TwoPointBackend(), ServeConfig(weights="two-points", imgsz=128))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_demo_page_draws_skeletons_in_chromium(live_server, tmp_path):
    image = np.full((120, 160, 3), 40, np.uint8)
    cv2.circle(image, (80, 60), 3, (255, 255, 255), -1)
    data_url = "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
    url = f"{live_server}/?demo_image={urllib.parse.quote(data_url, safe='')}"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'data-done="1"' in dom, dom[-2000:]
    assert re.search(r'<span id="count">1</span>', dom), "the page should show one person"
    drawn = int(re.search(r'data-drawn-pixels="(\d+)"', dom).group(1))
    assert drawn > 30, f"the skeleton should change canvas pixels, changed {drawn}"
    shots = Path(os.environ.get("ERPOSE_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    subprocess.run([*common, "--window-size=900,500", f"--screenshot={shots / 'serve_demo_test.png'}", url],
                   capture_output=True, timeout=120)
    assert (shots / "serve_demo_test.png").stat().st_size > 1000
