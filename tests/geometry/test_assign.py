import time

import pytest
import torch

from erpose.geometry.assign import (
    assign_by_box_iou,
    assign_by_keypoints,
    keypoint_candidates,
    level_gate,
    points_in_boxes,
)

SIGMAS = torch.full((4,), 0.08)


def grid(size, strides=(8,)):
    """Anchor centres (A, 2) pixels and strides (A,), level by level."""
    points, per_anchor = [], []
    for s in strides:
        n = size // s
        y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        points.append((torch.stack([x, y], -1).reshape(-1, 2).float() + 0.5) * s)
        per_anchor.append(torch.full((n * n,), float(s)))
    return torch.cat(points), torch.cat(per_anchor)


def person(cx, cy, half=6.0, labelled=4):
    """4 keypoints on a square around (cx, cy); the first ``labelled`` are labelled."""
    kp = torch.tensor([[cx - half, cy - half, 2.0], [cx + half, cy - half, 2.0],
                       [cx - half, cy + half, 2.0], [cx + half, cy + half, 2.0]])
    kp[labelled:] = 0.0
    return kp


def batch_of(persons, ignore=None, mask=None):
    kp = torch.stack(persons)[None]  # (1, N, 4, 3)
    labelled = kp[..., 2] > 0
    xy = kp[..., :2]
    lo = torch.where(labelled[..., None], xy, torch.full_like(xy, 1e9)).amin(2)
    hi = torch.where(labelled[..., None], xy, torch.full_like(xy, -1e9)).amax(2)
    boxes = torch.cat([lo - 4, hi + 4], -1)
    boxes = torch.where(labelled.any(-1, keepdim=True), boxes, torch.zeros_like(boxes))
    areas = torch.full((1, kp.shape[1]), 400.0)
    person_mask = torch.ones(1, kp.shape[1], dtype=torch.bool) if mask is None else mask
    ignore_boxes = torch.zeros(1, 1, 4) if ignore is None else torch.tensor([ignore], dtype=torch.float32)[None]
    ignore_mask = torch.tensor([[ignore is not None]])
    return kp, areas, boxes, person_mask, ignore_boxes, ignore_mask


def run(pred, anchors, strides, gt, scores=None, **kw):
    kp, areas, boxes, person_mask, ignore_boxes, ignore_mask = gt
    if scores is None:
        scores = torch.full(pred.shape[:2], 0.5)
    kw.setdefault("use_level_gate", False)
    return assign_by_keypoints(scores, pred, anchors, strides, kp, areas, boxes, person_mask,
                               ignore_boxes, ignore_mask, SIGMAS, **kw)


def far_predictions(num_anchors):
    return torch.full((1, num_anchors, 4, 3), -1000.0)


def test_every_labelled_person_gets_positives_and_exactly_one_o2o():
    anchors, strides = grid(64)
    gt = batch_of([person(16, 16), person(44, 44), person(20, 44, labelled=0), person(0, 0)],
                  mask=torch.tensor([[True, True, True, False]]))
    pred = far_predictions(len(anchors))
    o2m = run(pred, anchors, strides, gt, topk=10)
    o2o = run(pred, anchors, strides, gt, topk=1)
    assert o2m.positives_per_person[0, :2].min() >= 1
    assert o2o.positives_per_person[0].tolist() == [1, 1, 0, 0]
    assert o2m.positives_per_person[0, 2:].sum() == 0  # unlabelled and padding persons
    # The unlabelled person's box is an ignore region.
    inside_unlabelled = points_in_boxes(anchors, gt[2][:, 2:3])[0, 0]
    assert o2m.ignore[0, inside_unlabelled].all()
    assert not (o2m.ignore & o2m.positive).any()
    assert set(o2m.person_index[0].unique().tolist()) <= {-1, 0, 1}


def test_no_positive_in_ignore_regions_even_with_perfect_predictions():
    anchors, strides = grid(64)
    gt = batch_of([person(20, 20, half=10)], ignore=[0.0, 0.0, 24.0, 64.0])
    pred = far_predictions(len(anchors))
    covered = points_in_boxes(anchors, gt[4])[0, 0]
    pred[0, covered] = gt[0][0, 0]  # perfect keypoints inside the ignore region
    out = run(pred, anchors, strides, gt, topk=10)
    assert out.positives_per_person[0, 0] >= 1
    assert not out.positive[0, covered].any()
    assert out.ignore[0, covered].all()
    assert (out.target_scores[0, covered] == 0).all()


def test_anchor_claimed_by_two_people_goes_to_higher_oks():
    anchors, strides = grid(64)
    a, b = person(30, 30), person(34, 30)
    gt = batch_of([a, b])
    contested = int(((anchors - torch.tensor([28.0, 28.0])).norm(dim=-1)).argmin())
    for winner, kp in ((1, b), (0, a)):
        pred = far_predictions(len(anchors))
        pred[0, contested] = kp  # the only good prediction; both persons want this anchor
        for topk in (1, 10):
            out = run(pred, anchors, strides, gt, topk=topk)
            assert out.person_index[0, contested] == winner
            assert out.positives_per_person[0].min() >= 1
            assert out.quality[0, contested] == pytest.approx(1.0)


def test_single_labelled_keypoint_person_is_assigned_near_its_keypoint():
    anchors, strides = grid(64, (8, 16))
    gt = batch_of([person(40, 24, labelled=1)])
    pred = far_predictions(len(anchors))
    for topk in (1, 10):
        out = run(pred, anchors, strides, gt, topk=topk)
        assert out.positives_per_person[0, 0] == (1 if topk == 1 else min(topk, int(out.candidates_per_person[0, 0])))
        pos = out.positive[0]
        assert (anchors[pos] - torch.tensor([34.0, 18.0])).abs().amax() <= 1.5 * 16 + 1e-6
    cand = keypoint_candidates(anchors, strides, gt[0], 0.1, 0.5, 1.5)[0, 0]
    # 3 x 3 stride-8 cells around the keypoint, plus the stride-16 neighbourhood.
    assert cand[:64].sum() == 9 and cand[64:].sum() >= 4


def test_o2m_claim_conflict_goes_to_higher_oks_beyond_the_reserved_anchors():
    anchors, strides = grid(64)
    a, b = person(28, 28), person(36, 28)
    gt = batch_of([a, b])
    index = {tuple(p): i for i, p in enumerate(anchors.tolist())}
    own_a, own_b, contested = index[(20.0, 28.0)], index[(44.0, 28.0)], index[(28.0, 28.0)]
    for winner, shift in ((1, 6.0), (0, 2.0)):
        pred = far_predictions(len(anchors))
        pred[0, own_a], pred[0, own_b] = a, b  # each person's reserved (o2o) anchor
        pred[0, contested] = a
        pred[0, contested, :, 0] += shift  # closer to b for shift 6, to a for shift 2
        out = run(pred, anchors, strides, gt, topk=10)
        assert out.person_index[0, own_a] == 0 and out.person_index[0, own_b] == 1
        assert out.person_index[0, contested] == winner


def test_soft_target_of_best_anchor_is_best_oks_below_one():
    anchors, strides = grid(64)
    gt = batch_of([person(32, 32)])
    pred = far_predictions(len(anchors))
    near = (anchors - 32).norm(dim=-1).argsort()[:2]
    pred[0, near] = gt[0][0, 0]
    pred[0, near[0], :, 0] += 3.0
    pred[0, near[1], :, 0] += 5.0
    out = run(pred, anchors, strides, gt, topk=10)
    oks0 = torch.exp(torch.tensor(-9.0 / (2 * 400 * (2 * 0.08) ** 2))).item()
    assert out.quality[0, near[0]] == pytest.approx(oks0, rel=1e-5)
    assert out.target_scores[0, near[0]] == pytest.approx(oks0, rel=1e-5)
    assert out.target_scores.max() == pytest.approx(oks0, rel=1e-5)


def test_person_inside_an_ignore_region_keeps_its_own_candidates():
    anchors, strides = grid(64)
    gt = batch_of([person(32, 32)], ignore=[16.0, 16.0, 48.0, 48.0])
    out = run(far_predictions(len(anchors)), anchors, strides, gt, topk=10)
    assert out.positives_per_person[0, 0] >= 1
    assert ((anchors[out.positive[0]] - 32).abs() <= 12).all()  # within the expanded keypoint box
    assert not (out.ignore & out.positive).any()


def test_soft_targets_best_equals_best_oks():
    anchors, strides = grid(64)
    gt = batch_of([person(32, 32)])
    pred = far_predictions(len(anchors))
    near = (anchors - 32).norm(dim=-1).argsort()[:3]
    for i, shift in zip(near.tolist(), (0.0, 2.0, 4.0)):
        pred[0, i] = gt[0][0, 0]
        pred[0, i, :, 0] += shift
    out = run(pred, anchors, strides, gt, topk=10)
    assert out.target_scores.max() == pytest.approx(1.0)
    assert out.target_scores[0, near[0]] == pytest.approx(1.0)
    # t2 / t1 = OKS2^6 (equal scores); target2 = that ratio times the best OKS (1).
    assert out.target_scores[0, near[1]] == pytest.approx(float(out.quality[0, near[1]]) ** 6, rel=1e-4)
    assert (out.target_scores <= out.quality + 1e-6).all()
    o2o = run(pred, anchors, strides, gt, topk=1)
    assert o2o.positive.sum() == 1 and o2o.target_scores[0, near[0]] == pytest.approx(1.0)


def test_exclusive_matching_gives_distinct_anchors_when_candidates_run_out():
    anchors, strides = grid(64)
    # Three single-keypoint persons on the same spot: few candidates, all contested.
    gt = batch_of([person(36, 36, labelled=1)] * 3)
    out = run(far_predictions(len(anchors)), anchors, strides, gt, topk=1, fallback_radius=0.0, margin_strides=0.5)
    assert out.positives_per_person[0].tolist() == [1, 1, 1]
    assert out.positive.sum() == 3


def test_level_gate_hand_values():
    strides = torch.tensor([8.0, 16.0, 32.0])
    areas = torch.tensor([[16.0**2, 256.0**2, 4.0**2, 48.0**2]])
    allowed = level_gate(areas, strides, (2.0, 8.0))[0]
    assert allowed[0].tolist() == [True, False, False]  # ratios 2, 1, 0.5
    assert allowed[1].tolist() == [False, False, True]  # ratios 32, 16, 8
    assert allowed[2].tolist() == [True, False, False]  # nothing in band: best-fitting level
    assert allowed[3].tolist() == [True, True, False]  # ratios 6, 3, 1.5


def test_gt_box_candidates_and_gate_used():
    anchors, strides = grid(64, (8, 16, 32))
    gt = batch_of([person(20, 20, half=4)])  # box 12..28
    out = run(far_predictions(len(anchors)), anchors, strides, gt, topk=100, candidates="gt_box")
    inside = points_in_boxes(anchors, gt[2])[0, 0]
    assert out.candidates_per_person[0, 0] == inside.sum()
    assert (out.positive[0] == inside).all()
    gated = run(far_predictions(len(anchors)), anchors, strides, gt, topk=100, use_level_gate=True)
    assert (strides[gated.positive[0]] == 8).all()  # sqrt(400)/8 = 2.5 in band, /16 = 1.25 not


def test_task_aligned_box_assignment_hand_case():
    anchors, strides = grid(64)
    kp, areas, _, person_mask, ignore_boxes, ignore_mask = batch_of([person(16, 16)])
    boxes = torch.tensor([[[0.0, 0.0, 32.0, 32.0]]])
    pred = torch.tensor([-100.0, -100.0, -99.0, -99.0]).repeat(1, len(anchors), 1)
    best, second, outside = 9, 0, 63  # anchors (12,12), (4,4) inside the box, (60,60) outside
    pred[0, best] = boxes[0, 0]
    pred[0, second] = torch.tensor([8.0, 8.0, 24.0, 24.0])  # same centre and shape: CIoU = IoU = 1/4
    pred[0, outside] = boxes[0, 0]
    out = assign_by_box_iou(torch.full((1, len(anchors)), 0.5), pred, anchors, kp, areas, boxes, person_mask,
                            ignore_boxes, ignore_mask, topk=2)
    assert out.positive[0].nonzero().flatten().tolist() == [second, best]
    assert out.target_scores[0, best] == pytest.approx(1.0)
    assert out.target_scores[0, second] == pytest.approx(0.25**6, rel=1e-4)
    assert out.quality[0, second] == pytest.approx(0.25, rel=1e-5)
    assert torch.equal(out.boxes[0, best], boxes[0, 0])


def test_task_aligned_conflict_goes_to_higher_iou():
    anchors, strides = grid(64)
    kp, areas, _, person_mask, ignore_boxes, ignore_mask = batch_of([person(16, 16), person(24, 16)])
    boxes = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [8.0, 0.0, 40.0, 32.0]]])
    pred = torch.tensor([-100.0, -100.0, -99.0, -99.0]).repeat(1, len(anchors), 1)
    shared = 10  # anchor (20, 12), inside both boxes
    pred[0, shared] = boxes[0, 1]
    out = assign_by_box_iou(torch.full((1, len(anchors)), 0.5), pred, anchors, kp, areas, boxes, person_mask,
                            ignore_boxes, ignore_mask, topk=10)
    assert out.person_index[0, shared] == 1
    assert out.positives_per_person[0].min() >= 1


def test_empty_batch_has_no_positives():
    anchors, strides = grid(32)
    gt = batch_of([person(0, 0)], mask=torch.tensor([[False]]))
    out = run(far_predictions(len(anchors)), anchors, strides, gt)
    assert not out.positive.any() and out.target_scores.sum() == 0 and out.person_index.eq(-1).all()
    # A batch padded to zero persons and zero ignore regions (collate of empty images).
    no_persons = (torch.zeros(1, 0, 4, 3), torch.zeros(1, 0), torch.zeros(1, 0, 4), torch.zeros(1, 0, dtype=torch.bool),
                  torch.zeros(1, 0, 4), torch.zeros(1, 0, dtype=torch.bool))
    out = run(far_predictions(len(anchors)), anchors, strides, no_persons)
    assert not out.positive.any() and out.keypoints.shape == (1, len(anchors), 4, 3)
    kp, areas, boxes, mask, ignore_boxes, ignore_mask = no_persons
    tal = assign_by_box_iou(torch.rand(1, len(anchors)), torch.rand(1, len(anchors), 4), anchors, kp, areas, boxes,
                            mask, ignore_boxes, ignore_mask)
    assert not tal.positive.any()


def test_speed_b16_n30_a8400():
    """Vectorised: one call on B=16, N=30, A=8400, K=17 takes ~0.1 s of CPU (a Python loop over persons would take seconds)."""
    torch.manual_seed(0)
    anchors, strides = grid(640, (8, 16, 32))
    num_anchors = len(anchors)
    batch, num_persons, k = 16, 30, 17
    centres = torch.rand(batch, num_persons, 1, 2) * 560 + 40
    sizes = torch.rand(batch, num_persons, 1, 1) * 150 + 10
    xy = centres + (torch.rand(batch, num_persons, k, 2) - 0.5) * sizes
    kp = torch.cat([xy, torch.full((batch, num_persons, k, 1), 2.0)], -1)
    areas = sizes[..., 0, 0] ** 2 * 0.5
    boxes = torch.cat([xy.amin(2), xy.amax(2)], -1)
    pred = kp[:, torch.randint(0, num_persons, (num_anchors,))] + torch.randn(batch, num_anchors, k, 3) * 10
    args = (torch.rand(batch, num_anchors), pred, anchors, strides, kp, areas, boxes,
            torch.ones(batch, num_persons, dtype=torch.bool), torch.zeros(batch, 0, 4),
            torch.zeros(batch, 0, dtype=torch.bool), torch.full((k,), 0.07))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread: robust to the load of a shared machine
    try:
        assign_by_keypoints(*args)
        start = time.process_time()
        out = assign_by_keypoints(*args)
        o2o = assign_by_keypoints(*args, topk=1)
        elapsed = (time.process_time() - start) / 2
    finally:
        torch.set_num_threads(threads)
    assert out.positives_per_person.min() >= 1
    assert (o2o.positives_per_person == 1).all()
    assert elapsed < 2.0, f"assigner took {elapsed:.3f} s of CPU"
