"""Tracking metrics on hand-made sequences whose values are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from erpose.track.metrics import (
    identity_scores,
    jitter,
    keypoint_mota,
    lag_frames,
    mean_acceleration,
    pckh_thresholds,
)

K = 3


def pose(x: float, y: float = 0.0, vis=(1, 1, 1)) -> np.ndarray:
    return np.array([[x, y, vis[0]], [x + 10, y, vis[1]], [x, y + 10, vis[2]]], dtype=np.float64)


def seq(*frames):
    """frames: lists of (id, pose) -> [(ids, keypoints)]."""
    return [(np.array([i for i, _ in f], dtype=np.int64), np.stack([p for _, p in f]) if f else np.zeros((0, K, 3)))
            for f in frames]


def thr(gt):
    """A 5 px match distance for every ground-truth person."""
    return [np.full(len(ids), 5.0) for ids, _ in gt]


def test_perfect_tracking_scores_one():
    gt = seq([(1, pose(0)), (2, pose(100))], [(1, pose(2)), (2, pose(102))])
    pred = seq([(7, pose(1)), (9, pose(101))], [(7, pose(3)), (9, pose(103))])
    mota = keypoint_mota(gt, pred, thr(gt))
    assert mota.mota == 1.0 and mota.precision == 1.0 and mota.recall == 1.0
    ident = identity_scores(gt, pred, thr(gt))
    assert ident.idf1 == 1.0 and ident.id_switches == 0 and ident.num_gt_tracks == 2


def test_an_id_switch_costs_every_keypoint_once():
    gt = seq([(1, pose(0))], [(1, pose(0))])
    pred = seq([(7, pose(0))], [(8, pose(0))])
    mota = keypoint_mota(gt, pred, thr(gt))
    # 6 gt keypoints, 3 switches (one per keypoint type in frame 2): 1 - 3/6.
    assert mota.mota == pytest.approx(0.5)
    assert mota.id_switches.tolist() == [1, 1, 1]
    ident = identity_scores(gt, pred, thr(gt))
    # gt track 1 pairs with 7 (or 8) for one frame: IDTP 1, IDF1 = 2 / (2 + 2).
    assert ident.idf1 == pytest.approx(0.5)
    assert ident.id_switches == 1 and ident.switches_per_100_tracks == pytest.approx(100.0)


def test_misses_and_false_positives_per_keypoint():
    gt = seq([(1, pose(0))])
    # keypoint 1 predicted 20 px off (a miss and a false positive); keypoint 2 not predicted
    # (a miss); a second predicted person is 3 false positives.
    off = pose(0, vis=(0.9, 0.9, 0.1))
    off[1, 0] += 20
    pred = seq([(7, off), (8, pose(300))])
    mota = keypoint_mota(gt, pred, thr(gt), pred_conf=0.5)
    assert mota.misses.tolist() == [0, 1, 1]
    assert mota.false_positives.tolist() == [1, 2, 1]
    assert mota.num_gt.tolist() == [1, 1, 1]
    assert mota.mota == pytest.approx(1 - (2 + 4) / 3)
    assert mota.per_keypoint.tolist() == pytest.approx([0.0, -2.0, -1.0])
    assert mota.recall == pytest.approx(1 / 3) and mota.precision == pytest.approx(1 / 5)


def test_invisible_ground_truth_keypoints_do_not_count():
    gt = seq([(1, pose(0, vis=(1, 0, 1)))])
    pred = seq([(7, pose(0, vis=(1, 0, 1)))])
    mota = keypoint_mota(gt, pred, thr(gt))
    assert mota.num_gt.tolist() == [1, 0, 1] and mota.mota == 1.0


def test_people_are_paired_one_to_one():
    # Two gt people 3 px apart and one prediction between them: it matches only one of them.
    gt = seq([(1, pose(0)), (2, pose(3))])
    pred = seq([(7, pose(1.5))])
    mota = keypoint_mota(gt, pred, thr(gt))
    assert mota.misses.sum() == 3 and mota.false_positives.sum() == 0


def test_idf1_counts_the_best_global_pairing():
    # gt 1 for 4 frames; predictions: id 7 for the first 3 frames, id 8 for the last.
    gt = seq(*[[(1, pose(0))]] * 4)
    pred = seq([(7, pose(0))], [(7, pose(0))], [(7, pose(0))], [(8, pose(0))])
    ident = identity_scores(gt, pred, thr(gt))
    assert ident.idf1 == pytest.approx(2 * 3 / 8) and ident.idp == pytest.approx(3 / 4)
    assert ident.id_switches == 1


def test_pckh_thresholds_from_the_keypoint_box():
    gt = np.array([[[0, 0, 1], [30, 40, 1], [1000, 1000, 0]]], dtype=np.float64)
    assert pckh_thresholds(gt, head_fraction=0.2, alpha=0.5)[0] == pytest.approx(0.5 * 0.2 * 50)


def test_jitter_of_alternating_noise():
    # A keypoint moving linearly (no acceleration) predicted with +e on every other frame:
    # each acceleration is |e - 0 + e| = 2e.
    t = np.arange(6, dtype=np.float64)
    gt = np.stack([3 * t, 0 * t], -1)[:, None]
    pred = gt.copy()
    pred[1::2, 0, 0] += 0.5
    assert mean_acceleration(gt) == 0.0
    assert jitter(pred, gt) == pytest.approx(1.0)
    valid = np.ones((6, 1), bool)
    valid[2] = False  # only the triple (3, 4, 5) is fully valid
    assert mean_acceleration(pred, valid) == pytest.approx(1.0)


def test_lag_of_a_delayed_signal():
    t = np.arange(100, dtype=np.float64)
    reference = np.sin(t / 7.0)
    assert lag_frames(np.roll(reference, 3)[10:], reference[10:]) == pytest.approx(3.0, abs=0.01)
    assert lag_frames(reference, reference) == 0.0
    # Half a frame: the average of two neighbouring samples of a smooth signal.
    half = np.concatenate([[reference[0]], (reference[1:] + reference[:-1]) / 2])
    assert lag_frames(half, reference) == pytest.approx(0.5, abs=0.05)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="frames"):
        keypoint_mota(seq([(1, pose(0))]), [])
    with pytest.raises(ValueError, match="thresholds"):
        keypoint_mota(seq([(1, pose(0))]), seq([(1, pose(0))]), [np.ones(2)])
