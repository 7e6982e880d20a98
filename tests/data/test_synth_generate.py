"""SynthCrowd datasets on disk: determinism, readers, atomic output, presets, CLI errors, --paste-from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from erpose.cli.main import main
from erpose.data.coco import read_coco
from erpose.data.synth import PRESETS, ensure_preset, generate, render_scene
from erpose.data.synth import generator as synth_generator
from erpose.data.synth.paste import PasteBank
from erpose.data.yolo_pose import read_yolo_pose

TINY = {"train": 6, "val": 3, "imgsz": 128}


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "data.yaml":  # holds the absolute root, which differs between folders
                data = b"\n".join(line for line in data.splitlines() if not line.startswith(b"path:"))
            out[str(p.relative_to(root))] = data
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "ds", seed=3, workers=1, **TINY)


def test_same_seed_same_bytes_whatever_the_workers(dataset, tmp_path):
    again = generate(tmp_path / "two_workers", seed=3, workers=2, **TINY)
    a, b = _files(dataset), _files(again)
    assert len(a) == 2 * (TINY["train"] + TINY["val"]) + 4
    assert a == b
    other = _files(generate(tmp_path / "other_seed", seed=4, workers=1, **TINY))
    assert other["images/train/000000.jpg"] != a["images/train/000000.jpg"]


def test_layout_and_data_yaml(dataset):
    import yaml

    doc = yaml.safe_load((dataset / "data.yaml").read_text())
    assert doc["path"] == str(dataset) and doc["train"] == "images/train" and doc["val"] == "images/val"
    assert doc["kpt_shape"] == [17, 3] and doc["flip_idx"][1] == 2 and doc["names"] == {0: "person"}
    assert len(doc["kpt_oks_sigmas"]) == 17 and doc["kpt_names"][0][0] == "nose"
    assert len(list((dataset / "images" / "train").glob("*.jpg"))) == TINY["train"]
    assert len(list((dataset / "labels" / "val").glob("*.txt"))) == TINY["val"]


def test_annotations_pass_pycocotools_and_the_project_readers(dataset):
    from pycocotools.coco import COCO

    for split in ("train", "val"):
        path = dataset / "annotations" / f"{split}.json"
        coco = COCO(str(path))
        doc = json.loads(path.read_text())
        assert len(coco.getImgIds()) == TINY[split]
        assert doc["categories"][0]["keypoints"][0] == "nose" and len(doc["categories"][0]["skeleton"]) == 19
        assert all("crowdIndex" in im for im in doc["images"])
        for ann in doc["annotations"]:
            kp = np.array(ann["keypoints"]).reshape(17, 3)
            assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum()) and ann["iscrowd"] == 0
            assert ann["area"] > 0 and ann["bbox"][2] > 0
        source = read_coco(path, dataset / "images" / split)
        assert len(source) == TINY[split] and not source.report.skipped
        persons = sum(s.annotations.num_persons + len(s.annotations.ignore_boxes) for s in source.samples)
        assert persons == len(doc["annotations"])
        yolo = read_yolo_pose(dataset / "data.yaml", split)
        assert sum(s.annotations.num_persons for s in yolo.samples) >= sum(
            s.annotations.num_persons for s in source.samples)
        # The YOLO labels carry the same keypoints as the COCO JSON (normalised, 6 decimals).
        first = source.samples[0].annotations.keypoints
        ykp = yolo.samples[0].annotations.keypoints
        if len(first):
            np.testing.assert_allclose(ykp[: len(first)], first, atol=0.01)


def test_crowdpose14_option(tmp_path):
    root = generate(tmp_path / "cp", train=2, val=1, imgsz=128, skeleton="crowdpose14")
    doc = json.loads((root / "annotations" / "train.json").read_text())
    assert doc["categories"][0]["keypoints"][-2:] == ["head", "neck"]
    kp = np.array(doc["annotations"][0]["keypoints"]).reshape(14, 3)
    # CrowdPose counts only the 12 body joints in num_keypoints.
    assert doc["annotations"][0]["num_keypoints"] == int((kp[:12, 2] > 0).sum())


def test_existing_dataset_is_replaced_whole_or_not_at_all(dataset, tmp_path, monkeypatch):
    out = generate(tmp_path / "ds", train=2, val=1, imgsz=96, seed=1)
    before = _files(out)

    def boom(task):
        if task[1] == 1:
            raise RuntimeError("disk full")
        return real(task)

    real = synth_generator._render_one
    monkeypatch.setattr(synth_generator, "_render_one", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(out, train=3, val=1, imgsz=96, seed=2)
    monkeypatch.undo()
    assert _files(out) == before  # untouched by the failed run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary folder left behind
    generate(out, train=3, val=1, imgsz=96, seed=2)
    assert len(list((out / "images" / "train").iterdir())) == 3
    foreign = tmp_path / "not_a_dataset"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a SynthCrowd dataset"):
        generate(foreign, train=1, val=1, imgsz=96)
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("kwargs, message", [
    ({"train": -1}, "non-negative"),
    ({"imgsz": 48}, "out of range"),
    ({"preset": "dense"}, "sparse, mixed, crowd"),
    ({"skeleton": "mpii"}, "coco17"),
    ({"train": 0, "val": 0}, "nothing to generate"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"train": 1, "val": 1, "imgsz": 96, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, message", [
    (["--train", "-3"], "--train must be a non-negative"),
    (["--imgsz", "32"], "--imgsz 32 out of range"),
    (["--preset", "dense"], "unknown --preset 'dense'"),
    (["--paste-from", "/nonexistent.json", "/tmp"], "not found"),
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert main(["synth", "--out", str(tmp_path / "o"), "--train", "1", "--val", "1", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_generates_and_summarises(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "o"), "--name", "tiny", "--train", "4", "--val", "2",
                 "--preset", "crowd", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 images (4 train / 2 val) at 160 px, preset crowd" in out and "crowd index mean" in out
    assert len(list((tmp_path / "o" / "images" / "train").iterdir())) == 4


def test_cli_stature_and_max_people_and_preset_inheritance(tmp_path, monkeypatch):
    import dataclasses

    assert main(["synth", "--out", str(tmp_path / "o"), "--train", "6", "--val", "0", "--imgsz", "96",
                 "--preset", "crowd", "--stature", "0.5", "0.9", "--max-people", "2", "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "o" / "synth.json").read_text())
    assert meta["stature"] == [0.5, 0.9] and meta["max_people"] == 2
    # A named preset passes on its own bounds; explicit flags win over them.
    monkeypatch.setitem(PRESETS, "tiny-big", dataclasses.replace(PRESETS["tiny"], stature=(0.4, 0.8), max_people=3))
    assert main(["synth", "--out", str(tmp_path / "p"), "--name", "tiny-big", "--train", "2", "--val", "0",
                 "--max-people", "1", "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "p" / "synth.json").read_text())
    assert meta["stature"] == [0.4, 0.8] and meta["max_people"] == 1


def test_presets_and_cache(tmp_path, monkeypatch):
    assert {"tiny", "synthcrowd-s", "synthcrowd-crowd", "synthcrowd-train"} <= set(PRESETS)
    assert (PRESETS["synthcrowd-s"].train, PRESETS["synthcrowd-s"].val, PRESETS["synthcrowd-s"].imgsz) == (2000, 500, 320)
    assert PRESETS["synthcrowd-crowd"].density == "crowd"
    with pytest.raises(ValueError, match="synthcrowd-s"):
        ensure_preset("nope", tmp_path)
    root = ensure_preset("tiny", tmp_path, workers=1)
    assert root.name == f"tiny-v{synth_generator.GENERATOR_VERSION}-{PRESETS['tiny'].fingerprint()}"
    assert (root / "data.yaml").is_file()
    monkeypatch.setattr(synth_generator, "_render_one", lambda task: pytest.fail("regenerated"))
    assert ensure_preset("tiny", tmp_path) == root  # reused, not rendered again
    monkeypatch.setenv("ERPOSE_CACHE", str(tmp_path / "env"))
    from erpose.data.synth import default_cache_dir

    assert default_cache_dir() == tmp_path / "env" / "synth"


def test_retuned_preset_gets_a_new_cache_folder(tmp_path, monkeypatch):
    import dataclasses

    tiny = PRESETS["tiny"]
    bigger = dataclasses.replace(tiny, stature=(0.5, 0.9), max_people=2)
    assert bigger.fingerprint() != tiny.fingerprint()
    assert dataclasses.replace(tiny, description="other words").fingerprint() == tiny.fingerprint()
    monkeypatch.setitem(PRESETS, "tiny-big", dataclasses.replace(bigger, train=6, val=2))
    root = ensure_preset("tiny-big", tmp_path, workers=1)
    gt = json.loads((root / "annotations" / "train.json").read_text())
    per_image = {}
    for ann in gt["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    assert per_image and max(per_image.values()) <= 2
    # Visible-body boxes of people at least half the image tall (some are cut by the border).
    assert max(ann["bbox"][3] for ann in gt["annotations"]) >= 0.45 * tiny.imgsz


def test_bad_stature_and_max_people(tmp_path):
    with pytest.raises(ValueError, match="stature"):
        synth_generator.generate(tmp_path / "a", train=1, val=0, imgsz=128, stature=(0.9, 0.5))
    with pytest.raises(ValueError, match="max_people"):
        synth_generator.generate(tmp_path / "b", train=1, val=0, imgsz=128, max_people=0)


def test_paste_from_real_people(real_data, tmp_path):
    coco = real_data / "tiny_coco" / "annotations" / "person_keypoints_train2017.json"
    images = real_data / "tiny_coco" / "train2017"
    bank = PasteBank.load(coco, images)
    assert len(bank.people) >= 20 and len(bank.backgrounds) >= 10
    visible = 0
    for i in range(4):
        scene = render_scene(np.random.default_rng(i), 160, "crowd", paste_bank=bank)
        n_idx, k_idx = np.nonzero(scene.keypoints[..., 2] == 2)
        px = np.round(scene.keypoints[n_idx, k_idx, :2]).astype(int)
        assert scene.person_masks[n_idx, px[:, 1], px[:, 0]].all()
        visible += len(n_idx)
    assert visible > 20
    root = generate(tmp_path / "pasted", train=3, val=1, imgsz=128, paste_from=(str(coco), str(images)))
    from pycocotools.coco import COCO

    assert len(COCO(str(root / "annotations" / "train.json")).getAnnIds()) > 0


def test_paste_from_without_segmentation_is_refused(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": [1, 1, 2] * 17,
                            "num_keypoints": 17, "bbox": [0, 0, 50, 50], "area": 10}],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="no person with a polygon segmentation"):
        generate(tmp_path / "o", train=1, val=1, imgsz=96, paste_from=(str(tmp_path / "a.json"), str(tmp_path)))
    with pytest.raises(ValueError, match="coco17"):
        generate(tmp_path / "o", train=1, val=1, imgsz=96, skeleton="crowdpose14",
                 paste_from=(str(tmp_path / "a.json"), str(tmp_path)))


def test_clutter_zero_draws_people_on_a_plain_background(tmp_path):
    from erpose.data.synth.scene import render_scene

    full = render_scene(np.random.default_rng(3), 128, "sparse", max_people=2)
    clean = render_scene(np.random.default_rng(3), 128, "sparse", max_people=2, clutter=0.0)
    # No occluders or distractors: every non-person pixel is background in the owner map.
    from erpose.data.synth.scene import BACKGROUND

    assert set(np.unique(clean.owner)) <= {BACKGROUND, *range(len(clean.keypoints))}
    assert len(set(np.unique(full.owner)) - {BACKGROUND, *range(len(full.keypoints))}) > 0
    with pytest.raises(ValueError, match="clutter"):
        synth_generator.generate(tmp_path / "c", train=1, val=0, imgsz=128, clutter=1.5)
    assert main(["synth", "--out", str(tmp_path / "o"), "--train", "2", "--val", "0", "--imgsz", "96",
                 "--clutter", "0", "--workers", "1"]) == 0
    assert json.loads((tmp_path / "o" / "synth.json").read_text())["clutter"] == 0.0


def test_forked_workers_start_after_opencv_threads_were_used(tmp_path):
    """Regression: cv2.setNumThreads in a fork child waits forever for the parent's pool threads."""
    import subprocess
    import sys

    code = (
        "import sys, cv2, numpy as np\n"
        "from erpose.data.synth.generator import generate\n"
        "big = np.zeros((1500, 1500, 3), np.uint8)\n"
        "for _ in range(3):\n"
        "    cv2.GaussianBlur(big, (9, 9), 0)  # OpenCV's thread pool is now running in this process\n"
        "generate(sys.argv[1], train=8, val=4, imgsz=64, seed=0, workers=2)\n"
        "print('done')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("done"), proc.stderr[-2000:]
