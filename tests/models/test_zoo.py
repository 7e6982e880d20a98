from pathlib import Path

import pytest
import torch

from erpose.config import ConfigError, load_yaml
from erpose.models import MODEL_NAMES, HeadConfig, ModelConfig, build_model, get_config
from erpose.models.er_head import ERHead
from erpose.models.outputs import HeadOutput
from erpose.models.yolopose_head import YOLOPoseHead
from erpose.skeleton import COCO17, CROWDPOSE14, Skeleton

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "models"
SCALES = ("n", "s", "m", "l", "x")
FIVE = Skeleton.custom(5, sigmas=[0.05] * 5)


def test_zoo_names_and_steps():
    for scale in SCALES:
        assert get_config(f"erpose-{scale}").step == "B5"
        assert get_config(f"yolopose-{scale}").step == "B0"
        for step in range(1, 5):
            assert get_config(f"erpose-{scale}-b{step}").step == f"B{step}"
    assert len(MODEL_NAMES) == 35
    # The pre-training layout: the baseline's branch shapes under an o2o ER head.
    for scale in "nsmlx":
        pt, baseline = build_model(f"erpose-{scale}-pt").head, build_model(f"yolopose-{scale}").head
        assert get_config(f"erpose-{scale}-pt").step == "B5" and pt.o2o is not None
        assert (pt.score_width, pt.keypoint_width) == (baseline.score_width, baseline.keypoint_width)
    assert get_config("erpose-x") == ModelConfig(
        "x", 1.0, 1.5, 512, HeadConfig(score_width=384, keypoint_separable=True), "B5")
    # the ER score branch is as wide as the baseline's class branch (the P3 channel count)
    for scale in "nsmlx":
        er, baseline = build_model(f"erpose-{scale}").head, build_model(f"yolopose-{scale}").head
        assert er.score_width == baseline.score_width
    b1 = get_config("erpose-s-b1").head
    assert (b1.kind, b1.box, b1.o2o) == ("yolopose", False, False)
    # B2..B4 share one head; only the step (read by the criterion) differs.
    heads = {get_config(f"erpose-m-b{i}").head for i in (2, 3, 4)}
    assert heads == {HeadConfig(kind="er", box=False, o2o=False, score_width=256, keypoint_separable=True)}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="erpose-n.*yolopose-x"):
        build_model("erpose-q")


def test_invalid_head_configs_raise():
    with pytest.raises(ConfigError, match="box"):
        HeadConfig(kind="er", box=True)
    with pytest.raises(ConfigError, match="o2o"):
        HeadConfig(kind="yolopose", box=True, o2o=True)
    with pytest.raises(ConfigError, match="step"):
        ModelConfig(step="B9")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_yaml_mirrors_the_zoo(name):
    assert load_yaml(ModelConfig, CONFIG_DIR / f"{name}.yaml") == get_config(name)


def test_build_from_yaml_and_unknown_yaml_key(tmp_path):
    model = build_model(str(CONFIG_DIR / "erpose-n-b2.yaml"))
    assert model.config.step == "B2" and model.needs_nms
    bad = tmp_path / "bad.yaml"
    bad.write_text("scale: n\nhead:\n  kind: er\n  wings: 2\n")
    with pytest.raises(ConfigError, match="wings"):
        build_model(str(bad))


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_eval_and_train_shapes(scale):
    model = build_model(f"erpose-{scale}")
    images = torch.rand(2, 3, 64, 96)
    num_anchors = 8 * 12 + 4 * 6 + 2 * 3
    out = model.train()(images)
    assert isinstance(out, HeadOutput)
    assert out.anchor_points.shape == (num_anchors, 2) and out.strides.shape == (num_anchors,)
    for branch in (out.o2m, out.o2o):
        assert branch.scores.shape == (2, num_anchors)
        assert branch.keypoints.shape == (2, num_anchors, 17, 3)
        assert branch.boxes is None and branch.box_distributions is None
    with torch.no_grad():
        assert model.eval()(images).shape == (2, 100, 1 + 3 * 17)


@pytest.mark.parametrize("skeleton", [COCO17, CROWDPOSE14, FIVE], ids=lambda s: f"K{s.num_keypoints}")
@pytest.mark.parametrize("name", ["erpose-n", "yolopose-n", "erpose-n-b1", "erpose-n-b3"])
def test_every_step_and_k_shapes(name, skeleton):
    k = skeleton.num_keypoints
    model = build_model(name, skeleton)
    assert model.num_keypoints == k and model.skeleton is skeleton and model.strides == (8, 16, 32)
    images = torch.rand(1, 3, 64, 64)
    out = model.train()(images)
    assert out.o2m.keypoints.shape == (1, 84, k, 3)
    assert (out.o2o is not None) == (name == "erpose-n")
    if name == "yolopose-n":
        assert out.o2m.boxes.shape == (1, 84, 4) and out.o2m.box_distributions.shape == (1, 84, 4, 16)
    with torch.no_grad():
        raw = model.eval()(images)
    expected = {"erpose-n": (1, 100, 1 + 3 * k), "yolopose-n": (1, 84, 1 + 3 * k + 4)}.get(name, (1, 84, 1 + 3 * k))
    assert raw.shape == expected
    detections = model.predict(images, conf=0.0, max_det=7)
    assert len(detections) == 1 and detections[0].shape[1] == 1 + 3 * k and detections[0].shape[0] <= 7


def test_head_kinds_and_needs_nms():
    assert isinstance(build_model("erpose-n").head, ERHead) and not build_model("erpose-n").needs_nms
    for name in ("yolopose-n", "erpose-n-b1", "erpose-n-b2", "erpose-n-b4"):
        assert build_model(name).needs_nms
    assert isinstance(build_model("erpose-n-b1").head, YOLOPoseHead)
    assert not build_model("erpose-n-b1").head.has_box


def test_input_checks():
    model = build_model("erpose-n")
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))
