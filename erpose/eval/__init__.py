"""Keypoint evaluation: COCO AP/AR (faster-coco-eval, pycocotools numbers), CrowdPose
easy/medium/hard, and the COCO results format."""

from __future__ import annotations

from erpose.eval.coco import COCO_METRICS, EvaluationError, evaluate_keypoints
from erpose.eval.crowdpose import CROWDPOSE_METRICS, evaluate_crowdpose, has_crowd_index
from erpose.eval.results import (
    detections_to_results,
    load_results,
    predictions_to_results,
    save_metrics,
    save_results,
)

__all__ = [
    "COCO_METRICS",
    "CROWDPOSE_METRICS",
    "EvaluationError",
    "detections_to_results",
    "evaluate_crowdpose",
    "evaluate_keypoints",
    "has_crowd_index",
    "load_results",
    "predictions_to_results",
    "save_metrics",
    "save_results",
]
