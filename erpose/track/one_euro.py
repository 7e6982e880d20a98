"""One-Euro filter, vectorised over any array of coordinates, confidence-aware (numpy).

Casiez, Roussel, Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy Input in
Interactive Systems", CHI 2012. Per coordinate, with time step ``dt``::

    dx   = (x - x_hat_prev) / dt
    dx_hat = lowpass(dx, alpha(d_cutoff))
    fc   = min_cutoff + beta * |dx_hat|
    x_hat  = lowpass(x, alpha(fc)),   alpha(fc) = 1 / (1 + 1 / (2 pi fc dt))

Here the speed uses the magnitude of the 2-D keypoint velocity, so x and y of one keypoint
share a cutoff (a diagonal motion is not smoothed differently from a horizontal one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from erpose.track.config import OneEuroConfig


@dataclass
class OneEuroState:
    """Filter memory for (..., 2) coordinates.

    Attributes:
        value: (..., 2) the last filtered positions.
        speed: (..., 2) the last filtered velocity, pixels per second.
        ready: (...) bool, False until a keypoint has had one confident sample.
    """

    value: np.ndarray
    speed: np.ndarray
    ready: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> OneEuroState:
        """A state for coordinates of shape ``shape + (2,)`` with nothing seen yet."""
        return cls(np.zeros((*shape, 2)), np.zeros((*shape, 2)), np.zeros(shape, dtype=bool))


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """alpha of an exponential low-pass with cutoff ``cutoff`` Hz sampled every ``dt`` seconds."""
    return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64) * dt))


def one_euro_step(
    state: OneEuroState, xy: np.ndarray, conf: np.ndarray, config: OneEuroConfig, dt: float | None = None,
    scale: np.ndarray | float = 1.0,
) -> OneEuroState:
    """Filter one new sample per coordinate; returns the new state (``state`` is not modified).

    Args:
        state: the memory from the previous step (see :meth:`OneEuroState.empty`).
        xy: (..., 2) new raw positions, pixels.
        conf: (...) their confidences; below ``config.conf_threshold`` the sample is ignored and
            the filtered value holds (a keypoint never seen confidently takes the raw value).
        config: cutoffs and beta.
        dt: seconds since the previous sample; ``1 / config.fps`` when None. An array broadcastable
            to ``conf`` gives each coordinate its own step (a track matched again after a gap).
        scale: the unit of speed for ``beta``, pixels, broadcastable to ``conf`` (1: ``beta`` is
            per px/s; the tracker passes each person's height, so ``beta`` is per height/s and
            one setting fits near and far people and any resolution).

    Returns:
        The new :class:`OneEuroState`; its ``value`` is the filtered (..., 2) positions.
    """
    dt = np.asarray(1.0 / config.fps if dt is None else dt, dtype=np.float64)
    dt_xy = dt[..., None] if dt.ndim else dt
    xy = np.asarray(xy, dtype=np.float64)
    good = np.asarray(conf) >= config.conf_threshold
    update = good & state.ready
    raw_speed = (xy - state.value) / dt_xy
    a_d = smoothing_factor(config.d_cutoff, dt_xy)
    speed = state.speed + a_d * (raw_speed - state.speed)
    cutoff = config.min_cutoff + config.beta * np.linalg.norm(speed, axis=-1) / scale
    a = smoothing_factor(cutoff, dt)[..., None]
    value = state.value + a * (xy - state.value)
    first = good & ~state.ready  # first confident sample: taken as is, speed 0
    kept = state.value + state.speed * dt_xy if config.low_conf == "coast" else state.value
    new_value = np.where(update[..., None], value, np.where(first[..., None], xy, kept))
    # Never seen confidently: show the raw guess rather than a zero.
    new_value = np.where((~good & ~state.ready)[..., None], xy, new_value)
    new_speed = np.where(update[..., None], speed, np.where(first[..., None], 0.0, state.speed))
    return OneEuroState(new_value, new_speed, state.ready | good)


def one_euro_filter(xy: np.ndarray, conf: np.ndarray, config: OneEuroConfig,
                    scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Filter whole sequences offline: (F, ..., 2) positions and (F, ...) confidences -> (F, ..., 2).

    ``scale``: the unit of speed for ``beta`` (see :func:`one_euro_step`), broadcastable to (...).
    """
    xy = np.asarray(xy, dtype=np.float64)
    state = OneEuroState.empty(xy.shape[1:-1])
    out = np.empty_like(xy)
    for frame in range(len(xy)):  # the filter is recursive in time; every other axis is vectorised
        state = one_euro_step(state, xy[frame], conf[frame], config, scale=scale)
        out[frame] = state.value
    return out
