"""Hooks: EMA hand value, NaN guard, early stopping, atomic writes, schedule and data hooks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import train_standins as standins
from torch import nn

from erpose.engine.hooks import (
    CheckpointHook,
    EarlyStopHook,
    EvalHook,
    ModelEMA,
    NonFiniteLossError,
    atomic_write_bytes,
)


def test_ema_update_hand_value() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1.0))  # 0.5689085...
    assert ema.module.weight.item() == pytest.approx(d * 1.0 + (1 - d) * 3.0)  # 1.8621830
    assert ema.module.weight.item() == pytest.approx(1.862183, abs=1e-6)
    state = ema.state_dict()
    other = ModelEMA(nn.Linear(1, 1, bias=False), 0.9, 1.0)
    other.load_state_dict(state)
    assert other.updates == 1 and other.module.weight.item() == pytest.approx(1.862183, abs=1e-6)


def test_nan_guard_skips_then_aborts_naming_images(tmp_path: Path, caplog) -> None:
    # Images 0..47 in batches of 8; with seed 0 the NaN image lands in one batch of epoch 1.
    trainer = standins.build(tmp_path / "one", epochs=1, nan_indices=(5,))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert any("non-finite loss" in r.message and "img5.png" in r.message for r in caplog.records)
    guard = next(h for h in trainer.hooks if type(h).__name__ == "NaNGuardHook")
    assert guard.total == 1 and guard.consecutive == 0
    after = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the other batches trained

    every = tuple(range(48))
    bad = standins.build(tmp_path / "all", epochs=1, nan_indices=every)
    with pytest.raises(NonFiniteLossError, match=r"5 consecutive non-finite.*img\d+\.png"):
        bad.train()
    assert (tmp_path / "all" / "weights" / "last.pt").is_file()  # stopped runs still checkpoint


def test_early_stopping_by_patience(tmp_path: Path) -> None:
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.7, 0.8])

    trainer = standins.build(tmp_path, epochs=7, patience=3)
    eval_hook = next(h for h in trainer.hooks if isinstance(h, EvalHook))
    eval_hook.validate_fn = lambda model: {"AP": next(scores)}
    trainer.train()
    # best at epoch 2 (0.6); epochs 3, 4, 5 do not improve -> stop after epoch 5
    assert trainer.epoch == 5 and eval_hook.best_epoch == 1
    assert any(isinstance(h, EarlyStopHook) for h in trainer.hooks)
    rows = (tmp_path / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5


def test_val_interval_and_best_checkpoint(tmp_path: Path) -> None:
    trainer = standins.build(tmp_path, epochs=3)
    eval_hook = next(h for h in trainer.hooks if isinstance(h, EvalHook))
    eval_hook.interval = 2
    calls = []
    eval_hook.validate_fn = lambda model: calls.append(trainer.epoch) or {"AP": 0.1 * len(calls)}
    trainer.train()
    assert calls == [1, 2]  # epoch 2 (interval) and the last epoch
    best = torch.load(tmp_path / "weights" / "best.pt", weights_only=True)
    assert best["train_state"]["epoch"] == 3


def test_atomic_write_never_leaves_a_torn_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    atomic_write_bytes(path, b"old")

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new-but-interrupted")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["last.pt"]


def test_step_checkpoints_every_n_optimizer_steps(tmp_path: Path) -> None:
    saved = []
    trainer = standins.build(tmp_path, epochs=1, save_period_steps=2)
    hook = next(h for h in trainer.hooks if isinstance(h, CheckpointHook))
    original = hook.save_fn
    hook.save_fn = lambda path, state: (saved.append((state["epoch"], state["iter"], state["optimizer_steps"])),
                                        original(path, state))
    trainer.train()
    # 6 batches, accumulate 2 -> optimizer steps after batches 2, 4, 6; steps 2 (mid-epoch) and epoch end
    assert saved == [(0, 4, 2), (1, 0, 3)]


def test_data_hook_sets_epoch_and_closes_mosaic(tmp_path: Path) -> None:
    trainer = standins.build(tmp_path, epochs=2)
    dataset = trainer.loader.dataset
    seen = []
    original = dataset.set_epoch
    dataset.set_epoch = lambda e: (seen.append((e, dataset.mosaic_closed)), original(e))
    trainer.train()
    assert seen == [(0, False), (1, False)] and dataset.mosaic_closed  # close_mosaic=1: last epoch


def test_ema_multi_tensor_update_matches_the_formula_with_buffers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    ema = ModelEMA(model, decay=0.99, tau=3.0)
    expected = {k: v.clone().float() for k, v in ema.module.state_dict().items()}
    for step in (1, 2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(4, 2, 5, 5))  # moves running stats and num_batches_tracked
        ema.update(model)
        d = 0.99 * (1 - math.exp(-step / 3.0))
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                expected[name] = d * expected[name] + (1 - d) * value
            else:
                expected[name] = value.clone()
    for name, value in ema.module.state_dict().items():
        assert torch.allclose(value.float(), expected[name].float(), atol=1e-6), name
    assert ema.module.state_dict()["1.num_batches_tracked"].item() == 2
