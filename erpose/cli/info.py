"""``erpose info MODEL``: layers, inference-graph parameters and GFLOPs of a model."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model name (erpose-n, yolopose-s, erpose-n-b2...), a .yaml config or a .pt")
    parser.add_argument("--imgsz", type=int, default=640, help="square input side for GFLOPs (multiple of 32)")
    parser.epilog = (
        "parameters are counted on the inference graph (o2m copy dropped, Conv+BN fused) and "
        "GFLOPs are 2 x MACs, as the YOLO11 tables report them"
    )


def run(args: argparse.Namespace) -> int:
    from erpose.limits import check_imgsz
    from erpose.models import load_model, model_summary
    from erpose.models.pose_model import MAX_STRIDE

    check_imgsz(args.imgsz, MAX_STRIDE, name="--imgsz")  # before loading: a typo is one line at once
    model = load_model(args.model)
    config = model.config
    head = config.head
    inference = "NMS-free (o2o top-k)" if not model.needs_nms else ("box NMS" if head.box else "OKS-NMS")
    summary = model_summary(model, imgsz=args.imgsz)
    print(f"{args.model}: scale {config.scale}, step {config.step}, {head.kind} head, {inference}")
    print(f"  skeleton {model.skeleton.name} (K={model.num_keypoints}), strides {list(model.strides)}")
    print(f"  {summary}")
    return 0
