"""Overfit check on real photos: train ER-Pose-n on tiny_coco's 50 train images, evaluate on the same.

The run shows that the whole pipeline (COCO reader, letterbox, assigner, losses, optimiser, EMA,
decoding, evaluation) learns from real data: AP on the training images must climb far above
zero. No augmentation, so the model can memorise; a fixed number of optimiser steps.

    python benchmarks/overfit_real.py                      # 100 epochs x 7 steps at 256 px
    python benchmarks/overfit_real.py --epochs 40 --imgsz 192 --model yolopose-n

Needs ../shared/data/real/tiny_coco (research-only photos; not part of the package).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "tiny_coco" / \
    "annotations" / "person_keypoints_train2017.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_JSON), help="COCO keypoint JSON (train = val)")
    parser.add_argument("--model", default="erpose-n")
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr0", type=float, default=0.002)
    parser.add_argument("--val-interval", type=int, default=10)
    parser.add_argument("--out", default="runs/overfit")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"{args.data} not found: the overfit check needs the real tiny_coco photos", file=sys.stderr)
        return 2

    from erpose.data.transforms import AugmentConfig
    from erpose.engine.launch import train
    from erpose.engine.optim import OptimConfig
    from erpose.engine.train_config import TrainConfig

    no_augment = AugmentConfig(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, fliplr=0.0, mosaic=0.0)
    config = TrainConfig(
        model=args.model, data=args.data, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
        optim=OptimConfig(optimizer="adamw", lr0=args.lr0, nominal_batch=args.batch, warmup_epochs=3.0),
        augment=no_augment, val_interval=args.val_interval, workers=0, project=str(Path(args.out).parent),
        name=Path(args.out).name, exist_ok=True, plots=False, patience=10_000,
    )
    start = time.perf_counter()
    result = train(config)
    minutes = (time.perf_counter() - start) / 60
    metrics = result.metrics
    print(f"\n{args.model} on {Path(args.data).name} (train = val), {args.imgsz} px, {result.epochs_run} epochs, "
          f"batch {args.batch}, {minutes:.1f} min; best epoch {result.best_epoch}")
    print(" ".join(f"{k} {metrics[k]:.4f}" for k in ("AP", "AP50", "AP75", "AR", "AR50") if k in metrics))
    print(f"per epoch: {Path(result.run_dir) / 'results.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
