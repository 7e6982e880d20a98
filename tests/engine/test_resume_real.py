"""kill -9 then `erpose train --resume` with the real model, criterion and data (tiny SynthCrowd)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

KILLED_RUN = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
from erpose.engine import launch
from erpose.engine.trainer import HookBase

class KillAt(HookBase):
    def after_step(self):
        if self.trainer.global_iter == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

build = launch.build_hooks
def with_kill(**kwargs):
    hooks = build(**kwargs)
    return hooks[:-1] + [KillAt()] + hooks[-1:]
launch.build_hooks = with_kill
from erpose.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_erpose_train_resume_after_kill_9_matches_uninterrupted(tmp_path: Path) -> None:
    pytest.importorskip("erpose.data.synth")
    from erpose.cli.main import main

    # tiny: 16 train images, batch 4 -> 4 batches per epoch, accumulation 2, a step checkpoint
    # after every optimiser step. Global batch 6 is epoch 2, batch 3: mid-epoch, mid-window.
    args = ["train", "--data", "tiny", "--epochs", "2", "--imgsz", "64", "--batch", "4", "--workers", "0",
            "--project", str(tmp_path), "--no-progress"]
    overrides = ["optim.nominal_batch=8", "save_period_steps=1", "plots=false", "val_batch=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, "6", *args, "--name", "killed", *overrides],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    killed = tmp_path / "killed"
    state = torch.load(killed / "weights" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["iter"]) == (1, 2)

    torch.set_num_threads(1)
    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0
    assert main([*args, "--name", "reference", *overrides]) == 0
    resumed = torch.load(killed / "weights" / "last.pt", weights_only=True)
    reference = torch.load(tmp_path / "reference" / "weights" / "last.pt", weights_only=True)
    assert resumed["train_state"]["optimizer_steps"] == reference["train_state"]["optimizer_steps"] == 4
    for key in ("model",):  # raw weights; the EMA ("state_dict") follows from them
        for name, value in reference["train_state"][key].items():
            torch.testing.assert_close(resumed["train_state"][key][name], value, rtol=0, atol=1e-6, msg=name)
    for name, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=1e-6, msg=f"ema {name}")
