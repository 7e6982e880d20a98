"""Map YOLO11 pose / detection weights (read by ``ultralytics_reader``) onto erpose models.

The YOLO11 layer list and erpose's named modules correspond one to one:

====  ===========  ======================  ====  ===========  =====================
 i    ultralytics  erpose                   i    ultralytics  erpose
====  ===========  ======================  ====  ===========  =====================
 0    Conv         ``backbone.stem``        10   C2PSA        ``backbone.psa``
 1    Conv         ``backbone.down2``       13   C3k2         ``neck.top_down4``
 2    C3k2         ``backbone.stage2``      16   C3k2         ``neck.top_down3``
 3    Conv         ``backbone.down3``       17   Conv         ``neck.down3``
 4    C3k2         ``backbone.stage3``      19   C3k2         ``neck.bottom_up4``
 5    Conv         ``backbone.down4``       20   Conv         ``neck.down4``
 6    C3k2         ``backbone.stage4``      22   C3k2         ``neck.bottom_up5``
 7    Conv         ``backbone.down5``       23   Pose/Detect  ``head``
 8    C3k2         ``backbone.stage5``
 9    SPPF         ``backbone.sppf``
====  ===========  ======================  ====  ===========  =====================

(11, 12, 14, 15, 18, 21 are upsampling and concatenation, without weights.) Inside a layer the
names are the same (``cv1``, ``cv2``, ``m.0`` ...). In the head, ``cv2`` is the box branch,
``cv3`` the class branch (nested ``Sequential``s, flattened here to ``light_score_branch``'s
five layers; a detection model's 80-class output keeps only its ``person`` row) and ``cv4``
the keypoint branch. Ultralytics decodes keypoints as ``(2r + a - 0.5) * s``, erpose as
``(a + r') * s``: the last keypoint conv is folded to ``r' = 2r - 0.5`` (weights and bias
doubled, 0.5 taken off the x and y biases), which is exact in floating point.

``candidate_weights`` turns a checkpoint into erpose-named tensors for every head kind; the
yolopose head takes all of them (``convert_ultralytics``, exact), an ER head what fits
(``transfer_pretrained``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from erpose.models.blocks import BN_EPS, BN_MOMENTUM
from erpose.models.pose_model import PoseModel
from erpose.models.ultralytics_reader import UltralyticsCheckpoint, UltralyticsCheckpointError
from erpose.models.zoo import SCALES, build_model, get_config
from erpose.skeleton import COCO17, Skeleton

YOLO11_LAYERS: dict[int, str] = {
    0: "backbone.stem", 1: "backbone.down2", 2: "backbone.stage2", 3: "backbone.down3", 4: "backbone.stage3",
    5: "backbone.down4", 6: "backbone.stage4", 7: "backbone.down5", 8: "backbone.stage5", 9: "backbone.sppf",
    10: "backbone.psa", 13: "neck.top_down4", 16: "neck.top_down3", 17: "neck.down3", 19: "neck.bottom_up4",
    20: "neck.down4", 22: "neck.bottom_up5",
}
YOLO11_LAYER_TYPES = (
    "Conv", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "SPPF", "C2PSA", "Upsample",
    "Concat", "C3k2", "Upsample", "Concat", "C3k2", "Conv", "Concat", "C3k2", "Conv", "Concat", "C3k2",
)
HEAD_INDEX = 23
#: ``cv3``'s nested (block, layer) -> position in ``light_score_branch``.
_CLASS_BRANCH_LAYERS = {"0.0": "0", "0.1": "1", "1.0": "2", "1.1": "3", "2": "4"}


@dataclass
class TransferReport:
    """What ``transfer_pretrained`` filled: ``loaded`` keys, and ``fresh`` keys with the reason."""

    source: str
    loaded: list[str] = field(default_factory=list)
    fresh: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        total = len(self.loaded) + len(self.fresh)
        groups = sorted({_group(k) for k in self.fresh})
        tail = f"; fresh: {', '.join(groups)}" if groups else ""
        return f"{len(self.loaded)}/{total} tensors from {self.source}{tail}"


def _group(key: str) -> str:
    parts = key.split(".")
    if parts[0] != "head":
        return parts[0]
    names = [p for p in parts[1:3] if not p.isdigit()]
    return ".".join(["head", *names])


def check_yolo11(checkpoint: UltralyticsCheckpoint) -> str:
    """The checkpoint's scale (``n``..``x``); raises unless it is a YOLO11 pose/detection layout."""
    types = tuple(checkpoint.layer_types[:HEAD_INDEX])
    if types != YOLO11_LAYER_TYPES or len(checkpoint.layer_types) != HEAD_INDEX + 1:
        family = "YOLOv8 (C2f blocks)" if "C2f" in checkpoint.layer_types else "not YOLO11"
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: layers {'/'.join(sorted(set(checkpoint.layer_types)))} are {family}; "
            "erpose maps YOLO11 pose and detection checkpoints (yolo11{n,s,m,l,x}[-pose].pt)"
        )
    scale = checkpoint.scale
    if scale not in SCALES:
        raise UltralyticsCheckpointError(f"{checkpoint.source}: unknown YOLO11 scale {scale!r}")
    if checkpoint.stride and checkpoint.stride != (8, 16, 32):
        raise UltralyticsCheckpointError(f"{checkpoint.source}: strides {checkpoint.stride}, expected (8, 16, 32)")
    return scale


def _person_index(checkpoint: UltralyticsCheckpoint) -> int:
    for index, name in checkpoint.names.items():
        if name == "person":
            return index
    if len(checkpoint.names) <= 1:
        return 0
    raise UltralyticsCheckpointError(f"{checkpoint.source}: no 'person' class among {len(checkpoint.names)} classes")


def _fold_keypoint_decoding(weight: torch.Tensor, bias: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Last keypoint conv, ``(x, y, v)`` per keypoint: ``r' = 2r - 0.5`` on x and y."""
    xy = torch.arange(weight.shape[0]) % channels < 2
    weight, bias = weight.clone(), bias.clone()
    weight[xy] *= 2.0
    bias[xy] = bias[xy] * 2.0 - 0.5
    return weight, bias


def candidate_weights(checkpoint: UltralyticsCheckpoint) -> dict[str, torch.Tensor]:
    """Every tensor of a YOLO11 checkpoint under the erpose name(s) it can fill.

    Backbone and neck keep their layer names. Head tensors appear as ``box.<level>.<...>``,
    ``score.<level>.<...>`` (``light_score_branch`` positions, person row only),
    ``keypoint.<level>.<0|1>.<...>`` for the two 3x3 convs and ``keypoint.<level>.out.<weight|bias>``
    for the folded ``3K`` output (x, y, v per keypoint); ``offsets`` / ``visibility`` split it.
    """
    check_yolo11(checkpoint)
    person = _person_index(checkpoint)
    out: dict[str, torch.Tensor] = {}
    pattern = re.compile(r"model\.(\d+)\.(.+)")
    for key, value in checkpoint.state_dict.items():
        match = pattern.fullmatch(key)
        if match is None:
            continue
        index, rest = int(match.group(1)), match.group(2)
        if index in YOLO11_LAYERS:
            out[f"{YOLO11_LAYERS[index]}.{rest}"] = value
            continue
        if index != HEAD_INDEX:
            continue
        branch, _, tail = rest.partition(".")
        level, _, tail = tail.partition(".")
        if branch == "cv2":
            out[f"box.{level}.{tail}"] = value
        elif branch == "cv3":
            for nested, flat in _CLASS_BRANCH_LAYERS.items():
                if tail.startswith(nested + "."):
                    param = tail[len(nested) + 1:]
                    if flat == "4":
                        value = value[person : person + 1]
                    out[f"score.{level}.{flat}.{param}"] = value
                    break
        elif branch == "cv4":
            out[f"keypoint.{level}.{tail.replace('2.', 'out.', 1) if tail.startswith('2.') else tail}"] = value
    if checkpoint.task == "pose" and checkpoint.kpt_shape is not None:
        channels = checkpoint.kpt_shape[1]
        for level in range(3):
            w, b = out.get(f"keypoint.{level}.out.weight"), out.get(f"keypoint.{level}.out.bias")
            if w is None or b is None:
                raise UltralyticsCheckpointError(f"{checkpoint.source}: keypoint branch {level} is incomplete")
            w, b = _fold_keypoint_decoding(w, b, channels)
            out[f"keypoint.{level}.out.weight"], out[f"keypoint.{level}.out.bias"] = w, b
            k = w.shape[0] // channels
            rows = torch.arange(k * channels).view(k, channels)
            out[f"keypoint.{level}.offsets.weight"] = w[rows[:, :2].reshape(-1)]
            out[f"keypoint.{level}.offsets.bias"] = b[rows[:, :2].reshape(-1)]
            if channels == 3:
                out[f"keypoint.{level}.visibility.weight"] = w[rows[:, 2]]
                out[f"keypoint.{level}.visibility.bias"] = b[rows[:, 2]]
    return out


_HEAD_SOURCES = [
    # (erpose head-key pattern, candidate key template); the first that exists with the right shape wins.
    (re.compile(r"head\.boxes\.(\d)\.(.+)"), "box.{0}.{1}"),
    (re.compile(r"head\.(?:o2m\.|o2o\.)?scores\.(\d)\.(.+)"), "score.{0}.{1}"),
    (re.compile(r"head\.(?:o2m\.|o2o\.)?keypoints\.(\d)\.2\.(.+)"), "keypoint.{0}.out.{1}"),
    (re.compile(r"head\.(?:o2m\.|o2o\.)?keypoints\.(\d)\.convs\.(.+)"), "keypoint.{0}.{1}"),
    (re.compile(r"head\.(?:o2m\.|o2o\.)?keypoints\.(\d)\.(offsets|visibility)\.(.+)"), "keypoint.{0}.{1}.{2}"),
    (re.compile(r"head\.(?:o2m\.|o2o\.)?keypoints\.(\d)\.([01]\..+)"), "keypoint.{0}.{1}"),
]


def _source_key(target: str) -> str | None:
    if not target.startswith("head."):
        return target
    for pattern, template in _HEAD_SOURCES:
        match = pattern.fullmatch(target)
        if match:
            return template.format(*match.groups())
    return None


def _reads_more_inputs(key: str, value: torch.Tensor, tensor: torch.Tensor) -> bool:
    """A score branch's logit weight that reads the source's inputs and more (quality-aware scoring)."""
    return (".scores." in key and key.endswith(".weight") and value.dim() == tensor.dim() == 4
            and value.shape[0] == tensor.shape[0] and value.shape[2:] == tensor.shape[2:]
            and value.shape[1] < tensor.shape[1])


def transfer_pretrained(model: PoseModel, checkpoint: UltralyticsCheckpoint) -> TransferReport:
    """Load every tensor of ``checkpoint`` that fits ``model`` (same name after mapping, same shape).

    Backbone and neck always fit a model of the same scale; head branches fit where their widths
    match (``erpose-{scale}-pt`` and ``yolopose-{scale}``: all of them; ``erpose-{scale}``: the
    score branches only). Both score copies of an o2o head start from the class branch; a
    quality-aware score logit (``head.score_sees_keypoints``) gets the class logit's weights and zeros
    for the keypoint features it also reads.

    Returns:
        A ``TransferReport``; the model's other tensors keep their fresh initialisation.

    Raises:
        UltralyticsCheckpointError: not a YOLO11 checkpoint, another scale, or a backbone/neck tensor
            that does not fit.
    """
    scale = check_yolo11(checkpoint)
    if scale != model.config.scale:
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: a YOLO11{scale} checkpoint does not fit {model.config.scale}-scale models "
            f"(use an erpose-{scale} / yolopose-{scale} model)"
        )
    candidates = candidate_weights(checkpoint)
    report = TransferReport(source=checkpoint.source)
    state = model.state_dict()
    update: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        source = _source_key(key)
        value = candidates.get(source) if source else None
        if value is None:
            report.fresh[key] = "no counterpart in the checkpoint"
        elif _reads_more_inputs(key, value, tensor):
            # A quality-aware score logit (``head.score_sees_keypoints``) also reads the keypoint
            # features: the class branch's weights for its own inputs, zeros for the new ones, so that
            # it starts out scoring exactly as the class branch does.
            widened = torch.zeros_like(tensor)
            widened[:, : value.shape[1]] = value.to(tensor.dtype)
            update[key] = widened
            report.loaded.append(key)
        elif value.shape != tensor.shape:
            report.fresh[key] = f"shape {tuple(value.shape)} in the checkpoint, {tuple(tensor.shape)} here"
        else:
            update[key] = value.to(tensor.dtype)
            report.loaded.append(key)
    mismatched = [k for k in report.fresh if not k.startswith("head.")]
    if mismatched:
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: backbone/neck tensor {mismatched[0]} does not fit ({report.fresh[mismatched[0]]})"
        )
    model.load_state_dict(update, strict=False)
    return report


def checkpoint_skeleton(checkpoint: UltralyticsCheckpoint) -> Skeleton:
    """COCO-17 for 17-keypoint checkpoints, else a custom skeleton of the stored K (identity flip)."""
    if checkpoint.kpt_shape is None:
        raise UltralyticsCheckpointError(f"{checkpoint.source}: a detection checkpoint has no keypoints")
    k = checkpoint.kpt_shape[0]
    if k == 17:
        return COCO17
    flip = checkpoint.yaml.get("flip_idx")
    return Skeleton.custom(k, name=f"ultralytics{k}", flip_idx=flip if flip and len(flip) == k else None)


def convert_ultralytics(checkpoint: UltralyticsCheckpoint, skeleton: Skeleton | None = None) -> PoseModel:
    """The ``yolopose-{scale}`` model (B0) with every weight of a YOLO11 pose checkpoint.

    Args:
        checkpoint: from ``read_ultralytics``; must be a pose checkpoint.
        skeleton: keypoint names/sigmas to attach (same K as the checkpoint); default
            ``checkpoint_skeleton``.

    Returns:
        The model in eval mode; its outputs equal ultralytics' decoded ones.

    Raises:
        UltralyticsCheckpointError: a detection checkpoint, another layout, a K mismatch, or any
            tensor that does not map exactly.
    """
    scale = check_yolo11(checkpoint)
    if checkpoint.task != "pose":
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: a detection checkpoint has no keypoint head; use it to initialise "
            f"training instead (erpose train --model erpose-{scale}-pt --pretrained {checkpoint.source})"
        )
    stored = checkpoint_skeleton(checkpoint)
    if skeleton is not None and skeleton.num_keypoints != stored.num_keypoints:
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: the checkpoint predicts {stored.num_keypoints} keypoints, skeleton "
            f"{skeleton.name!r} has {skeleton.num_keypoints}"
        )
    model = build_model(get_config(f"yolopose-{scale}"), skeleton or stored)
    report = transfer_pretrained(model, checkpoint)
    if report.fresh:
        first = next(iter(report.fresh.items()))
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: {len(report.fresh)} tensors of yolopose-{scale} have no exact counterpart "
            f"(first: {first[0]}: {first[1]})"
        )
    if not all(abs(a - b) < 1e-9 for a, b in zip(checkpoint.batchnorm, (BN_EPS, BN_MOMENTUM))):
        raise UltralyticsCheckpointError(
            f"{checkpoint.source}: batch norm eps/momentum {checkpoint.batchnorm}, erpose's YOLO blocks use "
            f"{(BN_EPS, BN_MOMENTUM)}"
        )
    return model.eval()
