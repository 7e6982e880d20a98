"""Optimiser parameter groups, learning-rate schedules and warmup at hand-computed points."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from erpose.engine.optim import (
    OptimConfig,
    build_optimizer,
    lr_factor,
    param_groups,
    resolve_optimizer,
    scheduled_values,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)  # with a bias
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.scale = nn.Parameter(torch.ones(4))  # a 1-D "layer scale"
        self.fc.weight.requires_grad_(False)  # frozen parameters are left out


def test_param_groups_no_decay_on_norms_and_biases() -> None:
    net = Net()
    weight, norm, bias = param_groups(net, weight_decay=0.1)
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    assert ids(weight) == {id(net.conv.weight), id(net.conv2.weight)}
    assert ids(norm) == {id(net.bn.weight), id(net.ln.weight), id(net.scale)}
    assert ids(bias) == {id(net.bn.bias), id(net.conv2.bias), id(net.ln.bias), id(net.fc.bias)}
    assert (weight["weight_decay"], norm["weight_decay"], bias["weight_decay"]) == (0.1, 0.0, 0.0)


def test_build_optimizer_sgd_nesterov_and_decay_scaled_to_nominal_batch() -> None:
    config = OptimConfig(optimizer="sgd", weight_decay=5e-4, nominal_batch=64)
    opt = build_optimizer(Net(), config, batch_size=16, accumulate=2, total_optimizer_steps=10)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.937
    # 16 images x 2 accumulations = 32 of a nominal 64: half the decay per step
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(2.5e-4)
    assert [g["weight_decay"] for g in opt.param_groups[1:]] == [0.0, 0.0]
    assert all(g["lr"] == 0.01 and g["initial_lr"] == 0.01 for g in opt.param_groups)


def test_auto_optimizer_and_default_lr() -> None:
    assert resolve_optimizer(OptimConfig(optimizer="auto"), 500) == ("adamw", 0.002)
    assert resolve_optimizer(OptimConfig(optimizer="auto"), 20000) == ("sgd", 0.01)
    assert resolve_optimizer(OptimConfig(optimizer="sgd", lr0=0.05), 5) == ("sgd", 0.05)
    opt = build_optimizer(Net(), OptimConfig(optimizer="adamw"), batch_size=64, accumulate=1, total_optimizer_steps=1)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.937, 0.999)


def test_lr_factor_hand_values() -> None:
    assert lr_factor(0.0, "linear", 0.01) == pytest.approx(1.0)
    assert lr_factor(1.0, "linear", 0.01) == pytest.approx(0.01)
    assert lr_factor(0.25, "linear", 0.01) == pytest.approx(0.75 * 0.99 + 0.01)  # 0.7525
    assert lr_factor(0.25, "cosine", 0.01) == pytest.approx(0.01 + 0.99 * (1 + math.cos(math.pi / 4)) / 2)
    assert lr_factor(1.0, "cosine", 0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0.5, "step", 0.01)


def test_warmup_values_at_hand_computed_iterations() -> None:
    config = OptimConfig(lrf=0.01, warmup_epochs=1.0, warmup_bias_lr=0.1, warmup_momentum=0.8, momentum=0.937)
    # 10 batches per epoch, 5 epochs, lr0 0.1. Iteration 5: progress 0.1 -> scheduled 0.1 * 0.901;
    # half-way through the 10-iteration warmup.
    weight_lr, bias_lr, momentum = scheduled_values(config, 0.1, 5, 10, 5)
    assert weight_lr == pytest.approx(0.5 * 0.0901)
    assert bias_lr == pytest.approx(0.1 + 0.5 * (0.0901 - 0.1))
    assert momentum == pytest.approx(0.8 + 0.5 * 0.137)
    assert scheduled_values(config, 0.1, 0, 10, 5) == pytest.approx((0.0, 0.1, 0.8))
    # AdamW: no high bias lr, biases warm up like the weights
    assert scheduled_values(config, 0.1, 5, 10, 5, sgd=False)[:2] == pytest.approx((0.5 * 0.0901, 0.5 * 0.0901))
    # after warmup: progress 0.4 -> 0.1 * (0.6 * 0.99 + 0.01)
    assert scheduled_values(config, 0.1, 20, 10, 5) == pytest.approx((0.0604, 0.0604, 0.937))


def test_fast_optimizer_steps_like_the_reference_implementation() -> None:
    from erpose.engine.optim import fast_optimizer

    for cls, kwargs in ((torch.optim.AdamW, {"lr": 1e-2, "betas": (0.9, 0.999), "weight_decay": 0.01}),
                        (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01})):
        torch.manual_seed(0)
        a = nn.Linear(4, 3)
        b = nn.Linear(4, 3)
        b.load_state_dict(a.state_dict())
        fast = fast_optimizer(cls, [{"params": list(a.parameters())}], **kwargs)
        reference = cls(b.parameters(), foreach=False, **kwargs)
        for _ in range(3):
            x = torch.randn(5, 4)
            for model, opt in ((a, fast), (b, reference)):
                opt.zero_grad()
                model(x).square().sum().backward()
                opt.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, atol=1e-6)
