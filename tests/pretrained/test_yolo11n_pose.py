"""The real COCO-trained YOLO11n-pose (fixture fetched by pip): read safely, converted exactly,
scored on real photos as ultralytics scores it, and used by every verb."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from erpose.cli.main import main
from erpose.models.checkpoint import load_model
from erpose.models.ultralytics_reader import read_ultralytics

#: What ultralytics 8.4.190 itself scores with this file on tiny_coco val2017 at 640 (conf 0.001,
#: NMS IoU 0.65, max_det 100, pycocotools; reproduced by benchmarks/pretrained_parity.py).
ULTRALYTICS_TINY_COCO_AP = 0.559


def test_release_file_is_read_without_ultralytics(yolo11n_pose):
    checkpoint = read_ultralytics(yolo11n_pose)
    assert checkpoint.task == "pose" and checkpoint.scale == "n" and checkpoint.kpt_shape == (17, 3)
    assert checkpoint.metadata["version"] == "8.2.100" and "AGPL" in checkpoint.metadata["license"]
    assert checkpoint.layer_types[-1] == "Pose" and len(checkpoint.state_dict) == 541


def test_convert_cli_writes_a_weights_only_checkpoint(yolo11n_pose, tmp_path, capsys):
    out = tmp_path / "yolo11n-pose-erpose.pt"
    assert main(["convert", str(yolo11n_pose), "--out", str(out)]) == 0
    assert "yolopose-n (2,874,446 parameters" in capsys.readouterr().out
    stored = torch.load(out, weights_only=True)
    assert stored["config"]["step"] == "B0" and stored["converted_from"] == str(yolo11n_pose)
    images = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_model(out)(images), load_model(yolo11n_pose)(images))
    assert main(["convert", str(out), "--out", str(tmp_path / "again.pt")]) == 2
    assert "not an ultralytics checkpoint" in capsys.readouterr().err


def test_finds_the_astronaut(yolo11n_pose, real_data, tmp_path):
    """A real photo, a real model: one confident person, nose above the hips."""
    from erpose.api import ERPose

    result = ERPose(str(yolo11n_pose)).predict(str(real_data / "public_domain_samples" / "astronaut.png"), conf=0.5)[0]
    assert len(result.scores) == 1
    nose_y, hip_y = result.keypoints.xy[0, 0, 1], result.keypoints.xy[0, 11:13, 1].mean()
    assert nose_y < hip_y


def test_val_matches_ultralytics_on_tiny_coco(yolo11n_pose, real_data, tmp_path, capsys):
    annotations = real_data / "tiny_coco" / "annotations" / "person_keypoints_val2017.json"
    if not annotations.is_file():
        pytest.skip("tiny_coco not present")
    torch.set_num_threads(2)
    code = main(["val", "--weights", str(yolo11n_pose), "--data", str(annotations), "--imgsz", "640",
                 "--json", "--no-progress", "--out", str(tmp_path / "val")])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(metrics["AP"] - ULTRALYTICS_TINY_COCO_AP) <= 0.005, metrics


def test_predict_video_with_the_converted_model(yolo11n_pose, tmp_path):
    """Generated frames: a person-shaped photo when the real samples exist, else SynthCrowd figures."""
    astronaut = Path(__file__).resolve().parents[2].parent / "shared/data/real/public_domain_samples/astronaut.png"
    if astronaut.is_file():
        base = cv2.resize(cv2.imread(str(astronaut)), (160, 160))
    else:
        base = np.full((160, 160, 3), 90, np.uint8)
        cv2.line(base, (80, 30), (80, 120), (255, 255, 255), 6)
    converted = tmp_path / "converted.pt"
    assert main(["convert", str(yolo11n_pose), "--out", str(converted)]) == 0
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (200, 160))
    for shift in range(0, 40, 10):
        frame = np.full((160, 200, 3), 60, np.uint8)
        frame[:, shift:shift + 160] = base
        writer.write(frame)
    writer.release()
    argv = ["predict", "--weights", str(converted), "--source", str(video), "--imgsz", "192", "--save-json",
            "--project", str(tmp_path / "runs"), "--name", "v", "--no-progress", "--conf", "0.4"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "v"
    capture = cv2.VideoCapture(str(run / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    capture.release()
    detections = json.loads((run / "predictions.json").read_text())
    if astronaut.is_file():
        assert {d["image_id"] for d in detections} == {0, 1, 2, 3}  # the person is found in every frame
