from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import yaml
from data_factories import make_coco, make_yolo

from erpose.cli.main import main
from erpose.data.coco import read_coco
from erpose.data.convert import coco_to_yolo, source_to_coco_dict, yolo_to_coco
from erpose.data.yolo_pose import read_yolo_pose


def _labelled_by_annotation(path):
    """annotation id -> (image_id, labelled keypoints (L, 3)) for iscrowd 0 persons with keypoints."""
    data = json.loads(open(path).read())
    out = {}
    for a in data["annotations"]:
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        if not a.get("iscrowd", 0) and (k[:, 2] > 0).any():
            out[(a["image_id"], tuple(np.round(k[k[:, 2] > 0][0, :2]).astype(int)))] = k
    return out


def _assert_round_trip(src_json, out_json):
    src, back = _labelled_by_annotation(src_json), _labelled_by_annotation(out_json)
    assert len(src) == len(back) > 0
    for key, k in src.items():
        b = back[key]
        np.testing.assert_array_equal(b[:, 2] > 0, k[:, 2] > 0)
        labelled = k[:, 2] > 0
        assert np.abs(b[labelled, :2] - k[labelled, :2]).max() <= 0.5
        np.testing.assert_array_equal(b[labelled, 2], k[labelled, 2])


def test_coco_yolo_coco_round_trip_generated(tmp_path):
    path = make_coco(tmp_path / "coco")
    data_yaml = coco_to_yolo(path, None, tmp_path / "yolo", split="val")
    cfg = yaml.safe_load(data_yaml.read_text())
    assert cfg["val"] == "images/val" and cfg["kpt_shape"] == [17, 3] and cfg["flip_idx"][1] == 2
    assert (tmp_path / "yolo" / "images" / "val" / "a.jpg").is_symlink()
    lines = (tmp_path / "yolo" / "labels" / "val" / "a.txt").read_text().splitlines()
    # Person 10 with its COCO box; person 11 (no keypoints) as a box with zero keypoints.
    assert lines[0].split()[:5] == ["0", "0.3125", "0.416667", "0.46875", "0.625"]
    assert len(lines) == 2 and lines[1].split()[5:] == ["0"] * 51
    yolo = read_yolo_pose(data_yaml, "val")
    assert (yolo.report.persons, yolo.report.ignore_regions) == (2, 1)  # the crowd region is not written
    out = tmp_path / "back.json"
    yolo_to_coco(data_yaml, "val", out)
    _assert_round_trip(path, out)


def test_second_split_is_added_to_data_yaml(tmp_path):
    path = make_coco(tmp_path / "coco")
    coco_to_yolo(path, None, tmp_path / "yolo", split="val", images="copy")
    data_yaml = coco_to_yolo(path, None, tmp_path / "yolo", split="train", images="none")
    cfg = yaml.safe_load(data_yaml.read_text())
    assert cfg["train"] == "images/train" and cfg["val"] == "images/val"
    assert not (tmp_path / "yolo" / "images" / "val" / "a.jpg").is_symlink()
    assert not (tmp_path / "yolo" / "images" / "train" / "a.jpg").exists()


def test_source_to_coco_dict_is_valid_ground_truth(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    yolo = read_yolo_pose(make_yolo(tmp_path, {"a": "0 0.1 0.2 2 0.3 0.4 1 0 0 0\n",
                                               "b": "0 0.5 0.5 0.2 0.2 0 0 0 0 0 0 0 0 0\n"}), "train")
    gt = source_to_coco_dict(yolo)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert [a["num_keypoints"] for a in anns] == [2, 0] and [a["iscrowd"] for a in anns] == [0, 1]
    assert anns[0]["keypoints"][:6] == [10, 10, 2, 30, 20, 1]
    assert anns[0]["bbox"] == [10.0, 10.0, 20.0, 10.0]  # tight keypoint box (no box in the label)
    assert anns[0]["area"] == pytest.approx(0.53 * 200)
    assert len({a["id"] for a in anns}) == 2 and min(a["id"] for a in anns) >= 1
    assert gt["images"][0] == {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}
    assert len(gt["categories"][0]["keypoints"]) == 3


@pytest.mark.parametrize(
    "rel",
    [
        "tiny_coco/annotations/person_keypoints_val2017.json",
        "tiny_coco/annotations/person_keypoints_train2017.json",
        "mmpose_testdata/coco/test_coco.json",
        "mmpose_testdata/crowdpose/test_crowdpose.json",
    ],
)
def test_real_round_trip_within_half_pixel(real_data, tmp_path, rel):
    path = real_data / rel
    if not path.is_file():
        pytest.skip(f"{path} absent")
    data_yaml = coco_to_yolo(path, None, tmp_path / "yolo", split="s", images="symlink")
    out = tmp_path / "back.json"
    back = yolo_to_coco(data_yaml, "s", out)
    source = read_coco(path)
    assert sorted(s.image_id for s in back.samples) == sorted(s.image_id for s in source.samples)
    _assert_round_trip(path, out)
    if "crowdpose" in rel:
        assert back.skeleton.flip_idx == source.skeleton.flip_idx
        # the COCO GT of a CrowdPose source keeps crowdIndex for the easy/medium/hard split
        assert {im["crowdIndex"] for im in source_to_coco_dict(source)["images"]} == {0.33, 0.39}


def test_cli_convert_both_ways(tmp_path, capsys):
    path = make_coco(tmp_path / "coco")
    assert main(["convert", str(path), "--out", str(tmp_path / "yolo"), "--split", "val"]) == 0
    assert main(["convert", "--from", "yolo", "--to", "coco", str(tmp_path / "yolo" / "data.yaml"),
                 "--split", "val", "--out", str(tmp_path / "gt.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    _assert_round_trip(path, tmp_path / "gt.json")
    assert main(["convert", str(tmp_path / "nope.json"), "--out", str(tmp_path / "y")]) == 2
    assert "nope.json: annotation file not found" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "yolo" / "data.yaml"), "--out", str(tmp_path / "x.txt")]) == 2


def _coco_in_own_root(tmp_path, split="val2017"):
    """A COCO dataset whose images already sit in ROOT/images/SPLIT (ultralytics' COCO layout)."""
    path = make_coco(tmp_path / "made")
    root = tmp_path / "root"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / split).mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "made" / "val" / name).rename(root / "images" / split / name)
    ann = root / "annotations" / f"person_keypoints_{split}.json"
    path.rename(ann)
    return root, ann


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_converting_in_place_keeps_the_source_images(tmp_path, mode):
    root, ann = _coco_in_own_root(tmp_path)
    before = {p.name: p.read_bytes() for p in (root / "images" / "val2017").iterdir()}
    coco_to_yolo(ann, None, root, split="val2017", images=mode)
    coco_to_yolo(ann, None, root, split="val2017", images=mode)  # twice: still the files themselves
    for name, data in before.items():
        image = root / "images" / "val2017" / name
        assert not image.is_symlink() and image.read_bytes() == data
    assert read_yolo_pose(root / "data.yaml", "val").report.images == 2


def test_copy_replaces_a_link_by_a_copy_without_touching_the_source(tmp_path):
    path = make_coco(tmp_path / "coco")
    coco_to_yolo(path, None, tmp_path / "yolo", split="val")
    link = tmp_path / "yolo" / "images" / "val" / "a.jpg"
    assert link.is_symlink()
    coco_to_yolo(path, None, tmp_path / "yolo", split="val", images="copy")
    assert not link.is_symlink() and link.read_bytes() == (tmp_path / "coco" / "val" / "a.jpg").read_bytes()
    assert (tmp_path / "coco" / "val" / "a.jpg").is_file()


@pytest.mark.parametrize("split, key", [("val2017", "val"), ("train2017", "train"), ("test-dev2017", "test"),
                                        ("val", "val"), ("validation", "validation"), ("extra", "extra")])
def test_split_key_drops_the_year(split, key):
    from erpose.data.convert import split_key

    assert split_key(split) == key


def test_cli_coco_2017_names_give_train_and_val_keys_and_round_trip(tmp_path, capsys):
    root, ann = _coco_in_own_root(tmp_path)
    train = ann.with_name("person_keypoints_train2017.json")
    train.write_text(ann.read_text())
    (root / "images" / "train2017").mkdir()
    for image in (root / "images" / "val2017").iterdir():
        (root / "images" / "train2017" / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "yolo"
    assert main(["convert", str(train), "--out", str(out)]) == 0
    assert main(["convert", str(ann), "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "data.yaml").read_text())
    assert cfg["train"] == "images/train2017" and cfg["val"] == "images/val2017"
    assert "val2017" not in cfg and "train2017" not in cfg
    back = tmp_path / "back.json"
    assert main(["convert", str(out / "data.yaml"), "--out", str(back)]) == 0  # default split: val
    _assert_round_trip(ann, back)
    assert read_yolo_pose(out / "data.yaml", "train").report.images == 2


def test_binary_data_yaml_to_merge_into_is_named(tmp_path):
    path = make_coco(tmp_path / "coco")
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "data.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="data.yaml"):
        coco_to_yolo(path, None, tmp_path / "yolo", split="val")
