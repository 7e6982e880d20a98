"""Building blocks of the YOLO11-style backbone and neck, written as plain ``nn.Module``s.

Channel and depth rules follow the public YOLO11 description (C3k2, C3k, SPPF, C2PSA); the
code is this project's own. Every convolution is a ``Conv`` (conv, batch norm, SiLU) so that
``fuse_conv_bn`` can fold the norm into the convolution for inference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Batch-norm constants of the YOLO family (ultralytics initialises every BN with these).
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def make_divisible(value: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``value`` (YOLO channel rounding)."""
    return int(math.ceil(value / divisor) * divisor)


class Conv(nn.Module):
    """Convolution, batch norm, optional SiLU; 'same' padding for odd kernels.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride.
        groups: convolution groups.
        act: apply SiLU after the norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the batch norm into the convolution (inference only; idempotent)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            groups=conv.groups,
            bias=True,
        ).to(conv.weight.device, conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = fused
        self.bn = nn.Identity()


def depthwise_conv(in_channels: int, out_channels: int, kernel_size: int = 3, act: bool = True) -> Conv:
    """Depth-wise ``Conv`` (groups = gcd of the channel counts), as the YOLO11 heads use."""
    return Conv(in_channels, out_channels, kernel_size, groups=math.gcd(in_channels, out_channels), act=act)


class Bottleneck(nn.Module):
    """Two ``Conv``s with a residual when shapes allow (``hidden = expansion * out_channels``)."""

    def __init__(
        self, in_channels: int, out_channels: int, shortcut: bool = True, kernel_size: int = 3, expansion: float = 0.5
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden, kernel_size)
        self.cv2 = Conv(hidden, out_channels, kernel_size)
        self.residual = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.residual else y


class C3k(nn.Module):
    """CSP block with two 1x1 stems and a chain of full-width bottlenecks (YOLO11 ``C3k``)."""

    def __init__(
        self, in_channels: int, out_channels: int, repeats: int = 2, shortcut: bool = True, expansion: float = 0.5
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden)
        self.cv2 = Conv(in_channels, hidden)
        self.cv3 = Conv(2 * hidden, out_channels)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, expansion=1.0) for _ in range(repeats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class C3k2(nn.Module):
    """CSP block with a split stem whose inner blocks are ``Bottleneck``s or, with ``c3k``, ``C3k``s.

    Every inner block's output is kept and concatenated (the C2f pattern), so the final 1x1 conv
    sees ``(2 + repeats) * hidden`` channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        repeats: int = 1,
        c3k: bool = False,
        expansion: float = 0.5,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, 2 * self.hidden)
        self.cv2 = Conv((2 + repeats) * self.hidden, out_channels)
        self.m = nn.ModuleList(
            C3k(self.hidden, self.hidden, 2, shortcut) if c3k else Bottleneck(self.hidden, self.hidden, shortcut)
            for _ in range(repeats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained max-pools, concatenated with their input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = Conv(in_channels, hidden)
        self.cv2 = Conv(hidden * 4, out_channels)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.cv1(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((y0, y1, y2, self.pool(y2)), dim=1))


class Attention(nn.Module):
    """Multi-head self-attention over all positions, with a depth-wise positional conv on the values.

    Queries and keys use ``attn_ratio * head_dim`` channels per head; values use ``head_dim``.
    """

    def __init__(self, channels: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        self.qkv = Conv(channels, channels + 2 * self.key_dim * num_heads, act=False)
        self.proj = Conv(channels, channels, act=False)
        self.pe = Conv(channels, channels, 3, groups=channels, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)  # (b, heads, hw, hw)
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention then a 2x feed-forward, each with a residual."""

    def __init__(self, channels: int, num_heads: int, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.attn = Attention(channels, num_heads, attn_ratio)
        self.ffn = nn.Sequential(Conv(channels, 2 * channels), Conv(2 * channels, channels, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """Split stem; half the channels go through ``repeats`` PSA blocks (one head per 64 channels)."""

    def __init__(self, channels: int, repeats: int = 1, expansion: float = 0.5) -> None:
        super().__init__()
        self.hidden = int(channels * expansion)
        self.cv1 = Conv(channels, 2 * self.hidden)
        self.cv2 = Conv(2 * self.hidden, channels)
        num_heads = max(self.hidden // 64, 1)
        self.m = nn.Sequential(*(PSABlock(self.hidden, num_heads) for _ in range(repeats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.hidden, self.hidden), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), dim=1))


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every ``Conv``'s batch norm into its convolution, in place; returns ``module``."""
    for sub in module.modules():
        if isinstance(sub, Conv):
            sub.fuse()
    return module


def light_score_branch(in_channels: int, width: int, outputs: int = 1) -> nn.Sequential:
    """Two depth-wise-separable blocks then a 1x1 conv to ``outputs`` logits (YOLO11's class branch).

    The last layer is a plain ``nn.Conv2d`` with a bias, so a prior probability can set it.
    """
    return nn.Sequential(
        depthwise_conv(in_channels, in_channels, 3),
        Conv(in_channels, width, 1),
        depthwise_conv(width, width, 3),
        Conv(width, width, 1),
        nn.Conv2d(width, outputs, 1),
    )


def score_prior_bias(stride: int, prior: float = 0.0, image_size: int = 640) -> float:
    """Initial logit of a score map.

    Args:
        stride: the level's stride, pixels.
        prior: a prior probability in (0, 1); 0 picks the YOLO rule instead: about 5 persons
            per ``image_size``-square image, spread over the ``(image_size / stride)^2`` cells.
        image_size: the reference image side for the YOLO rule, pixels.

    Returns:
        The bias ``log(p / (1 - p))`` (prior) or ``log(5 / (image_size / stride)^2)`` (YOLO rule).
    """
    if prior > 0:
        if prior >= 1:
            raise ValueError(f"score prior must be in (0, 1), got {prior}")
        return math.log(prior / (1.0 - prior))
    return math.log(5.0 / (image_size / stride) ** 2)
