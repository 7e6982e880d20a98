"""Candidate anchors of each person for the assigners: which anchor points may be assigned to whom.

Pure, vectorised geometry: anchors inside a (ground-truth or keypoint) box, and the pyramid-level
gate that keeps a person on the levels whose stride fits its scale. ``erpose.geometry.assign``
intersects these with its own ignore-region and quality logic.
"""

from __future__ import annotations

import math

import torch

from erpose.geometry.oks import keypoint_extent_boxes


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Which points lie strictly inside which boxes: (A, 2) x (B, N, 4) -> (B, N, A) bool (NaN boxes: none)."""
    x, y = points[:, 0], points[:, 1]
    return (
        (x > boxes[..., 0:1] + eps)
        & (y > boxes[..., 1:2] + eps)
        & (x < boxes[..., 2:3] - eps)
        & (y < boxes[..., 3:4] - eps)
    )


def level_gate(areas: torch.Tensor, strides: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    """Pyramid levels whose stride fits each person's scale ``sqrt(A)``.

    A level of stride ``s`` is allowed when ``band[0] <= sqrt(A) / s <= band[1]``; the level whose
    ratio is closest (in log scale) to the band's geometric centre is always allowed, so tiny and
    huge persons keep one level.

    Args:
        areas: (B, N) person areas, pixels^2.
        strides: (A,) stride of each anchor point, pixels.
        band: (low, high) bounds on ``sqrt(A) / stride``.

    Returns:
        (B, N, A) bool.
    """
    levels, level_of_anchor = torch.unique(strides, return_inverse=True)
    ratio = areas.clamp(min=1.0).sqrt()[..., None] / levels  # (B, N, L)
    allowed = (ratio >= band[0]) & (ratio <= band[1])
    best = (ratio.log() - 0.5 * math.log(band[0] * band[1])).abs().argmin(dim=-1)
    allowed |= torch.nn.functional.one_hot(best, levels.numel()).bool()
    return allowed.index_select(-1, level_of_anchor)  # faster than advanced indexing on CPU


def keypoint_candidates(
    anchor_pixels: torch.Tensor,
    strides: torch.Tensor,
    gt_keypoints: torch.Tensor,
    margin: float,
    margin_strides: float,
    fallback_radius: float,
) -> torch.Tensor:
    """Anchor points inside each person's tight keypoint box, expanded.

    The box grows on every side by ``margin`` times its own width/height plus ``margin_strides``
    times the stride of the anchor's level; with ``margin_strides >= 0.5`` every labelled keypoint
    inside the image has at least its own cell as a candidate on every level. Persons with one or
    two labelled keypoints (a degenerate box) also take the anchors within ``fallback_radius``
    strides (Chebyshev distance) of each labelled keypoint.

    Args:
        anchor_pixels: (A, 2) anchor centres, pixels.
        strides: (A,) pixels.
        gt_keypoints: (B, N, K, 3).

    Returns:
        (B, N, A) bool.
    """
    ext = keypoint_extent_boxes(gt_keypoints)  # (B, N, 4)
    pad = margin * (ext[..., 2:] - ext[..., :2])  # (B, N, 2)
    lo = (ext[..., :2] - pad)[..., None]  # (B, N, 2, 1)
    hi = (ext[..., 2:] + pad)[..., None]
    cell = margin_strides * strides
    x, y = anchor_pixels[:, 0], anchor_pixels[:, 1]
    # Per-axis (B, N, A) comparisons against (A,) vectors: cheaper than a (B, N, A, 2) tensor.
    inside = (x + cell >= lo[:, :, 0]) & (x - cell <= hi[:, :, 0]) & (y + cell >= lo[:, :, 1]) & (y - cell <= hi[:, :, 1])

    labelled = gt_keypoints[..., 2] > 0
    few = (labelled.sum(dim=-1) > 0) & (labelled.sum(dim=-1) <= 2)
    if few.any():
        b, n = few.nonzero(as_tuple=True)
        # The (at most two) labelled keypoints of each such person, padded with its first one.
        order = labelled[b, n].to(torch.int8).argsort(dim=-1, descending=True, stable=True)[:, :2]
        picked = gt_keypoints[b, n].gather(1, order[..., None].expand(-1, -1, 3))  # (F, 2, 3)
        picked_xy = torch.where(picked[..., 2:] > 0, picked[..., :2], picked[:, :1, :2])
        chebyshev = (anchor_pixels[None, :, None] - picked_xy[:, None]).abs().amax(dim=-1)  # (F, A, 2)
        near = (chebyshev <= fallback_radius * strides[None, :, None]).any(dim=-1)
        inside[b, n] |= near
    return inside
