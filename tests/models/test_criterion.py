import dataclasses

import pytest
import torch

from erpose.config import ConfigError, apply_overrides, from_dict, to_dict
from erpose.data.sample import PoseBatch
from erpose.geometry.anchors import make_anchor_points
from erpose.geometry.decode import decode_dfl_boxes
from erpose.models.criterion import (
    AssignConfig,
    CriterionConfig,
    LossConfig,
    build_criterion,
    default_criterion_config,
)
from erpose.models.outputs import BranchOutput, HeadOutput
from erpose.models.zoo import get_config
from erpose.skeleton import COCO17

SIZE = 128
K = COCO17.num_keypoints


def make_batch(num_images=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 3
    centres = torch.rand(num_images, n, 1, 2, generator=g) * 80 + 24
    xy = centres + (torch.rand(num_images, n, K, 2, generator=g) - 0.5) * 40
    v = torch.full((num_images, n, K, 1), 2.0)
    v[0, 1, 5:] = 0.0  # a partly labelled person
    keypoints = torch.cat([xy, v], -1)
    person_mask = torch.tensor([[True, True, False], [True, True, True]])[:num_images]
    keypoints[~person_mask] = 0.0
    boxes = torch.cat([xy.amin(2), xy.amax(2)], -1) * person_mask[..., None]
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) * 0.53
    ignore_boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]]).repeat(num_images, 1, 1)
    ignore_mask = torch.tensor([[True], [False]])[:num_images]
    return PoseBatch(
        images=torch.zeros(num_images, 3, SIZE, SIZE), keypoints=keypoints, areas=areas, boxes=boxes,
        person_mask=person_mask, ignore_boxes=ignore_boxes, ignore_mask=ignore_mask,
        image_ids=torch.arange(num_images),
    )


def make_branch(num_images, anchor_points, strides, box=False, reg_max=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    num_anchors = anchor_points.shape[0]
    scores = torch.randn(num_images, num_anchors, generator=g).requires_grad_(True)
    keypoints = (torch.rand(num_images, num_anchors, K, 3, generator=g) * SIZE).requires_grad_(True)
    if not box:
        return BranchOutput(scores, keypoints)
    distributions = torch.randn(num_images, num_anchors, 4, reg_max, generator=g).requires_grad_(True)
    boxes = decode_dfl_boxes(distributions, anchor_points, strides)
    return BranchOutput(scores, keypoints, distributions, boxes)


def make_output(num_images, box=False, o2o=False):
    anchor_points, strides = make_anchor_points([(16, 16), (8, 8), (4, 4)], [8, 16, 32])
    o2m = make_branch(num_images, anchor_points, strides, box=box)
    second = make_branch(num_images, anchor_points, strides, seed=2) if o2o else None
    return HeadOutput(anchor_points, strides, o2m, second)


def test_default_configs_follow_the_ablation_table():
    b0, b1, b2, b3, b4, b5 = (default_criterion_config(f"B{i}") for i in range(6))
    assert (b0.assign.metric, b0.assign.candidates, b0.assign.level_gate) == ("box_iou", "gt_box", False)
    assert (b0.loss.kpt_loss, b0.loss.kpt_area) == ("plain", "box")
    assert (b0.loss.kpt, b0.loss.vis, b0.loss.score, b0.loss.box, b0.loss.dfl) == (12.0, 1.0, 0.5, 7.5, 1.5)
    assert (b1.assign.metric, b1.assign.candidates, b1.loss.kpt_loss) == ("oks", "gt_box", "plain")
    assert b2 == b1
    assert (b3.assign.candidates, b3.assign.level_gate, b3.loss.kpt_loss) == ("keypoints", True, "plain")
    assert (b4.loss.kpt_loss, b4.loss.kpt_area) == ("smooth", "area")
    assert b4 == CriterionConfig()
    # ER-Pose keeps B3's plain loss and drops the o2o copy's keypoint terms (ablation, docs).
    assert b5.assign == b3.assign and b5.loss == dataclasses.replace(b3.loss, o2o_keypoint_gain=0.0)
    assert (b5.assign.alpha, b5.assign.beta, b5.assign.topk) == (0.5, 6.0, 10)
    with pytest.raises(ValueError, match="B0"):
        default_criterion_config("B9")


def test_config_round_trips_through_dicts():
    config = CriterionConfig(AssignConfig(topk=13, level_band=(1.5, 6.0)), LossConfig(kpt_loss="oks_l1", u0=1.0))
    assert from_dict(CriterionConfig, to_dict(config)) == config


def test_config_validation():
    with pytest.raises(ValueError, match="level_band"):
        AssignConfig(level_band=(8.0, 2.0))
    with pytest.raises(ValueError, match="level_band"):
        from_dict(CriterionConfig, {"assign": {"level_band": [1.0, 2.0, 3.0]}})
    with pytest.raises(ValueError, match="kpt_loss"):
        from_dict(CriterionConfig, {"loss": {"kpt_loss": "l2"}})


def _one_person_predicted_3px_right():
    """A batch with one person and an output in which every anchor predicts it 3 px to the right."""
    batch = make_batch(1)
    batch.person_mask[:] = torch.tensor([[True, False, False]])
    batch.ignore_mask[:] = False
    output = make_output(1)
    target = batch.keypoints[0, 0]
    shifted = target.expand_as(output.o2m.keypoints[0]).clone()
    shifted[..., 0] += 3.0
    output.o2m.keypoints = shifted[None].requires_grad_(True)
    return batch, output, target


@pytest.mark.parametrize("area_source", ["box", "area"])
def test_keypoint_loss_uses_the_configured_area(area_source):
    batch, output, target = _one_person_predicted_3px_right()
    config = CriterionConfig(loss=LossConfig(kpt_loss="plain", kpt_area=area_source))
    _, items = build_criterion(get_config("erpose-n"), COCO17, config)(output, batch)
    box = batch.boxes[0, 0]
    area = (box[2] - box[0]) * (box[3] - box[1]) if area_source == "box" else batch.areas[0, 0]
    u2 = 9.0 / (2 * area * (2 * torch.tensor(COCO17.sigmas)) ** 2)
    expected = 12.0 * (1 - torch.exp(-u2))[target[:, 2] > 0].mean()
    assert items["kpt"].item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("kind,tail", [("t_kernel", 1.0), ("t_kernel", 2.0), ("cauchy", 1.0)])
def test_keypoint_loss_kind_and_tail_reach_the_loss(kind, tail):
    batch, output, target = _one_person_predicted_3px_right()
    config = apply_overrides(CriterionConfig(), [f"loss.kpt_loss={kind}", f"loss.kpt_tail={tail:g}", "loss.kpt=5",
                                                 "loss.kpt_area=area"])
    _, items = build_criterion(get_config("erpose-n"), COCO17, config)(output, batch)
    u2 = 9.0 / (2 * batch.areas[0, 0] * (2 * torch.tensor(COCO17.sigmas)) ** 2)
    per_keypoint = 1 - (1 + u2 / tail) ** -tail if kind == "t_kernel" else torch.log1p(u2)
    assert items["kpt"].item() == pytest.approx(5.0 * per_keypoint[target[:, 2] > 0].mean().item(), rel=1e-4)
    with pytest.raises(ConfigError, match="kpt_tail"):
        LossConfig(kpt_tail=0.0)


def test_build_criterion_from_zoo_configs():
    for name, step in (("yolopose-n", "B0"), ("erpose-n-b1", "B1"), ("erpose-n-b3", "B3"), ("erpose-n", "B5")):
        criterion = build_criterion(get_config(name), COCO17)
        assert criterion.config == default_criterion_config(step)
        assert torch.allclose(criterion.sigmas, torch.tensor(COCO17.sigmas))
    no_box = dataclasses.replace(get_config("yolopose-n"), head=get_config("erpose-n-b1").head)
    with pytest.raises(ValueError, match="box"):
        build_criterion(no_box, COCO17, default_criterion_config("B0"))


def _check_gradients(*tensors):
    for tensor in tensors:
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_er_criterion_end_to_end_with_o2o():
    batch = make_batch()
    output = make_output(2, o2o=True)
    b5 = default_criterion_config("B5")
    # METHOD.md's plain o2m + o2o sum, so that every output gets a gradient.
    config = dataclasses.replace(b5, loss=dataclasses.replace(b5.loss, o2o_keypoint_gain=1.0))
    criterion = build_criterion(get_config("erpose-n"), COCO17, config)
    total, items = criterion(output, batch)
    assert set(items) == {"kpt", "vis", "score", "o2o_kpt", "o2o_vis", "o2o_score"}
    assert torch.isfinite(total) and total.dim() == 0
    assert total.item() == pytest.approx(2 * sum(v.item() for v in items.values()), rel=1e-5)
    assert all(not v.requires_grad for v in items.values())
    total.backward()
    _check_gradients(output.o2m.scores, output.o2m.keypoints, output.o2o.scores, output.o2o.keypoints)


def test_o2o_keypoint_gain_scales_only_the_o2o_keypoint_terms():
    from dataclasses import replace

    from erpose.models.criterion import default_criterion_config

    batch = make_batch()
    b5 = default_criterion_config("B5")
    assert b5.loss.o2o_keypoint_gain == 0.0  # ER-Pose's default
    base = replace(b5, loss=replace(b5.loss, o2o_keypoint_gain=1.0))
    _, full = build_criterion(get_config("erpose-n"), COCO17, base)(make_output(2, o2o=True), batch)
    halved = replace(base, loss=replace(base.loss, o2o_keypoint_gain=0.5))
    output = make_output(2, o2o=True)
    total, items = build_criterion(get_config("erpose-n"), COCO17, halved)(output, batch)
    for name in ("o2o_kpt", "o2o_vis"):
        assert items[name].item() == pytest.approx(0.5 * full[name].item(), rel=1e-6)
    for name in ("kpt", "vis", "score", "o2o_score"):
        assert items[name].item() == pytest.approx(full[name].item(), rel=1e-6)
    assert total.item() == pytest.approx(2 * sum(v.item() for v in items.values()), rel=1e-5)


def test_baseline_criterion_end_to_end_with_box_losses():
    batch = make_batch()
    output = make_output(2, box=True)
    criterion = build_criterion(get_config("yolopose-n"), COCO17)
    total, items = criterion(output, batch)
    assert set(items) == {"kpt", "vis", "score", "box", "dfl"}
    assert all(torch.isfinite(v) and v > 0 for v in items.values())
    total.backward()
    _check_gradients(output.o2m.scores, output.o2m.keypoints, output.o2m.box_distributions)


@pytest.mark.parametrize("step", ["B1", "B2", "B3", "B4", "B5"])
def test_every_step_runs_on_keypoint_heads(step):
    output = make_output(2, o2o=step == "B5")
    criterion = build_criterion(get_config("erpose-n"), COCO17, default_criterion_config(step))
    total, items = criterion(output, make_batch())
    total.backward()
    assert torch.isfinite(total) and items["kpt"] > 0
    _check_gradients(output.o2m.keypoints)


def test_perfect_predictions_give_zero_keypoint_loss():
    batch = make_batch(1)
    batch.person_mask[:] = torch.tensor([[True, False, False]])
    batch.ignore_mask[:] = False
    output = make_output(1)
    target = batch.keypoints[0, 0]
    perfect = target.expand_as(output.o2m.keypoints[0]).clone()
    perfect[..., 2] = torch.where(target[:, 2] > 0, 20.0, -20.0)
    output.o2m.keypoints = perfect[None].requires_grad_(True)
    criterion = build_criterion(get_config("erpose-n"), COCO17)
    for step in ("B3", "B4"):
        criterion.config = default_criterion_config(step)
        _, items = criterion(output, batch)
        assert items["kpt"].item() == pytest.approx(0.0, abs=1e-6)
        assert items["vis"].item() < 1e-6


def test_batch_without_persons_is_finite_and_connected():
    batch = make_batch()
    batch.person_mask[:] = False
    batch.keypoints[:] = 0.0
    output = make_output(2, o2o=True)
    total, items = build_criterion(get_config("erpose-n"), COCO17)(output, batch)
    assert torch.isfinite(total) and items["kpt"] == 0 and items["score"] > 0
    total.backward()
    assert output.o2m.keypoints.grad is not None  # graph stays connected (DDP needs every parameter)


def test_step_mapping_er_pose_keeps_the_plain_loss():
    # The ablation chose the plain loss for ER-Pose (B5); B4 is the smooth-loss step.
    b3, b4, b5 = (default_criterion_config(step) for step in ("B3", "B4", "B5"))
    assert b5.assign == b3.assign and (b5.loss.kpt_loss, b5.loss.kpt_area) == ("plain", "box")
    assert (b4.loss.kpt_loss, b4.loss.kpt_area) == ("smooth", "area") and b4.assign == b5.assign
    assert default_criterion_config("B0").assign.metric == "box_iou"


def test_o2o_distillation_targets_are_the_o2m_nms_output():
    """``o2o_targets="distill"``: the o2o BCE's targets are o2m's OKS-NMS survivors with their scores."""
    import torch.nn.functional as F

    from erpose.geometry.nms import nms_distillation_targets

    b5 = default_criterion_config("B5")
    config = dataclasses.replace(b5, assign=dataclasses.replace(b5.assign, o2o_targets="distill"))
    output = make_output(2, o2o=True)
    total, items = build_criterion(get_config("erpose-n"), COCO17, config)(output, make_batch())
    assert set(items) == {"kpt", "vis", "score", "o2o_kpt", "o2o_vis", "o2o_score"}
    assert items["o2o_kpt"] == 0 and items["o2o_vis"] == 0
    sigmas = torch.tensor(COCO17.sigmas)
    targets = nms_distillation_targets(output.o2m.scores.detach().sigmoid(), output.o2m.keypoints.detach(), sigmas)
    expected = F.binary_cross_entropy_with_logits(output.o2o.scores.detach(), targets, reduction="sum")
    expected = config.loss.score * expected / targets.sum().clamp(min=1.0)
    assert items["o2o_score"].item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert output.o2o.scores.grad is not None and output.o2o.scores.grad.abs().sum() > 0


def test_distillation_targets_hand_case():
    from erpose.geometry.nms import nms_distillation_targets

    keypoints = torch.zeros(1, 4, K, 2)
    keypoints[0, 0] = torch.rand(K, 2, generator=torch.Generator().manual_seed(0)) * 100
    keypoints[0, 1] = keypoints[0, 0] + 0.5  # a duplicate of pose 0
    keypoints[0, 2] = keypoints[0, 0] + 300  # another person
    keypoints[0, 3] = keypoints[0, 0] + 600  # below min_score
    scores = torch.tensor([[0.8, 0.9, 0.3, 0.005]])
    targets = nms_distillation_targets(scores, keypoints, torch.tensor(COCO17.sigmas), threshold=0.5, min_score=0.01)
    assert targets[0].tolist() == pytest.approx([0.0, 0.9, 0.3, 0.0])
