"""The ER head: a light score branch and a wider keypoint branch per level, no box branch.

Two copies of the branches exist when ``o2o`` is on: one-to-many (o2m, training only) and
one-to-one (o2o, training and inference). The o2o copy is a deep copy of the o2m one at
construction. With ``o2o_detach`` (default, as in YOLOv10's dual assignment) the o2o copy sees
detached features in training, so only the dense o2m supervision shapes the backbone and neck
while the o2o copy learns to fire once per person on top of them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from erpose.geometry.anchors import make_anchor_points
from erpose.geometry.decode import decode_keypoints, decode_topk, pack_poses
from erpose.models.blocks import Conv, depthwise_conv, light_score_branch, make_divisible, score_prior_bias
from erpose.models.outputs import BranchOutput, HeadOutput


def default_er_widths(first_channels: int, num_keypoints: int) -> tuple[int, int]:
    """Auto widths ``(score, keypoint)`` of the ER head from the P3 channel count.

    The keypoint branch is 1.5x the baseline keypoint branch (``max(c0 // 4, 3K)``), which takes
    about half of what the removed box branch cost; the score branch is half the baseline's class
    branch (``c0 // 2``), since it predicts one number. The zoo models set ``score_width``
    explicitly to the full ``c0`` (``erpose.models.zoo.ER_SCORE_WIDTH``, measured better in the
    ablation); this rule stays what ``score_width: 0`` means, so older checkpoints keep their shape.
    """
    keypoint = make_divisible(1.5 * max(first_channels // 4, 3 * num_keypoints), 8)
    score = max(first_channels // 2, 16)
    return score, keypoint


class KeypointBranch(nn.Module):
    """Two 3x3 ``Conv``s (or, ``separable``, two depth-wise 3x3 + point-wise 1x1 pairs), then
    1x1 convs to 2K offsets and K visibility logits."""

    def __init__(self, in_channels: int, width: int, num_keypoints: int, separable: bool = False) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        if separable:
            self.convs = nn.Sequential(
                depthwise_conv(in_channels, in_channels, 3), Conv(in_channels, width, 1),
                depthwise_conv(width, width, 3), Conv(width, width, 1),
            )
        else:
            self.convs = nn.Sequential(Conv(in_channels, width, 3), Conv(width, width, 3))
        self.offsets = nn.Conv2d(width, 2 * num_keypoints, 1)
        self.visibility = nn.Conv2d(width, num_keypoints, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> tuple[torch.Tensor, ...]:
        """(B, C, H, W) -> offsets (B, HW, K, 2) grid units, visibility logits (B, HW, K), and with
        ``return_features`` the branch's last hidden map (B, width, H, W)."""
        y = self.convs(x)
        b, k = x.shape[0], self.num_keypoints
        offsets = self.offsets(y).view(b, k, 2, -1).permute(0, 3, 1, 2)
        visibility = self.visibility(y).view(b, k, -1).transpose(1, 2)
        return (offsets, visibility, y) if return_features else (offsets, visibility)


def keypoint_branches(in_channels: tuple[int, ...], width: int, num_keypoints: int,
                      separable: bool = False) -> nn.ModuleList:
    return nn.ModuleList(KeypointBranch(c, width, num_keypoints, separable) for c in in_channels)


def run_keypoint_branches(
    branches: nn.ModuleList, features: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Per-level maps -> offsets (B, A, K, 2), visibility logits (B, A, K), the per-level hidden maps."""
    outputs = [branch(x, return_features=True) for x, branch in zip(features, branches)]
    offsets = torch.cat([o for o, _, _ in outputs], 1)
    return offsets, torch.cat([v for _, v, _ in outputs], 1), [y for _, _, y in outputs]


def full_score_branch(in_channels: int, width: int) -> nn.Sequential:
    """Two full 3x3 ``Conv``s then a 1x1 conv to one logit (the keypoint branch's form, at the
    score's width), against ``light_score_branch``'s depth-wise-separable pairs."""
    return nn.Sequential(Conv(in_channels, width, 3), Conv(width, width, 3), nn.Conv2d(width, 1, 1))


def score_branch(in_channels: int, width: int, separable: bool = True, keypoint_channels: int = 0) -> nn.Sequential:
    """One level's score branch; its last layer (a biased 1x1 ``nn.Conv2d``) reads ``keypoint_channels``
    more channels when the score sees the keypoint branch's features (``run_score_branch``)."""
    branch = light_score_branch(in_channels, width) if separable else full_score_branch(in_channels, width)
    if keypoint_channels:
        branch[-1] = nn.Conv2d(width + keypoint_channels, 1, 1)
    return branch


def run_score_branch(branch: nn.Sequential, x: torch.Tensor, keypoint_features: torch.Tensor | None) -> torch.Tensor:
    """(B, C, H, W) -> (B, HW) score logits; with ``keypoint_features`` (B, Ck, H, W) the logit layer
    reads them, detached, next to the score features (quality-aware scoring)."""
    if keypoint_features is None:
        return branch(x).flatten(1)
    hidden = branch[:-1](x)
    return branch[-1](torch.cat((hidden, keypoint_features.detach()), 1)).flatten(1)


class ERBranches(nn.Module):
    """One copy (o2m or o2o) of the score branches over all levels, and of the keypoint branches
    unless the head shares one keypoint branch between its copies (``keypoint_width == 0``).

    ``score_keypoint_channels > 0``: the score branches' logit layers also read that many channels
    of keypoint-branch features (``run_score_branch``), which the caller passes to ``score``.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        num_keypoints: int,
        score_width: int,
        keypoint_width: int,
        score_prior: float,
        keypoint_separable: bool = False,
        score_separable: bool = True,
        score_keypoint_channels: int = 0,
    ) -> None:
        super().__init__()
        self.scores = nn.ModuleList(score_branch(c, score_width, score_separable, score_keypoint_channels)
                                    for c in in_channels)
        self.keypoints = (keypoint_branches(in_channels, keypoint_width, num_keypoints, keypoint_separable)
                          if keypoint_width else None)
        with torch.no_grad():
            for branch, stride in zip(self.scores, strides):
                branch[-1].bias.fill_(score_prior_bias(stride, score_prior))

    def score(self, features: list[torch.Tensor], keypoint_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Per-level maps (and, for quality-aware scoring, per-level keypoint features) -> (B, A) logits."""
        if keypoint_features is None:
            return torch.cat([run_score_branch(b, x, None) for x, b in zip(features, self.scores)], 1)
        return torch.cat([run_score_branch(b, x, y) for x, y, b in zip(features, keypoint_features, self.scores)], 1)


class ERHead(nn.Module):
    """ER-Pose head (steps B2..B5 of the ablation; B5 when ``o2o``).

    Args:
        in_channels: channels of the neck maps, one per stride.
        strides: level strides, pixels (ascending).
        num_keypoints: K.
        o2o: add the one-to-one copy; inference then runs it alone, top-k, no NMS.
        o2o_detach: the o2o copy sees detached features in training.
        score_width: score-branch width (0: ``default_er_widths``).
        keypoint_width: keypoint-branch width (0: ``default_er_widths``).
        score_prior: prior probability for the score bias (0: YOLO rule, see ``score_prior_bias``).
        max_det: persons returned per image in eval mode when ``o2o``.
        shared_keypoints: with ``o2o``, one keypoint branch serves both copies and only the score
            branch is duplicated. Both copies regress the same keypoints (o2o's positive is one of
            o2m's top-k); what differs is which anchor fires, which is the score's job. The
            inference graph is the same size either way; training skips a second keypoint branch.
        keypoint_separable: depth-wise-separable keypoint convs (a fraction of the FLOPs; see
            ``KeypointBranch``).
        score_separable: the score branch is ``light_score_branch`` (YOLO11's class branch,
            depth-wise-separable); False: two full 3x3 convs (``full_score_branch``).
        score_sees_keypoints: quality-aware scoring: each score branch's logit layer also reads the
            keypoint branch's last hidden map of the same level, detached (the score learns from
            the keypoint features, its loss does not shape them). Adds ``keypoint_width`` weights
            per level and copy.

    Forward (``features``: ``{stride: (B, C, H, W)}``):
        training: ``HeadOutput`` (o2m, plus o2o when on).
        eval with o2o: (B, max_det, 1 + 3K) sorted by score, ``erpose.geometry.decode`` layout.
        eval without o2o: (B, A, 1 + 3K) for every anchor point, to be filtered by OKS-NMS.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        num_keypoints: int,
        *,
        o2o: bool = True,
        o2o_detach: bool = True,
        score_width: int = 0,
        keypoint_width: int = 0,
        score_prior: float = 0.0,
        max_det: int = 100,
        shared_keypoints: bool = False,
        keypoint_separable: bool = False,
        score_separable: bool = True,
        score_sees_keypoints: bool = False,
    ) -> None:
        super().__init__()
        auto_score, auto_keypoint = default_er_widths(in_channels[0], num_keypoints)
        self.strides = tuple(int(s) for s in strides)
        self.num_keypoints = num_keypoints
        self.score_width = score_width or auto_score
        self.keypoint_width = keypoint_width or auto_keypoint
        self.o2o_detach = o2o_detach
        self.max_det = max_det
        self.score_sees_keypoints = score_sees_keypoints
        shared = o2o and shared_keypoints
        self.keypoints: nn.ModuleList | None = (
            keypoint_branches(tuple(in_channels), self.keypoint_width, num_keypoints, keypoint_separable)
            if shared else None
        )
        self.o2m: ERBranches | None = ERBranches(
            tuple(in_channels), self.strides, num_keypoints, self.score_width,
            0 if shared else self.keypoint_width, score_prior, keypoint_separable, score_separable,
            self.keypoint_width if score_sees_keypoints else 0,
        )
        self.o2o: ERBranches | None = copy.deepcopy(self.o2m) if o2o else None

    @property
    def needs_nms(self) -> bool:
        return self.o2o is None

    def deploy(self) -> None:
        """Drop the o2m copy when an o2o copy exists: the inference graph is o2o alone."""
        if self.o2o is not None:
            self.o2m = None

    def _anchors(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = [(m.shape[2], m.shape[3]) for m in maps]
        return make_anchor_points(sizes, self.strides, dtype=maps[0].dtype, device=maps[0].device)

    def _run(
        self, branches: ERBranches, maps: list[torch.Tensor],
        shared: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Score logits, offsets, visibility logits and the keypoint branch's hidden maps of one copy.

        ``shared``: the keypoint outputs of the o2m run, reused by the o2o copy of a head whose
        copies share one keypoint branch.
        """
        if branches.keypoints is not None:
            offsets, visibility, hidden = run_keypoint_branches(branches.keypoints, maps)
        elif shared is not None:
            offsets, visibility, hidden = shared
        else:
            offsets, visibility, hidden = run_keypoint_branches(self.keypoints, maps)
        scores = branches.score(maps, hidden if self.score_sees_keypoints else None)
        return scores, offsets, visibility, hidden

    @staticmethod
    def _branch_output(
        raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]], anchor_points: torch.Tensor,
        strides: torch.Tensor,
    ) -> BranchOutput:
        scores, offsets, visibility, _ = raw
        xy = decode_keypoints(offsets, anchor_points, strides)
        return BranchOutput(scores=scores, keypoints=torch.cat((xy, visibility[..., None]), dim=-1))

    def forward(self, features: dict[int, torch.Tensor]) -> HeadOutput | torch.Tensor:
        maps = [features[s] for s in self.strides]
        anchor_points, strides = self._anchors(maps)
        if self.training:
            if self.o2m is None:
                raise RuntimeError("this head was deployed (o2m copy removed): it can no longer train")
            o2m_raw = self._run(self.o2m, maps)
            o2m = self._branch_output(o2m_raw, anchor_points, strides)
            o2o = None
            if self.o2o is not None:
                o2o_maps = [m.detach() for m in maps] if self.o2o_detach else maps
                # A shared keypoint branch is run once, on the o2m features, for both copies.
                o2o = self._branch_output(self._run(self.o2o, o2o_maps, o2m_raw[1:]), anchor_points, strides)
            return HeadOutput(anchor_points=anchor_points, strides=strides, o2m=o2m, o2o=o2o)
        branches = self.o2o if self.o2o is not None else self.o2m
        assert branches is not None
        scores, offsets, visibility, _ = self._run(branches, maps)
        if self.o2o is not None:
            return decode_topk(scores, offsets, visibility, anchor_points, strides, self.max_det)
        keypoints = torch.cat(
            (decode_keypoints(offsets, anchor_points, strides), visibility.sigmoid()[..., None]), dim=-1
        )
        return pack_poses(scores.sigmoid(), keypoints)
