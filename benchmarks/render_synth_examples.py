"""Render SynthCrowd example images with their labels drawn, for docs/images/.

Usage: python benchmarks/render_synth_examples.py [--out docs/images] [--paste-from COCO_JSON IMAGE_DIR]

Each picture is the generated image (left) and the same image with the skeletons drawn (right):
green limbs, keypoints red when visible (v = 2) and blue when occluded (v = 1), and the visible-body
box in yellow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from erpose.data.synth import render_scene
from erpose.data.synth.paste import PasteBank
from erpose.skeleton import get_skeleton


def draw_labels(image: np.ndarray, keypoints: np.ndarray, boxes: np.ndarray, skeleton_name: str) -> np.ndarray:
    """The image with boxes, limbs and keypoints drawn (v = 2 red, v = 1 blue)."""
    out = image.copy()
    limbs = get_skeleton(skeleton_name).limbs
    for person, (x, y, w, h) in zip(keypoints, boxes):
        cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), (0, 220, 255), 1)
        for a, b in limbs:
            if person[a, 2] > 0 and person[b, 2] > 0:
                pa, pb = np.round(person[[a, b], :2]).astype(int)
                cv2.line(out, tuple(pa.tolist()), tuple(pb.tolist()), (0, 200, 0), 1, cv2.LINE_AA)
        for x_k, y_k, v in person:
            if v > 0:
                cv2.circle(out, (round(x_k), round(y_k)), 2, (0, 0, 255) if v == 2 else (255, 64, 0), -1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--format", default="jpg", choices=["jpg", "png"])
    parser.add_argument("--paste-from", nargs=2, default=None, metavar=("COCO_JSON", "IMAGE_DIR"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("synth_sparse", "sparse", 7, "coco17", None), ("synth_mixed", "mixed", 13, "coco17", None),
            ("synth_crowd", "crowd", 7, "coco17", None), ("synth_crowdpose14", "crowd", 8, "crowdpose14", None)]
    if args.paste_from:
        jobs.append(("synth_paste", "crowd", 5, "coco17", PasteBank.load(*args.paste_from)))
    for name, density, seed, skeleton, bank in jobs:
        scene = render_scene(np.random.default_rng(seed), args.imgsz, density, skeleton, paste_bank=bank)
        panel = np.hstack([scene.image, draw_labels(scene.image, scene.keypoints, scene.boxes, skeleton)])
        cv2.imwrite(str(out / f"{name}.{args.format}"), panel, [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"{out / name}.{args.format}: {len(scene.keypoints)} persons, crowd index {scene.crowd_index:.2f}")


if __name__ == "__main__":
    main()
