"""Initialise a model from pretrained weights of another shape: every tensor that fits is copied."""

from __future__ import annotations

from pathlib import Path

from erpose.models.checkpoint import CheckpointError, load_checkpoint
from erpose.models.pose_model import PoseModel
from erpose.models.ultralytics_map import TransferReport, transfer_pretrained
from erpose.models.ultralytics_reader import UltralyticsCheckpointError, is_ultralytics_file, read_ultralytics


def load_pretrained(model: PoseModel, path: str | Path) -> TransferReport:
    """Copy into ``model`` every tensor of the checkpoint at ``path`` that fits it.

    Args:
        model: the model to initialise (any zoo layout).
        path: an ultralytics YOLO11 pose or detection ``.pt`` (mapped by
            ``erpose.models.ultralytics_map``; both score copies of an ER head start from the
            class branch) or an erpose checkpoint (same names and shapes).

    Returns:
        What was loaded and what stays fresh.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: an unreadable or unsafe file, or one of which nothing fits.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained checkpoint not found")
    if is_ultralytics_file(path):
        try:
            return transfer_pretrained(model, read_ultralytics(path))
        except UltralyticsCheckpointError as exc:
            raise CheckpointError(str(exc)) from None
    stored = load_checkpoint(path)["state_dict"]
    report = TransferReport(source=str(path))
    update = {}
    for key, tensor in model.state_dict().items():
        value = stored.get(key)
        if value is None:
            report.fresh[key] = "no counterpart in the checkpoint"
        elif value.shape != tensor.shape:
            report.fresh[key] = f"shape {tuple(value.shape)} in the checkpoint, {tuple(tensor.shape)} here"
        else:
            update[key] = value
            report.loaded.append(key)
    if not report.loaded:
        raise CheckpointError(f"{path}: no tensor of the checkpoint fits this model")
    model.load_state_dict(update, strict=False)
    return report
