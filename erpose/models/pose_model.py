"""``PoseModel``: backbone, neck and head composed, with fuse/deploy and NMS post-processing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from erpose.geometry.nms import box_nms, oks_nms
from erpose.models.blocks import fuse_conv_bn
from erpose.models.outputs import HeadOutput
from erpose.skeleton import Skeleton

if TYPE_CHECKING:
    from erpose.models.zoo import ModelConfig

#: Input sides must be multiples of the largest stride.
MAX_STRIDE = 32


class PoseModel(nn.Module):
    """A single-stage pose model: ``head(neck(backbone(images)))``.

    Args:
        backbone: images -> ``{8: P3, 16: P4, 32: P5}``.
        neck: the same dict -> fused maps.
        head: ``ERHead`` or ``YOLOPoseHead``.
        config: the ``ModelConfig`` it was built from (stored in checkpoints).
        skeleton: the keypoint schema; K must equal the head's.

    Forward: ``images`` (B, 3, H, W) float in [0, 1], H and W multiples of 32.
        training mode: ``HeadOutput`` (raw per-anchor outputs of every head copy).
        eval mode, NMS-free model (B5): (B, max_det, 1 + 3K) sorted by score,
        ``[score, x_0, y_0, v_0, ...]`` in input pixels with probabilities.
        eval mode, other steps: (B, A, 1 + 3K) for every anchor point (B0 adds 4 box columns
        x1, y1, x2, y2 at the end); ``postprocess`` applies the NMS.
    """

    def __init__(
        self, backbone: nn.Module, neck: nn.Module, head: nn.Module, config: ModelConfig, skeleton: Skeleton
    ) -> None:
        super().__init__()
        if head.num_keypoints != skeleton.num_keypoints:
            raise ValueError(
                f"head has {head.num_keypoints} keypoints but skeleton {skeleton.name!r} has {skeleton.num_keypoints}"
            )
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.config = config
        self.skeleton = skeleton
        self.register_buffer("sigmas", torch.tensor(skeleton.sigmas, dtype=torch.float32), persistent=False)
        self.frozen: tuple[str, ...] = ()

    @property
    def num_keypoints(self) -> int:
        return self.skeleton.num_keypoints

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.strides

    @property
    def needs_nms(self) -> bool:
        return self.head.needs_nms

    @property
    def max_det(self) -> int:
        return getattr(self.head, "max_det", 100)

    @max_det.setter
    def max_det(self, value: int) -> None:
        self.head.max_det = int(value)

    @property
    def deployed(self) -> bool:
        return getattr(self.head, "o2o", None) is not None and getattr(self.head, "o2m", 1) is None

    @property
    def fused(self) -> bool:
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())

    def forward(self, images: torch.Tensor) -> HeadOutput | torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if not torch.jit.is_tracing() and (images.shape[2] % MAX_STRIDE or images.shape[3] % MAX_STRIDE):
            raise ValueError(f"image sides must be multiples of {MAX_STRIDE}, got {tuple(images.shape[2:])}")
        return self.head(self.neck(self.backbone(images)))

    def freeze(self, prefixes: tuple[str, ...] | list[str]) -> list[str]:
        """Stop training the sub-modules named by ``prefixes`` (``backbone``, ``neck``, ``head.o2m``...).

        Their parameters stop requiring gradients and their batch norms stay in eval mode
        through ``train()``, so the running statistics a pretrained model brings are kept.

        Returns:
            The frozen module names.

        Raises:
            ValueError: a prefix that names no sub-module (the message lists the top-level ones).
        """
        modules = dict(self.named_modules())
        unknown = [p for p in prefixes if p not in modules or p == ""]
        if unknown:
            known = sorted(n for n in modules if n.count(".") <= 1 and n and not n.split(".")[-1].isdigit())
            raise ValueError(f"freeze: {unknown} name no module of this model; some that do: {known}")
        for prefix in prefixes:
            for param in modules[prefix].parameters():
                param.requires_grad_(False)
        self.frozen = tuple(dict.fromkeys((*self.frozen, *prefixes)))
        return list(self.frozen)

    def train(self, mode: bool = True) -> PoseModel:
        super().train(mode)
        if not self.frozen:
            return self
        modules = dict(self.named_modules())
        for prefix in self.frozen:
            if prefix in modules:
                modules[prefix].eval()
        return self

    def fuse(self) -> PoseModel:
        """Fold every Conv+BN pair (inference only); returns self."""
        fuse_conv_bn(self)
        return self

    def deploy(self) -> PoseModel:
        """Reduce to the inference graph (drops the o2m copy of an o2o head) and switch to eval."""
        self.head.deploy()
        return self.eval()

    def postprocess(
        self,
        raw: torch.Tensor,
        conf: float = 0.001,
        max_det: int = 100,
        iou: float = 0.7,
        max_candidates: int = 1000,
        nms: bool | None = None,
    ) -> list[torch.Tensor]:
        """Turn eval-mode outputs into per-image detections.

        Args:
            raw: the eval-mode forward output, (B, N, C).
            conf: minimum score.
            max_det: maximum persons per image.
            iou: box-NMS IoU threshold (B0) or OKS-NMS threshold (B1..B4); unused NMS-free.
            max_candidates: best-scoring rows per image that enter the NMS (bounds its N x N cost).
            nms: None follows the model (``needs_nms``); True / False forces NMS on / off, e.g. to
                measure what OKS-NMS would change on an NMS-free model's output.

        Returns:
            One (n_i, C) tensor per image, sorted by score; C = 1 + 3K, plus the 4 box columns
            for B0.
        """
        results = []
        k = self.num_keypoints
        apply_nms = self.needs_nms if nms is None else nms
        for rows in raw:
            rows = rows[rows[:, 0] > conf]
            if not apply_nms:
                results.append(rows[:max_det])
                continue
            rows = rows[rows[:, 0].argsort(descending=True)[:max_candidates]]
            if rows.shape[1] > 1 + 3 * k:  # the box baseline
                keep = box_nms(rows[:, 1 + 3 * k :], rows[:, 0], iou)
            else:
                keep = oks_nms(rows[:, 1:].view(-1, k, 3), rows[:, 0], self.sigmas, iou)
            results.append(rows[keep[:max_det]])
        return results

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, conf: float = 0.001, max_det: int = 100, iou: float = 0.7
    ) -> list[torch.Tensor]:
        """Detections of every step in one layout.

        Args:
            images: (B, 3, H, W) float in [0, 1], sides multiples of 32.
            conf: minimum score.
            max_det: maximum persons per image.
            iou: NMS threshold for the steps that need NMS (see ``postprocess``).

        Returns:
            One (n_i, 1 + 3K) tensor per image, ``[score, x_0, y_0, v_0, ...]`` input pixels,
            sorted by score. (B0's boxes: call ``postprocess`` on the eval output instead.)
        """
        was_training, old_max_det = self.training, self.max_det
        self.eval()
        self.max_det = max_det
        try:
            detections = self.postprocess(self(images), conf=conf, max_det=max_det, iou=iou)
        finally:
            self.max_det = old_max_det
            self.train(was_training)
        return [d[:, : 1 + 3 * self.num_keypoints] for d in detections]
