"""Build a training run from a ``TrainConfig`` and run it: the one entry point CLI and API call.

Wiring only: run directory, seeds, data, model, criterion, optimiser, hooks, resume. The loop
is ``erpose.engine.trainer``; what happens around it is ``erpose.engine.hooks``.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from erpose.config import dump_yaml, load_yaml
from erpose.engine import distributed
from erpose.engine.hooks import ModelEMA, PlotsHook, build_hooks
from erpose.engine.optim import build_optimizer, resolve_optimizer
from erpose.engine.train_config import TrainConfig
from erpose.engine.trainer import Trainer
from erpose.files import increment_run_dir

LOGGER = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes:
        run_dir: the run directory.
        metrics: validation metrics of the best epoch (``AP``, ``AP50``...); empty if none ran.
        best_epoch: 1-based epoch of ``metrics`` (0 if none).
        epochs_run: epochs completed.
        files: everything written, in a stable order.
    """

    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    files: list[Path] = field(default_factory=list)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False


def resolve_resume(resume: str | Path) -> tuple[Path, Path]:
    """A run directory or a ``last.pt`` path -> (run dir, checkpoint path).

    Raises:
        FileNotFoundError: no ``weights/last.pt`` or ``args.yaml`` to resume from.
    """
    path = Path(resume)
    ckpt = path if path.suffix == ".pt" else path / "weights" / "last.pt"
    run_dir = ckpt.parent.parent
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no checkpoint to resume from")
    if not (run_dir / "args.yaml").is_file():
        raise FileNotFoundError(f"{run_dir / 'args.yaml'}: the run's config is missing, cannot resume")
    return run_dir, ckpt


def check_train_state(checkpoint: dict, path: Path) -> None:
    """Raise naming ``path`` when a checkpoint holds no state to resume from (e.g. a best.pt copy)."""
    from erpose.models.checkpoint import CheckpointError

    state = checkpoint.get("train_state")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(
            f"{path}: holds no training state to resume from (a best.pt or an exported copy?); resume needs "
            "the weights/last.pt that training writes")


@dataclass
class TrainData:
    """The training data of a run: sources, the augmenting dataset and its loader."""

    train_source: Any
    val_source: Any
    dataset: Any
    loader: torch.utils.data.DataLoader
    generator: torch.Generator
    batches_per_epoch: int
    per_rank_batch: int


@dataclass
class Optimization:
    """Optimiser, its peak learning rate, the accumulation to the nominal batch, and the EMA."""

    optimizer: torch.optim.Optimizer
    lr0: float
    accumulate: int
    ema: ModelEMA | None


def prepare_run(config: TrainConfig, resume: str | Path | None, ctx: Any) -> tuple[TrainConfig, Path, dict | None]:
    """The run's config, directory and (when resuming) checkpoint: a new run writes ``args.yaml``.

    Resuming reads the run's own ``args.yaml`` back (keeping only ``device`` from ``config``), so
    the resumed run is the same run.
    """
    from erpose.models.checkpoint import load_checkpoint

    if resume is not None:
        run_dir, ckpt_path = resolve_resume(resume)
        config = replace(load_yaml(TrainConfig, run_dir / "args.yaml"), device=config.device)
        state = load_checkpoint(ckpt_path)
        check_train_state(state, ckpt_path)
        return config, run_dir, state
    run_dir = increment_run_dir(config.project, config.name, config.exist_ok) if ctx.is_main else None
    run_dir = Path(distributed.broadcast_object(str(run_dir) if run_dir else None))
    if ctx.is_main:
        (run_dir / "weights").mkdir(parents=True, exist_ok=True)
        dump_yaml(config, run_dir / "args.yaml")
    return config, run_dir, None


def build_model(config: TrainConfig, skeleton: Any, state: dict | None, ctx: Any) -> torch.nn.Module:
    """The model to train: zoo/config/checkpoint, pretrained weights, frozen parts, resumed weights."""
    from erpose.models.checkpoint import load_model

    model = load_model(config.model, skeleton=skeleton)
    if config.pretrained and state is None:
        from erpose.models.pretrained import load_pretrained

        report = load_pretrained(model, config.pretrained)
        LOGGER.info("pretrained: %s", report.summary())
    if config.freeze:
        LOGGER.info("frozen (not trained): %s", ", ".join(model.freeze(config.freeze)))
    # NHWC convolutions: 15-25 % faster training steps on this CPU (oneDNN), and the usual choice on GPUs.
    model = model.to(ctx.device, memory_format=torch.channels_last).train()
    if state is not None:
        model.load_state_dict(state["train_state"]["model"])
    if ctx.world_size > 1 and ctx.device.type == "cuda":
        # Batch statistics over the global batch, so N x (batch / N) trains like one batch.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if ctx.is_main:
        _log_summary(model, config.imgsz)
    return model


def build_data(config: TrainConfig, train_source: Any, val_source: Any, ctx: Any) -> TrainData:
    """The augmenting dataset of ``train_source`` and its loader (this rank's share of every batch)."""
    from erpose.data.dataset import PoseDataset, collate
    from erpose.engine.distributed import EpochBatchSampler

    per_rank_batch = max(config.batch // ctx.world_size, 1)
    dataset = PoseDataset(train_source, config.imgsz, augment=config.augment, cache_images=config.cache_images,
                          seed=config.seed)
    sampler = EpochBatchSampler(len(dataset), per_rank_batch, config.seed, ctx.rank, ctx.world_size)
    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.workers, generator=generator,
                                         pin_memory=ctx.device.type == "cuda")
    return TrainData(train_source, val_source, dataset, loader, generator, sampler.batches_per_epoch, per_rank_batch)


def build_optimization(config: TrainConfig, model: torch.nn.Module, data: TrainData, ctx: Any) -> Optimization:
    """Optimiser and schedule length for ``config.epochs``, accumulation to the nominal batch, EMA."""
    global_batch = data.per_rank_batch * ctx.world_size
    accumulate = max(round(config.optim.nominal_batch / global_batch), 1)
    total_steps = config.epochs * -(-data.batches_per_epoch // accumulate)
    optimizer = build_optimizer(model, config.optim, batch_size=global_batch, accumulate=accumulate,
                                total_optimizer_steps=total_steps)
    _, lr0 = resolve_optimizer(config.optim, total_steps)
    ema = ModelEMA(model, config.ema_decay, config.ema_tau) if config.ema_decay > 0 else None
    return Optimization(optimizer, lr0, accumulate, ema)


def build_run_hooks(config: TrainConfig, model: torch.nn.Module, data: TrainData, optim: Optimization,
                    run_dir: Path, ctx: Any, *, progress: bool, budget_start: float) -> list:
    """The run's hooks (``build_hooks``) with their callbacks: validation, checkpoints, plots, budget."""
    ema = optim.ema

    def deployed() -> torch.nn.Module:
        return ema.module if ema is not None else model

    def validate_fn(eval_model: torch.nn.Module) -> dict:
        from erpose.engine.validator import validate

        result = validate(eval_model, data.val_source, config.imgsz, config.val_batch or config.batch,
                          device=str(ctx.device), progress=progress)
        return dict(result.metrics)

    def save_fn(path: Path, train_state: dict) -> None:
        from erpose.models.checkpoint import save_checkpoint

        train_state["model"] = model.state_dict()
        save_checkpoint(path, deployed(), train_state=train_state, train_args=dump_dict(config))

    def sample_fn(batch: Any, path: Path) -> None:
        from erpose.engine.plots import plot_batch

        plot_batch(batch, data.train_source.skeleton, path)

    def final_fn() -> list[Path]:
        return [_draw_val_predictions(deployed(), data.val_source, config, run_dir, ctx.device)]

    budget = None
    if config.time > 0:
        from erpose.engine.budget import TimeBudgetHook

        # Validation is scored per image about as fast as training runs: its share of an epoch
        # is about the val / train image ratio (measured after the first epoch anyway).
        budget = TimeBudgetHook(config.time, config.epochs, warmup_epochs=config.optim.warmup_epochs,
                                val_share=len(data.val_source) / max(len(data.dataset), 1),
                                val_interval=config.val_interval, start=budget_start)
    return build_hooks(
        optim_config=config.optim, lr0=optim.lr0, dataset=data.dataset, generator=data.generator, seed=config.seed,
        close_mosaic=config.augment.close_mosaic, ema=ema, validate_fn=validate_fn, val_interval=config.val_interval,
        patience=config.patience, run_dir=run_dir, save_fn=save_fn, save_period_steps=config.save_period_steps,
        progress=progress, sample_fn=sample_fn if config.plots else None, final_fn=final_fn if config.plots else None,
        plots=config.plots, budget=budget,
    )


def train(config: TrainConfig, *, resume: str | Path | None = None, progress: bool = False) -> TrainResult:
    """Train a pose model; see ``docs/training.md``.

    Args:
        config: the run's settings (ignored except ``device`` when resuming: the run's own
            ``args.yaml`` is read back so that the resumed run is the same run).
        resume: a run directory (or its ``weights/last.pt``) to continue.
        progress: show a progress bar (the CLI turns it on).

    Returns:
        The run's ``TrainResult``.
    """
    from erpose.data.source import load_source
    from erpose.models.criterion import build_criterion

    ctx = distributed.setup(config.device)
    config, run_dir, state = prepare_run(config, resume, ctx)
    seed_everything(config.seed, config.deterministic)
    train_source = load_source(config.data, "train")
    val_source = load_source(config.data, "val")
    if ctx.device.type == "cpu":  # after the data is known to load: a bad dataset changes nothing
        _share_cpu_with_workers(config.workers)
    # A time budget counts from here: generating a SynthCrowd preset the first time is not training.
    budget_start = time.perf_counter()
    model = build_model(config, train_source.skeleton, state, ctx)
    data = build_data(config, train_source, val_source, ctx)
    optim = build_optimization(config, model, data, ctx)
    criterion = build_criterion(model.config, train_source.skeleton, config.criterion)
    train_model: Any = model
    if ctx.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    hooks = build_run_hooks(config, model, data, optim, run_dir, ctx, progress=progress, budget_start=budget_start)
    # A batch-summed loss (ultralytics convention) sums gradients over the nominal batch; a mean
    # loss averages them (see Trainer's loss_scale).
    summed = bool(getattr(getattr(criterion, "config", None), "loss", None) and criterion.config.loss.scale_by_batch)
    trainer = Trainer(model, criterion, optim.optimizer, data.loader, epochs=config.epochs, hooks=hooks,
                      accumulate=optim.accumulate, grad_clip=config.optim.grad_clip, amp=config.amp,
                      device=ctx.device, train_model=train_model, loss_scale=float(ctx.world_size) if summed else None)
    if state is not None:
        trainer.load_state_dict(state["train_state"])
        LOGGER.info("resuming %s at epoch %d, batch %d", run_dir, trainer.epoch + 1, trainer.iter)
    length = f"epochs fitted to a {config.time:g}-min budget" if config.time > 0 else f"{config.epochs} epochs"
    LOGGER.info("training %s on %s (%d images), %s, batch %d x %d accumulation, %s%s", config.model, config.data,
                len(data.dataset), length, config.batch, optim.accumulate, ctx.device,
                _precision(config.amp, ctx.device))
    trainer.train()
    best = run_dir / "weights" / "best.pt"
    if ctx.is_main and best.is_file():
        strip_train_state(best)
    return _result(trainer, run_dir)


def _precision(amp: bool, device: torch.device) -> str:
    from erpose.engine.trainer import autocast_dtype

    dtype = autocast_dtype(device, amp)
    return f", {str(dtype).removeprefix('torch.')} autocast" if dtype is not None else ", float32"


def strip_train_state(path: Path) -> None:
    """Drop the resume state from a finished run's checkpoint (about 6x smaller; the model stays)."""
    import io

    from erpose.files import atomic_write_bytes
    from erpose.models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    checkpoint.pop("train_state", None)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _share_cpu_with_workers(workers: int) -> None:
    """Leave one core per data worker: OpenMP threads that share cores with busy workers spin
    at their barriers, and on a 2-core machine that made steps about 10x slower."""
    if "OMP_NUM_THREADS" in os.environ:
        return  # the user chose
    threads = max(1, (os.cpu_count() or 1) - workers)
    if threads < torch.get_num_threads():
        torch.set_num_threads(threads)
        LOGGER.info("CPU training: %d torch thread(s), %d data worker(s)", threads, workers)


def dump_dict(config: TrainConfig) -> dict:
    from erpose.config import to_dict

    return to_dict(config)


def _log_summary(model: torch.nn.Module, imgsz: int) -> None:
    try:
        from erpose.models.summary import model_summary
    except ImportError:  # the summary module is optional for training
        LOGGER.info("%s: %.2f M parameters", type(model).__name__, sum(p.numel() for p in model.parameters()) / 1e6)
        return
    LOGGER.info("%s", model_summary(model, imgsz))


def _draw_val_predictions(model: torch.nn.Module, val_source: Any, config: TrainConfig, run_dir: Path,
                          device: torch.device, count: int = 8) -> Path:
    """Predictions of ``model`` on the first ``count`` val images -> ``run_dir/val_predictions.jpg``."""
    import cv2

    from erpose.engine.plots import plot_predictions
    from erpose.engine.predictor import Predictor

    images = [cv2.imread(s.image_path) for s in val_source.samples[:count]]
    images = [im for im in images if im is not None]
    predictor = Predictor(copy.deepcopy(model), imgsz=config.imgsz, conf=0.25, device=str(device))
    results = predictor(images)
    return plot_predictions([r.orig_image for r in results], [r.keypoints.data for r in results],
                            [r.scores for r in results], val_source.skeleton, run_dir / "val_predictions.jpg",
                            size=config.imgsz)


def _result(trainer: Trainer, run_dir: Path) -> TrainResult:
    from erpose.engine.hooks import EvalHook

    eval_hook = next((h for h in trainer.hooks if isinstance(h, EvalHook)), None)
    plots = next((h for h in trainer.hooks if isinstance(h, PlotsHook)), None)
    names = ["args.yaml", "results.csv", "results.png", "train_batch0.jpg", "val_predictions.jpg",
             "weights/last.pt", "weights/best.pt"]
    files = [run_dir / n for n in names if (run_dir / n).exists()]
    files += [p for p in (plots.written if plots else []) if p.exists() and p not in files]
    return TrainResult(
        run_dir=run_dir,
        metrics=dict(eval_hook.best_metrics) if eval_hook else {},
        best_epoch=(eval_hook.best_epoch + 1) if eval_hook else 0,
        epochs_run=trainer.epoch,
        files=files,
    )
