"""Networks: YOLO11-style backbone and neck, the ER head and the YOLO-Pose baseline head."""

from __future__ import annotations

from erpose.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    save_checkpoint,
)
from erpose.models.outputs import BranchOutput, HeadOutput
from erpose.models.pose_model import PoseModel
from erpose.models.summary import ModelSummary, model_summary
from erpose.models.zoo import MODEL_NAMES, HeadConfig, ModelConfig, build_model, get_config

__all__ = [
    "MODEL_NAMES",
    "BranchOutput",
    "CheckpointError",
    "HeadConfig",
    "HeadOutput",
    "ModelConfig",
    "ModelSummary",
    "PoseModel",
    "build_model",
    "get_config",
    "load_checkpoint",
    "load_model",
    "model_from_checkpoint",
    "model_summary",
    "save_checkpoint",
]
