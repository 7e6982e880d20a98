"""Tracking metrics as pure numpy functions: keypoint MOTA (PoseTrack), IDF1, id switches, jitter, lag.

A *sequence* is a list with one entry per frame, each a pair ``(ids (n,), keypoints (n, K, 3))``:
ground truth with visibility ``v > 0`` as the third value, predictions with a keypoint confidence
(a predicted keypoint counts when its confidence is >= ``pred_conf``, as PoseTrack evaluates
keypoints that the method has already thresholded).

Matching follows PoseTrack's ``poseval``: a predicted keypoint matches a ground-truth one of the
same type when it lies within a PCKh-like distance of it, ``alpha x head size`` (alpha = 0.5).
Within a frame, people are paired one-to-one by the Hungarian method on the fraction of a ground
truth's visible keypoints that the prediction matches; keypoints are then matched only within
pairs. Datasets without head boxes (COCO-17) take the head size as ``head_fraction`` of the
diagonal of the person's keypoint box, or pass the thresholds explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

Frame = tuple[np.ndarray, np.ndarray]

#: Head size / keypoint-box diagonal of an upright adult (head ~0.25 m, body diagonal ~1.9 m).
HEAD_FRACTION = 0.13
#: PCKh threshold as a fraction of the head size (PoseTrack: 0.5).
PCKH_ALPHA = 0.5


def pckh_thresholds(gt_keypoints: np.ndarray, head_fraction: float = HEAD_FRACTION,
                    alpha: float = PCKH_ALPHA) -> np.ndarray:
    """Match distance per ground-truth person, pixels: ``alpha x head_fraction x keypoint-box diagonal``.

    Args:
        gt_keypoints: (n, K, 3) x, y, v; only ``v > 0`` keypoints span the box.

    Returns:
        (n,) float64 thresholds (0 for a person without visible keypoints).
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    vis = gt[..., 2] > 0
    lo = np.where(vis[..., None], gt[..., :2], np.inf).min(axis=1)
    hi = np.where(vis[..., None], gt[..., :2], -np.inf).max(axis=1)
    diag = np.where(vis.any(axis=1), np.linalg.norm(hi - lo, axis=1), 0.0)
    return alpha * head_fraction * np.nan_to_num(diag)


def keypoint_matches(gt: np.ndarray, pred: np.ndarray, thresholds: np.ndarray, pred_conf: float) -> np.ndarray:
    """(nG, nP, K) bool: keypoint k of prediction p lies within ground truth g's threshold (both present)."""
    gt_vis = gt[..., 2] > 0
    pred_vis = pred[..., 2] >= pred_conf
    dist = np.linalg.norm(gt[:, None, :, :2] - pred[None, :, :, :2], axis=-1)
    return (dist <= thresholds[:, None, None]) & gt_vis[:, None] & pred_vis[None]


def pair_people(matches: np.ndarray, gt_visible: np.ndarray, min_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one people pairs maximising the matched fraction of each ground truth's keypoints.

    Args:
        matches: (nG, nP, K) from :func:`keypoint_matches`.
        gt_visible: (nG, K) bool.
        min_fraction: pairs whose fraction is not above this are dropped.

    Returns:
        ``(gt_index, pred_index)`` of the kept pairs.
    """
    empty = np.zeros(0, dtype=np.int64)
    if matches.shape[0] == 0 or matches.shape[1] == 0:
        return empty, empty
    fraction = matches.sum(axis=-1) / np.maximum(gt_visible.sum(axis=-1), 1)[:, None]
    rows, cols = linear_sum_assignment(-fraction)
    keep = fraction[rows, cols] > min_fraction
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


@dataclass(frozen=True)
class KeypointMOTA:
    """PoseTrack multi-object tracking accuracy over keypoints.

    Attributes:
        mota: ``1 - (misses + false_positives + id_switches) / num_gt`` summed over keypoint types.
        per_keypoint: (K,) the same ratio per keypoint type.
        precision, recall: of keypoints.
        misses, false_positives, id_switches, num_gt: (K,) int counts per keypoint type.
    """

    mota: float
    per_keypoint: np.ndarray
    precision: float
    recall: float
    misses: np.ndarray
    false_positives: np.ndarray
    id_switches: np.ndarray
    num_gt: np.ndarray


def _resolve_thresholds(thresholds, frame: int, gt: np.ndarray) -> np.ndarray:
    if thresholds is None:
        return pckh_thresholds(gt)
    values = np.asarray(thresholds[frame], dtype=np.float64).reshape(-1)
    if len(values) != len(gt):
        raise ValueError(f"frame {frame}: {len(values)} thresholds for {len(gt)} ground-truth people")
    return values


def keypoint_mota(
    gt_frames: Sequence[Frame], pred_frames: Sequence[Frame], thresholds: Sequence[np.ndarray] | None = None,
    pred_conf: float = 0.5,
) -> KeypointMOTA:
    """MOTA over keypoints as PoseTrack defines it (per keypoint type, then pooled).

    A ground-truth keypoint is a miss unless it is matched; a present predicted keypoint is a false
    positive unless it is matched; an id switch is counted when a ground-truth track's keypoint of
    type k is matched to another predicted track than the last time that keypoint was matched.

    Args:
        gt_frames, pred_frames: sequences of the same length (see the module docstring).
        thresholds: per frame (nG,) match distances in pixels; :func:`pckh_thresholds` when None.
        pred_conf: predicted keypoints with confidence below this are absent.

    Returns:
        :class:`KeypointMOTA`.
    """
    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"keypoint_mota: {len(gt_frames)} ground-truth frames but {len(pred_frames)} predicted")
    k = _num_keypoints(gt_frames, pred_frames)
    misses, fps, switches, num_gt, tps = (np.zeros(k, np.int64) for _ in range(5))
    last: dict[tuple[int, int], int] = {}  # (gt id, keypoint) -> predicted id last matched
    for f, ((gt_ids, gt), (pred_ids, pred)) in enumerate(zip(gt_frames, pred_frames)):
        gt, pred = _as_keypoints(gt, k), _as_keypoints(pred, k)
        gt_vis, pred_vis = gt[..., 2] > 0, pred[..., 2] >= pred_conf
        matches = keypoint_matches(gt, pred, _resolve_thresholds(thresholds, f, gt), pred_conf)
        rows, cols = pair_people(matches, gt_vis)
        matched = matches[rows, cols]  # (m, K)
        tp = matched.sum(axis=0)
        tps += tp
        num_gt += gt_vis.sum(axis=0)
        misses += gt_vis.sum(axis=0) - tp
        fps += pred_vis.sum(axis=0) - tp
        for g, p, row in zip(np.asarray(gt_ids)[rows], np.asarray(pred_ids)[cols], matched):
            for joint in np.flatnonzero(row):  # switches need per-track memory: a short loop by nature
                key = (int(g), int(joint))
                if key in last and last[key] != int(p):
                    switches[joint] += 1
                last[key] = int(p)
    errors = misses + fps + switches
    per_keypoint = 1.0 - errors / np.maximum(num_gt, 1)
    total_gt = int(num_gt.sum())
    total_pred = int(tps.sum() + fps.sum())
    return KeypointMOTA(
        mota=1.0 - float(errors.sum()) / max(total_gt, 1), per_keypoint=per_keypoint,
        precision=float(tps.sum()) / max(total_pred, 1), recall=float(tps.sum()) / max(total_gt, 1),
        misses=misses, false_positives=fps, id_switches=switches, num_gt=num_gt,
    )


@dataclass(frozen=True)
class IdentityScores:
    """Person-level identity metrics.

    Attributes:
        idf1, idp, idr: identity F1, precision and recall (Ristani et al., 2016).
        id_switches: times a ground-truth track's paired prediction changed id.
        switches_per_100_tracks: ``100 x id_switches / number of ground-truth tracks``.
        num_gt_tracks: distinct ground-truth ids.
    """

    idf1: float
    idp: float
    idr: float
    id_switches: int
    switches_per_100_tracks: float
    num_gt_tracks: int


def identity_scores(
    gt_frames: Sequence[Frame], pred_frames: Sequence[Frame], thresholds: Sequence[np.ndarray] | None = None,
    pred_conf: float = 0.5, min_fraction: float = 0.5,
) -> IdentityScores:
    """IDF1 and person-level id switches.

    A ground-truth person and a prediction *overlap* in a frame when the prediction matches more
    than ``min_fraction`` of its visible keypoints (PCKh distance). IDF1 pairs whole trajectories
    one-to-one to maximise the overlapping frames (IDTP); ``IDF1 = 2 IDTP / (gt + predicted
    people)``. Id switches use the per-frame one-to-one people pairing instead.

    Args: as :func:`keypoint_mota`; ``min_fraction`` the overlap criterion.

    Returns:
        :class:`IdentityScores`.
    """
    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"identity_scores: {len(gt_frames)} ground-truth frames but {len(pred_frames)} predicted")
    k = _num_keypoints(gt_frames, pred_frames)
    gt_index: dict[int, int] = {}
    pred_index: dict[int, int] = {}
    overlaps: dict[tuple[int, int], int] = {}
    num_gt = num_pred = switches = 0
    last: dict[int, int] = {}
    for f, ((gt_ids, gt), (pred_ids, pred)) in enumerate(zip(gt_frames, pred_frames)):
        gt, pred = _as_keypoints(gt, k), _as_keypoints(pred, k)
        gt_ids, pred_ids = np.asarray(gt_ids).reshape(-1), np.asarray(pred_ids).reshape(-1)
        num_gt += len(gt)
        num_pred += len(pred)
        for i in gt_ids:
            gt_index.setdefault(int(i), len(gt_index))
        for j in pred_ids:
            pred_index.setdefault(int(j), len(pred_index))
        gt_vis = gt[..., 2] > 0
        matches = keypoint_matches(gt, pred, _resolve_thresholds(thresholds, f, gt), pred_conf)
        fraction = matches.sum(axis=-1) / np.maximum(gt_vis.sum(axis=-1), 1)[:, None]
        for g, p in zip(*np.nonzero(fraction > min_fraction)):
            key = (gt_index[int(gt_ids[g])], pred_index[int(pred_ids[p])])
            overlaps[key] = overlaps.get(key, 0) + 1
        rows, cols = pair_people(matches, gt_vis, min_fraction)
        for g, p in zip(gt_ids[rows], pred_ids[cols]):
            if int(g) in last and last[int(g)] != int(p):
                switches += 1
            last[int(g)] = int(p)
    counts = np.zeros((len(gt_index), len(pred_index)))
    for (g, p), c in overlaps.items():
        counts[g, p] = c
    rows, cols = linear_sum_assignment(-counts) if counts.size else (np.zeros(0, int), np.zeros(0, int))
    idtp = float(counts[rows, cols].sum())
    return IdentityScores(
        idf1=2.0 * idtp / max(num_gt + num_pred, 1), idp=idtp / max(num_pred, 1), idr=idtp / max(num_gt, 1),
        id_switches=switches, switches_per_100_tracks=100.0 * switches / max(len(gt_index), 1),
        num_gt_tracks=len(gt_index),
    )


def mean_acceleration(xy: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean norm of the frame-to-frame acceleration ``x[t+1] - 2 x[t] + x[t-1]``, pixels/frame^2.

    Args:
        xy: (F, ..., 2) one track's keypoints over F frames.
        valid: (F, ...) bool; an acceleration counts only where all three frames are valid.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 3:
        return 0.0
    accel = np.linalg.norm(xy[2:] - 2.0 * xy[1:-1] + xy[:-2], axis=-1)
    if valid is None:
        return float(accel.mean())
    valid = np.asarray(valid, dtype=bool)
    both = valid[2:] & valid[1:-1] & valid[:-2]
    return float(accel[both].mean()) if both.any() else 0.0


def jitter(pred_xy: np.ndarray, gt_xy: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean absolute acceleration of the predicted keypoints minus that of the ground truth.

    Args:
        pred_xy, gt_xy: (F, ..., 2) aligned trajectories of the same person(s), pixels.
        valid: (F, ...) bool, where both exist.

    Returns:
        Pixels/frame^2; 0 means the prediction is as smooth as the true motion.
    """
    return mean_acceleration(pred_xy, valid) - mean_acceleration(gt_xy, valid)


def lag_frames(signal: np.ndarray, reference: np.ndarray, max_lag: int = 10) -> float:
    """How many frames ``signal`` trails ``reference`` (e.g. filtered vs true positions).

    The integer shift ``s`` in ``[0, max_lag]`` minimising the mean squared difference between
    ``signal[t]`` and ``reference[t - s]`` is refined by a parabola through its neighbours.

    Args:
        signal, reference: (F, ...) aligned series (e.g. (F, K, 2)); F > max_lag + 2. NaN marks
            a missing value (a frame without the person); such pairs are skipped.

    Returns:
        The lag in frames (>= 0, sub-frame).
    """
    signal = np.asarray(signal, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    f = len(signal)
    if f <= max_lag + 2:
        raise ValueError(f"lag_frames needs more than max_lag + 2 = {max_lag + 2} frames, got {f}")
    # Shifts -1 .. max_lag + 1, so that a minimum at 0 or max_lag can still be refined.
    shifts = range(-1, max_lag + 2)
    errors = np.array([_shifted_error(signal, reference, s) for s in shifts])
    best = int(errors[1:-1].argmin()) + 1  # index into errors; the shift is best - 1
    left, mid, right = errors[best - 1: best + 2]
    curvature = left - 2.0 * mid + right
    offset = 0.5 * (left - right) / curvature if np.isfinite(curvature) and curvature > 0 else 0.0
    return float(max(best - 1 + np.clip(offset, -1.0, 1.0), 0.0))


def _shifted_error(signal: np.ndarray, reference: np.ndarray, shift: int) -> float:
    """Mean squared ``signal[t] - reference[t - shift]`` over the overlap."""
    f = len(signal)
    if shift >= 0:
        diff = signal[shift:] - reference[: f - shift]
    else:
        diff = signal[: f + shift] - reference[-shift:]
    diff = diff[np.isfinite(diff)]
    return float((diff**2).mean()) if diff.size else np.inf


def _num_keypoints(*sequences: Sequence[Frame]) -> int:
    for seq in sequences:
        for _, kpts in seq:
            arr = np.asarray(kpts)
            if arr.ndim == 3:
                return int(arr.shape[1])
    return 0


def _as_keypoints(kpts: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(kpts, dtype=np.float64).reshape(-1, k, 3)
