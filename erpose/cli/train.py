"""``erpose train``: train ER-Pose (or the YOLO-Pose baseline) and report AP and what was written.

Settings are resolved in this order, later wins: the recipe that fits ``--data``
(``erpose.engine.recipes``: the demo recipe with a 10-minute budget for SynthCrowd presets, the
real-data recipe ``coco`` for anything else) or ``--cfg file.yaml`` / ``--cfg NAME``, the explicit
flags, then ``key=value`` overrides (dotted paths such as ``optim.lr0=0.002``). The run prints
which recipe it chose.
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

#: Flags that map one-to-one onto TrainConfig fields (``--epochs`` and ``--time`` also choose the run's length).
FLAGS = ("model", "data", "imgsz", "batch", "device", "workers", "project", "name", "seed", "pretrained")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:  erpose train  |  erpose train --model yolopose-n --data synthcrowd-s --epochs 50  |  "
        "erpose train --time 30  |  erpose train --resume runs/train/exp  |  "
        "erpose train --cfg coco --data coco-pose.yaml optim.lr0=0.002"
    )
    parser.add_argument("--model", help="zoo name (erpose-n, yolopose-n, ...) or checkpoint to fine-tune "
                                        "(default erpose-n)")
    parser.add_argument("--pretrained", metavar="WEIGHTS.pt",
                        help="initialise every layer that fits from these weights: an ultralytics YOLO11 pose or "
                             "detection .pt, or an erpose checkpoint (e.g. --model erpose-n-pt --pretrained yolo11n-pose.pt)")
    parser.add_argument("--freeze", metavar="MODULES",
                        help="comma-separated sub-modules not to train, e.g. backbone,neck,head.keypoints,head.o2m")
    parser.add_argument("--data", help="SynthCrowd preset, data YAML or COCO keypoint JSON (default synthcrowd-train); "
                                       "chooses the recipe: demo for SynthCrowd, coco for anything else")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train this many epochs (switches a recipe's time budget off)")
    length.add_argument("--time", type=float, metavar="MINUTES",
                        help="time budget: the epochs (and warmup, decay, close-mosaic) are fitted to it after "
                             "timing the first steps (the demo recipe's default: 10)")
    parser.add_argument("--imgsz", type=int, help="square input size, pixels (multiple of 32)")
    parser.add_argument("--batch", type=int, help="images per step over all processes")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or N")
    parser.add_argument("--workers", type=int, help="data-loading processes per training process")
    parser.add_argument("--project", help="parent of the run directory (default runs/train)")
    parser.add_argument("--name", help="run directory name (default exp; exp2, exp3... when taken)")
    parser.add_argument("--exist-ok", action="store_true", help="reuse project/name if it exists")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cfg", metavar="FILE.yaml",
                        help="a TrainConfig YAML (e.g. a run's args.yaml) or a shipped recipe: coco, finetune-yolo11")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue runs/train/NAME from weights/last.pt with its own args.yaml")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted TrainConfig overrides, e.g. optim.optimizer=sgd augment.mosaic=0.5")


def build_recipe(args: argparse.Namespace):
    """The starting point: ``--cfg`` (a file or a shipped recipe name), else the recipe for ``--data``."""
    from erpose.config import ConfigError
    from erpose.engine.recipes import load_recipe, recipe_for_data

    try:
        return load_recipe(args.cfg) if args.cfg else recipe_for_data(args.data)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


def build_config(args: argparse.Namespace, recipe=None):
    """The resolved ``TrainConfig`` (recipe or --cfg < flags < key=value overrides)."""
    from erpose.config import ConfigError, apply_overrides
    from erpose.engine.recipes import with_length
    from erpose.engine.train_config import with_step_criterion

    recipe = recipe or build_recipe(args)
    try:
        flags = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
        if args.exist_ok:
            flags["exist_ok"] = True
        if args.freeze:
            flags["freeze"] = tuple(part.strip() for part in args.freeze.split(",") if part.strip())
        config = with_length(replace(recipe.config, **flags), epochs=args.epochs, minutes=args.time)
        if args.overrides:
            if any(item.startswith("criterion.") for item in args.overrides):
                config = with_step_criterion(config)
            config = apply_overrides(config, list(args.overrides))
            chosen = _override_keys(args)
            if "epochs" in chosen and "time" not in chosen and args.time is None:
                config = replace(config, time=0.0)  # epochs=N is an explicit length like --epochs
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    return config


def _override_keys(args: argparse.Namespace) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in (args.overrides or [])}


def demo_recipe_notice(args: argparse.Namespace, config) -> str | None:
    """A one-line hint when data other than SynthCrowd gets the real-data recipe by default: it is
    written for a GPU (640 px, 300 epochs), so a CPU user learns how to shorten it."""
    from erpose.engine.recipes import REAL_DATA_RECIPE, is_synth_preset

    if (args.cfg or args.resume or is_synth_preset(config.data) or args.imgsz is not None or args.epochs is not None
            or args.time is not None or _override_keys(args) & {"imgsz", "epochs", "time"}):
        return None
    return (f"note: {config.data} trains with the real-data recipe configs/train/{REAL_DATA_RECIPE}.yaml "
            f"({config.imgsz} px, {config.epochs} epochs, batch {config.batch}: a GPU's schedule); on a CPU give a "
            f"time budget (--time MINUTES) or --imgsz/--epochs")


def run(args: argparse.Namespace) -> int:
    from erpose.cli.val import format_table
    from erpose.engine import distributed
    from erpose.engine.launch import train

    start = time.perf_counter()
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)  # under torchrun, rank 0 alone reports
    if args.resume and (args.overrides or args.cfg):
        raise CLIError("--resume continues a run with its own args.yaml; drop --cfg and key=value overrides")
    recipe = build_recipe(args)
    config = build_config(args, recipe)
    if not args.resume and int(os.environ.get("RANK", "0")) == 0:
        print(recipe.describe(config), file=sys.stderr)
        notice = demo_recipe_notice(args, config)
        if notice:
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
