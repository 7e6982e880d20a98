"""ONNX export: PyTorch parity for every scale, baseline NMS parity, metadata, options, CLI."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import assert_same_topk, make_realistic, normalise_coordinates

from erpose import __version__
from erpose.cli.main import main
from erpose.export.onnx import OnnxExportConfig, build_metadata, export_onnx
from erpose.models.zoo import build_model
from erpose.runtime.session import PoseSession, read_metadata
from erpose.skeleton import COCO17, CROWDPOSE14


def _images(batch: int, size: int | tuple[int, int], seed: int = 0) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


PARITY_CASES = [
    ("erpose-n", 64, COCO17),
    ("erpose-n", 96, CROWDPOSE14),  # another K, and more anchors than max_det
    ("erpose-s", 64, COCO17),
    ("erpose-m", 64, COCO17),
    ("erpose-l", 64, COCO17),
    ("erpose-x", 64, COCO17),
    ("erpose-n-full", 64, COCO17),  # METHOD.md's plain 3x3 keypoint branch
]


def _build(name: str, skeleton):
    if name == "erpose-n-full":
        import dataclasses

        from erpose.models.zoo import get_config

        config = get_config("erpose-n")
        return build_model(dataclasses.replace(config, head=dataclasses.replace(config.head, keypoint_separable=False)),
                           skeleton)
    return build_model(name, skeleton)


@pytest.mark.parametrize(("name", "size", "skeleton"), PARITY_CASES, ids=[f"{n}-{s}" for n, s, _ in PARITY_CASES])
def test_onnx_matches_pytorch_with_dynamic_batch(name, size, skeleton, tmp_path):
    images = _images(3, size)
    model = make_realistic(_build(name, skeleton), images)
    with torch.no_grad():
        expected = model(images).numpy()
    path = export_onnx(model, tmp_path / f"{name}.onnx", OnnxExportConfig(imgsz=size, dynamic_batch=True))
    session = PoseSession(path)
    out3 = session.run(images.numpy())
    out1 = session.run(images[1:2].numpy())
    k = skeleton.num_keypoints
    assert out3.shape == (3, 100, 1 + 3 * k) and out1.shape == (1, 100, 1 + 3 * k)
    assert (np.diff(out3[..., 0], axis=1) <= 0).all(), "rows are not sorted by score"
    assert_same_topk(out3, expected, size)
    assert_same_topk(out1, expected[1:2], size)
    assert not model.training, "export must not change the caller's model"
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "export fused the caller's model"


@pytest.mark.parametrize(("name", "kind"), [("yolopose-n", "box"), ("erpose-n-b2", "oks")])
def test_nms_graph_plus_numpy_nms_matches_postprocess(name, kind, tmp_path):
    images = _images(2, 96, seed=1)
    model = make_realistic(build_model(name), images)
    expected = model.predict(images, conf=0.001, max_det=100, iou=0.7)
    path = export_onnx(model, tmp_path / f"{name}.onnx", OnnxExportConfig(imgsz=96, dynamic_batch=True))
    session = PoseSession(path, conf=0.001)
    assert session.metadata.needs_nms and session.metadata.nms == kind
    raw = session.run_raw(images.numpy())
    assert raw.shape[1] == 144 + 36 + 9  # every anchor point leaves the graph
    out = session.run(images.numpy())
    for rows, ref in zip(out, expected):
        ref = ref.numpy()
        assert len(ref) > 1
        np.testing.assert_allclose(normalise_coordinates(rows[: len(ref)], 96), normalise_coordinates(ref, 96),
                                   rtol=0, atol=1e-4)
        assert not rows[len(ref):].any(), "rows past the kept people must be zero"


def test_metadata_round_trip(tmp_path):
    model = build_model("erpose-n", CROWDPOSE14)
    config = OnnxExportConfig(imgsz=(64, 96), max_det=20)
    path = export_onnx(model, tmp_path / "m.onnx", config, model_name="my-model")
    meta = read_metadata(path)
    assert meta == build_metadata(model, config, "my-model")
    assert meta.skeleton == CROWDPOSE14
    assert (meta.imgsz, meta.strides, meta.stride, meta.max_det) == ((64, 96), (8, 16, 32), 32, 20)
    assert (meta.step, meta.needs_nms, meta.nms, meta.version) == ("B5", False, "none", __version__)
    onnx_model = onnx.load(str(path))
    assert onnx_model.opset_import[0].version >= 17
    onnx.checker.check_model(onnx_model)
    props = {p.key: p.value for p in onnx_model.metadata_props}
    assert {"skeleton", "names", "imgsz", "stride", "max_det", "needs_nms", "output_layout", "erpose_version"} <= set(props)
    assert PoseSession(path).run(_images(1, (64, 96)).numpy()).shape == (1, 20, 1 + 3 * 14)


def test_half_export_runs_on_cpu(tmp_path):
    images = _images(1, 64)
    model = make_realistic(build_model("erpose-n"), images)
    path = export_onnx(model, tmp_path / "h.onnx", OnnxExportConfig(imgsz=64, half=True))
    session = PoseSession(path)
    assert session.metadata.half and session.input_dtype == np.float16
    out = session.run(images.numpy())
    with torch.no_grad():
        expected = model(images).numpy()
    assert out.dtype == np.float32  # the head and output stay float32
    np.testing.assert_allclose(out[..., 0], expected[..., 0], atol=2e-2)  # sorted scores, fp16 features


def test_dynamic_shape_export(tmp_path):
    images = _images(1, 128)
    model = make_realistic(build_model("erpose-n"), images)
    path = export_onnx(model, tmp_path / "d.onnx", OnnxExportConfig(imgsz=128, dynamic=True))
    session = PoseSession(path)
    for shape in [(128, 128), (96, 160)]:
        x = _images(2, shape, seed=3)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(x.numpy())[..., 0], expected[..., 0], atol=1e-4)
    # Fewer anchor points than max_det (64 px: 84 < 100): the tail is zero rows, as in PyTorch.
    small = session.run(_images(1, 64).numpy())
    assert small.shape == (1, 100, 52) and not small[0, 84:].any()


def test_static_session_rejects_other_sizes_and_bad_options(tmp_path):
    model = build_model("erpose-n")
    path = export_onnx(model, tmp_path / "s.onnx", OnnxExportConfig(imgsz=64))
    with pytest.raises(ValueError, match="fixed input"):
        PoseSession(path).run(np.zeros((1, 3, 96, 96), np.float32))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "o.onnx", OnnxExportConfig(imgsz=64, opset=13))
    with pytest.raises(ValueError, match="multiples"):
        export_onnx(model, tmp_path / "o.onnx", OnnxExportConfig(imgsz=70))


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--weights", "erpose-n", "--imgsz", "64", "--max-det", "10", "--out", str(out)]) == 0
    assert "(B, 10, 52)" in capsys.readouterr().out
    meta = read_metadata(out)
    assert (meta.model_name, meta.max_det, meta.imgsz) == ("erpose-n", 10, (64, 64))
    assert main(["export", "--weights", "erpose-n", "--imgsz", "64", "--opset", "12", "--out", str(out)]) == 2
    assert "opset" in capsys.readouterr().err


def test_predict_cli_takes_the_onnx_files_own_size(tmp_path):
    import cv2

    path = export_onnx(build_model("erpose-n"), tmp_path / "m.onnx", OnnxExportConfig(imgsz=96))
    cv2.imwrite(str(tmp_path / "1.jpg"), np.full((120, 80, 3), 90, np.uint8))
    code = main(["predict", "--weights", str(path), "--source", str(tmp_path / "1.jpg"), "--conf", "0",
                 "--project", str(tmp_path / "runs"), "--name", "p", "--save-json", "--no-progress"])
    assert code == 0
    assert (tmp_path / "runs" / "p" / "1.jpg").is_file()
