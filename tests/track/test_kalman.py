"""Per-keypoint Kalman filter on a hand-computed step."""

from __future__ import annotations

import numpy as np

from erpose.track.kalman import kalman_predict, kalman_update


def test_predict_covariance_by_hand():
    cov = np.array([[4.0, 0.5, 1.0]])
    # F P F^T = [[4 + 2 * 0.5 + 1, 0.5 + 1], [., 1]]; Q = 4 [[1/4, 1/2], [1/2, 1]]
    np.testing.assert_allclose(kalman_predict(cov, np.array([2.0])), [[6.0 + 1.0, 1.5 + 2.0, 1.0 + 4.0]])


def test_update_by_hand():
    cov = kalman_predict(np.array([[4.0, 0.0, 1.0]]), np.array([0.0]))  # (5, 1, 1)
    position, velocity, new_cov = kalman_update(
        np.array([[0.0, 0.0]]), np.array([[0.0, 0.0]]), cov, np.array([[6.0, -6.0]]), np.array([True]),
        np.array([1.0]))
    # S = 5 + 1; gains 5/6 and 1/6; innovation (6, -6).
    np.testing.assert_allclose(position, [[5.0, -5.0]])
    np.testing.assert_allclose(velocity, [[1.0, -1.0]])
    np.testing.assert_allclose(new_cov, [[5 / 6, 1 / 6, 5 / 6]])


def test_unseen_keypoints_keep_the_prediction():
    cov = np.ones((2, 3))
    position, velocity, new_cov = kalman_update(
        np.zeros((2, 2)), np.ones((2, 2)), cov, np.full((2, 2), 9.0), np.array([False, True]), np.ones(2))
    np.testing.assert_array_equal(position[0], [0.0, 0.0])
    np.testing.assert_array_equal(velocity[0], [1.0, 1.0])
    np.testing.assert_array_equal(new_cov[0], cov[0])
    assert position[1, 0] > 0
