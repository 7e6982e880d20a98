from __future__ import annotations

import numpy as np
import pytest
import yaml
from data_factories import make_coco, make_yolo

from erpose.data.errors import DatasetError
from erpose.data.source import load_source
from erpose.data.yolo_pose import label_path_for, read_yolo_pose

# Images are 100 x 50 unless a test says otherwise; kpt_shape [3, 3].
BOXED = "0 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 0.4 1 0 0 0\n"
NO_BOX = "0 0.1 0.2 2 0.3 0.4 2 0.5 0.6 0\n"


def test_label_with_box(tmp_path):
    source = read_yolo_pose(make_yolo(tmp_path, {"a": BOXED}), "train")
    anns = source.samples[0].annotations
    np.testing.assert_allclose(anns.keypoints[0], [[10, 10, 2], [30, 20, 1], [0, 0, 0]])
    np.testing.assert_allclose(anns.boxes[0], [40, 15, 60, 35])
    # Area: 0.53 x box area in pixels (20 x 20).
    assert anns.areas[0] == pytest.approx(0.53 * 400)
    assert anns.annotation_ids.tolist() == [1]
    assert (source.samples[0].width, source.samples[0].height) == (100, 50)
    assert source.annotation_file is None


def test_label_without_box_uses_keypoint_extent(tmp_path):
    source = read_yolo_pose(make_yolo(tmp_path, {"a": NO_BOX}), "train")
    anns = source.samples[0].annotations
    np.testing.assert_allclose(anns.keypoints[0], [[10, 10, 2], [30, 20, 2], [0, 0, 0]])
    assert np.isnan(anns.boxes[0]).all()
    assert anns.areas[0] == pytest.approx(0.53 * 20 * 10)  # tight box of the labelled keypoints


def test_two_value_keypoints(tmp_path):
    text = "0 0.5 0.5 0.2 0.4 0.1 0.2 0 0 0.3 0.4\n0 0.2 0.2 0.4 0.6 0 0\n"
    source = read_yolo_pose(make_yolo(tmp_path, {"a": text}, kpt_shape=(3, 2)), "train")
    kpts = source.samples[0].annotations.keypoints
    # (0, 0) is unlabelled; every other point visible.
    np.testing.assert_allclose(kpts[0], [[10, 10, 2], [0, 0, 0], [30, 20, 2]])
    np.testing.assert_allclose(kpts[1], [[20, 10, 2], [40, 30, 2], [0, 0, 0]])


def test_box_without_keypoints_is_an_ignore_region_and_missing_label_is_background(tmp_path):
    text = BOXED + "0 0.5 0.5 0.2 0.2 0 0 0 0 0 0 0 0 0\n"
    source = read_yolo_pose(make_yolo(tmp_path, {"a": text, "b": None}), "train")
    a, b = source.samples
    assert a.annotations.num_persons == 1
    np.testing.assert_allclose(a.annotations.ignore_boxes, [[40, 20, 60, 30]])
    assert b.annotations.num_persons == 0 and source.report.problems == []


def test_numeric_stems_are_image_ids_else_sorted_positions(tmp_path):
    source = read_yolo_pose(make_yolo(tmp_path / "n", {"000000000042": BOXED, "7": NO_BOX}), "train")
    assert sorted(s.image_id for s in source.samples) == [7, 42]
    source = read_yolo_pose(make_yolo(tmp_path / "s", {"b": BOXED, "a": NO_BOX, "c": ""}), "train")
    assert [(s.image_id, s.image_path.split("/")[-1]) for s in source.samples] == [(1, "a.jpg"), (2, "b.jpg"),
                                                                                  (3, "c.jpg")]
    assert [s.annotations.annotation_ids.tolist() for s in source.samples] == [[1], [2], []]


@pytest.mark.parametrize(
    "line, kind, text",
    [
        ("0 0.5 0.5 0.2\n", "wrong value count", "4 values, expected 14 (with box) or 10 (without)"),
        ("0 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 abc 1 0 0 0\n", "non-numeric value", "'abc'"),
        ("0 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 nan 1 0 0 0\n", "NaN value", "NaN"),
        ("0 0.5 0.5 -0.2 0.4 0.1 0.2 2 0.3 0.4 1 0 0 0\n", "bad box size", "positive"),
    ],
)
def test_bad_label_line_skips_the_sample_naming_file_and_line(tmp_path, line, kind, text):
    source = read_yolo_pose(make_yolo(tmp_path, {"good": BOXED, "bad": BOXED + line}), "train")
    assert [s.image_path.split("/")[-1] for s in source.samples] == ["good.jpg"]
    (problem,) = source.report.problems
    assert problem.kind == kind and text in problem.message
    assert problem.where.endswith("labels/train/bad.txt:2")
    assert source.report.skipped == 1


def test_keypoint_outside_image_becomes_unlabelled(tmp_path):
    text = "0 0.5 0.5 0.2 0.4 0.1 0.2 2 1.3 0.4 1 0.5 -0.2 2\n"
    source = read_yolo_pose(make_yolo(tmp_path, {"a": text}), "train")
    np.testing.assert_allclose(source.samples[0].annotations.keypoints[0], [[10, 10, 2], [0, 0, 0], [0, 0, 0]])
    (problem,) = source.report.problems
    assert not problem.skipped and problem.where.endswith("a.txt:1") and "2 keypoint(s)" in problem.message


def test_keypoint_in_the_border_half_pixel_is_kept(tmp_path):
    # Pixel-centre coordinates: a 100 px wide image spans x in [-0.5, 99.5], so x = -0.3 px
    # (normalised -0.003) and x = 99.4 px are inside.
    text = "0 0.5 0.5 0.2 0.4 -0.003 0.2 2 0.994 0.4 1 0.5 0.5 2\n"
    source = read_yolo_pose(make_yolo(tmp_path, {"a": text}), "train")
    assert not source.report.problems
    np.testing.assert_allclose(source.samples[0].annotations.keypoints[0, :2, 0], [-0.3, 99.4], atol=1e-4)


def test_unreadable_image_is_skipped(tmp_path):
    path = make_yolo(tmp_path, {"a": BOXED, "b": BOXED})
    (tmp_path / "images" / "train" / "b.jpg").write_bytes(b"not an image")
    source = read_yolo_pose(path, "train")
    assert len(source) == 1 and source.report.problems[0].kind == "unreadable image"
    assert "b.jpg" in source.report.problems[0].where


def test_no_usable_sample_raises_naming_path(tmp_path):
    path = make_yolo(tmp_path, {"a": "0 1 2\n"})
    with pytest.raises(DatasetError, match=r"data.yaml: no usable sample \(wrong value count x1\)"):
        read_yolo_pose(path, "train")
    (tmp_path / "images" / "train" / "a.jpg").unlink()
    with pytest.raises(DatasetError, match="data.yaml: no usable sample"):
        read_yolo_pose(path, "train")


@pytest.mark.parametrize(
    "drop, match",
    [("kpt_shape", "missing key 'kpt_shape'"), ("train", "missing key 'train'")],
)
def test_yaml_missing_key_raises_naming_it(tmp_path, drop, match):
    path = make_yolo(tmp_path, {"a": BOXED})
    data = yaml.safe_load(path.read_text())
    del data[drop]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DatasetError, match=match) as exc:
        read_yolo_pose(path, "train")
    assert str(path) in str(exc.value)


def test_yaml_bad_values(tmp_path):
    path = make_yolo(tmp_path, {"a": BOXED}, kpt_shape=(3, 4))
    with pytest.raises(DatasetError, match=r"kpt_shape must be \[K, 2\] or \[K, 3\]"):
        read_yolo_pose(path, "train")
    path = make_yolo(tmp_path, {"a": BOXED}, flip_idx=[0, 0, 1])
    with pytest.raises(ValueError, match="not a permutation"):
        read_yolo_pose(path, "train")
    path = make_yolo(tmp_path, {"a": BOXED}, train="images/nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_yolo_pose(path, "train")


def test_skeleton_from_yaml_fields(tmp_path):
    path = make_yolo(tmp_path, {"a": BOXED}, flip_idx=[1, 0, 2], kpt_oks_sigmas=[0.1, 0.1, 0.2],
                     kpt_names={0: ["l", "r", "c"]})
    skeleton = read_yolo_pose(path, "train").skeleton
    assert skeleton.flip_idx == (1, 0, 2) and skeleton.sigmas == (0.1, 0.1, 0.2)
    assert skeleton.keypoint_names == ("l", "r", "c")


def test_image_list_txt(tmp_path):
    path = make_yolo(tmp_path, {"a": BOXED, "b": NO_BOX})
    (tmp_path / "train.txt").write_text("images/train/b.jpg\n")
    data = yaml.safe_load(path.read_text())
    data["train"] = "train.txt"
    path.write_text(yaml.safe_dump(data))
    source = read_yolo_pose(path, "train")
    assert [s.image_path.split("/")[-1] for s in source.samples] == ["b.jpg"]


def test_label_path_swaps_last_images_folder(tmp_path):
    assert str(label_path_for(tmp_path / "images" / "x" / "images" / "train" / "a.png")) == str(
        tmp_path / "images" / "x" / "labels" / "train" / "a.txt")


def test_load_source_dispatch(tmp_path):
    source = load_source(str(make_yolo(tmp_path / "y", {"a": BOXED})), "val")
    assert len(source) == 1
    assert len(load_source(str(make_coco(tmp_path / "c")), "val")) == 2
    with pytest.raises(FileNotFoundError, match="no-such-preset"):
        load_source("no-such-preset", "train")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DatasetError, match="expected a .yaml data file or a .json"):
        load_source(str(tmp_path / "x.txt"), "train")


def test_missing_sigmas_warn_and_default(tmp_path):
    path = make_yolo(tmp_path, {"a": BOXED}, kpt_oks_sigmas=None)
    with pytest.warns(UserWarning, match="uniform sigma of 0.05"):
        skeleton = read_yolo_pose(path, "train").skeleton
    assert skeleton.sigmas == (0.05, 0.05, 0.05)


def test_load_source_synth_preset(tmp_path, monkeypatch):
    synth = pytest.importorskip("erpose.data.synth")
    if "tiny" not in getattr(synth, "PRESETS", {}):
        pytest.skip("no 'tiny' SynthCrowd preset")
    monkeypatch.setenv("ERPOSE_CACHE", str(tmp_path))
    source = load_source("tiny", "val")
    assert len(source) > 0 and source.name == "tiny/val"
    assert source.annotation_file.endswith("val.json") and source.report.persons > 0


@pytest.mark.parametrize(
    "line, kind, text",
    [
        ("1 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 0.4 1 0 0 0\n", "bad class id", "class id 1, expected 0"),
        ("0 0.5 0.5 0.2 0.4 0.1 0.2 3 0.3 0.4 1 0 0 0\n", "bad visibility", "visibility 3 outside {0, 1, 2}"),
        ("0 0.5 0.5 0.2 0.4 0.1 0.2 2 0.3 0.4 0.5 0 0 -1\n", "bad visibility", "visibility -1, 0.5 outside"),
    ],
)
def test_class_id_and_visibility_are_checked_naming_file_and_line(tmp_path, line, kind, text):
    source = read_yolo_pose(make_yolo(tmp_path, {"good": BOXED, "bad": BOXED + line}), "train")
    assert [s.image_path.split("/")[-1] for s in source.samples] == ["good.jpg"]
    (problem,) = source.report.problems
    assert problem.kind == kind and text in problem.message
    assert problem.where.endswith("labels/train/bad.txt:2") and source.report.skipped == 1


def test_missing_labels_folder_is_an_error_naming_it(tmp_path):
    import shutil

    path = make_yolo(tmp_path, {"a": BOXED, "b": NO_BOX})
    shutil.rmtree(tmp_path / "labels")
    with pytest.raises(DatasetError, match=r"data\.yaml: split 'val': labels folder .*labels/train not found"):
        read_yolo_pose(path, "val")


def test_no_person_at_all_is_a_warning(tmp_path, caplog):
    import logging

    path = make_yolo(tmp_path, {"a": "", "b": ""})
    with caplog.at_level(logging.WARNING):
        source = read_yolo_pose(path, "train")
    assert source.report.persons == 0 and "no labelled person" in caplog.text


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"flip_idx": [0, 0, 1]}, r"data\.yaml:\d+: flip_idx \[0, 0, 1\] is not a permutation"),
        ({"flip_idx": [1, 2, 0]}, r"data\.yaml:\d+: flip_idx \[1, 2, 0\] is not its own inverse"),
        ({"kpt_oks_sigmas": [0.1, 0.1]}, r"data\.yaml:\d+: 2 sigmas for 3 keypoints"),
    ],
)
def test_skeleton_errors_name_the_yaml_file_and_line(tmp_path, extra, match):
    path = make_yolo(tmp_path, {"a": BOXED}, **extra)
    with pytest.raises(DatasetError, match=match) as exc:
        read_yolo_pose(path, "train")
    key = next(iter(extra))
    line = int(str(exc.value).split(":")[1])
    assert path.read_text().splitlines()[line - 1].startswith(f"{key}:")


def test_binary_yaml_names_the_file(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    with pytest.raises(DatasetError, match=r"data\.yaml: not a text file"):
        read_yolo_pose(path, "train")
