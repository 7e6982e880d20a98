"""Training throughput (images/s) of ER-Pose-n and the YOLO-Pose baseline, measured in one run.

One training step = forward, criterion (assignment + losses), backward and an SGD step (the
trainer's fused kernel, channels-last tensors, as ``erpose train`` runs them), on a
fixed batch of real SynthCrowd samples (so assignment sees realistic people; data loading is
excluded: it is the same for both models). Prints a table and the ER-Pose / baseline ratio.

    python benchmarks/bench_train.py                       # 320 and 640, batch 16
    python benchmarks/bench_train.py --imgsz 320 --steps 5 --threads 2
    python benchmarks/bench_train.py --imgsz 128 --models erpose-n erpose-n:bf16   # bfloat16 autocast vs float32

A model name with ``:bf16`` runs its steps under ``torch.autocast("cpu", torch.bfloat16)`` (what
``amp`` does on CPUs with native bfloat16), whatever this CPU supports: on one without AVX512-BF16
or AMX it shows what emulated bfloat16 would cost, which is why ``erpose train`` uses float32 there.

The two models alternate step by step (A, B, A, B...) so that a load change on a shared machine
hits both alike.
"""

from __future__ import annotations

import argparse
import time

import torch


def make_batch(imgsz: int, batch: int, data: str):
    from erpose.data.dataset import PoseDataset, collate
    from erpose.data.source import load_source
    from erpose.data.transforms import AugmentConfig

    source = load_source(data, "train")
    dataset = PoseDataset(source, imgsz, augment=AugmentConfig(), seed=0)
    return collate([dataset[i % len(dataset)] for i in range(batch)]), source.skeleton


def measure(names: list[str], batch, skeleton, steps: int, warmup: int) -> list[float]:
    """Images/s of each model, from its fastest timed step; models alternate step by step."""
    from erpose.engine.optim import fast_optimizer
    from erpose.models.criterion import build_criterion
    from erpose.models.zoo import build_model

    runs = []
    for name in names:
        torch.manual_seed(0)
        model_name, _, precision = name.partition(":")
        model = build_model(model_name, skeleton).to(memory_format=torch.channels_last).train()
        optimizer = fast_optimizer(torch.optim.SGD, [{"params": list(model.parameters())}], lr=1e-4,
                                    momentum=0.9, nesterov=True)
        runs.append((model, build_criterion(model.config, skeleton), optimizer, precision == "bf16", []))
    images = batch.images.contiguous(memory_format=torch.channels_last)
    for i in range(warmup + steps):
        for model, criterion, optimizer, bf16, times in runs:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _ = criterion(model(images), batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    # The fastest step: on a shared machine, load only ever adds time.
    return [batch.images.shape[0] / min(times) for *_, times in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (oneDNN builds kernels at first use)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--data", default="tiny", help="SynthCrowd preset (or dataset) the batch comes from")
    parser.add_argument("--models", nargs="+", default=["erpose-n", "yolopose-n"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"fastest of {args.steps} steps after {args.warmup} warmup")
    print(f"{'imgsz':>6} " + " ".join(f"{m + ' img/s':>18}" for m in args.models) + f" {'ratio':>8}")
    for imgsz in args.imgsz:
        batch, skeleton = make_batch(imgsz, args.batch, args.data)
        rates = measure(args.models, batch, skeleton, args.steps, args.warmup)
        ratio = rates[0] / rates[1] if len(rates) > 1 else float("nan")
        print(f"{imgsz:>6} " + " ".join(f"{r:>18.2f}" for r in rates) + f" {ratio:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
