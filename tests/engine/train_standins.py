"""Tiny stand-ins (dataset, model, criterion) that drive the real Trainer and hooks in tests.

The loss is a per-image mean, and the model has GroupNorm rather than BatchNorm, so one process
with batch B and two processes with batch B/2 compute the same gradients (see test_ddp.py).
Run as a script, it trains (or resumes) one run: used by the kill -9 and torchrun tests.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from erpose.engine import distributed
from erpose.engine.hooks import HookBase, ModelEMA, atomic_write_bytes, build_hooks
from erpose.engine.optim import OptimConfig, build_optimizer
from erpose.engine.trainer import Trainer


@dataclass
class TinyBatch:
    images: torch.Tensor
    targets: torch.Tensor
    meta: list = field(default_factory=list)

    def to(self, device):
        return TinyBatch(self.images.to(device), self.targets.to(device), self.meta)


class TinyDataset(torch.utils.data.Dataset):
    """Random 16x16 images; 'augmentation' noise depends on (seed, epoch, index) only."""

    def __init__(self, n: int = 48, seed: int = 0, nan_indices: tuple[int, ...] = ()) -> None:
        self.n, self.seed, self.epoch, self.nan_indices = n, seed, 0, set(nan_indices)
        self.mosaic_closed = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def close_mosaic(self) -> None:
        self.mosaic_closed = True

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        base = np.random.default_rng(i).random((3, 16, 16), dtype=np.float32)
        aug = np.random.default_rng([self.seed, self.epoch, i]).normal(0, 0.05, (3, 16, 16)).astype(np.float32)
        target = np.float32(base.mean() * 3.0 - 1.0)
        image = torch.from_numpy(base + aug)
        if i in self.nan_indices:
            image = image * float("nan")
        return image, torch.tensor([target, -target]), f"img{i}.png"


def collate(items) -> TinyBatch:
    images, targets, paths = zip(*items)
    return TinyBatch(torch.stack(images), torch.stack(targets), [{"image_path": p} for p in paths])


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.silu(self.norm(self.conv(x))).mean((2, 3)))


def criterion(output: torch.Tensor, batch: TinyBatch):
    per_image = ((output - batch.targets) ** 2).mean(1)
    loss = per_image.mean()
    return loss, {"mse": loss.detach(), "first": per_image[0].detach()}


def fake_validate(model: nn.Module) -> dict:
    """An 'AP' that grows as the loss on a fixed set falls (deterministic)."""
    ds = TinyDataset(16, seed=123)
    batch = collate([ds[i] for i in range(16)])
    with torch.no_grad():
        loss, _ = criterion(model(batch.images), batch)
    return {"AP": float(1.0 / (1.0 + loss)), "AP50": float(1.0 / (1.0 + 0.5 * loss))}


def save_fn_for(model: nn.Module, ema: ModelEMA | None):
    def save(path: Path, train_state: dict) -> None:
        import io

        train_state["model"] = model.state_dict()
        buffer = io.BytesIO()
        torch.save({"model": (ema.module if ema else model).state_dict(), "train_state": train_state}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    return save


class KillAt(HookBase):
    """kill -9 this process right after global batch ``at`` (simulates a crash/power loss)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.global_iter == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def build(run_dir: Path, *, epochs: int = 3, batch: int = 8, n: int = 48, seed: int = 0, nominal: int = 16,
          save_period_steps: int = 1, patience: int = 0, nan_indices: tuple[int, ...] = (),
          optimizer: str = "sgd", extra_hooks: tuple = (), workers: int = 0, ema_decay: float = 0.99,
          plots: bool = False, optim_kwargs: dict | None = None) -> Trainer:
    """A Trainer wired like erpose.engine.launch.train, with the stand-ins."""
    torch.manual_seed(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    world, rank = distributed.world_size(), distributed.rank()
    model = TinyModel()
    dataset = TinyDataset(n, seed, nan_indices)
    per_rank = batch // world
    sampler = distributed.EpochBatchSampler(n, per_rank, seed, rank, world)
    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                                         generator=generator)
    config = OptimConfig(**{"optimizer": optimizer, "lr0": 0.05, "warmup_epochs": 1.0, "nominal_batch": nominal,
                            "grad_clip": 10.0, **(optim_kwargs or {})})
    accumulate = max(round(nominal / batch), 1)
    opt = build_optimizer(model, config, batch_size=batch, accumulate=accumulate, total_optimizer_steps=100)
    ema = ModelEMA(model, ema_decay, tau=5.0)
    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model)
    hooks = build_hooks(optim_config=config, lr0=config.lr0, dataset=dataset, generator=generator, seed=seed, close_mosaic=1,
                        ema=ema, validate_fn=fake_validate, val_interval=1, patience=patience, run_dir=run_dir,
                        save_fn=save_fn_for(model, ema), save_period_steps=save_period_steps, plots=plots)
    hooks[-1:-1] = list(extra_hooks)  # before the checkpoint hook, which stays last
    return Trainer(model, criterion, opt, loader, epochs=epochs, hooks=hooks, accumulate=accumulate,
                   grad_clip=config.grad_clip, train_model=train_model)


def resume(trainer: Trainer, run_dir: Path) -> None:
    state = torch.load(run_dir / "weights" / "last.pt", weights_only=True)
    trainer.model.load_state_dict(state["train_state"]["model"])
    trainer.load_state_dict(state["train_state"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kill-at", type=int, default=-1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    distributed.setup("cpu")
    extra = (KillAt(args.kill_at),) if args.kill_at >= 0 else ()
    trainer = build(args.run_dir, epochs=args.epochs, batch=args.batch, extra_hooks=extra)
    if args.resume:
        resume(trainer, args.run_dir)
    trainer.train()
    if args.out is not None and distributed.rank() == 0:
        torch.save({"model": trainer.model.state_dict(), "steps": trainer.optimizer_steps}, args.out)
    distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
