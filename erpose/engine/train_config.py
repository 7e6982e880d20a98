"""``TrainConfig``: everything one training run needs, as one frozen dataclass tree.

It round-trips through YAML (``erpose.config.dump_yaml`` / ``load_yaml``); the resolved config is
written to the run directory as ``args.yaml`` and is what ``--resume`` reads back. Sub-configs
belong to the code that uses them: ``OptimConfig`` (``erpose.engine.optim``), ``AugmentConfig``
(``erpose.data.transforms``) and ``CriterionConfig`` (``erpose.models.criterion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from erpose.data.transforms import AugmentConfig
from erpose.engine.optim import OptimConfig
from erpose.models.criterion import CriterionConfig


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    The defaults are the README's main command, ``erpose train`` with no arguments: ER-Pose-n on
    the small SynthCrowd preset on a 2-core CPU (hence 128 px, a batch and nominal batch of 16 --
    more optimiser steps per image in a short budget -- milder scale augmentation and no mosaic,
    which halves people's size and slowed early learning). The CLI starts from the recipe that
    fits the data (``erpose.engine.recipes``): these defaults with a 10-minute ``time`` budget for
    SynthCrowd, ``erpose/configs/train/coco.yaml`` for real data.

    Attributes:
        model: zoo name (``erpose-n``, ``yolopose-n``...) to train from scratch, or a checkpoint
            path to fine-tune.
        data: SynthCrowd preset name, data YAML, or COCO keypoint JSON (train and val splits).
        imgsz: square training and validation input size, pixels (multiple of 32).
        epochs: total epochs (with a ``time`` budget: the recipe's length that warmup and
            close-mosaic are relative to; the run's own number is fitted to the budget).
        time: time budget in minutes; > 0 times the first steps and the first epoch, then fits
            the number of epochs to the budget and scales warmup and close-mosaic with it
            (``erpose.engine.budget``). 0: train ``epochs`` epochs.
        batch: images per batch over all processes (each of N torchrun processes takes batch / N).
        optim: optimiser, schedule, warmup, nominal batch (gradient accumulation), clipping.
        ema_decay: EMA asymptotic decay; 0 disables the EMA (validation uses the raw weights).
        ema_tau: EMA decay ramp, optimiser steps.
        amp: mixed precision: float16 on CUDA, bfloat16 on CPUs with native bfloat16 (AVX512-BF16
            or AMX), float32 elsewhere.
        seed: seed of weights init, data order and augmentation.
        deterministic: deterministic algorithms (slower on GPU; reproducible runs).
        val_interval: validate every N epochs (and always after the last).
        val_batch: validation batch size (0: same as ``batch``).
        patience: stop after this many epochs without a better validation AP (0: never).
        workers: data-loading worker processes per training process.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``N``.
        project, name, exist_ok: the run directory is ``project/name``, made unique as
            ``name2``, ``name3``... unless ``exist_ok``.
        cache_images: keep decoded images in memory.
        save_period_steps: also write ``last.pt`` every N optimiser steps (0: epoch ends only).
        plots: write ``results.png``, the training-sample mosaic and drawn val predictions.
        augment: training augmentation (``augment.close_mosaic`` switches mosaic off for the last
            epochs).
        criterion: loss and assignment settings; None takes the default for the model's step.
        pretrained: a checkpoint whose weights initialise every layer of ``model`` they fit (an
            ultralytics YOLO11 pose or detection ``.pt``, or an erpose checkpoint); the rest
            stays freshly initialised. Empty: no pretrained weights.
        freeze: sub-modules not trained (their batch norms keep their statistics), e.g.
            ``[backbone, neck, head.keypoints, head.o2m]`` to train only the o2o scores.
    """

    model: str = "erpose-n"
    data: str = "synthcrowd-train"
    imgsz: int = 128
    epochs: int = 28
    time: float = 0.0
    batch: int = 16
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_epochs=1.0, nominal_batch=16))
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0
    amp: bool = True
    seed: int = 0
    deterministic: bool = True
    val_interval: int = 1
    val_batch: int = 0
    patience: int = 50
    workers: int = 0
    device: str = "auto"
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    cache_images: bool = False
    save_period_steps: int = 50
    plots: bool = True
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(scale=0.25, mosaic=0.0))
    criterion: CriterionConfig | None = None
    pretrained: str = ""
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from erpose.config import ConfigError
        from erpose.limits import MAX_BATCH, check_imgsz, check_size
        from erpose.models.pose_model import MAX_STRIDE

        check_imgsz(self.imgsz, MAX_STRIDE)
        if self.epochs <= 0 or self.batch <= 0:
            raise ConfigError(f"epochs and batch must be positive, got {self.epochs}, {self.batch}")
        if not 0.0 <= self.time < 1e6:
            raise ConfigError(f"time must be a number of minutes >= 0, got {self.time}")
        check_size("batch", self.batch, MAX_BATCH)
        if self.val_batch:
            check_size("val_batch", self.val_batch, MAX_BATCH)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def model_step(model: str) -> str:
    """The ablation step (``B0``..``B5``) of a zoo name, model ``.yaml`` or checkpoint path."""
    if str(model).endswith(".pt"):
        from erpose.models.checkpoint import load_checkpoint
        from erpose.models.ultralytics_reader import is_ultralytics_file

        if is_ultralytics_file(model):
            return "B0"  # a YOLO11 pose checkpoint loads as yolopose-{scale}

        return str(load_checkpoint(model)["config"]["step"])
    from erpose.models.zoo import get_config

    return get_config(model).step


def with_step_criterion(config: TrainConfig) -> TrainConfig:
    """``config`` with ``criterion`` filled in from the model's step when it is None, so that
    ``criterion.loss.kpt=10``-style overrides have the step's defaults to start from."""
    if config.criterion is not None:
        return config
    from dataclasses import replace

    from erpose.models.criterion import default_criterion_config

    return replace(config, criterion=default_criterion_config(model_step(config.model)))
