"""Anchor points: one per feature-map cell, at the cell centre, in grid units."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def make_anchor_points(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points of every level, concatenated level by level.

    Cells are numbered row-major inside a level (index ``y * W + x``), the order in which a
    ``(B, C, H, W)`` map flattens to ``(B, C, H * W)``.

    Args:
        feature_sizes: ``(H, W)`` of each level's feature map.
        strides: each level's stride, pixels per cell.
        dtype: dtype of the returned tensors.
        device: device of the returned tensors.

    Returns:
        anchor_points: (A, 2) ``(x + 0.5, y + 0.5)`` cell centres in grid units (METHOD.md's ``a``),
            ``A = sum(H * W)``.
        anchor_strides: (A,) the stride of each anchor point's level, pixels.
    """
    if len(feature_sizes) != len(strides):
        raise ValueError(f"{len(feature_sizes)} feature sizes for {len(strides)} strides")
    points, point_strides = [], []
    for (height, width), stride in zip(feature_sizes, strides):
        ys = torch.arange(height, dtype=dtype, device=device) + 0.5
        xs = torch.arange(width, dtype=dtype, device=device) + 0.5
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2))
        point_strides.append(torch.full((height * width,), float(stride), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(point_strides)
