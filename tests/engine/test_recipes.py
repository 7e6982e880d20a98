"""Recipes: defaults follow the data (demo for SynthCrowd, real data otherwise); flags win; shipped by name."""

from __future__ import annotations

import importlib.resources
from dataclasses import replace
from pathlib import Path

import pytest

from erpose.cli.main import CLIError, build_parser, main
from erpose.cli.train import build_config
from erpose.config import load_yaml
from erpose.engine.recipes import DEMO_BUDGET_MINUTES, RECIPE_DIR, recipe_path, shipped_recipes
from erpose.engine.train_config import TrainConfig


def config_of(*argv: str) -> TrainConfig:
    return build_config(build_parser().parse_args(["train", *argv]))


def coco_recipe() -> TrainConfig:
    return load_yaml(TrainConfig, RECIPE_DIR / "coco.yaml")


def test_the_main_command_is_the_demo_recipe_with_a_ten_minute_budget() -> None:
    config = config_of()
    assert config == TrainConfig(time=DEMO_BUDGET_MINUTES) and DEMO_BUDGET_MINUTES == 10.0
    assert config.imgsz == 128 and config.augment.mosaic == 0.0


def test_other_data_gets_the_real_data_recipe() -> None:
    config, coco = config_of("--data", "my-dataset.yaml"), coco_recipe()
    assert config.data == "my-dataset.yaml" and config.time == 0.0
    assert (config.imgsz, config.epochs, config.batch) == (coco.imgsz, coco.epochs, coco.batch) == (640, 300, 64)
    assert config.optim == coco.optim and config.augment == coco.augment
    assert config.augment.mosaic == 1.0 and config.augment.close_mosaic == 10 and config.optim.nominal_batch == 64
    assert config_of("--data", "person_keypoints_val2017.json").imgsz == 640


def test_synthcrowd_presets_get_the_demo_recipe_at_their_own_size() -> None:
    config = config_of("--data", "synthcrowd-s")
    assert (config.imgsz, config.time, config.augment.mosaic) == (320, DEMO_BUDGET_MINUTES, 0.0)


def test_explicit_flags_and_overrides_win() -> None:
    config = config_of("--data", "my.yaml", "--imgsz", "320", "--epochs", "5", "--batch", "8", "augment.mosaic=0.5")
    assert (config.imgsz, config.epochs, config.batch, config.augment.mosaic) == (320, 5, 8, 0.5)
    assert config.optim.nominal_batch == 64  # the rest is the recipe's
    # A length given explicitly replaces the demo's budget; --time sets one.
    assert (config_of("--epochs", "5").epochs, config_of("--epochs", "5").time) == (5, 0.0)
    assert config_of("epochs=7").time == 0.0
    assert config_of("--time", "3").time == 3.0
    assert config_of("--data", "my.yaml", "--time", "60").time == 60.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--epochs", "5", "--time", "3"])


def test_recipes_are_shipped_in_the_package_and_found_by_name(tmp_path: Path, monkeypatch) -> None:
    assert {"coco", "finetune-yolo11"} <= set(shipped_recipes())
    for name in ("coco", "finetune-yolo11"):
        assert importlib.resources.files("erpose").joinpath(f"configs/train/{name}.yaml").is_file()
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"configs/**/*.yaml"' in pyproject  # package data of the wheel
    monkeypatch.chdir(tmp_path)  # far from any checkout: what a non-editable install sees
    assert config_of("--cfg", "coco", "--data", "x.yaml") == replace(coco_recipe(), data="x.yaml")
    assert recipe_path("configs/train/coco.yaml") == RECIPE_DIR / "coco.yaml"  # the path the docs used to show
    finetune = config_of("--cfg", "finetune-yolo11", "--data", "x.yaml")
    assert finetune.model == "erpose-n-pt" and finetune.freeze == ("backbone", "neck", "head.keypoints", "head.o2m")
    (tmp_path / "mine.yaml").write_text("epochs: 3\n")
    assert config_of("--cfg", "mine.yaml").epochs == 3  # a file still wins over a name
    with pytest.raises(CLIError, match="coco, finetune-yolo11"):
        config_of("--cfg", "no-such-recipe")


def test_the_run_prints_which_recipe_it_chose(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "my-dataset.yaml"
    code = main(["train", "--data", str(missing), "--project", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "my-dataset.yaml" in err  # the data does not exist: after the recipe line
    assert "recipe coco (erpose/configs/train/coco.yaml)" in err and "640 px, 300 epochs" in err
    main(["train", "--data", str(missing), "--epochs", "2", "--imgsz", "64", "--project", str(tmp_path / "runs")])
    assert "64 px, 2 epochs" in capsys.readouterr().err


def test_api_train_follows_the_data_too(tmp_path: Path, monkeypatch) -> None:
    import erpose.engine.launch as launch
    from erpose import ERPose

    seen = []

    def fake_train(config, resume=None, progress=False):
        seen.append(config)
        return launch.TrainResult(run_dir=tmp_path)

    monkeypatch.setattr(launch, "train", fake_train)
    model = ERPose("erpose-n")
    model.train(data="my.yaml")
    model.train()
    model.train(epochs=3)
    assert (seen[0].imgsz, seen[0].epochs, seen[0].time) == (640, 300, 0.0)
    assert (seen[1].imgsz, seen[1].time) == (128, DEMO_BUDGET_MINUTES)
    assert (seen[2].epochs, seen[2].time) == (3, 0.0)
