"""Training hooks: each one job, each with ``state_dict``/``load_state_dict`` so resume is exact.

``build_hooks`` returns them in the one order the trainer calls them (see the comment there).
Hooks talk to each other only through ``trainer.storage`` (a ``TrainStorage``: losses, metrics,
best epoch; one writer per field), never by reaching into another hook, except ``EarlyStopHook``,
which is handed the ``EvalHook`` whose best epoch it watches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erpose.engine import distributed
from erpose.engine.budget import TimeBudgetHook, scale_epochs, scaled_close_mosaic
from erpose.engine.ema import ModelEMA
from erpose.engine.optim import OptimConfig, apply_schedule, scheduled_values
from erpose.engine.report_hooks import CSVLoggerHook, PlotsHook, ProgressHook
from erpose.engine.trainer import HookBase
from erpose.files import atomic_copy, atomic_write_bytes

__all__ = [
    "CSVLoggerHook", "CheckpointHook", "DataEpochHook", "EMAHook", "EarlyStopHook", "EvalHook", "HookBase",
    "LRScheduleHook", "LossMeterHook", "ModelEMA", "NaNGuardHook", "NonFiniteLossError", "PlotsHook",
    "ProgressHook", "TimeBudgetHook", "atomic_copy", "atomic_write_bytes", "build_hooks",
]

LOGGER = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Several consecutive batches gave a non-finite loss; training cannot continue."""


class DataEpochHook(HookBase):
    """Points the dataset and loader at the epoch: augmentation seed, mosaic switch-off, worker seeds.

    Args:
        dataset: has ``set_epoch(epoch)``; mosaic is switched off through ``close_mosaic()``
            (when it exists) for the last ``close_mosaic`` epochs.
        generator: the loader's generator, reseeded with ``seed + epoch`` so worker seeds do not
            depend on how many epochs this process has run (a resumed run draws the same).
        nominal_epochs: the epochs ``close_mosaic`` is written for; when a time budget fits the
            run to another number, close-mosaic scales with it (None: never scaled).
    """

    def __init__(self, dataset: Any, generator: torch.Generator | None, seed: int, close_mosaic: int,
                 nominal_epochs: int | None = None) -> None:
        self.dataset, self.generator, self.seed, self.close_mosaic = dataset, generator, seed, close_mosaic
        self.nominal_epochs = nominal_epochs

    def before_epoch(self) -> None:
        epoch = self.trainer.epoch
        if self.generator is not None:
            self.generator.manual_seed(self.seed + epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        close = scaled_close_mosaic(self.close_mosaic, self.trainer.epochs, self.nominal_epochs)
        if close > 0 and epoch >= self.trainer.epochs - close:
            if hasattr(self.dataset, "close_mosaic"):
                self.dataset.close_mosaic()
            if epoch == self.trainer.epochs - close and self.trainer.iter == 0:
                LOGGER.info("mosaic off for the last %d epochs", close)


class LRScheduleHook(HookBase):
    """Sets learning rates and momentum before each batch from ``optim.scheduled_values``.

    Stateless on purpose: the schedule is a function of ``trainer.global_iter`` and
    ``trainer.epochs``. With ``nominal_epochs`` (a time budget), warmup scales by
    ``trainer.epochs / nominal_epochs`` like the decay does.
    """

    def __init__(self, config: OptimConfig, lr0: float, nominal_epochs: int | None = None) -> None:
        self.config, self.lr0, self.nominal_epochs = config, lr0, nominal_epochs

    def before_step(self) -> None:
        t = self.trainer
        sgd = isinstance(t.optimizer, torch.optim.SGD)
        config = self.config
        if self.nominal_epochs and t.epochs != self.nominal_epochs:
            config = replace(config, warmup_epochs=scale_epochs(config.warmup_epochs, t.epochs, self.nominal_epochs))
        values = scheduled_values(config, self.lr0, t.global_iter, t.batches_per_epoch, t.epochs, sgd)
        apply_schedule(t.optimizer, values)


class NaNGuardHook(HookBase):
    """Warns on a skipped non-finite-loss batch; raises after ``max_consecutive`` in a row."""

    def __init__(self, max_consecutive: int = 5) -> None:
        self.max_consecutive, self.consecutive, self.total = max_consecutive, 0, 0

    def after_step(self) -> None:
        t = self.trainer
        if not t.step_skipped:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        paths = [m.get("image_path", "?") for m in getattr(t.batch, "meta", [])]
        LOGGER.warning("non-finite loss at epoch %d batch %d, step skipped; images: %s", t.epoch + 1, t.iter, paths)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(
                f"{self.consecutive} consecutive non-finite losses (epoch {t.epoch + 1}, batch {t.iter}); "
                f"last batch images: {paths}. Lower the learning rate or check these annotations."
            )

    def state_dict(self) -> dict:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.consecutive, self.total = int(state.get("consecutive", 0)), int(state.get("total", 0))


class EMAHook(HookBase):
    """Updates the EMA after every optimiser step."""

    def __init__(self, ema: ModelEMA) -> None:
        self.ema = ema

    def after_step(self) -> None:
        if self.trainer.stepped:
            self.ema.update(self.trainer.model)

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.ema.load_state_dict(state)


class LossMeterHook(HookBase):
    """Epoch means of the loss terms: ``storage.running_losses`` (this rank, so far) and, at epoch
    end, ``storage.epoch_losses`` (reduced over ranks). Skipped batches are not counted."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def before_epoch(self) -> None:
        if self.trainer.iter == 0:
            self.sums, self.count = {}, 0
        self.trainer.storage.running_losses = self._means()

    def after_step(self) -> None:
        t = self.trainer
        if t.step_skipped:
            return
        terms = {"loss": t.loss, **t.loss_terms}
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.count += 1
        t.storage.running_losses = self._means()

    def after_epoch(self) -> None:
        names = sorted(self.sums, key=lambda n: (n != "loss", n))  # total loss first
        packed = torch.tensor([self.sums[n] for n in names] + [float(self.count)], dtype=torch.float64)
        packed = distributed.all_reduce_sum(packed)
        count = max(packed[-1].item(), 1.0)
        self.trainer.storage.epoch_losses = {n: packed[i].item() / count for i, n in enumerate(names)}

    def _means(self) -> dict[str, float]:
        return {n: s / max(self.count, 1) for n, s in self.sums.items()}

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.count = dict(state.get("sums", {})), int(state.get("count", 0))


class EvalHook(HookBase):
    """Validates the EMA weights every ``interval`` epochs and after the last one.

    Rank 0 validates; the metrics are broadcast so every rank takes the same early-stop decision.
    Sets ``storage.metrics`` (empty on epochs without validation) and ``storage.is_best``.

    Args:
        validate_fn: ``model -> {"AP": ..., "AP50": ..., ...}``.
        model_fn: returns the model to validate (the EMA module).
        interval: validate every this many epochs.
        fitness_key: the metric that ranks checkpoints.
    """

    def __init__(
        self, validate_fn: Callable[[nn.Module], dict], model_fn: Callable[[], nn.Module], interval: int = 1,
        fitness_key: str = "AP",
    ) -> None:
        self.validate_fn, self.model_fn, self.interval, self.fitness_key = validate_fn, model_fn, interval, fitness_key
        self.best_fitness, self.best_epoch, self.best_metrics = -math.inf, -1, {}

    def after_epoch(self) -> None:
        t = self.trainer
        t.storage.metrics, t.storage.is_best = {}, False
        last = t.epoch + 1 == t.epochs
        if not last and (t.epoch + 1) % max(self.interval, 1) != 0:
            return
        metrics = self.validate_fn(self.model_fn()) if distributed.rank() == 0 else None
        t.storage.metrics = {k: float(v) for k, v in distributed.broadcast_object(metrics).items()}
        fitness = t.storage.metrics.get(self.fitness_key, -math.inf)
        if fitness > self.best_fitness:
            self.best_fitness, self.best_epoch, self.best_metrics = fitness, t.epoch, dict(t.storage.metrics)
            t.storage.is_best = True

    def state_dict(self) -> dict:
        return {"best_fitness": self.best_fitness, "best_epoch": self.best_epoch, "best_metrics": self.best_metrics}

    def load_state_dict(self, state: dict) -> None:
        self.best_fitness = float(state.get("best_fitness", -math.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.best_metrics = dict(state.get("best_metrics", {}))


class EarlyStopHook(HookBase):
    """Stops when the best validated epoch is ``patience`` epochs old (0 disables)."""

    def __init__(self, eval_hook: EvalHook, patience: int) -> None:
        self.eval_hook, self.patience = eval_hook, patience

    def after_epoch(self) -> None:
        t = self.trainer
        if self.patience <= 0 or not t.storage.metrics or self.eval_hook.best_epoch < 0:
            return
        if t.epoch - self.eval_hook.best_epoch >= self.patience:
            LOGGER.info(
                "early stop: no improvement for %d epochs (best %s at epoch %d)",
                t.epoch - self.eval_hook.best_epoch, self.eval_hook.fitness_key, self.eval_hook.best_epoch + 1,
            )
            t.stop_training = True


class CheckpointHook(HookBase):
    """Writes ``last.pt`` (and ``best.pt``) atomically, rank 0 only.

    When: at every epoch end (after the other epoch-end hooks, so their saved state includes
    this epoch), every ``save_period_steps`` optimiser steps, and when training stops on an
    exception or Ctrl-C (at the last optimiser-step boundary; a crash in evaluation resumes by
    re-running it). ``best.pt`` is a copy of ``last.pt`` from an epoch that set a new best.

    Args:
        weights_dir: where ``last.pt`` and ``best.pt`` go.
        save_fn: ``(path, train_state) -> None`` writes a checkpoint atomically (model weights,
            the EMA as the inference model, and ``train_state``).
        save_period_steps: step-checkpoint interval in optimiser steps (0: epoch ends only).
    """

    def __init__(self, weights_dir: str | Path, save_fn: Callable[[Path, dict], None], save_period_steps: int = 0) -> None:
        self.weights_dir, self.save_fn, self.save_period_steps = Path(weights_dir), save_fn, save_period_steps
        self.last, self.best = self.weights_dir / "last.pt", self.weights_dir / "best.pt"

    def _save(self, at_epoch_end: bool) -> None:
        if distributed.rank() != 0:
            return
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.save_fn(self.last, self.trainer.state_dict(at_epoch_end=at_epoch_end))

    def after_step(self) -> None:
        t = self.trainer
        if t.stepped and self.save_period_steps > 0 and t.optimizer_steps % self.save_period_steps == 0:
            self._save(at_epoch_end=False)

    def after_epoch(self) -> None:
        self._save(at_epoch_end=True)
        if self.trainer.storage.is_best and distributed.rank() == 0:
            atomic_copy(self.last, self.best)

    def after_train(self) -> None:
        if self.trainer.exception is not None:
            LOGGER.warning("training stopped (%s); saving %s", type(self.trainer.exception).__name__, self.last)
            self._save(at_epoch_end=False)


def build_hooks(
    *,
    optim_config: OptimConfig,
    lr0: float,
    dataset: Any,
    generator: torch.Generator | None,
    seed: int,
    close_mosaic: int,
    ema: ModelEMA | None,
    validate_fn: Callable[[nn.Module], dict] | None,
    val_interval: int,
    patience: int,
    run_dir: str | Path,
    save_fn: Callable[[Path, dict], None],
    save_period_steps: int = 0,
    progress: bool = False,
    sample_fn: Callable[[Any, Path], Any] | None = None,
    final_fn: Callable[[], list[Path]] | None = None,
    plots: bool = True,
    budget: TimeBudgetHook | None = None,
) -> list[HookBase]:
    """The standard hook list, in calling order.

    Why this order (every event walks the list front to back):
    - data first: the epoch's order, augmentation seed and mosaic state are set before anything
      reads a batch;
    - schedule before the step it applies to;
    - NaN guard right after the step, so it aborts before anything records a bad step;
    - EMA after the optimiser step it averages, before evaluation reads it;
    - loss meter before anything that logs losses;
    - evaluation, then early stop (needs the metrics), then the time budget (its end-of-epoch fit
      times the epoch's validation too), then progress/CSV/plots (log everything);
    - checkpoint last: the hook states it saves already include this epoch's evaluation and
      logging, so a resume never repeats or skips them. A crash inside evaluation is still
      covered: ``after_train`` saves at the epoch's last boundary and the resume re-evaluates.
    """
    run_dir = Path(run_dir)
    model_fn = (lambda: ema.module) if ema is not None else None
    nominal = budget.nominal_epochs if budget is not None else None
    hooks: list[HookBase] = [DataEpochHook(dataset, generator, seed, close_mosaic, nominal),
                             LRScheduleHook(optim_config, lr0, nominal), NaNGuardHook()]
    if ema is not None:
        hooks.append(EMAHook(ema))
    hooks.append(LossMeterHook())
    if validate_fn is not None:
        eval_hook = EvalHook(validate_fn, model_fn or (lambda: hooks[0].trainer.model), val_interval)
        hooks += [eval_hook, EarlyStopHook(eval_hook, patience)]
    if budget is not None:
        hooks.append(budget)
    hooks += [ProgressHook(progress), CSVLoggerHook(run_dir, plot=plots), PlotsHook(run_dir, sample_fn, final_fn),
              CheckpointHook(run_dir / "weights", save_fn, save_period_steps)]
    return hooks
