"""Training criterion: unpacks the assignment and loss configs, calls the assigner and the losses.

The criterion never reads the model: it gets a ``CriterionConfig``, the skeleton's sigmas and the
DFL bin count, then ``criterion(head_output, batch) -> (total, items)`` per step.

Scaling (same convention as ultralytics, so its optimiser settings carry over): every term is
normalised within the batch (keypoint and visibility terms are means over positives, score and box
terms are divided by the sum of the soft score targets); ``items`` holds those gain-weighted terms
(detached) and ``total = batch_size * sum(items)`` when ``LossConfig.scale_by_batch`` (default),
else ``sum(items)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn

from erpose.config import ConfigError
from erpose.data.sample import PoseBatch
from erpose.geometry.assign import Assignment, assign_by_box_iou, assign_by_keypoints
from erpose.geometry.boxes import box_areas, boxes_to_distances
from erpose.geometry.nms import nms_distillation_targets
from erpose.models.losses import (
    box_loss,
    distribution_focal_loss,
    keypoint_loss,
    score_loss,
    visibility_loss,
)
from erpose.models.outputs import BranchOutput, HeadOutput
from erpose.models.steps import STEPS
from erpose.skeleton import Skeleton


@dataclass(frozen=True)
class AssignConfig:
    """Sample-assignment hyperparameters (METHOD.md, "Keypoint-driven dynamic assignment").

    Attributes:
        alpha, beta: alignment ``t = score^alpha * quality^beta``.
        topk: o2m positives per person (the o2o branch always uses 1).
        candidates: ``"keypoints"`` (expanded tight keypoint box) or ``"gt_box"`` (anchor centres
            inside the ground-truth box).
        metric: quality ``"oks"`` (detached predicted keypoints) or ``"box_iou"`` (CIoU of the
            predicted box; needs a box branch).
        margin: keypoint-box expansion per side, as a fraction of its width/height.
        margin_strides: further expansion per side, in strides of the anchor's level.
        fallback_radius: persons with 1-2 labelled keypoints also take anchors within this many
            strides of each keypoint.
        level_gate: restrict candidates to levels with ``level_band[0] <= sqrt(A)/stride <= level_band[1]``
            (plus the best-fitting level).
        level_band: the gate's bounds.
        o2o_targets: score targets of the o2o copy: ``"labels"`` (top-1 assignment to the labelled
            people) or ``"distill"`` (the o2m copy's own output after OKS-NMS at ``distill_oks``,
            each kept anchor's o2m score as its target; see ``nms_distillation_targets``). Distilling
            needs a trained o2m copy, e.g. from YOLO11 weights (docs/pretrained.md).
        distill_oks: OKS-NMS threshold of the distillation targets.
        distill_min_score: o2m scores below this are never distillation targets.
    """

    alpha: float = 0.5
    beta: float = 6.0
    topk: int = 10
    candidates: Literal["keypoints", "gt_box"] = "keypoints"
    metric: Literal["oks", "box_iou"] = "oks"
    margin: float = 0.1
    margin_strides: float = 0.5
    fallback_radius: float = 1.5
    level_gate: bool = True
    # tuple[float, ...] rather than tuple[float, float]: erpose.config's fixed-length tuple
    # coercion is broken at the time of writing; the length is checked below instead.
    level_band: tuple[float, ...] = (2.0, 8.0)
    o2o_targets: Literal["labels", "distill"] = "labels"
    distill_oks: float = 0.5
    distill_min_score: float = 0.01

    def __post_init__(self) -> None:
        if len(self.level_band) != 2 or not 0 < self.level_band[0] <= self.level_band[1]:
            raise ConfigError(f"assign.level_band must be (low, high) with 0 < low <= high, got {self.level_band}")
        if self.o2o_targets not in ("labels", "distill"):
            raise ConfigError(f"assign.o2o_targets must be 'labels' or 'distill', got {self.o2o_targets!r}")
        if self.topk < 1:
            raise ConfigError(f"assign.topk must be at least 1, got {self.topk}")


@dataclass(frozen=True)
class LossConfig:
    """Loss choices and gains (METHOD.md, "Losses"; baseline gains are ultralytics' pose defaults).

    Attributes:
        kpt_loss: ``"smooth"`` | ``"plain"`` | ``"t_kernel"`` | ``"cauchy"`` | ``"neg_log_oks"`` |
            ``"oks_l1"`` (``erpose.models.losses``).
        u0: switch point of the smooth loss.
        kpt_tail: exponent ``a`` of the ``"t_kernel"`` loss ``1 - (1 + u^2/a)^(-a)``.
        l1_weight: weight of the L1 term of ``"oks_l1"``.
        kpt_area: area in the keypoint loss: ``"area"`` (annotation/OKS area) or ``"box"``
            (ground-truth box width x height, as YOLO-Pose does).
        kpt, vis, score, box, dfl: gains (``score`` is the baseline's class gain).
        o2o_keypoint_gain: multiplier of the o2o copy's ``kpt`` and ``vis`` terms. With a shared
            keypoint branch the o2o positive is one of the o2m positives already supervised, so
            1 (METHOD.md's plain sum) counts that anchor's keypoints twice.
        scale_by_batch: multiply the total by the batch size (ultralytics convention).
    """

    kpt_loss: Literal["smooth", "plain", "t_kernel", "cauchy", "neg_log_oks", "oks_l1"] = "smooth"
    u0: float = 1.0 / math.sqrt(2.0)
    kpt_tail: float = 1.0
    l1_weight: float = 1.0
    kpt_area: Literal["area", "box"] = "area"
    kpt: float = 12.0
    vis: float = 1.0
    score: float = 0.5
    box: float = 7.5
    dfl: float = 1.5
    o2o_keypoint_gain: float = 1.0
    scale_by_batch: bool = True

    def __post_init__(self) -> None:
        if self.kpt_tail <= 0:
            raise ConfigError(f"loss.kpt_tail must be positive, got {self.kpt_tail}")


@dataclass(frozen=True)
class CriterionConfig:
    """Assignment and loss configuration of one training run."""

    assign: AssignConfig = field(default_factory=AssignConfig)
    loss: LossConfig = field(default_factory=LossConfig)


def default_criterion_config(step: str) -> CriterionConfig:
    """The criterion of each ablation step (METHOD.md table; B5 is ER-Pose).

    B0 box TAL + CIoU/DFL + plain keypoint loss with A = box area; B1 OKS metric inside the GT
    box; B2 = B1 (the ER head is a model change); B3 keypoint candidates + level gate; B4 smooth
    OKS loss with the annotation area; B5 = B3's criterion plus the o2o branch (from the head).

    B5 keeps the plain keypoint loss because the ablation measured it better: the smooth loss's
    linear tail made the keypoint gradient 20-30x the score gradient, so the scores ranked poses
    poorly. ``criterion.loss.kpt_loss=smooth criterion.loss.kpt_area=area`` restores it.

    B5 also drops the o2o copy's keypoint and visibility terms (``o2o_keypoint_gain=0``): the
    keypoint branch is shared and the o2o positive is one of the o2m positives, so the extra terms
    only doubled one anchor's keypoint weight against the score terms. The measurements behind both
    choices: docs/BENCHMARKS.md, "Defaults changed by this study".

    Raises:
        ValueError: ``step`` is not one of ``STEPS``.
    """
    if step not in STEPS:
        raise ValueError(f"unknown ablation step {step!r}; choose one of {list(STEPS)}")
    baseline_loss = LossConfig(kpt_loss="plain", kpt_area="box")
    in_box = AssignConfig(candidates="gt_box", level_gate=False)
    if step == "B0":
        return CriterionConfig(replace(in_box, metric="box_iou"), baseline_loss)
    if step in ("B1", "B2"):
        return CriterionConfig(in_box, baseline_loss)
    if step == "B3":
        return CriterionConfig(AssignConfig(), baseline_loss)
    if step == "B5":
        return CriterionConfig(AssignConfig(), replace(baseline_loss, o2o_keypoint_gain=0.0))
    return CriterionConfig(AssignConfig(), LossConfig())


class Criterion(nn.Module):
    """Assign then compute the weighted losses of every head branch (o2m, then o2o if present).

    Args:
        config: the ``CriterionConfig``.
        sigmas: (K,) OKS sigmas.
        reg_max: DFL bins of the baseline's box branch.
    """

    def __init__(self, config: CriterionConfig, sigmas: torch.Tensor, reg_max: int = 16) -> None:
        super().__init__()
        self.config = config
        self.reg_max = reg_max
        self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32), persistent=False)

    def forward(self, head_output: HeadOutput, batch: PoseBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and detached gain-weighted terms (``kpt, vis, score[, box, dfl]``, ``o2o_*``)."""
        terms: dict[str, torch.Tensor] = {}
        branches = [("", head_output.o2m, self.config.assign.topk)]
        if head_output.o2o is not None:
            branches.append(("o2o_", head_output.o2o, 1))
        for prefix, branch, topk in branches:
            if prefix and self.config.assign.o2o_targets == "distill":
                terms.update({prefix + name: value for name, value in self.distill_losses(branch, head_output.o2m).items()})
                continue
            assignment = self.assign(branch, head_output, batch, topk)
            for name, value in self.branch_losses(branch, assignment, head_output).items():
                if prefix and name in ("kpt", "vis"):
                    value = value * self.config.loss.o2o_keypoint_gain
                terms[prefix + name] = value
        total = torch.stack(list(terms.values())).sum()
        if self.config.loss.scale_by_batch:
            total = total * branch.scores.shape[0]
        return total, {name: value.detach() for name, value in terms.items()}

    def distill_losses(self, o2o: BranchOutput, o2m: BranchOutput) -> dict[str, torch.Tensor]:
        """o2o score BCE against the o2m copy's OKS-NMS output (``AssignConfig.o2o_targets="distill"``).

        The keypoint terms are zero (kept in the graph): the keypoints are the o2m copy's to learn.
        """
        cfg = self.config.assign
        targets = nms_distillation_targets(
            o2m.scores.detach().float().sigmoid(), o2m.keypoints.detach().float(), self.sigmas,
            cfg.distill_oks, cfg.distill_min_score,
        )
        zero = o2o.keypoints.sum() * 0.0
        no_ignore = torch.zeros_like(targets, dtype=torch.bool)
        return {"score": self.config.loss.score * score_loss(o2o.scores.float(), targets, no_ignore),
                "kpt": zero, "vis": zero}

    def assign(self, branch: BranchOutput, head_output: HeadOutput, batch: PoseBatch, topk: int) -> Assignment:
        """Run the configured assigner on one branch's (detached) predictions."""
        cfg = self.config.assign
        scores = branch.scores.detach().float().sigmoid()
        common = dict(
            gt_keypoints=batch.keypoints, gt_areas=batch.areas, gt_boxes=batch.boxes,
            person_mask=batch.person_mask, ignore_boxes=batch.ignore_boxes, ignore_mask=batch.ignore_mask,
        )
        if cfg.metric == "box_iou":
            if branch.boxes is None:
                raise ValueError("assign.metric 'box_iou' needs a head with a box branch (HeadOutput boxes is None)")
            return assign_by_box_iou(
                scores, branch.boxes.detach(), head_output.anchor_pixels, **common,
                alpha=cfg.alpha, beta=cfg.beta, topk=topk,
            )
        return assign_by_keypoints(
            scores, branch.keypoints.detach(), head_output.anchor_pixels, head_output.strides, **common,
            sigmas=self.sigmas.to(scores.device), alpha=cfg.alpha, beta=cfg.beta, topk=topk,
            candidates=cfg.candidates, margin=cfg.margin, margin_strides=cfg.margin_strides,
            fallback_radius=cfg.fallback_radius, use_level_gate=cfg.level_gate,
            level_band=(cfg.level_band[0], cfg.level_band[1]),
        )

    def branch_losses(
        self, branch: BranchOutput, assignment: Assignment, head_output: HeadOutput
    ) -> dict[str, torch.Tensor]:
        """Gain-weighted loss terms of one branch given its assignment (attached to the graph)."""
        cfg = self.config.loss
        positive = assignment.positive
        target_sum = assignment.target_scores.sum().clamp(min=1.0)
        terms = {"score": cfg.score * score_loss(branch.scores.float(), assignment.target_scores, assignment.ignore)}

        pred = branch.keypoints[positive].float()  # (P, K, 3)
        gt = assignment.keypoints[positive]
        if pred.shape[0] == 0:
            # Keep the graph connected so that DDP and the optimiser see every parameter.
            zero = branch.keypoints.sum() * 0.0
            terms["kpt"], terms["vis"] = zero, zero
        else:
            areas = assignment.areas[positive]
            if cfg.kpt_area == "box":
                box_area = box_areas(assignment.boxes[positive])
                areas = torch.where(box_area > 0, box_area, areas)
            per_instance = keypoint_loss(pred[..., :2], gt, areas, self.sigmas.to(pred.device), cfg.kpt_loss, cfg.u0,
                                         cfg.l1_weight, cfg.kpt_tail)
            terms["kpt"] = cfg.kpt * per_instance.mean()
            terms["vis"] = cfg.vis * visibility_loss(pred[..., 2], gt)

        if branch.boxes is not None and branch.box_distributions is not None:
            weights = assignment.target_scores[positive]
            target_boxes = assignment.boxes[positive]
            terms["box"] = cfg.box * box_loss(branch.boxes[positive].float(), target_boxes, weights, target_sum)
            _, anchor_index = positive.nonzero(as_tuple=True)
            strides = head_output.strides[anchor_index][:, None]
            # DFL targets live in grid units, like the bins.
            distances = boxes_to_distances(head_output.anchor_points[anchor_index], target_boxes / strides, self.reg_max - 1)
            dfl = distribution_focal_loss(branch.box_distributions[positive].float(), distances)
            terms["dfl"] = cfg.dfl * (dfl * weights).sum() / target_sum
        return terms


def build_criterion(model_config: object, skeleton: Skeleton, criterion_config: CriterionConfig | None = None) -> Criterion:
    """The criterion for a model configuration.

    Args:
        model_config: a ``ModelConfig`` (only ``step`` and ``head.reg_max`` are read, duck-typed).
        skeleton: gives the OKS sigmas.
        criterion_config: overrides ``default_criterion_config(model_config.step)``.

    Raises:
        ValueError: the configuration asks for box-IoU assignment on a head without boxes.
    """
    head = getattr(model_config, "head", None)
    if criterion_config is None:
        criterion_config = default_criterion_config(getattr(model_config, "step", "B5"))
    if criterion_config.assign.metric == "box_iou" and head is not None and getattr(head, "box", True) is False:
        raise ValueError("assign.metric 'box_iou' needs a head with a box branch; this model has none")
    sigmas = torch.tensor(skeleton.sigmas, dtype=torch.float32)
    return Criterion(criterion_config, sigmas, reg_max=int(getattr(head, "reg_max", 16)))
