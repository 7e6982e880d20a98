"""``erpose train``: train ER-Pose (or the YOLO-Pose baseline) and report AP and what was written.

Settings are resolved in this order, later wins: ``TrainConfig`` defaults, ``--cfg file.yaml``,
the explicit flags, then ``key=value`` overrides (dotted paths such as ``optim.lr0=0.002``).
Under ``torchrun --nproc_per_node N -m erpose.cli.main train ...`` each process trains on
``batch / N`` images per step; rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import replace

from erpose.cli.main import CLIError

#: Flags that map one-to-one onto TrainConfig fields.
FLAGS = ("model", "data", "epochs", "imgsz", "batch", "device", "workers", "project", "name", "seed", "pretrained")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:  erpose train  |  erpose train --model yolopose-n --data synthcrowd-s --epochs 50  |  "
        "erpose train --resume runs/train/exp  |  erpose train --cfg configs/train/default.yaml optim.lr0=0.002"
    )
    parser.add_argument("--model", help="zoo name (erpose-n, yolopose-n, ...) or checkpoint to fine-tune "
                                        "(default erpose-n)")
    parser.add_argument("--pretrained", metavar="WEIGHTS.pt",
                        help="initialise every layer that fits from these weights: an ultralytics YOLO11 pose or "
                             "detection .pt, or an erpose checkpoint (e.g. --model erpose-n-pt --pretrained yolo11n-pose.pt)")
    parser.add_argument("--freeze", metavar="MODULES",
                        help="comma-separated sub-modules not to train, e.g. backbone,neck,head.keypoints,head.o2m")
    parser.add_argument("--data", help="SynthCrowd preset, data YAML or COCO keypoint JSON (default synthcrowd-train)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--imgsz", type=int, help="square input size, pixels (multiple of 32)")
    parser.add_argument("--batch", type=int, help="images per step over all processes")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or N")
    parser.add_argument("--workers", type=int, help="data-loading processes per training process")
    parser.add_argument("--project", help="parent of the run directory (default runs/train)")
    parser.add_argument("--name", help="run directory name (default exp; exp2, exp3... when taken)")
    parser.add_argument("--exist-ok", action="store_true", help="reuse project/name if it exists")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cfg", metavar="FILE.yaml", help="a TrainConfig YAML (e.g. a run's args.yaml)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue runs/train/NAME from weights/last.pt with its own args.yaml")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted TrainConfig overrides, e.g. optim.optimizer=sgd augment.mosaic=0.5")


def build_config(args: argparse.Namespace):
    """The resolved ``TrainConfig`` (defaults < --cfg < flags < key=value overrides)."""
    from erpose.config import ConfigError, apply_overrides, load_yaml
    from erpose.engine.train_config import TrainConfig, with_step_criterion

    try:
        config = load_yaml(TrainConfig, args.cfg) if args.cfg else TrainConfig()
        flags = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
        if args.exist_ok:
            flags["exist_ok"] = True
        if args.freeze:
            flags["freeze"] = tuple(part.strip() for part in args.freeze.split(",") if part.strip())
        config = replace(config, **flags)
        if args.overrides:
            if any(item.startswith("criterion.") for item in args.overrides):
                config = with_step_criterion(config)
            config = apply_overrides(config, list(args.overrides))
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    return config


def demo_recipe_notice(args: argparse.Namespace, config) -> str | None:
    """A one-line hint when another dataset would silently train with the small CPU demo recipe."""
    from erpose.engine.train_config import TrainConfig

    default = TrainConfig()
    chosen = {item.split("=", 1)[0] for item in (args.overrides or [])}
    if (args.cfg or args.resume or config.data == default.data or args.imgsz is not None or args.epochs is not None
            or chosen & {"imgsz", "epochs"}):
        return None
    return (f"note: {config.data} trains with the CPU demo recipe ({config.imgsz} px, {config.epochs} epochs, "
            f"batch {config.batch}); for real data pass --imgsz/--epochs or --cfg configs/train/coco.yaml")


def run(args: argparse.Namespace) -> int:
    from erpose.cli.val import format_table
    from erpose.engine import distributed
    from erpose.engine.launch import train

    start = time.perf_counter()
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)  # under torchrun, rank 0 alone reports
    config = build_config(args)
    if args.resume and (args.overrides or args.cfg):
        raise CLIError("--resume continues a run with its own args.yaml; drop --cfg and key=value overrides")
    notice = demo_recipe_notice(args, config)
    if notice and int(os.environ.get("RANK", "0")) == 0:
        print(notice, file=sys.stderr)
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except BaseException:
        distributed.cleanup(wait_for_peers=False)
        raise
    is_main = distributed.rank() == 0
    distributed.cleanup()
    if not is_main:
        return 0
    minutes = (time.perf_counter() - start) / 60
    print(f"\n{result.epochs_run} epochs in {minutes:.1f} min; best epoch {result.best_epoch}:")
    if result.metrics:
        print(format_table(result.metrics))
    print(f"\nresults in {result.run_dir}:")
    for path in result.files:
        print(f"  {path}")
    return 0
