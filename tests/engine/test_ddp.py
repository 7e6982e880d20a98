"""DDP through torchrun on CPU (gloo): 2 processes x half batch take the same steps as 1 process.

The stand-in model uses GroupNorm and a per-image-mean loss, so the two settings have equal
gradients by construction. With BatchNorm they would not (batch statistics over 4 images per
process differ from statistics over 8); real runs on several GPUs convert BatchNorm to
SyncBatchNorm, which gloo on CPU does not support (see docs/training.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_standins as standins

from erpose.engine.distributed import EpochBatchSampler

HERE = Path(__file__).parent


def test_sampler_splits_the_global_batch_across_ranks() -> None:
    single = EpochBatchSampler(50, 8, seed=3, rank=0, world_size=1)
    halves = [EpochBatchSampler(50, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for sampler in (single, *halves):
        sampler.set_epoch(2)
    assert single.batches_per_epoch == halves[0].batches_per_epoch == 6  # 50 trimmed to 48
    for full, a, b in zip(single, *halves):
        assert sorted(full) == sorted(a + b)
    # a pure function of (seed, epoch), and resumable at a batch
    again = EpochBatchSampler(50, 8, seed=3)
    again.set_epoch(2, start_batch=4)
    assert list(again) == list(single)[4:] and len(again) == 2
    other = EpochBatchSampler(50, 8, seed=3)
    other.set_epoch(3)
    assert list(other) != list(single)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(7, 4, world_size=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_half_batch_match_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(HERE / "train_standins.py"), str(tmp_path / "ddp"), "--epochs", "2", "--batch", "8", "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)

    torch.set_num_threads(1)
    single = standins.build(tmp_path / "single", epochs=2, batch=8)
    single.train()
    assert ddp["steps"] == single.optimizer_steps == 6
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=0, atol=1e-5, msg=name)
    # rank 0 alone wrote the run directory, with the metrics reduced/broadcast over ranks
    assert (tmp_path / "ddp" / "weights" / "last.pt").is_file()
    assert len((tmp_path / "ddp" / "results.csv").read_text().splitlines()) == 3


def test_cleanup_waits_for_peers_only_after_a_normal_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the barrier, a gloo rank leaving while rank 0 still wrote files aborted (SIGABRT) about
    one torchrun run in three; after an error the barrier could hang against a peer's collective."""
    from erpose.engine import distributed

    calls: list[str] = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    distributed.cleanup()
    assert calls == ["barrier", "destroy"]
    calls.clear()
    distributed.cleanup(wait_for_peers=False)
    assert calls == ["destroy"]
