import math

import pytest
import torch

from erpose.geometry.boxes import (
    box_iou,
    boxes_to_distances,
    complete_box_iou,
    distances_to_boxes,
    distribution_to_distances,
    pairwise_box_iou,
)


def test_iou_hand_values():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 1.0, 3.0, 3.0])
    assert box_iou(a, b).item() == pytest.approx(1 / 7)
    assert box_iou(a, torch.tensor([5.0, 5.0, 6.0, 6.0])).item() == 0.0
    pair = pairwise_box_iou(torch.stack([a, b]), torch.stack([a, b, a]))
    assert pair.shape == (2, 3)
    assert pair[0].tolist() == pytest.approx([1.0, 1 / 7, 1.0])


def test_ciou_hand_computed():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])  # 2 x 2, centre (1, 1)
    b = torch.tensor([1.0, 1.0, 4.0, 3.0])  # 3 x 2, centre (2.5, 2)
    iou = 1.0 / 9.0  # intersection 1, union 4 + 6 - 1
    rho2 = 1.5**2 + 1.0**2
    c2 = 4.0**2 + 3.0**2  # enclosing box 0..4 x 0..3
    v = 4 / math.pi**2 * (math.atan(3 / 2) - math.atan(2 / 2)) ** 2
    alpha = v / (1 - iou + v)
    expected = iou - rho2 / c2 - alpha * v
    assert complete_box_iou(a, b).item() == pytest.approx(expected, abs=1e-6)
    assert complete_box_iou(a, a).item() == pytest.approx(1.0, abs=1e-6)


def test_ciou_equals_iou_for_concentric_similar_boxes_and_has_gradient():
    gt = torch.tensor([0.0, 0.0, 32.0, 32.0])
    pred = torch.tensor([8.0, 8.0, 24.0, 24.0], requires_grad=True)
    value = complete_box_iou(pred, gt)
    assert value.item() == pytest.approx(0.25, abs=1e-6)
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_distance_coding_hand_values_and_round_trip():
    anchor = torch.tensor([5.0, 5.0])
    box = torch.tensor([2.0, 3.0, 10.0, 6.0])
    assert boxes_to_distances(anchor, box, 15).tolist() == [3.0, 2.0, 5.0, 1.0]
    clamped = boxes_to_distances(anchor, box, 4)
    assert clamped.tolist() == pytest.approx([3.0, 2.0, 3.99, 1.0])
    assert distances_to_boxes(anchor, boxes_to_distances(anchor, box, 15)).tolist() == box.tolist()


def test_distribution_expectation():
    logits = torch.full((4, 16), -1e4)
    logits[torch.arange(4), torch.tensor([0, 3, 7, 15])] = 0.0
    assert distribution_to_distances(logits).tolist() == [0.0, 3.0, 7.0, 15.0]
    assert distribution_to_distances(torch.zeros(16)).item() == pytest.approx(7.5)
