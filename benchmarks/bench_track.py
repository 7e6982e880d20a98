"""Milliseconds per frame of tracking (association + motion + One-Euro smoothing) with 20 people.

Times ``PoseTracker.update`` alone (the model is not involved) on a simulated walking crowd
(``track_sim.py``): 20 people, COCO-17, noisy keypoints, 5 % dropped people, a few low-score
and false detections. The target of issue 15 is <= 1 ms per frame.

    python benchmarks/bench_track.py                    # pose and box association, smoothing on/off
    python benchmarks/bench_track.py --people 50 --frames 500
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import numpy as np
from track_sim import detect, walking_scene

from erpose.skeleton import COCO17
from erpose.track import PoseTracker, TrackerConfig


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_tracker(config: TrackerConfig, dets, repeats: int) -> np.ndarray:
    """Per-frame milliseconds of ``update`` over the whole sequence, best of ``repeats`` runs per frame."""
    best = None
    for _ in range(repeats):
        tracker = PoseTracker(COCO17.sigmas_array(), config)
        times = np.empty(len(dets.scores))
        for t, (scores, kpts) in enumerate(zip(dets.scores, dets.keypoints)):
            start = time.perf_counter()
            tracker.update(scores, kpts)
            times[t] = time.perf_counter() - start
        best = times if best is None else np.minimum(best, times)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs; each frame keeps its fastest (less noise)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    dets = detect(rng, walking_scene(rng, args.frames, args.people))
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores visible), numpy {np.__version__}, "
          f"Python {platform.python_version()}")
    print(f"{args.people} people, {args.frames} frames, {np.mean([len(s) for s in dets.scores]):.1f} detections "
          f"per frame; milliseconds per frame of PoseTracker.update")
    print("| association | motion | smoothing | mean | median | p95 |")
    print("|---|---|---|---|---|---|")
    base = TrackerConfig()
    rows = [("pose", "velocity", True), ("pose", "velocity", False), ("pose", "kalman", True),
            ("pose", "kalman", False), ("box", "velocity", True), ("box", "velocity", False)]
    for association, motion, smooth in rows:
        config = replace(base, association=association, motion=motion,
                         smoothing=replace(base.smoothing, enabled=smooth))
        ms = time_tracker(config, dets, args.repeats)[10:]  # the first frames only create tracks
        print(f"| {association} | {motion} | {'on' if smooth else 'off'} | {ms.mean():.3f} | {np.median(ms):.3f} | "
              f"{np.percentile(ms, 95):.3f} |")

if __name__ == "__main__":
    main()
