"""Exponential moving average of model weights (validation and checkpoints use the average)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers.

    ``ema = d * ema + (1 - d) * model`` after every optimiser step, with a ramped decay
    ``d = decay * (1 - exp(-updates / tau))``: early on the average follows the fast-changing
    weights closely, later it averages over about ``1 / (1 - decay)`` steps. Integer buffers
    (BatchNorm's ``num_batches_tracked``) are copied.

    Args:
        model: the model to average (unwrapped).
        decay: asymptotic decay.
        tau: ramp length in optimiser steps.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0
        # (id of the source model, EMA floats, source floats, EMA others, source others)
        self._pairs: tuple | None = None

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        _, floats, source_floats, others, source_others = self._tensor_pairs(model)
        # One multi-tensor op instead of ~500 small ones: a tenth of the cost on a CPU.
        torch._foreach_lerp_(floats, source_floats, 1.0 - d)
        for value, source in zip(others, source_others):
            value.copy_(source)

    def _tensor_pairs(self, model: nn.Module) -> tuple:
        # state_dict() tensors are the live storages (load_state_dict copies into them), so the
        # pairing is built once per source model.
        if self._pairs is None or self._pairs[0] != id(model):
            source = model.state_dict()
            floats, source_floats, others, source_others = [], [], [], []
            for name, value in self.module.state_dict().items():
                if value.dtype.is_floating_point:
                    floats.append(value)
                    source_floats.append(source[name].detach())
                else:
                    others.append(value)
                    source_others.append(source[name])
            self._pairs = (id(model), floats, source_floats, others, source_others)
        return self._pairs

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])
        self._pairs = None


