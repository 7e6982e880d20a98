"""PyTorch CPU latency: ER-Pose vs the YOLO-Pose baseline, same run, same input.

End to end means what a user waits for: for ER-Pose the eval forward (backbone, neck, o2o head,
``(a + r) * s`` decoding, top-k) plus the confidence filter; for the baseline the eval forward
(with DFL box and keypoint decoding) plus confidence filter and box NMS. Both models are
deployed and fused (the inference graphs). Weights are random, so the baseline NMS sees
whatever survives ``--conf`` (at 0.001 nearly every anchor, capped at 1000 candidates, as in
evaluation). Example::

    python benchmarks/bench_latency.py --imgsz 640 --runs 20 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from erpose.models import build_model


def interleaved_medians(fns: dict[str, object], runs: int, warmup: int) -> dict[str, float]:
    """Median ms of each callable, timed in alternation (order flipped every run) so that a
    machine whose load changes during the run slows every candidate alike."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def torch_callables(name: str, imgsz: int, conf: float):
    """(forward, end-to-end) callables of one deployed, fused model at batch 1."""
    model = build_model(name).deploy().fuse()
    images = torch.rand(1, 3, imgsz, imgsz)

    @torch.inference_mode()
    def forward():
        return model(images)

    @torch.inference_mode()
    def end_to_end():
        return model.postprocess(model(images), conf=conf, max_det=100)

    return forward, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--conf", type=float, default=0.001, help="confidence threshold (0.001 = evaluation)")
    parser.add_argument("--scale", default="n", choices=list("nsmlx"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, baseline = f"erpose-{args.scale}", f"yolopose-{args.scale}"
    callables = {name: torch_callables(name, args.imgsz, args.conf) for name in (ours, baseline)}
    forward = interleaved_medians({n: c[0] for n, c in callables.items()}, args.runs, args.warmup)
    end_to_end = interleaved_medians({n: c[1] for n, c in callables.items()}, args.runs, args.warmup)
    results = {
        name: {"forward_ms": forward[name], "end_to_end_ms": end_to_end[name], "detections": len(c[1]()[0])}
        for name, c in callables.items()
    }
    print(
        f"PyTorch CPU, batch 1, {args.imgsz}x{args.imgsz}, {args.threads} thread(s), conf {args.conf}, "
        f"median of {args.runs} interleaved runs (torch {torch.__version__})"
    )
    print(f"{'model':<14}{'forward ms':>12}{'end-to-end ms':>16}{'detections':>12}")
    for name, r in results.items():
        print(f"{name:<14}{r['forward_ms']:>12.1f}{r['end_to_end_ms']:>16.1f}{int(r['detections']):>12}")
    speedup = results[baseline]["end_to_end_ms"] / results[ours]["end_to_end_ms"]
    print(f"end-to-end speed-up of {ours} over {baseline}: {speedup:.2f}x")


if __name__ == "__main__":
    main()
