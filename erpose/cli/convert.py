"""``erpose convert``: COCO / CrowdPose keypoint JSON <-> ultralytics YOLO-pose.

Examples::

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
        "The direction is inferred from SOURCE unless --from/--to say it."
    )
    parser.add_argument("source", help="COCO keypoint JSON or YOLO-pose data YAML")
    parser.add_argument("--out", required=True, help="output dataset root (to yolo) or JSON file (to coco)")
    parser.add_argument("--from", dest="src_format", choices=("coco", "crowdpose", "yolo"),
                        help="input format (default: from the SOURCE extension)")
    parser.add_argument("--to", dest="dst_format", choices=("coco", "yolo"), help="output format (default: the other one)")
    parser.add_argument("--split", default=None,
                        help="split name: written as images/SPLIT (to yolo, default: from the JSON name, e.g. val2017) "
                             "or read from the YAML (to coco, default: val)")
    parser.add_argument("--images", default=None, help="image folder of the COCO JSON (default: inferred from the COCO layout)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--copy", action="store_true", help="copy images instead of symlinking them (to yolo)")
    group.add_argument("--no-images", action="store_true", help="write labels and data.yaml only (to yolo)")


def run(args: argparse.Namespace) -> int:
    from erpose.data.convert import coco_to_yolo, yolo_to_coco

    source = Path(args.source)
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
