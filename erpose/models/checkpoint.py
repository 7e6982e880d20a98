"""Checkpoints: a plain dict of tensors + config + skeleton + metadata, safe to ``torch.load(weights_only=True)``.

Layout (format version 1)::

    {"format": "erpose-checkpoint", "format_version": 1, "erpose_version": str,
     "config": ModelConfig as a dict, "skeleton": Skeleton.to_dict(),
     "state_dict": {name: tensor}, "deployed": bool, "fused": bool, "created": ISO time,
     **extra}            # trainer state (optimizer, EMA, epoch...) under its own keys

The ``.pt`` alone rebuilds the model: the config and skeleton build the modules, ``deployed`` /
``fused`` replay ``deploy()`` / ``fuse()``, then the state dict loads strictly.
"""

from __future__ import annotations

import datetime
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from erpose import __version__
from erpose.config import ConfigError, from_dict, to_dict
from erpose.models.pose_model import PoseModel
from erpose.models.ultralytics_reader import is_ultralytics_file
from erpose.models.zoo import MODEL_CONFIGS, ModelConfig, build_model
from erpose.skeleton import COCO17, Skeleton

FORMAT = "erpose-checkpoint"
FORMAT_VERSION = 1
RESERVED_KEYS = frozenset(
    {"format", "format_version", "erpose_version", "config", "skeleton", "state_dict", "deployed", "fused", "created"}
)
_SAFE_SCALARS = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.Size)


class CheckpointError(ValueError):
    """A file that is not a usable erpose checkpoint (corrupt, foreign, or the wrong skeleton)."""


def _check_safe(value: Any, where: str) -> None:
    """Refuse values that ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, _SAFE_SCALARS):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where}[{key!r}]: keys must be str or int")
            _check_safe(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_safe(item, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint value {where} of type {type(value).__name__} is not weights_only-safe")


def save_checkpoint(path: str | Path, model: PoseModel, **extra: Any) -> Path:
    """Write ``model`` (and ``extra`` keys) atomically: temp file, fsync, ``os.replace``.

    Args:
        path: destination ``.pt`` file; parent folders are created.
        model: the model; its state dict is copied to CPU.
        **extra: more top-level entries (tensors, numbers, strings, lists, dicts of those).

    Returns:
        The path written.

    Raises:
        ValueError: an ``extra`` key collides with a reserved key.
        TypeError: an ``extra`` value could not be loaded back with ``weights_only=True``.
    """
    path = Path(path)
    clash = RESERVED_KEYS.intersection(extra)
    if clash:
        raise ValueError(f"extra checkpoint keys {sorted(clash)} are reserved")
    _check_safe(extra, "extra")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "erpose_version": __version__,
        "config": to_dict(model.config),
        "skeleton": model.skeleton.to_dict(),
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "deployed": model.deployed,
        "fused": model.fused,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU and check its format.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: corrupt or truncated file, a pickle that needs arbitrary code (an
            ultralytics ``.pt``, say), or a dict that is not an erpose checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if is_ultralytics_file(path):
            raise CheckpointError(
                f"{path}: an ultralytics checkpoint; convert it first (erpose convert {path} --out "
                f"{path.with_name(path.stem + '-erpose.pt')}) or pass it where a model is expected"
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: cannot be read with weights_only=True ({first_line}); not an erpose checkpoint"
        ) from None
    except Exception as exc:  # torch raises RuntimeError/EOFError/ValueError... on damaged files
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an erpose checkpoint (no 'format': {FORMAT!r} entry)")
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: 'format_version' must be an integer, got {version!r}; damaged checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {data['format_version']} is newer than this erpose "
            f"({FORMAT_VERSION}); upgrade erpose"
        )
    return data


def model_from_checkpoint(
    checkpoint: Mapping[str, Any], skeleton: Skeleton | None = None, source: str = "checkpoint"
) -> PoseModel:
    """Rebuild the model stored in a loaded checkpoint dict.

    Args:
        checkpoint: the dict from ``load_checkpoint``.
        skeleton: a schema to use instead of the stored one; must have the same K (its names
            and sigmas win, e.g. to re-label keypoints or change OKS-NMS sigmas).
        source: name used in error messages (the file).

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: wrong K, or weights that do not fit the stored config.
    """
    try:
        stored_config = dict(checkpoint["config"])
        if isinstance(stored_config.get("head"), Mapping):
            # Checkpoints from before ``shared_keypoints`` existed hold one keypoint branch per copy.
            stored_config["head"] = {"shared_keypoints": False, **stored_config["head"]}
        config = from_dict(ModelConfig, stored_config, f"{source}: config")
        stored = Skeleton.from_dict(checkpoint["skeleton"])
    except (KeyError, ConfigError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: unusable config or skeleton ({exc})") from None
    if skeleton is not None and skeleton.num_keypoints != stored.num_keypoints:
        raise CheckpointError(
            f"{source}: the checkpoint predicts {stored.num_keypoints} keypoints (skeleton {stored.name!r}) "
            f"but skeleton {skeleton.name!r} has {skeleton.num_keypoints}"
        )
    model = build_model(config, skeleton or stored)
    if checkpoint.get("deployed"):
        model.head.deploy()
    if checkpoint.get("fused"):
        model.fuse()
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: weights do not fit the stored config ({str(exc).splitlines()[0]})") from None
    return model.eval()


def load_ultralytics_model(path: str | Path, skeleton: Skeleton | None = None) -> PoseModel:
    """An ultralytics YOLO11 pose ``.pt`` as the equivalent ``yolopose-{scale}`` model (eval mode).

    The file is read by ``erpose.models.ultralytics_reader`` (allowlist unpickler, nothing of the
    pickle executes) and mapped exactly by ``erpose.models.ultralytics_map``.

    Raises:
        CheckpointError: an unsafe, truncated or unsupported file, or a K that does not match ``skeleton``.
    """
    from erpose.models.ultralytics_map import convert_ultralytics
    from erpose.models.ultralytics_reader import UltralyticsCheckpointError, read_ultralytics

    try:
        return convert_ultralytics(read_ultralytics(path), skeleton)
    except UltralyticsCheckpointError as exc:
        raise CheckpointError(str(exc)) from None


def load_model(name_or_path: str | Path, skeleton: Skeleton | None = None) -> PoseModel:
    """A model from a zoo name (fresh weights), a ``ModelConfig`` ``.yaml`` or a ``.pt`` checkpoint.

    Args:
        name_or_path: ``erpose-n``..., ``path/to/model.yaml`` or ``path/to/weights.pt`` (an erpose
            checkpoint, or an ultralytics YOLO11 pose checkpoint, converted on the fly with
            ``load_ultralytics_model``).
        skeleton: keypoint schema; default COCO-17 for names and YAML, the stored one for ``.pt``.

    Returns:
        The model: in training mode when freshly built, in eval mode from a checkpoint.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unknown name; ``CheckpointError`` for unusable checkpoints.
    """
    text = str(name_or_path)
    if text.lower() in MODEL_CONFIGS or text.endswith((".yaml", ".yml")):
        return build_model(text, skeleton or COCO17)
    path = Path(text)
    if path.is_file() and is_ultralytics_file(path):
        return load_ultralytics_model(path, skeleton)
    if path.is_file() or path.suffix in (".pt", ".pth"):
        return model_from_checkpoint(load_checkpoint(path), skeleton, source=str(path))
    return build_model(text, skeleton or COCO17)  # raises the unknown-name error listing the zoo
