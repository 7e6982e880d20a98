"""Label writers: COCO keypoint JSON, YOLO-pose label lines and data YAML, and the crowd index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from erpose.files import atomic_write_text
from erpose.skeleton import Skeleton


def crowd_index(keypoints: np.ndarray, boxes: np.ndarray) -> float:
    """CrowdPose crowd index of one image (Li et al., CrowdPose, CVPR 2019, eq. 1).

    For each person i with labelled keypoints, N_b(i) = number of labelled keypoints of *other*
    persons inside i's box and N_a(i) = its own number of labelled keypoints; the index is the mean
    of N_b(i) / N_a(i) over those persons, rounded to 2 decimals as in crowdpose_val.json.

    Args:
        keypoints: (N, K, 3) x, y, v (v > 0 = labelled).
        boxes: (N, 4) x, y, w, h.

    Returns:
        crowd index (0.0 with fewer than two persons).
    """
    labelled = keypoints[..., 2] > 0  # (N, K)
    own = labelled.sum(1)
    valid = own > 0
    if valid.sum() == 0:
        return 0.0
    x, y = keypoints[None, :, :, 0], keypoints[None, :, :, 1]  # (1, N, K): keypoints of person j
    bx, by, bw, bh = (boxes[:, c, None, None] for c in range(4))  # (N, 1, 1): box of person i
    inside = (x >= bx) & (x <= bx + bw) & (y >= by) & (y <= by + bh) & labelled[None]
    n = keypoints.shape[0]
    inside &= ~np.eye(n, dtype=bool)[..., None]  # other persons only
    ratio = inside.sum((1, 2))[valid] / own[valid]
    return round(float(ratio.mean()), 2)


def num_keypoints_field(keypoints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """COCO ``num_keypoints``: labelled keypoints; for CrowdPose-14 only the 12 body joints count,
    as in crowdpose_val.json (head and neck excluded)."""
    labelled = keypoints[..., 2] > 0
    if skeleton.name == "crowdpose14":
        labelled = labelled[..., :12]
    return labelled.sum(-1)


def coco_annotations(keypoints: np.ndarray, boxes: np.ndarray, areas: np.ndarray, image_id: int,
                     first_id: int, skeleton: Skeleton) -> list[dict]:
    """COCO keypoint annotation dicts for one image (ids first_id, first_id + 1, ...)."""
    num = num_keypoints_field(keypoints, skeleton)
    out = []
    for i in range(keypoints.shape[0]):
        kp = keypoints[i].copy()
        out.append({
            "id": first_id + i,
            "image_id": image_id,
            "category_id": 1,
            "iscrowd": 0,
            "num_keypoints": int(num[i]),
            "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
            "bbox": [round(float(v), 2) for v in boxes[i]],
            "area": float(areas[i]),
        })
    return out


def coco_document(images: list[dict], annotations: list[dict], skeleton: Skeleton, info: dict) -> dict:
    """A whole COCO keypoint JSON document (images carry ``crowdIndex``)."""
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{
            "id": 1, "name": "person", "supercategory": "person",
            "keypoints": list(skeleton.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in skeleton.limbs],  # COCO skeleton is 1-based
        }],
    }


def yolo_label_text(keypoints: np.ndarray, boxes: np.ndarray, width: int, height: int) -> str:
    """YOLO-pose label lines: ``0 cx cy w h x1 y1 v1 ...`` normalised to [0, 1], 6 decimals."""
    if keypoints.shape[0] == 0:
        return ""
    scale = np.array([width, height], np.float64)
    b = boxes.astype(np.float64)
    centre = (b[:, :2] + b[:, 2:] / 2) / scale
    size = b[:, 2:] / scale
    kp = keypoints.astype(np.float64).copy()
    kp[..., :2] /= scale
    rows = np.concatenate([np.zeros((len(b), 1)), centre, size, kp.reshape(len(b), -1)], 1)
    lines = []
    for row in rows:
        cells = ["0"] + [f"{v:.6f}" for v in row[1:5]]
        cells += [f"{v:.0f}" if k % 3 == 2 else f"{v:.6f}" for k, v in enumerate(row[5:])]
        lines.append(" ".join(cells))
    return "\n".join(lines) + "\n"


def data_yaml(root: Path, skeleton: Skeleton) -> str:
    """Ultralytics YOLO-pose data YAML text for a dataset at ``root``."""
    doc = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/val",
        "kpt_shape": [skeleton.num_keypoints, 3],
        "flip_idx": list(skeleton.flip_idx),
        "names": {0: "person"},
        "kpt_names": {0: list(skeleton.keypoint_names)},
        "kpt_oks_sigmas": [float(s) for s in skeleton.sigmas],
        "skeleton_name": skeleton.name,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def dump_json(path: Path, doc: dict) -> None:
    """Deterministic compact JSON (key order as built, no spaces), written atomically."""
    atomic_write_text(path, json.dumps(doc, separators=(",", ":")))
