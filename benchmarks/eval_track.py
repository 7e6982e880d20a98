"""Tracker quality on simulated crowds: pose vs box association, motion models, smoothing.

Ground truth is known exactly (``track_sim.py``), so this measures the tracker alone: MOTA over
keypoints (PoseTrack), IDF1, id switches per 100 tracks, and jitter / lag of raw vs smoothed
keypoints, for several noise and drop rates. Averages over ``--seeds`` scenes.

    python benchmarks/eval_track.py                     # the table in docs/track.md
    python benchmarks/eval_track.py --frames 100 --seeds 1
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from track_sim import detect, walking_scene

from erpose.skeleton import COCO17
from erpose.track import PoseTracker, TrackerConfig
from erpose.track.metrics import identity_scores, jitter, keypoint_mota, lag_frames


def run_tracker(config: TrackerConfig, dets) -> list:
    tracker = PoseTracker(COCO17.sigmas_array(), config)
    return [tracker.update(s, k) for s, k in zip(dets.scores, dets.keypoints)]


def smoothness(scene, dets, outputs, which: str) -> tuple[float, float]:
    """Mean jitter (px/frame^2) and lag (frames) of the reported keypoints of each true person."""
    frames, people = scene.gt.shape[:2]
    xy = np.full((frames, people, 17, 2), np.nan)
    for t, out in enumerate(outputs):
        person = dets.person[t][out.detection_index]
        real = person >= 0
        xy[t, person[real]] = getattr(out, which)[real, :, :2]
    valid = np.isfinite(xy).all(axis=-1)
    jitters = [jitter(xy[:, p], scene.gt[:, p], valid[:, p]) for p in range(people)]
    lags = [lag_frames(xy[:, p], scene.gt[:, p], max_lag=8) for p in range(people) if valid[:, p].sum() > 30]
    return float(np.mean(jitters)), float(np.mean(lags))


def evaluate(config: TrackerConfig, scene, dets) -> dict[str, float]:
    outputs = run_tracker(config, dets)
    gt_frames = [(np.arange(1, scene.gt.shape[1] + 1), np.concatenate([g, np.ones((*g.shape[:2], 1))], -1))
                 for g in scene.gt]
    pred_frames = [(o.track_ids, o.keypoints) for o in outputs]
    mota = keypoint_mota(gt_frames, pred_frames, pred_conf=0.5)
    ident = identity_scores(gt_frames, pred_frames, pred_conf=0.5)
    raw_jitter, raw_lag = smoothness(scene, dets, outputs, "keypoints")
    smooth_jitter, smooth_lag = smoothness(scene, dets, outputs, "smoothed")
    return {"MOTA": mota.mota, "IDF1": ident.idf1, "IDSW/100": ident.switches_per_100_tracks,
            "jitter raw": raw_jitter, "jitter smooth": smooth_jitter, "lag raw": raw_lag, "lag smooth": smooth_lag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    base = TrackerConfig()
    variants = {
        "pose, kalman (default)": replace(base, motion="kalman"),
        "box, kalman": replace(base, association="box", motion="kalman"),
        "pose, velocity": replace(base, motion="velocity"),
        "box, velocity": replace(base, association="box", motion="velocity"),
        "pose, static": replace(base, motion="static"),
        "box, static": replace(base, association="box", motion="static"),
        "pose, kalman, round-2 OKS 0.3": replace(base, motion="kalman", low_match_threshold=0.3),
    }
    conditions = {"noise 1%, drop 5%": (0.01, 0.05), "noise 3%, drop 5%": (0.03, 0.05),
                  "noise 1%, drop 20%": (0.01, 0.20)}
    keys = ["MOTA", "IDF1", "IDSW/100", "jitter raw", "jitter smooth", "lag raw", "lag smooth"]
    print(f"{args.people} people, {args.frames} frames, mean of {args.seeds} seeds; noise = keypoint std / height")
    print("| condition | tracker | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for cname, (noise, drop) in conditions.items():
        for vname, config in variants.items():
            rows = []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                scene = walking_scene(rng, args.frames, args.people)
                rows.append(evaluate(config, scene, detect(rng, scene, noise=noise, drop=drop)))
            mean = {k: np.mean([r[k] for r in rows]) for k in keys}
            print(f"| {cname} | {vname} | " + " | ".join(f"{mean[k]:.3f}" for k in keys) + " |", flush=True)


if __name__ == "__main__":
    main()
