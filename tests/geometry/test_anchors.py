import torch

from erpose.geometry.anchors import make_anchor_points


def test_anchor_points_hand_built_two_levels():
    points, strides = make_anchor_points([(2, 3), (1, 1)], [8, 16])
    expected = torch.tensor(
        [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5], [0.5, 0.5]]
    )
    assert torch.equal(points, expected)
    assert torch.equal(strides, torch.tensor([8.0] * 6 + [16.0]))


def test_anchor_order_matches_feature_flattening():
    # A map whose value is x + 10 * y flattens (row-major) to the anchors' (x - 0.5) + 10 (y - 0.5).
    height, width = 3, 4
    fmap = (torch.arange(width)[None, :] + 10 * torch.arange(height)[:, None]).float()
    points, _ = make_anchor_points([(height, width)], [8])
    assert torch.equal(fmap.flatten(), (points[:, 0] - 0.5) + 10 * (points[:, 1] - 0.5))


def test_anchor_points_dtype_and_count():
    points, strides = make_anchor_points([(80, 80), (40, 40), (20, 20)], [8, 16, 32], dtype=torch.float64)
    assert points.shape == (8400, 2) and strides.shape == (8400,)
    assert points.dtype == torch.float64
    assert (strides * points.max(0).values.max()).max() > 0
