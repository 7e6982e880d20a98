"""``erpose synth``: generate a SynthCrowd synthetic crowded-people dataset (COCO JSON + YOLO-pose), or
videos with track ids (``--video``: mp4 + PoseTrack18-style JSON per sequence)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from erpose.cli.main import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from erpose.data.synth import DENSITIES, PRESETS

    parser.add_argument("--out", required=True, help="output dataset folder (replaced whole if it is a dataset)")
    parser.add_argument("--name", default=None, choices=sorted(PRESETS),
                        help="a named preset: sets train/val/imgsz/preset/seed/stature/max-people (explicit flags still win)")
    parser.add_argument("--train", type=int, default=None, help="training images (default 2000)")
    parser.add_argument("--val", type=int, default=None, help="validation images (default 500)")
    parser.add_argument("--imgsz", type=int, default=None, help="square image side in px (default 320, >= 64; --video: 256)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    parser.add_argument("--preset", default=None, metavar="{" + ",".join(DENSITIES) + "}",
                        help="scene density (default mixed; --video: sparse or crowd, default sparse)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="rendering processes; the output does not depend on it")
    parser.add_argument("--skeleton", default=None, choices=["coco17", "crowdpose14"], help="default coco17")
    parser.add_argument("--paste-from", nargs=2, default=None, metavar=("COCO_JSON", "IMAGE_DIR"),
                        help="paste real people cut along their segmentation polygons instead of drawn figures")
    parser.add_argument("--stature", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
                        help="person heights as fractions of the image side (default 16 px .. 0.9)")
    parser.add_argument("--max-people", type=int, default=None, help="people per image at most (default 40)")
    parser.add_argument("--clutter", type=float, default=None,
                        help="occluders, distractors and background shapes drawn, 0..1 (default 1: all)")
    parser.add_argument("--png", action="store_true", help="write PNG instead of JPEG (quality 95)")
    video = parser.add_argument_group("video (--video)", "sequences with track ids: <index>.mp4 + <index>.json "
                                      "(PoseTrack18 layout) per sequence")
    video.add_argument("--video", action="store_true",
                       help="render walking, turning, crossing people as videos with track ids instead of images")
    video.add_argument("--sequences", type=int, default=None, help="sequences to render (default 1)")
    video.add_argument("--frames", type=int, default=None, help="frames per sequence (default 150)")
    video.add_argument("--fps", type=float, default=None, help="frame rate of the videos (default 30)")
    video.add_argument("--shake", type=float, default=None, help="camera shake std in px (default 0: still camera)")
    video.add_argument("--people", type=int, default=None,
                       help="people over a sequence (default: sparse 5, crowd 16)")


#: Options of image datasets that have no meaning for --video, and the reverse.
_IMAGE_ONLY = {"name": "--name", "train": "--train", "val": "--val", "paste_from": "--paste-from",
               "max_people": "--max-people", "png": "--png"}
_VIDEO_ONLY = {"sequences": "--sequences", "frames": "--frames", "fps": "--fps", "shake": "--shake",
               "people": "--people"}


def _check_mode(args: argparse.Namespace) -> None:
    wrong = _IMAGE_ONLY if args.video else _VIDEO_ONLY
    for field, flag in wrong.items():
        if getattr(args, field) not in (None, False):
            raise CLIError(f"{flag} does not apply {'to --video' if args.video else 'without --video'}")


def _run_video(args: argparse.Namespace) -> int:
    import numpy as np

    from erpose.data.synth.video import VIDEO_PRESETS, VideoConfig, generate_video

    preset = args.preset or "sparse"
    if preset not in VIDEO_PRESETS:
        raise CLIError(f"--preset {preset} is not a video preset; choose from {sorted(VIDEO_PRESETS)}")
    pick = lambda value, default: default if value is None else value  # noqa: E731
    config = VideoConfig(
        frames=pick(args.frames, 150), imgsz=pick(args.imgsz, 256), preset=preset, seed=pick(args.seed, 0),
        fps=pick(args.fps, 30.0), shake=pick(args.shake, 0.0), clutter=pick(args.clutter, 1.0), people=args.people,
        stature=tuple(args.stature) if args.stature is not None else None, skeleton=pick(args.skeleton, "coco17"),
    )
    sequences = pick(args.sequences, 1)
    start = time.perf_counter()
    paths = generate_video(args.out, sequences=sequences, config=config, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    tracks = labelled = visible = total = 0
    for path in paths:
        doc = json.loads(path.read_text())
        anns = doc["annotations"]
        tracks += len({a["track_id"] for a in anns})
        labelled += len(anns)
        v = np.array([a["keypoints"][2::3] for a in anns]).reshape(-1)
        visible += int((v == 2).sum())
        total += int((v > 0).sum())
    frames = sequences * config.frames
    print(f"SynthCrowd video: {sequences} sequences x {config.frames} frames at {config.imgsz} px, preset {preset}, "
          f"seed {config.seed}, shake {config.shake:g} px, in {seconds:.1f} s ({frames / seconds:.1f} frames/s)")
    print(f"  {tracks} tracks, {labelled / frames:.1f} labelled people/frame, "
          f"visible keypoints {visible / max(total, 1):.0%} of those in the frame -> {Path(args.out)}")
    return 0


def _resolve(args: argparse.Namespace) -> dict:
    from erpose.data.synth import get_preset

    base = get_preset(args.name) if args.name else None
    pick = lambda value, field, default: value if value is not None else (  # noqa: E731
        getattr(base, field) if base is not None else default)
    return {
        "train": pick(args.train, "train", 2000), "val": pick(args.val, "val", 500),
        "imgsz": pick(args.imgsz, "imgsz", 320), "seed": pick(args.seed, "seed", 0),
        "preset": pick(args.preset, "density", "mixed"), "skeleton": pick(args.skeleton, "skeleton", "coco17"),
        "stature": tuple(args.stature) if args.stature is not None else pick(None, "stature", None),
        "max_people": pick(args.max_people, "max_people", None),
        "clutter": pick(args.clutter, "clutter", 1.0),
    }


def run(args: argparse.Namespace) -> int:
    from erpose.data.synth import generate

    _check_mode(args)
    if args.video:
        return _run_video(args)
    opts = _resolve(args)
    if args.paste_from:
        json_path, image_dir = args.paste_from
        if not Path(json_path).is_file():
            raise CLIError(f"--paste-from: annotation file {json_path} not found")
    start = time.perf_counter()
    root = generate(args.out, workers=args.workers, paste_from=tuple(args.paste_from) if args.paste_from else None,
                    progress=sys.stderr.isatty(), image_format="png" if args.png else "jpg", **opts)
    seconds = time.perf_counter() - start
    meta = json.loads((root / "synth.json").read_text())
    total = opts["train"] + opts["val"]
    print(f"SynthCrowd: {total} images ({opts['train']} train / {opts['val']} val) at {opts['imgsz']} px, "
          f"preset {opts['preset']}, seed {opts['seed']}, in {seconds:.1f} s ({total / seconds:.1f} img/s, "
          f"{args.workers} workers) -> {root}")
    for split, st in meta["statistics"].items():
        ci = st["crowd_index"]
        easy, medium, hard = ci["easy_medium_hard"]
        print(f"  {split:5s}: {st['persons']} persons, {st['persons_per_image']['mean']:.1f}/image "
              f"(max {st['persons_per_image']['max']}), visible keypoints {st['visible_fraction']:.0%}; "
              f"crowd index mean {ci['mean']:.2f}, p10/p50/p90 {'/'.join(f'{q:.2f}' for q in ci['p10_p50_p90'])}, "
              f"easy/medium/hard {easy:.0%}/{medium:.0%}/{hard:.0%}")
    print(f"  data YAML: {root / 'data.yaml'}; COCO JSON: {root / 'annotations'}")
    return 0
