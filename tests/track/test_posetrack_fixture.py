"""Smoke test on the real PoseTrack18 fixtures (``../shared/data/real/mmpose_testdata/posetrack18``).

Skipped when the folder is absent. The fixture has three labelled frames of three videos (one of
them a real crowd of 11 people); nothing is copied into the repository.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from erpose.skeleton import COCO17
from erpose.track import PoseTracker, TrackerConfig
from erpose.track.metrics import identity_scores, keypoint_mota

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = Path(os.environ.get("ERPOSE_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))
POSETRACK = REAL / "mmpose_testdata" / "posetrack18"
ANNOTATIONS = POSETRACK / "annotations" / "test_posetrack18_val.json"

pytestmark = pytest.mark.skipif(not ANNOTATIONS.is_file(), reason=f"PoseTrack18 fixture not found at {POSETRACK}")


def _crowd_frame() -> tuple[np.ndarray, np.ndarray]:
    """Track ids (n,) and keypoints (n, 17, 3) of the fixture's most crowded frame."""
    doc = json.loads(ANNOTATIONS.read_text())
    counts: dict[int, int] = {}
    for ann in doc["annotations"]:
        counts[ann["image_id"]] = counts.get(ann["image_id"], 0) + 1
    image_id = max(counts, key=counts.get)
    anns = [a for a in doc["annotations"] if a["image_id"] == image_id]
    return (np.array([a["track_id"] for a in anns]),
            np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), 17, 3))


def _moving_crowd(rng: np.random.Generator, frames: int = 40, noise: float = 0.01, drop: float = 0.1):
    """The real crowd walking: each person at its own constant velocity, noisy, sometimes missed."""
    ids, gt = _crowd_frame()
    labelled = gt[..., 2] > 0
    ys = np.where(labelled, gt[..., 1], np.nan)
    height = np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1)
    velocity = rng.uniform(-3.0, 3.0, (len(ids), 1, 2))
    gt_frames, scores, detections, truth = [], [], [], []
    for t in range(frames):
        xy = gt[..., :2] + velocity * t
        gt_frames.append((ids, np.concatenate([xy, gt[..., 2:]], -1)))
        kept = np.flatnonzero(rng.random(len(ids)) >= drop)
        noisy = xy[kept] + rng.normal(0, 1, (len(kept), 17, 2)) * (noise * height[kept])[:, None, None]
        conf = np.where(labelled[kept], rng.uniform(0.6, 1.0, (len(kept), 17)), 0.05)
        detections.append(np.concatenate([noisy, conf[..., None]], -1))
        scores.append(rng.uniform(0.6, 1.0, len(kept)))
        truth.append(ids[kept])
    return gt_frames, scores, detections, truth


def test_real_crowd_keeps_its_ids_through_noise_and_misses():
    gt_frames, scores, detections, truth = _moving_crowd(np.random.default_rng(0))
    tracker = PoseTracker(COCO17.sigmas_array(), TrackerConfig())
    outputs = [tracker.update(s, d) for s, d in zip(scores, detections)]
    # Every real person has one track id for the whole sequence, and no two share one.
    owner: dict[int, int] = {}
    for out, who in zip(outputs, truth):
        for track_id, person in zip(out.track_ids, who[out.detection_index]):
            assert owner.setdefault(int(track_id), int(person)) == int(person)
    assert sorted(owner.values()) == sorted(gt_frames[0][0].tolist())
    pred_frames = [(o.track_ids, o.keypoints) for o in outputs]
    ident = identity_scores(gt_frames, pred_frames)
    assert ident.id_switches == 0 and ident.idf1 > 0.85
    assert keypoint_mota(gt_frames, pred_frames).mota > 0.7
    # The smoothed keypoints stay with their person (within a tenth of a 1-2 m person).
    for out in outputs[5:]:
        assert np.abs(out.smoothed[..., :2] - out.keypoints[..., :2]).max() < 40


def test_box_baseline_runs_on_the_same_real_crowd():
    gt_frames, scores, detections, _ = _moving_crowd(np.random.default_rng(1))
    tracker = PoseTracker(COCO17.sigmas_array(), replace(TrackerConfig(), association="box"))
    pred_frames = [(o.track_ids, o.keypoints) for o in (tracker.update(s, d) for s, d in zip(scores, detections))]
    ident = identity_scores(gt_frames, pred_frames)
    assert ident.num_gt_tracks == 11 and ident.idf1 > 0.5


class _FixturePeople:
    """Torch-free stand-in backend: the same three people in every frame (input-image pixels)."""

    skeleton = COCO17

    def predict(self, images, conf, max_det):
        shape = np.stack([np.linspace(0, 20, 17), np.linspace(0, 40, 17)], 1)
        rows = []
        for score, x0 in ((0.95, 10.0), (0.85, 60.0), (0.75, 110.0)):
            kpts = np.concatenate([shape + [x0, 40.0], np.full((17, 1), 0.9)], 1)
            rows.append(np.concatenate([[score], kpts.reshape(-1)]))
        return [np.stack(rows).astype(np.float32) for _ in range(len(images))]


def test_cli_on_the_real_frames_writes_consistent_json_and_csv(tmp_path, monkeypatch):
    from erpose.cli.main import main
    from erpose.engine import predictor as predictor_module

    monkeypatch.setattr(predictor_module, "load_backend", lambda weights, device="cpu", half=False: _FixturePeople())
    frames = sorted((POSETRACK / "images" / "val").glob("*/000000.jpg"))
    assert len(frames) == 3
    source = str(POSETRACK / "images" / "val" / "*" / "000000.jpg")  # a glob: one sequence, in name order
    argv = ["track", "--weights", "w.onnx", "--source", source, "--imgsz", "160", "--project", str(tmp_path),
            "--no-progress", "--no-save"]
    assert main(argv) == 0
    run = tmp_path / "exp"
    doc = json.loads((run / "tracks.json").read_text())
    assert [im["frame_id"] for im in doc["images"]] == [0, 1, 2]
    assert [Path(im["file_name"]).parent.name for im in doc["images"]] == [p.parent.name for p in frames]
    anns = doc["annotations"]
    assert len(anns) == 9 and len({a["id"] for a in anns}) == 9
    per_frame = {}
    for ann in anns:
        per_frame.setdefault(ann["image_id"], []).append(ann["track_id"])
        kp = np.array(ann["keypoints_raw"]).reshape(17, 3)
        # Back in the 1920 x 1080 frame: inside it, and scaled up from the 160 px input (x 12).
        assert (kp[:, 0] >= 0).all() and (kp[:, 0] < 1920).all() and np.ptp(kp[:, 1]) > 300
    assert all(sorted(ids) == [1, 2, 3] for ids in per_frame.values())
    rows = list(csv.reader((run / "tracks.csv").open()))[1:]
    by_key = {(a["image_id"], a["track_id"]): a for a in anns}
    image_of_frame = {im["frame_id"]: im["id"] for im in doc["images"]}
    assert len(rows) == len(anns)
    for row in rows:
        ann = by_key[(image_of_frame[int(row[1])], int(row[2]))]
        assert float(row[3]) == pytest.approx(ann["score"], abs=1e-3)
        assert np.allclose([float(v) for v in row[4:]], ann["keypoints"], atol=0.01)
