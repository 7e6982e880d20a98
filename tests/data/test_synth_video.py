"""SynthCrowd video (``erpose synth --video``): determinism, identities, labels, PoseTrack JSON, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from erpose.cli.main import main
from erpose.data.synth import VideoConfig, generate_video, render_video

SPARSE = VideoConfig(frames=40, imgsz=96, preset="sparse", seed=1, shake=2.0)
CROWD = VideoConfig(frames=24, imgsz=96, preset="crowd", seed=2)


@pytest.fixture(scope="module")
def sparse():
    return render_video(SPARSE)


@pytest.fixture(scope="module")
def crowd():
    return render_video(CROWD)


def test_same_seed_same_frames_and_labels_other_seed_or_index_differs(sparse):
    again = render_video(SPARSE)
    assert np.array_equal(again.frames, sparse.frames)
    assert np.array_equal(again.keypoints, sparse.keypoints) and np.array_equal(again.present, sparse.present)
    other_seed = render_video(VideoConfig(frames=40, imgsz=96, preset="sparse", seed=2, shake=2.0))
    other_index = render_video(SPARSE, index=1)
    assert not np.array_equal(other_seed.frames, sparse.frames)
    assert not np.array_equal(other_index.frames, sparse.frames)


def test_streamed_frames_equal_the_kept_ones(sparse):
    got = []
    streamed = render_video(SPARSE, on_frame=got.append)
    assert streamed.frames.shape[0] == 0 and np.array_equal(np.stack(got), sparse.frames)
    assert np.array_equal(streamed.keypoints, sparse.keypoints)
    assert streamed.to_posetrack("a.mp4") == sparse.to_posetrack("a.mp4")


def test_shapes_and_people_enter_leave_and_stay_one_body(sparse):
    f, p, k = sparse.keypoints.shape[:3]
    assert (f, k) == (40, 17) and sparse.frames.shape == (40, 96, 96, 3) and p == 5
    alive = np.isfinite(sparse.true_xy).all(axis=(2, 3))
    assert sparse.present.any(axis=0).sum() >= 3  # most of the cast is seen at some point
    assert (sparse.present <= alive).all()  # labelled only while in the scene
    # An identity is one body moving smoothly: the hip centre of each person moves less than a
    # tenth of its height between consecutive frames (a swapped id would jump).
    hips = sparse.true_xy[:, :, 11:13].mean(axis=2)  # NaN where the person is not in the scene
    both = alive[1:] & alive[:-1]
    step = np.linalg.norm(hips[1:] - hips[:-1], axis=-1)[both]
    assert step.max() < 0.1 * np.nanmin(sparse.stature) + 2 * 3 * SPARSE.shake  # shake moves the camera
    assert step.mean() > 0.1  # people walk


def test_labels_follow_the_true_positions_and_the_frame_edges(sparse, crowd):
    for video in (sparse, crowd):
        kpts, xy = video.keypoints, video.true_xy
        v = kpts[..., 2]
        labelled = v > 0
        assert np.allclose(kpts[..., :2][labelled], xy[labelled], atol=1e-4)
        inside = np.isfinite(xy).all(-1) & (xy >= -0.5).all(-1) & (xy < 95.5).all(-1)
        # A keypoint outside the frame is v = 0 with zero coordinates; inside, a labelled person's
        # keypoints are 1 (hidden) or 2 (seen).
        present = np.broadcast_to(video.present[..., None], v.shape)
        assert (v[~inside] == 0).all() and (kpts[..., :2][~inside] == 0).all()
        assert (v[inside & present] > 0).all()
    # People walk out of (or into) the frame: some keypoints of people in the scene are outside.
    scene = np.isfinite(sparse.true_xy).all(-1)
    outside = scene & ~((sparse.true_xy >= -0.5).all(-1) & (sparse.true_xy < 95.5).all(-1))
    assert outside.any()
    # A person wholly outside the frame is not labelled.
    gone = scene.all(-1) & outside.all(-1)
    assert gone.any() and not sparse.present[gone].any()


def test_crowd_hides_people_behind_each_other(sparse, crowd):
    def hidden_share(video):
        v = video.keypoints[..., 2]
        return (v == 1).sum() / max((v > 0).sum(), 1)

    assert crowd.present.sum(axis=1).mean() > 2 * sparse.present.sum(axis=1).mean()
    assert hidden_share(crowd) > 0.15 and hidden_share(crowd) > hidden_share(sparse)
    # Someone wholly inside the frame is mostly behind others for a while (self-occlusion alone
    # never hides four fifths of a body).
    inside = (np.isfinite(crowd.true_xy).all(-1) & (crowd.true_xy > 0).all(-1) & (crowd.true_xy < 95).all(-1)).all(-1)
    hidden = (crowd.keypoints[..., 2] == 1).mean(-1)
    assert (inside & crowd.present & (hidden >= 0.8)).any()


def test_posetrack_json_layout_and_consistent_ids(sparse):
    doc = sparse.to_posetrack("000000.mp4", first_image_id=1000)
    assert [im["frame_id"] for im in doc["images"]] == list(range(40))
    assert {im["id"] for im in doc["images"]} == set(range(1000, 1040))
    assert all(im["file_name"] == "000000.mp4" and im["vid_id"] == "000000" and im["nframes"] == 40
               for im in doc["images"])
    assert doc["categories"][0]["keypoints"][0] == "nose" and [16, 14] in doc["categories"][0]["skeleton"]
    anns = doc["annotations"]
    assert len({a["id"] for a in anns}) == len(anns) == int(sparse.present.sum())
    for ann in anns:
        t, person = ann["image_id"] - 1000, ann["track_id"]
        assert sparse.present[t, person]
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        assert np.allclose(kp, sparse.keypoints[t, person], atol=0.01)
        assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum()) and len(ann["bbox"]) == 4
    # One annotation per person and frame.
    assert len({(a["image_id"], a["track_id"]) for a in anns}) == len(anns)


def test_cli_writes_videos_and_json(tmp_path, capsys):
    out = tmp_path / "seq"
    argv = ["synth", "--video", "--out", str(out), "--sequences", "2", "--frames", "8", "--imgsz", "64",
            "--preset", "crowd", "--seed", "5", "--fps", "10"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000.json", "000000.mp4", "000001.json", "000001.mp4"]
    capture = cv2.VideoCapture(str(out / "000001.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (64, 64, 3)
    doc = json.loads((out / "000001.json").read_text())
    expected = render_video(VideoConfig(frames=8, imgsz=64, preset="crowd", seed=5, fps=10.0), index=1)
    assert doc == json.loads(json.dumps(expected.to_posetrack("000001.mp4", first_image_id=1_000_000)))
    assert "2 sequences x 8 frames at 64 px, preset crowd" in capsys.readouterr().out
    # The API writes the same labels.
    again = generate_video(tmp_path / "api", sequences=2,
                           config=VideoConfig(frames=8, imgsz=64, preset="crowd", seed=5, fps=10.0))
    assert again[1].read_text() == (out / "000001.json").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    (["--frames", "0"], "frames must be in [1,"),
    (["--preset", "mixed"], "--preset mixed is not a video preset"),
    (["--train", "5"], "--train does not apply to --video"),
    (["--png"], "--png does not apply to --video"),
    (["--shake", "-1"], "shake must be in [0,"),
    (["--imgsz", "32"], "imgsz must be in [64,"),
    (["--sequences", "0"], "sequences must be in [1,"),
    (["--clutter", "2"], "clutter must be in [0, 1]"),
])
def test_cli_bad_video_arguments_one_line_exit_2(tmp_path, capsys, extra, message):
    assert main(["synth", "--video", "--out", str(tmp_path / "o"), "--frames", "2", "--imgsz", "64", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("erpose synth: error:") and message in err and "\n" not in err


def test_cli_video_flags_need_video_and_out_must_be_a_folder(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "o"), "--frames", "3"]) == 2
    assert "--frames does not apply without --video" in capsys.readouterr().err
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["synth", "--video", "--out", str(target), "--frames", "2", "--imgsz", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(target) in err and "\n" not in err
