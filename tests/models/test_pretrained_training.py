"""``erpose train --pretrained --freeze``: what loads, what trains, what stays exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ultralytics_fakes import write_fake_yolo11

from erpose.models.zoo import build_model


def test_pretrained_o2o_only_fine_tune(tmp_path: Path, capsys, caplog) -> None:
    pytest.importorskip("erpose.data.synth")
    from erpose.cli.main import main
    from erpose.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    source = build_model("yolopose-n").eval()
    with torch.no_grad():
        for name, tensor in source.state_dict().items():
            if name.endswith("bias") and tensor.is_floating_point():
                tensor.normal_(0.0, 0.1)  # distinguishable from a fresh init
    weights = write_fake_yolo11(tmp_path / "yolo11n-pose.pt", source, "n", half=False)
    frozen = "backbone,neck,head.keypoints,head.o2m"
    argv = ["train", "--model", "erpose-n-pt", "--pretrained", str(weights), "--freeze", frozen, "--data", "tiny",
            "--epochs", "1", "--imgsz", "64", "--batch", "8", "--project", str(tmp_path), "--no-progress",
            "plots=false", "ema_decay=0", "optim.warmup_epochs=0"]
    with caplog.at_level("INFO"):
        assert main(argv) == 0
    assert "582/582 tensors from" in caplog.text and "frozen (not trained): backbone, neck" in caplog.text
    trained = load_checkpoint(tmp_path / "exp" / "weights" / "last.pt")["state_dict"]
    expected = source.state_dict()
    # Frozen parts, batch-norm statistics included, are the checkpoint's exactly.
    for key in ("backbone.stem.bn.running_mean", "backbone.psa.cv1.conv.weight", "neck.bottom_up5.cv2.bn.running_var",
                "head.keypoints.2.convs.1.conv.weight"):
        assert torch.equal(trained[key], expected[key.replace("convs.", "")]), key
    assert torch.equal(trained["head.o2m.scores.0.4.bias"], expected["head.scores.0.4.bias"])
    # The o2o score copy started from the class branch and trained.
    assert not torch.equal(trained["head.o2o.scores.0.4.weight"], expected["head.scores.0.4.weight"])
    args = (tmp_path / "exp" / "args.yaml").read_text()
    assert "pretrained:" in args and "- head.o2m" in args


def test_freeze_names_must_exist() -> None:
    model = build_model("erpose-n")
    with pytest.raises(ValueError, match=r"\['head.box'\] name no module"):
        model.freeze(["head.box"])
    assert model.freeze(["backbone"]) == ["backbone"]
    model.train()
    assert not model.backbone.stem.bn.training and model.neck.down3.bn.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
