"""``erpose predict``: draw and save poses for images, folders, globs, videos, cameras and streams."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from erpose.cli.main import CLIError
from erpose.files import atomic_write_text, increment_run_dir
from erpose.runtime.results import KEYPOINT_CONF_THRESHOLD, Results
from erpose.runtime.sources import Source, is_video_path, open_source, video_fps

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True,
                        help="checkpoint (.pt), model config (.yaml) or model name (erpose-n, fresh weights)")
    parser.add_argument("--source", required=True,
                        help="image, folder, glob (quote it), video file, camera index or stream URL")
    parser.add_argument("--imgsz", type=int, default=None,
                        help="network input size (square), pixels (default: an .onnx file's own size, else 640)")
    parser.add_argument("--conf", type=float, default=0.25, help="person score threshold")
    parser.add_argument("--kpt-conf", type=float, default=KEYPOINT_CONF_THRESHOLD,
                        help="draw keypoints whose confidence is at least this")
    parser.add_argument("--max-det", type=int, default=100, help="at most this many people per image")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, N or mps")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--half", action="store_true", help="float16 inference (CUDA)")
    parser.add_argument("--nms", action="store_true", help="apply OKS-NMS (ER-Pose needs none; off by default)")
    parser.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                        help="save drawn images / annotated videos (default: on)")
    parser.add_argument("--save-json", action="store_true", help="save predictions.json (COCO results format)")
    parser.add_argument("--save-txt", action="store_true", help="save YOLO-pose labels/<image>.txt")
    parser.add_argument("--show-scores", action="store_true", help="write person scores on the drawings")
    parser.add_argument("--show-boxes", action="store_true", help="draw keypoint-derived boxes")
    parser.add_argument("--project", default="runs/predict", help="parent folder of run folders")
    parser.add_argument("--name", default="exp", help="run folder name (exp, exp2, ... when taken)")
    parser.add_argument("--exist-ok", action="store_true", help="reuse --project/--name if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _atomic_imwrite(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".tmp.{path.name}")  # keeps the suffix: it picks the encoder
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"cannot write image {path}")
    os.replace(tmp, path)


class _Outputs:
    """Writes the drawn images, videos, label files and JSON of one run folder."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, source: Source) -> None:
        self.args, self.run_dir, self.source = args, run_dir, source
        self.videos: dict[str, tuple[cv2.VideoWriter, Path, Path]] = {}
        self.detections: list[dict] = []
        self.image_ids: list[dict] = []
        self.numeric_ids = _numeric_stems(source)
        if args.save_txt:
            (run_dir / "labels").mkdir(exist_ok=True)

    def add(self, res: Results) -> None:
        live_or_video = self.source.is_live or is_video_path(res.path)
        stem = "camera" + res.path if self.source.kind == "camera" else Path(res.path).stem or "stream"
        frame_stem = f"{stem}_{res.frame_index}" if live_or_video else stem
        if self.args.save:
            drawn = res.plot(conf_threshold=self.args.kpt_conf, show_scores=self.args.show_scores,
                             show_boxes=self.args.show_boxes)
            if live_or_video:
                self._video(res.path, stem, drawn).write(drawn)
            else:
                suffix = Path(res.path).suffix.lower() if self.source.kind == "images" else ".jpg"
                _atomic_imwrite(self.run_dir / f"{stem}{suffix}", drawn)
        if self.args.save_txt:
            lines = res.to_yolo_txt()
            atomic_write_text(self.run_dir / "labels" / f"{frame_stem}.txt", "".join(f"{x}\n" for x in lines))
        if self.args.save_json:
            image_id = int(Path(res.path).stem) if self.numeric_ids else len(self.image_ids)
            self.image_ids.append({"id": image_id, "file": res.path, "frame": res.frame_index})
            self.detections.extend(res.to_coco(image_id))

    def _video(self, key: str, stem: str, frame: np.ndarray) -> cv2.VideoWriter:
        if key not in self.videos:
            self.videos[key] = open_video_writer(self.run_dir / f"{stem}.mp4", key, self.source.is_live, frame)
        return self.videos[key][0]

    def close(self) -> None:
        """Finish videos and write the JSON files (also after an interruption)."""
        for writer, tmp, final in self.videos.values():
            writer.release()
            os.replace(tmp, final)
        self.videos.clear()
        if self.args.save_json:
            atomic_write_text(self.run_dir / "predictions.json", json.dumps(self.detections))
            if not self.numeric_ids:
                atomic_write_text(self.run_dir / "image_ids.json", json.dumps(self.image_ids, indent=1))


def _numeric_stems(source: Source) -> bool:
    """COCO image ids can be the file stems: only image files, all stems numeric and distinct."""
    if source.kind != "images" or any(is_video_path(p) for p in source.items):
        return False
    stems = [Path(p).stem for p in source.items]
    return all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)


def run(args: argparse.Namespace) -> int:
    from erpose.engine.predictor import Predictor, load_backend

    source = open_source(args.source)  # SourceError (a ValueError) -> one-line error, exit 2
    backend = load_backend(args.weights, device=args.device, half=args.half)
    predictor = Predictor(backend, imgsz=args.imgsz, conf=args.conf, max_det=args.max_det,
                          device=args.device, batch_size=args.batch, nms=args.nms, half=args.half)
    if not (args.save or args.save_json or args.save_txt):
        log.warning("nothing will be saved (--no-save without --save-json or --save-txt)")
    run_dir = increment_run_dir(args.project, args.name, args.exist_ok)
    run_dir.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(args, run_dir, source)
    frames, people = 0, 0
    start = time.perf_counter()
    progress = _progress(source, args.no_progress)
    try:
        for res in predictor.stream(source):
            outputs.add(res)
            frames += 1
            people += len(res)
            progress.update(1)
    finally:
        progress.close()
        outputs.close()
    elapsed = time.perf_counter() - start
    if frames == 0:
        first = f"; {source.skipped[0][0]}: {source.skipped[0][2]}" if source.skipped else ""
        raise CLIError(f"no readable image or frame in {args.source} ({len(source.skipped)} skipped{first})")
    speed = predictor.speed()
    per_image = sum(speed.values())
    print(f"{frames} image(s), {people} people in {elapsed:.2f} s: {frames / elapsed:.1f} images/s end to end; "
          f"{per_image:.1f} ms per image ({speed['preprocess']:.1f} preprocess, "
          f"{speed['inference']:.1f} inference, {speed['postprocess']:.1f} postprocess) at {predictor.imgsz}")
    if source.skipped:
        shown = ", ".join(f"{path}" + (f" frame {i}" if i else "") for path, i, _ in source.skipped[:3])
        more = f" and {len(source.skipped) - 3} more" if len(source.skipped) > 3 else ""
        print(f"{len(source.skipped)} unreadable image(s)/frame(s) skipped: {shown}{more}")
    print(f"results saved to {run_dir}")
    return 0


def _progress(source: Source, disabled: bool):
    from tqdm import tqdm

    unit = "frame" if source.is_live or any(is_video_path(p) for p in source.items) else "image"
    return tqdm(total=source.total, unit=unit, disable=disabled or None, file=sys.stderr, leave=False)


def open_video_writer(final: Path, source_key: str, live: bool, frame: np.ndarray) -> tuple[cv2.VideoWriter, Path, Path]:
    """An mp4 writer for the drawn frames of one video, writing to a temporary name beside ``final``
    (renamed when the video is finished): ``(writer, tmp, final)``. Live sources are written at 30 fps."""
    tmp = final.with_name(f".tmp.{final.name}")
    fps = video_fps(source_key) if not live else 30.0
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {final}")
    return writer, tmp, final
