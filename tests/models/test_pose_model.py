import pytest
import torch

from erpose.models import build_model
from erpose.skeleton import Skeleton

THREE = Skeleton.custom(3, sigmas=[0.1, 0.1, 0.1])


def _randomise_norms(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
    return model


@pytest.mark.parametrize("name", ["erpose-n", "yolopose-n", "erpose-n-b1", "erpose-s-b2"])
def test_fused_and_unfused_agree(name):
    torch.manual_seed(0)
    model = _randomise_norms(build_model(name)).eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(images)
        fused = model.fuse()(images)
    assert model.fused
    # At 64 x 64 the ER top-k holds all 84 anchors; near-equal scores may swap rows, so rows are
    # compared in an order set by their first keypoint (distinct anchors sit >= 4 px apart).
    def canonical(out):
        return out[0][(out[0, :, 1] * 1e4 + out[0, :, 2]).argsort()]

    assert torch.allclose(canonical(fused), canonical(expected), atol=1e-4, rtol=1e-4)


def test_postprocess_box_nms_for_the_baseline():
    model = build_model("yolopose-n", THREE)
    k = 3
    rows = torch.zeros(1, 4, 1 + 3 * k + 4)
    rows[0, :, 0] = torch.tensor([0.9, 0.8, 0.0005, 0.7])
    rows[0, :, 1 + 3 * k :] = torch.tensor(
        [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [30, 30, 40, 40]], dtype=torch.float32
    )
    out = model.postprocess(rows, conf=0.001, iou=0.7)
    assert len(out) == 1 and out[0][:, 0].tolist() == pytest.approx([0.9, 0.7])  # duplicate and low score gone
    assert torch.equal(out[0][:, 1 + 3 * k :], rows[0, [0, 3], 1 + 3 * k :])
    assert model.postprocess(rows, conf=0.001, max_det=1)[0].shape[0] == 1


def test_postprocess_oks_nms_for_box_free_steps():
    model = build_model("erpose-n-b2", THREE)
    person = torch.tensor([[10.0, 10.0, 1.0], [30.0, 10.0, 1.0], [20.0, 40.0, 1.0]])
    poses = torch.stack([person, person + torch.tensor([0.5, 0.5, 0.0]), person + torch.tensor([80.0, 0.0, 0.0])])
    raw = torch.cat((torch.tensor([0.5, 0.9, 0.6])[:, None], poses.flatten(1)), dim=1)[None]
    out = model.postprocess(raw, conf=0.001, iou=0.7)[0]
    assert out[:, 0].tolist() == pytest.approx([0.9, 0.6])


def test_postprocess_nms_free_only_thresholds():
    model = build_model("erpose-n", THREE)
    raw = torch.zeros(2, 5, 10)
    raw[0, :, 0] = torch.tensor([0.9, 0.9, 0.3, 0.2, 0.0])  # identical duplicates are kept: no NMS
    out = model.postprocess(raw, conf=0.25)
    assert [o.shape[0] for o in out] == [3, 0]


def test_predict_restores_mode_and_max_det():
    model = build_model("erpose-n").train()
    detections = model.predict(torch.rand(2, 3, 64, 64), conf=0.0, max_det=3)
    assert model.training and model.max_det == 100
    assert [d.shape for d in detections] == [(3, 52), (3, 52)]
    assert torch.all(detections[0][:-1, 0] >= detections[0][1:, 0])
    # Keypoints are in input pixels: decoded near the anchor points of a 64 x 64 image.
    assert detections[0][:, 1:].view(3, 17, 3)[..., :2].abs().max() < 64 * 4
