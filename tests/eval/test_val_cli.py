import json

import pytest
from eval_synthetic import make_detections, make_ground_truth, write_image_dataset

from erpose.cli.main import main
from erpose.eval import COCO_METRICS, CROWDPOSE_METRICS, evaluate_keypoints


@pytest.fixture
def coco_files(tmp_path):
    gt = make_ground_truth(seed=21)
    dets = make_detections(gt, seed=21)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(dets))
    return tmp_path / "gt.json", tmp_path / "results.json", gt, dets


def run_json(argv, capsys):
    code = main(argv + ["--json"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1  # nothing but the JSON object on stdout
    return json.loads(lines[0])


def test_predictions_json_output_matches_library(coco_files, capsys):
    gt_path, results_path, gt, dets = coco_files
    metrics = run_json(["val", "--predictions", str(results_path), "--data", str(gt_path)], capsys)
    assert list(metrics) == list(COCO_METRICS)
    assert metrics == evaluate_keypoints(gt, dets)
    assert 0.0 < metrics["AP"] < 1.0


def test_predictions_table_and_metrics_file(coco_files, capsys, tmp_path):
    gt_path, results_path, _, _ = coco_files
    out_dir = tmp_path / "out"
    assert main(["val", "--predictions", str(results_path), "--data", str(gt_path), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "coco keypoint evaluation" in printed
    report = json.loads((out_dir / "metrics.json").read_text())
    assert report["protocol"] == "coco" and report["num_images"] == 12
    assert f"{report['metrics']['AP']:.4f}" in printed


def test_crowdpose_split_reported_when_gt_has_crowd_index(tmp_path, capsys):
    gt = make_ground_truth(seed=22, num_keypoints=14, crowd_index=True)
    for ann in gt["annotations"]:
        del ann["area"]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(make_detections(gt, seed=22)))
    argv = ["val", "--predictions", str(tmp_path / "results.json"), "--data", str(tmp_path / "gt.json")]
    metrics = run_json(argv, capsys)
    assert list(metrics) == list(CROWDPOSE_METRICS)
    coco = run_json(argv + ["--crowdpose", "off"], capsys)
    assert list(coco) == list(COCO_METRICS)
    assert coco["AP"] == pytest.approx(metrics["AP"], abs=1e-12)  # same rules apart from the split


def test_bad_results_give_one_line_error(coco_files, capsys, tmp_path):
    gt_path, _, gt, dets = coco_files
    dets[0]["image_id"] = 987654
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dets))
    assert main(["val", "--predictions", str(bad), "--data", str(gt_path)]) == 2
    err = capsys.readouterr().err
    assert "987654" in err and "Traceback" not in err
    assert main(["val", "--predictions", str(tmp_path / "missing.json"), "--data", str(gt_path)]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_weights_and_predictions_are_exclusive(coco_files, capsys):
    gt_path, results_path, _, _ = coco_files
    with pytest.raises(SystemExit):
        main(["val", "--weights", "erpose-n", "--predictions", str(results_path), "--data", str(gt_path)])
    capsys.readouterr()


def test_model_run_writes_results_that_reevaluate_identically(tmp_path, capsys):
    pytest.importorskip("erpose.models.checkpoint")
    gt_path, _ = write_image_dataset(tmp_path / "data")
    out_dir = tmp_path / "val"
    metrics = run_json(["val", "--weights", "erpose-n", "--data", str(gt_path), "--imgsz", "64", "--batch", "2",
                        "--out", str(out_dir), "--no-progress"], capsys)
    results = json.loads((out_dir / "predictions.json").read_text())
    assert results and {"image_id", "category_id", "keypoints", "score"} <= set(results[0])
    assert json.loads((out_dir / "metrics.json").read_text())["metrics"] == metrics
    again = run_json(["val", "--predictions", str(out_dir / "predictions.json"), "--data", str(gt_path)], capsys)
    assert again == metrics


def test_synthcrowd_preset_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("erpose.data.synth")
    pytest.importorskip("erpose.models.checkpoint")
    monkeypatch.setenv("ERPOSE_CACHE", str(tmp_path / "cache"))
    metrics = run_json(["val", "--weights", "erpose-n", "--data", "tiny", "--imgsz", "64", "--batch", "8",
                        "--out", str(tmp_path / "val"), "--no-progress"], capsys)
    # SynthCrowd has COCO areas and crowdIndex: the COCO table plus the easy/medium/hard split.
    assert list(metrics) == list(COCO_METRICS) + ["AP_easy", "AP_medium", "AP_hard"]
    assert all(v == -1.0 or 0.0 <= v <= 1.0 for v in metrics.values())
