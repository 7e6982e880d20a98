"""The training loop, and nothing else.

``Trainer.train`` is::

    before_train
    for epoch:   before_epoch; for batch: before_step; run_step; after_step;   after_epoch
    after_train   (always, also on an exception or Ctrl-C)

``run_step`` does forward, loss, backward and, every ``accumulate`` batches, the optimiser step.
Everything else (learning-rate schedule, EMA, checkpoints, evaluation, logging, early stopping,
the non-finite-loss guard) is a hook in ``erpose.engine.hooks`` with its own state, called in the
order of the list the trainer is given.

Position bookkeeping, so that a resumed run is exact: ``epoch`` and ``iter`` (next batch of the
epoch) say where the loop is; ``boundary_iter`` is the batch index right after the last
optimiser step. Model, optimiser and EMA change only at optimiser steps, so a checkpoint taken
"at ``boundary_iter``" is a consistent state even if it is written from the middle of an
accumulation window: resuming replays the window's batches. Each epoch ends with an optimiser
step, so epoch ends are always boundaries.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from erpose.engine import distributed

LOGGER = logging.getLogger(__name__)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The mixed-precision dtype for ``device`` (None: train in float32)."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_native_bfloat16():
        return torch.bfloat16
    return None


def _cpu_has_native_bfloat16() -> bool:
    # Without AVX512-BF16 or AMX, bfloat16 is emulated and slower than float32.
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


class HookBase:
    """A training hook: override any of the six events; keep state in ``state_dict``.

    ``self.trainer`` is set by the trainer before ``before_train``.
    """

    trainer: Trainer

    def before_train(self) -> None:
        """Called once before the first epoch (after a resume has restored states)."""

    def after_train(self) -> None:
        """Called once at the end, also when training raised (``trainer.exception`` is set)."""

    def before_epoch(self) -> None:
        """Called at the start of each epoch (``trainer.iter > 0`` when resuming mid-epoch)."""

    def after_epoch(self) -> None:
        """Called after the last batch of each epoch."""

    def before_step(self) -> None:
        """Called before each batch; ``trainer.batch`` is set."""

    def after_step(self) -> None:
        """Called after each batch: ``trainer.loss``, ``loss_terms``, ``stepped``, ``step_skipped``."""

    def state_dict(self) -> dict:
        """What this hook needs to continue exactly after a resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output."""


Criterion = Callable[[Any, Any], tuple[torch.Tensor, dict]]


@dataclass
class TrainStorage:
    """What hooks publish for later hooks (``trainer.storage``), as detectron2's ``EventStorage``.

    Every field has one writer; readers see the value of the current epoch. None of it needs saving:
    each field is recomputed before it is read again after a resume.

    Attributes:
        running_losses: mean loss terms of this epoch so far, this rank (``LossMeterHook``, every batch).
        epoch_losses: the epoch's mean loss terms over every rank (``LossMeterHook``, epoch end).
        metrics: this epoch's validation metrics, empty on epochs without validation (``EvalHook``).
        is_best: this epoch's metrics are the best so far (``EvalHook``; read by ``CheckpointHook``).
    """

    running_losses: dict[str, float] = field(default_factory=dict)
    epoch_losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    is_best: bool = False


class Trainer:
    """Runs the optimisation loop and calls hooks.

    Args:
        model: the unwrapped model (its parameters are the ones the optimiser holds).
        criterion: ``(head_output, batch) -> (loss scalar, dict of detached terms)``.
        optimizer: optimiser over ``model``'s parameters.
        loader: yields batches with ``.images`` (B, 3, H, W) and ``.to(device)``; its
            ``batch_sampler`` (an ``EpochBatchSampler``) gets ``set_epoch(epoch, start_batch)``.
        epochs: total epochs.
        hooks: called in list order for every event (see ``erpose.engine.hooks.build_hooks``).
        accumulate: batches per optimiser step (gradient accumulation to the nominal batch).
        grad_clip: max gradient L2 norm, 0 for none.
        amp: mixed precision: float16 with loss scaling on CUDA, bfloat16 on CPUs with native
            bfloat16 arithmetic (AVX512-BF16 or AMX; about 1.3x faster steps), off elsewhere.
        device: where batches go.
        train_model: what the forward pass runs through (a ``DistributedDataParallel`` wrapper of
            ``model`` under torchrun); defaults to ``model``.
        loss_scale: multiplies the loss before backward. Default ``1 / accumulate``: a per-image
            mean loss then gives the mean gradient over the nominal batch. For a loss that is
            already a sum over the batch (ultralytics convention, ``scale_by_batch``), pass the
            world size instead: gradients then sum over every image of the nominal batch, since
            DDP averages (not sums) over ranks.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Criterion,
        optimizer: torch.optim.Optimizer,
        loader: Any,
        *,
        epochs: int,
        hooks: Sequence[HookBase] = (),
        accumulate: int = 1,
        grad_clip: float = 0.0,
        amp: bool = False,
        device: torch.device | str = "cpu",
        train_model: nn.Module | None = None,
        loss_scale: float | None = None,
    ) -> None:
        self.model, self.criterion, self.optimizer, self.loader = model, criterion, optimizer, loader
        self.train_model = train_model if train_model is not None else model
        self.epochs, self.accumulate, self.grad_clip = epochs, max(int(accumulate), 1), grad_clip
        self.loss_scale = 1.0 / self.accumulate if loss_scale is None else float(loss_scale)
        self.device = torch.device(device)
        self.amp_dtype = autocast_dtype(self.device, amp)
        self.amp = self.amp_dtype is not None
        # Loss scaling guards float16's narrow range; bfloat16 has float32's exponent.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.batches_per_epoch = int(getattr(loader.batch_sampler, "batches_per_epoch", len(loader.batch_sampler)))
        self.hooks = list(hooks)
        for hook in self.hooks:
            hook.trainer = self
        self.epoch = self.iter = self.boundary_iter = 0
        self.optimizer_steps = 0
        self.stop_training = False
        self.exception: BaseException | None = None
        self.batch: Any = None
        self.loss: torch.Tensor | None = None
        self.loss_terms: dict = {}
        self.stepped = self.step_skipped = False
        #: What hooks publish for each other (losses, metrics, best epoch): see :class:`TrainStorage`.
        self.storage = TrainStorage()

    @property
    def metrics(self) -> dict[str, float]:
        """This epoch's validation metrics (``storage.metrics``; empty when not evaluated)."""
        return self.storage.metrics

    @property
    def global_iter(self) -> int:
        """Batches since the start of the run (the schedule's clock)."""
        return self.epoch * self.batches_per_epoch + self.iter

    def train(self) -> None:
        """Run from the current position (0, 0 or a restored one) to the last epoch."""
        self.model.train()
        self._call("before_train")
        try:
            while self.epoch < self.epochs and not self.stop_training:
                self._call("before_epoch")
                self._run_epoch()
                self._call("after_epoch")
                self.epoch += 1
                self.iter = self.boundary_iter = 0
        except BaseException as exc:  # also Ctrl-C: hooks save a checkpoint in after_train
            self.exception = exc
            raise
        finally:
            self._call("after_train")

    def _run_epoch(self) -> None:
        if self.iter >= self.batches_per_epoch:
            return  # resumed after the last batch, before the epoch-end hooks ran
        self.loader.batch_sampler.set_epoch(self.epoch, self.iter)
        for batch in self.loader:
            self.batch = batch
            self._call("before_step")
            self.run_step(batch)
            self._call("after_step")
            self.iter += 1

    def run_step(self, batch: Any) -> None:
        """Forward, loss, backward; the optimiser step at accumulation boundaries and epoch end."""
        batch = batch.to(self.device)
        boundary = self.iter + 1 - self.boundary_iter >= self.accumulate or self.iter + 1 == self.batches_per_epoch
        # Between boundaries DDP need not all-reduce gradients: they only accumulate locally.
        no_sync = getattr(self.train_model, "no_sync", None)
        with no_sync() if (no_sync is not None and not boundary) else nullcontext():
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                output = self.train_model(batch.images.contiguous(memory_format=torch.channels_last))
                loss, terms = self.criterion(output, batch)
            # All ranks must agree to skip, or DDP would wait forever for the skipping rank.
            finite = distributed.all_true(bool(torch.isfinite(loss).item()), self.device)
            if finite:
                self.scaler.scale(loss * self.loss_scale).backward()
        self.loss, self.loss_terms, self.step_skipped = loss.detach(), terms, not finite
        self.stepped = False
        if boundary:
            self.optimizer_step()

    def optimizer_step(self) -> None:
        """Unscale, clip, step, zero the gradients; advance the boundary."""
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer_steps += 1
        self.boundary_iter = self.iter + 1
        self.stepped = True

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)()

    # -- state for checkpoints -------------------------------------------------------------------

    def state_dict(self, at_epoch_end: bool = False) -> dict:
        """Everything but the model weights needed to continue exactly.

        Args:
            at_epoch_end: the epoch-end hooks have run, so resume at the next epoch's start;
                otherwise resume at the last optimiser-step boundary of the current epoch.
        """
        epoch, it = (self.epoch + 1, 0) if at_epoch_end else (self.epoch, self.boundary_iter)
        state = {
            "epoch": epoch,
            "iter": it,
            "optimizer_steps": self.optimizer_steps,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "hooks": {type(h).__name__: h.state_dict() for h in self.hooks},
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _numpy_state_to_plain(np.random.get_state()),
                "python": random.getstate(),
            },
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output (the model weights are loaded by the caller)."""
        self.epoch, self.iter = int(state["epoch"]), int(state["iter"])
        self.boundary_iter = self.iter
        self.optimizer_steps = int(state["optimizer_steps"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for hook in self.hooks:
            hook.load_state_dict(state["hooks"].get(type(hook).__name__, {}))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(_numpy_state_from_plain(rng["numpy"]))
        random.setstate(tuple(rng["python"]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def _numpy_state_to_plain(state: tuple) -> dict:
    # weights_only loading accepts tensors and plain containers, not numpy arrays.
    return {"name": state[0], "keys": torch.from_numpy(state[1].astype(np.int64)), "rest": list(state[2:])}


def _numpy_state_from_plain(state: dict) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), *state["rest"])
