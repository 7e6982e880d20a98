"""Greedy non-maximum suppression in pure torch: box NMS (IoU) and OKS-NMS (keypoints).

Greedy NMS keeps the best item, drops every item too similar to it, and repeats. Instead of a
Python loop over items, ``greedy_keep`` iterates a vectorised fixed point over the whole
similarity matrix: item ``j`` is kept iff no kept, better item suppresses it. Entry ``j``
depends only on entries before it, so iteration ``t`` settles entry ``t`` at the latest and the
loop runs as many times as the longest suppression chain (a handful in practice), not N.
"""

from __future__ import annotations

import torch

from erpose.geometry.oks import keypoint_extent_areas, pairwise_oks


def greedy_keep(similarity: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy suppression on items already sorted best first.

    Args:
        similarity: (N, N) ``similarity[i, j]`` of item j to better item i (only i < j is read).
        threshold: j is suppressed by a kept i when ``similarity[i, j] > threshold``.

    Returns:
        (N,) bool mask of kept items.
    """
    n = similarity.shape[0]
    # Float 0/1 matrix so that "is j suppressed by a kept i" is one matrix-vector product.
    suppresses = torch.triu(similarity > threshold, diagonal=1).to(torch.float32)
    keep = torch.ones(n, dtype=torch.float32, device=similarity.device)
    for _ in range(n + 1):
        new_keep = (keep @ suppresses == 0).to(torch.float32)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return keep.bool()


def pairwise_box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of every pair, (N, 4) x (M, 4) x1y1x2y2 -> (N, M)."""
    x1a, y1a, x2a, y2a = (c[:, None] for c in boxes_a.unbind(dim=1))
    x1b, y1b, x2b, y2b = boxes_b.unbind(dim=1)
    inter_w = (torch.minimum(x2a, x2b) - torch.maximum(x1a, x1b)).clamp_(min=0)
    inter_h = (torch.minimum(y2a, y2b) - torch.maximum(y1a, y1b)).clamp_(min=0)
    inter = inter_w * inter_h
    area_a = (x2a - x1a).clamp(min=0) * (y2a - y1a).clamp(min=0)
    area_b = (x2b - x1b).clamp(min=0) * (y2b - y1b).clamp(min=0)
    return inter / (area_a + area_b - inter + eps)


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy box NMS.

    Args:
        boxes: (N, 4) x1, y1, x2, y2.
        scores: (N,) scores.
        iou_threshold: boxes with IoU above this with a kept, better box are dropped.

    Returns:
        (M,) int64 indices into the inputs of the kept boxes, best first.
    """
    order = scores.argsort(descending=True)
    sorted_boxes = boxes[order]
    keep = greedy_keep(pairwise_box_iou(sorted_boxes, sorted_boxes), iou_threshold)
    return order[keep]


def oks_nms(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    sigmas: torch.Tensor,
    threshold: float,
    areas: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy OKS-NMS: a pose is dropped when its OKS to a kept, better pose exceeds ``threshold``.

    The better pose plays the ground truth: every one of its keypoints counts, and its area is
    ``areas`` or, by default, 0.53 x the area of its tight keypoint box (METHOD.md's fallback).

    Args:
        keypoints: (N, K, 2 or 3) poses, pixels (a third column is ignored).
        scores: (N,) scores.
        sigmas: (K,) OKS sigmas.
        threshold: OKS threshold in [0, 1].
        areas: optional (N,) areas, pixels^2.

    Returns:
        (M,) int64 indices of the kept poses, best first.
    """
    order = scores.argsort(descending=True)
    xy = keypoints[order][..., :2]
    as_ground_truth = torch.cat((xy, torch.full_like(xy[..., :1], 2.0)), dim=-1)  # every keypoint labelled
    gt_areas = keypoint_extent_areas(as_ground_truth) if areas is None else areas[order]
    similarity = pairwise_oks(xy, as_ground_truth, gt_areas, sigmas.to(xy))  # (G = better i, P = j)
    keep = greedy_keep(similarity, threshold)
    return order[keep]


def nms_distillation_targets(
    scores: torch.Tensor,
    keypoints: torch.Tensor,
    sigmas: torch.Tensor,
    threshold: float = 0.5,
    min_score: float = 0.01,
    max_candidates: int = 300,
) -> torch.Tensor:
    """One-to-one score targets distilled from a one-to-many branch: its output after OKS-NMS.

    The anchors that OKS-NMS keeps get their own score as the target, every other anchor 0: an
    NMS-free branch trained on these reproduces the teacher's NMS output, ranking included, and
    needs no labels (unlabelled people in the image are the teacher's to find).

    Args:
        scores: (B, A) teacher score probabilities.
        keypoints: (B, A, K, 2 or 3) teacher keypoints, pixels.
        sigmas: (K,) OKS sigmas.
        threshold: OKS-NMS threshold.
        min_score: anchors scoring below this never become targets.
        max_candidates: best-scoring anchors per image that enter the NMS.

    Returns:
        (B, A) float targets in [0, 1].
    """
    targets = torch.zeros_like(scores)
    for image in range(scores.shape[0]):  # per image: NMS is a set operation within one image
        candidates = (scores[image] >= min_score).nonzero(as_tuple=True)[0]
        if candidates.numel() == 0:
            continue
        candidates = candidates[scores[image, candidates].argsort(descending=True)[:max_candidates]]
        kept = candidates[oks_nms(keypoints[image, candidates], scores[image, candidates], sigmas, threshold)]
        targets[image, kept] = scores[image, kept]
    return targets
