"""Object keypoint similarity (COCO definition) as pure, vectorised torch functions.

``OKS = sum_k [v_k > 0] exp(-d_k^2 / (2 A (2 sigma_k)^2)) / sum_k [v_k > 0]`` with ``d_k`` the
pixel distance, ``A`` the ground-truth area and ``sigma_k`` the per-keypoint constant; this is
pycocotools' ``computeOks`` for a ground truth with labelled keypoints.
"""

from __future__ import annotations

import torch

from erpose.skeleton import BOX_AREA_FACTOR


def keypoint_extent_boxes(keypoints: torch.Tensor) -> torch.Tensor:
    """Tight boxes around labelled keypoints.

    Args:
        keypoints: (..., K, 3) x, y, v; keypoints with v <= 0 are ignored.

    Returns:
        (..., 4) x1, y1, x2, y2; all zeros where no keypoint is labelled.
    """
    labelled = keypoints[..., 2] > 0
    big = torch.finfo(keypoints.dtype).max
    xy = keypoints[..., :2]
    lo = torch.where(labelled[..., None], xy, torch.full_like(xy, big)).amin(dim=-2)
    hi = torch.where(labelled[..., None], xy, torch.full_like(xy, -big)).amax(dim=-2)
    boxes = torch.cat([lo, hi], dim=-1)
    return torch.where(labelled.any(dim=-1, keepdim=True), boxes, torch.zeros_like(boxes))


def keypoint_extent_areas(keypoints: torch.Tensor) -> torch.Tensor:
    """``BOX_AREA_FACTOR`` x area of the tight keypoint box, (..., K, 3) -> (...)."""
    boxes = keypoint_extent_boxes(keypoints)
    return BOX_AREA_FACTOR * (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def oks_terms(
    pred_xy: torch.Tensor, gt_keypoints: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor, eps: float = 1e-9
) -> torch.Tensor:
    """Per-keypoint ``u_k^2 = d_k^2 / (2 A (2 sigma_k)^2)`` for aligned predictions and ground truths.

    Args:
        pred_xy: (..., K, 2) predicted keypoints, pixels.
        gt_keypoints: (..., K, 3) ground truth x, y, v (broadcastable with ``pred_xy``).
        areas: (...) ground-truth areas, pixels^2.
        sigmas: (K,) OKS sigmas.

    Returns:
        (..., K) non-negative ``u^2``; the per-keypoint similarity is ``exp(-u^2)``.
    """
    d2 = (pred_xy - gt_keypoints[..., :2]).pow(2).sum(dim=-1)
    variances = (2.0 * sigmas) ** 2
    return d2 / (2.0 * variances * (areas[..., None] + eps))


def oks(
    pred_xy: torch.Tensor, gt_keypoints: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor, eps: float = 1e-9
) -> torch.Tensor:
    """OKS of aligned pairs, (..., K, 2) x (..., K, 3) -> (...); 0 where no keypoint is labelled."""
    labelled = (gt_keypoints[..., 2] > 0).to(pred_xy.dtype)
    # exp(-80) is ~1e-35: clamping changes nothing measurable but keeps exp out of denormals,
    # which are an order of magnitude slower on CPU.
    u2 = oks_terms(pred_xy, gt_keypoints, areas, sigmas, eps).clamp(max=80.0)
    similarity = torch.exp(-u2) * labelled
    return similarity.sum(dim=-1) / labelled.sum(dim=-1).clamp(min=1.0)


def pairwise_oks(
    pred_xy: torch.Tensor, gt_keypoints: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor, eps: float = 1e-9
) -> torch.Tensor:
    """OKS of every prediction against every ground truth.

    Args:
        pred_xy: (..., P, K, 2) predictions, pixels.
        gt_keypoints: (..., G, K, 3) ground truths.
        areas: (..., G) ground-truth areas.
        sigmas: (K,).

    Returns:
        (..., G, P) OKS values in [0, 1].
    """
    return oks(pred_xy.unsqueeze(-4), gt_keypoints.unsqueeze(-3), areas.unsqueeze(-1), sigmas, eps)
