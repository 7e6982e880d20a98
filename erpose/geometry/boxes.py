"""Box operations used only by the box-driven baseline (B0): IoU, CIoU and DFL distance coding.

All boxes are ``x1, y1, x2, y2``. Distances are ``left, top, right, bottom`` from an anchor point
to the box sides, in whatever unit the caller uses (the DFL head works in grid units, i.e. pixels
divided by the level stride).
"""

from __future__ import annotations

import math

import torch


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (...) areas; degenerate boxes give 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of aligned box pairs.

    Args:
        boxes1: (..., 4) x1y1x2y2.
        boxes2: (..., 4) x1y1x2y2, broadcastable with ``boxes1``.

    Returns:
        (...) IoU in [0, 1].
    """
    lo = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    hi = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=-1)
    return inter / (box_areas(boxes1) + box_areas(boxes2) - inter + eps)


def pairwise_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every box in ``boxes1`` (..., N, 4) against every box in ``boxes2`` (..., M, 4) -> (..., N, M)."""
    return box_iou(boxes1.unsqueeze(-2), boxes2.unsqueeze(-3), eps)


def complete_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al., 2020) of aligned box pairs.

    ``CIoU = IoU - rho^2 / c^2 - alpha * v`` with ``rho`` the distance between the box centres,
    ``c`` the diagonal of the smallest enclosing box, ``v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2``
    and ``alpha = v / (1 - IoU + v)``; ``alpha`` is treated as a constant in the backward pass,
    as in the paper.

    Args:
        boxes1: (..., 4) x1y1x2y2 (predictions).
        boxes2: (..., 4) x1y1x2y2 (targets), broadcastable.

    Returns:
        (...) CIoU in [-1.5, 1]; equals 1 only for identical boxes.
    """
    iou = box_iou(boxes1, boxes2, eps)
    w1 = boxes1[..., 2] - boxes1[..., 0]
    h1 = boxes1[..., 3] - boxes1[..., 1]
    w2 = boxes2[..., 2] - boxes2[..., 0]
    h2 = boxes2[..., 3] - boxes2[..., 1]
    enclosing = torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) - torch.minimum(boxes1[..., :2], boxes2[..., :2])
    c2 = enclosing.pow(2).sum(dim=-1) + eps
    centre_delta = (boxes1[..., :2] + boxes1[..., 2:]) - (boxes2[..., :2] + boxes2[..., 2:])
    rho2 = centre_delta.pow(2).sum(dim=-1) / 4.0
    v = (4.0 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1.0 + eps))
    return iou - (rho2 / c2 + v * alpha)


def boxes_to_distances(anchor_points: torch.Tensor, boxes: torch.Tensor, max_distance: float) -> torch.Tensor:
    """Box sides as distances from anchor points: the DFL regression target.

    Args:
        anchor_points: (..., 2) anchor centres (same unit as ``boxes``, grid units for DFL).
        boxes: (..., 4) x1y1x2y2, broadcastable.
        max_distance: the largest representable distance, ``reg_max - 1`` bins.

    Returns:
        (..., 4) left, top, right, bottom clamped to ``[0, max_distance - 0.01]`` so that the upper
        of the two neighbouring bins always exists.
    """
    distances = torch.cat([anchor_points - boxes[..., :2], boxes[..., 2:] - anchor_points], dim=-1)
    return distances.clamp(min=0.0, max=max_distance - 0.01)


def distances_to_boxes(anchor_points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Inverse of ``boxes_to_distances``: (..., 2) points and (..., 4) ltrb -> (..., 4) x1y1x2y2."""
    return torch.cat([anchor_points - distances[..., :2], anchor_points + distances[..., 2:]], dim=-1)


def distribution_to_distances(logits: torch.Tensor) -> torch.Tensor:
    """Expected distance of DFL bin logits: (..., reg_max) -> (...), in bins (softmax expectation)."""
    bins = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (logits.softmax(dim=-1) * bins).sum(dim=-1)
