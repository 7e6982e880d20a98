"""Training to a time budget: the number of epochs, and with it the schedule, fitted to the minutes given.

The recipe's schedule is written for its own ``epochs`` (the *nominal* epochs): warmup and
close-mosaic are counted against it. Under a budget, ``TimeBudgetHook`` only changes
``trainer.epochs``; ``LRScheduleHook`` and ``DataEpochHook`` scale warmup and close-mosaic by
``trainer.epochs / nominal_epochs`` (``scale_epochs``), and the learning-rate decay runs over
``trainer.epochs`` as always. So a recipe of 28 epochs with 1 warmup epoch, fitted to 14 epochs,
warms up for half an epoch and decays to ``lrf`` at the end of epoch 14.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from erpose.engine import distributed
from erpose.engine.trainer import HookBase

LOGGER = logging.getLogger("erpose.engine.hooks")


def scale_epochs(value: float, epochs: int, nominal_epochs: int | None) -> float:
    """A schedule length (warmup, close-mosaic) written for ``nominal_epochs``, fitted to ``epochs``."""
    if not nominal_epochs or epochs == nominal_epochs:
        return value
    return value * epochs / nominal_epochs


def scaled_close_mosaic(close_mosaic: int, epochs: int, nominal_epochs: int | None) -> int:
    """Close-mosaic epochs for a run of ``epochs``: scaled, rounded, at least 1 when it was on."""
    if close_mosaic <= 0:
        return 0
    return max(1, round(scale_epochs(close_mosaic, epochs, nominal_epochs)))


def fit_epochs(budget_s: float, elapsed_s: float, epochs_done: float, epoch_s: float) -> int:
    """Whole epochs that fit: those done (may be fractional) plus what the remaining time allows.

    Args:
        budget_s: the budget, seconds.
        elapsed_s: seconds spent so far.
        epochs_done: epochs completed so far (fractional within an epoch).
        epoch_s: seconds per epoch, validation included.

    Returns:
        At least 1; rounded down, so the run ends within the budget when the estimate holds.
    """
    remaining = max(budget_s - elapsed_s, 0.0)
    return max(1, math.floor(epochs_done + remaining / max(epoch_s, 1e-9) + 1e-9))


class TimeBudgetHook(HookBase):
    """Fits ``trainer.epochs`` to a time budget, and keeps fitting it while the run goes.

    1. After ``skip_steps`` untimed steps (lazy initialisation, the first batch's picture) and
       ``measure_steps`` timed ones: seconds per step times batches per epoch, plus an estimate of
       validation (``val_share`` of a training epoch every ``val_interval`` epochs). This is the
       number the run says up front.
    2. At the end of every epoch: the mean measured epoch time so far (validation included) and
       the time left. A machine that gets busier mid-run (other jobs on a shared CPU) shortens the
       schedule, so the learning-rate decay still ends inside the budget instead of being cut off;
       one that gets faster lengthens it. The epochs never drop below those already begun.

    The fitted schedule is in this hook's state; a resumed run keeps it, whatever the speed of the
    machine it resumes on (its elapsed time before the stop is unknown). Rank 0's timing decides,
    broadcast to every rank.

    Args:
        minutes: the budget.
        nominal_epochs: the recipe's epochs (the schedule is written for them).
        warmup_epochs: the recipe's warmup, for the line the run prints.
        val_share: estimated seconds of one validation / seconds of one training epoch.
        val_interval: validation every this many epochs.
        reserve_s: seconds kept for the end of the run (final pictures, ``best.pt``); default 2 %
            of the budget, at most 30 s.
        start: clock value when the budget started (default: at ``before_train``), so that
            setting up the run counts too.
        clock: seconds (``time.perf_counter``; tests pass a fake).
    """

    def __init__(self, minutes: float, nominal_epochs: int, *, warmup_epochs: float = 0.0, val_share: float = 0.1,
                 val_interval: int = 1, skip_steps: int = 3, measure_steps: int = 20, reserve_s: float | None = None,
                 start: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.minutes, self.budget_s, self.nominal_epochs = minutes, minutes * 60.0, nominal_epochs
        self.warmup_epochs = warmup_epochs
        self.val_share, self.val_interval = val_share, max(val_interval, 1)
        self.skip_steps, self.measure_steps = max(skip_steps, 1), max(measure_steps, 1)
        self.reserve_s = min(0.02 * self.budget_s, 30.0) if reserve_s is None else reserve_s
        self.start, self.clock = start, clock
        self.fitted_epochs = 0  # 0: not fitted yet
        self.final = False  # True: the schedule is fixed (a resumed run)
        self.steps = 0
        self.timed_from = self.epoch_start = 0.0
        self.epoch_start_iter = 0
        self.epoch_seconds: list[float] = []  # whole epochs timed in this process, validation included

    # -- events ------------------------------------------------------------------------------------

    def before_train(self) -> None:
        if self.fitted_epochs:
            self.trainer.epochs = self.fitted_epochs  # resumed: the run's own schedule
            return
        if self.start is None:
            self.start = self.clock()
        LOGGER.info("time budget %g min: the number of epochs is fitted after timing the first %d steps",
                    self.minutes, self.skip_steps + self.measure_steps)

    def before_epoch(self) -> None:
        self.epoch_start, self.epoch_start_iter = self.clock(), self.trainer.iter

    def after_step(self) -> None:
        if self.fitted_epochs:
            return
        self.steps += 1
        t = self.trainer
        if self.steps == self.skip_steps:
            self.timed_from = self.clock()
        if self.steps < self.skip_steps + self.measure_steps:
            return
        now = self.clock()
        step_s = (now - self.timed_from) / self.measure_steps
        epoch_s = step_s * t.batches_per_epoch * (1.0 + self.val_share / self.val_interval)
        done = t.epoch + (t.iter + 1) / t.batches_per_epoch
        epochs = fit_epochs(self.budget_s - self.reserve_s, now - self.start, done, epoch_s)
        self._set(epochs)
        LOGGER.info("time budget %g min: %d epochs fit on this machine (%.2f s per batch, about %.0f s per epoch "
                    "with validation); warmup %.2g epochs, learning rate decays over %d epochs", self.minutes,
                    t.epochs, step_s, epoch_s, scale_epochs(self.warmup_epochs, t.epochs, self.nominal_epochs),
                    t.epochs)
        if epoch_s > self.budget_s:
            LOGGER.warning("time budget %g min: one epoch takes about %.1f min; training 1 epoch",
                           self.minutes, epoch_s / 60)

    def after_epoch(self) -> None:
        # Before the checkpoint hook, so the state it saves holds the fitted schedule.
        if self.final or self.epoch_start_iter != 0:
            return  # a resumed run keeps its schedule; a partial epoch is not a measurement
        t = self.trainer
        now = self.clock()
        epoch_s = now - self.epoch_start
        if not t.storage.metrics:  # no validation this epoch: add the estimate
            epoch_s *= 1.0 + self.val_share / self.val_interval
        self.epoch_seconds.append(epoch_s)
        mean_s = sum(self.epoch_seconds) / len(self.epoch_seconds)
        previous = self.fitted_epochs
        self._set(fit_epochs(self.budget_s - self.reserve_s, now - self.start, t.epoch + 1, mean_s))
        if t.epochs != previous:
            LOGGER.info("time budget %g min: %d epochs after timing epoch %d (%.0f s per epoch on average, "
                        "validation included)", self.minutes, t.epochs, t.epoch + 1, mean_s)

    def _set(self, epochs: int) -> None:
        t = self.trainer
        # Never fewer than the epochs already begun; every rank takes rank 0's timing.
        self.fitted_epochs = t.epochs = int(distributed.broadcast_object(max(epochs, t.epoch + 1)))

    # -- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"fitted_epochs": self.fitted_epochs, "final": self.final}

    def load_state_dict(self, state: dict) -> None:
        self.fitted_epochs = int(state.get("fitted_epochs", 0))
        # A run resumed before the end-of-epoch fit keeps the first fit: its schedule has begun.
        self.final = self.fitted_epochs > 0
        if self.fitted_epochs:
            self.trainer.epochs = self.fitted_epochs
