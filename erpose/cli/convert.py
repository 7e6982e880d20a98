"""``erpose convert``: COCO / CrowdPose keypoint JSON <-> ultralytics YOLO-pose, and ultralytics
YOLO11 pose checkpoints -> erpose checkpoints.

Examples::

    erpose convert yolo11n-pose.pt --out yolo11n-pose-erpose.pt
    erpose convert annotations/person_keypoints_val2017.json --out coco-yolo --split val
    erpose convert --from coco --to yolo ann.json --images val2017 --out coco-yolo --split val --copy
    erpose convert coco-yolo/data.yaml --split val --out val_gt.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from erpose.cli.main import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "COCO -> YOLO: SOURCE is a COCO/CrowdPose keypoint JSON, --out a dataset root (gets images/SPLIT, "
        "labels/SPLIT and data.yaml). YOLO -> COCO: SOURCE is a data YAML, --out a JSON file. "
        "The direction is inferred from SOURCE unless --from/--to say it. "
        "Weights: SOURCE an ultralytics YOLO11 pose .pt, --out the erpose checkpoint to write (read without "
        "running its pickle; converted weights keep their source licence, AGPL-3.0 for ultralytics' releases)."
    )
    parser.add_argument("source", help="COCO keypoint JSON, YOLO-pose data YAML, or ultralytics YOLO11 pose .pt")
    parser.add_argument("--out", required=True,
                        help="output dataset root (to yolo), JSON file (to coco) or erpose .pt (from a .pt)")
    parser.add_argument("--from", dest="src_format", choices=("coco", "crowdpose", "yolo"),
                        help="input format (default: from the SOURCE extension)")
    parser.add_argument("--to", dest="dst_format", choices=("coco", "yolo"), help="output format (default: the other one)")
    parser.add_argument("--split", default=None,
                        help="split name: written as images/SPLIT (to yolo, default: from the JSON name, e.g. val2017) "
                             "or read from the YAML (to coco, default: val)")
    parser.add_argument("--images", default=None, help="image folder of the COCO JSON (default: inferred from the COCO layout)")
    parser.add_argument("--model", default=None,
                        help="weights conversion only: zoo layout to fill (default yolopose-SCALE, exact); another "
                             "layout, e.g. erpose-n-pt or erpose-n-b1, takes every tensor that fits")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--copy", action="store_true", help="copy images instead of symlinking them (to yolo)")
    group.add_argument("--no-images", action="store_true", help="write labels and data.yaml only (to yolo)")


def run(args: argparse.Namespace) -> int:
    from erpose.data.convert import coco_to_yolo, yolo_to_coco

    source = Path(args.source)
    if source.suffix.lower() in (".pt", ".pth"):
        return convert_weights(source, Path(args.out), args.model)
    src = args.src_format or ("yolo" if source.suffix.lower() in (".yaml", ".yml") else "coco")
    dst = args.dst_format or ("coco" if src == "yolo" else "yolo")
    if (src == "yolo") == (dst == "yolo"):
        raise CLIError(f"cannot convert {src} to {dst}: one side must be yolo, the other coco")
    if src == "yolo":
        split = args.split or "val"
        out = Path(args.out)
        if out.suffix.lower() != ".json":
            raise CLIError(f"--out {out}: converting to COCO writes a .json file")
        result = yolo_to_coco(source, split, out)
        print(f"wrote {out}: {result.report.summary(str(source) + ':' + split)}")
    else:
        split = args.split or source.stem.split("_")[-1]
        mode = "copy" if args.copy else "none" if args.no_images else "symlink"
        skeleton = None
        if src == "crowdpose":
            from erpose.skeleton import CROWDPOSE14 as skeleton
        data_yaml = coco_to_yolo(source, args.images, args.out, split=split, images=mode, skeleton=skeleton)
        print(f"wrote {data_yaml} (split {split!r})")
    return 0


def convert_weights(source: Path, out: Path, model_name: str | None = None) -> int:
    """An ultralytics YOLO11 checkpoint -> an erpose checkpoint: ``yolopose-{scale}`` exactly, or the
    zoo layout ``model_name`` with every tensor that fits (the rest freshly initialised)."""
    from erpose.models.checkpoint import CheckpointError, load_ultralytics_model, save_checkpoint
    from erpose.models.ultralytics_reader import is_ultralytics_file

    if not source.is_file():
        raise FileNotFoundError(f"{source}: checkpoint not found")
    if not is_ultralytics_file(source):
        raise CLIError(f"{source}: not an ultralytics checkpoint (a torch zip whose pickle names ultralytics classes)")
    if out.suffix.lower() not in (".pt", ".pth"):
        raise CLIError(f"--out {out}: converting weights writes a .pt file")
    if out.resolve() == source.resolve():
        raise CLIError(f"--out {out}: would overwrite the source checkpoint")
    if model_name is None:
        model = load_ultralytics_model(source)
        note = ""
    else:
        from erpose.models.ultralytics_map import checkpoint_skeleton, transfer_pretrained
        from erpose.models.ultralytics_reader import UltralyticsCheckpointError, read_ultralytics
        from erpose.models.zoo import build_model

        try:
            checkpoint = read_ultralytics(source)
            model = build_model(model_name, checkpoint_skeleton(checkpoint))
            note = f"; {transfer_pretrained(model, checkpoint).summary()}"
        except UltralyticsCheckpointError as exc:
            raise CheckpointError(str(exc)) from None
        model.eval()
    save_checkpoint(out, model, converted_from=str(source))
    params = sum(p.numel() for p in model.parameters())
    name = model_name or f"yolopose-{model.config.scale}"
    print(f"wrote {out}: {name} ({params:,} parameters, {model.num_keypoints} keypoints) from {source}{note}; "
          "the weights keep their source licence")
    return 0
