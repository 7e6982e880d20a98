"""One-Euro filter against hand-computed steps; confidence gating; vectorised == per-coordinate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from erpose.track.config import OneEuroConfig
from erpose.track.one_euro import OneEuroState, one_euro_filter, one_euro_step, smoothing_factor


def test_smoothing_factor_formula():
    dt = 1 / 30
    assert smoothing_factor(1.0, dt) == pytest.approx(1 / (1 + 1 / (2 * np.pi * dt)))


def test_two_steps_by_hand():
    cfg = OneEuroConfig(min_cutoff=1.0, beta=0.5, d_cutoff=2.0, fps=10.0, conf_threshold=0.3)
    dt = 0.1
    state = one_euro_step(OneEuroState.empty(()), np.array([0.0, 0.0]), np.array(1.0), cfg)
    np.testing.assert_array_equal(state.value, [0.0, 0.0])  # first confident sample is taken as is
    state = one_euro_step(state, np.array([3.0, 4.0]), np.array(1.0), cfg)
    raw_speed = np.array([30.0, 40.0])
    speed = smoothing_factor(2.0, dt) * raw_speed
    cutoff = 1.0 + 0.5 * np.linalg.norm(speed)
    np.testing.assert_allclose(state.value, smoothing_factor(cutoff, dt) * np.array([3.0, 4.0]))
    np.testing.assert_allclose(state.speed, speed)


def test_beta_zero_is_a_plain_exponential_filter():
    cfg = OneEuroConfig(min_cutoff=2.0, beta=0.0, fps=30.0)
    xs = np.array([0.0, 10.0, 10.0, 10.0])
    out = one_euro_filter(np.stack([xs, xs], -1)[:, None], np.ones((4, 1)), cfg)[:, 0, 0]
    a = smoothing_factor(2.0, 1 / 30)
    expected = [0.0, a * 10, a * 10 + a * (10 - a * 10)]
    np.testing.assert_allclose(out[:3], expected)


def test_constant_input_stays_put():
    cfg = OneEuroConfig()
    xy = np.tile(np.array([[5.0, 7.0]]), (20, 3, 1))  # (F=20, K=3, 2)
    np.testing.assert_allclose(one_euro_filter(xy, np.ones((20, 3)), cfg), xy)


def test_low_confidence_sample_does_not_drag_the_estimate():
    cfg = OneEuroConfig(conf_threshold=0.5)
    state = one_euro_step(OneEuroState.empty((1,)), np.array([[1.0, 1.0]]), np.array([0.9]), cfg)
    held = one_euro_step(state, np.array([[100.0, -50.0]]), np.array([0.2]), cfg)
    np.testing.assert_array_equal(held.value, [[1.0, 1.0]])
    np.testing.assert_array_equal(held.speed, state.speed)


def test_low_confidence_sample_coasts_on_the_filtered_speed_or_holds():
    dt = 1 / 30
    xy = np.stack([np.arange(20.0) * 3.0, np.zeros(20)], -1)[:, None]  # 90 px/s to the right
    conf = np.ones((20, 1))
    coast = OneEuroConfig(conf_threshold=0.5, low_conf="coast")
    state = OneEuroState.empty((1,))
    for t in range(20):
        state = one_euro_step(state, xy[t], conf[t], coast)
    # A hidden, badly guessed sample: coasting moves on by speed x dt, ignoring the guess.
    after = one_euro_step(state, np.array([[-500.0, 300.0]]), np.array([0.1]), coast)
    np.testing.assert_allclose(after.value, state.value + state.speed * dt)
    assert after.value[0, 0] - state.value[0, 0] == pytest.approx(3.0, rel=0.2)
    held = one_euro_step(state, np.array([[-500.0, 300.0]]), np.array([0.1]), replace(coast, low_conf="hold"))
    np.testing.assert_array_equal(held.value, state.value)
    np.testing.assert_array_equal(after.speed, state.speed)


def test_scale_makes_beta_resolution_free():
    rng = np.random.default_rng(3)
    xy = np.cumsum(rng.normal(0, 2, (40, 5, 2)), axis=0)
    conf = np.ones((40, 5))
    cfg = OneEuroConfig(beta=4.0)
    small = one_euro_filter(xy, conf, cfg, scale=100.0)
    large = one_euro_filter(4 * xy, conf, cfg, scale=400.0)  # the same motion at 4x the resolution
    np.testing.assert_allclose(large, 4 * small, rtol=1e-9, atol=1e-9)
    # Without the scale, beta in px/s smooths the large copy less: different shapes.
    assert not np.allclose(one_euro_filter(4 * xy, conf, cfg), 4 * one_euro_filter(xy, conf, cfg))


def test_never_confident_keypoint_shows_raw_until_first_confident_sample():
    cfg = OneEuroConfig(conf_threshold=0.5)
    state = one_euro_step(OneEuroState.empty((1,)), np.array([[4.0, 4.0]]), np.array([0.1]), cfg)
    np.testing.assert_array_equal(state.value, [[4.0, 4.0]])
    assert not state.ready[0]
    state = one_euro_step(state, np.array([[9.0, 9.0]]), np.array([0.9]), cfg)
    np.testing.assert_array_equal(state.value, [[9.0, 9.0]])
    assert state.ready[0]


def test_vectorised_equals_one_coordinate_at_a_time():
    rng = np.random.default_rng(0)
    xy = np.cumsum(rng.normal(0, 3, (30, 4, 2)), axis=0)
    conf = rng.uniform(0, 1, (30, 4))
    cfg = OneEuroConfig(beta=0.05)
    together = one_euro_filter(xy, conf, cfg)
    for k in range(4):
        np.testing.assert_allclose(together[:, k], one_euro_filter(xy[:, k:k + 1], conf[:, k:k + 1], cfg)[:, 0])


def test_smoothing_reduces_noise_on_a_still_point():
    rng = np.random.default_rng(1)
    xy = 100.0 + rng.normal(0, 2.0, (200, 1, 2))
    out = one_euro_filter(xy, np.ones((200, 1)), OneEuroConfig(), scale=100.0)  # a keypoint of a 100 px person
    assert out[50:].std() < 0.5 * xy[50:].std()


def test_config_validation():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroConfig(beta=-1.0)
