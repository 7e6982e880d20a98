import numpy as np
import pytest

import erpose
from erpose.api import ERPose


def test_lazy_export():
    assert erpose.ERPose is ERPose


def test_fresh_model_predict_and_info():
    model = ERPose("erpose-n")
    assert model.skeleton.num_keypoints == 17
    image = np.full((96, 128, 3), 127, np.uint8)
    results = model.predict(image, imgsz=64, conf=0.0, max_det=5)
    assert len(results) == 1
    r = results[0]
    assert r.keypoints.xy.shape[1:] == (17, 2)
    assert len(r) <= 5
    summary = model.info(imgsz=64)
    assert summary.parameters > 1_000_000


def test_unknown_model_name_is_clear():
    with pytest.raises(ValueError, match="erpose-n"):
        ERPose("erpose-zz")


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="onnx"):
        ERPose("erpose-n").export(format="tflite", path=tmp_path / "m.x")
