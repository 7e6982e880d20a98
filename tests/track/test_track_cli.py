"""``erpose track`` and ``ERPose.track`` end to end with a stand-in backend (two walkers)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from erpose.skeleton import COCO17

_RNG = np.random.default_rng(0)
_SHAPE = np.stack([_RNG.uniform(0, 16, 17), _RNG.uniform(0, 30, 17)], axis=1)


class WalkersBackend:
    """Torch-free backend: two people walking towards each other 1 px per frame, scores 0.9 / 0.8."""

    skeleton = COCO17

    def __init__(self) -> None:
        self.frame = 0

    def predict(self, images, conf, max_det):
        outputs = []
        for _ in range(len(images)):
            t = self.frame
            self.frame += 1
            rows = []
            for score, x0, step in ((0.9, 4.0, 1.0), (0.8, 44.0, -1.0)):
                xy = _SHAPE + [x0 + step * t, 16.0]
                rows.append(np.concatenate([[score], np.concatenate([xy, np.ones((17, 1))], 1).reshape(-1)]))
            outputs.append(np.stack(rows).astype(np.float32))
        return outputs


@pytest.fixture
def walkers(monkeypatch):
    from erpose.engine import predictor as predictor_module

    monkeypatch.setattr(predictor_module, "load_backend", lambda weights, device="cpu", half=False: WalkersBackend())


def _video(path, frames=6):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for i in range(frames):
        writer.write(np.full((64, 64, 3), 40 * i % 255, np.uint8))
    writer.release()


def test_cli_video_writes_drawing_posetrack_json_and_csv(tmp_path, walkers, capsys):
    from erpose.cli.main import main

    _video(tmp_path / "walk.mp4")
    argv = ["track", "--weights", "w.onnx", "--source", str(tmp_path / "walk.mp4"), "--imgsz", "64",
            "--project", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in run.iterdir()) == ["tracks.csv", "walk.json", "walk.mp4"]
    capture = cv2.VideoCapture(str(run / "walk.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()

    posetrack = json.loads((run / "walk.json").read_text())
    assert [im["frame_id"] for im in posetrack["images"]] == list(range(6))
    assert posetrack["categories"][0]["keypoints"] == list(COCO17.keypoint_names)
    by_frame = {}
    for ann in posetrack["annotations"]:
        by_frame.setdefault(ann["image_id"], {})[ann["track_id"]] = ann
        assert len(ann["keypoints"]) == 51 and len(ann["scores"]) == 17 and len(ann["keypoints_raw"]) == 51
    assert all(sorted(people) == [1, 2] for people in by_frame.values()) and len(by_frame) == 6
    # Track 1 is the walker scored 0.9, starting at x = 4 (+ its shape) and moving right.
    assert by_frame[5][1]["score"] == pytest.approx(0.9)
    assert by_frame[5][1]["keypoints_raw"][0] == pytest.approx(_SHAPE[0, 0] + 4 + 5, abs=0.05)

    rows = list(csv.reader((run / "tracks.csv").open()))
    assert rows[0][:4] == ["source", "frame", "track_id", "score"] and len(rows[0]) == 4 + 51
    assert [(int(r[1]), int(r[2])) for r in rows[1:]] == [(f, i) for f in range(6) for i in (1, 2)]
    out = capsys.readouterr().out
    assert "2 track(s)" in out and "pose association" in out


def test_cli_frame_folder_is_one_sequence_and_box_option(tmp_path, walkers):
    from erpose.cli.main import main

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.zeros((64, 64, 3), np.uint8))
    argv = ["track", "--weights", "w.pt", "--source", str(folder), "--imgsz", "64", "--association", "box",
            "--no-smooth", "--project", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in run.iterdir()) == [f"{i:04d}.png" for i in range(4)] + ["tracks.csv", "tracks.json"]
    posetrack = json.loads((run / "tracks.json").read_text())
    assert {a["track_id"] for a in posetrack["annotations"]} == {1, 2}
    assert all("keypoints_raw" not in a for a in posetrack["annotations"])  # smoothing off: one set


def test_cli_rejects_inconsistent_thresholds(tmp_path, walkers, capsys):
    from erpose.cli.main import main

    _video(tmp_path / "walk.mp4", 2)
    argv = ["track", "--weights", "w.pt", "--source", str(tmp_path / "walk.mp4"), "--conf", "0.7",
            "--project", str(tmp_path / "runs")]
    assert main(argv) == 2
    assert "low_score" in capsys.readouterr().err


def test_api_track_streams_ids_raw_and_smoothed(walkers):
    from erpose import ERPose

    frames = [np.zeros((64, 64, 3), np.uint8)] * 5
    stream = ERPose("w.pt").track(frames, imgsz=64)
    assert not isinstance(stream, list)
    results = list(stream)
    assert [r.tracks.track_ids.tolist() for r in results] == [[1, 2]] * 5
    last = results[-1]
    assert last.tracks.keypoints.shape == last.tracks.smoothed.shape == (2, 17, 3)
    assert not np.allclose(last.tracks.keypoints, last.tracks.smoothed)  # moving: the filter lags a little
    drawn = last.plot()
    assert drawn.shape == (64, 64, 3) and drawn.any()
    assert len(ERPose("w.pt").track(frames, imgsz=64, stream=False)) == 5
