"""Never lose work: a run killed with SIGKILL mid-epoch, or stopped by Ctrl-C, resumes to the
same weights as an uninterrupted run (same optimiser, EMA, schedule, data order, RNG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_standins as standins

from erpose.engine.hooks import EvalHook, HookBase

HERE = Path(__file__).parent


def _reference(tmp_path: Path, **kwargs) -> dict:
    trainer = standins.build(tmp_path / "reference", **kwargs)
    trainer.train()
    ema = next(h for h in trainer.hooks if type(h).__name__ == "EMAHook").ema
    return {"model": trainer.model.state_dict(), "ema": ema.module.state_dict(), "steps": trainer.optimizer_steps,
            "csv": (tmp_path / "reference" / "results.csv").read_text()}


def _resumed(run_dir: Path, **kwargs) -> dict:
    trainer = standins.build(run_dir, **kwargs)
    standins.resume(trainer, run_dir)
    trainer.train()
    ema = next(h for h in trainer.hooks if type(h).__name__ == "EMAHook").ema
    return {"model": trainer.model.state_dict(), "ema": ema.module.state_dict(), "steps": trainer.optimizer_steps,
            "csv": (run_dir / "results.csv").read_text()}


def _assert_same(a: dict, b: dict) -> None:
    assert a["steps"] == b["steps"]
    for key in ("model", "ema"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=1e-6, msg=f"{key}.{name}")
    # No duplicated or lost rows, same logged losses and metrics (to float noise: the killed run
    # ran in a subprocess with another thread count).
    rows_a = [line.split(",") for line in a["csv"].splitlines()]
    rows_b = [line.split(",") for line in b["csv"].splitlines()]
    assert rows_a[0] == rows_b[0] and len(rows_a) == len(rows_b) == 4
    for ra, rb in zip(rows_a[1:], rows_b[1:]):
        assert [float(x) for x in ra] == pytest.approx([float(x) for x in rb], rel=1e-5)


def test_resume_after_kill_9_mid_epoch_matches_uninterrupted(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    # 48 images, batch 8 -> 6 batches per epoch, accumulation 2. Global batch 8 is epoch 2,
    # batch 3: the first half of an accumulation window, past the last step checkpoint.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "train_standins.py"), str(run_dir), "--kill-at", "8"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = torch.load(run_dir / "weights" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["iter"]) == (1, 2)  # resumes at the last optimiser-step boundary
    _assert_same(_reference(tmp_path), _resumed(run_dir))


class _InterruptAt(HookBase):
    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.global_iter == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_saves_and_resumes_exactly(tmp_path: Path) -> None:
    run_dir = tmp_path / "interrupted"
    trainer = standins.build(run_dir, save_period_steps=0, extra_hooks=(_InterruptAt(9),))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    state = torch.load(run_dir / "weights" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["iter"]) == (1, 4)
    _assert_same(_reference(tmp_path, save_period_steps=0), _resumed(run_dir, save_period_steps=0))


def test_crash_in_evaluation_resumes_by_re_evaluating(tmp_path: Path) -> None:
    run_dir = tmp_path / "evalcrash"
    trainer = standins.build(run_dir, save_period_steps=0)
    eval_hook = next(h for h in trainer.hooks if isinstance(h, EvalHook))

    def flaky(model):
        if trainer.epoch == 1:
            raise RuntimeError("validator crashed")
        return standins.fake_validate(model)

    eval_hook.validate_fn = flaky
    with pytest.raises(RuntimeError, match="validator crashed"):
        trainer.train()
    state = torch.load(run_dir / "weights" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["iter"]) == (1, 6)  # epoch 2 trained, its evaluation pending
    _assert_same(_reference(tmp_path, save_period_steps=0), _resumed(run_dir, save_period_steps=0))


def test_resume_from_a_checkpoint_without_training_state_is_one_line(tmp_path: Path, capsys) -> None:
    """A best.pt copied over last.pt (no optimizer, epoch, EMA...) cannot be resumed: say so, naming it."""
    from erpose.cli.main import main
    from erpose.config import dump_yaml
    from erpose.engine.train_config import TrainConfig
    from erpose.models import build_model, save_checkpoint

    run = tmp_path / "exp"
    (run / "weights").mkdir(parents=True)
    dump_yaml(TrainConfig(project=str(tmp_path)), run / "args.yaml")
    save_checkpoint(run / "weights" / "last.pt", build_model("erpose-n"))  # what strip_train_state leaves
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{run / 'weights' / 'last.pt'}: holds no training state to resume from" in err


def test_binary_train_config_names_the_file(tmp_path: Path, capsys) -> None:
    from erpose.cli.main import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(b"\xff\xfe\x00\x01 binary")
    assert main(["train", "--cfg", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: not a text file" in err and "Traceback" not in err
