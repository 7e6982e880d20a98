"""Model zoo: name -> ``ModelConfig``, and ``build_model``.

Names:
    ``erpose-{n,s,m,l,x}``: ER-Pose (ablation step B5: ER head with o2o copy, NMS-free).
    ``yolopose-{n,s,m,l,x}``: the YOLO-Pose baseline (B0: box, class, keypoint branches; box NMS).
    ``erpose-{scale}-pt``: ER-Pose (B5) laid out to take YOLO11-pose weights: its keypoint branch
    is the baseline's (two full 3x3 convs of width ``max(c0 // 4, 3K)``), so ``--pretrained
    yolo11n-pose.pt`` fills every layer but the o2o score copy's training (docs/pretrained.md).
    ``erpose-{scale}-b1`` .. ``-b4``: the ablation steps of METHOD.md. B1 is the baseline head
    without its box branch; B2..B4 are the ER head without o2o copy (OKS-NMS at inference).
    B3 and B4 differ from B2 only in assignment and loss, which the criterion reads from
    ``ModelConfig.step``.
    A name ending in ``.yaml`` is a ``ModelConfig`` file (``configs/models/*.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from erpose.config import ConfigError, load_yaml
from erpose.models.backbone import Backbone, ScaleRule
from erpose.models.er_head import ERHead
from erpose.models.neck import PANNeck
from erpose.models.pose_model import PoseModel
from erpose.models.steps import STEPS
from erpose.models.yolopose_head import YOLOPoseHead
from erpose.skeleton import COCO17, Skeleton

#: ``[depth, width, max_channels]`` of each scale (YOLO11's constants).
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.50, 0.25, 1024),
    "s": (0.50, 0.50, 1024),
    "m": (0.50, 1.00, 512),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.50, 512),
}


@dataclass(frozen=True)
class HeadConfig:
    """Head options.

    Attributes:
        kind: ``"er"`` (score + keypoint branches) or ``"yolopose"`` (baseline).
        box: baseline only: keep the DFL box branch (B0) or drop it (B1).
        o2o: ER only: add the one-to-one copy; inference is then NMS-free (B5).
        reg_max: DFL bins per box side.
        score_width, keypoint_width, box_width: branch widths; 0 picks the head's default rule.
        o2o_detach: the o2o copy sees detached features in training (YOLOv10 style).
        shared_keypoints: ER with o2o: one keypoint branch for both copies, only the score branch
            is duplicated (same inference graph, cheaper training; see ``ERHead``).
        keypoint_separable: ER only: depth-wise-separable keypoint convs instead of full 3x3 ones.
        score_separable: ER only: the score branch is YOLO11's light (depth-wise-separable) class
            branch; false: two full 3x3 convs at ``score_width``.
        score_sees_keypoints: ER only: quality-aware scoring, the score logit also reads the keypoint
            branch's hidden features (detached; see ``ERHead``).
        score_prior: prior probability for the score bias; 0 picks the YOLO rule
            (about 5 persons per 640 x 640 image).
        max_det: persons per image of the NMS-free eval output.
    """

    kind: Literal["er", "yolopose"] = "er"
    box: bool = False
    o2o: bool = True
    reg_max: int = 16
    score_width: int = 0
    keypoint_width: int = 0
    box_width: int = 0
    o2o_detach: bool = True
    shared_keypoints: bool = True
    keypoint_separable: bool = False
    score_separable: bool = True
    score_sees_keypoints: bool = False
    score_prior: float = 0.0
    max_det: int = 100

    def __post_init__(self) -> None:
        if self.kind not in ("er", "yolopose"):
            raise ConfigError(f"head.kind: {self.kind!r} is not one of ['er', 'yolopose']")
        if self.kind == "er" and self.box:
            raise ConfigError("head: the ER head has no box branch (box must be false)")
        if self.kind == "yolopose" and self.o2o:
            raise ConfigError("head: the yolopose head has no o2o copy (o2o must be false)")
        if self.reg_max < 1 or self.max_det < 1:
            raise ConfigError(f"head: reg_max and max_det must be positive, got {self.reg_max}, {self.max_det}")


@dataclass(frozen=True)
class ModelConfig:
    """A model: scale constants, head options and the ablation step.

    Attributes:
        scale: ``n``/``s``/``m``/``l``/``x`` (informative; depth/width/max_channels rule).
        depth, width, max_channels: YOLO compound-scaling constants.
        head: head options.
        step: ablation step ``B0``..``B5``; the criterion reads it to pick assignment and loss.
    """

    scale: str = "n"
    depth: float = 0.50
    width: float = 0.25
    max_channels: int = 1024
    head: HeadConfig = field(default_factory=HeadConfig)
    step: str = "B5"

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ConfigError(f"step: {self.step!r} is not one of {list(STEPS)}")
        if not (self.depth > 0 and self.width > 0 and self.max_channels > 0):
            raise ConfigError("depth, width and max_channels must be positive")


#: Score-branch width of the ER head per scale: as wide as the baseline's class branch (the P3
#: channel count), which the ablation measured better than half that width (docs/BENCHMARKS.md,
#: "Defaults changed by this study"). Explicit here, not a new auto rule, so that checkpoints
#: with ``score_width: 0`` keep their width.
ER_SCORE_WIDTH = {"n": 64, "s": 128, "m": 256, "l": 256, "x": 384}


def p3_channels(scale: str) -> int:
    """Channels of the neck's stride-8 map at ``scale`` (nominal 256, width-scaled)."""
    _, width, max_channels = SCALES[scale]
    return ScaleRule(1.0, width, max_channels).channels(256)


def _head_for_step(step: str, scale: str) -> HeadConfig:
    if step == "B0":
        return HeadConfig(kind="yolopose", box=True, o2o=False)
    if step == "B1":
        return HeadConfig(kind="yolopose", box=False, o2o=False)
    # Separable keypoint convs: a fraction of the FLOPs for the same AP (docs/BENCHMARKS.md);
    # ``head.keypoint_separable: false`` is METHOD.md's plain 3x3 branch.
    return HeadConfig(kind="er", box=False, o2o=step == "B5", score_width=ER_SCORE_WIDTH[scale],
                      keypoint_separable=True)


def pretrained_layout_head(scale: str, num_keypoints: int = 17) -> HeadConfig:
    """B5 head whose branches have the YOLO11-pose head's shapes: the class branch's width for the
    scores and its full 3x3 keypoint branch, so pretrained pose weights load into every layer."""
    first_channels = p3_channels(scale)
    return HeadConfig(kind="er", box=False, o2o=True, score_width=ER_SCORE_WIDTH[scale],
                      keypoint_width=max(first_channels // 4, 3 * num_keypoints), keypoint_separable=False)


def _zoo() -> dict[str, ModelConfig]:
    table: dict[str, ModelConfig] = {}
    for scale, (depth, width, max_channels) in SCALES.items():

        def make(step: str, scale: str = scale, depth: float = depth, width: float = width, mc: int = max_channels):
            return ModelConfig(scale, depth, width, mc, _head_for_step(step, scale), step)

        table[f"erpose-{scale}"] = make("B5")
        table[f"yolopose-{scale}"] = make("B0")
        table[f"erpose-{scale}-pt"] = ModelConfig(scale, depth, width, max_channels, pretrained_layout_head(scale), "B5")
        for step in ("B1", "B2", "B3", "B4"):
            table[f"erpose-{scale}-{step.lower()}"] = make(step)
    return table


MODEL_CONFIGS: dict[str, ModelConfig] = _zoo()
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_CONFIGS)


def get_config(name_or_yaml: str | Path) -> ModelConfig:
    """The ``ModelConfig`` of a zoo name or a ``.yaml`` file.

    Raises:
        ValueError: unknown name (the message lists the known ones).
        ConfigError: a YAML file that is missing or does not describe a ``ModelConfig``.
    """
    text = str(name_or_yaml)
    if text.endswith((".yaml", ".yml")):
        return load_yaml(ModelConfig, text)
    try:
        return MODEL_CONFIGS[text.lower()]
    except KeyError:
        raise ValueError(f"unknown model {text!r}; known: {', '.join(MODEL_NAMES)} (or a .yaml/.pt file)") from None


def build_model(
    name_or_config: str | Path | ModelConfig, skeleton: Skeleton = COCO17
) -> PoseModel:
    """A freshly initialised model.

    Args:
        name_or_config: a zoo name (``MODEL_NAMES``), a ``.yaml`` ``ModelConfig`` file or a config.
        skeleton: the keypoint schema; K sets the head's output size.

    Returns:
        The ``PoseModel`` in training mode.
    """
    config = name_or_config if isinstance(name_or_config, ModelConfig) else get_config(name_or_config)
    rule = ScaleRule(config.depth, config.width, config.max_channels, c3k=config.scale in ("m", "l", "x"))
    backbone = Backbone(rule)
    neck = PANNeck(backbone.out_channels, rule)
    strides = (8, 16, 32)
    in_channels = tuple(neck.out_channels[s] for s in strides)
    h, k = config.head, skeleton.num_keypoints
    if h.kind == "er":
        head = ERHead(
            in_channels, strides, k, o2o=h.o2o, o2o_detach=h.o2o_detach, score_width=h.score_width,
            keypoint_width=h.keypoint_width, score_prior=h.score_prior, max_det=h.max_det,
            shared_keypoints=h.shared_keypoints, keypoint_separable=h.keypoint_separable,
            score_separable=h.score_separable, score_sees_keypoints=h.score_sees_keypoints,
        )
    else:
        head = YOLOPoseHead(
            in_channels, strides, k, box=h.box, reg_max=h.reg_max, box_width=h.box_width,
            score_width=h.score_width, keypoint_width=h.keypoint_width, score_prior=h.score_prior,
        )
    return PoseModel(backbone, neck, head, config, skeleton)
