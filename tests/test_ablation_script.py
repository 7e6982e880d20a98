"""Smoke test of ``benchmarks/ablation.py``: run planning, one tiny run end to end, resumability, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

ablation = pytest.importorskip("ablation")


def test_plan_orders_rows_seeds_extras_peers_and_first() -> None:
    args = ablation.parse_args(["--rows", "B0,B5", "--seeds", "0", "--seeds-extra", "B0:1,B5:1",
                                "--peers", "yolo11n-pose", "--first", "B5_s1,B0_s0"])
    assert ablation.plan_runs(args) == ["B5_s1", "B0_s0", "B5_s0", "B0_s1", "yolo11n-pose_s0"]
    both = ablation.parse_args(["--rows", "B0", "--seeds", "0,1", "--peers", "yolo26n-pose"])
    assert ablation.plan_runs(both) == ["B0_s0", "B0_s1", "yolo26n-pose_s0", "yolo26n-pose_s1"]
    with pytest.raises(SystemExit):
        ablation.plan_runs(ablation.parse_args(["--rows", "B9"]))


def test_train_config_is_the_same_for_every_row_but_model_and_seed() -> None:
    args = ablation.parse_args(["--epochs", "3", "--imgsz", "96", "--batch", "4", "--out", "x"])
    b0, b5 = ablation.train_config(args, "B0_s0", "tiny"), ablation.train_config(args, "B5_s1", "tiny")
    assert (b0.model, b5.model, b0.seed, b5.seed) == ("yolopose-n", "erpose-n", 0, 1)
    assert (b5.project, b5.name, b5.epochs, b5.imgsz, b5.batch) == ("x", "B5_s1", 3, 96, 4)
    assert b0.optim == b5.optim and b0.augment == b5.augment and b0.optim.nominal_batch == 16


def test_one_tiny_run_end_to_end_then_skipped(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    common = ["--data", "tiny", "--eval-data", "tiny", "--epochs", "1", "--imgsz", "64", "--batch", "8",
              "--latency-imgsz", "64", "--latency-runs", "0", "--out", str(tmp_path)]
    assert ablation.main(common + ["--worker", "B5_s0"]) == 0
    row = json.loads((tmp_path / "B5_s0" / "row.json").read_text())
    assert row["model"] == "erpose-n" and row["params"] > 1e6 and row["gflops_640"] > 0
    assert set(row["metrics"]) == {"tiny"} and 0.0 <= row["metrics"]["tiny"]["AP"] <= 1.0
    assert Path(row["onnx"]).is_file() and row["epochs_run"] == 1
    best = tmp_path / "B5_s0" / "weights" / "best.pt"
    stamp = best.stat().st_mtime_ns
    # the coordinator skips a finished run: nothing is retrained, the table is (re)written
    assert ablation.main(common + ["--rows", "B5", "--jobs", "1"]) == 0
    assert best.stat().st_mtime_ns == stamp
    table = (tmp_path / "table.md").read_text()
    assert "| B5_s0 | erpose-n |" in table and "**tiny**" in table
    assert json.loads((tmp_path / "table.json").read_text())["eval_sets"] == ["tiny"]


def test_peer_gets_the_rows_optimiser_and_augmentation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ultralytics peer is trained with the erpose rows' effective nominal batch, warmup and
    augmentation, including what --override changes (it once got ultralytics' own warmup and scale)."""
    seen: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        raise RuntimeError("stop after building the command")

    monkeypatch.setattr(ablation.subprocess, "run", fake_run)
    args = ablation.parse_args(["--data", "tiny", "--epochs", "2", "--imgsz", "64", "--out", str(tmp_path),
                                "--override", "augment.mosaic=0.5", "optim.warmup_epochs=2"])
    with pytest.raises(RuntimeError, match="stop after"):
        ablation.run_peer(args, "yolo11n-pose_s1", [])
    cmd = seen[0]
    assert cmd[cmd.index("--nbs") + 1] == "16" and cmd[cmd.index("--warmup-epochs") + 1] == "2.0"
    assert cmd[cmd.index("--seed") + 1] == "1"
    augment = dict(item.split("=") for item in cmd[cmd.index("--augment") + 1:])
    assert set(augment) == set(ablation.PEER_AUGMENT_KEYS)
    config = ablation.train_config(args, "B0_s1", "tiny")
    assert float(augment["mosaic"]) == 0.5 and float(augment["scale"]) == config.augment.scale == 0.25
    assert int(augment["close_mosaic"]) == config.augment.close_mosaic


def test_variant_rows_are_model_yamls_next_to_the_ladder() -> None:
    from erpose.models.zoo import build_model, get_config

    args = ablation.parse_args(["--rows", "B5,B5-full48", "--seeds", "0"])
    assert ablation.plan_runs(args) == ["B5_s0", "B5-full48_s0"]
    config = ablation.train_config(args, "B5-full48_s0", "tiny")
    assert config.model.endswith("variants/B5-full48.yaml")
    variant, default = get_config(config.model), get_config("erpose-n")
    assert (variant.head.keypoint_width, variant.head.keypoint_separable) == (48, False)
    # variants keep the head they were measured with (score_width 0: the old auto width, 32 at n)
    assert default.head.keypoint_separable and (variant.head.score_width, default.head.score_width) == (0, 64)
    assert build_model(variant).head.keypoint_width == 48
    with pytest.raises(SystemExit, match="B5-full48"):  # the message lists the variants
        ablation.plan_runs(ablation.parse_args(["--rows", "B5-nope"]))


def test_table_times_training_steps_on_an_ablation_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--table-only`` times training steps on the protocol's own training set, which may be a preset
    that only ablation_data registers (it once failed with 'not a dataset preset' after P3)."""
    import ablation_data
    import ablation_report
    import torch

    from erpose.data.synth import PRESETS

    torch.set_num_threads(1)
    monkeypatch.setenv("ERPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ablation_data, "EXTRA_PRESETS", {"tiny-ablation": dict(train=4, val=2, imgsz=64, density="sparse",
                                                                               seed=0, max_people=2)})
    out = tmp_path / "runs"
    rows = [{"run": "B1_s0", "model": "erpose-n-b1", "kind": "erpose", "protocol": {"data": "tiny-ablation"}},
            {"run": "B5-full48_s0", "model": "B5-full48", "kind": "erpose",  # a variant: its name, not a zoo model
             "protocol": {"data": "tiny-ablation"}}]
    for row in rows:
        (out / row["run"]).mkdir(parents=True)
        (out / row["run"] / "row.json").write_text(json.dumps(row))
    try:
        speed = ablation_report.measure_train_speed(out, rows, 64, 2)
    finally:
        PRESETS.pop("tiny-ablation", None)
    assert set(speed) == {"B1", "B5-full48"} and min(speed.values()) > 0
    assert json.loads((out / "train_bench.json").read_text()) == speed  # cached for the next table
