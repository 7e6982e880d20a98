"""PoseTracker life cycle and association on hand-made sequences (K=5 stick people)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from erpose.track import PoseTracker, TrackerConfig

SIGMAS = np.full(5, 0.08)
# head, shoulders, feet: a 30 x 80 px person.
SHAPE = np.array([[0, -40], [-15, -10], [15, -10], [-10, 40], [10, 40]], dtype=np.float64)


def person(cx: float, cy: float, shape: np.ndarray = SHAPE, conf: float = 0.9) -> np.ndarray:
    xy = shape + [cx, cy]
    return np.concatenate([xy, np.full((len(shape), 1), conf)], axis=1)


def frame(*people: np.ndarray, scores=None) -> tuple[np.ndarray, np.ndarray]:
    kpts = np.stack(people) if people else np.zeros((0, 5, 3))
    return np.full(len(people), 0.9) if scores is None else np.asarray(scores, float), kpts


def ids_by_detection(tracked, n: int) -> list[int]:
    """Track id per detection row, 0 for detections not reported."""
    out = [0] * n
    for track_id, row in zip(tracked.track_ids, tracked.detection_index):
        out[int(row)] = int(track_id)
    return out


@pytest.mark.parametrize("motion", ["velocity", "kalman", "static"])
def test_two_walkers_keep_their_ids_whatever_the_detection_order(motion):
    tracker = PoseTracker(SIGMAS, TrackerConfig(motion=motion))
    for t in range(12):
        a, b = person(100 + 5 * t, 100), person(300 - 5 * t, 100)
        swapped = t % 2 == 1
        tracked = tracker.update(*(frame(b, a) if swapped else frame(a, b)))
        ids = ids_by_detection(tracked, 2)
        assert (ids[::-1] if swapped else ids) == [1, 2], t


def test_first_frames_confirm_at_once_later_births_wait_min_hits():
    tracker = PoseTracker(SIGMAS, TrackerConfig(min_hits=3))
    a = person(100, 100)
    for _ in range(3):
        assert tracker.update(*frame(a)).track_ids.tolist() == [1]
    b = person(300, 300)
    reported = [tracker.update(*frame(a, b)).track_ids.tolist() for _ in range(4)]
    assert reported == [[1], [1], [1, 2], [1, 2]]  # b's third consecutive hit confirms it


def test_unconfirmed_track_is_deleted_on_its_first_miss():
    tracker = PoseTracker(SIGMAS)
    a, b = person(100, 100), person(300, 300)
    tracker.update(*frame(a))
    tracker.update(*frame(a))
    tracker.update(*frame(a))
    tracker.update(*frame(a, b))  # b tentative
    assert tracker.num_tracks == 2
    tracker.update(*frame(a))  # b missed once -> gone
    assert tracker.num_tracks == 1
    assert tracker.update(*frame(a, b)).track_ids.tolist() == [1]  # b starts over
    assert tracker.update(*frame(a, b)).track_ids.tolist() == [1, 2]


@pytest.mark.parametrize("gap, same_id", [(3, True), (4, False)])
def test_survival_for_max_age_frames_and_ids_never_reused(gap, same_id):
    tracker = PoseTracker(SIGMAS, TrackerConfig(max_age=3))
    a = person(100, 100)
    for _ in range(3):
        tracker.update(*frame(a))
    for _ in range(gap):
        assert len(tracker.update(*frame())) == 0
    back = tracker.update(*frame(a)).track_ids.tolist()
    if same_id:
        assert back == [1]
    else:
        assert back == []  # a new, unconfirmed track
        assert tracker.update(*frame(a)).track_ids.tolist() == [2]


def test_constant_velocity_bridges_an_occlusion_that_a_static_model_loses():
    def run(motion: str) -> list[list[int]]:
        tracker = PoseTracker(SIGMAS, TrackerConfig(motion=motion))
        seen = []
        for t in range(16):
            visible = not 5 <= t < 10
            people = [person(100 + 5 * t, 100)] if visible else []
            seen.append(tracker.update(*frame(*people)).track_ids.tolist())
        return seen

    assert all(ids == [1] for t, ids in enumerate(run("velocity")) if not 5 <= t < 10)
    assert all(ids == [1] for t, ids in enumerate(run("kalman")) if not 5 <= t < 10)
    static = run("static")
    assert static[10] == [] and static[11] == [2]  # lost: re-born with a new id


def test_second_round_keeps_a_track_through_a_low_score_frame():
    tracker = PoseTracker(SIGMAS)
    a = person(100, 100)
    tracker.update(*frame(a))
    tracker.update(*frame(a))
    tracked = tracker.update(*frame(a, scores=[0.3]))
    assert tracked.track_ids.tolist() == [1]
    assert tracked.scores.tolist() == pytest.approx([0.3])


def test_low_and_middle_scores_never_start_tracks():
    tracker = PoseTracker(SIGMAS)  # high 0.5, new_track 0.6, low 0.1
    for _ in range(4):
        tracked = tracker.update(*frame(person(100, 100), person(300, 100), scores=[0.3, 0.55]))
        assert len(tracked) == 0
    assert tracker.num_tracks == 0


def test_second_round_only_for_tracks_matched_in_the_previous_frame():
    tracker = PoseTracker(SIGMAS)
    a = person(100, 100)
    tracker.update(*frame(a))
    tracker.update(*frame(a))
    tracker.update(*frame())  # lost
    assert len(tracker.update(*frame(a, scores=[0.3]))) == 0  # a lost track ignores low scores
    assert tracker.update(*frame(a)).track_ids.tolist() == [1]


# An upright person and an upside-down one with the same keypoint box: box IoU cannot tell them
# apart, OKS can.
UPSIDE_DOWN = SHAPE * [1, -1]


def _switches(association: str) -> int:
    # Static motion keeps the box tie exact frame after frame (a velocity would break it by chance).
    tracker = PoseTracker(SIGMAS, TrackerConfig(association=association, motion="static"))
    first_id: dict[str, int] = {}
    switches = 0
    for t in range(8):
        people = {"up": person(200, 200), "down": person(200, 200, UPSIDE_DOWN)}
        order = ["down", "up"] if t % 2 else ["up", "down"]
        tracked = tracker.update(*frame(*(people[name] for name in order)))
        for name, track_id in zip(order, ids_by_detection(tracked, 2)):
            switches += first_id.setdefault(name, track_id) != track_id
    return switches


def test_pose_association_separates_people_whose_boxes_coincide():
    assert _switches("pose") == 0
    assert _switches("box") > 0


def test_smoothed_and_raw_both_reported():
    rng = np.random.default_rng(0)
    off_config = replace(TrackerConfig(), smoothing=replace(TrackerConfig().smoothing, enabled=False))
    on, off = PoseTracker(SIGMAS), PoseTracker(SIGMAS, off_config)
    raw_error = smooth_error = 0.0
    for t in range(20):
        a = person(100, 100)
        a[:, :2] += rng.normal(0, 1.0, (5, 2))
        t_on, t_off = on.update(*frame(a)), off.update(*frame(a))
        np.testing.assert_allclose(t_on.keypoints[0], a, rtol=1e-6)
        np.testing.assert_array_equal(t_off.smoothed, t_off.keypoints)
        if t >= 5:
            raw_error += np.abs(a[:, :2] - SHAPE - 100).mean()
            smooth_error += np.abs(t_on.smoothed[0, :, :2] - SHAPE - 100).mean()
    assert smooth_error < 0.7 * raw_error


def test_empty_frames_and_shapes():
    tracker = PoseTracker(SIGMAS)
    tracked = tracker.update(np.zeros(0), np.zeros((0, 5, 3)))
    assert tracked.keypoints.shape == (0, 5, 3) and tracked.track_ids.dtype == np.int64
    tracker.reset()
    assert tracker.next_id == 1 and tracker.num_tracks == 0


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="association"):
        TrackerConfig(association="iou")
    with pytest.raises(ValueError, match="motion"):
        TrackerConfig(motion="bogus")
    with pytest.raises(ValueError, match="low_score"):
        TrackerConfig(low_score=0.7, high_score=0.5)


@pytest.mark.parametrize("motion", ["velocity", "kalman"])
def test_motion_models_learn_a_constant_velocity(motion):
    tracker = PoseTracker(SIGMAS, TrackerConfig(motion=motion))
    for t in range(30):
        tracker.update(*frame(person(100 + 4 * t, 100 - 2 * t)))
    np.testing.assert_allclose(tracker._tracks.velocity[0], np.tile([4.0, -2.0], (5, 1)), atol=0.05)
