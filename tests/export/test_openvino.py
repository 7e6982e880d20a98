"""OpenVINO IR export and runtime: parity with the ONNX export, metadata, INT8 (NNCF), CLI, errors.

Skipped when openvino is not installed (``pip install 'erpose[openvino]'``); the INT8 tests also
need nncf.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_same_topk, make_realistic, normalise_coordinates
from test_openvino_isolated import ISOLATED_ENV

ov = pytest.importorskip("openvino")
# OpenVINO (with its TBB threads) and PyTorch in one long-lived process: after the rest of the suite
# had run in the same pytest process, this module's last test crashed that process (SIGSEGV) while
# it passes in a fresh one. test_openvino_isolated.py runs this module in its own interpreter.
if os.environ.get(ISOLATED_ENV) != "1":
    pytest.skip("runs in its own interpreter (tests/export/test_openvino_isolated.py)", allow_module_level=True)

from erpose import ERPose  # noqa: E402
from erpose.cli.main import main  # noqa: E402
from erpose.engine.predictor import load_backend  # noqa: E402
from erpose.engine.validator import validate  # noqa: E402
from erpose.export.onnx import OnnxExportConfig, export_onnx  # noqa: E402
from erpose.export.openvino import float_ops, onnx_to_openvino  # noqa: E402
from erpose.export.quantize import Int8Config  # noqa: E402
from erpose.models.checkpoint import save_checkpoint  # noqa: E402
from erpose.models.zoo import build_model  # noqa: E402
from erpose.runtime.openvino_session import (  # noqa: E402
    OpenVinoBackend,
    OpenVinoModelError,
    OpenVinoSession,
    read_metadata,
)
from erpose.runtime.predict import OnnxBackend, preprocess  # noqa: E402
from erpose.runtime.session import PoseSession  # noqa: E402
from erpose.runtime.session import read_metadata as read_onnx_metadata  # noqa: E402
from erpose.skeleton import CROWDPOSE14  # noqa: E402

SIZE = 64
#: fp32 IR vs fp32 ONNX: OpenVINO's and ONNX Runtime's float32 kernels differ in summation order only,
#: so rows agree to 1e-4 (scores, probabilities; coordinates relative to the input size).
FLOAT_ATOL = 1e-4
#: INT8 IR vs fp32 on the small "trained-like" model (the ORT INT8 test's bounds, tests/export/test_int8.py):
#: mean keypoint displacement in input pixels (10 % of the 64-px input) and mean person-score difference.
MAX_MEAN_DISPLACEMENT_PX = 0.1 * SIZE
MAX_SCORE_DIFF = 0.1


def _images(count: int, size: int | tuple[int, int] = SIZE, seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(count, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _write_calibration(folder, images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):  # RGB [0, 1] -> BGR uint8 files, read back by the letterbox
        cv2.imwrite(str(folder / f"{i:03d}.png"), (image.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small "trained-like" ER-Pose-n (K=14): its dynamic-batch ONNX export, the float IR and the INT8 IR."""
    pytest.importorskip("nncf")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("openvino")
    images = _images(16)
    model = make_realistic(build_model("erpose-n", CROWDPOSE14), images)
    onnx_path = export_onnx(model, tmp / "m.onnx", OnnxExportConfig(imgsz=SIZE, dynamic_batch=True, max_det=20))
    float_xml = onnx_to_openvino(onnx_path, tmp / "m_openvino")
    _write_calibration(tmp / "calib", images)
    int8_xml = onnx_to_openvino(onnx_path, tmp / "m-int8_openvino", Int8Config(calib=str(tmp / "calib"), calib_images=16))
    return {"tmp": tmp, "model": model, "onnx": onnx_path, "float": float_xml, "int8": int8_xml, "images": images}


def test_float_ir_matches_the_onnx_export_with_dynamic_batch(exported):
    images = exported["images"][:3].numpy()
    expected = PoseSession(exported["onnx"]).run(images)
    session = OpenVinoSession(exported["tmp"] / "m_openvino", threads=1)  # the folder names the IR
    out3, out1 = session.run(images), session.run(images[1:2])
    assert out3.shape == (3, 20, 1 + 3 * 14) and out1.shape == (1, 20, 1 + 3 * 14) and out3.dtype == np.float32
    assert (np.diff(out3[..., 0], axis=1) <= 0).all()
    assert_same_topk(out3, expected, SIZE, atol=FLOAT_ATOL)
    assert_same_topk(out1, expected[1:2], SIZE, atol=FLOAT_ATOL)
    with torch.no_grad():  # and so the PyTorch model's own output
        reference = exported["model"](exported["images"][:3]).numpy()[:, :20]  # the model's max_det is 100
        assert_same_topk(out3, reference, SIZE, atol=FLOAT_ATOL)


def test_metadata_round_trips(exported):
    meta = read_metadata(exported["float"])
    assert meta == read_onnx_metadata(exported["onnx"])
    assert meta.skeleton == CROWDPOSE14 and (meta.imgsz, meta.max_det, meta.dynamic) == ((SIZE, SIZE), 20, True)
    assert read_metadata(exported["float"].parent) == meta  # the folder works as well as the .xml
    text = exported["float"].read_text()
    assert "<erpose>" in text and "skeleton" in text  # stored in the IR itself, not in a sidecar
    backend = load_backend(str(exported["float"].parent))
    assert isinstance(backend, OpenVinoBackend)
    assert (backend.skeleton, backend.strides, backend.imgsz, backend.fixed_imgsz) == (
        CROWDPOSE14, (8, 16, 32), (SIZE, SIZE), (SIZE, SIZE))


def test_int8_ir_is_quantised_and_keeps_the_decoding_float(exported):
    core = ov.Core()
    model = core.read_model(str(exported["int8"]))
    kinds = [op.get_type_name() for op in model.get_ordered_ops()]
    assert kinds.count("FakeQuantize") > 50, kinds.count("FakeQuantize")
    for op in model.get_ordered_ops():  # top-k reads float tensors, never a fake-quantised one
        if op.get_type_name() in ("TopKBase", "TopK"):
            assert all(inp.get_source_output().get_node().get_type_name() != "FakeQuantize" for inp in op.inputs())
    float_model = core.read_model(str(exported["float"]))
    keep = float_ops(float_model, "head-outputs")
    decode = float_ops(float_model, "decode")
    by_name = {op.get_friendly_name(): op.get_type_name() for op in float_model.get_ordered_ops()}
    assert {by_name[n] for n in decode} >= {"TopK", "Sigmoid"} and "Convolution" not in {by_name[n] for n in decode}
    assert {by_name[n] for n in set(keep) - set(decode)} == {"Convolution"}
    meta_float, meta_int8 = read_metadata(exported["float"]), read_metadata(exported["int8"])
    assert meta_float.quantization == "none" and meta_int8.quantization.startswith("int8-nncf per-channel")
    assert meta_int8 == meta_float.__class__(**{**meta_float.__dict__, "quantization": meta_int8.quantization})


def test_int8_ir_poses_agree_with_fp32(exported):
    """Each fp32 person of score > 0.3 has an INT8 person within the stated tolerances."""
    images = exported["images"].numpy()
    a = PoseSession(exported["onnx"]).run(images)
    b = OpenVinoSession(exported["int8"], threads=1).run(images)
    assert b.shape == a.shape and b.dtype == np.float32 and (np.diff(b[..., 0], axis=1) <= 0).all()
    displacements, score_diffs, spreads = [], [], []
    for rows_a, rows_b in zip(a, b):
        confident = rows_a[rows_a[:, 0] > 0.3]
        xy = confident[:, 1:].reshape(len(confident), -1, 3)[..., :2]
        between = np.linalg.norm(xy[:, None] - xy[None], axis=-1).mean(-1)
        spreads += list(between[np.triu_indices(len(confident), 1)])
        xy_b = rows_b[:, 1:].reshape(len(rows_b), -1, 3)[..., :2]
        for row in confident:
            distance = np.linalg.norm(xy_b - row[1:].reshape(-1, 3)[:, :2], axis=-1).mean(axis=1)
            best = int(distance.argmin())
            displacements.append(distance[best])
            score_diffs.append(abs(rows_b[best, 0] - row[0]))
    assert len(displacements) >= 10, "too few confident persons: the comparison would be vacuous"
    assert np.mean(displacements) < MAX_MEAN_DISPLACEMENT_PX, np.mean(displacements)
    assert np.mean(score_diffs) < MAX_SCORE_DIFF, np.mean(score_diffs)
    assert np.mean(displacements) < np.median(spreads) / 3, (np.mean(displacements), np.median(spreads))


def _assert_raw_close(actual: np.ndarray, expected: np.ndarray, size: int) -> None:
    """Raw baseline anchors (score, 17 x (x, y, conf), x1y1x2y2 box): the score and probabilities to
    FLOAT_ATOL, pixel values to FLOAT_ATOL x the input size."""
    probabilities = [0, *range(3, 52, 3)]
    np.testing.assert_allclose(actual[..., probabilities], expected[..., probabilities], atol=FLOAT_ATOL)
    np.testing.assert_allclose(actual, expected, atol=FLOAT_ATOL * size)


def test_static_nms_graph_and_dynamic_shape_ir(tmp_path):
    """The baseline's raw-anchor graph (K=17, box NMS in numpy) and a dynamic-shape graph."""
    images = _images(2, 96, seed=1)
    model = make_realistic(build_model("yolopose-n"), images)
    onnx_path = export_onnx(model, tmp_path / "b0.onnx", OnnxExportConfig(imgsz=96))
    xml = onnx_to_openvino(onnx_path, tmp_path / "b0_openvino")
    ort, session = PoseSession(onnx_path, conf=0.001), OpenVinoSession(xml, threads=1, conf=0.001)
    assert session.metadata.needs_nms and session.metadata.nms == "box"
    _assert_raw_close(session.run_raw(images[:1].numpy()), ort.run_raw(images[:1].numpy()), 96)
    both = session.run(images.numpy())  # a static batch-1 IR runs a batch image by image
    for i in range(2):
        expected = ort.run(images[i:i + 1].numpy())[0]
        kept = expected[:, 0] > 0.05  # clear of near-ties at the bottom of the NMS order
        assert kept.sum() > 1
        np.testing.assert_allclose(normalise_coordinates(both[i][kept], 96), normalise_coordinates(expected[kept], 96),
                                   atol=FLOAT_ATOL)
    with pytest.raises(ValueError, match=r"b0\.xml.*fixed input of \(96, 96\)"):
        session.run(_images(1, 64).numpy())
    batch2 = onnx_to_openvino(export_onnx(model, tmp_path / "b2.onnx", OnnxExportConfig(imgsz=96, batch=2)),
                              tmp_path / "b2_openvino")
    with pytest.raises(ValueError, match=r"b2\.xml.*fixed batch of 2, got 1"):
        OpenVinoSession(batch2).run(images[:1].numpy())

    dynamic = export_onnx(model, tmp_path / "dyn.onnx", OnnxExportConfig(imgsz=64, dynamic=True))
    dyn = OpenVinoSession(onnx_to_openvino(dynamic, tmp_path / "dyn_openvino"), threads=1)
    assert OpenVinoBackend(tmp_path / "dyn_openvino").fixed_imgsz is None
    for size in ((64, 64), (96, 128)):
        x = _images(1, size, seed=2).numpy()
        _assert_raw_close(dyn.run_raw(x), PoseSession(dynamic).run_raw(x), max(size))


def _ground_truth(path, images, people):
    annotations = []
    for image_id, persons in people.items():
        for keypoints in persons:
            (x0, y0), (x1, y1) = keypoints.min(0), keypoints.max(0)
            kpts = np.column_stack([keypoints, np.full(len(keypoints), 2.0)])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "num_keypoints": len(kpts), "keypoints": np.round(kpts, 3).ravel().tolist(),
                                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                "area": float(max((x1 - x0) * (y1 - y0), 1.0))})
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}))
    return path


def test_cli_export_then_predict_val_and_api(tmp_path, capsys):
    """`erpose export --format openvino`, then predict, val and ERPose take the folder like an .onnx file."""
    torch.manual_seed(0)  # the model, and so the AP, must not depend on the test order
    rng = np.random.default_rng(11)
    frames, images = [], []
    for index, (h, w) in enumerate([(70, 100), (120, 90), (64, 64), (50, 130)]):
        frames.append(cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 0))
        cv2.imwrite(str(tmp_path / f"{index + 1}.png"), frames[-1])
        images.append({"id": index + 1, "file_name": f"{index + 1}.png", "width": w, "height": h})
    model = make_realistic(build_model("erpose-n"), torch.from_numpy(preprocess(frames, (64, 64))[0]))
    checkpoint = save_checkpoint(tmp_path / "m.pt", model)
    assert main(["export", "--weights", str(checkpoint), "--format", "openvino", "--imgsz", "64"]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "m_openvino"
    assert (folder / "m.xml").is_file() and (folder / "m.bin").is_file() and "OpenVINO IR" in printed
    assert "(1, 100, 52)" in printed
    onnx_path = export_onnx(model, tmp_path / "m.onnx", OnnxExportConfig(imgsz=64))

    # Ground truth: the ONNX file's own top two people per image, moved by 3 px (AP high, not 1).
    dummy = _ground_truth(tmp_path / "dummy.json", images, {im["id"]: [rng.uniform(5, 40, (17, 2))] for im in images})
    first = validate(str(onnx_path), str(dummy), progress=False)
    people: dict[int, list[np.ndarray]] = {}
    for det in sorted(first.detections, key=lambda d: -d["score"]):
        persons = people.setdefault(det["image_id"], [])
        if len(persons) < 2:
            persons.append(np.asarray(det["keypoints"]).reshape(17, 3)[:, :2] + rng.normal(0, 3.0, (17, 2)))
    gt = _ground_truth(tmp_path / "gt.json", images, people)
    reference = validate(str(onnx_path), str(gt), progress=False).metrics
    assert 0.2 < reference["AP"] < 0.999
    code = main(["val", "--weights", str(folder), "--data", str(gt), "--out", str(tmp_path / "val"), "--no-progress",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)
    for key, value in reference.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key

    api = ERPose(folder / "m.xml")
    assert api.is_onnx and api.model is None
    assert api.val(str(gt), progress=False).metrics["AP"] == pytest.approx(reference["AP"], abs=1e-3)
    got, expected = api.predict(frames[1], conf=0.2)[0], ERPose(onnx_path).predict(frames[1], conf=0.2)[0]
    assert len(got.scores) == len(expected.scores) > 0
    np.testing.assert_allclose(got.keypoints.data[..., :2], expected.keypoints.data[..., :2], atol=0.05)
    code = main(["predict", "--weights", str(folder), "--source", str(tmp_path / "2.png"), "--conf", "0",
                 "--project", str(tmp_path / "runs"), "--name", "p", "--no-progress"])
    assert code == 0 and (tmp_path / "runs" / "p" / "2.png").is_file()
    assert isinstance(load_backend(str(onnx_path)), OnnxBackend)  # the ONNX dispatch is unchanged
    xml = ERPose(checkpoint).export("openvino", path=tmp_path / "api_openvino", imgsz=64, max_det=10)
    assert xml == tmp_path / "api_openvino" / "api.xml" and read_metadata(xml).max_det == 10


def test_bad_inputs_are_one_line_errors(exported, tmp_path, capsys):
    for extra, named in ((["--half"], "--half"), (["--int8", "--calib", "x", "--int8-method", "ort"], "--int8-method ort"),
                         (["--int8-method", "nncf"], "--int8-method")):
        code = main(["export", "--weights", "erpose-n", "--format", "openvino", *extra, "--imgsz", "64",
                     "--out", str(tmp_path / "h_openvino")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and named in err, err
    assert not (tmp_path / "h_openvino").exists()

    # An IR that is no erpose export: a plain ONNX graph converted by OpenVINO itself.
    import onnx

    plain = onnx.load(str(exported["onnx"]))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    ov.save_model(ov.convert_model(str(tmp_path / "plain.onnx")), str(tmp_path / "plain" / "plain.xml"))
    with pytest.raises(OpenVinoModelError, match=r"plain\.xml: not an erpose OpenVINO export"):
        OpenVinoSession(tmp_path / "plain")
    cv2.imwrite(str(tmp_path / "1.png"), np.full((40, 30, 3), 90, np.uint8))
    code = main(["predict", "--weights", str(tmp_path / "plain"), "--source", str(tmp_path / "1.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "plain.xml: not an erpose OpenVINO export" in err

    (tmp_path / "plain" / "other.xml").write_text("<net/>")
    with pytest.raises(OpenVinoModelError, match="2 .xml files"):
        load_backend(str(tmp_path / "plain"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "m.xml").write_text("<net><layers>")
    (tmp_path / "broken" / "m.bin").write_bytes(b"")
    with pytest.raises(OpenVinoModelError, match=r"m\.xml: OpenVINO cannot read it"):
        load_backend(str(tmp_path / "broken"))
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        load_backend(str(tmp_path / "missing.xml"))


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_runtime_is_torch_free_and_a_missing_openvino_is_one_line(exported):
    child = BLOCKER.replace("BLOCKED", "{'torch'}") + textwrap.dedent(
        """
        import json, numpy as np
        from erpose.runtime.openvino_session import OpenVinoBackend
        rows = OpenVinoBackend(sys.argv[1], threads=1).predict(np.zeros((2, 3, 64, 64), np.float32), conf=-1.0)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print(json.dumps([list(r.shape) for r in rows]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", child, str(exported["float"])], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[20, 43], [20, 43]]

    child = BLOCKER.replace("BLOCKED", "{'openvino'}") + "from erpose.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    image = exported["tmp"] / "people.png"
    cv2.imwrite(str(image), np.full((40, 30, 3), 90, np.uint8))
    for argv in (["predict", "--weights", str(exported["float"].parent), "--source", str(image), "--no-save"],
                 ["export", "--weights", "erpose-n", "--format", "openvino", "--imgsz", "64"]):
        proc = subprocess.run([sys.executable, "-c", child, *argv], capture_output=True, text=True, timeout=120)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, proc.stderr[-2000:]
        assert "pip install" in err and "openvino" in err
