import math

import pytest
import torch

from erpose.geometry.decode import (
    decode_dfl_boxes,
    decode_keypoints,
    dfl_expectation,
    pack_poses,
    select_topk,
)


def test_decode_keypoints_hand_computed():
    # Anchor (cell 2, row 1) on stride 16 -> a = (2.5, 1.5); r = (0.25, -1.0) -> ((2.75) * 16, (0.5) * 16).
    anchors = torch.tensor([[2.5, 1.5], [0.5, 0.5]])
    strides = torch.tensor([16.0, 8.0])
    offsets = torch.zeros(1, 2, 2, 2)
    offsets[0, 0, 0] = torch.tensor([0.25, -1.0])
    offsets[0, 0, 1] = torch.tensor([-2.5, 3.0])
    out = decode_keypoints(offsets, anchors, strides)
    assert out.shape == (1, 2, 2, 2)
    assert torch.allclose(out[0, 0, 0], torch.tensor([44.0, 8.0]))
    assert torch.allclose(out[0, 0, 1], torch.tensor([0.0, 72.0]))
    assert torch.allclose(out[0, 1], torch.tensor([[4.0, 4.0], [4.0, 4.0]]))  # zero offset -> cell centre


def test_dfl_expectation_hand_computed():
    logits = torch.full((4,), -1e4)
    logits[1] = logits[3] = 0.0  # half the mass on bin 1, half on bin 3 -> 2
    assert math.isclose(dfl_expectation(logits).item(), 2.0, abs_tol=1e-6)
    assert math.isclose(dfl_expectation(torch.zeros(16)).item(), 7.5, abs_tol=1e-5)  # uniform over 0..15


def test_decode_dfl_boxes_hand_computed():
    reg_max = 4
    dist = torch.full((1, 1, 4, reg_max), -1e4)
    for side, bin_index in enumerate([1, 2, 3, 0]):  # l=1, t=2, r=3, b=0 cells
        dist[0, 0, side, bin_index] = 0.0
    boxes = decode_dfl_boxes(dist, torch.tensor([[3.5, 2.5]]), torch.tensor([8.0]))
    assert torch.allclose(boxes[0, 0], torch.tensor([(3.5 - 1) * 8, (2.5 - 2) * 8, (3.5 + 3) * 8, 2.5 * 8]))


def test_pack_layout_and_topk_sorted_and_padded():
    scores = torch.tensor([[0.1, 0.9, 0.5]])
    keypoints = torch.arange(3 * 2 * 3, dtype=torch.float32).view(1, 3, 2, 3)
    poses = pack_poses(scores, keypoints)
    assert poses.shape == (1, 3, 7)
    assert torch.equal(poses[0, 1], torch.tensor([0.9, 6, 7, 8, 9, 10, 11]))
    top = select_topk(poses, 5)
    assert top.shape == (1, 5, 7)
    assert torch.equal(top[0, :3, 0], torch.tensor([0.9, 0.5, 0.1]))
    assert torch.equal(top[0, 0], poses[0, 1]) and torch.equal(top[0, 1], poses[0, 2])
    assert torch.equal(top[0, 3:], torch.zeros(2, 7))
    assert select_topk(poses, 2).shape == (1, 2, 7)


@pytest.mark.parametrize("num_anchors", [40, 3])  # more and fewer anchor points than max_det
def test_decode_topk_equals_decoding_everything_then_selecting(num_anchors):
    from erpose.geometry.decode import decode_topk

    g = torch.Generator().manual_seed(0)
    b, k, max_det = 2, 4, 6
    logits = torch.randn(b, num_anchors, generator=g)
    offsets = torch.randn(b, num_anchors, k, 2, generator=g) * 3
    visibility = torch.randn(b, num_anchors, k, generator=g)
    anchors = torch.rand(num_anchors, 2, generator=g) * 10
    strides = torch.tensor([8.0, 16.0, 32.0]).repeat(num_anchors)[:num_anchors]
    keypoints = torch.cat((decode_keypoints(offsets, anchors, strides), visibility.sigmoid()[..., None]), dim=-1)
    expected = select_topk(pack_poses(logits.sigmoid(), keypoints), max_det)
    got = decode_topk(logits, offsets, visibility, anchors, strides, max_det)
    assert got.shape == (b, max_det, 1 + 3 * k)
    assert torch.allclose(got, expected, atol=1e-6)
    if num_anchors < max_det:
        assert (got[:, num_anchors:] == 0).all()
