import copy
import math

import numpy as np
import pytest
from eval_reference import crowdpose_metrics
from eval_synthetic import make_detections, make_ground_truth

from erpose.eval import CROWDPOSE_METRICS, EvaluationError, evaluate_crowdpose, has_crowd_index
from erpose.eval.crowdpose import split_by_crowd_index
from erpose.skeleton import CROWDPOSE14

K = 14
SIGMA_SHOULDER = CROWDPOSE14.sigmas[0]  # 0.079


def _person(ann_id, image_id, x, y, labelled=range(12), iscrowd=0, num_keypoints=None):
    """A 100 x 100 px CrowdPose person (0.53 * w * h = 5300): joints on a grid inside its box."""
    keypoints = np.zeros((K, 3))
    for k in labelled:
        keypoints[k] = (x + 10 + 6 * k, y + 10 + 5 * k, 2)
    if num_keypoints is None:  # CrowdPose counts only the 12 body joints
        num_keypoints = int((keypoints[:12, 2] > 0).sum())
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
            "bbox": [x, y, 100.0, 100.0], "num_keypoints": num_keypoints,
            "keypoints": keypoints.ravel().tolist()}


def _det(image_id, keypoints, score, dx=0.0):
    keypoints = np.asarray(keypoints, float).reshape(K, 3).copy()
    keypoints[:, 0] += dx
    keypoints[:, 2] = 0.9
    return {"image_id": image_id, "category_id": 1, "keypoints": keypoints.ravel().tolist(), "score": score}


def hand_made_case():
    """Five images, crowd index on both split boundaries; expected APs worked out by hand.

    easy   E (0.0): one person; its only detection has OKS 0.72 (shoulders only labelled), so it
           is a TP for thresholds 0.50..0.70 (5 of 10) and an FP above: AP_easy = 0.5.
    medium A (0.2, boundary -> medium): a perfect detection (score 0.9).
           B (0.5): a missed person, a far false positive (score 0.95), and a person with only head
           and neck labelled (num_keypoints 0 -> ignored) whose exact detection (0.99) is ignored.
           Ranked: FP, TP over 2 persons -> precision 0.5 up to recall 0.5, 0 beyond, for every
           threshold: AP_medium = round(51 * 0.5 / 101, 4) = 0.2525.
    hard   C (0.8, boundary -> hard): a person with a perfect detection (0.5) and a crowd region
           (iscrowd 1, no keypoints) with a detection inside it (0.9) -> ignored.
           D (1.5): no person, one false positive (0.3) ranked below the TP: AP_hard = 1.0.
    """
    images = [{"id": i, "width": 640, "height": 480, "crowdIndex": c}
              for i, c in ((10, 0.0), (20, 0.2), (30, 0.5), (40, 0.8), (50, 1.5))]
    easy = _person(1, 10, 50, 50, labelled=(0, 1))
    a = _person(2, 20, 50, 50)
    b_missed = _person(3, 30, 50, 50)
    b_head_only = _person(4, 30, 300, 200, labelled=(12, 13))
    c = _person(5, 40, 50, 50)
    c_crowd = _person(6, 40, 300, 200, labelled=(), iscrowd=1)
    gt = {"images": images, "annotations": [easy, a, b_missed, b_head_only, c, c_crowd],
          "categories": [{"id": 1, "name": "person"}]}
    # shift with exp(-d^2 / (2 * 5300 * (2 sigma)^2)) = 0.72 for the two shoulder joints.
    shift = math.sqrt(-math.log(0.72) * 2 * (100 * 100 * 0.53) * (2 * SIGMA_SHOULDER) ** 2)
    far = np.column_stack([np.full(K, 600.0), np.full(K, 470.0), np.ones(K)])
    crowd_inside = np.column_stack([np.full(K, 350.0), np.full(K, 250.0), np.ones(K)])
    dets = [
        _det(10, easy["keypoints"], 0.8, dx=shift),
        _det(20, a["keypoints"], 0.9),
        _det(30, far, 0.95),
        _det(30, b_head_only["keypoints"], 0.99),
        _det(40, c["keypoints"], 0.5),
        _det(40, crowd_inside, 0.9),
        _det(50, far, 0.3),
    ]
    return gt, dets


def test_hand_made_split_values():
    gt, dets = hand_made_case()
    metrics = evaluate_crowdpose(gt, dets)
    assert list(metrics) == list(CROWDPOSE_METRICS)
    assert metrics["AP_easy"] == 0.5
    assert metrics["AP_medium"] == 0.2525
    assert metrics["AP_hard"] == 1.0
    # All images together: 4 persons; ranked TP .9(A) / FP .95(B) / TP .8(E, t <= .70) / TP .5(C) /
    # FP .3(D). The independent reference gives the same numbers.
    reference = crowdpose_metrics(gt, dets, CROWDPOSE14.sigmas)
    for name in CROWDPOSE_METRICS:
        assert metrics[name] == pytest.approx(reference[name], abs=1e-9), name
    assert metrics["AR50"] == 0.75 and metrics["AR"] == pytest.approx((5 * 0.75 + 5 * 0.5) / 10)


def test_split_boundaries():
    images = [{"id": i, "crowdIndex": c} for i, c in enumerate([0.0, 0.19, 0.2, 0.79, 0.8, 3.02])]
    assert split_by_crowd_index(images) == {"easy": [0, 1], "medium": [2, 3], "hard": [4, 5]}
    with pytest.raises(EvaluationError, match="crowdIndex"):
        split_by_crowd_index([{"id": 7}])


@pytest.mark.parametrize("seed", [11, 12])
def test_random_sets_match_independent_reference(seed):
    gt = make_ground_truth(seed, num_keypoints=K, crowd_index=True)
    for ann in gt["annotations"]:
        del ann["area"]  # CrowdPose files have none
    dets = make_detections(gt, seed)
    ours = evaluate_crowdpose(gt, dets)
    reference = crowdpose_metrics(gt, dets, CROWDPOSE14.sigmas)
    for name in CROWDPOSE_METRICS:
        assert ours[name] == pytest.approx(reference[name], abs=1e-9), name
    assert 0.0 < ours["AP"] < 1.0


def test_empty_subset_is_minus_one_like_the_official_tool():
    gt, dets = hand_made_case()
    gt = copy.deepcopy(gt)
    for image in gt["images"]:
        image["crowdIndex"] = min(image["crowdIndex"], 0.5)  # no hard image left
    metrics = evaluate_crowdpose(gt, dets)
    assert metrics["AP_hard"] == -1.0
    assert metrics["AP_easy"] == 0.5


def test_has_crowd_index():
    gt, _ = hand_made_case()
    assert has_crowd_index(gt)
    assert not has_crowd_index(make_ground_truth(1))


def test_empty_detections():
    gt, _ = hand_made_case()
    metrics = evaluate_crowdpose(gt, [])
    assert metrics["AP"] == 0.0 and metrics["AP_easy"] == 0.0


def test_real_crowdpose_annotation_file():
    import json
    import os
    from pathlib import Path

    real = Path(os.environ.get("ERPOSE_REAL_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"))
    path = real / "mmpose_testdata" / "crowdpose" / "test_crowdpose.json"
    if not path.is_file():
        pytest.skip("real data not available")
    gt = json.loads(path.read_text())  # no 'area', crowdIndex 0.33 / 0.39: both images are medium
    rng = np.random.default_rng(1)
    dets = []
    for ann in gt["annotations"]:
        keypoints = np.asarray(ann["keypoints"], float).reshape(K, 3)
        keypoints[:, :2] += rng.normal(0, 6, (K, 2))
        dets.append({"image_id": ann["image_id"], "category_id": 1,
                     "keypoints": keypoints.ravel().tolist(), "score": float(rng.uniform())})
    ours = evaluate_crowdpose(path, dets)
    reference = crowdpose_metrics(gt, dets, CROWDPOSE14.sigmas)
    for name in CROWDPOSE_METRICS:
        assert ours[name] == pytest.approx(reference[name], abs=1e-9), name
    assert ours["AP_easy"] == -1.0 and ours["AP_hard"] == -1.0 and 0 < ours["AP_medium"] <= 1
