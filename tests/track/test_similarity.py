"""OKS, keypoint boxes, IoU and gated assignment on hand-computed cases."""

from __future__ import annotations

import numpy as np

from erpose.track.assignment import gated_assignment
from erpose.track.similarity import AREA_FROM_BOX, masked_boxes, pairwise_box_iou, pairwise_iou, pairwise_oks


def _pose(points):
    return np.asarray(points, dtype=np.float64)


def test_masked_boxes_ignore_unseen_and_empty_people():
    xy = _pose([[[0, 0], [10, 20], [100, 100]], [[5, 5], [6, 6], [7, 7]]])
    seen = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(masked_boxes(xy, seen), [[0, 0, 10, 20], [0, 0, 0, 0]])


def test_pairwise_oks_hand_computed():
    sigmas = np.array([0.1, 0.1])
    track = _pose([[[0, 0], [10, 20]]])  # box 10 x 20 -> area 0.53 * 200 = 106
    seen = np.ones((1, 2), bool)
    det = _pose([[[0, 0], [10, 20]], [[3, 4], [10, 20]]])  # exact; first keypoint 5 px off
    oks = pairwise_oks(det, np.ones((2, 2), bool), track, seen, sigmas, min_area=1.0)
    area = AREA_FROM_BOX * 200
    expected = (np.exp(-25 / (2 * 0.2**2 * area)) + 1.0) / 2
    np.testing.assert_allclose(oks[:, 0], [1.0, expected])


def test_pairwise_oks_counts_only_keypoints_seen_in_both():
    sigmas = np.array([0.1, 0.1])
    track = _pose([[[0, 0], [10, 20]]])
    det = _pose([[[0, 0], [500, 500]], [[0, 0], [10, 20]]])
    det_seen = np.array([[True, False], [False, False]])
    oks = pairwise_oks(det, det_seen, track, np.ones((1, 2), bool), sigmas)
    np.testing.assert_allclose(oks[:, 0], [1.0, 0.0])  # far keypoint unseen; nobody in common -> 0


def test_pairwise_oks_shapes_with_no_tracks_or_detections():
    sigmas = np.full(3, 0.05)
    assert pairwise_oks(np.zeros((2, 3, 2)), np.ones((2, 3), bool), np.zeros((0, 3, 2)),
                        np.ones((0, 3), bool), sigmas).shape == (2, 0)
    assert pairwise_oks(np.zeros((0, 3, 2)), np.ones((0, 3), bool), np.zeros((4, 3, 2)),
                        np.ones((4, 3), bool), sigmas).shape == (0, 4)


def test_pairwise_iou_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float64)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float64)
    np.testing.assert_allclose(pairwise_iou(a, b), [[50 / 150, 0.0], [0.0, 0.0]])


def test_pairwise_box_iou_uses_keypoint_boxes():
    det = _pose([[[0, 0], [10, 10]]])
    trk = _pose([[[5, 0], [15, 10]]])
    np.testing.assert_allclose(pairwise_box_iou(det, np.ones((1, 2), bool), trk, np.ones((1, 2), bool)), [[1 / 3]])


def test_gated_assignment_is_optimal_not_greedy_and_drops_gated_pairs():
    # Greedy would take (0, 0) = 0.9 and leave (1, 1) = 0.1 under the gate; the optimum pairs crosswise.
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    rows, cols = gated_assignment(similarity, 0.3)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = gated_assignment(np.array([[0.9, 0.0], [0.0, 0.2]]), 0.3)
    assert rows.tolist() == [0] and cols.tolist() == [0]
    rows, cols = gated_assignment(np.zeros((0, 3)), 0.3)
    assert rows.size == 0 and cols.size == 0
