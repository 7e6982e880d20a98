"""Fixtures for the data tests: the real-data folder (generated datasets: ``data_factories``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``$ERPOSE_REAL_DATA`` or ``../shared/data/real`` from the repo root; skips when absent."""
    root = Path(os.environ.get("ERPOSE_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    return root
