from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from erpose.runtime.letterbox import letterbox, letterbox_keypoints, letterbox_matrix, unletterbox_keypoints


def test_shapes_ratio_and_padding_hand_computed():
    image = np.zeros((48, 64, 3), np.uint8)
    out, ratio, pad = letterbox(image, 32)
    assert out.shape == (32, 32, 3) and ratio == (0.5, 0.5) and pad == (0, 4)
    assert (out[:4] == 114).all() and (out[28:] == 114).all() and (out[4:28] == 0).all()
    # (h, w) target: r = min(40/48, 80/64) -> 53 x 40, padded 13 left, 14 right.
    out, ratio, pad = letterbox(image, (40, 80), color=0)
    assert out.shape == (40, 80, 3) and ratio == (53 / 64, 40 / 48) and pad == (13, 0)
    out, ratio, pad = letterbox(np.zeros((10, 20, 3), np.uint8), 64, scaleup=False)
    assert out.shape == (64, 64, 3) and ratio == (1.0, 1.0) and pad == (22, 27)
    out, ratio, pad = letterbox(np.zeros((100, 50, 3), np.uint8), 64, stride=32)  # minimal padding
    assert out.shape == (64, 32, 3) and pad == (0, 0) and ratio == (0.64, 0.64)


def test_ratio_is_the_actual_per_axis_scale():
    out, ratio, pad = letterbox(np.zeros((333, 500, 3), np.uint8), 640)
    assert out.shape == (640, 640, 3)
    assert ratio == (640 / 500, 426 / 333) and pad == (0, 107)  # 333 * 1.28 = 426.24 -> 426 rows


def test_keypoint_mapping_hand_computed_and_round_trip():
    xy = np.array([[0.0, 0.0], [63.0, 47.0], [10.25, 20.5]])
    fwd = letterbox_keypoints(xy, (0.5, 0.5), (0, 4))
    # pixel-index convention: x' = r (x + 0.5) - 0.5 + pad
    np.testing.assert_allclose(fwd, [[-0.25, 3.75], [31.25, 27.25], [4.875, 14.0]])
    np.testing.assert_allclose(unletterbox_keypoints(fwd, (0.5, 0.5), (0, 4)), xy)
    m = letterbox_matrix((0.5, 0.5), (0, 4))
    np.testing.assert_allclose(xy @ m[:, :2].T + m[:, 2], fwd)
    with_score = np.concatenate([fwd, [[0.9], [0.1], [0.5]]], 1)
    back = unletterbox_keypoints(with_score, 0.5, (0, 4))
    np.testing.assert_allclose(back, np.concatenate([xy, [[0.9], [0.1], [0.5]]], 1))


@pytest.mark.parametrize("shape, size", [((60, 90), 128), ((90, 60), 40), ((57, 91), 64)])
def test_blob_lands_where_the_mapping_says(shape, size):
    """The image resize and the keypoint map agree (checks the half-pixel convention)."""
    h, w = shape
    x, y = w * 0.4 + 0.3, h * 0.6 - 0.2
    yy, xx = np.mgrid[0:h, 0:w]
    sigma = 4.0 * max(h, w) / size
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    image = np.repeat((blob * 250).astype(np.uint8)[..., None], 3, -1)
    out, ratio, pad = letterbox(image, size, color=0, interpolation=cv2.INTER_LINEAR)
    ex, ey = letterbox_keypoints(np.array([x, y]), ratio, pad)
    g = out[..., 0].astype(np.float64)
    cy, cx = (np.mgrid[0:size, 0:size] * g).reshape(2, -1).sum(1) / g.sum()
    assert abs(cx - ex) < 0.2 and abs(cy - ey) < 0.2


def test_runtime_letterbox_does_not_import_torch():
    code = "import sys, erpose.runtime.letterbox; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
