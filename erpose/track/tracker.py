"""Multi-person tracker: pose (or box) association, ByteTrack's second round, birth, survival.

numpy + scipy only, so the torch-free runtime can track. One call to :meth:`PoseTracker.update`
per frame::

    tracker = PoseTracker(skeleton.sigmas_array(), TrackerConfig())
    for scores, keypoints in frames:                 # (n,), (n, K, 3) in pixels
        tracked = tracker.update(scores, keypoints)  # TrackedPoses: track_ids, keypoints, smoothed

A frame, in order:

1. every track is predicted by its motion model (constant velocity per keypoint, or static);
2. round 1: detections with score >= ``high_score`` against all tracks (confirmed, new, lost);
3. round 2 (ByteTrack): detections with score in ``[low_score, high_score)`` against the
   confirmed tracks left over that were matched in the previous frame, with a stricter gate;
4. matched tracks take the seen keypoints, update their velocity and their One-Euro filter;
5. unmatched tracks coast on their prediction; a new track unmatched once, or a confirmed one
   unmatched for more than ``max_age`` frames, is deleted;
6. unmatched round-1 detections with score >= ``new_track_score`` start new tracks, confirmed
   (given the next id) after ``min_hits`` consecutive matches. Ids count up and are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from erpose.track.assignment import gated_assignment
from erpose.track.config import TrackerConfig
from erpose.track.kalman import kalman_predict, kalman_update
from erpose.track.one_euro import OneEuroState, one_euro_step
from erpose.track.similarity import masked_boxes, pairwise_box_iou, pairwise_oks


@dataclass(frozen=True)
class TrackedPoses:
    """The confirmed tracks matched in one frame.

    Attributes:
        track_ids: (m,) int64 ids, >= 1.
        scores: (m,) float32 person scores of the matched detections.
        keypoints: (m, K, 3) float32 raw detections: x, y pixels, confidence.
        smoothed: (m, K, 3) float32 One-Euro-filtered x, y and the raw confidence (equal to
            ``keypoints`` when smoothing is off).
        detection_index: (m,) int64 row of each in the detections given to ``update``.
    """

    track_ids: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    smoothed: np.ndarray
    detection_index: np.ndarray

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])


@dataclass
class _Tracks:
    """Struct of arrays over t live tracks (first axis); ``ids`` is 0 while a track is unconfirmed."""

    ids: np.ndarray  # (t,) int64
    xy: np.ndarray  # (t, K, 2) estimated positions at the last frame
    velocity: np.ndarray  # (t, K, 2) pixels per frame
    seen: np.ndarray  # (t, K) bool: keypoint observed at least once
    hits: np.ndarray  # (t,) consecutive matched frames
    misses: np.ndarray  # (t,) consecutive unmatched frames
    filtered: np.ndarray  # (t, K, 2) One-Euro value
    speed: np.ndarray  # (t, K, 2) One-Euro speed
    ready: np.ndarray  # (t, K) One-Euro initialised
    cov: np.ndarray  # (t, K, 3) Kalman covariance pp, pv, vv (zeros for the other motion models)

    @classmethod
    def empty(cls, k: int) -> _Tracks:
        return cls(np.zeros(0, np.int64), np.zeros((0, k, 2)), np.zeros((0, k, 2)), np.zeros((0, k), bool),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, k, 2)), np.zeros((0, k, 2)),
                   np.zeros((0, k), bool), np.zeros((0, k, 3)))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def select(self, index: np.ndarray) -> _Tracks:
        return _Tracks(*(getattr(self, f.name)[index] for f in fields(self)))

    def extend(self, other: _Tracks) -> _Tracks:
        return _Tracks(*(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))


class PoseTracker:
    """Online tracker of people given as keypoints (see the module docstring for the algorithm).

    Args:
        sigmas: (K,) OKS sigmas of the skeleton (``Skeleton.sigmas_array()``).
        config: thresholds, life cycle, motion and smoothing.
    """

    def __init__(self, sigmas: np.ndarray, config: TrackerConfig | None = None) -> None:
        self.sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        self.config = config or TrackerConfig()
        self.num_keypoints = int(self.sigmas.shape[0])
        self.next_id = 1
        self.reset()

    def reset(self, keep_ids: bool = False) -> None:
        """Forget every track and restart the frame count (a new video).

        Args:
            keep_ids: continue the id count, so that no id is reused across videos; otherwise
                ids restart at 1.
        """
        self._tracks = _Tracks.empty(self.num_keypoints)
        self.frame_count = 0
        if not keep_ids:
            self.next_id = 1

    @property
    def num_tracks(self) -> int:
        """Live tracks: confirmed (matched or lost) and unconfirmed."""
        return len(self._tracks)

    def update(self, scores: np.ndarray, keypoints: np.ndarray, dt: float | None = None) -> TrackedPoses:
        """Advance one frame.

        Args:
            scores: (n,) person scores.
            keypoints: (n, K, 3) x, y pixels, keypoint confidence.
            dt: seconds since the previous frame for the smoother (``1 / smoothing.fps`` if None).

        Returns:
            :class:`TrackedPoses` of the confirmed tracks matched in this frame, in detection order.
        """
        cfg = self.config
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        dets = np.asarray(keypoints, dtype=np.float64).reshape(len(scores), self.num_keypoints, 3)
        self.frame_count += 1
        tracks = self._tracks
        predicted = tracks.xy if cfg.motion == "static" else tracks.xy + tracks.velocity
        if cfg.motion == "kalman":
            tracks.cov = kalman_predict(tracks.cov, cfg.kalman_process * self._heights(predicted, tracks.seen)[:, None])
        det_seen = dets[..., 2] >= cfg.kpt_conf
        similarity = self._similarity(dets[..., :2], det_seen, predicted, tracks.seen)

        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score))
        rows, cols = gated_assignment(similarity[high], cfg.match_threshold)
        det_index, trk_index = [high[rows]], [cols]
        free = np.ones(len(tracks), bool)
        free[cols] = False
        second = np.flatnonzero(free & (tracks.ids > 0) & (tracks.misses == 0))
        rows, cols = gated_assignment(similarity[low][:, second], cfg.low_match_threshold)
        det_index.append(low[rows])
        trk_index.append(second[cols])
        matched_det, matched_trk = np.concatenate(det_index), np.concatenate(trk_index)

        tracks = self._coast(tracks, predicted, matched_trk)
        tracks = self._update_matched(tracks, matched_trk, dets[matched_det], predicted[matched_trk], dt)
        is_matched = np.zeros(len(scores), bool)
        is_matched[matched_det] = True
        unmatched_high = high[~is_matched[high]]
        births = unmatched_high[scores[unmatched_high] >= cfg.new_track_score]
        if len(births):
            tracks = tracks.extend(self._new_tracks(dets[births], dt))
        born = np.arange(len(tracks) - len(births), len(tracks))
        tracks = self._confirm(tracks)

        alive = ((tracks.ids > 0) & (tracks.misses <= cfg.max_age)) | ((tracks.ids == 0) & (tracks.misses == 0))
        reported_trk = np.concatenate([matched_trk, born])
        reported_det = np.concatenate([matched_det, births])
        reported = tracks.ids[reported_trk] > 0
        out_trk, out_det = reported_trk[reported], reported_det[reported]
        order = np.argsort(out_det, kind="stable")
        out_trk, out_det = out_trk[order], out_det[order]
        raw = dets[out_det]
        smoothed = raw.copy()
        if cfg.smoothing.enabled:
            smoothed[..., :2] = tracks.filtered[out_trk]
        result = TrackedPoses(tracks.ids[out_trk].copy(), scores[out_det].astype(np.float32),
                              raw.astype(np.float32), smoothed.astype(np.float32), out_det.astype(np.int64))
        self._tracks = tracks.select(alive)
        return result

    def _similarity(self, det_xy, det_seen, trk_xy, trk_seen) -> np.ndarray:
        if self.config.association == "box":
            return pairwise_box_iou(det_xy, det_seen, trk_xy, trk_seen)
        return pairwise_oks(det_xy, det_seen, trk_xy, trk_seen, self.sigmas, self.config.min_area)

    def _coast(self, tracks: _Tracks, predicted: np.ndarray, matched: np.ndarray) -> _Tracks:
        """Unmatched tracks move to their prediction, lose a hit streak and slow down."""
        unmatched = np.ones(len(tracks), bool)
        unmatched[matched] = False
        tracks.xy = np.where(unmatched[:, None, None], predicted, tracks.xy)
        tracks.velocity = np.where(unmatched[:, None, None], tracks.velocity * self.config.velocity_decay,
                                   tracks.velocity)
        tracks.misses = np.where(unmatched, tracks.misses + 1, tracks.misses)
        tracks.hits = np.where(unmatched, 0, tracks.hits)
        return tracks

    def _update_matched(self, tracks: _Tracks, index: np.ndarray, dets: np.ndarray, predicted: np.ndarray,
                        dt: float | None) -> _Tracks:
        """Matched tracks take the seen keypoints and update their motion model and smoother."""
        cfg = self.config
        if len(index) == 0:
            return tracks
        seen = dets[..., 2] >= cfg.kpt_conf
        gap = (tracks.misses[index] + 1).astype(np.float64)  # frames since the last match
        both = seen & tracks.seen[index]
        velocity = tracks.velocity[index]
        heights = self._heights(predicted, tracks.seen[index])[:, None]
        if cfg.motion == "kalman":
            sigma_z = cfg.kalman_measurement * heights
            observed, velocity, tracks.cov[index] = kalman_update(
                predicted, velocity, tracks.cov[index], dets[..., :2], both, sigma_z)
            # A keypoint seen for the first time starts at its detection.
            observed = np.where((seen & ~both)[..., None], dets[..., :2], observed)
        else:
            # xy is the estimate at the previous frame (a lost track's coasted there), so the
            # displacement to the new observation is one frame's motion.
            observed = np.where(seen[..., None], dets[..., :2], predicted)
            step = dets[..., :2] - tracks.xy[index] if cfg.motion == "velocity" else 0.0
            velocity = np.where(both[..., None], velocity + cfg.velocity_smoothing * (step - velocity), velocity)
        tracks.xy[index] = np.where(seen[..., None] | tracks.seen[index][..., None], observed, dets[..., :2])
        tracks.velocity[index] = velocity
        tracks.seen[index] |= seen
        tracks.hits[index] += 1
        tracks.misses[index] = 0
        if not cfg.smoothing.enabled:
            return tracks
        step_dt = (1.0 / cfg.smoothing.fps if dt is None else dt) * gap[:, None]
        state = one_euro_step(OneEuroState(tracks.filtered[index], tracks.speed[index], tracks.ready[index]),
                              dets[..., :2], dets[..., 2], cfg.smoothing, step_dt, heights)
        tracks.filtered[index], tracks.speed[index], tracks.ready[index] = state.value, state.speed, state.ready
        return tracks

    def _new_tracks(self, dets: np.ndarray, dt: float | None) -> _Tracks:
        k = self.num_keypoints
        n = len(dets)
        seen = dets[..., 2] >= self.config.kpt_conf
        state = OneEuroState.empty((n, k))
        if self.config.smoothing.enabled:
            state = one_euro_step(state, dets[..., :2], dets[..., 2], self.config.smoothing, dt)
        heights = self._heights(dets[..., :2], seen)[:, None]
        cov = np.stack(np.broadcast_arrays((self.config.kalman_measurement * heights) ** 2, 0.0,
                                           (self.config.kalman_initial_speed * heights) ** 2), axis=-1)
        cov = np.broadcast_to(cov, (n, k, 3)).copy()
        return _Tracks(np.zeros(n, np.int64), dets[..., :2].copy(), np.zeros((n, k, 2)), seen,
                       np.ones(n, np.int64), np.zeros(n, np.int64), state.value, state.speed, state.ready, cov)

    def _heights(self, xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """(t,) person scale for the Kalman noise: keypoint-box height, at least sqrt(min_area)."""
        boxes = masked_boxes(xy, seen)
        return np.maximum(boxes[:, 3] - boxes[:, 1], np.sqrt(self.config.min_area))

    def _confirm(self, tracks: _Tracks) -> _Tracks:
        """Give the next ids to new tracks with ``min_hits`` hits (at once in the stream's first frames)."""
        early = self.frame_count <= self.config.min_hits
        ready = (tracks.ids == 0) & (tracks.misses == 0) & ((tracks.hits >= self.config.min_hits) | early)
        count = int(ready.sum())
        tracks.ids[ready] = np.arange(self.next_id, self.next_id + count)
        self.next_id += count
        return tracks
