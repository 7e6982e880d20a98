import contextlib
import copy
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from eval_reference import evaluate as reference_evaluate
from eval_reference import summarize_coco
from eval_synthetic import make_detections, make_ground_truth

from erpose.eval import COCO_METRICS, EvaluationError, evaluate_keypoints
from erpose.skeleton import COCO17

REAL = Path(os.environ.get("ERPOSE_REAL_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"))
TINY_COCO_VAL = REAL / "tiny_coco" / "annotations" / "person_keypoints_val2017.json"


def pycocotools_stats(gt: dict | Path, dets: list[dict], sigmas=None) -> list[float]:
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval_module = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO(str(gt)) if isinstance(gt, Path) else coco_module.COCO()
        if not isinstance(gt, Path):
            coco_gt.dataset = copy.deepcopy(gt)
            coco_gt.createIndex()
        evaluator = cocoeval_module.COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "keypoints")
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def assert_metrics_close(ours: dict, stats: list[float], tol: float = 1e-6) -> None:
    assert list(ours) == list(COCO_METRICS)
    for name, expected in zip(COCO_METRICS, stats):
        assert ours[name] == pytest.approx(expected, abs=tol), name


def test_ground_truth_as_detections_gives_perfect_scores():
    gt = make_ground_truth(seed=1)
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0
    ]
    metrics = evaluate_keypoints(gt, dets)
    for name in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert metrics[name] == 1.0, name


@pytest.mark.skipif(not TINY_COCO_VAL.is_file(), reason="real data not available")
def test_perturbed_detections_match_pycocotools_on_real_coco():
    gt = json.loads(TINY_COCO_VAL.read_text())
    rng = np.random.default_rng(0)
    dets = []
    for ann in gt["annotations"]:
        keypoints = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        keypoints[:, :2] += rng.normal(0, 0.07 * math.sqrt(ann["area"] + 1), (17, 2))
        keypoints[:, 2] = rng.uniform(0, 1, 17)
        dets.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": keypoints.ravel().tolist(),
                     "score": float(np.round(rng.uniform(), 2))})
    image_ids = [image["id"] for image in gt["images"]]
    for _ in range(50):  # false positives, some on images without persons
        keypoints = np.column_stack([rng.uniform(0, 600, 17), rng.uniform(0, 400, 17), np.ones(17)])
        dets.append({"image_id": int(rng.choice(image_ids)), "category_id": 1,
                     "keypoints": keypoints.ravel().tolist(), "score": float(np.round(rng.uniform(), 2))})
    expected = pycocotools_stats(TINY_COCO_VAL, dets)
    ours = evaluate_keypoints(TINY_COCO_VAL, dets)
    assert_metrics_close(ours, expected)
    assert 0.05 < ours["AP"] < 0.95  # a non-trivial case


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("with_bbox", [False, True])
def test_edge_cases_match_pycocotools_and_reference(seed, with_bbox):
    gt = make_ground_truth(seed)
    dets = make_detections(gt, seed, with_bbox=with_bbox)
    ours = evaluate_keypoints(gt, dets)
    assert_metrics_close(ours, pycocotools_stats(gt, dets))
    reference = summarize_coco(*reference_evaluate(gt, dets, COCO17.sigmas))
    for name in COCO_METRICS:
        assert ours[name] == pytest.approx(reference[name], abs=1e-9), name


def _five_keypoint_case(oks_target: float):
    sigmas = [0.05, 0.05, 0.05, 0.05, 0.05]
    area = 2500.0
    gt_keypoints = np.array([[100, 100, 2], [120, 100, 2], [110, 120, 1], [100, 140, 2], [120, 140, 0]], float)
    # Shift every labelled point by d so exp(-d^2 / (2 * area * (2 sigma)^2)) == oks_target.
    shift = math.sqrt(-math.log(oks_target) * 2 * area * (2 * 0.05) ** 2)
    det_keypoints = gt_keypoints.copy()
    det_keypoints[:, 0] += shift
    det_keypoints[4, :2] = (500, 500)  # unlabelled in the ground truth: must not count
    gt = {
        "images": [{"id": 1, "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area,
                         "bbox": [100, 100, 20, 40], "num_keypoints": 4, "keypoints": gt_keypoints.ravel().tolist()}],
        "categories": [{"id": 1, "name": "person"}],
    }
    dets = [{"image_id": 1, "category_id": 1, "keypoints": det_keypoints.ravel().tolist(), "score": 0.9}]
    return gt, dets, sigmas


def test_custom_sigmas_five_keypoints_hand_computed():
    # OKS 0.62 matches at thresholds 0.50, 0.55, 0.60 only: AP = AR = 3/10, AP50 = 1, AP75 = 0.
    gt, dets, sigmas = _five_keypoint_case(0.62)
    metrics = evaluate_keypoints(gt, dets, sigmas=sigmas)
    assert metrics["AP"] == pytest.approx(0.3, abs=1e-12)
    assert metrics["AR"] == pytest.approx(0.3, abs=1e-12)
    assert metrics["AP50"] == 1.0 and metrics["AP75"] == 0.0
    assert metrics["APM"] == pytest.approx(0.3, abs=1e-12)  # area 2500 is medium
    assert metrics["APL"] == -1.0  # no large person: undefined, as pycocotools
    assert_metrics_close(metrics, pycocotools_stats(gt, dets, sigmas))


def test_custom_sigmas_random_set_matches_pycocotools():
    sigmas = [0.03, 0.05, 0.07, 0.09, 0.11]
    gt = make_ground_truth(seed=8, num_keypoints=5)
    dets = make_detections(gt, seed=8)
    assert_metrics_close(evaluate_keypoints(gt, dets, sigmas=sigmas), pycocotools_stats(gt, dets, sigmas))


def test_custom_skeleton_without_sigmas_is_an_error():
    gt, dets, _ = _five_keypoint_case(0.9)
    with pytest.raises(EvaluationError, match="5 keypoints"):
        evaluate_keypoints(gt, dets)


def test_empty_detections_give_zero_not_a_crash():
    metrics = evaluate_keypoints(make_ground_truth(seed=2), [])
    assert metrics["AP"] == 0.0 and metrics["AR"] == 0.0


def test_unknown_image_id_is_a_clear_error():
    gt = make_ground_truth(seed=2)
    dets = make_detections(gt, seed=2)
    dets[3]["image_id"] = 424242
    with pytest.raises(EvaluationError, match="424242"):
        evaluate_keypoints(gt, dets)


def test_inputs_are_not_mutated_and_files_work(tmp_path):
    gt = make_ground_truth(seed=5)
    dets = make_detections(gt, seed=5)
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    from_memory = evaluate_keypoints(gt, dets)
    assert gt == gt_before and dets == dets_before
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert evaluate_keypoints(tmp_path / "gt.json", str(tmp_path / "dets.json")) == from_memory


def test_missing_area_is_an_error_unless_box_scale():
    gt = make_ground_truth(seed=6)
    dets = make_detections(gt, seed=6)
    for ann in gt["annotations"]:
        del ann["area"]
    with pytest.raises(EvaluationError, match="no 'area'"):
        evaluate_keypoints(gt, dets)
    metrics = evaluate_keypoints(gt, dets, use_area=False)
    assert 0.0 < metrics["AP"] < 1.0


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        evaluate_keypoints(tmp_path / "nope.json", [])


@pytest.mark.parametrize(
    "keypoints, message",
    [
        (None, "'keypoints' is null"),
        ("1 2 3", "'keypoints' must be a list of numbers, got str"),
        (["1", "2", "3"] * 17, "non-numeric keypoint value '1'"),
        ([10.0, 10.0, 1.0] * 16 + [float("inf"), 1.0, 1.0], "NaN or infinite keypoint value"),
    ],
)
def test_bad_keypoints_in_a_results_file_name_the_file(tmp_path, keypoints, message):
    gt = make_ground_truth(seed=3)
    dets = make_detections(gt, seed=3)
    dets[1]["keypoints"] = keypoints
    path = tmp_path / "results.json"
    path.write_text(json.dumps(dets))
    with pytest.raises(EvaluationError, match="results.json: detection 1") as exc:
        evaluate_keypoints(gt, path)
    assert message in str(exc.value)


def test_null_keypoints_in_ground_truth_name_the_file_and_annotation(tmp_path):
    gt = make_ground_truth(seed=4)
    gt["annotations"][2]["keypoints"] = None
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(EvaluationError, match=r"gt\.json: annotations\[2\] .*'keypoints' is null"):
        evaluate_keypoints(path, [])


def test_keypoint_count_is_not_taken_from_the_first_annotation(tmp_path):
    gt = make_ground_truth(seed=5)
    gt["annotations"][0]["keypoints"] = gt["annotations"][0]["keypoints"][:15]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    # The short first annotation is the one blamed, not every good one after it.
    with pytest.raises(EvaluationError, match=r"annotations\[0\] .* has 15 keypoint values, expected 51"):
        evaluate_keypoints(path, [])
