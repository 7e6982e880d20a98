"""Loss functions of ER-Pose and of the YOLO-Pose baseline, as plain tensor functions.

Keypoint losses are written in the OKS variable ``u_k^2 = d_k^2 / (2 A (2 sigma_k)^2)``
(``erpose.geometry.oks.oks_terms``), whose per-keypoint similarity is ``exp(-u^2)``:

- ``smooth``: ``1 - exp(-u^2)`` for ``u <= u0``, then the tangent line at ``u0`` (same value and
  slope), so the gradient never vanishes for large errors (ER-Pose, METHOD.md).
- ``plain``: ``1 - exp(-u^2)`` (YOLO-Pose); its gradient ``2u exp(-u^2)`` peaks at ``u = 1/sqrt(2)``
  and vanishes beyond.
- ``t_kernel``: ``1 - (1 + u^2/a)^(-a)`` (``a = tail``): ``1 - OKS`` with the Gaussian replaced by a
  Student-t kernel. Bounded by 1 like ``plain`` and ``u^2`` near 0 like it, but the gradient
  ``2u (1 + u^2/a)^(-a-1)`` decays polynomially (``~ u^(-2a-1)``), not like ``exp(-u^2)``; ``a -> inf``
  gives ``plain``. Smooth at both ends: it keeps a gradient far from the target without the
  linear tail's constant one.
- ``cauchy``: ``log(1 + u^2)``: ``u^2`` near 0, unbounded but logarithmic, gradient ``2u / (1 + u^2)``
  decaying as ``2/u``: between ``t_kernel`` and the linear tail.
- ``neg_log_oks``: ``-log(OKS)`` per instance.
- ``oks_l1``: ``1 - OKS`` plus ``l1_weight`` times the mean L1 keypoint error divided by ``sqrt(A)``.

The instance loss ``1 - OKS`` needs no kind of its own: ``plain`` averaged over the labelled
keypoints *is* ``1 - OKS`` of the instance (same value, same gradient).

All keypoint losses return one value per instance (averaged over its labelled keypoints); the
criterion averages them over positives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from erpose.geometry.boxes import complete_box_iou
from erpose.geometry.oks import oks_terms

KEYPOINT_LOSSES = ("smooth", "plain", "t_kernel", "cauchy", "neg_log_oks", "oks_l1")


def plain_oks_terms(u2: torch.Tensor) -> torch.Tensor:
    """Per-keypoint ``1 - exp(-u^2)`` from ``u^2`` (...)."""
    return 1.0 - torch.exp(-u2)


def smooth_oks_terms(u2: torch.Tensor, u0: float = 1.0 / math.sqrt(2.0)) -> torch.Tensor:
    """Per-keypoint smooth OKS loss from ``u^2`` (...).

    ``1 - exp(-u^2)`` while ``u <= u0``; beyond, ``f(u0) + f'(u0) (u - u0)`` with
    ``f'(u) = 2u exp(-u^2)``. At the default ``u0 = 1/sqrt(2)`` the plain loss has its steepest
    slope (and zero curvature), so the continuation is smooth to second order.
    """
    u0_sq = u0 * u0
    value0 = 1.0 - math.exp(-u0_sq)
    slope0 = 2.0 * u0 * math.exp(-u0_sq)
    # sqrt only on the linear branch, clamped so that neither branch produces NaN gradients.
    u = u2.clamp(min=u0_sq).sqrt()
    return torch.where(u2 <= u0_sq, 1.0 - torch.exp(-u2), value0 + slope0 * (u - u0))


def t_kernel_oks_terms(u2: torch.Tensor, tail: float = 1.0) -> torch.Tensor:
    """Per-keypoint ``1 - (1 + u^2/a)^(-a)`` from ``u^2`` (...), ``a = tail > 0``.

    ``a = 1`` is ``u^2 / (1 + u^2)`` (Geman-McClure); ``a -> inf`` tends to ``1 - exp(-u^2)``.
    """
    if tail <= 0:
        raise ValueError(f"t_kernel tail must be positive, got {tail}")
    return 1.0 - torch.exp(-tail * torch.log1p(u2 / tail))


def cauchy_oks_terms(u2: torch.Tensor) -> torch.Tensor:
    """Per-keypoint ``log(1 + u^2)`` from ``u^2`` (...)."""
    return torch.log1p(u2)


def keypoint_loss(
    pred_xy: torch.Tensor,
    gt_keypoints: torch.Tensor,
    areas: torch.Tensor,
    sigmas: torch.Tensor,
    kind: str = "smooth",
    u0: float = 1.0 / math.sqrt(2.0),
    l1_weight: float = 1.0,
    tail: float = 1.0,
) -> torch.Tensor:
    """Per-instance keypoint loss of aligned predictions.

    Args:
        pred_xy: (P, K, 2) predicted keypoints, pixels.
        gt_keypoints: (P, K, 3) ground truth x, y pixels and v (v > 0: labelled).
        areas: (P,) OKS areas, pixels^2.
        sigmas: (K,) OKS sigmas.
        kind: one of ``KEYPOINT_LOSSES``.
        u0: switch point of the smooth loss.
        l1_weight: weight of the L1 term of ``oks_l1``.
        tail: the exponent ``a`` of ``t_kernel``.

    Returns:
        (P,) loss per instance, averaged over its labelled keypoints (0 where none is labelled).
    """
    if kind not in KEYPOINT_LOSSES:
        raise ValueError(f"unknown keypoint loss {kind!r}; choose one of {list(KEYPOINT_LOSSES)}")
    labelled = (gt_keypoints[..., 2] > 0).to(pred_xy.dtype)
    count = labelled.sum(dim=-1)
    u2 = oks_terms(pred_xy, gt_keypoints, areas, sigmas)
    per_keypoint = None
    if kind == "smooth":
        per_keypoint = smooth_oks_terms(u2, u0)
    elif kind == "plain":
        per_keypoint = plain_oks_terms(u2)
    elif kind == "t_kernel":
        per_keypoint = t_kernel_oks_terms(u2, tail)
    elif kind == "cauchy":
        per_keypoint = cauchy_oks_terms(u2)
    if per_keypoint is not None:
        return (per_keypoint * labelled).sum(dim=-1) / count.clamp(min=1.0)
    if kind == "neg_log_oks":
        # -log(mean_k exp(-u_k^2)) via logsumexp: stays finite (about min u^2) when OKS underflows.
        log_sum = torch.logsumexp(torch.where(labelled > 0, -u2, -math.inf), dim=-1)
        loss = count.clamp(min=1.0).log() - log_sum
        return torch.where(count > 0, loss, torch.zeros_like(loss))
    similarity = (torch.exp(-u2) * labelled).sum(dim=-1) / count.clamp(min=1.0)
    l1 = (pred_xy - gt_keypoints[..., :2]).abs().sum(dim=-1) / areas.clamp(min=1.0).sqrt()[..., None]
    l1 = (l1 * labelled).sum(dim=-1) / count.clamp(min=1.0)
    return torch.where(count > 0, 1.0 - similarity, torch.zeros_like(similarity)) + l1_weight * l1


def visibility_loss(logits: torch.Tensor, gt_keypoints: torch.Tensor) -> torch.Tensor:
    """Mean BCE of visibility logits (P, K) against ``v > 0`` of (P, K, 3); 0-d tensor."""
    return F.binary_cross_entropy_with_logits(logits, (gt_keypoints[..., 2] > 0).to(logits.dtype))


def score_loss(logits: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
    """BCE of score logits against soft targets, summed and normalised by ``max(sum(targets), 1)``.

    Args:
        logits: (B, A) person-score (or the baseline's class) logits.
        targets: (B, A) soft targets in [0, 1].
        ignore: (B, A) bool, anchors excluded from the loss.

    Returns:
        0-d tensor.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return (bce * (~ignore)).sum() / targets.sum().clamp(min=1.0)


def box_loss(pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, weights: torch.Tensor, normaliser: torch.Tensor) -> torch.Tensor:
    """Weighted CIoU loss ``sum(w (1 - CIoU)) / normaliser`` over aligned (P, 4) boxes; 0-d tensor."""
    return ((1.0 - complete_box_iou(pred_boxes, gt_boxes)) * weights).sum() / normaliser


def distribution_focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss (Li et al., 2020) of DFL bin logits.

    The continuous target ``y`` between bins ``l = floor(y)`` and ``l + 1`` is split linearly:
    ``(l + 1 - y) CE(logits, l) + (y - l) CE(logits, l + 1)``.

    Args:
        logits: (P, 4, R) bin logits per box side.
        targets: (P, 4) distances in bins, within ``[0, R - 1)`` (see ``boxes_to_distances``).

    Returns:
        (P,) loss per anchor, averaged over the four sides.
    """
    log_probs = logits.log_softmax(dim=-1)
    left = targets.long().clamp(max=logits.shape[-1] - 2)
    weight_left = (left + 1).to(targets.dtype) - targets
    nll_left = -log_probs.gather(-1, left[..., None]).squeeze(-1)
    nll_right = -log_probs.gather(-1, (left + 1)[..., None]).squeeze(-1)
    return (nll_left * weight_left + nll_right * (1.0 - weight_left)).mean(dim=-1)
