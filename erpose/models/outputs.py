"""What a pose head returns in training mode: the contract between heads, assigners and losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BranchOutput:
    """Raw predictions of one head copy (o2m or o2o) over all A anchor points of all levels.

    Attributes:
        scores: (B, A) person-score logits.
        keypoints: (B, A, K, 3) x, y decoded in input pixels with ``(a + r) * s``, then the
            visibility logit.
        box_distributions: (B, A, 4, reg_max) DFL logits (box-driven baseline only, else None).
        boxes: (B, A, 4) decoded x1y1x2y2 input pixels (baseline only, else None).
    """

    scores: torch.Tensor
    keypoints: torch.Tensor
    box_distributions: torch.Tensor | None = None
    boxes: torch.Tensor | None = None


@dataclass
class HeadOutput:
    """Training-mode output of a pose head.

    Attributes:
        anchor_points: (A, 2) anchor-point centres in grid units (cell index + 0.5), level by level.
        strides: (A,) stride of each anchor point's level, pixels.
        o2m: the one-to-many branch (the only branch of heads without an o2o copy).
        o2o: the one-to-one branch, or None.
    """

    anchor_points: torch.Tensor
    strides: torch.Tensor
    o2m: BranchOutput
    o2o: BranchOutput | None = None

    @property
    def anchor_pixels(self) -> torch.Tensor:
        """(A, 2) anchor-point centres in input pixels."""
        return self.anchor_points * self.strides[:, None]
