"""YOLO11-style backbone: strided convs, C3k2 stages, SPPF and C2PSA; returns strides 8/16/32."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from erpose.models.blocks import C2PSA, SPPF, C3k2, Conv, make_divisible


@dataclass(frozen=True)
class ScaleRule:
    """YOLO compound scaling: ``[depth, width, max_channels]``.

    ``channels(c)`` turns a nominal channel count (as written for the width-1.0 model) into the
    scaled one, ``make_divisible(min(c, max_channels) * width, 8)``; ``repeats(n)`` scales a block
    count, ``max(round(n * depth), 1)``. ``c3k`` is True for the m/l/x scales, whose every C3k2
    uses C3k inner blocks (YOLO11's rule for the larger models).
    """

    depth: float
    width: float
    max_channels: int
    c3k: bool = False

    def channels(self, nominal: int) -> int:
        return make_divisible(min(nominal, self.max_channels) * self.width, 8)

    def repeats(self, nominal: int) -> int:
        return max(round(nominal * self.depth), 1) if nominal > 1 else nominal


class Backbone(nn.Module):
    """YOLO11 backbone.

    Args:
        rule: the scale's depth/width/max-channel rule.

    Forward:
        images (B, 3, H, W) -> ``{8: P3, 16: P4, 32: P5}`` feature maps; H and W multiples of 32.

    Attributes:
        out_channels: ``{stride: channels}`` of the returned maps.
    """

    def __init__(self, rule: ScaleRule) -> None:
        super().__init__()
        ch, n = rule.channels, rule.repeats(2)
        self.stem = Conv(3, ch(64), 3, 2)  # /2
        self.down2 = Conv(ch(64), ch(128), 3, 2)  # /4
        self.stage2 = C3k2(ch(128), ch(256), n, c3k=rule.c3k, expansion=0.25)
        self.down3 = Conv(ch(256), ch(256), 3, 2)  # /8
        self.stage3 = C3k2(ch(256), ch(512), n, c3k=rule.c3k, expansion=0.25)
        self.down4 = Conv(ch(512), ch(512), 3, 2)  # /16
        self.stage4 = C3k2(ch(512), ch(512), n, c3k=True)
        self.down5 = Conv(ch(512), ch(1024), 3, 2)  # /32
        self.stage5 = C3k2(ch(1024), ch(1024), n, c3k=True)
        self.sppf = SPPF(ch(1024), ch(1024), 5)
        self.psa = C2PSA(ch(1024), n)
        self.out_channels = {8: ch(512), 16: ch(512), 32: ch(1024)}

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stage2(self.down2(self.stem(images)))  # /4
        p3 = self.stage3(self.down3(x))  # 512w, /8
        p4 = self.stage4(self.down4(p3))  # 512w, /16
        p5 = self.psa(self.sppf(self.stage5(self.down5(p4))))  # 1024w, /32
        return {8: p3, 16: p4, 32: p5}
