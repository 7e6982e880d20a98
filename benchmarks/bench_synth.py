"""SynthCrowd speed and crowd-index distribution.

Usage: python benchmarks/bench_synth.py [--images 300] [--imgsz 320] [--workers 1 2] [--stats 300]

Prints (1) images/s of ``erpose.data.synth.generate`` (render + JPEG + labels + JSON, end to end,
wall clock) for each worker count, with the CPU time per image of one worker alone, and (2) the
crowd-index distribution of each density preset (CrowdPose easy < 0.2 <= medium < 0.8 <= hard).
Wall-clock numbers depend on what else the machine runs: compare rows of the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from erpose.data.synth import DENSITIES, generate, render_scene


def bench_speed(images: int, imgsz: int, workers: list[int], density: str) -> None:
    print(f"speed: {images} images at {imgsz} px, preset {density}")
    with tempfile.TemporaryDirectory() as tmp:
        for w in workers:
            t0, c0 = time.perf_counter(), os.times()
            generate(Path(tmp) / f"w{w}", train=images, val=0, imgsz=imgsz, preset=density, workers=w)
            wall, c1 = time.perf_counter() - t0, os.times()
            # CPU of this process and of its (joined) worker processes: what the work itself costs,
            # independent of how many other jobs share the cores.
            cpu = sum(c1[:4]) - sum(c0[:4])
            print(f"  workers {w}: {images / wall:6.1f} img/s wall ({wall:.1f} s); CPU {1000 * cpu / images:.1f} ms/img "
                  f"-> {min(w, os.cpu_count() or 1) * images / cpu:.0f} img/s on {w} idle core(s)")


def bench_crowd_index(count: int, imgsz: int) -> None:
    print(f"crowd index over {count} images at {imgsz} px (CrowdPose val: easy 20.6% / medium 62.0% / hard 17.4%)")
    print("  preset  | mean | p10  | p50  | p90  | max  | easy  | medium | hard  | persons/img | visible kpts")
    for density in DENSITIES:
        ci, persons, v = [], [], []
        for i in range(count):
            scene = render_scene(np.random.default_rng([123, i]), imgsz, density)
            ci.append(scene.crowd_index)
            persons.append(len(scene.keypoints))
            v.append(scene.keypoints[..., 2].reshape(-1))
        ci, vv = np.array(ci), np.concatenate(v)
        p10, p50, p90 = np.percentile(ci, [10, 50, 90])
        split = ((ci < 0.2).mean(), ((ci >= 0.2) & (ci < 0.8)).mean(), (ci >= 0.8).mean())
        print(f"  {density:7s} | {ci.mean():.2f} | {p10:.2f} | {p50:.2f} | {p90:.2f} | {ci.max():.2f} | "
              f"{split[0]:5.1%} | {split[1]:6.1%} | {split[2]:5.1%} | {np.mean(persons):11.1f} | "
              f"{(vv == 2).sum() / max((vv > 0).sum(), 1):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--density", default="mixed", choices=DENSITIES)
    parser.add_argument("--stats", type=int, default=300, help="images per preset for the crowd-index table")
    args = parser.parse_args()
    bench_speed(args.images, args.imgsz, args.workers, args.density)
    if args.stats:
        bench_crowd_index(args.stats, args.imgsz)


if __name__ == "__main__":
    main()
