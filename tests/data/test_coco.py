from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np
import pytest
from data_factories import make_coco, person, write_image

from erpose.data.coco import flip_idx_from_names, read_coco, read_crowdpose
from erpose.data.errors import DatasetError
from erpose.skeleton import COCO17, CROWDPOSE14, CROWDPOSE14_NAMES


def test_reads_persons_and_ignore_regions(tmp_path):
    path = make_coco(tmp_path)
    source = read_coco(path)
    assert source.image_dir == str(tmp_path / "val")  # inferred from the COCO layout
    assert source.skeleton is COCO17 and source.annotation_file == str(path)
    assert (source.report.images, source.report.persons, source.report.ignore_regions) == (2, 2, 2)
    a, b = source.samples
    assert a.image_id == 1 and (a.width, a.height) == (64, 48)
    np.testing.assert_array_equal(a.annotations.keypoints[0, :3], [[10, 12, 2], [20, 22, 1], [30, 32, 2]])
    assert (a.annotations.keypoints[0, 3:] == 0).all()
    np.testing.assert_array_equal(a.annotations.boxes[0], [5, 5, 35, 35])  # xywh -> xyxy
    np.testing.assert_array_equal(a.annotations.annotation_ids, [10])
    np.testing.assert_array_equal(a.annotations.ignore_boxes, [[40, 5, 50, 15]])
    assert b.annotations.areas[0] == 100.0
    np.testing.assert_array_equal(b.extra["ignore_iscrowd"], [True])
    assert a.extra["ignore_iscrowd"].tolist() == [False]


def test_images_next_to_json_and_explicit_dir(tmp_path):
    path = make_coco(tmp_path)
    moved = tmp_path / "elsewhere"
    (tmp_path / "val").rename(moved)
    with pytest.raises(FileNotFoundError, match="cannot find the image folder"):
        read_coco(path)
    assert len(read_coco(path, image_dir=moved)) == 2


def test_missing_image_is_skipped_and_reported(tmp_path, caplog):
    path = make_coco(tmp_path)
    (tmp_path / "val" / "b.jpg").unlink()
    with caplog.at_level(logging.WARNING, "erpose.data"):
        source = read_coco(path)
    assert [s.image_id for s in source.samples] == [1]
    assert source.report.skipped == 1 and source.report.skipped_reasons == {"missing image": 1}
    assert "b.jpg" in caplog.text and "1 samples skipped" in caplog.text


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"keypoints": [1, 2, 2] * 5}, "15 keypoint values, expected 51"),
        ({"keypoints": ["a"] * 51}, "non-numeric keypoints"),
        ({"bbox": [1, 2, float("nan"), 4]}, "bad bbox"),
        ({"bbox": [1, 2, -3, 4]}, "bad bbox"),
        ({"area": -1.0}, "bad area"),
        ({"keypoints": [float("nan")] * 51}, "NaN"),
    ],
)
def test_bad_annotation_skips_its_image(tmp_path, bad, reason):
    anns = [person(1, 1, [(10, 10, 2)]), {**person(2, 2, [(10, 10, 2)]), **bad}]
    source = read_coco(make_coco(tmp_path, anns))
    assert [s.image_id for s in source.samples] == [1]
    problem = source.report.problems[0]
    assert reason in problem.message and "image 2" in problem.where and str(tmp_path) in problem.where


def test_bad_image_size_is_skipped(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "b.jpg", "width": -5, "height": 48}]
    write_image(tmp_path / "val" / "a.jpg", 64, 48)
    write_image(tmp_path / "val" / "b.jpg", 10, 10)
    source = read_coco(make_coco(tmp_path, [person(1, 1, [(1, 1, 2)])], images, write_images=False))
    assert [s.image_id for s in source.samples] == [1]
    assert "bad image size" in source.report.problems[0].message


def test_keypoints_outside_image_become_unlabelled(tmp_path):
    anns = [person(1, 1, [(10, 10, 2), (70, 10, 2), (10, -3, 1)])]  # image is 64 x 48
    source = read_coco(make_coco(tmp_path, anns))
    kpts = source.samples[0].annotations.keypoints[0]
    np.testing.assert_array_equal(kpts[:3], [[10, 10, 2], [0, 0, 0], [0, 0, 0]])
    problem = source.report.problems[0]
    assert problem.kind == "keypoint outside image" and not problem.skipped and "2 keypoint(s)" in problem.message


def test_empty_dataset_raises_naming_path(tmp_path):
    path = make_coco(tmp_path, annotations=[], images=[], write_images=False)
    with pytest.raises(DatasetError, match="person_keypoints_val.json: no usable sample"):
        read_coco(path, image_dir=tmp_path)


def test_all_images_missing_raises(tmp_path):
    path = make_coco(tmp_path, write_images=False)
    (tmp_path / "val").mkdir()
    with pytest.raises((DatasetError, FileNotFoundError), match="person_keypoints_val.json"):
        read_coco(path, image_dir=tmp_path / "val")


def test_bad_json_and_missing_keys(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="x.json: not valid JSON"):
        read_coco(path)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="missing key 'annotations'"):
        read_coco(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_coco(tmp_path / "nope.json")


def test_crowdpose_detected_with_crowd_index_and_box_area(tmp_path):
    images = [{"id": 7, "file_name": "c.jpg", "width": 64, "height": 48, "crowdIndex": 0.42}]
    ann = {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
           "keypoints": [10, 10, 2] + [0] * 39, "bbox": [0, 0, 10, 20]}
    path = make_coco(tmp_path, [ann], images)
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"] = list(CROWDPOSE14_NAMES)
    path.write_text(json.dumps(data))
    for source in (read_coco(path), read_crowdpose(path)):
        assert source.skeleton is CROWDPOSE14
        assert source.samples[0].crowd_index == pytest.approx(0.42)
        # No 'area' in CrowdPose: crowdposetools' 0.53 * box area.
        assert source.samples[0].annotations.areas[0] == pytest.approx(0.53 * 200)


def test_flip_idx_from_names():
    assert flip_idx_from_names(["nose", "left_eye", "right_eye", "Left Hand", "Right Hand"]) == [0, 2, 1, 4, 3]


# ---------------------------------------------------------------------------------------------
# real files: counts equal what pycocotools reports


def _pycocotools_counts(path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds())
    persons = sum(1 for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0)
    return len(coco.getImgIds()), persons, len(anns) - persons


@pytest.mark.parametrize(
    "rel",
    [
        "tiny_coco/annotations/person_keypoints_val2017.json",
        "tiny_coco/annotations/person_keypoints_train2017.json",
        "mmpose_testdata/coco/test_coco.json",
        "mmpose_testdata/crowdpose/test_crowdpose.json",
    ],
)
def test_real_counts_match_pycocotools(real_data, rel):
    path = real_data / rel
    if not path.is_file():
        pytest.skip(f"{path} absent")
    source = read_coco(path)
    report = source.report
    assert (report.images, report.persons, report.ignore_regions) == _pycocotools_counts(path)
    assert report.problems == []
    if "crowdpose" in rel:
        assert source.skeleton is CROWDPOSE14
        assert sorted(s.crowd_index for s in source.samples) == [0.33, 0.39]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"keypoints": None}, "'keypoints' is null"),
        ({"keypoints": "1 2 2"}, "'keypoints' is \"1 2 2\""),
        ({"keypoints": [10, 10, 3] + [0] * 48}, "visibility values [3.0] outside {0, 1, 2}"),
        ({"keypoints": [10, 10, -1] + [0] * 48}, "visibility values [-1.0]"),
        ({"keypoints": [10, 10, 0.5] + [0] * 48}, "visibility values [0.5]"),
    ],
)
def test_null_keypoints_and_bad_visibility_skip_their_image(tmp_path, bad, reason):
    anns = [person(1, 1, [(10, 10, 2)]), {**person(2, 2, [(10, 10, 2)]), **bad}]
    source = read_coco(make_coco(tmp_path, anns))
    assert [s.image_id for s in source.samples] == [1]
    (problem,) = source.report.problems
    assert reason in problem.message and "image 2" in problem.where and str(tmp_path) in problem.where


def test_duplicate_annotation_id_is_reported_and_its_image_skipped(tmp_path):
    anns = [person(7, 1, [(10, 10, 2)]), person(7, 2, [(12, 12, 2)])]
    source = read_coco(make_coco(tmp_path, anns))
    assert [s.image_id for s in source.samples] == [1]
    (problem,) = source.report.problems
    assert problem.kind == "duplicate annotation id" and "annotations[1] (id 7)" in problem.where
    assert "already used by annotations[0]" in problem.message and source.report.skipped == 1


def test_malformed_entries_are_reported_not_raised(tmp_path):
    anns = [person(1, 1, [(10, 10, 2)]), "not an object", {**person(2, 2, [(5, 5, 2)]), "image_id": [2]}]
    source = read_coco(make_coco(tmp_path, anns))
    assert [s.image_id for s in source.samples] == [1, 2]
    kinds = [p.kind for p in source.report.problems]
    assert kinds == ["bad annotation", "unknown image"]
    assert all(str(tmp_path) in p.where for p in source.report.problems)
