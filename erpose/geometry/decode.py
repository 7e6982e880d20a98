"""Decoding raw head outputs into input-pixel keypoints / boxes, and the eval-output layout.

The same functions run in PyTorch eval mode and inside the ONNX graph (export wraps the eval
path), so PyTorch/ONNX parity holds by construction.

Eval-output layout, per person: ``[score, x_0, y_0, v_0, ..., x_{K-1}, y_{K-1}, v_{K-1}]``
(``1 + 3K`` numbers): score probability, keypoints in input pixels, visibility probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def decode_keypoints(offsets: torch.Tensor, anchor_points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """METHOD.md's decoding ``(a + r) * s``.

    Args:
        offsets: (B, A, K, 2) raw offsets ``r`` in grid units.
        anchor_points: (A, 2) cell centres ``a`` in grid units, or (B, A, 2) per image.
        strides: (A,) level strides ``s``, pixels, or (B, A).

    Returns:
        (B, A, K, 2) keypoints x, y in input pixels.
    """
    return (anchor_points[..., None, :] + offsets) * strides[..., None, None]


def dfl_expectation(distributions: torch.Tensor) -> torch.Tensor:
    """Expected value of a distribution-focal-loss histogram over bins ``0 .. reg_max - 1``.

    Args:
        distributions: (..., reg_max) logits.

    Returns:
        (...) expectation in bin units (grid units for box sides).
    """
    bins = torch.arange(distributions.shape[-1], dtype=distributions.dtype, device=distributions.device)
    return distributions.softmax(dim=-1) @ bins


def decode_dfl_boxes(
    distributions: torch.Tensor, anchor_points: torch.Tensor, strides: torch.Tensor
) -> torch.Tensor:
    """Boxes from DFL side distances (left, top, right, bottom) around each anchor point.

    Args:
        distributions: (B, A, 4, reg_max) logits of the four side distances, grid units.
        anchor_points: (A, 2) cell centres, grid units.
        strides: (A,) level strides, pixels.

    Returns:
        (B, A, 4) x1, y1, x2, y2 in input pixels.
    """
    distances = dfl_expectation(distributions)  # (B, A, 4)
    top_left = anchor_points - distances[..., :2]
    bottom_right = anchor_points + distances[..., 2:]
    return torch.cat((top_left, bottom_right), dim=-1) * strides[:, None]


def pack_poses(scores: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Flatten scores and keypoints into the eval layout.

    Args:
        scores: (B, A) score probabilities.
        keypoints: (B, A, K, 3) x, y (input pixels) and visibility probability.

    Returns:
        (B, A, 1 + 3K) ``[score, x_0, y_0, v_0, ...]``.
    """
    return torch.cat((scores[..., None], keypoints.flatten(-2)), dim=-1)


def decode_topk(
    score_logits: torch.Tensor,
    offsets: torch.Tensor,
    visibility_logits: torch.Tensor,
    anchor_points: torch.Tensor,
    strides: torch.Tensor,
    max_det: int,
) -> torch.Tensor:
    """``select_topk(pack_poses(...), max_det)`` of the decoded poses, decoding only the kept rows.

    Ranking the scores first and decoding ``max_det`` rows instead of every anchor point takes
    the decode out of the inference profile (it was about 5 % of ER-Pose-n's ONNX run time at 640).

    Args:
        score_logits: (B, A) score logits.
        offsets: (B, A, K, 2) raw offsets in grid units.
        visibility_logits: (B, A, K).
        anchor_points: (A, 2) cell centres, grid units; strides: (A,) pixels.
        max_det: rows returned.

    Returns:
        (B, max_det, 1 + 3K) sorted by score, descending; zero rows past the A-th.
    """
    num_anchors = score_logits.shape[1]
    # Pad with zero scores so that k is a constant whatever the input size (see select_topk).
    scores, index = F.pad(score_logits.sigmoid(), (0, int(max_det))).topk(int(max_det), dim=1)
    valid = index < num_anchors
    index = torch.where(valid, index, torch.zeros_like(index))
    k = offsets.shape[2]
    picked_offsets = offsets.gather(1, index[..., None, None].expand(-1, -1, k, 2))
    picked_visibility = visibility_logits.gather(1, index[..., None].expand(-1, -1, k)).sigmoid()
    xy = decode_keypoints(picked_offsets, anchor_points[index], strides[index])
    rows = torch.cat((scores[..., None], torch.cat((xy, picked_visibility[..., None]), dim=-1).flatten(-2)), dim=-1)
    return rows * valid[..., None].to(rows.dtype)


def select_topk(poses: torch.Tensor, max_det: int) -> torch.Tensor:
    """The ``max_det`` highest-scoring rows per image, sorted by score (column 0), descending.

    Args:
        poses: (B, A, C) rows whose column 0 is the score.
        max_det: number of rows returned.

    Returns:
        (B, max_det, C); when ``A < max_det`` the tail is zero rows (score 0), so that the
        shape is fixed for export.
    """
    # Padding before top-k (rather than k = min(max_det, A)) keeps k a constant that does not
    # depend on the input size, so a dynamic-shape ONNX graph works at any resolution.
    padded = F.pad(poses, (0, 0, 0, int(max_det)))
    _, index = padded[..., 0].topk(int(max_det), dim=1)
    return padded.gather(1, index[..., None].expand(-1, -1, poses.shape[-1]))
