import math

import pytest
import torch

from erpose.geometry.anchors import make_anchor_points
from erpose.models import build_model, model_summary
from erpose.models.er_head import ERHead
from erpose.models.yolopose_head import YOLOPoseHead
from erpose.models.zoo import get_config

STRIDES = (8, 16, 32)


def _features(batch=2, channels=(16, 32, 64), size=32, requires_grad=False):
    torch.manual_seed(0)
    return {
        s: torch.rand(batch, c, size // s, size // s, requires_grad=requires_grad) for s, c in zip(STRIDES, channels)
    }


def _freeze_norms(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def test_er_head_eval_output_is_the_decoded_o2o_topk():
    head = ERHead((16, 32, 64), STRIDES, 4, max_det=5)
    feats = _features()
    head.train()
    _freeze_norms(head)  # same normalisation in both modes, so the outputs must agree exactly
    out = head(feats)
    with torch.no_grad():
        ref_scores = out.o2o.scores.sigmoid()
        order = ref_scores.argsort(dim=1, descending=True)[:, :5]
        head.eval()
        top = head(feats)
    assert top.shape == (2, 5, 1 + 3 * 4)
    for b in range(2):
        rows = order[b]
        assert torch.allclose(top[b, :, 0], ref_scores[b, rows])
        kpts = out.o2o.keypoints[b, rows].detach()
        assert torch.allclose(top[b, :, 1:].view(5, 4, 3)[..., :2], kpts[..., :2])
        assert torch.allclose(top[b, :, 1:].view(5, 4, 3)[..., 2], kpts[..., 2].sigmoid())


def test_er_head_training_keypoints_use_a_plus_r_times_s():
    head = ERHead((16, 32, 64), STRIDES, 3).train()
    feats = _features(batch=1, size=64)
    out = head(feats)
    branch = head.o2m
    offsets = torch.cat([kb(feats[s])[0] for s, kb in zip(STRIDES, branch.keypoints)], dim=1)
    anchors, strides = make_anchor_points([(8, 8), (4, 4), (2, 2)], STRIDES)
    assert torch.equal(out.anchor_points, anchors) and torch.equal(out.strides, strides)
    # Anchor 9 is cell (x=1, y=1) of the 8 x 8 stride-8 level: centre (1.5, 1.5).
    expected = (torch.tensor([1.5, 1.5]) + offsets[0, 9]) * 8
    assert torch.allclose(out.o2m.keypoints[0, 9, :, :2], expected, atol=1e-6)
    # Anchor 64 + 4 + 1 = 69 is cell (1, 1) of the stride-16 level.
    expected = (torch.tensor([1.5, 1.5]) + offsets[0, 69]) * 16
    assert torch.allclose(out.o2m.keypoints[0, 69, :, :2], expected, atol=1e-5)


def test_o2o_is_a_copy_and_detached_features_by_default():
    head = ERHead((16, 32, 64), STRIDES, 3)
    o2m = dict(head.o2m.named_parameters())
    for name, p in head.o2o.named_parameters():
        assert torch.equal(p, o2m[name]) and p.data_ptr() != o2m[name].data_ptr()
    for detach in (True, False):
        head = ERHead((16, 32, 64), STRIDES, 3, o2o_detach=detach).train()
        feats = _features(batch=1, size=64, requires_grad=True)
        out = head(feats)
        out.o2o.scores.sum().backward()
        assert (feats[8].grad is None) == detach


def test_deploy_drops_exactly_the_o2m_parameters():
    model = build_model("erpose-n")
    total = sum(p.numel() for p in model.parameters())
    o2m = sum(p.numel() for p in model.head.o2m.parameters())
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model.eval()(images)
    model.deploy()
    assert sum(p.numel() for p in model.parameters()) == total - o2m
    assert not any(key.startswith("head.o2m") for key in model.state_dict())
    assert model.deployed and not model.training
    with torch.no_grad():
        assert torch.equal(model(images), before)
    with pytest.raises(RuntimeError, match="deployed"):
        model.train()(images)


def test_score_bias_initialisation():
    head = ERHead((16, 32, 64), STRIDES, 3)
    biases = [branch[-1].bias.item() for branch in head.o2o.scores]
    assert biases == pytest.approx([math.log(5 / (640 / s) ** 2) for s in STRIDES])
    head = YOLOPoseHead((16, 32, 64), STRIDES, 3, score_prior=0.01)
    assert head.scores[0][-1].bias.item() == pytest.approx(math.log(0.01 / 0.99))


def test_baseline_widths_follow_the_ultralytics_formulas():
    head = YOLOPoseHead((64, 128, 256), STRIDES, 17)
    assert (head.box_width, head.score_width, head.keypoint_width) == (64, 64, 51)
    head = YOLOPoseHead((384, 768, 768), STRIDES, 17)
    assert (head.box_width, head.score_width, head.keypoint_width) == (96, 384, 96)


def test_nano_parameter_parity_and_er_budget():
    # YOLO11n-pose (fused) has 2,866,468 parameters, 16 of which are its fixed DFL conv; our DFL
    # is a parameter-free softmax expectation, so an exact architecture match gives 2,866,452.
    baseline = model_summary(build_model("yolopose-n"), imgsz=320)
    assert baseline.parameters == 2_866_452
    ours = model_summary(build_model("erpose-n"), imgsz=640)
    assert ours.parameters < 2_870_000 and ours.parameters_unfused < 2_870_000
    assert ours.gflops <= 7.6
    assert ours.gflops < 4 * baseline.gflops  # baseline counted at 320: x4 at 640


def test_shared_keypoint_branch_serves_both_copies():
    shared = ERHead((16, 32, 64), STRIDES, 3, shared_keypoints=True).train()
    separate = ERHead((16, 32, 64), STRIDES, 3, shared_keypoints=False)
    assert shared.o2m.keypoints is None and shared.o2o.keypoints is None and shared.keypoints is not None
    keypoint_params = sum(p.numel() for p in shared.keypoints.parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(separate) - count(shared) == keypoint_params  # one keypoint branch fewer to train
    out = shared(_features())
    assert torch.equal(out.o2m.keypoints, out.o2o.keypoints)
    shared.eval()
    with torch.no_grad():
        before = shared(_features())
    shared.deploy()  # drops the o2m score copy only: the shared keypoint branch stays
    assert shared.o2m is None and shared.keypoints is not None
    with torch.no_grad():
        assert torch.equal(shared(_features()), before)
    # The inference graph is the same size as with separate copies.
    separate.deploy()
    assert count(shared) == count(separate)


def test_separable_keypoint_branch_is_lighter_and_keeps_the_output_layout():
    from erpose.models.er_head import KeypointBranch

    full = KeypointBranch(64, 80, 17)
    separable = KeypointBranch(64, 80, 17, separable=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(separable) < count(full) / 4
    # Depth-wise 3x3 then point-wise 1x1, twice: the receptive field of two 3x3 convs is kept.
    groups = [m.conv.groups for m in separable.convs]
    assert groups == [64, 1, 80, 1]
    x = torch.randn(2, 64, 5, 7)
    for branch in (full, separable):
        offsets, visibility = branch(x)
        assert offsets.shape == (2, 35, 17, 2) and visibility.shape == (2, 35, 17)
    import dataclasses

    config = get_config("erpose-n")
    assert config.head.keypoint_separable  # the zoo default since it measured as accurate and lighter
    full = build_model(dataclasses.replace(config, head=dataclasses.replace(config.head, keypoint_separable=False)))
    assert model_summary(build_model(config), 640).gflops < model_summary(full, 640).gflops - 1.0


def test_full_score_branch_is_two_full_3x3_convs():
    head = ERHead((16, 32, 64), STRIDES, 3, score_width=12, score_separable=False)
    branch = head.o2m.scores[1]
    assert [(m.conv.kernel_size, m.conv.groups, m.conv.out_channels) for m in branch[:2]] == [((3, 3), 1, 12)] * 2
    assert branch[0].conv.in_channels == 32 and branch[-1].in_channels == 12 and branch[-1].out_channels == 1
    assert branch[-1].bias.item() == pytest.approx(math.log(5 / (640 / 16) ** 2))
    out = head.train()(_features())
    assert out.o2m.scores.shape == (2, 16 + 4 + 1)


def test_quality_aware_score_reads_detached_keypoint_features():
    from erpose.models.er_head import run_keypoint_branches

    for shared in (True, False):
        head = ERHead((16, 32, 64), STRIDES, 3, score_width=8, keypoint_width=8, shared_keypoints=shared,
                      score_sees_keypoints=True).train()
        torch.manual_seed(0)
        _freeze_norms(head)
        # logit = sum of the keypoint features: weights 0 on the 8 score channels, 1 on the 8 keypoint ones.
        for copy in (head.o2m, head.o2o):
            for branch in copy.scores:
                assert branch[-1].in_channels == 16
                with torch.no_grad():
                    branch[-1].weight.copy_(torch.cat([torch.zeros(8), torch.ones(8)]).view(1, 16, 1, 1))
                    branch[-1].bias.zero_()
        feats = _features(size=64)
        out = head(feats)
        keypoints = head.keypoints if shared else head.o2m.keypoints
        _, _, hidden = run_keypoint_branches(keypoints, [feats[s] for s in STRIDES])
        expected = torch.cat([y.sum(1).flatten(1) for y in hidden], 1)
        assert torch.allclose(out.o2m.scores, expected, atol=1e-5)
        if shared:
            assert torch.allclose(out.o2o.scores, expected, atol=1e-5)
        # The score loss trains the score branch only, never the keypoint branch it reads.
        out.o2m.scores.sum().backward()
        assert all(p.grad is None for p in keypoints.parameters())
        assert head.o2m.scores[0][-1].weight.grad is not None
        # Eval (the o2o top-k) scores the same way as the training forward.
        head.max_det = 5
        expected_top = out.o2o.scores.detach().sigmoid().topk(5, dim=1).values
        with torch.no_grad():
            top = head.eval()(feats)
        assert top.shape == (2, 5, 1 + 9) and torch.allclose(top[..., 0], expected_top, atol=1e-6)


def test_score_variants_keep_er_pose_n_within_budget():
    import dataclasses

    config = get_config("erpose-n")
    base = model_summary(build_model(config), 640)
    variants = (dict(score_sees_keypoints=True), dict(score_separable=False, score_width=12),
                dict(keypoint_separable=False, keypoint_width=16))
    for fields in variants:
        variant = model_summary(build_model(dataclasses.replace(config, head=dataclasses.replace(config.head, **fields))), 640)
        assert variant.parameters < 2_866_452  # YOLO11n-pose
        assert variant.gflops <= base.gflops * 1.001
    assert variant.parameters <= base.parameters  # the full keypoint branch at 16 wide: ER-Pose-n's size
