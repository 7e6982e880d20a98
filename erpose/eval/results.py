"""COCO keypoint results format: build it from predictions, save it, load it.

One detection is ``{"image_id": int, "category_id": 1, "keypoints": [x1, y1, c1, ..., xK, yK, cK],
"score": float}`` with x, y in original image pixels. No ``bbox`` is written: COCO tools then take
the detection area from the keypoint extent, as they do for keypoint-only results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from erpose.eval.coco import EvaluationError, read_json_file
from erpose.files import atomic_write_json

#: Decimals written: 1/100 px is far below any OKS tolerance, and scores keep 5 digits so ranking
#: is unchanged in practice; the same rounded values are evaluated and saved, so re-evaluating a
#: saved file gives the same metrics.
XY_DECIMALS = 2
SCORE_DECIMALS = 5


def _as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor; keeps this module torch-free
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def detections_to_results(
    scores,
    keypoints,
    image_id: int,
    category_id: int = 1,
) -> list[dict]:
    """COCO results for the persons of one image.

    Args:
        scores: (N,) person scores.
        keypoints: (N, K, 3) x, y in original image pixels and per-keypoint confidence.
        image_id: the ground-truth ``image_id`` of the image.
        category_id: COCO category (person is 1).

    Returns:
        N result dicts in the input order.
    """
    scores = _as_numpy(scores).reshape(-1)
    keypoints = _as_numpy(keypoints)
    if keypoints.ndim != 3 or keypoints.shape[0] != scores.shape[0] or keypoints.shape[2] != 3:
        raise EvaluationError(
            f"keypoints must be (N, K, 3) with N = {scores.shape[0]} scores, got {tuple(keypoints.shape)}"
        )
    rounded = keypoints.copy()
    rounded[..., :2] = np.round(rounded[..., :2], XY_DECIMALS)
    rounded[..., 2] = np.round(rounded[..., 2], SCORE_DECIMALS)
    flat = rounded.reshape(rounded.shape[0], 3 * rounded.shape[1]).tolist()
    score_list = np.round(scores, SCORE_DECIMALS).tolist()
    image_id = int(image_id)
    return [
        {"image_id": image_id, "category_id": int(category_id), "keypoints": kpts, "score": score}
        for kpts, score in zip(flat, score_list)
    ]


def predictions_to_results(
    predictions: Sequence,
    image_ids: Sequence[int],
    category_id: int = 1,
) -> list[dict]:
    """COCO results for a batch of model outputs already mapped to original pixels.

    Args:
        predictions: per image an (n_i, 1 + 3K) array or tensor: score, then x, y, conf per keypoint.
        image_ids: one ground-truth image id per prediction.
        category_id: COCO category (person is 1).

    Returns:
        All result dicts, image by image.
    """
    if len(predictions) != len(image_ids):
        raise EvaluationError(f"{len(predictions)} predictions for {len(image_ids)} image ids")
    results: list[dict] = []
    for rows, image_id in zip(predictions, image_ids):
        rows = _as_numpy(rows)
        if rows.ndim != 2 or (rows.shape[1] - 1) % 3 != 0:
            raise EvaluationError(f"image {image_id}: prediction rows must be (n, 1 + 3K), got {rows.shape}")
        keypoints = rows[:, 1:].reshape(len(rows), (rows.shape[1] - 1) // 3, 3)
        results.extend(detections_to_results(rows[:, 0], keypoints, image_id, category_id))
    return results


def save_results(results: list[dict], path: str | Path) -> Path:
    """Write COCO results as a JSON list, atomically (temporary file + rename)."""
    return atomic_write_json(results, path)


def save_metrics(metrics: dict, path: str | Path) -> Path:
    """Write a metrics dict as JSON, atomically."""
    return atomic_write_json(metrics, path)


def load_results(path: str | Path) -> list[dict]:
    """Read a COCO results JSON list; raises naming the file when it is not one."""
    path = Path(path)
    data = read_json_file(path, "results")  # a list that remembers the file, for later messages
    if not isinstance(data, list):
        raise EvaluationError(f"{path}: COCO results must be a JSON list of detections")
    return data
