"""``benchmarks/loss_gradient_share.py``: per-keypoint slopes |dL/du| of each formulation, by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
share = pytest.importorskip("loss_gradient_share")

from erpose.models.criterion import LossConfig  # noqa: E402


def test_u_slopes_are_the_hand_derivatives_per_keypoint() -> None:
    u = torch.tensor([[0.5, 1.0, 3.0]])
    labelled = torch.tensor([[True, True, False]])
    # keypoint_loss averages over the 2 labelled keypoints, so each slope is halved; the
    # unlabelled one gets none.
    plain = share._u_slopes(u, labelled, [], LossConfig(kpt_loss="plain"))
    expected = [2 * 0.5 * math.exp(-0.25) / 2, 2 * math.exp(-1) / 2, 0.0]
    assert plain[0].tolist() == pytest.approx(expected, rel=1e-5)
    smooth = share._u_slopes(u, torch.ones(1, 3, dtype=torch.bool), [], LossConfig(kpt_loss="smooth"))
    assert smooth[0, 2].item() == pytest.approx(math.sqrt(2) * math.exp(-0.5) / 3, rel=1e-5)
    t = share._u_slopes(u, torch.ones(1, 3, dtype=torch.bool), [], LossConfig(kpt_loss="t_kernel", kpt_tail=1.0))
    assert t[0, 2].item() == pytest.approx(2 * 3 / 10**2 / 3, rel=1e-5)
