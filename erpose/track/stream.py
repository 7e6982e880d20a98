"""Tracking over a prediction stream: :class:`~erpose.runtime.results.Results` in, :class:`TrackedResults` out.

numpy + OpenCV only; the PyTorch predictor and the torch-free ONNX runtime feed it the same way::

    for tracked in track_results(predictor.stream("walk.mp4"), TrackerConfig()):
        tracked.tracks.track_ids, tracked.tracks.smoothed, tracked.plot()

A new video file starts a new sequence: its tracks start empty, but ids keep counting, so an id
is never reused within a run. Images from a folder or glob are one sequence, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from erpose.runtime.results import KEYPOINT_CONF_THRESHOLD, Results, boxes_from_keypoints
from erpose.runtime.sources import is_video_path, video_fps
from erpose.track.config import TrackerConfig
from erpose.track.draw import draw_tracks
from erpose.track.tracker import PoseTracker, TrackedPoses


@dataclass
class TrackedResults:
    """One frame: the model's people (``result``) and the confirmed tracks among them (``tracks``).

    Attributes:
        result: every detected person, as ``predict`` returns them.
        tracks: track ids, raw and smoothed keypoints of the tracked people.
        sequence_frame: frame number within its sequence (the video frame, or the image's position).
        smoothing: whether ``tracks.smoothed`` holds filtered keypoints (else it equals raw).
    """

    result: Results
    tracks: TrackedPoses
    sequence_frame: int
    smoothing: bool = True

    @property
    def keypoints(self) -> np.ndarray:
        """(m, K, 3) the keypoints to show: smoothed when smoothing is on, else raw."""
        return self.tracks.smoothed if self.smoothing else self.tracks.keypoints

    def plot(self, conf_threshold: float = KEYPOINT_CONF_THRESHOLD, line_width: int | None = None,
             show_ids: bool = True) -> np.ndarray:
        """The frame with each tracked person in its track's colour and id; (H, W, 3) uint8 BGR."""
        return draw_tracks(self.result.orig_image, self.keypoints, self.tracks.track_ids, self.result.skeleton,
                           conf_threshold=conf_threshold, line_width=line_width, show_ids=show_ids)

    def to_posetrack(self, image_id: int, first_annotation_id: int = 0, decimals: int = 2) -> list[dict]:
        """Tracked people as PoseTrack18 annotations (``track_id`` on each; keypoints x, y, conf).

        ``keypoints`` are :attr:`keypoints` (smoothed when on); ``keypoints_raw`` the model's own
        when smoothing is on; ``scores`` the per-keypoint confidences; ``bbox`` x, y, w, h.
        """
        shown = self.keypoints.astype(np.float64)
        raw = self.tracks.keypoints.astype(np.float64)
        boxes = boxes_from_keypoints(shown).astype(np.float64)
        annotations = []
        for i, track_id in enumerate(self.tracks.track_ids):
            entry = {
                "id": first_annotation_id + i, "image_id": int(image_id), "category_id": 1,
                "track_id": int(track_id), "score": round(float(self.tracks.scores[i]), decimals + 3),
                "keypoints": _flat(shown[i], decimals), "scores": shown[i, :, 2].round(decimals + 3).tolist(),
                "bbox": np.concatenate([boxes[i, :2], boxes[i, 2:] - boxes[i, :2]]).round(decimals).tolist(),
            }
            if self.smoothing:
                entry["keypoints_raw"] = _flat(raw[i], decimals)
            annotations.append(entry)
        return annotations

    def to_rows(self, decimals: int = 2) -> list[list]:
        """CSV rows ``[frame, track_id, score, x1, y1, c1, ..., xK, yK, cK]`` (keypoints as :attr:`keypoints`)."""
        shown = self.keypoints.astype(np.float64)
        return [[self.sequence_frame, int(track_id), round(float(score), decimals + 3), *_flat(kpts, decimals)]
                for track_id, score, kpts in zip(self.tracks.track_ids, self.tracks.scores, shown)]


def _flat(keypoints: np.ndarray, decimals: int) -> list[float]:
    rounded = np.concatenate([keypoints[:, :2].round(decimals), keypoints[:, 2:].round(decimals + 3)], axis=1)
    return rounded.reshape(-1).tolist()


def track_results(results: Iterable[Results], config: TrackerConfig | None = None) -> Iterator[TrackedResults]:
    """Track people through a stream of per-frame results (see the module docstring).

    Args:
        results: per-frame :class:`Results` in frame order (``Predictor.stream`` yields these).
        config: the tracker's configuration; a video's own frame rate replaces ``smoothing.fps``.

    Yields:
        One :class:`TrackedResults` per frame.
    """
    config = config or TrackerConfig()
    tracker: PoseTracker | None = None
    sequence, frame, dt = None, 0, 1.0 / config.smoothing.fps
    for res in results:
        key = res.path if is_video_path(res.path) else "images"
        if tracker is None:
            tracker = PoseTracker(res.skeleton.sigmas_array(), config)
        if key != sequence:
            tracker.reset(keep_ids=True)  # ids are never reused within a run
            sequence, frame = key, 0
            dt = 1.0 / video_fps(res.path, config.smoothing.fps) if key != "images" else 1.0 / config.smoothing.fps
        tracks = tracker.update(res.scores, res.keypoints.data, dt=dt)
        index = res.frame_index if key != "images" else frame
        yield TrackedResults(res, tracks, index, config.smoothing.enabled)
        frame += 1
