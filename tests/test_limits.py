"""Size arguments above erpose.limits fail at once with a message, before any large allocation."""

import numpy as np
import pytest

from erpose.limits import MAX_BATCH, MAX_DET, MAX_IMGSZ, LimitError, check_size


def test_check_size_accepts_up_to_the_limit_and_names_the_argument():
    assert check_size("batch", np.int64(3), 4) == 3
    assert check_size("batch", 4, 4) == 4
    with pytest.raises(LimitError, match="batch 5 is above the limit of 4"):
        check_size("batch", 5, 4)
    for bad in (0, -1, 2.5, "8", True):
        with pytest.raises(LimitError, match="positive integer"):
            check_size("batch", bad, 4)


def test_predictor_refuses_huge_sizes_before_running():
    from erpose.engine.predictor import Predictor
    from erpose.models.zoo import build_model

    model = build_model("erpose-n")
    with pytest.raises(LimitError, match=f"imgsz 100000 px is above the limit of {MAX_IMGSZ}"):
        Predictor(model, imgsz=100_000)
    with pytest.raises(LimitError, match="imgsz"):
        Predictor(model, imgsz=(64, 100_000))
    with pytest.raises(LimitError, match="batch"):
        Predictor(model, batch_size=MAX_BATCH + 1)
    with pytest.raises(LimitError, match="max_det"):
        Predictor(model, max_det=MAX_DET + 1)


def test_validate_refuses_huge_sizes_before_loading_anything():
    from erpose.engine.validator import validate

    for kwargs in ({"imgsz": 100_000}, {"batch_size": MAX_BATCH + 1}, {"max_det": MAX_DET + 1}):
        with pytest.raises(LimitError):
            validate("erpose-n", "no-such-dataset.yaml", **kwargs)


def test_train_config_and_export_config_bound_their_sizes():
    from erpose.engine.train_config import TrainConfig
    from erpose.export.onnx import OnnxExportConfig

    with pytest.raises(LimitError, match="imgsz"):
        TrainConfig(imgsz=(MAX_IMGSZ // 32 + 1) * 32)
    with pytest.raises(LimitError, match="batch"):
        TrainConfig(batch=MAX_BATCH + 1)
    with pytest.raises(LimitError, match="imgsz"):
        OnnxExportConfig(imgsz=(64, MAX_IMGSZ + 32))
    with pytest.raises(LimitError, match="max_det"):
        OnnxExportConfig(max_det=MAX_DET + 1)
    OnnxExportConfig(imgsz=MAX_IMGSZ, batch=MAX_BATCH, max_det=MAX_DET)  # the limits themselves are allowed


def test_cli_predict_imgsz_100000_is_one_line(tmp_path, capsys):
    import cv2

    from erpose.cli.main import main

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    code = main(["predict", "--weights", "erpose-n", "--source", str(tmp_path / "a.jpg"), "--imgsz", "100000",
                 "--project", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "imgsz 100000 px is above the limit" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_check_imgsz_is_one_rule_with_two_stride_modes(caplog):
    import logging

    from erpose.limits import check_imgsz

    assert check_imgsz(64) == (64, 64) and check_imgsz((64, 96)) == (64, 96) and check_imgsz(70) == (70, 70)
    assert check_imgsz((64, 96), 32) == (64, 96)
    with pytest.raises(LimitError, match=r"imgsz 70 is not a multiple of 32 .*use 96"):
        check_imgsz(70, 32)
    with caplog.at_level(logging.WARNING):
        assert check_imgsz((70, 100), 32, round_up=True) == (96, 128)
    assert "not a multiple of the stride 32" in caplog.text
    for bad in (0, -32, 1.5, "64", (64,), (64, 64, 64), True):
        with pytest.raises(LimitError):
            check_imgsz(bad)
    with pytest.raises(LimitError, match=f"--imgsz {MAX_IMGSZ + 32} px is above the limit"):
        check_imgsz(MAX_IMGSZ + 32, 32, name="--imgsz")
