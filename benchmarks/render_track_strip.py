"""A frame strip of a tracked synthetic crowd for docs/images (ids in stable colours).

Renders one SynthCrowd video sequence (``erpose.data.synth.render_video``), tracks it and draws
a few frames side by side. The people come from ``--weights`` (a trained model's own detections)
or, without it, from the ground truth with noise and dropped people (setting (a) of
``eval_track_synth.py``).

    python benchmarks/render_track_strip.py --out docs/images/track_synth_crowd.jpg
    python benchmarks/render_track_strip.py --preset sparse --weights best.pt --imgsz 192 --thresholds 0.2 0.25 \
        --out docs/images/track_synth_model.jpg
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from eval_track_synth import Sequence, simulate_detections

from erpose.data.synth import VideoConfig, render_video
from erpose.skeleton import COCO17
from erpose.track import PoseTracker, TrackerConfig
from erpose.track.draw import draw_tracks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="crowd")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0, help="sequence index")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--clutter", type=float, default=0.0)
    parser.add_argument("--frames", type=int, nargs="+", default=[20, 50, 80, 110], help="frames drawn")
    parser.add_argument("--length", type=int, default=150, help="frames in the sequence")
    parser.add_argument("--scale", type=float, default=1.5, help="upscale before drawing")
    parser.add_argument("--weights")
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--thresholds", type=float, nargs=2, default=None, metavar=("HIGH", "NEW"),
                        help="high_score and new_track_score (default: TrackerConfig's)")
    args = parser.parse_args()

    # The sequence of eval_track_synth.py's --data (same length, size, clutter, shake and seed).
    video = render_video(VideoConfig(frames=max(args.length, max(args.frames) + 1), imgsz=args.size, preset=args.preset,
                                     seed=args.seed, clutter=args.clutter, shake=1.0), args.index)
    if args.weights:
        from erpose import ERPose

        results = ERPose(args.weights).predict(list(video.frames), imgsz=args.imgsz, conf=0.1)
        scores = [r.scores for r in results]
        keypoints = [r.keypoints.data for r in results]
    else:
        seq = Sequence("strip", Path("strip.mp4"), [video.frame_labels(t) for t in range(len(video.frames))],
                       video.present.shape[1], video.fps, args.size)
        dets = simulate_detections(np.random.default_rng(args.seed), seq, noise=0.01, drop=0.05)
        scores, keypoints = dets.scores, dets.keypoints
    config = TrackerConfig()
    if args.thresholds:
        config = replace(config, high_score=args.thresholds[0], new_track_score=args.thresholds[1])
    tracker = PoseTracker(COCO17.sigmas_array(), config)
    tiles = []
    for t, (s, k) in enumerate(zip(scores, keypoints)):
        tracked = tracker.update(s, k, dt=1.0 / video.fps)
        if t in args.frames:
            image = cv2.resize(video.frames[t], None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_CUBIC)
            kpts = tracked.smoothed.copy()
            kpts[..., :2] *= args.scale
            tile = draw_tracks(image, kpts, tracked.track_ids, COCO17, conf_threshold=0.3)
            cv2.putText(tile, f"frame {t}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
    strip = np.concatenate([np.pad(tile, ((0, 0), (0, 4), (0, 0)), constant_values=255) for tile in tiles], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), strip[:, :-4], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"{args.out}: {strip.shape[1] - 4} x {strip.shape[0]} px, {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
