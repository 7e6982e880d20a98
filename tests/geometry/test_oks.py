import math

import numpy as np
import torch

from erpose.geometry.oks import keypoint_extent_areas, keypoint_extent_boxes, oks, pairwise_oks
from erpose.skeleton import COCO17


def _reference_oks(pred, gt, area, sigmas):
    """pycocotools computeOks for one pair, written out with numpy."""
    variances = (2 * np.asarray(sigmas)) ** 2
    vis = gt[:, 2] > 0
    d2 = (pred[:, 0] - gt[:, 0]) ** 2 + (pred[:, 1] - gt[:, 1]) ** 2
    e = d2 / variances / (area + np.spacing(1)) / 2
    return float(np.exp(-e[vis]).sum() / vis.sum())


def test_oks_hand_computed_two_keypoints():
    sigmas = torch.tensor([0.1, 0.2])
    gt = torch.tensor([[10.0, 10.0, 2.0], [20.0, 20.0, 1.0]])
    pred = torch.tensor([[13.0, 14.0], [20.0, 20.0]])  # d = 5 px for the first, 0 for the second
    area = torch.tensor(100.0)
    # u^2 = 25 / (2 * 100 * (0.2)^2) = 3.125 ; second keypoint exact -> 1
    expected = (math.exp(-3.125) + 1.0) / 2
    assert abs(oks(pred, gt, area, sigmas).item() - expected) < 1e-6


def test_oks_ignores_unlabelled_and_equals_one_on_ground_truth():
    sigmas = torch.tensor(COCO17.sigmas)
    gt = torch.rand(17, 3) * 100
    gt[:, 2] = 2
    gt[3, 2] = 0
    pred = gt[:, :2].clone()
    pred[3] += 50  # far off, but unlabelled
    assert torch.allclose(oks(pred, gt, torch.tensor(500.0), sigmas), torch.tensor(1.0))


def test_pairwise_oks_matches_reference():
    rng = np.random.default_rng(0)
    gts = rng.uniform(0, 200, (3, 17, 3)).astype(np.float32)
    gts[..., 2] = rng.integers(0, 3, (3, 17))
    gts[:, 0, 2] = 2
    preds = gts[:, :, :2][[0, 1, 2, 0]] + rng.normal(0, 4, (4, 17, 2)).astype(np.float32)
    areas = rng.uniform(500, 5000, 3).astype(np.float32)
    got = pairwise_oks(torch.from_numpy(preds), torch.from_numpy(gts), torch.from_numpy(areas), torch.tensor(COCO17.sigmas))
    assert got.shape == (3, 4)
    for g in range(3):
        for p in range(4):
            assert abs(got[g, p].item() - _reference_oks(preds[p], gts[g], areas[g], COCO17.sigmas)) < 1e-5


def test_pairwise_oks_batched_shape():
    got = pairwise_oks(torch.rand(2, 5, 17, 2), torch.rand(2, 3, 17, 3) + 1, torch.ones(2, 3), torch.tensor(COCO17.sigmas))
    assert got.shape == (2, 3, 5)


def test_keypoint_extent():
    kpts = torch.tensor([[[1.0, 2.0, 2.0], [5.0, 9.0, 1.0], [100.0, 100.0, 0.0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0.0]]])
    boxes = keypoint_extent_boxes(kpts)
    assert boxes.tolist() == [[1.0, 2.0, 5.0, 9.0], [0.0, 0.0, 0.0, 0.0]]
    assert torch.allclose(keypoint_extent_areas(kpts), torch.tensor([0.53 * 4 * 7, 0.0]))
