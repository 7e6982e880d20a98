"""Accuracy of INT8 (or any) exports against their float32 reference: AP, AP50, keypoint displacement.

Every model is scored by ``erpose.engine.validator.validate`` on the same data (COCO keypoint AP,
conf 0.001, 20 people per image, the file's own input size): ``.onnx`` files through ONNX Runtime,
OpenVINO IR folders (or ``.xml``) through OpenVINO, checkpoints through PyTorch. The displacement
compares each model's detections with the reference's (the first model): for every reference
person of score > ``--person-score`` the nearest person of the same image in the other model (mean
keypoint distance), averaged; in original-image pixels.

Usage::

    python benchmarks/int8_accuracy.py --data tiny_coco/annotations/person_keypoints_val2017.json \\
        real-fp32.onnx real-int8.onnx real_openvino/ real-int8_openvino/ --json int8.json
    python benchmarks/int8_accuracy.py --data synthcrowd-demo fp32.onnx int8.onnx   # a SynthCrowd preset's val split
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def displacement(reference: list[dict], other: list[dict], person_score: float) -> tuple[list[float], list[float]]:
    """(per reference person: mean keypoint distance to the nearest ``other`` person; score difference)."""
    by_image: dict[int, list[dict]] = {}
    for det in other:
        by_image.setdefault(det["image_id"], []).append(det)
    distances, scores = [], []
    for det in reference:
        if det["score"] <= person_score:
            continue
        candidates = by_image.get(det["image_id"], [])
        if not candidates:
            distances.append(float("inf"))
            scores.append(det["score"])
            continue
        xy = np.asarray(det["keypoints"], np.float64).reshape(-1, 3)[:, :2]
        others = np.asarray([c["keypoints"] for c in candidates], np.float64).reshape(len(candidates), -1, 3)[..., :2]
        mean = np.linalg.norm(others - xy, axis=-1).mean(axis=1)
        best = int(mean.argmin())
        distances.append(float(mean[best]))
        scores.append(abs(candidates[best]["score"] - det["score"]))
    return distances, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="the float32 reference first, then the files to compare")
    parser.add_argument("--data", required=True, help="what `erpose val --data` takes (COCO JSON, data YAML, preset)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--person-score", type=float, default=0.3,
                        help="reference persons above this score enter the displacement")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from erpose.engine.validator import validate

    rows = []
    detections = {}
    for model in args.models:
        start = time.perf_counter()
        result = validate(model, args.data, split=args.split, progress=False)
        detections[model] = result.detections
        row = {"model": model, "AP": result.metrics["AP"], "AP50": result.metrics["AP50"],
               "seconds": time.perf_counter() - start, "inference_ms": result.speed.get("inference")}
        if model != args.models[0]:
            distances, scores = displacement(detections[args.models[0]], result.detections, args.person_score)
            finite = np.asarray([d for d in distances if np.isfinite(d)])
            row.update({"dAP": row["AP"] - rows[0]["AP"], "dAP50": row["AP50"] - rows[0]["AP50"],
                        "persons": len(distances), "unmatched": len(distances) - len(finite),
                        "disp_mean_px": float(finite.mean()) if len(finite) else float("nan"),
                        "disp_median_px": float(np.median(finite)) if len(finite) else float("nan"),
                        "score_diff_mean": float(np.mean(scores)) if scores else float("nan")})
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\n{args.data} ({args.split}), conf 0.001, 20 people per image; displacement vs {args.models[0]}, "
          f"persons of score > {args.person_score}, original pixels\n")
    print("| model | AP | AP50 | dAP | dAP50 | mean displacement px (median) | mean score diff | persons |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "dAP" in row:
            print(f"| {row['model']} | {row['AP']:.4f} | {row['AP50']:.4f} | {row['dAP']:+.4f} | {row['dAP50']:+.4f} | "
                  f"{row['disp_mean_px']:.2f} ({row['disp_median_px']:.2f}) | {row['score_diff_mean']:.3f} | "
                  f"{row['persons']} |")
        else:
            print(f"| {row['model']} | {row['AP']:.4f} | {row['AP50']:.4f} | - | - | - | - | - |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
