"""Time budget: the epochs (and warmup, decay, close-mosaic) fitted to the minutes given; kept on resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import train_standins as standins

from erpose.engine.budget import TimeBudgetHook, fit_epochs, scale_epochs, scaled_close_mosaic
from erpose.engine.hooks import DataEpochHook, HookBase, LRScheduleHook
from erpose.engine.optim import OptimConfig, scheduled_values


class FakeClock:
    """Seconds that advance only when a step runs (``seconds_per_step`` each)."""

    def __init__(self, seconds_per_step: float) -> None:
        self.now, self.seconds_per_step = 0.0, seconds_per_step

    def __call__(self) -> float:
        return self.now


class Tick(HookBase):
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def after_step(self) -> None:
        self.clock.now += self.clock.seconds_per_step


class StopAt(HookBase):
    """Ctrl-C right after global batch ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.global_iter == self.at:
            raise KeyboardInterrupt


def test_fit_epochs_rounds_down_and_keeps_one() -> None:
    # 30 s spent, 1 epoch done, 25 s per epoch, 600 s budget: 1 + 570 / 25 = 23.8 -> 23.
    assert fit_epochs(600, 30, 1.0, 25) == 23
    assert fit_epochs(600, 0, 0.0, 25) == 24
    assert fit_epochs(60, 10, 0.5, 300) == 1  # one epoch is more than the budget
    assert fit_epochs(60, 100, 2.0, 30) == 2  # over budget: never fewer than done


def test_schedule_lengths_scale_with_the_fitted_epochs() -> None:
    assert scale_epochs(1.0, 14, 28) == 0.5
    assert scale_epochs(3.0, 50, None) == 3.0  # no budget: unchanged
    assert scaled_close_mosaic(10, 300, 300) == 10
    assert scaled_close_mosaic(10, 150, 300) == 5
    assert scaled_close_mosaic(10, 20, 300) == 1  # still on, for at least one epoch
    assert scaled_close_mosaic(0, 20, 300) == 0


def test_warmup_and_close_mosaic_follow_the_fitted_epochs() -> None:
    # A recipe of 10 epochs with 1 warmup epoch, fitted to 5: warmup is half an epoch (3 of 6 batches).
    config = OptimConfig(optimizer="sgd", lr0=0.1, lrf=0.01, warmup_epochs=1.0)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hook = LRScheduleHook(config, 0.1, nominal_epochs=10)
    hook.trainer = SimpleNamespace(optimizer=optimizer, global_iter=3, batches_per_epoch=6, epochs=5)
    hook.before_step()
    after_warmup = scheduled_values(replace(config, warmup_epochs=0.0), 0.1, 3, 6, 5)[0]  # warmup over at batch 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(after_warmup)
    unscaled = LRScheduleHook(config, 0.1)  # as before: 1 warmup epoch, still warming up at batch 3
    unscaled.trainer = hook.trainer
    unscaled.before_step()
    assert optimizer.param_groups[0]["lr"] < 0.6 * after_warmup

    dataset = standins.TinyDataset()
    data_hook = DataEpochHook(dataset, None, 0, close_mosaic=4, nominal_epochs=20)
    data_hook.trainer = SimpleNamespace(epoch=7, epochs=10, iter=0)  # 4 of 20 -> the last 2 of 10
    data_hook.before_epoch()
    assert not dataset.mosaic_closed
    data_hook.trainer.epoch = 8
    data_hook.before_epoch()
    assert dataset.mosaic_closed


def _budget_run(run_dir: Path, clock: FakeClock, minutes: float = 0.5, extra: tuple = ()):
    # 48 images, batch 8: 6 batches per epoch. Nominal 10 epochs; at 1 s per batch (6 s per
    # epoch, validation free), a 30 s budget fits 5.
    budget = TimeBudgetHook(minutes, 10, val_share=0.0, skip_steps=1, measure_steps=2, reserve_s=0.0, clock=clock)
    return standins.build(run_dir, epochs=10, extra_hooks=(Tick(clock), budget, *extra)), budget


def test_budget_fits_the_epochs_and_the_decay(tmp_path: Path, caplog) -> None:
    trainer, budget = _budget_run(tmp_path / "run", FakeClock(1.0))
    with caplog.at_level("INFO"):
        trainer.train()
    assert budget.fitted_epochs == trainer.epochs == trainer.epoch == 5
    assert "5 epochs fit on this machine" in caplog.text  # said after the first timed steps
    # The learning rate decayed over the 5 fitted epochs, not the recipe's 10.
    config = OptimConfig(optimizer="sgd", lr0=0.05, warmup_epochs=1.0, nominal_batch=16, grad_clip=10.0)
    last = scheduled_values(config, 0.05, 5 * 6 - 1, 6, 5)[0]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(last)
    rows = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 5


class SlowDownAt(HookBase):
    """The machine gets busier: from global batch ``at`` on, each step takes ``seconds`` on the clock."""

    def __init__(self, clock: FakeClock, at: int, seconds: float) -> None:
        self.clock, self.at, self.seconds = clock, at, seconds

    def before_step(self) -> None:
        if self.trainer.global_iter == self.at:
            self.clock.seconds_per_step = self.seconds


def test_a_machine_that_gets_busier_mid_run_shortens_the_schedule(tmp_path: Path, caplog) -> None:
    clock = FakeClock(1.0)
    # Epochs 1-2 at 6 s (5 fit in 30 s); from epoch 3 on 18 s each: 3 epochs end at 30 s, where
    # keeping the first fit would have run 5 epochs and 66 s, more than twice the budget.
    trainer, budget = _budget_run(tmp_path / "run", clock, extra=(SlowDownAt(clock, 12, 3.0),))
    with caplog.at_level("INFO"):
        trainer.train()
    assert budget.fitted_epochs == trainer.epochs == trainer.epoch == 3
    assert clock.now == pytest.approx(30.0)
    assert "3 epochs after timing epoch 3 (10 s per epoch on average" in caplog.text


def test_resumed_run_keeps_its_fitted_schedule_on_a_slower_machine(tmp_path: Path) -> None:
    reference, _ = _budget_run(tmp_path / "reference", FakeClock(1.0))
    reference.train()

    run_dir = tmp_path / "stopped"
    stopped, _ = _budget_run(run_dir, FakeClock(1.0), extra=(StopAt(14),))  # epoch 3, batch 3
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    # Resumed where each step takes 10 s: a fresh fit would give 1 epoch; the run keeps its 5.
    resumed, budget = _budget_run(run_dir, FakeClock(10.0))
    standins.resume(resumed, run_dir)
    assert resumed.epochs == budget.fitted_epochs == 5
    resumed.train()
    assert resumed.epoch == 5 and resumed.optimizer_steps == reference.optimizer_steps
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


def test_erpose_train_with_a_time_budget_records_its_fitted_schedule(tmp_path: Path, caplog) -> None:
    pytest.importorskip("erpose.data.synth")
    from erpose.cli.main import main

    torch.set_num_threads(1)
    argv = ["train", "--data", "tiny", "--time", "0.1", "--imgsz", "64", "--batch", "8", "--workers", "0",
            "--project", str(tmp_path), "--no-progress", "plots=false", "val_batch=8"]
    with caplog.at_level("INFO"):
        assert main(argv) == 0
    assert "epochs fit on this machine" in caplog.text or "epochs after timing epoch 1" in caplog.text
    state = torch.load(tmp_path / "exp" / "weights" / "last.pt", weights_only=True)["train_state"]
    fitted = state["hooks"]["TimeBudgetHook"]["fitted_epochs"]
    assert fitted >= 1 and state["epoch"] == fitted  # the run trained exactly its fitted epochs
    rows = (tmp_path / "exp" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + fitted
