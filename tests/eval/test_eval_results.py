import json

import numpy as np
import pytest
import torch

from erpose.eval import EvaluationError, load_results, predictions_to_results, save_results
from erpose.eval.results import detections_to_results


def test_predictions_to_results_layout_and_rounding():
    rows = torch.tensor([[0.91234567, 10.123, 20.456, 0.5, 30.0, 40.0, 0.25],
                         [0.5, 1.0, 2.0, 0.1, 3.0, 4.0, 0.2]])
    results = predictions_to_results([rows, np.zeros((0, 7))], image_ids=[42, 43])
    assert len(results) == 2
    first = results[0]
    assert first == {"image_id": 42, "category_id": 1, "keypoints": pytest.approx([10.12, 20.46, 0.5, 30, 40, 0.25]),
                     "score": pytest.approx(0.91235)}
    assert isinstance(first["image_id"], int) and all(isinstance(v, float) for v in first["keypoints"])
    json.dumps(results)  # plain Python types only


def test_shape_errors():
    with pytest.raises(EvaluationError, match="1 \\+ 3K"):
        predictions_to_results([np.zeros((2, 6))], [1])
    with pytest.raises(EvaluationError, match="image ids"):
        predictions_to_results([np.zeros((0, 4))], [1, 2])
    with pytest.raises(EvaluationError, match="N, K, 3"):
        detections_to_results(np.ones(2), np.zeros((3, 5, 3)), 1)


def test_save_load_round_trip(tmp_path):
    results = detections_to_results(np.array([0.7]), np.arange(15, dtype=float).reshape(1, 5, 3), image_id=9)
    path = save_results(results, tmp_path / "sub" / "res.json")
    assert load_results(path) == results
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name != "res.json"]  # no temp file left
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(EvaluationError, match="JSON list"):
        load_results(tmp_path / "obj.json")


def test_loaded_files_name_themselves_in_later_errors(tmp_path):
    """erpose val loads a file once and passes the parsed JSON on: errors must still name the file."""
    from eval_synthetic import make_detections, make_ground_truth

    from erpose.eval import EvaluationError, evaluate_keypoints, load_results

    gt = make_ground_truth(seed=2)
    dets = make_detections(gt, seed=2)
    dets[0]["keypoints"] = None
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(dets))
    loaded = load_results(path)
    assert loaded == dets and loaded.path == str(path)
    with pytest.raises(EvaluationError, match=r"mine\.json: detection 0: 'keypoints' is null"):
        evaluate_keypoints(gt, loaded)
