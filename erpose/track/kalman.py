"""Constant-velocity Kalman filter per keypoint, vectorised over tracks and keypoints (numpy).

Each keypoint coordinate has the state ``(position, velocity)`` in pixels and pixels per frame,
``F = [[1, 1], [0, 1]]`` and a white-noise acceleration of standard deviation ``sigma_a``
(``Q = sigma_a^2 [[1/4, 1/2], [1/2, 1]]``). x and y have the same dynamics and noise, so they
share one covariance, stored as its three distinct entries ``(pp, pv, vv)`` in a (..., 3) array.
"""

from __future__ import annotations

import numpy as np


def kalman_predict(cov: np.ndarray, sigma_a: np.ndarray) -> np.ndarray:
    """Covariance after one frame: ``F P F^T + Q``.

    Args:
        cov: (..., 3) ``pp, pv, vv``.
        sigma_a: (...) process noise std, pixels per frame^2 (broadcastable to ``cov[..., 0]``).

    Returns:
        (..., 3) the predicted covariance.
    """
    pp, pv, vv = cov[..., 0], cov[..., 1], cov[..., 2]
    q = np.asarray(sigma_a, dtype=np.float64) ** 2
    return np.stack([pp + 2.0 * pv + vv + q / 4.0, pv + vv + q / 2.0, vv + q], axis=-1)


def kalman_update(
    position: np.ndarray, velocity: np.ndarray, cov: np.ndarray, measured: np.ndarray, seen: np.ndarray,
    sigma_z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correct predicted states with measured positions where ``seen``.

    Args:
        position, velocity: (..., 2) predicted state, pixels and pixels per frame.
        cov: (..., 3) predicted covariance.
        measured: (..., 2) observed positions.
        seen: (...) bool; unseen keypoints keep the prediction.
        sigma_z: (...) measurement noise std, pixels (broadcastable).

    Returns:
        ``(position, velocity, cov)`` corrected.
    """
    pp, pv, vv = cov[..., 0], cov[..., 1], cov[..., 2]
    s = pp + np.asarray(sigma_z, dtype=np.float64) ** 2
    gain_p, gain_v = pp / s, pv / s
    innovation = measured - position
    new_position = position + gain_p[..., None] * innovation
    new_velocity = velocity + gain_v[..., None] * innovation
    new_cov = np.stack([(1.0 - gain_p) * pp, (1.0 - gain_p) * pv, vv - gain_v * pv], axis=-1)
    keep = ~np.asarray(seen, dtype=bool)
    return (np.where(keep[..., None], position, new_position), np.where(keep[..., None], velocity, new_velocity),
            np.where(keep[..., None], cov, new_cov))
