"""Converted YOLO11 pose weights against ultralytics itself: raw outputs and AP on real photos.

1. Raw parity: the same letterboxed batch of real photos goes through ultralytics' own model
   (``benchmarks/ultralytics_raw.py`` in a separate virtual environment with ultralytics) and
   through the erpose model converted from the same file; decoded keypoints (pixels), person scores
   and boxes are compared anchor by anchor.
2. AP: ultralytics' own predictions (``model.predict``, conf 0.001, NMS IoU 0.65, max_det 100)
   and ``erpose val`` of the converted model, both scored by erpose's COCO evaluator
   (pycocotools-exact) on the same annotation file.

    python benchmarks/pretrained_parity.py --weights yolo11n-pose.pt \
        --data ../shared/data/real/tiny_coco/annotations/person_keypoints_val2017.json \
        --ultra-python /work/venv-ultra/bin/python --out runs/parity

Writes ``OUT/parity.json`` and prints a Markdown table. The weights are the caller's (for the
release YOLO11n-pose: AGPL-3.0); nothing derived from them is written outside OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def letterboxed_batch(image_dir: Path, count: int, imgsz: int) -> np.ndarray:
    from erpose.runtime.letterbox import letterbox

    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    batch = []
    for path in files:
        image, _, _ = letterbox(cv2.imread(str(path)), imgsz)
        batch.append(image[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0)
    return np.ascontiguousarray(np.stack(batch))


def compare_raw(ours: np.ndarray, theirs: np.ndarray, num_keypoints: int) -> dict:
    """ours (N, A, 1 + 3K + 4) erpose B0 layout; theirs (N, 4 + 1 + 3K, A) ultralytics layout."""
    theirs = theirs.transpose(0, 2, 1)
    k3 = 3 * num_keypoints
    xywh, score, keypoints = theirs[..., :4], theirs[..., 4], theirs[..., 5:5 + k3]
    boxes = np.concatenate((xywh[..., :2] - xywh[..., 2:] / 2, xywh[..., :2] + xywh[..., 2:] / 2), -1)
    our_kpt = ours[..., 1:1 + k3].reshape(*ours.shape[:2], num_keypoints, 3)
    their_kpt = keypoints.reshape(*theirs.shape[:2], num_keypoints, 3)
    confident = score > 0.25
    xy_diff = np.abs(our_kpt[..., :2] - their_kpt[..., :2])
    return {
        "anchors": int(ours.shape[0] * ours.shape[1]),
        "confident_anchors": int(confident.sum()),
        "max_abs_keypoint_px": float(xy_diff.max()),
        "max_abs_keypoint_px_confident": float(xy_diff[confident].max()) if confident.any() else 0.0,
        "max_abs_visibility": float(np.abs(our_kpt[..., 2] - their_kpt[..., 2]).max()),
        "max_abs_score": float(np.abs(ours[..., 0] - score).max()),
        "max_abs_box_px": float(np.abs(ours[..., 1 + k3:] - boxes).max()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="ultralytics YOLO11 pose .pt")
    p.add_argument("--data", required=True, help="COCO keypoint annotation JSON (its images beside, COCO layout)")
    p.add_argument("--images", help="image folder (default: inferred from the COCO layout)")
    p.add_argument("--ultra-python", default=os.environ.get("ERPOSE_ULTRA_PYTHON", "/work/venv-ultra/bin/python"))
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--raw-images", type=int, default=8, help="photos in the raw-output comparison")
    p.add_argument("--iou", type=float, default=0.65, help="NMS IoU of both predictions")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/parity")
    args = p.parse_args(argv)

    from erpose.engine.validator import validate
    from erpose.eval.coco import evaluate_keypoints
    from erpose.models.checkpoint import load_model

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    images = Path(args.images) if args.images else data.parent.parent / data.stem.split("_")[-1]

    batch = letterboxed_batch(images, args.raw_images, args.imgsz)
    np.savez(out / "inputs.npz", images=batch)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    done = subprocess.run(
        [args.ultra_python, str(HERE / "ultralytics_raw.py"), "--weights", args.weights, "--inputs", str(out / "inputs.npz"),
         "--raw-out", str(out / "ultralytics_raw.npz"), "--predict-dir", str(images), "--predict-out",
         str(out / "ultralytics_predictions.json"), "--imgsz", str(args.imgsz), "--iou", str(args.iou)],
        env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"ultralytics_raw.py failed (exit {done.returncode})")
    versions = json.loads(done.stdout.strip().splitlines()[-1])
    ultra_seconds = time.perf_counter() - started

    model = load_model(args.weights).eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(batch)).numpy()
    raw = compare_raw(ours, np.load(out / "ultralytics_raw.npz")["output"], model.num_keypoints)

    theirs = json.loads((out / "ultralytics_predictions.json").read_text())
    their_metrics = evaluate_keypoints(str(data), theirs)
    our_result = validate(model, str(data), args.imgsz, 8, progress=False)

    report = {
        "cpu": cpu_name(), "versions": versions, "weights": args.weights, "data": str(data), "imgsz": args.imgsz,
        "raw": raw, "ultralytics_ap": {k: their_metrics[k] for k in ("AP", "AP50", "AR")},
        "erpose_ap": {k: our_result.metrics[k] for k in ("AP", "AP50", "AR")},
        "ultralytics_seconds": round(ultra_seconds, 1),
    }
    report["ap_difference"] = report["erpose_ap"]["AP"] - report["ultralytics_ap"]["AP"]
    (out / "parity.json").write_text(json.dumps(report, indent=1))
    print(f"CPU: {report['cpu']}; ultralytics {versions['ultralytics']} (torch {versions['torch']})")
    print(f"raw outputs on {args.raw_images} photos at {args.imgsz} ({raw['anchors']} anchors): "
          f"max |keypoint xy| difference {raw['max_abs_keypoint_px']:.2e} px "
          f"({raw['max_abs_keypoint_px_confident']:.2e} px on the {raw['confident_anchors']} anchors scoring > 0.25), "
          f"score {raw['max_abs_score']:.1e}, visibility {raw['max_abs_visibility']:.1e}, box {raw['max_abs_box_px']:.1e} px")
    print("\n| predictions | AP | AP50 | AR |\n|---|---|---|---|")
    for name, metrics in (("ultralytics (its own predict, box NMS)", report["ultralytics_ap"]),
                          ("erpose val, converted (box NMS)", report["erpose_ap"])):
        print(f"| {name} | {metrics['AP']:.4f} | {metrics['AP50']:.4f} | {metrics['AR']:.4f} |")
    print(f"\nAP difference (erpose - ultralytics): {report['ap_difference']:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
