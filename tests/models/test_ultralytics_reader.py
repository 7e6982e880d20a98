"""The allowlist reader of ultralytics checkpoints and the exact YOLO11 -> yolopose mapping,
on checkpoints written by the test (``ultralytics_fakes``); the real release file is in
``tests/pretrained/test_yolo11n_pose.py``."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from ultralytics_fakes import write_fake_yolo11

from erpose.models.checkpoint import CheckpointError, load_checkpoint, load_model
from erpose.models.pretrained import load_pretrained
from erpose.models.ultralytics_map import candidate_weights, convert_ultralytics, transfer_pretrained
from erpose.models.ultralytics_reader import (
    UltralyticsCheckpointError,
    UnsafeCheckpointError,
    is_ultralytics_file,
    read_ultralytics,
)
from erpose.models.zoo import build_model
from erpose.skeleton import CROWDPOSE14


def _realistic(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random non-trivial weights everywhere (a fresh model's head outputs are all alike)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                if name.endswith("running_var"):
                    tensor.uniform_(0.5, 1.5, generator=generator)
                elif name.endswith(("running_mean", "bias")):
                    tensor.normal_(0.0, 0.1, generator=generator)
                elif name.endswith("bn.weight"):
                    tensor.uniform_(0.5, 1.5, generator=generator)
                else:
                    fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                    tensor.normal_(0.0, fan_in**-0.5, generator=generator)
    return model.eval()


@pytest.fixture(scope="module")
def fake_n(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    model = _realistic(build_model("yolopose-n"))
    path = write_fake_yolo11(tmp_path_factory.mktemp("ultra") / "yolo11n-pose.pt", model, "n", half=False)
    return path, model


def test_reader_recovers_weights_and_metadata(fake_n):
    path, model = fake_n
    checkpoint = read_ultralytics(path)
    assert checkpoint.task == "pose" and checkpoint.kpt_shape == (17, 3) and checkpoint.scale == "n"
    assert checkpoint.layer_types[-1] == "Pose" and checkpoint.layer_types[2] == "C3k2"
    assert checkpoint.batchnorm == pytest.approx((1e-3, 0.03))
    assert checkpoint.stride == (8, 16, 32) and checkpoint.names == {0: "person"}
    assert checkpoint.metadata["version"] == "8.2.100" and checkpoint.metadata["weights_from"] == "model"
    stem = checkpoint.state_dict["model.0.conv.weight"]
    assert stem.dtype == torch.float32 and torch.equal(stem, model.state_dict()["backbone.stem.conv.weight"])
    assert is_ultralytics_file(path)


def test_converted_model_equals_the_source_model(fake_n):
    """Every tensor maps, and the decoding fold reproduces the outputs (keypoints, boxes, scores)."""
    path, model = fake_n
    converted = convert_ultralytics(read_ultralytics(path))
    assert converted.config.step == "B0" and converted.config.scale == "n"
    images = torch.rand(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(images), converted(images)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_keypoint_decoding_is_folded_by_hand(fake_n):
    """ultralytics: x = (2r + a - 0.5) s; erpose: x = (a + r') s, so r' = 2r - 0.5 on x and y only."""
    path, _ = fake_n
    checkpoint = read_ultralytics(path)
    raw_bias = checkpoint.state_dict["model.23.cv4.0.2.bias"]
    folded = candidate_weights(checkpoint)["keypoint.0.out.bias"]
    assert folded[0] == pytest.approx(2 * float(raw_bias[0]) - 0.5)  # nose x
    assert folded[1] == pytest.approx(2 * float(raw_bias[1]) - 0.5)  # nose y
    assert folded[2] == pytest.approx(float(raw_bias[2]))  # nose visibility: untouched


def test_half_precision_ema_file_is_read(tmp_path):
    model = _realistic(build_model("yolopose-n"), seed=3)
    path = write_fake_yolo11(tmp_path / "last.pt", model, "n", half=True, under="ema")
    checkpoint = read_ultralytics(path)
    assert checkpoint.metadata["weights_from"] == "ema"
    converted = convert_ultralytics(checkpoint)
    expected = model.state_dict()["neck.down3.conv.weight"].half().float()
    assert torch.equal(converted.state_dict()["neck.down3.conv.weight"], expected)


@pytest.mark.parametrize("scale", ["s", "m"])
def test_other_scales_map_exactly(tmp_path, scale):
    model = build_model(f"yolopose-{scale}").eval()
    path = write_fake_yolo11(tmp_path / f"yolo11{scale}-pose.pt", model, scale, half=False)
    converted = convert_ultralytics(read_ultralytics(path))
    for key, value in model.state_dict().items():
        if not key.startswith("head.keypoints") or not key.endswith(("2.weight", "2.bias")):
            assert torch.equal(converted.state_dict()[key], value), key


@pytest.mark.parametrize("scale", ["l", "x"])
def test_large_scales_map_exactly_in_memory(scale):
    """l and x without a file (hundreds of MB): the checkpoint object as the reader would return it."""
    from ultralytics_fakes import LAYER_TYPES, ultralytics_state_dict

    from erpose.models.ultralytics_reader import UltralyticsCheckpoint

    model = build_model(f"yolopose-{scale}").eval()
    checkpoint = UltralyticsCheckpoint(
        source=f"yolo11{scale}-pose.pt", task="pose", layer_types=[*LAYER_TYPES, "Pose"],
        state_dict=ultralytics_state_dict(model), yaml={"scale": scale}, kpt_shape=(17, 3), names={0: "person"},
        stride=(8, 16, 32), batchnorm=(1e-3, 0.03))
    converted = convert_ultralytics(checkpoint)
    for key, value in model.state_dict().items():
        if not key.startswith("head.keypoints") or not key.endswith(("2.weight", "2.bias")):
            assert torch.equal(converted.state_dict()[key], value), key


def test_detection_checkpoint_fills_backbone_neck_box_and_person_score(tmp_path):
    source = _realistic(build_model("yolopose-n"), seed=5)
    path = write_fake_yolo11(tmp_path / "yolo11n.pt", source, "n", detection=True, half=False)
    checkpoint = read_ultralytics(path)
    assert checkpoint.task == "detect" and checkpoint.kpt_shape is None
    with pytest.raises(UltralyticsCheckpointError, match="detection checkpoint has no keypoint head"):
        convert_ultralytics(checkpoint)
    target = build_model("erpose-n-pt")
    report = transfer_pretrained(target, checkpoint)
    state = target.state_dict()
    assert torch.equal(state["backbone.psa.m.0.attn.qkv.conv.weight"], source.state_dict()["backbone.psa.m.0.attn.qkv.conv.weight"])
    # The 80-class output keeps the person row only; both score copies start from it.
    for copy in ("o2m", "o2o"):
        assert torch.equal(state[f"head.{copy}.scores.2.4.bias"], source.state_dict()["head.scores.2.4.bias"])
    assert all(k.startswith("head.keypoints") for k in report.fresh)


def test_erpose_head_takes_what_fits(fake_n):
    path, source = fake_n
    checkpoint = read_ultralytics(path)
    pt_layout = build_model("erpose-n-pt")
    assert not transfer_pretrained(pt_layout, checkpoint).fresh  # every tensor of the ER head is filled
    default = build_model("erpose-n")
    report = transfer_pretrained(default, checkpoint)
    assert report.loaded and {k.split(".")[1] for k in report.fresh} == {"keypoints"}  # separable, wider
    # The pt layout's o2m copy is the baseline without its box branch (B1): same keypoints.
    images = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    b1 = build_model("erpose-n-b1")
    transfer_pretrained(b1, checkpoint)
    with torch.no_grad():
        expected = source.eval()(images)[..., : 1 + 51]
        torch.testing.assert_close(b1.eval()(images), expected, atol=1e-4, rtol=1e-4)


def test_other_scale_is_refused(fake_n):
    path, _ = fake_n
    with pytest.raises(UltralyticsCheckpointError, match="does not fit s-scale models"):
        transfer_pretrained(build_model("erpose-s-pt"), read_ultralytics(path))


def test_load_model_and_pretrained_accept_the_file(fake_n):
    path, _ = fake_n
    assert load_model(path).config.step == "B0"
    report = load_pretrained(build_model("erpose-n-pt"), path)
    assert not report.fresh and "582/582" in report.summary()


def test_wrong_keypoint_count_is_one_clear_error(fake_n):
    path, _ = fake_n
    with pytest.raises(CheckpointError, match="predicts 17 keypoints, skeleton 'crowdpose14' has 14"):
        load_model(path, skeleton=CROWDPOSE14)


def test_weights_only_loader_points_to_the_converter(fake_n):
    path, _ = fake_n
    with pytest.raises(CheckpointError, match="an ultralytics checkpoint; convert it first"):
        load_checkpoint(path)


def test_truncated_and_foreign_files_are_refused(fake_n, tmp_path):
    path, _ = fake_n
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UltralyticsCheckpointError, match="not a torch zip archive"):
        read_ultralytics(truncated)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(UltralyticsCheckpointError, match="not a torch zip archive"):
        read_ultralytics(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(UltralyticsCheckpointError, match="no 'model' or 'ema' module"):
        read_ultralytics(plain)
    assert not is_ultralytics_file(plain) and not is_ultralytics_file(truncated)


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _GetattrEscape:
    def __reduce__(self):
        return (getattr, (set, "__subclasses__"))


def test_reduce_payload_is_refused_with_nothing_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsACommand(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load (posix|nt)\.system .*nothing was executed"):
        read_ultralytics(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_getattr_is_answered_only_for_stub_classes(tmp_path):
    path = tmp_path / "escape.pt"
    torch.save({"model": _GetattrEscape()}, path)
    with pytest.raises(UnsafeCheckpointError, match="getattr on type is not allowed"):
        read_ultralytics(path)


def test_a_global_hidden_inside_an_ultralytics_file_is_refused(fake_n, tmp_path):
    """Rewrite a real-looking archive so that its pickle REDUCEs builtins.eval: refused."""
    path, _ = fake_n
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    payload = io.BytesIO()
    with _fake_ultralytics_class() as pose_model:
        pickle.Pickler(payload, protocol=2).dump({"model": pose_model(), "x": _EvalCall()})
    members[pkl] = payload.getvalue()
    evil = tmp_path / "evil-ultra.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert is_ultralytics_file(evil)  # it names ultralytics, so every loader routes it to the reader
    with pytest.raises(CheckpointError, match=r"refused to load (__builtin__|builtins)\.eval"):
        load_model(evil)


class _EvalCall:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_cli_names_a_keypoint_count_that_does_not_match_the_data(fake_n, tmp_path, capsys):
    import cv2
    import numpy as np
    import yaml

    from erpose.cli.main import main

    path, _ = fake_n
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "val" / "a.jpg"), np.zeros((48, 64, 3), np.uint8))
    (tmp_path / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2 0.5 0.5 2 0.6 0.6 2 0.4 0.4 2\n")
    spec = {"path": str(tmp_path), "train": "images/val", "val": "images/val", "kpt_shape": [3, 3],
            "flip_idx": [0, 1, 2], "kpt_oks_sigmas": [0.05] * 3, "names": {0: "person"}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(spec))
    code = main(["val", "--weights", str(path), "--data", str(tmp_path / "data.yaml"), "--imgsz", "64",
                 "--no-progress", "--out", str(tmp_path / "val")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(path) in err[0] and "predicts 17 keypoints" in err[0] and "has 3" in err[0]


def test_an_erpose_checkpoint_that_mentions_ultralytics_is_not_taken_for_one(tmp_path):
    from erpose.models.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "converted.pt", build_model("erpose-n"),
                           converted_from="/models/ultralytics.nn/yolo11n-pose.pt")
    assert not is_ultralytics_file(path)
    assert load_model(path).config.step == "B5"


@contextlib.contextmanager
def _fake_ultralytics_class():
    """``ultralytics.nn.tasks.PoseModel`` as an importable stand-in while pickling, removed after."""
    class PoseModel(torch.nn.Module):
        pass

    PoseModel.__module__, PoseModel.__qualname__ = "ultralytics.nn.tasks", "PoseModel"
    names = ("ultralytics", "ultralytics.nn", "ultralytics.nn.tasks")
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["ultralytics.nn.tasks"].PoseModel = PoseModel
    try:
        yield PoseModel
    finally:
        for name in names:
            sys.modules.pop(name, None)


def test_malformed_module_state_is_one_clear_error(tmp_path):
    path = tmp_path / "odd.pt"
    with _fake_ultralytics_class() as pose_model:
        fake = pose_model()
        fake._modules = ["not", "a", "dict"]  # a list where ultralytics stores its layers
        torch.save({"model": fake}, path)
    assert is_ultralytics_file(path)
    with pytest.raises(UltralyticsCheckpointError, match="unexpected checkpoint structure"):
        read_ultralytics(path)


def test_a_quality_aware_score_starts_as_the_class_branch(fake_n):
    """The logit that also reads the keypoint features gets zeros for them: same scores as without."""
    import dataclasses

    from erpose.models.zoo import get_config

    path, _ = fake_n
    checkpoint = read_ultralytics(path)
    config = get_config("erpose-n-pt")
    quality = build_model(dataclasses.replace(config, head=dataclasses.replace(config.head, score_sees_keypoints=True)))
    _realistic(quality, seed=5)  # the new input weights start non-zero: the transfer must zero them
    report = transfer_pretrained(quality, checkpoint)
    assert not report.fresh
    plain = build_model("erpose-n-pt")
    transfer_pretrained(plain, checkpoint)
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(quality.eval()(images), plain.eval()(images), atol=1e-5, rtol=1e-5)
