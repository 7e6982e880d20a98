"""Ultralytics-shaped checkpoints made in the test, without ultralytics.

``write_fake_yolo11`` takes an erpose ``yolopose-{scale}`` model, renames and un-folds its weights
into ultralytics' layout (the inverse of ``erpose.models.ultralytics_map``, written independently
here), builds a module tree whose classes carry ultralytics' module paths and names
(``ultralytics.nn.tasks.PoseModel``, ``ultralytics.nn.modules.block.C3k2`` ...) and ``torch.save``s
it as ultralytics does: fp16, under ``model``, with ``Detect.forward`` stored by ``getattr``, a
``set`` and ``OrderedDict``s in the pickle. The reader then sees the same opcodes and globals as
in a real release file.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import nn

LAYER_TYPES = (
    "Conv", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "SPPF", "C2PSA", "Upsample",
    "Concat", "C3k2", "Upsample", "Concat", "C3k2", "Conv", "Concat", "C3k2", "Conv", "Concat", "C3k2",
)
ERPOSE_TO_INDEX = {
    "backbone.stem": 0, "backbone.down2": 1, "backbone.stage2": 2, "backbone.down3": 3, "backbone.stage3": 4,
    "backbone.down4": 5, "backbone.stage4": 6, "backbone.down5": 7, "backbone.stage5": 8, "backbone.sppf": 9,
    "backbone.psa": 10, "neck.top_down4": 13, "neck.top_down3": 16, "neck.down3": 17, "neck.bottom_up4": 19,
    "neck.down4": 20, "neck.bottom_up5": 22,
}
SCORE_POSITION = {"0": "0.0", "1": "0.1", "2": "1.0", "3": "1.1", "4": "2"}
MODULE_OF = {"Conv": "conv", "Concat": "conv", "DWConv": "conv", "Pose": "head", "Detect": "head"}


def _ultralytics_class(name: str) -> type:
    """An ``nn.Module`` subclass importable as ``ultralytics.nn.modules.<file>.<name>``."""
    file = "tasks" if name in ("PoseModel", "DetectionModel") else MODULE_OF.get(name, "block")
    module_name = "ultralytics.nn.tasks" if file == "tasks" else f"ultralytics.nn.modules.{file}"
    for parent in ("ultralytics", "ultralytics.nn", "ultralytics.nn.modules", module_name):
        sys.modules.setdefault(parent, types.ModuleType(parent))
    module = sys.modules[module_name]
    if not hasattr(module, name):
        def forward(self, x):
            return x

        forward.__qualname__, forward.__module__ = f"{name}.forward", module_name
        cls = type(name, (nn.Module,), {"__module__": module_name, "forward": forward})
        cls.__qualname__ = name
        setattr(module, name, cls)
    return getattr(module, name)


def ultralytics_state_dict(model: nn.Module, *, num_classes: int = 1) -> dict[str, torch.Tensor]:
    """erpose ``yolopose`` weights under ultralytics' names, with ultralytics' keypoint decoding.

    ``num_classes`` > 1 makes a detection-style class output whose row 0 is the person score
    (the other rows are noise) and drops the keypoint branch.
    """
    out: dict[str, torch.Tensor] = {}
    k3 = model.head.num_keypoints * 3
    for key, value in model.state_dict().items():
        value = value.detach().clone()
        prefix = next((p for p in ERPOSE_TO_INDEX if key.startswith(p + ".")), None)
        if prefix is not None:
            out[f"model.{ERPOSE_TO_INDEX[prefix]}{key[len(prefix):]}"] = value
            continue
        parts = key.split(".")
        branch, level, rest = parts[1], parts[2], ".".join(parts[3:])
        if branch == "boxes":
            out[f"model.23.cv2.{level}.{rest}"] = value
        elif branch == "scores":
            position, param = rest.split(".", 1)
            if position == "4" and num_classes > 1:
                noise = torch.randn((num_classes - 1, *value.shape[1:])) * 0.1
                value = torch.cat((value, noise - 5.0 if param == "bias" else noise))
            out[f"model.23.cv3.{level}.{SCORE_POSITION[position]}.{param}"] = value
        elif branch == "keypoints" and num_classes == 1:
            if rest.startswith("2."):
                xy = (torch.arange(k3) % 3) < 2
                if rest.endswith("bias"):
                    value[xy] = (value[xy] + 0.5) / 2.0  # r = (r' + 0.5) / 2, the inverse of the fold
                else:
                    value[xy] = value[xy] / 2.0
            out[f"model.23.cv4.{level}.{rest}"] = value
    out["model.23.dfl.conv.weight"] = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1)
    return out


def _leaf(name: str, value: torch.Tensor) -> nn.Module:
    """torch's own leaf classes, as in a real file; their tensors are replaced by the caller."""
    return nn.BatchNorm2d(value.shape[0], eps=1e-3, momentum=0.03) if name == "bn" else nn.Conv2d(1, 1, 1, bias=False)


def _build_tree(state: dict[str, torch.Tensor], head: str, kpt_shape: tuple[int, int] | None) -> nn.Module:
    root = _ultralytics_class("PoseModel" if head == "Pose" else "DetectionModel")()
    layers = nn.Sequential(*(_ultralytics_class(t)() for t in (*LAYER_TYPES, head)))
    root.model = layers
    for key, value in state.items():
        *path, name = key.split(".")[1:]
        node: nn.Module = layers
        for depth, part in enumerate(path):
            if part not in node._modules:
                node.add_module(part, _leaf(part, value) if depth == len(path) - 1 else _ultralytics_class("Bottleneck")())
            node = node._modules[part]
        if name in ("running_mean", "running_var", "num_batches_tracked"):
            node._buffers[name] = value
        else:
            node._parameters[name] = nn.Parameter(value, requires_grad=False)
    head_module = layers[-1]
    head_module.detect = _ultralytics_class("Detect").forward  # pickled as getattr(Detect, "forward")
    head_module.stride = torch.tensor([8.0, 16.0, 32.0])
    if kpt_shape is not None:
        head_module.kpt_shape = list(kpt_shape)
    root.stride = torch.tensor([8.0, 16.0, 32.0])
    root.save = {6, 4, 13, 10, 16, 19, 22}  # a set in the pickle, as ultralytics stores it
    return root


def write_fake_yolo11(path: Path, model: nn.Module, scale: str, *, detection: bool = False,
                      half: bool = True, under: str = "model") -> Path:
    """Save ``model`` (an erpose ``yolopose-{scale}``) as an ultralytics YOLO11 checkpoint."""
    kpt_shape = None if detection else (model.head.num_keypoints, 3)
    state = ultralytics_state_dict(model, num_classes=80 if detection else 1)
    root = _build_tree(state, "Detect" if detection else "Pose", kpt_shape)
    names = {i: ("person" if i == 0 else f"class{i}") for i in range(80)} if detection else {0: "person"}
    root.names = names
    root.yaml = {"nc": len(names), "scale": scale, "yaml_file": f"yolo11{scale}{'' if detection else '-pose'}.yaml"}
    if kpt_shape is not None:
        root.kpt_shape = list(kpt_shape)
        root.yaml["kpt_shape"] = list(kpt_shape)
    if half:
        root.half()
    payload = {"date": "2024-09-25T21:10:28", "version": "8.2.100", "license": "AGPL-3.0", "docs": "",
               "epoch": -1, "best_fitness": None, "model": None, "ema": None, "updates": None,
               "optimizer": None, "train_args": {"task": "pose"}, "train_metrics": None}
    payload[under] = root
    try:
        torch.save(payload, path)
    finally:
        # The stand-in modules must not look like an installed ultralytics to the rest of the tests.
        for name in [n for n in sys.modules if n == "ultralytics" or n.startswith("ultralytics.")]:
            del sys.modules[name]
    return path
