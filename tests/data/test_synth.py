"""SynthCrowd scenes: labels agree with the generator's own masks; figures, crowd index, writers."""

from __future__ import annotations

import numpy as np
import pytest

from erpose.data.synth import crowd_index, render_scene
from erpose.data.synth.figures import sample_figures
from erpose.data.synth.writers import coco_annotations, yolo_label_text
from erpose.skeleton import COCO17, CROWDPOSE14


def _scenes(density: str, count: int, size: int = 160, skeleton: str = "coco17"):
    return [render_scene(np.random.default_rng([7, i]), size, density, skeleton) for i in range(count)]


@pytest.fixture(scope="module")
def crowd_scenes():
    return _scenes("crowd", 6)


@pytest.mark.parametrize("skeleton", ["coco17", "crowdpose14"])
def test_visible_keypoints_lie_on_their_own_person(skeleton):
    checked = 0
    for scene in _scenes("mixed", 6, skeleton=skeleton):
        masks = scene.person_masks
        k = COCO17.num_keypoints if skeleton == "coco17" else CROWDPOSE14.num_keypoints
        assert scene.keypoints.shape == (len(masks), k, 3)
        n_idx, k_idx = np.nonzero(scene.keypoints[..., 2] == 2)
        px = np.round(scene.keypoints[n_idx, k_idx, :2]).astype(int)
        # Exactly on the person's own visible pixels: the labels were read from these masks.
        assert masks[n_idx, px[:, 1], px[:, 0]].all()
        checked += len(n_idx)
    assert checked > 100


def test_occlusion_flags_agree_with_masks(crowd_scenes):
    hidden_by_others = 0
    for scene in crowd_scenes:
        masks, kp = scene.person_masks, scene.keypoints
        size = scene.image.shape[0]
        v = kp[..., 2]
        # v = 0 exactly for keypoints outside the image, with zeroed coordinates.
        assert (kp[v == 0][:, :2] == 0).all()
        labelled = v > 0
        px = np.round(kp[..., :2]).astype(int)
        assert ((px[labelled] >= 0) & (px[labelled] < size)).all()
        n = np.broadcast_to(np.arange(len(kp))[:, None], v.shape)
        own = masks[n[labelled], px[labelled][:, 1], px[labelled][:, 0]]
        expected = np.where(own & ~scene.self_occluded[labelled], 2, 1)
        np.testing.assert_array_equal(v[labelled], expected)
        # Hidden keypoints are under someone or something else: a nearer person, occluder or distractor.
        hidden_by_others += int((~own).sum())
        assert (scene.owner[px[labelled][~own][:, 1], px[labelled][~own][:, 0]] != n[labelled][~own]).all()
    assert hidden_by_others > 20


def test_boxes_and_areas_come_from_the_visible_masks(crowd_scenes):
    for scene in crowd_scenes:
        masks = scene.person_masks
        np.testing.assert_array_equal(scene.areas, masks.sum((1, 2)))
        assert (scene.areas > 0).all()
        for i in range(min(len(masks), 5)):
            ys, xs = np.nonzero(masks[i])
            np.testing.assert_allclose(scene.boxes[i], [xs.min() - 0.5, ys.min() - 0.5,
                                                        xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])


def test_people_span_small_to_large_and_images_are_not_blank():
    scenes = _scenes("sparse", 12, size=256)
    heights = np.concatenate([s.boxes[:, 3] for s in scenes])
    assert heights.min() < 30 and heights.max() > 0.5 * 256
    for s in scenes[:3]:
        assert s.image.dtype == np.uint8 and s.image.shape == (256, 256, 3) and s.image.std() > 5


def test_yaw_changes_shoulder_width_and_face_visibility():
    fig = sample_figures(np.random.default_rng(0), 2000)
    yaw = np.abs(np.angle(np.exp(1j * fig.yaw)))  # 0 = facing the camera, pi = facing away
    width = np.abs(fig.joints[:, 5, 0] - fig.joints[:, 6, 0]) / fig.lengths["shoulder_w"]
    front, side = yaw < 0.3, np.abs(yaw - np.pi / 2) < 0.2
    assert width[front].mean() > 0.9 and width[side].mean() < 0.35
    nose = fig.face_visible[:, 0]
    assert nose[front].mean() > 0.9 and nose[yaw > np.pi - 0.3].mean() < 0.1
    # Facing the camera, the person's left shoulder is on the image right.
    assert (fig.joints[front, 5, 0] > fig.joints[front, 6, 0]).mean() > 0.95


def test_limb_ratios_vary_within_human_ranges():
    fig = sample_figures(np.random.default_rng(1), 500)
    upper = np.linalg.norm(fig.joints[:, 5] - fig.joints[:, 7], axis=1)
    np.testing.assert_allclose(upper, fig.lengths["upper_arm"], rtol=1e-5)
    assert 0.14 < upper.min() and upper.max() < 0.23 and upper.std() > 0.005
    assert set(np.unique(fig.pose)) == {0, 1, 2, 3, 4}
    # Raised arms: the wrist is above the shoulder for most "arms_raised" figures, rarely otherwise.
    raised = fig.joints[:, 9, 1] > fig.joints[:, 5, 1]
    assert raised[fig.pose == 3].mean() > 0.4 and raised[fig.pose == 0].mean() < 0.05


def test_crowd_index_matches_hand_computation():
    # Person 0: box [0, 0, 10, 10], 2 keypoints; person 1: box [5, 5, 10, 10], 4 keypoints.
    kp = np.zeros((2, 4, 3), np.float32)
    kp[0, :2] = [[1, 1, 2], [8, 8, 2]]  # (8, 8) is inside person 1's box too
    kp[1] = [[6, 6, 2], [9, 9, 1], [14, 14, 2], [30, 30, 0]]  # two inside person 0's box; v=0 never counts
    boxes = np.array([[0, 0, 10, 10], [5, 5, 10, 10]], np.float32)
    # person 0: 2 others inside / 2 own = 1.0; person 1: 1 / 3 -> mean 0.666... -> 0.67
    assert crowd_index(kp, boxes) == 0.67
    assert crowd_index(kp[:1], boxes[:1]) == 0.0


def test_crowd_preset_is_more_crowded_than_sparse(crowd_scenes):
    sparse = np.array([s.crowd_index for s in _scenes("sparse", 12)])
    crowd = np.array([s.crowd_index for s in crowd_scenes + _scenes("crowd", 6, size=128)])
    assert np.median(crowd) > np.median(sparse) + 0.3
    assert crowd.mean() > 0.6 > sparse.mean()


def test_writers_coco_and_yolo():
    kp = np.array([[[10, 20, 2], [0, 0, 0], [30, 40, 1]]], np.float32)
    boxes = np.array([[5.5, 10.5, 20, 40]], np.float32)
    anns = coco_annotations(kp, boxes, np.array([123.0]), image_id=3, first_id=7, skeleton=COCO17)
    assert anns[0]["id"] == 7 and anns[0]["image_id"] == 3 and anns[0]["num_keypoints"] == 2
    assert anns[0]["bbox"] == [5.5, 10.5, 20.0, 40.0] and anns[0]["area"] == 123.0 and anns[0]["iscrowd"] == 0
    line = yolo_label_text(kp, boxes, 100, 200).split()
    assert line[:5] == ["0", "0.155000", "0.152500", "0.200000", "0.200000"]
    assert line[5:] == ["0.100000", "0.100000", "2", "0.000000", "0.000000", "0", "0.300000", "0.200000", "1"]
