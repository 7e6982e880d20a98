"""Torch-free runtime pieces: metadata parsing, clear errors on foreign/corrupt files, numpy NMS."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from erpose.runtime.nms import box_nms, nms_poses, oks_nms
from erpose.runtime.session import ExportMetadata, OnnxModelError, PoseSession, read_metadata
from erpose.skeleton import COCO17, CROWDPOSE14


def _identity_onnx(path, props: dict[str, str] | None = None):
    """A tiny valid ONNX graph (output = input) with optional metadata_props."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (props or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _metadata(**changes) -> ExportMetadata:
    base = dict(skeleton=CROWDPOSE14, imgsz=(64, 96), strides=(8, 16, 32), max_det=7, model_name="m",
                step="B0", needs_nms=True, nms="box", raw_columns={"score": 0, "keypoints": 1, "box": 43},
                dynamic=True, half=True, version="9.9")
    base.update(changes)
    return ExportMetadata(**base)


def test_metadata_props_round_trip():
    meta = _metadata()
    props = meta.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert json.loads(props["skeleton"])["flip_idx"] == list(CROWDPOSE14.flip_idx)
    assert ExportMetadata.from_props(props) == meta
    assert meta.stride == 32 and meta.num_keypoints == 14


def test_foreign_onnx_file_is_refused_clearly(tmp_path):
    path = _identity_onnx(tmp_path / "foreign.onnx")
    with pytest.raises(OnnxModelError, match=r"foreign\.onnx: not an erpose ONNX export"):
        PoseSession(path)
    with pytest.raises(OnnxModelError, match="not an erpose ONNX export"):
        read_metadata(path)


def test_corrupt_onnx_file_is_refused_clearly(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(OnnxModelError, match=r"corrupt\.onnx: ONNX Runtime cannot load it"):
        PoseSession(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        PoseSession(tmp_path / "missing.onnx")


def test_bad_metadata_value_names_the_key(tmp_path):
    props = _metadata().to_props()
    props["skeleton"] = "{not json"
    with pytest.raises(OnnxModelError, match="'skeleton'"):
        PoseSession(_identity_onnx(tmp_path / "bad.onnx", props))
    props = _metadata().to_props()
    props["schema"] = "99"
    with pytest.raises(OnnxModelError, match="newer"):
        ExportMetadata.from_props(props)


def test_box_nms_hand_computed():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    # IoU(0, 1) = 90 / 110 = 0.818; IoU(3, 0) = 50 / 100 = 0.5; box 2 overlaps nothing.
    assert box_nms(boxes, scores, 0.7).tolist() == [3, 0, 2]
    assert box_nms(boxes, scores, 0.4).tolist() == [3, 2]
    assert box_nms(boxes, scores, 0.85).tolist() == [3, 0, 1, 2]
    assert box_nms(boxes, scores, 0.7, max_keep=2).tolist() == [3, 0]


def test_oks_nms_hand_computed():
    sigmas = np.full(2, 0.1, np.float32)
    base = np.array([[0, 0], [10, 10]], np.float32)  # area = 0.53 * 100 = 53
    poses = np.stack([base, base + [1, 0], base + [30, 0]])
    # OKS(pose 1 vs 0): d^2 = 1 per keypoint, exp(-1 / (2 * 0.04 * 53)) = 0.7897
    assert oks_nms(poses, np.array([0.9, 0.8, 0.7]), sigmas, 0.75).tolist() == [0, 2]
    assert oks_nms(poses, np.array([0.9, 0.8, 0.7]), sigmas, 0.80).tolist() == [0, 1, 2]


def test_nms_poses_layout_threshold_and_padding():
    k = 1
    # columns: score, x, y, conf, then box x1y1x2y2
    raw = np.array([[[0.9, 5, 5, 0.5, 0, 0, 10, 10],
                     [0.8, 6, 5, 0.6, 1, 0, 11, 10],   # suppressed by row 0 (IoU 0.82)
                     [0.3, 25, 25, 0.7, 20, 20, 30, 30],
                     [0.0001, 1, 1, 1, 50, 50, 60, 60]]], np.float32)  # under conf
    out = nms_poses(raw, kind="box", raw_columns={"score": 0, "keypoints": 1, "box": 4},
                    sigmas=np.full(k, 0.1), conf=0.001, iou=0.7, max_det=3)
    np.testing.assert_allclose(out[0], [[0.9, 5, 5, 0.5], [0.3, 25, 25, 0.7], [0, 0, 0, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="NMS kind"):
        nms_poses(raw, kind="soft", raw_columns={}, sigmas=np.ones(1), conf=0, iou=0.5, max_det=1)


def test_metadata_skeleton_matches_builtin():
    assert ExportMetadata.from_props(_metadata(skeleton=COCO17).to_props()).skeleton == COCO17
