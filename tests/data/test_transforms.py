from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erpose.config import ConfigError, from_dict
from erpose.data.sample import PoseAnnotations
from erpose.data.transforms import (
    AffineParams,
    AugmentConfig,
    MosaicParams,
    TrainParams,
    affine_annotations,
    affine_matrix,
    apply_hsv,
    apply_train,
    build_mosaic,
    flip_annotations,
    sample_train_params,
    transform_points,
)


def anns_from(kpts, boxes=None, ignore=None, areas=None) -> PoseAnnotations:
    kpts = np.asarray(kpts, np.float32)
    kpts = kpts.reshape(len(kpts), -1, 3) if kpts.size else kpts.reshape(0, 1, 3)
    n = len(kpts)
    return PoseAnnotations(
        keypoints=kpts,
        areas=np.asarray(areas if areas is not None else [100.0] * n, np.float32),
        boxes=np.asarray(boxes if boxes is not None else np.full((n, 4), np.nan), np.float32).reshape(n, 4),
        annotation_ids=np.arange(n, dtype=np.int64),
        ignore_boxes=np.asarray(ignore if ignore is not None else np.zeros((0, 4)), np.float32).reshape(-1, 4),
    )


def test_affine_matrix_hand_computed():
    # 90 deg, zoom 2, centre (10, 5) -> output centre (20, 20) + 10% of 40 px to the right.
    m = affine_matrix(AffineParams(angle=90, scale=2, translate_x=0.1), (10, 5), (40, 40))
    np.testing.assert_allclose(m, [[0, -2, 34], [2, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(transform_points(np.array([11.0, 5.0]), m), [24, 22], atol=1e-12)


def test_affine_annotations_area_boxes_and_visibility():
    m = np.array([[2.0, 0, 1], [0, 3.0, -2]])  # det 6
    anns = anns_from([[[1, 1, 2], [5, 5, 1], [0, 0, 0]], [[30, 1, 2], [0, 0, 0], [0, 0, 0]]],
                     boxes=[[0, 0, 6, 6], [29, 0, 31, 2]], ignore=[[1, 1, 2, 2]], areas=[10, 20])
    out = affine_annotations(anns, m, (20, 20))
    # Person 2's only keypoint lands at x = 61 > 20: it is removed; its box is outside too, so no ignore.
    assert out.num_persons == 1 and out.annotation_ids.tolist() == [0]
    np.testing.assert_allclose(out.keypoints[0], [[3, 1, 2], [11, 13, 1], [0, 0, 0]])
    assert out.areas[0] == pytest.approx(60.0)
    np.testing.assert_allclose(out.boxes[0], [1, 0, 13, 16])  # [1, -2, 13, 16] clipped at 0
    np.testing.assert_allclose(out.ignore_boxes, [[3, 1, 5, 4]])


def test_person_losing_all_keypoints_becomes_ignore_region_when_box_remains():
    anns = anns_from([[[25, 5, 2]]], boxes=[[15, 0, 30, 10]])
    out = affine_annotations(anns, np.eye(2, 3), (20, 20))
    assert out.num_persons == 0
    np.testing.assert_allclose(out.ignore_boxes, [[15, 0, 20, 10]])


def test_rotation_moves_ignore_box_corners():
    m = affine_matrix(AffineParams(angle=90), (10, 10), (20, 20))
    out = affine_annotations(anns_from(np.zeros((0, 1, 3)), ignore=[[2, 4, 6, 8]]), m, (20, 20))
    np.testing.assert_allclose(out.ignore_boxes, [[12, 2, 16, 6]], atol=1e-5)


def test_flip_hand_computed():
    anns = anns_from([[[1, 2, 2], [7, 3, 1], [0, 0, 0]]], boxes=[[1, 2, 7, 3]], ignore=[[0, 0, 2, 2]])
    out = flip_annotations(anns, 10, (1, 0, 2))
    # x -> 9 - x, then left/right swapped; the unlabelled point stays at 0.
    np.testing.assert_allclose(out.keypoints[0], [[2, 3, 1], [8, 2, 2], [0, 0, 0]])
    np.testing.assert_allclose(out.boxes[0], [2, 2, 8, 3])
    np.testing.assert_allclose(out.ignore_boxes[0], [7, 0, 9, 2])


def _blob_image(points, size=(96, 80)):
    """Gaussian blobs (sigma 2 px) centred exactly on sub-pixel points, BGR uint8."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float64)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
    return np.repeat((img * 250).clip(0, 255).astype(np.uint8)[..., None], 3, -1)


def _centroid(image, x, y, r=5):
    g = image[..., 0].astype(np.float64)
    x0, y0 = int(round(x)), int(round(y))
    win = g[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    yy, xx = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return (win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()


@pytest.mark.parametrize("flip", [False, True])
def test_image_and_keypoints_move_together(flip):
    """Pixels (warpAffine + folded flip) and keypoints (kernels) agree to a fraction of a pixel."""
    points = [(30.3, 25.7), (60.0, 50.2)]
    image = _blob_image(points)
    anns = anns_from([[[*points[0], 2], [*points[1], 2]]])
    cfg = AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0)
    params = TrainParams(None, AffineParams(angle=25, scale=1.3, shear_x=5, translate_x=0.05), flip, (0.0, 1.0, 1.0))
    out, moved = apply_train([image], [anns], params, cfg, 128, (1, 0))
    assert out.shape == (128, 128, 3)
    for k in range(2):
        x, y, v = moved.keypoints[0, k]
        assert v == 2
        # with the flip, keypoint k is the flipped image of original point flip_idx[k]
        cx, cy = _centroid(out, x, y)
        assert abs(cx - x) < 0.15 and abs(cy - y) < 0.15


def test_mosaic_places_each_tile_and_keeps_its_pixels():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (30, 40, 3), dtype=np.uint8) for _ in range(4)]
    anns = [anns_from([[[10, 12, 2]]]) for _ in range(4)]
    canvas, out = build_mosaic(images, anns, (50, 45), imgsz=64)
    assert canvas.shape == (128, 128, 3) and out.num_persons == 4
    origins = [(10, 15), (50, 15), (10, 45), (50, 45)]  # tile origin = centre minus/plus the tile size
    for (x0, y0), k in zip(origins, out.keypoints):
        np.testing.assert_allclose(k[0], [x0 + 10, y0 + 12, 2])
    for image, (x0, y0) in zip(images, origins):
        np.testing.assert_array_equal(canvas[y0:y0 + 30, x0:x0 + 40], image)
    assert (canvas[:15] == 114).all()


def test_mosaic_cuts_tiles_at_canvas_edge():
    images = [np.zeros((60, 60, 3), np.uint8)] * 4
    anns = [anns_from([[[5, 5, 2], [55, 55, 2]]], boxes=[[0, 0, 60, 60]])] * 4
    _, out = build_mosaic(images, anns, (32, 32), imgsz=64)
    # Tile 0 starts at (-28, -28): its (5, 5) keypoint falls off the canvas.
    np.testing.assert_allclose(out.keypoints[0], [[0, 0, 0], [27, 27, 2]])
    np.testing.assert_allclose(out.boxes[0], [0, 0, 32, 32])


def test_hsv_identity_and_gains():
    image = np.full((4, 4, 3), (40, 80, 160), np.uint8)
    assert apply_hsv(image, (0.0, 1.0, 1.0)) is image
    darker = apply_hsv(image, (0.0, 1.0, 0.5))
    np.testing.assert_allclose(darker[0, 0], [20, 40, 80], atol=2)
    grey = apply_hsv(image, (0.0, 0.0, 1.0))
    assert np.ptp(grey[0, 0].astype(int)) <= 1  # zero saturation -> grey
    shifted = apply_hsv(np.full((2, 2, 3), (0, 0, 255), np.uint8), (1 / 3, 1.0, 1.0))  # red -> green
    np.testing.assert_allclose(shifted[0, 0], [0, 255, 0], atol=3)


def test_params_are_reproducible_and_mosaic_switch():
    cfg = AugmentConfig(degrees=10, shear=2)
    a = sample_train_params(np.random.default_rng(5), cfg, 640, 100)
    b = sample_train_params(np.random.default_rng(5), cfg, 640, 100)
    assert a == b and isinstance(a.mosaic, MosaicParams)
    assert 320 <= a.mosaic.center[0] <= 960 and all(0 <= p < 100 for p in a.mosaic.partners)
    assert sample_train_params(np.random.default_rng(5), cfg, 640, 100, mosaic_enabled=False).mosaic is None
    flips = [sample_train_params(np.random.default_rng(i), cfg, 64, 1).flip for i in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_augment_config_defaults_and_validation():
    cfg = AugmentConfig()
    assert (cfg.hsv_h, cfg.hsv_s, cfg.hsv_v, cfg.scale, cfg.translate, cfg.fliplr, cfg.mosaic) == (
        0.015, 0.7, 0.4, 0.5, 0.1, 0.5, 1.0)
    assert cfg.close_mosaic == 10 and cfg.degrees == 0 and cfg.shear == 0
    assert from_dict(AugmentConfig, {"fliplr": 0.0}).fliplr == 0.0
    with pytest.raises(ConfigError, match="fliplr"):
        AugmentConfig(fliplr=1.5)
    with pytest.raises(ConfigError, match="scale"):
        AugmentConfig(scale=1.0)


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-180, 180), scale=st.floats(0.5, 1.5), shear_x=st.floats(-10, 10), shear_y=st.floats(-10, 10),
    tx=st.floats(-0.2, 0.2), ty=st.floats(-0.2, 0.2), flip=st.booleans(), seed=st.integers(0, 2**16),
)
def test_affine_and_flip_invert(angle, scale, shear_x, shear_y, tx, ty, flip, seed):
    """Transform, invert, compare: every keypoint still labelled maps back to where it was."""
    rng = np.random.default_rng(seed)
    k, size = 5, 64
    kpts = np.concatenate([rng.uniform(0, size - 1, (3, k, 2)), rng.integers(0, 3, (3, k, 1))], -1)
    kpts[kpts[..., 2] == 0] = 0
    anns = anns_from(kpts, areas=[50.0, 60.0, 70.0])
    anns.annotation_ids = np.array([7, 8, 9])
    flip_idx = (1, 0, 3, 2, 4)
    m = affine_matrix(AffineParams(angle, scale, shear_x, shear_y, tx, ty), (size / 2, size / 2), (size, size))
    out = affine_annotations(anns, m, (size, size))
    if flip:
        out = flip_annotations(out, size, flip_idx)
        out = flip_annotations(out, size, flip_idx)  # a flip is its own inverse
    back = transform_points(out.keypoints[..., :2].astype(np.float64), cv2.invertAffineTransform(m))
    for p, ann_id in enumerate(out.annotation_ids):
        src = kpts[ann_id - 7]
        labelled = out.keypoints[p, :, 2] > 0
        np.testing.assert_allclose(back[p][labelled], src[labelled, :2], atol=1e-3)
        np.testing.assert_array_equal(out.keypoints[p, labelled, 2], src[labelled, 2])
        # A keypoint is dropped exactly when it left the output image.
        fwd = transform_points(src[:, :2], m)
        inside = (fwd >= -0.5).all(1) & (fwd < size - 0.5).all(1) & (src[:, 2] > 0)
        np.testing.assert_array_equal(labelled, inside)
        det = abs(np.linalg.det(m[:, :2]))
        assert out.areas[p] == pytest.approx(anns.areas[ann_id - 7] * det, rel=1e-5)
    assert math.isclose(abs(np.linalg.det(m[:, :2])),
                        scale**2 * abs(1 - math.tan(math.radians(shear_x)) * math.tan(math.radians(shear_y))),
                        rel_tol=1e-9)
