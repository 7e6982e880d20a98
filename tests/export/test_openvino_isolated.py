"""Runs tests/export/test_openvino.py in a fresh interpreter (see the note at its top)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ISOLATED_ENV = "ERPOSE_OPENVINO_ISOLATED"


def test_openvino_module_passes_in_its_own_interpreter():
    pytest.importorskip("openvino")
    module = Path(__file__).with_name("test_openvino.py")
    env = {**os.environ, ISOLATED_ENV: "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
                          capture_output=True, text=True, timeout=1200, env=env, cwd=module.parent)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
