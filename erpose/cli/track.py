"""``erpose track``: predict poses on a video, folder or camera and give each person a track id."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2

from erpose.cli.main import CLIError
from erpose.cli.predict import open_video_writer
from erpose.files import atomic_write_text, increment_run_dir
from erpose.runtime.results import KEYPOINT_CONF_THRESHOLD
from erpose.runtime.sources import Source, is_video_path, open_source
from erpose.track.config import ASSOCIATIONS, MOTIONS, OneEuroConfig, TrackerConfig
from erpose.track.stream import TrackedResults, track_results

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tracker, smooth = TrackerConfig(), OneEuroConfig()
    parser.add_argument("--weights", required=True, help="checkpoint (.pt), .onnx, model config (.yaml) or name")
    parser.add_argument("--source", required=True,
                        help="video file, folder or glob of frames (one sequence, in name order), camera index or stream URL")
    parser.add_argument("--imgsz", type=int, default=None, help="network input size (default: an .onnx file's, else 640)")
    parser.add_argument("--conf", type=float, default=tracker.low_score,
                        help="lowest person score kept: the tracker's second-round floor (low_score)")
    parser.add_argument("--kpt-conf", type=float, default=KEYPOINT_CONF_THRESHOLD, help="draw keypoints at least this confident")
    parser.add_argument("--max-det", type=int, default=100, help="at most this many people per frame")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, N or mps")
    parser.add_argument("--batch", type=int, default=1, help="frames per forward pass")
    parser.add_argument("--half", action="store_true", help="float16 inference (CUDA)")
    group = parser.add_argument_group("tracker (erpose.track.TrackerConfig)")
    group.add_argument("--association", choices=ASSOCIATIONS, default=tracker.association,
                       help="pose: OKS with the predicted pose; box: IoU of keypoint boxes (baseline)")
    group.add_argument("--motion", choices=MOTIONS, default=tracker.motion, help="motion model per keypoint")
    group.add_argument("--high-score", type=float, default=tracker.high_score, help="first-round score threshold")
    group.add_argument("--new-track-score", type=float, default=tracker.new_track_score,
                       help="least score that starts a track")
    group.add_argument("--match-threshold", type=float, default=tracker.match_threshold,
                       help="least OKS (or IoU) of a first-round match")
    group.add_argument("--min-hits", type=int, default=tracker.min_hits, help="matches before a track gets an id")
    group.add_argument("--max-age", type=int, default=tracker.max_age, help="frames a lost track survives")
    group.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                       help="One-Euro smoothing of the drawn and saved keypoints (default: on)")
    group.add_argument("--min-cutoff", type=float, default=smooth.min_cutoff, help="One-Euro cutoff at rest, Hz")
    group.add_argument("--beta", type=float, default=smooth.beta, help="One-Euro cutoff increase per person height/s")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                        help="save the drawn video (or images) (default: on)")
    parser.add_argument("--save-json", action=argparse.BooleanOptionalAction, default=True,
                        help="save <sequence>.json per sequence, PoseTrack18 layout (default: on)")
    parser.add_argument("--save-csv", action=argparse.BooleanOptionalAction, default=True,
                        help="save tracks.csv: source, frame, track_id, score, keypoints (default: on)")
    parser.add_argument("--project", default="runs/track", help="parent folder of run folders")
    parser.add_argument("--name", default="exp", help="run folder name (exp, exp2, ... when taken)")
    parser.add_argument("--exist-ok", action="store_true", help="reuse --project/--name if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """The ``TrackerConfig`` the command-line options describe."""
    smoothing = replace(OneEuroConfig(), enabled=args.smooth, min_cutoff=args.min_cutoff, beta=args.beta)
    return replace(TrackerConfig(), association=args.association, motion=args.motion, low_score=args.conf,
                   high_score=args.high_score, new_track_score=args.new_track_score,
                   match_threshold=args.match_threshold, min_hits=args.min_hits, max_age=args.max_age,
                   smoothing=smoothing)


class _Outputs:
    """Drawn videos or images, one PoseTrack18 JSON per sequence and one CSV for the run."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, source: Source, skeleton_names: list[str]) -> None:
        self.args, self.run_dir, self.source = args, run_dir, source
        self.videos: dict[str, tuple[cv2.VideoWriter, Path, Path]] = {}
        self.sequences: dict[str, dict] = {}
        self.csv = io.StringIO()
        self.writer = csv.writer(self.csv)
        columns = [f"{name}_{part}" for name in skeleton_names for part in ("x", "y", "conf")]
        self.writer.writerow(["source", "frame", "track_id", "score", *columns])

    def _stem(self, path: str) -> str:
        if self.source.kind == "camera":
            return "camera" + path
        return Path(path).stem or "stream"

    def add(self, tracked: TrackedResults) -> None:
        res = tracked.result
        video = self.source.is_live or is_video_path(res.path)
        stem = self._stem(res.path) if video else "tracks"
        if self.args.save:
            drawn = tracked.plot(conf_threshold=self.args.kpt_conf)
            if video:
                self._video(res.path, stem, drawn).write(drawn)
            else:
                image_path = self.run_dir / Path(res.path).name
                tmp = image_path.with_name(f".tmp.{image_path.name}")
                if not cv2.imwrite(str(tmp), drawn):
                    raise OSError(f"cannot write image {image_path}")
                os.replace(tmp, image_path)
        if self.args.save_json:
            seq = self.sequences.setdefault(stem, {"images": [], "annotations": []})
            image_id = len(seq["images"])
            seq["images"].append({"id": image_id, "file_name": res.path, "frame_id": tracked.sequence_frame})
            seq["annotations"].extend(tracked.to_posetrack(image_id, len(seq["annotations"])))
        if self.args.save_csv:
            for row in tracked.to_rows():
                self.writer.writerow([res.path, *row])

    def _video(self, key: str, stem: str, frame) -> cv2.VideoWriter:
        if key not in self.videos:
            self.videos[key] = open_video_writer(self.run_dir / f"{stem}.mp4", key, self.source.is_live, frame)
        return self.videos[key][0]

    def close(self, categories: list[dict]) -> None:
        """Finish videos, write the JSON and CSV files (also after an interruption)."""
        for writer, tmp, final in self.videos.values():
            writer.release()
            os.replace(tmp, final)
        self.videos.clear()
        for stem, seq in self.sequences.items():
            atomic_write_text(self.run_dir / f"{stem}.json", json.dumps({**seq, "categories": categories}))
        if self.args.save_csv:
            atomic_write_text(self.run_dir / "tracks.csv", self.csv.getvalue())


def posetrack_categories(skeleton) -> list[dict]:
    """The PoseTrack18 ``categories`` entry: keypoint names and 1-based limbs."""
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(skeleton.keypoint_names),
             "skeleton": [[int(a) + 1, int(b) + 1] for a, b in skeleton.limbs]}]


def run(args: argparse.Namespace) -> int:
    from erpose.engine.predictor import Predictor, load_backend

    config = tracker_config(args)  # ValueError on inconsistent thresholds -> one line, exit 2
    source = open_source(args.source)
    backend = load_backend(args.weights, device=args.device, half=args.half)
    predictor = Predictor(backend, imgsz=args.imgsz, conf=args.conf, max_det=args.max_det,
                          device=args.device, batch_size=args.batch, half=args.half)
    run_dir = increment_run_dir(args.project, args.name, args.exist_ok)
    run_dir.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(args, run_dir, source, list(backend.skeleton.keypoint_names))
    frames, ids = 0, set()
    start = time.perf_counter()
    track_ms = 0.0
    from tqdm import tqdm

    progress = tqdm(total=source.total, unit="frame", disable=args.no_progress or None, file=sys.stderr, leave=False)
    try:
        stream = track_results(predictor.stream(source), config)
        while True:
            t0 = time.perf_counter()
            tracked = next(stream, None)
            if tracked is None:
                break
            track_ms += (time.perf_counter() - t0) * 1e3 - sum(tracked.result.speed.values())
            outputs.add(tracked)
            ids.update(int(i) for i in tracked.tracks.track_ids)
            frames += 1
            progress.update(1)
    finally:
        progress.close()
        outputs.close(posetrack_categories(backend.skeleton))
    elapsed = time.perf_counter() - start
    if frames == 0:
        raise CLIError(f"no readable image or frame in {args.source}")
    speed = predictor.speed()
    print(f"{frames} frame(s), {len(ids)} track(s) in {elapsed:.2f} s: {frames / elapsed:.1f} frames/s end to end; "
          f"{sum(speed.values()):.1f} ms per frame in the model, about {max(track_ms, 0.0) / frames:.2f} ms "
          f"reading + tracking ({config.association} association, smoothing {'on' if config.smoothing.enabled else 'off'})")
    print(f"results saved to {run_dir}")
    return 0
