import numpy as np
import pytest

from erpose.runtime.draw import (
    CENTRE,
    LEFT,
    LIMB_PALETTE,
    RIGHT,
    draw_poses,
    keypoint_sides,
    limb_colors,
    line_width_for,
)
from erpose.skeleton import COCO17, CROWDPOSE14, Skeleton


def test_sides_from_names_and_flip():
    sides = keypoint_sides(COCO17)
    assert sides[0] == CENTRE  # nose
    assert sides[5] == LEFT and sides[6] == RIGHT  # shoulders
    crowd = keypoint_sides(CROWDPOSE14)
    assert crowd[12] == CENTRE and crowd[13] == CENTRE  # head, neck
    custom = Skeleton("c", ("a", "b", "c"), (0.05,) * 3, (1, 0, 2), ((0, 2), (1, 2), (0, 1)))
    assert keypoint_sides(custom).tolist() == [LEFT, RIGHT, CENTRE]
    colors = limb_colors(custom)
    assert colors[0] in LIMB_PALETTE[LEFT] and colors[1] in LIMB_PALETTE[RIGHT]
    assert colors[2] in LIMB_PALETTE[CENTRE]  # left-to-right limb


def test_coco_left_and_right_arms_differ():
    colors = dict(zip(COCO17.limbs, limb_colors(COCO17)))
    assert colors[(7, 9)] in LIMB_PALETTE[LEFT]  # left elbow - left wrist
    assert colors[(8, 10)] in LIMB_PALETTE[RIGHT]
    assert colors[(5, 6)] in LIMB_PALETTE[CENTRE]  # shoulder line


def test_line_width_scales():
    assert line_width_for((100, 100, 3)) == 1
    assert line_width_for((640, 480, 3)) == 2
    assert line_width_for((1080, 1920, 3)) == 5


def _two_point_skeleton():
    return Skeleton("two", ("left_a", "left_b"), (0.05, 0.05), (0, 1), ((0, 1),))


def test_draws_limb_and_dots_only_where_confident():
    image = np.zeros((100, 100, 3), np.uint8)
    kpts = np.array([[[20, 50, 0.9], [80, 50, 0.9]], [[20, 10, 0.9], [80, 10, 0.1]]], np.float32)
    out = draw_poses(image, kpts, _two_point_skeleton(), conf_threshold=0.5, line_width=2)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert image.sum() == 0  # drawn on a copy
    assert out[50, 50].any()  # middle of the confident limb
    assert out[20, 50].sum() == 0 and out[10, 50].sum() == 0  # limb to a low-confidence keypoint absent
    assert out[10, 20].any()  # the confident dot of person 2
    assert out[10, 80].sum() == 0  # its unconfident dot is not drawn


def test_scores_and_boxes_and_empty():
    image = np.zeros((120, 160, 3), np.uint8)
    skel = _two_point_skeleton()
    assert np.array_equal(draw_poses(image, np.zeros((0, 2, 3)), skel), image)
    kpts = np.array([[[40, 60, 1.0], [120, 90, 1.0]]], np.float32)
    plain = draw_poses(image, kpts, skel)
    boxed = draw_poses(image, kpts, skel, boxes=np.array([[40, 60, 120, 90]]), show_boxes=True)
    assert boxed[75, 40].any() and not plain[75, 40].any()  # left box side
    scored = draw_poses(image, kpts, skel, scores=np.array([0.87]), boxes=np.array([[40, 60, 120, 90]]),
                        show_scores=True)
    assert (scored != plain).any()
    with pytest.raises(ValueError, match="uint8"):
        draw_poses(image.astype(np.float32), kpts, skel)


def test_nonfinite_and_far_keypoints_do_not_crash():
    image = np.zeros((50, 50, 3), np.uint8)
    kpts = np.array([[[np.nan, 5, 1.0], [1e12, -1e12, 1.0]]], np.float32)
    out = draw_poses(image, kpts, _two_point_skeleton())
    assert out.shape == image.shape


def test_drawing_results_and_sources_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "import numpy as np\n"
        "import erpose.runtime.draw, erpose.engine.sources, erpose.engine.predictor\n"
        "from erpose.engine.results import Results\n"
        "from erpose.skeleton import COCO17\n"
        "r = Results(np.zeros((32, 32, 3), np.uint8), 'x', np.ones(1), np.ones((1, 17, 3)), COCO17)\n"
        "assert r.plot().shape == (32, 32, 3) and len(r.to_coco(1)) == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
