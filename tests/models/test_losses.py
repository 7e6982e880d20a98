import math

import pytest
import torch

from erpose.geometry.oks import oks
from erpose.models.losses import (
    KEYPOINT_LOSSES,
    box_loss,
    cauchy_oks_terms,
    distribution_focal_loss,
    keypoint_loss,
    plain_oks_terms,
    score_loss,
    smooth_oks_terms,
    t_kernel_oks_terms,
    visibility_loss,
)

U0 = 1 / math.sqrt(2)
# With area 100 and sigma sqrt(1/200)/2, 2 A (2 sigma)^2 = 1, so u^2 is the squared pixel distance.
AREA = torch.tensor([100.0])
SIGMAS = torch.full((2,), math.sqrt(1 / 200) / 2)


def gt_pair():
    return torch.tensor([[[10.0, 10.0, 2.0], [20.0, 20.0, 1.0]]])


@pytest.mark.parametrize("kind", KEYPOINT_LOSSES)
def test_prediction_equal_to_ground_truth_has_oks_one_and_zero_loss(kind):
    gt = gt_pair()
    pred = gt[..., :2].clone()
    assert oks(pred, gt, AREA, SIGMAS).item() == pytest.approx(1.0)
    assert keypoint_loss(pred, gt, AREA, SIGMAS, kind).item() == pytest.approx(0.0, abs=1e-6)


def test_smooth_loss_hand_values():
    u = torch.tensor([0.3, 2.0])
    expected_below = 1 - math.exp(-0.09)
    expected_above = (1 - math.exp(-0.5)) + math.sqrt(2) * math.exp(-0.5) * (2.0 - U0)
    assert smooth_oks_terms(u**2).tolist() == pytest.approx([expected_below, expected_above], rel=1e-6)
    # Another switch point: u0 = 1 -> (1 - e^-1) + 2 e^-1 (u - 1).
    assert smooth_oks_terms(torch.tensor([9.0]), u0=1.0).item() == pytest.approx(
        (1 - math.exp(-1)) + 2 * math.exp(-1) * 2.0, rel=1e-6
    )


def _value_and_slope(fn, u_value):
    u = torch.tensor(u_value, dtype=torch.float64, requires_grad=True)
    value = fn(u**2)
    (slope,) = torch.autograd.grad(value, u)
    return value.item(), slope.item()


def test_smooth_loss_and_gradient_are_continuous_at_u0():
    below = _value_and_slope(smooth_oks_terms, U0 - 1e-7)
    above = _value_and_slope(smooth_oks_terms, U0 + 1e-7)
    assert below[0] == pytest.approx(above[0], abs=1e-6)
    assert below[1] == pytest.approx(above[1], abs=1e-5)
    assert above[1] == pytest.approx(2 * U0 * math.exp(-0.5), rel=1e-5)  # the plain loss's peak slope
    # A different u0 is still continuous (value and slope).
    fn = lambda u2: smooth_oks_terms(u2, u0=1.3)  # noqa: E731
    lo, hi = _value_and_slope(fn, 1.3 - 1e-7), _value_and_slope(fn, 1.3 + 1e-7)
    assert lo[0] == pytest.approx(hi[0], abs=1e-6) and lo[1] == pytest.approx(hi[1], abs=1e-5)


def test_smooth_gradient_does_not_vanish_for_large_errors_but_plain_does():
    for u in (3.0, 10.0, 100.0):
        assert _value_and_slope(smooth_oks_terms, u)[1] == pytest.approx(2 * U0 * math.exp(-0.5), rel=1e-6)
        assert _value_and_slope(plain_oks_terms, u)[1] < 1e-3
    # Same through the pixel coordinates of a far-off prediction.
    gt = gt_pair()
    grads = {}
    for kind in ("smooth", "plain"):
        pred = (gt[..., :2] + torch.tensor([40.0, 0.0])).requires_grad_(True)
        keypoint_loss(pred, gt, AREA, SIGMAS, kind).sum().backward()
        grads[kind] = pred.grad.norm().item()
    assert grads["smooth"] > 0.1 and grads["plain"] < 1e-12


def test_t_kernel_and_cauchy_hand_values():
    # a = 1: u^2 / (1 + u^2); a = 2: 1 - (1 + u^2/2)^-2.
    assert t_kernel_oks_terms(torch.tensor([1.0, 3.0])).tolist() == pytest.approx([0.5, 0.75], rel=1e-6)
    assert t_kernel_oks_terms(torch.tensor([3.0]), tail=2.0).item() == pytest.approx(1 - 2.5**-2, rel=1e-6)
    assert cauchy_oks_terms(torch.tensor([math.e - 1.0, 0.0])).tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    # A large a gives back the plain loss; every a is bounded by 1, and u^2 near 0 like the plain loss.
    assert t_kernel_oks_terms(torch.tensor([1.0]), tail=1e5).item() == pytest.approx(1 - math.exp(-1), rel=1e-4)
    assert t_kernel_oks_terms(torch.tensor([1e3]), tail=1.0).item() == pytest.approx(1e3 / 1001, rel=1e-6)
    assert t_kernel_oks_terms(torch.tensor([1e12]), tail=1.0).item() <= 1.0
    assert t_kernel_oks_terms(torch.tensor([1e-4]), tail=0.5).item() == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(ValueError, match="tail"):
        t_kernel_oks_terms(torch.tensor([1.0]), tail=0.0)


def test_tail_gradients_order_plain_t_kernel_cauchy_smooth():
    # Slopes d/du at u = 3 by hand: plain 6 e^-9, t (a=1) 2u / (1 + u^2)^2 = 0.06, cauchy 2u / (1 + u^2)
    # = 0.6, smooth sqrt(2) e^-1/2 (constant beyond u0).
    slopes = {name: _value_and_slope(fn, 3.0)[1] for name, fn in (
        ("plain", plain_oks_terms), ("t", t_kernel_oks_terms), ("cauchy", cauchy_oks_terms), ("smooth", smooth_oks_terms))}
    assert slopes["plain"] == pytest.approx(6 * math.exp(-9), rel=1e-6)
    assert slopes["t"] == pytest.approx(0.06, rel=1e-6)
    assert slopes["cauchy"] == pytest.approx(0.6, rel=1e-6)
    assert slopes["smooth"] == pytest.approx(math.sqrt(2) * math.exp(-0.5), rel=1e-6)
    # t with a = 2 at u = 3: 2u (1 + u^2/2)^-3 = 6 / 5.5^3.
    assert _value_and_slope(lambda u2: t_kernel_oks_terms(u2, 2.0), 3.0)[1] == pytest.approx(6 / 5.5**3, rel=1e-6)


def test_plain_instance_loss_is_one_minus_oks():
    g = torch.Generator().manual_seed(0)
    gt = torch.cat([torch.rand(4, 5, 2, generator=g) * 50, torch.tensor([2.0, 1.0, 0.0, 2.0, 2.0]).expand(4, 5)[..., None]], -1)
    pred = gt[..., :2] + torch.randn(4, 5, 2, generator=g) * 3
    areas, sigmas = torch.full((4,), 400.0), torch.full((5,), 0.07)
    assert torch.allclose(keypoint_loss(pred, gt, areas, sigmas, "plain"), 1 - oks(pred, gt, areas, sigmas), atol=1e-6)


def test_keypoint_losses_hand_values_and_ignore_unlabelled():
    gt = torch.tensor([[[0.0, 0.0, 2.0], [10.0, 0.0, 2.0], [50.0, 50.0, 0.0]]])
    sigmas = torch.full((3,), math.sqrt(1 / 200) / 2)
    pred = torch.tensor([[[0.0, 0.0], [10.0 + math.sqrt(math.log(2)), 0.0], [0.0, 0.0]]])
    # u^2 = 0 and ln 2: exp(-u^2) = 1 and 1/2, OKS = 3/4.
    assert keypoint_loss(pred, gt, AREA, sigmas, "plain").item() == pytest.approx(0.25, rel=1e-5)
    assert keypoint_loss(pred, gt, AREA, sigmas, "neg_log_oks").item() == pytest.approx(-math.log(0.75), rel=1e-5)
    # u^2 = ln 2: t (a = 1) ln2 / (1 + ln2), cauchy ln(1 + ln 2); the exact keypoint adds 0.
    ln2 = math.log(2)
    assert keypoint_loss(pred, gt, AREA, sigmas, "t_kernel").item() == pytest.approx(ln2 / (1 + ln2) / 2, rel=1e-5)
    assert keypoint_loss(pred, gt, AREA, sigmas, "cauchy").item() == pytest.approx(math.log1p(ln2) / 2, rel=1e-5)
    l1 = (0 + math.sqrt(math.log(2))) / 10 / 2  # mean over labelled of |dx| + |dy| over sqrt(A)
    assert keypoint_loss(pred, gt, AREA, sigmas, "oks_l1", l1_weight=2.0).item() == pytest.approx(0.25 + 2 * l1, rel=1e-5)
    moved = pred.clone()
    moved[0, 2] = torch.tensor([-300.0, 70.0])  # the unlabelled keypoint does not count
    for kind in KEYPOINT_LOSSES:
        assert keypoint_loss(moved, gt, AREA, sigmas, kind).item() == pytest.approx(
            keypoint_loss(pred, gt, AREA, sigmas, kind).item()
        )


def test_neg_log_oks_stays_finite_when_oks_underflows():
    gt = gt_pair()
    pred = (gt[..., :2] + 1000.0).requires_grad_(True)
    loss = keypoint_loss(pred, gt, AREA, SIGMAS, "neg_log_oks")
    assert torch.isfinite(loss).all() and loss.item() > 1e5
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_unknown_keypoint_loss_raises():
    with pytest.raises(ValueError, match="smooth"):
        keypoint_loss(gt_pair()[..., :2], gt_pair(), AREA, SIGMAS, "l2")


def test_visibility_and_score_losses_hand_values():
    gt = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    logits = torch.tensor([[2.0, -1.0]])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert visibility_loss(logits, gt).item() == pytest.approx(expected, rel=1e-6)

    score_logits = torch.zeros(1, 4)
    targets = torch.tensor([[0.0, 0.5, 1.0, 0.0]])
    ignore = torch.tensor([[False, False, False, True]])
    # BCE(0, y) = log 2 for every y; 3 anchors counted, normalised by sum(targets) = 1.5.
    assert score_loss(score_logits, targets, ignore).item() == pytest.approx(3 * math.log(2) / 1.5, rel=1e-6)
    # The sum is clamped at 1 when targets are tiny.
    assert score_loss(score_logits, targets * 0.1, ignore).item() == pytest.approx(3 * math.log(2), rel=1e-6)


def test_box_loss_zero_on_identical_boxes_and_weighted():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 4.0, 3.0]])
    weights = torch.tensor([1.0, 0.5])
    assert box_loss(boxes, boxes, weights, torch.tensor(1.0)).item() == pytest.approx(0.0, abs=1e-6)
    shifted = boxes + torch.tensor([2.0, 0.0, 2.0, 0.0])  # 2 x 2 box moved by 2: IoU 0, rho^2/c^2 = 4/20
    loss = box_loss(shifted[:1], boxes[:1], weights[:1], torch.tensor(2.0))
    assert loss.item() == pytest.approx((1 - (0 - 4 / 20)) / 2, rel=1e-6)


def test_distribution_focal_loss_hand_values():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = probs.log().expand(1, 4, 4).clone()
    targets = torch.tensor([[1.25, 2.0, 0.0, 2.99]])
    expected = [
        0.75 * -math.log(0.2) + 0.25 * -math.log(0.3),
        -math.log(0.3),
        -math.log(0.1),
        0.01 * -math.log(0.3) + 0.99 * -math.log(0.4),
    ]
    assert distribution_focal_loss(logits, targets).item() == pytest.approx(sum(expected) / 4, rel=1e-5)
    uniform = distribution_focal_loss(torch.zeros(2, 4, 16), torch.full((2, 4), 7.3))
    assert uniform.tolist() == pytest.approx([math.log(16)] * 2, rel=1e-6)
