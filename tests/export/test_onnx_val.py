"""An ONNX export is evaluated and used like its checkpoint: `erpose val --weights m.onnx`, ERPose(m.onnx)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import make_realistic

from erpose import ERPose
from erpose.cli.main import main
from erpose.engine.validator import validate
from erpose.export.onnx import OnnxExportConfig, export_onnx
from erpose.models.checkpoint import save_checkpoint
from erpose.models.zoo import build_model
from erpose.runtime.predict import preprocess

SIZES = [(70, 100), (120, 90), (64, 64), (50, 130), (96, 80), (90, 60)]  # (h, w), none of them 64 x 64 but one


def _write_images(root: Path) -> list[dict]:
    rng = np.random.default_rng(11)
    images = []
    for index, (h, w) in enumerate(SIZES):  # next to the annotation files: their image folder by default
        image = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(root / f"{index + 1}.png"), image)
        images.append({"id": index + 1, "file_name": f"{index + 1}.png", "width": w, "height": h})
    return images


def _write_gt(path: Path, images: list[dict], people: dict[int, list[np.ndarray]]) -> Path:
    annotations = []
    for image_id, persons in people.items():
        for keypoints in persons:
            x0, y0 = keypoints[:, :2].min(0)
            x1, y1 = keypoints[:, :2].max(0)
            kpts = np.column_stack([keypoints[:, :2], np.full(len(keypoints), 2.0)])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "num_keypoints": len(kpts), "keypoints": np.round(kpts, 3).ravel().tolist(),
                                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                "area": float(max((x1 - x0) * (y1 - y0), 1.0))})
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A fresh (trained-like) ER-Pose-n, its checkpoint, its fixed 64 px ONNX export, and images whose
    ground truth is the checkpoint's own top two people per image, moved by 1.5 px: the AP is high
    but not 1, so the comparison has something to compare."""
    root = tmp_path_factory.mktemp("onnx-val")
    images = _write_images(root)
    frames = [cv2.imread(str(root / im["file_name"])) for im in images]
    batch, _ = preprocess(frames, (64, 64))
    torch.manual_seed(0)  # one fixed model: an unseeded one made the AP and its near-ties vary run to run
    model = make_realistic(build_model("erpose-n"), torch.from_numpy(batch))
    checkpoint = save_checkpoint(root / "m.pt", model)
    onnx = export_onnx(model, root / "m.onnx", OnnxExportConfig(imgsz=64))
    dynamic = export_onnx(model, root / "dynamic.onnx", OnnxExportConfig(imgsz=64, dynamic_batch=True))

    rng = np.random.default_rng(0)
    dummy = {im["id"]: [rng.uniform(5, 40, (17, 2))] for im in images}
    first = validate(str(checkpoint), str(_write_gt(root / "dummy.json", images, dummy)), imgsz=64, progress=False)
    people: dict[int, list[np.ndarray]] = {}
    for det in sorted(first.detections, key=lambda d: -d["score"]):
        persons = people.setdefault(det["image_id"], [])
        if len(persons) < 2:
            keypoints = np.asarray(det["keypoints"], np.float64).reshape(17, 3)[:, :2]
            persons.append(keypoints + rng.normal(0.0, 1.5, keypoints.shape))
    gt = _write_gt(root / "gt.json", images, people)
    return {"root": root, "checkpoint": checkpoint, "onnx": onnx, "dynamic": dynamic, "gt": gt}


def _val(weights: Path, data: dict, capsys, *extra: str) -> dict:
    out = data["root"] / f"val-{weights.stem}-{len(extra)}"
    code = main(["val", "--weights", str(weights), "--data", str(data["gt"]), "--out", str(out), "--no-progress",
                 "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {"metrics": json.loads(captured.out), "detections": json.loads((out / "predictions.json").read_text())}


def test_val_of_the_onnx_export_gives_the_checkpoints_ap(exported, capsys) -> None:
    torch_run = _val(exported["checkpoint"], exported, capsys, "--imgsz", "64")
    onnx_run = _val(exported["onnx"], exported, capsys)  # no --imgsz: the file's own 64 px
    ap = torch_run["metrics"]["AP"]
    assert 0.2 < ap < 0.999  # the comparison is not vacuous
    for key, value in torch_run["metrics"].items():
        assert onnx_run["metrics"][key] == pytest.approx(value, abs=1e-3), key
    # The same COCO results: same people per image, same order, same scores and keypoints.
    a, b = torch_run["detections"], onnx_run["detections"]
    assert len(a) == len(b) and [d["image_id"] for d in a] == [d["image_id"] for d in b]
    np.testing.assert_allclose([d["score"] for d in b], [d["score"] for d in a], atol=1e-4)
    top = [i for i, d in enumerate(a) if d["score"] >= sorted(x["score"] for x in a)[-12]]  # best rows: no ties
    np.testing.assert_allclose([b[i]["keypoints"] for i in top], [a[i]["keypoints"] for i in top], atol=0.02)


def test_dynamic_batch_export_evaluates_in_batches_the_same(exported, capsys) -> None:
    one = _val(exported["onnx"], exported, capsys)
    batched = _val(exported["dynamic"], exported, capsys, "--batch", "4")
    assert batched["metrics"] == pytest.approx(one["metrics"], abs=1e-6)


def test_a_fixed_size_export_refuses_another_size_in_one_line(exported, capsys) -> None:
    code = main(["val", "--weights", str(exported["onnx"]), "--data", str(exported["gt"]), "--imgsz", "128",
                 "--no-progress", "--out", str(exported["root"] / "refused")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "m.onnx" in err and "(64, 64)" in err and "128" in err


def test_api_val_and_predict_take_the_onnx_files_own_size(exported) -> None:
    model = ERPose(exported["onnx"])
    metrics = model.val(str(exported["gt"]), progress=False).metrics  # was: "needs a PyTorch model"
    reference = validate(str(exported["checkpoint"]), str(exported["gt"]), imgsz=64, progress=False).metrics
    assert metrics["AP"] == pytest.approx(reference["AP"], abs=1e-3)
    # Was: "exported with a fixed input of (64, 64), got (640, 640)" from the API (the CLI worked).
    image = cv2.imread(str(exported["root"] / "2.png"))
    results = model.predict(image, conf=0.0)
    assert len(results) == 1 and results[0].keypoints.data.shape[1:] == (17, 3)
    assert results[0].orig_image.shape == image.shape
    # Tracking takes the same rule (was: imgsz 640 by default, refused by the 64 px file).
    tracked = model.track([image, image], stream=False)
    assert len(tracked) == 2
