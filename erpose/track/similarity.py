"""Pairwise similarities between detections and tracks: OKS of poses, IoU of keypoint boxes (numpy).

Both take poses as (n, K, 2) positions with an (n, K) boolean "seen" mask, so the tracker can
swap one for the other without changing anything else.
"""

from __future__ import annotations

import numpy as np

#: A person's segmentation area over its keypoint-box area (as in ``erpose.geometry.oks``).
AREA_FROM_BOX = 0.53


def masked_boxes(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Tight boxes around the seen keypoints.

    Args:
        xy: (n, K, 2) pixels.
        seen: (n, K) bool.

    Returns:
        (n, 4) float64 x1, y1, x2, y2; all zeros for a person with no seen keypoint.
    """
    pad = np.where(seen, 0.0, np.inf)  # unseen keypoints go to +-inf and drop out of min / max
    x, y = xy[..., 0], xy[..., 1]
    boxes = np.stack([(x + pad).min(axis=1), (y + pad).min(axis=1), (x - pad).max(axis=1), (y - pad).max(axis=1)],
                     axis=1)
    return np.where(seen.any(axis=1, keepdims=True), boxes, 0.0)


def pairwise_oks(
    det_xy: np.ndarray, det_seen: np.ndarray, trk_xy: np.ndarray, trk_seen: np.ndarray,
    sigmas: np.ndarray, min_area: float = 32.0,
) -> np.ndarray:
    """OKS between every detection and every track's predicted pose.

    The track plays the ground truth's part: its keypoint-box area (x ``AREA_FROM_BOX``, at least
    ``min_area``) sets the scale, and only keypoints seen in both count. A pair with no keypoint
    in common has OKS 0.

    Args:
        det_xy: (n, K, 2) detections, pixels. det_seen: (n, K) bool.
        trk_xy: (t, K, 2) predicted track poses. trk_seen: (t, K) bool.
        sigmas: (K,) OKS sigmas.
        min_area: area floor, pixels^2.

    Returns:
        (n, t) float64 in [0, 1].
    """
    boxes = masked_boxes(trk_xy, trk_seen)
    areas = np.maximum(AREA_FROM_BOX * (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), min_area)
    # -1 / (2 A (2 sigma)^2) per track and keypoint, zero where the track has not seen it.
    scale = -1.0 / (2.0 * (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2 * areas[:, None]) * trk_seen
    # float32 for the (n, t, K) part: exp is SIMD-vectorised for float32 on AVX2 CPUs (about 6x
    # faster than float64 here), and an association does not need more than 7 digits.
    det32, trk32 = det_xy.astype(np.float32), trk_xy.astype(np.float32)
    dx = det32[:, None, :, 0] - trk32[None, :, :, 0]  # (n, t, K); x and y apart: no reduction over 2
    dy = det32[:, None, :, 1] - trk32[None, :, :, 1]
    # exp(0) = 1 where the track has not seen a keypoint; the masks remove those terms.
    similarity = np.exp((dx * dx + dy * dy) * scale.astype(np.float32)[None]) * trk_seen[None]
    seen_det = det_seen.astype(np.float32)
    total = np.matmul(similarity, seen_det[:, :, None])[..., 0]  # (n, t, K) @ (n, K, 1): sum over K
    return total.astype(np.float64) / np.maximum(seen_det.astype(np.float64) @ trk_seen.T, 1.0)


def pairwise_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes_a`` (n, 4) with every box in ``boxes_b`` (t, 4), x1y1x2y2 -> (n, t)."""
    lo = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    hi = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.clip(hi - lo, 0.0, None).prod(axis=-1)
    area_a = np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0.0, None).prod(axis=-1)
    area_b = np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0.0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def pairwise_box_iou(det_xy: np.ndarray, det_seen: np.ndarray, trk_xy: np.ndarray, trk_seen: np.ndarray) -> np.ndarray:
    """IoU of the detections' and tracks' keypoint-derived boxes, (n, t) (the box baseline)."""
    return pairwise_iou(masked_boxes(det_xy, det_seen), masked_boxes(trk_xy, trk_seen))
