"""Reporting hooks: progress bar and epoch summary, ``results.csv``/``results.png``, sample pictures.

Split from ``erpose.engine.hooks`` (which orders them) to keep each module one job; they
change nothing the training computes.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from erpose.engine import distributed
from erpose.engine.trainer import HookBase
from erpose.files import atomic_write_bytes

LOGGER = logging.getLogger("erpose.engine.hooks")


class ProgressHook(HookBase):
    """A tqdm bar per epoch (losses, images/s, ETA) and a one-line summary per epoch, rank 0 only."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and distributed.rank() == 0
        self.bar: Any = None
        self.images = 0
        self.start = self.train_start = 0.0

    def before_train(self) -> None:
        self.train_start = time.perf_counter()

    def before_epoch(self) -> None:
        self.images, self.start = 0, time.perf_counter()
        if self.enabled:
            from tqdm import tqdm

            t = self.trainer
            self.bar = tqdm(total=t.batches_per_epoch, initial=t.iter, desc=f"epoch {t.epoch + 1}/{t.epochs}",
                            leave=False, dynamic_ncols=True, unit="batch")

    def after_step(self) -> None:
        t = self.trainer
        self.images += int(t.batch.images.shape[0]) * distributed.world_size()
        if self.bar is not None:
            rate = self.images / max(time.perf_counter() - self.start, 1e-9)
            losses = t.storage.running_losses
            postfix = {k: f"{v:.3f}" for k, v in losses.items()}
            postfix["img/s"] = f"{rate:.1f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def after_epoch(self) -> None:
        t = self.trainer
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.start
        losses = " ".join(f"{k} {v:.4f}" for k, v in t.storage.epoch_losses.items())
        metrics = " ".join(f"{k} {v:.3f}" for k, v in t.storage.metrics.items() if k in ("AP", "AP50", "AP75"))
        lr = t.optimizer.param_groups[0]["lr"]
        total = time.perf_counter() - self.train_start
        LOGGER.info("epoch %d/%d  %s  lr %.5f  %s  %.1f img/s  %.0fs (total %.0fs)", t.epoch + 1, t.epochs, losses, lr,
                    metrics, self.images / max(elapsed, 1e-9), elapsed, total)

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()


class CSVLoggerHook(HookBase):
    """``results.csv`` (one row per epoch: losses, lr, metrics) and, at the end, ``results.png``; rank 0 only.

    Rows live in the hook state and the file is rewritten atomically each epoch, so a resumed
    run never duplicates or loses a row.
    """

    def __init__(self, run_dir: str | Path, plot: bool = True) -> None:
        self.run_dir, self.plot = Path(run_dir), plot
        self.rows: list[dict] = []

    def after_epoch(self) -> None:
        t = self.trainer
        row: dict[str, Any] = {"epoch": t.epoch + 1}
        row.update({f"train/{k}": v for k, v in t.storage.epoch_losses.items()})
        for group in t.optimizer.param_groups:
            row[f"lr/{group.get('name', 'pg')}"] = group["lr"]
        row.update({f"metrics/{k}": v for k, v in t.storage.metrics.items()})
        self.rows.append(row)
        if distributed.rank() != 0:
            return
        columns: list[str] = []
        for r in self.rows:
            columns += [c for c in r if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.run_dir / "results.csv", buffer.getvalue().encode())

    def after_train(self) -> None:
        # Once at the end (also after a crash or Ctrl-C), not every epoch: drawing the figure
        # took seconds per epoch, a tenth of a short CPU run.
        if self.plot and self.rows and distributed.rank() == 0:
            from erpose.engine.plots import plot_results

            plot_results(self.run_dir / "results.csv", self.run_dir / "results.png")

    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]


class PlotsHook(HookBase):
    """A labelled mosaic of the first training batch; drawn predictions after training (rank 0).

    Args:
        sample_fn: ``(batch, path)`` draws a batch of training samples.
        final_fn: ``() -> list of written paths``, called after a successful run.
    """

    def __init__(self, run_dir: str | Path, sample_fn: Callable[[Any, Path], Any] | None,
                 final_fn: Callable[[], list[Path]] | None) -> None:
        self.run_dir, self.sample_fn, self.final_fn = Path(run_dir), sample_fn, final_fn
        self.written: list[Path] = []

    def before_step(self) -> None:
        t = self.trainer
        if t.epoch == 0 and t.iter == 0 and self.sample_fn is not None and distributed.rank() == 0:
            path = self.run_dir / "train_batch0.jpg"
            self.sample_fn(t.batch, path)
            self.written.append(path)

    def after_train(self) -> None:
        if self.trainer.exception is None and self.final_fn is not None and distributed.rank() == 0:
            self.written += self.final_fn()


