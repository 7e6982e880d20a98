"""Shared helpers of the export tests: a fresh model made numerically "trained-like"."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def make_realistic(model: torch.nn.Module, images: torch.Tensor) -> torch.nn.Module:
    """Give a freshly initialised model distinct, unsaturated outputs on ``images``; eval mode.

    A fresh model's features vanish with depth (every anchor gets the same prior score), so its
    top-k order is a tie-break and parity tests would compare nothing. Batch-norm statistics are
    set from ``images`` (variances floored at their mean to keep the net well conditioned) and each
    head output conv is rescaled to unit-variance output, as a trained model roughly has.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.clamp_(min=float(module.running_var.mean()))
    outputs = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    spread: dict[torch.nn.Module, torch.Tensor] = {}

    def record(module, inputs, output):
        spread[module] = (output - module.bias.view(1, -1, 1, 1)).std()

    hooks = [m.register_forward_hook(record) for m in outputs]
    with torch.no_grad():
        model(images)
        for module, std in spread.items():
            module.weight.div_(std)
            module.bias.zero_()
    for hook in hooks:
        hook.remove()
    return model


def normalise_coordinates(rows: np.ndarray, size: int) -> np.ndarray:
    """(..., 1 + 3K) rows with x, y divided by the input size (scores, probabilities unchanged)."""
    out = np.array(rows, dtype=np.float64)
    out[..., 1::3] /= size
    out[..., 2::3] /= size
    return out


def assert_same_topk(actual: np.ndarray, expected: np.ndarray, size: int, atol: float = 1e-4) -> None:
    """Rows equal to ``atol`` in the same order: scores and probabilities absolute, coordinates
    relative to the input ``size`` (float32 convolutions give errors of ~1e-6 of the feature scale,
    times the stride, whatever the coordinate's own value). Rows whose scores tie within ``atol``
    may swap. At least 90 % of rows must match in place, so the check is never vacuous."""
    assert actual.shape == expected.shape
    actual, expected = normalise_coordinates(actual, size), normalise_coordinates(expected, size)
    rtol = 0.0
    np.testing.assert_allclose(actual[..., 0], expected[..., 0], rtol=0, atol=atol)
    in_place = 0
    for a_rows, e_rows in zip(actual, expected):
        for i, row in enumerate(a_rows):
            if np.allclose(row, e_rows[i], rtol=rtol, atol=atol):
                in_place += 1
                continue
            ties = np.flatnonzero(np.abs(e_rows[:, 0] - row[0]) <= atol)
            assert any(np.allclose(row, e_rows[j], rtol=rtol, atol=atol) for j in ties), (
                f"row {i} {row[:4]} matches no PyTorch row of the same score; expected {e_rows[i, :4]}"
            )
    assert in_place >= 0.9 * actual.shape[0] * actual.shape[1]


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
