"""The loop: accumulation arithmetic, config round trip, and a real `erpose train` run directory."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import train_standins as standins

from erpose.config import ConfigError, dump_yaml, load_yaml
from erpose.engine.launch import increment_run_dir
from erpose.engine.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def test_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    # Constant lr (no warmup, lrf 1): batch 8 x 2 accumulations must take the steps of batch 16.
    constant = {"warmup_epochs": 0.0, "lrf": 1.0}
    small = standins.build(tmp_path / "small", epochs=2, batch=8, nominal=16, optim_kwargs=constant)
    big = standins.build(tmp_path / "big", epochs=2, batch=16, nominal=16, optim_kwargs=constant)
    assert (small.accumulate, big.accumulate) == (2, 1)
    small.train()
    big.train()
    assert small.optimizer_steps == big.optimizer_steps == 6
    for name, value in big.model.state_dict().items():
        torch.testing.assert_close(small.model.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


def test_epoch_end_flushes_a_partial_accumulation_window(tmp_path: Path) -> None:
    trainer = standins.build(tmp_path, epochs=1, batch=8, n=40, nominal=24)  # 5 batches, accumulate 3
    trainer.train()
    assert trainer.optimizer_steps == 2  # after batches 3 and 5 (epoch end)


def test_train_config_yaml_round_trip_and_errors(tmp_path: Path) -> None:
    from erpose.models.criterion import default_criterion_config

    config = TrainConfig(epochs=3, imgsz=96, criterion=default_criterion_config("B0"))
    dump_yaml(config, tmp_path / "args.yaml")
    assert load_yaml(TrainConfig, tmp_path / "args.yaml") == config
    assert load_yaml(TrainConfig, REPO / "configs" / "train" / "default.yaml") == TrainConfig()
    (tmp_path / "bad.yaml").write_text("optim:\n  lr00: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*lr00"):
        load_yaml(TrainConfig, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="multiple of 32"):
        TrainConfig(imgsz=100)


def test_cli_precedence_defaults_cfg_flags_overrides(tmp_path: Path) -> None:
    from erpose.cli.main import build_parser
    from erpose.cli.train import build_config

    dump_yaml(TrainConfig(epochs=7, batch=4, imgsz=128), tmp_path / "cfg.yaml")
    args = build_parser().parse_args(["train", "--cfg", str(tmp_path / "cfg.yaml"), "--epochs", "9",
                                      "optim.optimizer=sgd", "augment.mosaic=0.5"])
    config = build_config(args)
    assert (config.epochs, config.batch, config.imgsz) == (9, 4, 128)
    assert config.optim.optimizer == "sgd" and config.augment.mosaic == 0.5


def test_criterion_overrides_start_from_the_model_steps_defaults() -> None:
    from erpose.cli.main import build_parser
    from erpose.cli.train import build_config
    from erpose.models.criterion import default_criterion_config

    for model, step in (("erpose-n", "B5"), ("yolopose-n", "B0")):
        args = build_parser().parse_args(["train", "--model", model, "criterion.loss.kpt=10"])
        config = build_config(args)
        expected = default_criterion_config(step)
        assert config.criterion.loss.kpt == 10.0
        assert config.criterion.assign == expected.assign
        assert config.criterion.loss.kpt_loss == expected.loss.kpt_loss
    assert build_config(build_parser().parse_args(["train"])).criterion is None


def test_other_data_with_the_demo_recipe_gets_a_notice() -> None:
    from erpose.cli.main import build_parser
    from erpose.cli.train import build_config, demo_recipe_notice

    def notice(argv):
        args = build_parser().parse_args(["train", *argv])
        return demo_recipe_notice(args, build_config(args))

    assert notice([]) is None  # the demo itself
    message = notice(["--data", "coco.yaml"])
    assert message and "coco.yaml" in message and "configs/train/coco.yaml" in message
    assert notice(["--data", "coco.yaml", "--imgsz", "640"]) is None
    assert notice(["--data", "coco.yaml", "epochs=300"]) is None


def test_run_dir_auto_increments(tmp_path: Path) -> None:
    assert increment_run_dir(tmp_path, "exp") == tmp_path / "exp"
    (tmp_path / "exp").mkdir()
    assert increment_run_dir(tmp_path, "exp") == tmp_path / "exp2"
    (tmp_path / "exp2").mkdir()
    assert increment_run_dir(tmp_path, "exp") == tmp_path / "exp3"
    assert increment_run_dir(tmp_path, "exp", exist_ok=True) == tmp_path / "exp"


@pytest.mark.slow
def test_erpose_train_writes_a_complete_run_dir(tmp_path: Path, capsys) -> None:
    pytest.importorskip("erpose.data.synth")
    from erpose.cli.main import main
    from erpose.models.checkpoint import load_model

    torch.set_num_threads(1)
    argv = ["train", "--data", "tiny", "--epochs", "2", "--imgsz", "64", "--batch", "8", "--workers", "0",
            "--project", str(tmp_path), "--no-progress", "optim.warmup_epochs=0.5", "val_batch=8"]
    assert main(argv) == 0
    run = tmp_path / "exp"
    printed = capsys.readouterr().out
    assert "AP50" in printed and str(run / "weights" / "best.pt") in printed
    for name in ("args.yaml", "results.csv", "results.png", "train_batch0.jpg", "val_predictions.jpg",
                 "weights/last.pt", "weights/best.pt"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert load_yaml(TrainConfig, run / "args.yaml").epochs == 2
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for column in ("train/loss", "train/kpt", "train/score", "train/o2o_kpt", "lr/weight", "lr/bias",
                   "metrics/AP", "metrics/AP50"):
        assert column in rows[0], column
    assert float(rows[1]["train/loss"]) > 0 and 0.0 <= float(rows[1]["metrics/AP"]) <= 1.0
    model = load_model(run / "weights" / "last.pt")
    assert type(model).__name__ == "PoseModel"
    last = torch.load(run / "weights" / "last.pt", weights_only=True)
    best = torch.load(run / "weights" / "best.pt", weights_only=True)
    assert last["train_state"]["epoch"] == 2 and "train_state" not in best  # best.pt stripped for users

    # The trained checkpoint goes straight into `erpose predict` (issue 6's end-to-end check).
    import json

    from erpose.data.source import load_source

    val = load_source("tiny", "val")
    image_dir = Path(val.samples[0].image_path).parent
    argv = ["predict", "--weights", str(run / "weights" / "best.pt"), "--source", str(image_dir), "--imgsz", "64",
            "--conf", "0.0", "--max-det", "5", "--save-json", "--save-txt", "--project", str(tmp_path / "pred"),
            "--name", "p", "--no-progress"]
    assert main(argv) == 0
    out = tmp_path / "pred" / "p"
    drawn = sorted(p.name for p in out.glob("*.jpg"))
    assert drawn == sorted(Path(s.image_path).name for s in val.samples)
    detections = json.loads(next(out.glob("*.json")).read_text())
    assert detections and all(len(d["keypoints"]) == 3 * 17 and 0.0 <= d["score"] <= 1.0 for d in detections)
    assert len({d["image_id"] for d in detections}) == len(val.samples)
    labels = list((out / "labels").glob("*.txt"))
    assert len(labels) == len(val.samples)
    assert all(len(line.split()) == 5 + 3 * 17 for f in labels for line in f.read_text().splitlines())
