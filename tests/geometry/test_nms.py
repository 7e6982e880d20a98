import torch

from erpose.geometry.nms import box_nms, greedy_keep, oks_nms, pairwise_box_iou
from erpose.geometry.oks import pairwise_oks


def _reference_greedy(similarity, threshold):
    """Textbook greedy NMS with a Python loop (items sorted best first)."""
    keep = []
    for j in range(similarity.shape[0]):
        if all(similarity[i, j] <= threshold for i in keep):
            keep.append(j)
    return keep


def test_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert torch.allclose(pairwise_box_iou(a, b), torch.tensor([[50 / 150, 0.0]]))


def test_box_nms_chain_keeps_the_third_box():
    # A (best) overlaps B strongly; B overlaps C strongly; A and C barely. Greedy keeps A and C.
    boxes = torch.tensor([[0.0, 0, 10, 10], [3.0, 0, 13, 10], [6.0, 0, 16, 10], [50.0, 50, 60, 60]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    keep = box_nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2, 3]  # IoU(A,B)=0.538 > 0.5 ; IoU(A,C)=0.25 ; IoU(B,C)=0.538
    # Order of the inputs does not matter; indices refer to the inputs, best first.
    perm = torch.tensor([3, 1, 0, 2])
    assert perm[box_nms(boxes[perm], scores[perm], 0.5)].tolist() == [0, 2, 3]


def test_greedy_keep_matches_reference_loop():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(1, 40, (1,), generator=gen))
        xy = torch.rand(n, 2, generator=gen) * 50
        wh = torch.rand(n, 2, generator=gen) * 30 + 5
        boxes = torch.cat((xy, xy + wh), dim=1)
        iou = pairwise_box_iou(boxes, boxes)
        keep = greedy_keep(iou, 0.3)
        assert torch.nonzero(keep).flatten().tolist() == _reference_greedy(iou, 0.3)


def test_oks_nms_drops_duplicate_pose_keeps_distinct_one():
    sigmas = torch.tensor([0.1, 0.1, 0.1])
    person = torch.tensor([[10.0, 10.0], [30.0, 10.0], [20.0, 40.0]])
    poses = torch.stack([person, person + 0.5, person + 100.0])  # a near-duplicate and another person
    scores = torch.tensor([0.6, 0.9, 0.8])
    keep = oks_nms(poses, scores, sigmas, threshold=0.7)
    assert keep.tolist() == [1, 2]
    # The duplicate's OKS to the kept pose (its area from the keypoint extent) is far above 0.7.
    area = 0.53 * 20 * 30
    gt = torch.cat((poses[1], torch.full((3, 1), 2.0)), dim=1)
    assert pairwise_oks(poses[:1], gt[None], torch.tensor([area]), sigmas).item() > 0.95
    # With a strict threshold nothing is a duplicate.
    assert sorted(oks_nms(poses, scores, sigmas, threshold=0.999).tolist()) == [0, 1, 2]


def test_nms_empty_inputs():
    assert box_nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    assert oks_nms(torch.zeros(0, 3, 2), torch.zeros(0), torch.ones(3) * 0.1, 0.5).numel() == 0


def test_numpy_and_torch_oks_nms_agree():
    """One OKS-NMS per framework: the torch-free runtime's numpy version keeps the same poses."""
    import numpy as np

    from erpose.runtime.nms import oks_nms as numpy_oks_nms
    from erpose.skeleton import COCO17

    generator = torch.Generator().manual_seed(0)
    sigmas = torch.tensor(COCO17.sigmas)
    for trial in range(20):
        centres = torch.rand(6, 1, 2, generator=generator) * 200
        people = centres + torch.randn(6, 17, 2, generator=generator) * 20
        copies = people[torch.randint(0, 6, (30,), generator=generator)]
        poses = copies + torch.randn(30, 17, 2, generator=generator) * (1 + trial)
        scores = torch.rand(30, generator=generator)
        for threshold in (0.5, 0.7, 0.9):
            expected = oks_nms(poses, scores, sigmas, threshold).tolist()
            got = numpy_oks_nms(poses.numpy(), scores.numpy(), sigmas.numpy(), threshold).tolist()
            assert got == expected, (trial, threshold)
    assert numpy_oks_nms(np.zeros((0, 17, 2)), np.zeros(0), sigmas.numpy(), 0.5).size == 0
