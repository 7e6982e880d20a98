"""PAN-FPN neck of YOLO11: a top-down path (upsample + concat + C3k2) then a bottom-up path."""

from __future__ import annotations

import torch
from torch import nn

from erpose.models.backbone import ScaleRule
from erpose.models.blocks import C3k2, Conv


class PANNeck(nn.Module):
    """Top-down then bottom-up feature fusion over strides 8/16/32.

    Args:
        in_channels: ``{8: c3, 16: c4, 32: c5}`` channels of the backbone maps.
        rule: the scale's depth/width/max-channel rule.

    Forward:
        ``{8: P3, 16: P4, 32: P5}`` -> fused ``{8, 16, 32}`` maps with ``out_channels`` channels
        (nominal 256 / 512 / 1024 before width scaling).
    """

    def __init__(self, in_channels: dict[int, int], rule: ScaleRule) -> None:
        super().__init__()
        ch, n = rule.channels, rule.repeats(2)
        c3, c4, c5 = in_channels[8], in_channels[16], in_channels[32]
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.top_down4 = C3k2(c5 + c4, ch(512), n, c3k=rule.c3k)
        self.top_down3 = C3k2(ch(512) + c3, ch(256), n, c3k=rule.c3k)
        self.down3 = Conv(ch(256), ch(256), 3, 2)
        self.bottom_up4 = C3k2(ch(256) + ch(512), ch(512), n, c3k=rule.c3k)
        self.down4 = Conv(ch(512), ch(512), 3, 2)
        self.bottom_up5 = C3k2(ch(512) + c5, ch(1024), n, c3k=True)
        self.out_channels = {8: ch(256), 16: ch(512), 32: ch(1024)}

    def forward(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        p3, p4, p5 = features[8], features[16], features[32]
        t4 = self.top_down4(torch.cat((self.up(p5), p4), dim=1))  # 512w, /16
        n3 = self.top_down3(torch.cat((self.up(t4), p3), dim=1))  # 256w, /8
        n4 = self.bottom_up4(torch.cat((self.down3(n3), t4), dim=1))  # 512w, /16
        n5 = self.bottom_up5(torch.cat((self.down4(n4), p5), dim=1))  # 1024w, /32
        return {8: n3, 16: n4, 32: n5}
