"""Fault injection: the bad inputs of issue 14 (items 1-9) run through the ``erpose`` CLI.

Every bad input must end with exit status 2 and one line ``erpose VERB: error: ...`` that names
the file (or the argument) at fault, and no traceback. Inputs that the CLI must *handle* rather
than refuse (an in-place conversion, COCO 2017 split names, an image without people, a truncated
JPEG among good images, one bad annotation among good ones) must succeed and do the right thing.

The CLI runs in-process (``main(argv)``) with tiny images and the untrained ``erpose-n`` at 64 px,
so the whole list takes seconds; one case also runs as a real subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from erpose.cli.main import main
from erpose.skeleton import COCO17_NAMES

SMALL = ["--imgsz", "64", "--no-progress"]


def _person(ann_id: int, image_id: int, **extra) -> dict:
    keypoints = [20, 20, 2, 30, 24, 2, 26, 36, 1] + [0] * 42
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 3,
            "keypoints": keypoints, "area": 300.0, "bbox": [18, 18, 16, 20], **extra}


def _write_coco(root: Path, split: str, annotations: list[dict]) -> Path:
    """ROOT/images/SPLIT/{1,2}.jpg and ROOT/annotations/person_keypoints_SPLIT.json (64 x 48 images)."""
    rng = np.random.default_rng(0)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    images = []
    for image_id in (1, 2):
        cv2.imwrite(str(root / "images" / split / f"{image_id}.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 64, "height": 48})
    path = root / "annotations" / f"person_keypoints_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]}))
    return path


def _write_yolo(root: Path, label: str | None, **yaml_extra) -> Path:
    """One 64 x 48 image with one label line (kpt_shape [3, 3]) and its data.yaml."""
    (root / "images" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "val" / "a.jpg"), np.full((48, 64, 3), 90, np.uint8))
    if label is not None:
        (root / "labels" / "val").mkdir(parents=True)
        (root / "labels" / "val" / "a.txt").write_text(label)
    data = {"path": str(root), "train": "images/val", "val": "images/val", "kpt_shape": [3, 3],
            "flip_idx": [0, 1, 2], "kpt_oks_sigmas": [0.05, 0.05, 0.05], "names": {0: "person"}, **yaml_extra}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root / "data.yaml"


GOOD_LABEL = "0 0.5 0.5 0.4 0.5 0.4 0.4 2 0.5 0.5 2 0.6 0.6 1\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad (and tricky) input, written once."""
    from erpose.models import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("faults")
    f: dict[str, Path] = {"root": root}
    f["coco"] = _write_coco(root / "coco", "val2017", [_person(1, 1), _person(2, 2)])
    f["image"] = root / "coco" / "images" / "val2017" / "1.jpg"
    f["a_file"] = root / "a_file.txt"
    f["a_file"].write_text("a file where a folder is needed")
    f["a_dir"] = root / "a_dir"
    f["a_dir"].mkdir()

    torch.manual_seed(0)
    f["weights"] = save_checkpoint(root / "m.pt", build_model("erpose-n"))
    for name, version in (("version_none", None), ("version_str", "1.0")):
        data = torch.load(f["weights"], weights_only=True)
        data["format_version"] = version
        torch.save(data, root / f"{name}.pt")
        f[name] = root / f"{name}.pt"
    run = root / "stripped_run"
    (run / "weights").mkdir(parents=True)
    from erpose.config import dump_yaml
    from erpose.engine.train_config import TrainConfig

    dump_yaml(TrainConfig(data=str(f["coco"]), project=str(root / "runs")), run / "args.yaml")
    shutil.copy(f["weights"], run / "weights" / "last.pt")  # a best.pt-like file: no training state
    f["stripped_run"] = run

    gt = json.loads(f["coco"].read_text())
    null_gt = json.loads(json.dumps(gt))
    null_gt["annotations"][1]["keypoints"] = None
    (root / "gt_null.json").write_text(json.dumps(null_gt))
    f["gt_null"] = root / "gt_null.json"
    short_first = json.loads(json.dumps(gt))
    short_first["annotations"][0]["keypoints"] = [1, 2, 2] * 5
    (root / "gt_short_first.json").write_text(json.dumps(short_first))
    f["gt_short_first"] = root / "gt_short_first.json"
    good_dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
                 for a in gt["annotations"]]
    f["results"] = root / "results.json"
    f["results"].write_text(json.dumps(good_dets))
    for name, value in (("null", None), ("string", "10 10 2"), ("inf", [float("inf")] + [1.0] * 50)):
        dets = json.loads(json.dumps(good_dets))
        dets[1]["keypoints"] = value
        (root / f"results_{name}.json").write_text(json.dumps(dets))  # json writes inf as Infinity
        f[f"results_{name}"] = root / f"results_{name}.json"

    ok, buf = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8))
    f["truncated_dir"] = root / "truncated"
    f["truncated_dir"].mkdir()
    f["truncated"] = f["truncated_dir"] / "cut.jpg"
    f["truncated"].write_bytes(buf.tobytes()[: len(buf) // 2])
    f["huge"] = root / "huge.png"
    Image = pytest.importorskip("PIL.Image")
    Image.new("L", (12_000, 9_000)).save(f["huge"])  # 108 megapixels, a few kB as PNG

    f["no_labels"] = _write_yolo(root / "no_labels", None)
    f["good_yolo"] = _write_yolo(root / "good_yolo", GOOD_LABEL)
    f["json_dir"] = root / "out.json"
    f["json_dir"].mkdir()
    f["bad_flip"] = _write_yolo(root / "bad_flip", GOOD_LABEL, flip_idx=[0, 0, 1])
    f["bad_sigmas"] = _write_yolo(root / "bad_sigmas", GOOD_LABEL, kpt_oks_sigmas=[0.05, 0.05])
    f["bad_class"] = _write_yolo(root / "bad_class", GOOD_LABEL.replace("0 ", "3 ", 1))
    f["bad_visibility"] = _write_yolo(root / "bad_visibility", GOOD_LABEL.replace(" 1\n", " 7\n"))
    f["binary_yaml"] = root / "binary.yaml"
    f["binary_yaml"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe not yaml")
    return f


def _val_predictions(gt: str, results: str = "results") -> callable:
    return lambda f: ["val", "--predictions", str(f[results]), "--data", str(f[gt])]


#: (issue item, id, argv from the files, text the error line must contain: the file or argument).
REFUSED = [
    # 2: sizes above the documented limits
    ("2", "predict-imgsz", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["image"]),
                                      "--imgsz", "100000", "--project", str(f["root"] / "p")], "imgsz 100000"),
    ("2", "predict-batch", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["image"]),
                                      "--batch", "100000", "--project", str(f["root"] / "p")], "batch 100000"),
    ("2", "predict-max-det", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["image"]),
                                        "--max-det", "10000000", "--project", str(f["root"] / "p")], "max_det"),
    ("2", "val-imgsz", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["coco"]), "--imgsz", "65536",
                                  "--out", str(f["root"] / "v")], "imgsz 65536"),
    ("2", "export-imgsz", lambda f: ["export", "--weights", "erpose-n", "--imgsz", "9024",
                                     "--out", str(f["root"] / "x.onnx")], "imgsz 9024"),
    ("2", "train-imgsz", lambda f: ["train", "--data", str(f["coco"]), "--imgsz", "100000",
                                    "--project", str(f["root"] / "t")], "imgsz 100000"),
    ("2", "image-pixels", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["huge"]), *SMALL,
                                     "--project", str(f["root"] / "p")], "huge.png: 12000x9000 = 108 megapixels"),
    # 4: outputs that cannot be written
    ("4", "export-out-dir", lambda f: ["export", "--weights", "erpose-n", "--imgsz", "64", "--out", str(f["a_dir"])],
     "a_dir"),
    ("4", "export-out-under-file", lambda f: ["export", "--weights", "erpose-n", "--imgsz", "64",
                                              "--out", str(f["a_file"] / "m.onnx")], "a_file.txt"),
    ("4", "predict-project-under-file", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["image"]),
                                                   *SMALL, "--project", str(f["a_file"])], "a_file.txt"),
    ("4", "val-out-under-file", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["coco"]), *SMALL,
                                           "--out", str(f["a_file"])], "a_file.txt"),
    ("4", "val-save-json-dir", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["coco"]), *SMALL,
                                          "--out", str(f["root"] / "v"), "--save-json", str(f["a_dir"])], "a_dir"),
    ("4", "synth-out-under-file", lambda f: ["synth", "--out", str(f["a_file"] / "ds"), "--train", "1", "--val", "1",
                                             "--imgsz", "64", "--workers", "1"], "a_file.txt"),
    ("4", "convert-out-under-file", lambda f: ["convert", str(f["coco"]), "--out", str(f["a_file"] / "yolo")],
     "a_file.txt"),
    ("4", "convert-json-out-dir", lambda f: ["convert", str(f["good_yolo"]), "--out", str(f["json_dir"])],
     "out.json: Is a directory"),
    # 5: malformed checkpoints, resume state, keypoints
    ("5", "format-version-none", lambda f: ["predict", "--weights", str(f["version_none"]), "--source",
                                            str(f["image"]), *SMALL, "--project", str(f["root"] / "p")],
     "version_none.pt"),
    ("5", "format-version-string", lambda f: ["val", "--weights", str(f["version_str"]), "--data", str(f["coco"]),
                                              *SMALL, "--out", str(f["root"] / "v")], "version_str.pt"),
    ("5", "resume-without-state", lambda f: ["train", "--resume", str(f["stripped_run"]), "--no-progress"],
     "last.pt"),
    ("5", "gt-keypoints-null", _val_predictions("gt_null"), "gt_null.json"),
    ("5", "results-keypoints-null", _val_predictions("coco", "results_null"), "results_null.json"),
    ("5", "results-keypoints-string", _val_predictions("coco", "results_string"), "results_string.json"),
    # 6: the bad annotation is blamed, not the good ones after it
    ("6", "gt-short-first-annotation", _val_predictions("gt_short_first"), "annotations[0]"),
    # 8: nothing readable left
    ("8", "only-a-truncated-jpeg", lambda f: ["predict", "--weights", "erpose-n", "--source", str(f["truncated"]),
                                              *SMALL, "--project", str(f["root"] / "p")], "cut.jpg: truncated JPEG"),
    # 9: dataset files with the file (and line) named
    ("9", "missing-labels-folder", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["no_labels"]), *SMALL,
                                              "--out", str(f["root"] / "v")], "labels/val"),
    ("9", "flip-idx-not-permutation", lambda f: ["train", "--data", str(f["bad_flip"]), "--epochs", "1",
                                                 "--project", str(f["root"] / "t"), "--no-progress"], "data.yaml:"),
    ("9", "wrong-number-of-sigmas", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["bad_sigmas"]),
                                               *SMALL, "--out", str(f["root"] / "v")], "data.yaml:"),
    ("9", "binary-data-yaml", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["binary_yaml"]), *SMALL,
                                         "--out", str(f["root"] / "v")], "binary.yaml"),
    ("9", "binary-train-cfg", lambda f: ["train", "--cfg", str(f["binary_yaml"])], "binary.yaml"),
    ("9", "class-id-not-0", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["bad_class"]), *SMALL,
                                       "--out", str(f["root"] / "v")], "bad class id"),
    ("9", "visibility-outside-0-1-2", lambda f: ["val", "--weights", "erpose-n", "--data", str(f["bad_visibility"]),
                                                 *SMALL, "--out", str(f["root"] / "v")], "bad visibility"),
    ("9", "results-infinite-keypoint", _val_predictions("coco", "results_inf"), "results_inf.json"),
]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


@pytest.mark.parametrize("item, argv, needle", [pytest.param(i, a, n, id=f"item{i}-{name}")
                                                for i, name, a, n in REFUSED])
def test_bad_input_is_one_line_naming_the_file(files, capsys, item, argv, needle):
    args = argv(files)
    code, _, err = _run(args, capsys)
    errors = [line for line in err.splitlines() if line.startswith(f"erpose {args[0]}: error:")]
    assert code == 2, err
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert needle in errors[0], errors[0]


def test_bad_label_lines_are_also_named_with_their_line(files, capsys, caplog):
    """A sample skipped for a bad label line is reported (logged) as file:line before the summary error."""
    code, _, _ = _run(["val", "--weights", "erpose-n", "--data", str(files["bad_class"]), *SMALL,
                       "--out", str(files["root"] / "v")], capsys)
    assert code == 2 and "labels/val/a.txt:1: class id 3, expected 0" in caplog.text


def test_read_only_file_system_is_one_line(files, capsys, monkeypatch):
    real_open = open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and str(files["root"] / "ro") in str(file):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only_open)
    out = files["root"] / "ro"
    code, _, err = _run(["val", "--predictions", str(files["results"]), "--data", str(files["coco"]),
                         "--out", str(out)], capsys)
    assert code == 2 and f"erpose val: error: {out / 'metrics.json'}: Read-only file system" in err


# ---- inputs that must be handled, not refused ----------------------------------------------------

def test_item1_converting_in_place_keeps_every_image(files, capsys):
    root = files["root"] / "in_place"
    ann = _write_coco(root, "val2017", [_person(1, 1), _person(2, 2)])
    before = {p: p.read_bytes() for p in (root / "images" / "val2017").iterdir()}
    for extra in ([], ["--copy"]):
        code, _, _ = _run(["convert", str(ann), "--out", str(root), *extra], capsys)
        assert code == 0
        for image, data in before.items():
            assert not image.is_symlink() and image.read_bytes() == data


def test_item3_coco_2017_names_give_val_key_and_round_trip(files, capsys):
    out = files["root"] / "yolo2017"
    assert _run(["convert", str(files["coco"]), "--out", str(out)], capsys)[0] == 0
    assert yaml.safe_load((out / "data.yaml").read_text())["val"] == "images/val2017"
    assert _run(["convert", str(out / "data.yaml"), "--out", str(out / "back.json")], capsys)[0] == 0
    back = json.loads((out / "back.json").read_text())
    assert len(back["images"]) == 2 and len(back["annotations"]) == 2


def test_item6_one_bad_annotation_does_not_stop_validation(files, capsys, caplog):
    root = files["root"] / "one_bad"
    ann = _write_coco(root, "val", [_person(1, 1, keypoints=["x"] * 51), _person(2, 2)])
    code, out, _ = _run(["val", "--weights", "erpose-n", "--data", str(ann), *SMALL, "--out", str(root / "v")],
                        capsys)
    assert code == 0 and "keypoint evaluation: 1 images" in out
    assert f"{ann}: image 1: annotation 1: non-numeric keypoints" in caplog.text


def test_item7_save_txt_for_an_image_without_people(files, capsys):
    project = files["root"] / "txt"
    code, out, _ = _run(["predict", "--weights", str(files["weights"]), "--source", str(files["image"]), *SMALL,
                         "--conf", "1.0", "--save-txt", "--project", str(project)], capsys)
    assert code == 0 and "0 people" in out
    assert (project / "exp" / "labels" / "1.txt").read_text() == ""


def test_item8_truncated_jpeg_among_good_images_is_skipped_and_counted(files, capsys, caplog):
    shutil.copy(files["image"], files["truncated_dir"] / "good.jpg")
    code, out, _ = _run(["predict", "--weights", str(files["weights"]), "--source", str(files["truncated_dir"]),
                           *SMALL, "--project", str(files["root"] / "p8")], capsys)
    assert code == 0 and "1 image(s)" in out and "1 unreadable image(s)/frame(s) skipped" in out
    assert "cut.jpg" in out and "cut.jpg (frame 0): truncated JPEG" in caplog.text


def test_real_process_prints_no_traceback(files):
    proc = subprocess.run(
        [sys.executable, "-m", "erpose.cli.main", "export", "--weights", "erpose-n", "--imgsz", "64",
         "--out", str(files["a_dir"])], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"erpose export: error: {files['a_dir']}: is a folder; give a file name"
