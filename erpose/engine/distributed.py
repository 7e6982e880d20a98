"""Distributed data parallel plumbing: torchrun setup, the epoch batch sampler, reductions.

One process per device, started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``). A single process without those variables runs with
``world_size == 1`` and every helper here degrades to a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 is the one that logs and writes files).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the torch device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``''``/``auto`` -> CUDA when available else CPU; ``cpu``; ``0``/``cuda:0`` -> that GPU.

    Raises:
        ValueError: a CUDA device is asked for and none is available.
    """
    device = str(device).strip().lower()
    if device in ("", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device.isdigit():
        device = f"cuda:{device}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        if device == "cuda":
            device = f"cuda:{local_rank}"
        return torch.device(device)
    raise ValueError(f"device {device!r} is not one of: auto, cpu, cuda, cuda:N, N")


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group if this process was started by torchrun.

    Uses NCCL on CUDA and gloo on CPU. Without torchrun variables, returns a single-process context.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, resolved)


def cleanup(wait_for_peers: bool = True) -> None:
    """Leave the process group (no-op when not distributed).

    On a normal exit all ranks meet at a barrier first: a gloo rank that tore its connections down
    while a peer was still working (rank 0 writing its last files) aborted about one run in three
    with "terminate called without an active exception". After an error, pass
    ``wait_for_peers=False``: the peers may be blocked in another collective, and torchrun stops
    them once this rank exits.
    """
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a copy; the input is unchanged)."""
    if world_size() == 1:
        return tensor.clone()
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a copy)."""
    out = tensor.clone()
    if world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True only if ``flag`` is true on every rank (used so all ranks skip a bad step together)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (e.g. the run directory, validation metrics)."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches whose order is a pure function of (seed, epoch), split over ranks, resumable mid-epoch.

    Every epoch draws ``randperm(num_samples)`` from a generator seeded with ``seed + epoch``,
    trims it to a multiple of ``world_size * batch_size`` (so every rank has the same number of
    batches and DDP never waits on a rank that ran out), and gives rank r the items
    ``perm[r::world_size]``. Batch i of rank r is thus a slice of the global batch
    ``perm[i * world_size * batch_size : (i + 1) * world_size * batch_size]``: two processes with
    half the batch see exactly the images one process with the full batch sees.

    Args:
        num_samples: dataset length.
        batch_size: images per batch on this rank.
        seed: base seed of the data order.
        rank, world_size: this process's place in the job.
        shuffle: False keeps the dataset order (still split and trimmed).

    Raises:
        ValueError: the dataset holds fewer than one global batch.
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        if num_samples < batch_size * world_size:
            raise ValueError(
                f"dataset has {num_samples} images, fewer than one batch of {batch_size} x {world_size} "
                "process(es); lower --batch"
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (resume)."""
        self.epoch, self.start_batch = epoch, start_batch

    def indices(self, epoch: int) -> list[int]:
        """This rank's full index list for ``epoch`` (before skipping)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.num_samples, generator=generator)
        else:
            perm = torch.arange(self.num_samples)
        usable = self.batches_per_epoch * self.batch_size * self.world_size
        return perm[:usable][self.rank :: self.world_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        own = self.indices(self.epoch)
        for i in range(self.start_batch, self.batches_per_epoch):
            yield own[i * self.batch_size : (i + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
