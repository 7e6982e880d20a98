"""NMS in numpy for the ONNX graphs that still need it (ER-Pose needs none).

The box-driven baseline (B0) exports its raw anchors, as ultralytics deployments do, and the
runtime applies a score threshold and greedy box NMS here; the ablation steps B1..B4 get OKS-NMS.
Semantics match ``erpose.geometry.nms`` (and ``torchvision.ops.nms``): an item is dropped when
its similarity to a better kept item is strictly greater than the threshold.
"""

from __future__ import annotations

import numpy as np

from erpose.skeleton import BOX_AREA_FACTOR

#: Guards the OKS denominator for a degenerate (zero-area) pose, as the torch OKS does.
OKS_EPS = 1e-9


def box_iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box (4,) against (N, 4) boxes; returns (N,). Empty boxes give 0."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=1)
    area = np.clip(box[2:] - box[:2], 0.0, None).prod()
    areas = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None).prod(axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS.

    Args:
        boxes: (N, 4) x1, y1, x2, y2 pixels.
        scores: (N,) scores.
        iou: suppress boxes whose IoU with a kept box is > ``iou``.
        max_keep: stop after this many kept boxes (the rest could only be dropped by top-k later).

    Returns:
        (M,) int64 indices of kept boxes, by descending score.
    """
    order = np.argsort(-scores, kind="stable")
    boxes = np.asarray(boxes, dtype=np.float32)
    keep: list[int] = []
    # One iteration per *kept* box, each vectorised over the remaining candidates: greedy NMS is
    # sequential by definition, and kept boxes are few (<= max_det) compared to candidates.
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou_one_to_many(boxes[best], boxes[rest]) <= iou]
    return np.asarray(keep, dtype=np.int64)


def oks_nms(
    keypoints: np.ndarray, scores: np.ndarray, sigmas: np.ndarray, threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy OKS-NMS (the steps B1..B4 of the ablation; ``erpose.geometry.nms.oks_nms`` in numpy).

    The better pose plays the ground truth: all its keypoints count and its area is 0.53 x the
    area of its tight keypoint box; a pose is dropped when its OKS to a kept, better pose is
    greater than ``threshold``.

    Args:
        keypoints: (N, K, 2 or 3) poses, pixels (a third column is ignored).
        scores: (N,) scores.
        sigmas: (K,) OKS sigmas.
        threshold: OKS threshold in [0, 1].
        max_keep: stop after this many kept poses.

    Returns:
        (M,) int64 indices of kept poses, by descending score.
    """
    order = np.argsort(-scores, kind="stable")
    xy = np.asarray(keypoints, dtype=np.float32)[..., :2]
    extent = xy.max(axis=1) - xy.min(axis=1)  # (N, 2)
    areas = BOX_AREA_FACTOR * extent[:, 0] * extent[:, 1]
    variances = (2.0 * np.asarray(sigmas, dtype=np.float32)) ** 2  # (K,)
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        d2 = ((xy[rest] - xy[best]) ** 2).sum(axis=-1)  # (R, K)
        similarity = np.exp(-d2 / (2.0 * variances * (areas[best] + OKS_EPS))).mean(axis=-1)
        order = rest[similarity <= threshold]
    return np.asarray(keep, dtype=np.int64)


def nms_poses(
    raw: np.ndarray,
    *,
    kind: str,
    raw_columns: dict[str, int],
    sigmas: np.ndarray,
    conf: float,
    iou: float,
    max_det: int,
    max_candidates: int = 1000,
) -> np.ndarray:
    """Raw anchors of an NMS graph -> the ER-Pose output layout: threshold, NMS, top-k.

    Mirrors ``PoseModel.postprocess``: keep anchors with score > ``conf``, the best
    ``max_candidates`` of them enter the NMS, at most ``max_det`` survive.

    Args:
        raw: (B, A, C) graph output; ``raw_columns`` gives where the score probability
            (``"score"``), the 3K keypoint values x, y, conf (``"keypoints"``) and, for box NMS,
            the x1y1x2y2 box (``"box"``) start.
        kind: ``"box"`` (IoU NMS, the baseline B0) or ``"oks"`` (OKS-NMS, B1..B4).
        raw_columns: column offsets, from the file's metadata.
        sigmas: (K,) OKS sigmas (used by ``"oks"``).
        conf: score threshold.
        iou: IoU (box) or OKS threshold.
        max_det: rows of the output.
        max_candidates: at most this many best-scored anchors enter the NMS.

    Returns:
        (B, max_det, 1 + 3K) float32: score, then x, y, conf per keypoint, sorted by score;
        rows past the kept people are zeros.
    """
    if raw.ndim != 3:
        raise ValueError(f"raw output must be (B, A, C), got {raw.shape}")
    if kind not in ("box", "oks"):
        raise ValueError(f"unknown NMS kind {kind!r}, expected 'box' or 'oks'")
    num_keypoints = len(sigmas)
    score_at, kpt_at = raw_columns["score"], raw_columns["keypoints"]
    kpt_cols = slice(kpt_at, kpt_at + 3 * num_keypoints)
    out = np.zeros((raw.shape[0], max_det, 1 + 3 * num_keypoints), dtype=np.float32)
    for b, anchors in enumerate(raw):  # images are independent; batch is small at inference
        scores = anchors[:, score_at]
        candidates = np.flatnonzero(scores > conf)
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")[:max_candidates]]
        if candidates.size == 0:
            continue
        picked = anchors[candidates]
        if kind == "box":
            box_at = raw_columns["box"]
            keep = box_nms(picked[:, box_at:box_at + 4], picked[:, score_at], iou, max_keep=max_det)
        else:
            poses = picked[:, kpt_cols].reshape(-1, num_keypoints, 3)
            keep = oks_nms(poses, picked[:, score_at], sigmas, iou, max_keep=max_det)
        rows = picked[keep]
        out[b, : len(keep), 0] = rows[:, score_at]
        out[b, : len(keep), 1:] = rows[:, kpt_cols]
    return out
