"""The ONNX runtime path imports and predicts in a process where importing torch fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import torch
from conftest import make_realistic

from erpose.export.onnx import OnnxExportConfig, export_onnx
from erpose.models.zoo import build_model
from erpose.runtime.predict import postprocess, preprocess

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test ({name})")
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torch was importable")
    """
)

CHILD = BLOCK_TORCH + textwrap.dedent(
    """
    from erpose.engine.predictor import Predictor
    from erpose.runtime.predict import OnnxPredictor
    from erpose.runtime.session import load_backend

    onnx_path, image_path, drawn_path = sys.argv[1:4]
    results = OnnxPredictor(onnx_path, conf=0.0, threads=1)([image_path])
    drawn = results[0].plot(conf_threshold=0.0)
    import cv2
    cv2.imwrite(drawn_path, drawn)
    # `erpose predict`'s engine with the ONNX backend (its hook for .onnx weights).
    engine = Predictor(load_backend(onnx_path, threads=1), imgsz=64, conf=0.0)(image_path)
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
    print(json.dumps({"scores": results[0].scores.tolist(), "keypoints": results[0].keypoints.data.tolist(),
                      "engine_scores": engine[0].scores.tolist()}))
    """
)


def test_runtime_predicts_without_torch(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)  # not square: exercises the letterbox
    image_path = tmp_path / "people.png"
    cv2.imwrite(str(image_path), image)
    batch, params = preprocess([image], (64, 64))
    model = make_realistic(build_model("erpose-n"), torch.from_numpy(np.concatenate([batch] * 2)))
    onnx_path = export_onnx(model, tmp_path / "m.onnx", OnnxExportConfig(imgsz=64))

    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(onnx_path), str(image_path), str(tmp_path / "drawn.jpg")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])

    with torch.no_grad():
        rows = model(torch.from_numpy(batch)).numpy()[0]
    scores, keypoints = postprocess(rows[rows[:, 0] > 0.0], params[0], 17)
    np.testing.assert_allclose(child["scores"], scores, atol=1e-4)
    np.testing.assert_allclose(child["engine_scores"], scores, atol=1e-4)
    top = slice(0, 10)  # the best rows: no score ties there; coordinates in original pixels
    np.testing.assert_allclose(np.asarray(child["keypoints"])[top], keypoints[top], atol=1e-2)
    drawn = cv2.imread(str(tmp_path / "drawn.jpg"))
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)


VAL_CHILD = BLOCK_TORCH + textwrap.dedent(
    """
    from erpose.cli.main import main

    onnx_path, gt_path, out = sys.argv[1:4]
    code = main(["val", "--weights", onnx_path, "--data", gt_path, "--out", out, "--no-progress", "--json"])
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
    sys.exit(code)
    """
)


def test_val_of_an_onnx_export_runs_without_torch(tmp_path):
    rng = np.random.default_rng(1)
    images, annotations = [], []
    for image_id, (h, w) in enumerate([(80, 120), (64, 48)], start=1):
        cv2.imwrite(str(tmp_path / f"{image_id}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        keypoints = np.column_stack([rng.uniform(2, w - 2, 17), rng.uniform(2, h - 2, 17), np.full(17, 2.0)])
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
                            "keypoints": keypoints.ravel().tolist(), "bbox": [0.0, 0.0, float(w), float(h)],
                            "area": float(w * h) / 2})
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}))
    onnx_path = export_onnx(build_model("erpose-n"), tmp_path / "m.onnx", OnnxExportConfig(imgsz=64))

    proc = subprocess.run([sys.executable, "-c", VAL_CHILD, str(onnx_path), str(gt), str(tmp_path / "val")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.0 <= metrics["AP"] <= 1.0
    report = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert report["weights"] == str(onnx_path) and report["num_images"] == 2
