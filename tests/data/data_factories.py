"""Tiny generated COCO / YOLO-pose datasets for the data tests (written under tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def person(ann_id: int, image_id: int, kpts: list[tuple[float, float, int]], bbox=None, **extra) -> dict:
    """A COCO annotation with 17 keypoints: ``kpts`` fills the first ones, the rest are unlabelled."""
    flat = [v for p in kpts for v in p] + [0] * (3 * (17 - len(kpts)))
    labelled = sum(1 for p in kpts if p[2] > 0)
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "keypoints": flat,
           "num_keypoints": labelled, "area": 500.0, "bbox": bbox or [5, 5, 30, 30]}
    ann.update(extra)
    return ann


def make_coco(root: Path, annotations: list[dict] | None = None, images: list[dict] | None = None,
              write_images: bool = True) -> Path:
    """COCO layout under ``root``: annotations/person_keypoints_val.json + val/*.jpg (64x48 images)."""
    from erpose.skeleton import COCO17_NAMES

    if images is None:
        images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                  {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    if annotations is None:
        annotations = [
            person(10, 1, [(10, 12, 2), (20, 22, 1), (30, 32, 2)]),
            person(11, 1, [], bbox=[40, 5, 10, 10]),  # no keypoints -> ignore region
            person(12, 2, [(5, 6, 2)], area=100.0),
            {**person(13, 2, [], bbox=[0, 0, 20, 20]), "iscrowd": 1},  # crowd -> ignore region
        ]
    if write_images:
        for i, image in enumerate(images):
            write_image(root / "val" / image["file_name"], image["width"], image["height"], seed=i)
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES), "skeleton": [[16, 14]]}]}
    path = root / "annotations" / "person_keypoints_val.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def make_yolo(root: Path, labels: dict[str, str], kpt_shape=(3, 3), sizes: dict[str, tuple[int, int]] | None = None,
              **yaml_extra) -> Path:
    """YOLO-pose layout: images/train/<name>.jpg + labels/train/<name>.txt + data.yaml."""
    sizes = sizes or {}
    for i, (name, text) in enumerate(labels.items()):
        w, h = sizes.get(name, (100, 50))
        write_image(root / "images" / "train" / f"{name}.jpg", w, h, seed=i)
        if text is not None:
            label = root / "labels" / "train" / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    data = {"path": ".", "train": "images/train", "val": "images/train", "kpt_shape": list(kpt_shape),
            "flip_idx": list(range(kpt_shape[0])), "names": {0: "person"}}
    data["kpt_oks_sigmas"] = [0.05] * kpt_shape[0]  # silences the uniform-sigma warning
    data.update(yaml_extra)
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
