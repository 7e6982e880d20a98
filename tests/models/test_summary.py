import pytest

from erpose.cli.main import main
from erpose.models import build_model, model_summary


def test_summary_counts_the_inference_graph_only():
    model = build_model("erpose-n")
    summary = model_summary(model, imgsz=128)
    o2m = sum(p.numel() for p in model.head.o2m.parameters())
    assert summary.parameters_unfused == sum(p.numel() for p in model.parameters()) - o2m
    assert summary.parameters < summary.parameters_unfused  # BN folded
    assert summary.layers > 100 and summary.gflops > 0
    assert model.head.o2m is not None and model.training  # the model itself is untouched
    assert model_summary(model, imgsz=256).gflops > 3.9 * summary.gflops
    with pytest.raises(ValueError, match="multiple of 32"):
        model_summary(model, imgsz=100)


def test_info_cli(capsys, tmp_path):
    assert main(["info", "erpose-n-b1", "--imgsz", "128"]) == 0
    out = capsys.readouterr().out
    assert "step B1" in out and "OKS-NMS" in out and "GFLOPs at 128" in out
    assert main(["info", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert main(["info", "erpose-n", "--imgsz", "100"]) == 2
