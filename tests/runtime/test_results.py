import numpy as np
import pytest

from erpose.runtime.results import Keypoints, Results, boxes_from_keypoints
from erpose.skeleton import Skeleton

SKEL = Skeleton("tri", ("left_a", "right_a", "top"), (0.05,) * 3, (1, 0, 2), ((0, 1), (0, 2), (1, 2)))


def _results():
    image = np.zeros((100, 200, 3), np.uint8)
    kpts = np.array(
        [
            [[20.0, 30.0, 0.9], [60.0, 80.0, 0.8], [150.0, 5.0, 0.1]],  # third keypoint unconfident
            [[100.0, 40.0, 0.2], [120.0, 60.0, 0.3], [110.0, 50.0, 0.1]],  # nobody confident
        ],
        np.float32,
    )
    return Results(image, "img/42.jpg", np.array([0.9, 0.4]), Keypoints(kpts), SKEL)


def test_keypoint_views_and_len():
    res = _results()
    assert len(res) == 2 and len(res.keypoints) == 2
    assert res.keypoints.xy.shape == (2, 3, 2) and res.keypoints.conf.shape == (2, 3)
    assert res.keypoints.conf[0].tolist() == pytest.approx([0.9, 0.8, 0.1])
    one = res[1]
    assert len(one) == 1 and one.scores.tolist() == pytest.approx([0.4])
    assert len(res[-1]) == 1 and res[-1].scores[0] == pytest.approx(0.4)


def test_boxes_from_confident_keypoints_with_fallback():
    boxes = _results().boxes
    np.testing.assert_allclose(boxes[0], [20, 30, 60, 80])  # (150, 5) excluded: conf 0.1
    np.testing.assert_allclose(boxes[1], [100, 40, 120, 60])  # none pass: all keypoints
    clipped = boxes_from_keypoints(np.array([[[-5, 10, 1], [250, 120, 1]]]), image_shape=(100, 200))
    np.testing.assert_allclose(clipped[0], [0, 10, 200, 100])
    assert boxes_from_keypoints(np.zeros((0, 3, 3))).shape == (0, 4)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="keypoints"):
        Results(np.zeros((4, 4, 3), np.uint8), "x", np.zeros(2), np.zeros((2, 4, 3)), SKEL)


def test_to_coco():
    dets = _results().to_coco(image_id=42)
    assert len(dets) == 2
    d = dets[0]
    assert d["image_id"] == 42 and d["category_id"] == 1
    assert len(d["keypoints"]) == 9
    assert d["keypoints"][:3] == pytest.approx([20.0, 30.0, 0.9])
    assert d["bbox"] == pytest.approx([20.0, 30.0, 40.0, 50.0])  # x, y, w, h
    assert d["score"] == pytest.approx(0.9)
    assert isinstance(d["score"], float) and all(isinstance(v, float) for v in d["keypoints"])


def test_to_yolo_txt_values():
    lines = _results().to_yolo_txt()
    fields = lines[0].split()
    assert len(fields) == 1 + 4 + 9 and fields[0] == "0"
    # box 20..60 x 30..80 in a 200 x 100 image: centre (40/200, 55/100), size (40/200, 50/100)
    assert [float(v) for v in fields[1:5]] == pytest.approx([0.2, 0.55, 0.2, 0.5])
    assert fields[5:8] == ["0.1", "0.3", "0.9"]  # 20/200, 30/100, conf 0.9
    with_score = _results().to_yolo_txt(with_score=True)[1].split()
    assert len(with_score) == 15 and float(with_score[-1]) == pytest.approx(0.4)


def test_plot_changes_pixels_at_keypoints():
    res = _results()
    drawn = res.plot(conf_threshold=0.5)
    assert drawn.shape == (100, 200, 3) and drawn.dtype == np.uint8
    assert drawn[30, 20].any() and drawn[80, 60].any()  # confident keypoints
    assert drawn[55, 40].any()  # middle of the limb between them
    assert not drawn[5, 150].any() and not drawn[50, 110].any()  # unconfident keypoints not drawn
    assert not res.orig_image.any()
    assert (res.plot(show_scores=True) != drawn).any()


def test_to_yolo_txt_and_to_coco_without_people():
    empty = Results(np.zeros((10, 20, 3), np.uint8), "img/0.jpg", np.zeros(0), Keypoints(np.zeros((0, 3, 3))), SKEL)
    assert empty.to_yolo_txt() == [] and empty.to_yolo_txt(with_score=True) == []
    assert empty.to_coco(0) == []
