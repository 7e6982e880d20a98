"""The YOLO-Pose baseline head (ablation B0) and its box-free variant (B1).

Per level, as the ultralytics family sizes it from the P3 channel count ``c0``: a box branch
(two 3x3 ``Conv``s of width ``max(16, c0 // 4, 4 * reg_max)``, then 4 DFL histograms of
``reg_max`` bins), a class branch (two depth-wise-separable blocks of width ``c0``, one logit
for the single class "person") and a keypoint branch (two 3x3 ``Conv``s of width
``max(c0 // 4, 3K)``, then 3K outputs: x, y offsets and a visibility logit per keypoint).

Keypoints decode with ``(a + r) * s`` like the ER head, not with ultralytics' ``(a - 0.5 + 2r) * s``:
both reach the same positions, and a shared decoding keeps the B0 -> B5 ablation about the
head and the assignment, not about the offset parametrisation.
"""

from __future__ import annotations

import torch
from torch import nn

from erpose.geometry.anchors import make_anchor_points
from erpose.geometry.decode import decode_dfl_boxes, decode_keypoints, pack_poses
from erpose.models.blocks import Conv, light_score_branch, score_prior_bias
from erpose.models.outputs import BranchOutput, HeadOutput


def default_yolopose_widths(first_channels: int, num_keypoints: int, reg_max: int) -> tuple[int, int, int]:
    """``(box, class, keypoint)`` branch widths from the P3 channel count (ultralytics' formulas)."""
    box = max(16, first_channels // 4, 4 * reg_max)
    score = max(first_channels, 1)
    keypoint = max(first_channels // 4, 3 * num_keypoints)
    return box, score, keypoint


def _conv_branch(in_channels: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(Conv(in_channels, width, 3), Conv(width, width, 3), nn.Conv2d(width, outputs, 1))


class YOLOPoseHead(nn.Module):
    """Box-driven baseline head: box (DFL), class and keypoint branches; one copy (o2m), needs NMS.

    Args:
        in_channels: channels of the neck maps, one per stride.
        strides: level strides, pixels.
        num_keypoints: K.
        box: keep the box branch (B0); without it (B1) the head predicts score and keypoints only.
        reg_max: DFL bins per box side.
        box_width, score_width, keypoint_width: branch widths (0: ``default_yolopose_widths``).
        score_prior: prior probability for the class bias (0: YOLO rule).

    Forward (``features``: ``{stride: (B, C, H, W)}``):
        training: ``HeadOutput`` with ``o2m`` only (boxes and DFL logits filled when ``box``).
        eval: (B, A, 1 + 3K) or, with ``box``, (B, A, 1 + 3K + 4): score probability, keypoints
        (x, y pixels, visibility probability), then x1, y1, x2, y2 pixels; NMS is left to
        ``PoseModel.postprocess``.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        num_keypoints: int,
        *,
        box: bool = True,
        reg_max: int = 16,
        box_width: int = 0,
        score_width: int = 0,
        keypoint_width: int = 0,
        score_prior: float = 0.0,
    ) -> None:
        super().__init__()
        auto_box, auto_score, auto_keypoint = default_yolopose_widths(in_channels[0], num_keypoints, reg_max)
        self.strides = tuple(int(s) for s in strides)
        self.num_keypoints = num_keypoints
        self.reg_max = reg_max
        self.box_width = box_width or auto_box
        self.score_width = score_width or auto_score
        self.keypoint_width = keypoint_width or auto_keypoint
        self.scores = nn.ModuleList(light_score_branch(c, self.score_width) for c in in_channels)
        self.keypoints = nn.ModuleList(
            _conv_branch(c, self.keypoint_width, 3 * num_keypoints) for c in in_channels
        )
        self.boxes = (
            nn.ModuleList(_conv_branch(c, self.box_width, 4 * reg_max) for c in in_channels) if box else None
        )
        with torch.no_grad():
            for branch, stride in zip(self.scores, self.strides):
                branch[-1].bias.fill_(score_prior_bias(stride, score_prior))
            for branch in self.boxes or ():
                branch[-1].bias.fill_(1.0)  # the YOLO box-branch init: every side starts near 1 cell

    @property
    def needs_nms(self) -> bool:
        return True

    @property
    def has_box(self) -> bool:
        return self.boxes is not None

    def deploy(self) -> None:
        """Nothing to drop: the single copy is the inference graph."""

    def forward(self, features: dict[int, torch.Tensor]) -> HeadOutput | torch.Tensor:
        maps = [features[s] for s in self.strides]
        b, k = maps[0].shape[0], self.num_keypoints
        anchor_points, strides = make_anchor_points(
            [(m.shape[2], m.shape[3]) for m in maps], self.strides, dtype=maps[0].dtype, device=maps[0].device
        )
        scores = torch.cat([branch(x).flatten(1) for x, branch in zip(maps, self.scores)], 1)  # (B, A)
        raw_keypoints = torch.cat(
            [branch(x).view(b, k, 3, -1).permute(0, 3, 1, 2) for x, branch in zip(maps, self.keypoints)], 1
        )  # (B, A, K, 3)
        xy = decode_keypoints(raw_keypoints[..., :2], anchor_points, strides)
        distributions = boxes = None
        if self.boxes is not None:
            distributions = torch.cat(
                [
                    branch(x).view(b, 4, self.reg_max, -1).permute(0, 3, 1, 2)
                    for x, branch in zip(maps, self.boxes)
                ],
                1,
            )  # (B, A, 4, reg_max)
            boxes = decode_dfl_boxes(distributions, anchor_points, strides)
        if self.training:
            keypoints = torch.cat((xy, raw_keypoints[..., 2:]), dim=-1)
            branch_output = BranchOutput(scores, keypoints, box_distributions=distributions, boxes=boxes)
            return HeadOutput(anchor_points=anchor_points, strides=strides, o2m=branch_output)
        poses = pack_poses(scores.sigmoid(), torch.cat((xy, raw_keypoints[..., 2:].sigmoid()), dim=-1))
        return poses if boxes is None else torch.cat((poses, boxes), dim=-1)
