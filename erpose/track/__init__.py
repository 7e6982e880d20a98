"""Multi-person tracking by pose (numpy + scipy; no torch): association, smoothing, metrics.

- :class:`PoseTracker` and :class:`TrackerConfig`: OKS (or box IoU) association with a motion
  model, ByteTrack's second round, birth after ``min_hits``, survival for ``max_age`` frames.
- :func:`one_euro_step` / :func:`one_euro_filter`: the confidence-aware One-Euro smoother.
- :mod:`erpose.track.metrics`: keypoint MOTA (PoseTrack), IDF1, id switches, jitter and lag.
"""

from erpose.track.config import OneEuroConfig, TrackerConfig
from erpose.track.one_euro import OneEuroState, one_euro_filter, one_euro_step
from erpose.track.tracker import PoseTracker, TrackedPoses

__all__ = ["OneEuroConfig", "OneEuroState", "PoseTracker", "TrackedPoses", "TrackerConfig",
           "one_euro_filter", "one_euro_step"]
