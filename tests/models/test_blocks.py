import pytest
import torch

from erpose.models.backbone import Backbone, ScaleRule
from erpose.models.blocks import C2PSA, SPPF, C3k2, Conv, fuse_conv_bn, make_divisible, score_prior_bias
from erpose.models.neck import PANNeck


def test_make_divisible_and_scale_rule():
    assert make_divisible(16.0) == 16 and make_divisible(17.0) == 24 and make_divisible(1.5) == 8
    rule = ScaleRule(depth=0.5, width=1.5, max_channels=512)
    assert rule.channels(1024) == 768 and rule.channels(64) == 96
    assert rule.repeats(2) == 1 and ScaleRule(1.0, 1.0, 512).repeats(2) == 2


@pytest.mark.parametrize(
    "block", [C3k2(16, 32, 2, c3k=False), C3k2(16, 32, 1, c3k=True, expansion=0.25), SPPF(16, 32), C2PSA(128, 1)]
)
def test_blocks_keep_spatial_size(block):
    x = torch.rand(2, block.cv1.conv.in_channels, 8, 8)
    y = block.eval()(x)
    assert y.shape[0] == 2 and y.shape[2:] == (8, 8)


def test_c2psa_uses_one_head_per_64_channels():
    assert C2PSA(256).m[0].attn.num_heads == 2


def test_backbone_and_neck_channels_and_strides_nano():
    rule = ScaleRule(0.5, 0.25, 1024)
    backbone = Backbone(rule)
    neck = PANNeck(backbone.out_channels, rule)
    assert backbone.out_channels == {8: 128, 16: 128, 32: 256}
    assert neck.out_channels == {8: 64, 16: 128, 32: 256}
    features = neck(backbone(torch.rand(1, 3, 64, 96)))
    assert {s: tuple(f.shape) for s, f in features.items()} == {
        8: (1, 64, 8, 12), 16: (1, 128, 4, 6), 32: (1, 256, 2, 3)
    }


def test_conv_bn_fusion_matches_and_removes_norm():
    torch.manual_seed(0)
    block = torch.nn.Sequential(Conv(4, 8, 3, 2), Conv(8, 8, 3, groups=8, act=False))
    for m in block.modules():  # non-trivial statistics so the fold is really tested
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    block.eval()
    x = torch.rand(2, 4, 10, 10)
    expected = block(x)
    fuse_conv_bn(block)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_score_prior_bias():
    assert score_prior_bias(8, 0.01) == pytest.approx(-4.59512, abs=1e-5)
    assert score_prior_bias(32) == pytest.approx(torch.log(torch.tensor(5 / 400)).item(), abs=1e-6)
    with pytest.raises(ValueError):
        score_prior_bias(8, 1.5)
