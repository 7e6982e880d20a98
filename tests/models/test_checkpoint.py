import pytest
import torch

from erpose.models import CheckpointError, build_model, load_checkpoint, load_model, save_checkpoint
from erpose.models.checkpoint import FORMAT
from erpose.skeleton import COCO17, CROWDPOSE14


def _outputs(model, images):
    with torch.no_grad():
        return model.eval()(images)


@pytest.mark.parametrize("name", ["erpose-n", "yolopose-n"])
def test_round_trip_reproduces_outputs_exactly(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, CROWDPOSE14)
    images = torch.rand(1, 3, 64, 64)
    expected = _outputs(model, images)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, epoch=3, optimizer={"lr": torch.tensor(0.01)})
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    raw = torch.load(path, weights_only=True)  # the plain-dict contract
    assert raw["format"] == FORMAT and raw["epoch"] == 3 and raw["skeleton"]["name"] == "crowdpose14"
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    restored = load_model(path)
    assert restored.config == model.config and restored.skeleton == CROWDPOSE14
    assert torch.equal(_outputs(restored, images), expected)
    assert load_checkpoint(path)["optimizer"]["lr"].item() == pytest.approx(0.01)


def test_deployed_fused_round_trip(tmp_path):
    model = build_model("erpose-n").deploy().fuse()
    images = torch.rand(1, 3, 64, 64)
    expected = _outputs(model, images)
    restored = load_model(save_checkpoint(tmp_path / "deployed.pt", model))
    assert restored.deployed and restored.fused
    assert torch.equal(_outputs(restored, images), expected)


def test_wrong_keypoint_count_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "k17.pt", build_model("erpose-n", COCO17))
    with pytest.raises(CheckpointError, match="17 keypoints.*crowdpose14.*14"):
        load_model(path, skeleton=CROWDPOSE14)


def test_corrupt_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "missing.pt")
    good = save_checkpoint(tmp_path / "good.pt", build_model("erpose-n"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt|weights_only"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="not an erpose checkpoint"):
        load_model(foreign)


class _Opaque:
    pass


def test_pickled_objects_are_refused_both_ways(tmp_path):
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "x.pt", build_model("erpose-n"), trainer=_Opaque())
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", build_model("erpose-n"), config={})
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "thing": _Opaque()}, pickled)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(pickled)


def test_weights_that_do_not_fit_the_config(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("erpose-n"))
    data = torch.load(path, weights_only=True)
    data["config"]["width"] = 0.5
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_load_model_accepts_names_and_yaml():
    assert load_model("ERPOSE-S-B3").config.step == "B3"
    with pytest.raises(ValueError, match="unknown model"):
        load_model("yolo11n-pose")


def test_checkpoint_from_before_shared_keypoints_loads_with_separate_branches(tmp_path):
    import dataclasses

    from erpose.models.zoo import get_config

    base = get_config("erpose-n")
    old = build_model(dataclasses.replace(base, head=dataclasses.replace(base.head, shared_keypoints=False)))
    save_checkpoint(tmp_path / "old.pt", old)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=True)
    del ckpt["config"]["head"]["shared_keypoints"]  # what an older erpose wrote
    torch.save(ckpt, tmp_path / "old.pt")
    model = load_model(tmp_path / "old.pt")
    assert model.head.keypoints is None and model.head.o2o.keypoints is not None
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(images), old.eval()(images))


@pytest.mark.parametrize("version", [None, "1", "one", 1.5, True])
def test_format_version_that_is_not_an_integer_names_the_file(tmp_path, version):
    path = save_checkpoint(tmp_path / "m.pt", build_model("erpose-n"))
    data = torch.load(path, weights_only=True)
    data["format_version"] = version
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"m\.pt: 'format_version' must be an integer"):
        load_checkpoint(path)
