"""Dynamic sample assignment: the keypoint-driven assigner (ER-Pose) and box-IoU task alignment (baseline).

Both assigners share one core: for every (person g, anchor point j) pair among the candidates,
a quality ``q`` (OKS of the detached predicted keypoints, or CIoU of the predicted box) and the
alignment ``t = score_j^alpha * q^beta``. Each person takes its top-k candidates by ``t``; an anchor
claimed by several persons goes to the one with the higher ``q``. ``topk=1`` is the one-to-one
(o2o) assignment. Every valid person (a real person with at least one labelled keypoint) is
guaranteed one positive of its own: an exclusive top-1 matching runs first (greedy, in rounds
vectorised over the batch, conflicts won by the higher ``q``) and its anchors are reserved.

Soft score targets follow TAL: ``target_j = t_j / max_pos(t) * max_pos(q)`` per person, so the
person's best anchor gets its best quality. Anchors covered by ignore regions, or by the boxes of
persons without labelled keypoints, are excluded from the candidates and get no score loss.

Everything is computed without gradient; pass predictions as they come out of the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from erpose.geometry.boxes import complete_box_iou
from erpose.geometry.candidates import keypoint_candidates, level_gate, points_in_boxes
from erpose.geometry.oks import keypoint_extent_boxes, oks


@dataclass
class Assignment:
    """Result of an assigner for a batch of B images, A anchor points, N padded persons.

    Attributes:
        person_index: (B, A) int64 index of the assigned person in ``[0, N)``, -1 for none.
        positive: (B, A) bool, ``person_index >= 0``.
        target_scores: (B, A) float soft score targets in [0, 1] (0 on negatives).
        ignore: (B, A) bool, anchors that get no score loss (ignore regions, persons without
            labelled keypoints); never true on a positive.
        keypoints: (B, A, K, 3) ground-truth keypoints of the assigned person (zeros elsewhere).
        areas: (B, A) ground-truth areas of the assigned person (0 elsewhere).
        boxes: (B, A, 4) ground-truth boxes of the assigned person (zeros elsewhere).
        quality: (B, A) OKS (or CIoU) of each positive's prediction with its person.
        positives_per_person: (B, N) int64 number of positives of each person.
        candidates_per_person: (B, N) int64 number of candidate anchors of each person.
    """

    person_index: torch.Tensor
    positive: torch.Tensor
    target_scores: torch.Tensor
    ignore: torch.Tensor
    keypoints: torch.Tensor
    areas: torch.Tensor
    boxes: torch.Tensor
    quality: torch.Tensor
    positives_per_person: torch.Tensor
    candidates_per_person: torch.Tensor


def _winners(who: torch.Tensor, where: torch.Tensor, q: torch.Tensor, num_persons: int, num_anchors: int) -> torch.Tensor:
    """Per claimed anchor, the claim with the highest quality (ties: lower person id); (C,) bool."""
    top_q = torch.full((num_anchors,), -math.inf, device=q.device).scatter_reduce(0, where, q, reduce="amax")
    is_top = q >= top_q[where]
    first = torch.full((num_anchors,), num_persons, dtype=torch.long, device=q.device)
    first = first.scatter_reduce(0, where[is_top], who[is_top], reduce="amin")
    return is_top & (who == first[where])


def _exclusive_match(
    person: torch.Tensor, anchor: torch.Tensor, key: torch.Tensor, quality: torch.Tensor,
    pending: torch.Tensor, taken: torch.Tensor,
) -> torch.Tensor:
    """Greedy one-anchor-per-person matching over a list of (person, anchor) pairs.

    In each round every pending person proposes its best pair (by ``key``) whose anchor is still
    free; each proposed anchor goes to the proposer with the highest ``quality`` and the losers
    propose again. A round matches at least one person per contested anchor, so it ends after at
    most as many rounds as persons (in practice two or three). Ids are flat (batch folded in).

    Args:
        person, anchor: (P,) int64 flat ids of each pair.
        key: (P,) ranking key; quality: (P,) conflict-resolution quality.
        pending: (num_persons,) bool persons to match (modified in place).
        taken: (num_anchors,) bool anchors already used (modified in place).

    Returns:
        (num_persons,) int64 matched flat anchor id, -1 where none was free.
    """
    num_pairs = person.numel()
    matched = torch.full_like(pending, -1, dtype=torch.long)
    while True:
        alive = (pending[person] & ~taken[anchor]).nonzero().squeeze(1)
        if alive.numel() == 0:
            break
        alive_person, alive_key = person[alive], key[alive]
        best = torch.full(pending.shape, -math.inf, device=key.device)
        best = best.scatter_reduce(0, alive_person, alive_key, reduce="amax")
        is_best = alive_key >= best[alive_person]
        choice = torch.full(pending.shape, num_pairs, dtype=torch.long, device=key.device)
        choice = choice.scatter_reduce(0, alive_person[is_best], alive[is_best], reduce="amin")
        pending &= choice < num_pairs  # persons without a free candidate drop out
        proposal = choice[pending]
        who, where = person[proposal], anchor[proposal]
        wins = _winners(who, where, quality[proposal], pending.numel(), taken.numel())
        matched[who[wins]] = where[wins]
        taken[where[wins]] = True
        pending[who[wins]] = False
    return matched


def _covered_anchors(
    anchor_pixels: torch.Tensor, ignore_boxes: torch.Tensor, ignore_mask: torch.Tensor,
    gt_boxes: torch.Tensor, unlabelled: torch.Tensor,
) -> torch.Tensor:
    """(B, A) anchors inside an ignore region or the box of a person without labelled keypoints."""
    regions = torch.cat([ignore_boxes, gt_boxes], dim=1)
    region_b, region_i = torch.cat([ignore_mask, unlabelled], dim=1).nonzero(as_tuple=True)
    inside = points_in_boxes(anchor_pixels, regions[region_b, region_i][None])[0]  # (R, A), R small
    covered = torch.zeros(regions.shape[0], anchor_pixels.shape[0], dtype=torch.int32, device=regions.device)
    return covered.index_add_(0, region_b, inside.int()) > 0


def _topk_per_person(person: torch.Tensor, metric: torch.Tensor, topk: int, num_persons: int) -> torch.Tensor:
    """Indices of the pairs ranked < topk by metric within their person."""
    order = metric.argsort(descending=True)
    order = order[person[order].argsort(stable=True)]  # by person, then by metric
    counts = torch.bincount(person, minlength=num_persons)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - (counts.cumsum(0) - counts)[person[order]]
    return (rank < topk).nonzero().squeeze(1)


def _assign_core(
    scores: torch.Tensor,
    anchor_pixels: torch.Tensor,
    gt_keypoints: torch.Tensor,
    gt_areas: torch.Tensor,
    gt_boxes: torch.Tensor,
    person_mask: torch.Tensor,
    ignore_boxes: torch.Tensor,
    ignore_mask: torch.Tensor,
    candidates: torch.Tensor,
    quality_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    alpha: float,
    beta: float,
    topk: int,
) -> Assignment:
    batch, num_persons, num_anchors = candidates.shape
    flat_persons, flat_anchors = batch * num_persons, batch * num_anchors
    device = scores.device
    valid = person_mask & (gt_keypoints[..., 2] > 0).any(dim=-1)  # (B, N)
    covered = _covered_anchors(anchor_pixels, ignore_boxes, ignore_mask, gt_boxes, person_mask & ~valid)

    # Work on the sparse list of candidate pairs; persons and anchors get flat ids b*N+n, b*A+a.
    b, n, a = (candidates & valid[..., None]).nonzero(as_tuple=True)
    person, anchor = b * num_persons + n, b * num_anchors + a
    # Candidates avoid ignore regions unless a person has no candidate outside them.
    inside = covered.view(-1)[anchor]
    has_outside = torch.zeros(flat_persons, dtype=torch.bool, device=device)
    has_outside[person[~inside]] = True
    keep = ~inside | ~has_outside[person]
    b, n, a, person, anchor = b[keep], n[keep], a[keep], person[keep], anchor[keep]
    candidates_per_person = torch.bincount(person, minlength=flat_persons)
    quality = quality_fn(b, n, a).clamp(min=0.0)
    metric = scores[b, a].clamp(min=0.0).pow(alpha) * quality.pow(beta)

    # Exclusive top-1 among candidates, reserved for each person (its o2o positive).
    taken = torch.zeros(flat_anchors, dtype=torch.bool, device=device)
    reserved = _exclusive_match(person, anchor, metric, quality, valid.flatten().clone(), taken)
    unmatched = valid.flatten() & (reserved < 0)
    if bool(unmatched.any()):
        # Rare: every candidate of these persons went to others. Take the free anchor nearest
        # to the person's keypoint centre, outside ignore regions if possible.
        f_person, f_anchor, f_key = _fallback_pairs(unmatched, anchor_pixels, gt_keypoints, covered, num_persons)
        f_reserved = _exclusive_match(f_person, f_anchor, f_key, torch.zeros_like(f_key), unmatched, taken)
        got = (f_reserved >= 0).nonzero().squeeze(1)
        fb, fa = got // num_persons, f_reserved[got] % num_anchors
        f_quality = quality_fn(fb, got % num_persons, fa).clamp(min=0.0)
        person, anchor = torch.cat([person, got]), torch.cat([anchor, f_reserved[got]])
        quality = torch.cat([quality, f_quality])
        metric = torch.cat([metric, scores[fb, fa].clamp(min=0.0).pow(alpha) * f_quality.pow(beta)])
        reserved = torch.where(f_reserved >= 0, f_reserved, reserved)

    owner = torch.full((flat_anchors,), -1, dtype=torch.long, device=device)
    if topk > 1:
        # An anchor claimed by several persons goes to the one with the higher quality.
        claim = _topk_per_person(person, metric, topk, flat_persons)
        wins = _winners(person[claim], anchor[claim], quality[claim], flat_persons, flat_anchors)
        owner[anchor[claim][wins]] = person[claim][wins]
    matched = (reserved >= 0).nonzero().squeeze(1)
    owner[reserved[matched]] = matched  # reserved anchors override claims

    # Soft targets: per person, t / max(t) * max(quality) over its positives.
    pos = (owner[anchor] == person).nonzero().squeeze(1)
    p_person, p_anchor = person[pos], anchor[pos]
    best_metric = torch.zeros(flat_persons, device=device).scatter_reduce(0, p_person, metric[pos], reduce="amax")
    best_quality = torch.zeros_like(best_metric).scatter_reduce(0, p_person, quality[pos], reduce="amax")
    # Safe division instead of TAL's +eps: OKS^6 of an untrained model can be ~1e-12 and must
    # still give its best anchor the full target.
    ratio = metric[pos] / best_metric[p_person].clamp(min=torch.finfo(metric.dtype).tiny)
    target_scores = torch.zeros(flat_anchors, device=device)
    target_scores[p_anchor] = ratio.clamp(max=1.0) * best_quality[p_person]
    pos_quality = torch.zeros(flat_anchors, device=device)
    pos_quality[p_anchor] = quality[pos]
    return _gather_assignment(
        owner.view(batch, num_anchors), target_scores.view(batch, num_anchors), pos_quality.view(batch, num_anchors),
        covered, gt_keypoints, gt_areas, gt_boxes, candidates_per_person.view(batch, num_persons),
    )


def _gather_assignment(
    owner: torch.Tensor, target_scores: torch.Tensor, quality: torch.Tensor, covered: torch.Tensor,
    gt_keypoints: torch.Tensor, gt_areas: torch.Tensor, gt_boxes: torch.Tensor, candidates_per_person: torch.Tensor,
) -> Assignment:
    """Build the ``Assignment`` from flat-person owners (B, A), filling the assigned ground truth."""
    batch, num_persons = gt_areas.shape
    positive = owner >= 0
    person_index = torch.where(positive, owner % max(num_persons, 1), -1)  # N = 0: a batch without persons
    pb, pa = positive.nonzero(as_tuple=True)
    pn = person_index[pb, pa]
    keypoints = gt_keypoints.new_zeros(*owner.shape, *gt_keypoints.shape[2:])
    keypoints[pb, pa] = gt_keypoints[pb, pn]
    areas = gt_areas.new_zeros(owner.shape)
    areas[pb, pa] = gt_areas[pb, pn]
    boxes = gt_boxes.new_zeros(*owner.shape, 4)
    boxes[pb, pa] = gt_boxes[pb, pn]
    positives_per_person = torch.bincount(owner[positive], minlength=batch * num_persons).view(batch, num_persons)
    return Assignment(
        person_index=person_index, positive=positive, target_scores=target_scores, ignore=covered & ~positive,
        keypoints=keypoints, areas=areas, boxes=boxes, quality=quality,
        positives_per_person=positives_per_person, candidates_per_person=candidates_per_person,
    )


def _fallback_pairs(
    unmatched: torch.Tensor, anchor_pixels: torch.Tensor, gt_keypoints: torch.Tensor, covered: torch.Tensor,
    num_persons: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (person, anchor) pairs of the unmatched persons, keyed by closeness (ignore-covered last)."""
    ids = unmatched.nonzero().squeeze(1)  # flat person ids
    b = ids // num_persons
    ext = keypoint_extent_boxes(gt_keypoints.flatten(0, 1)[ids])
    centres = 0.5 * (ext[:, :2] + ext[:, 2:])  # (F, 2)
    distance = (anchor_pixels[None] - centres[:, None]).norm(dim=-1)  # (F, A)
    span = float((anchor_pixels.amax(dim=0) - anchor_pixels.amin(dim=0)).norm()) + 1.0
    key = -distance / span - covered[b].float()
    num_anchors = anchor_pixels.shape[0]
    person = ids[:, None].expand(-1, num_anchors).flatten()
    anchor = (b[:, None] * num_anchors + torch.arange(num_anchors, device=ids.device)).flatten()
    return person, anchor, key.flatten()


def _clean_boxes(gt_boxes: torch.Tensor, gt_keypoints: torch.Tensor) -> torch.Tensor:
    """Replace NaN box rows by the tight keypoint box (METHOD.md: the box is optional)."""
    finite = torch.isfinite(gt_boxes).all(dim=-1, keepdim=True)
    return torch.where(finite, gt_boxes, keypoint_extent_boxes(gt_keypoints))


@torch.no_grad()
def assign_by_keypoints(
    scores: torch.Tensor,
    pred_keypoints: torch.Tensor,
    anchor_pixels: torch.Tensor,
    strides: torch.Tensor,
    gt_keypoints: torch.Tensor,
    gt_areas: torch.Tensor,
    gt_boxes: torch.Tensor,
    person_mask: torch.Tensor,
    ignore_boxes: torch.Tensor,
    ignore_mask: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 6.0,
    topk: int = 10,
    candidates: str = "keypoints",
    margin: float = 0.1,
    margin_strides: float = 0.5,
    fallback_radius: float = 1.5,
    use_level_gate: bool = True,
    level_band: tuple[float, float] = (2.0, 8.0),
) -> Assignment:
    """OKS-aligned dynamic assignment (ER-Pose, ablation steps B1..B5).

    Args:
        scores: (B, A) predicted person scores as probabilities in [0, 1] (sigmoid applied).
        pred_keypoints: (B, A, K, 2 or 3) decoded predicted keypoints, pixels (visibility unused).
        anchor_pixels: (A, 2) anchor centres, pixels.
        strides: (A,) pixels.
        gt_keypoints: (B, N, K, 3) x, y pixels, v.
        gt_areas: (B, N) OKS areas, pixels^2.
        gt_boxes: (B, N, 4) x1y1x2y2 pixels (NaN rows replaced by the keypoint box).
        person_mask: (B, N) bool, real (non-padding) persons.
        ignore_boxes: (B, M, 4), ignore_mask: (B, M) crowd regions.
        sigmas: (K,) OKS sigmas.
        alpha, beta: alignment exponents ``t = score^alpha * OKS^beta``.
        topk: positives per person; 1 gives the one-to-one (o2o) assignment.
        candidates: ``"keypoints"`` (expanded keypoint box, B3+) or ``"gt_box"`` (anchor centres
            inside the ground-truth box, B1/B2).
        margin, margin_strides, fallback_radius: see ``keypoint_candidates``.
        use_level_gate: restrict candidates to the levels ``level_gate`` allows.
        level_band: (low, high) bounds on ``sqrt(A) / stride``.

    Returns:
        The ``Assignment``; ``quality`` holds OKS.
    """
    if candidates not in ("keypoints", "gt_box"):
        raise ValueError(f"candidates must be 'keypoints' or 'gt_box', got {candidates!r}")
    scores, pred_xy = scores.float(), pred_keypoints[..., :2].float()
    gt_keypoints, gt_areas = gt_keypoints.float(), gt_areas.float()
    gt_boxes = _clean_boxes(gt_boxes.float(), gt_keypoints)
    anchor_pixels, strides, sigmas = anchor_pixels.float(), strides.float(), sigmas.float()
    if candidates == "keypoints":
        cand = keypoint_candidates(anchor_pixels, strides, gt_keypoints, margin, margin_strides, fallback_radius)
    else:
        cand = points_in_boxes(anchor_pixels, gt_boxes)
    if use_level_gate:
        cand &= level_gate(gt_areas, strides, level_band)

    def quality_fn(b: torch.Tensor, n: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return oks(pred_xy[b, a], gt_keypoints[b, n], gt_areas[b, n], sigmas)

    return _assign_core(
        scores, anchor_pixels, gt_keypoints, gt_areas, gt_boxes, person_mask, ignore_boxes.float(),
        ignore_mask, cand, quality_fn, alpha, beta, topk,
    )


@torch.no_grad()
def assign_by_box_iou(
    scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    anchor_pixels: torch.Tensor,
    gt_keypoints: torch.Tensor,
    gt_areas: torch.Tensor,
    gt_boxes: torch.Tensor,
    person_mask: torch.Tensor,
    ignore_boxes: torch.Tensor,
    ignore_mask: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 6.0,
    topk: int = 10,
) -> Assignment:
    """Task-aligned assignment by box IoU (the YOLO-Pose baseline, B0).

    Candidates are anchor centres strictly inside the ground-truth box, quality is the CIoU of the
    predicted box (clamped at 0), ``t = score^alpha * CIoU^beta``, top-k per person, conflicts to
    the higher CIoU, soft targets normalised by the best CIoU.

    Args:
        scores: (B, A) predicted person (class) scores as probabilities in [0, 1].
        pred_boxes: (B, A, 4) decoded predicted boxes x1y1x2y2, pixels.
        anchor_pixels: (A, 2) anchor centres, pixels.
        gt_keypoints: (B, N, K, 3); persons without labelled keypoints become ignore regions.
        gt_areas: (B, N); gt_boxes: (B, N, 4); person_mask: (B, N).
        ignore_boxes: (B, M, 4), ignore_mask: (B, M).
        alpha, beta, topk: as in ``assign_by_keypoints``.

    Returns:
        The ``Assignment``; ``quality`` holds CIoU.
    """
    scores, pred_boxes = scores.float(), pred_boxes.float()
    gt_keypoints, gt_areas = gt_keypoints.float(), gt_areas.float()
    gt_boxes = _clean_boxes(gt_boxes.float(), gt_keypoints)
    anchor_pixels = anchor_pixels.float()
    cand = points_in_boxes(anchor_pixels, gt_boxes)

    def quality_fn(b: torch.Tensor, n: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return complete_box_iou(pred_boxes[b, a], gt_boxes[b, n])

    return _assign_core(
        scores, anchor_pixels, gt_keypoints, gt_areas, gt_boxes, person_mask, ignore_boxes.float(),
        ignore_mask, cand, quality_fn, alpha, beta, topk,
    )
