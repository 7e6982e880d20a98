"""``erpose val``: COCO / CrowdPose keypoint AP of a model (checkpoint, name or ONNX export), or of a COCO results file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from erpose.cli.main import CLIError

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/val"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:  erpose val --weights best.pt --data coco-pose.yaml | "
        "erpose val --weights best.onnx --data coco-pose.yaml | "
        "erpose val --predictions results.json --data person_keypoints_val2017.json --json"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--weights", help="checkpoint (.pt), ONNX export (.onnx, run by ONNX Runtime), model config "
                                        "(.yaml) or zoo name to evaluate")
    what.add_argument("--predictions", metavar="RESULTS.json",
                      help="evaluate this COCO keypoint results file instead of running a model")
    parser.add_argument("--data", required=True,
                        help="data YAML, COCO/CrowdPose annotation JSON, or SynthCrowd preset name")
    parser.add_argument("--split", default="val", help="split of a data YAML or preset (default: val)")
    parser.add_argument("--images", metavar="DIR", help="image folder of an annotation JSON (default: inferred)")
    parser.add_argument("--imgsz", type=int, default=None,
                        help="network input size (square), pixels (default: an .onnx file's own size, else 640)")
    parser.add_argument("--batch", type=int, default=8,
                        help="images per forward pass (an .onnx file exported without a dynamic batch takes 1)")
    parser.add_argument("--conf", type=float, default=0.001, help="minimum person score kept")
    parser.add_argument("--max-det", type=int, default=20,
                        help="persons kept per image (COCO and CrowdPose score the best 20)")
    parser.add_argument("--iou", type=float, default=0.7,
                        help="NMS threshold of models that need NMS: box IoU (yolopose, B0) or OKS (B1..B4); "
                             "NMS-free ER-Pose ignores it, an .onnx file uses the one it was exported with")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, N or mps (PyTorch models)")
    parser.add_argument("--workers", type=int, default=0, help="data loading worker processes")
    parser.add_argument("--crowdpose", choices=("auto", "on", "off"), default="auto",
                        help="CrowdPose protocol with AP easy/medium/hard (auto: when images have crowdIndex)")
    parser.add_argument("--sigmas", help="comma-separated OKS sigmas, one per keypoint (default: dataset's)")
    parser.add_argument("--save-json", metavar="PATH",
                        help="where to write the detections as COCO results (default: OUT/predictions.json)")
    parser.add_argument("--out", metavar="DIR",
                        help=f"folder for metrics.json (and predictions.json); default {DEFAULT_OUT} "
                             "with --weights, none with --predictions")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_sigmas(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise CLIError(f"--sigmas: expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise CLIError(f"--sigmas: expected positive numbers, got {text!r}")
    return values


def _load_source(args: argparse.Namespace):
    """The dataset split named by ``--data`` (and ``--images`` for an annotation JSON)."""
    if Path(args.data).suffix.lower() == ".json" and args.images:
        from erpose.data.coco import read_coco

        return read_coco(args.data, args.images)
    if args.images:
        log.warning("--images is only used with an annotation JSON; ignored for %s", args.data)
    from erpose.data.source import load_source

    return load_source(args.data, args.split)


def format_table(metrics: dict[str, float]) -> str:
    """Two aligned lines: metric names and values (``-`` where undefined, i.e. -1)."""
    names = list(metrics)
    width = max(7, *(len(n) + 1 for n in names))
    head = "".join(f"{n:>{width}}" for n in names)
    values = "".join(f"{'-' if metrics[n] < 0 else format(metrics[n], '.4f'):>{width}}" for n in names)
    return f"{head}\n{values}"


def _write_json(path: Path, data) -> Path:
    from erpose.eval.results import save_metrics

    return save_metrics(data, path)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot be files before the model runs over the whole split."""
    from erpose.files import check_output_file

    out = args.out or (DEFAULT_OUT if args.weights else None)
    if out is not None:
        check_output_file(Path(out) / "metrics.json")
    if args.weights:
        check_output_file(Path(args.save_json) if args.save_json else Path(out) / "predictions.json")


def run(args: argparse.Namespace) -> int:
    from erpose.engine.validator import evaluate_detections, ground_truth_of, load_ground_truth, validate
    from erpose.eval.results import load_results, save_results

    sigmas = _parse_sigmas(args.sigmas)
    _check_outputs(args)
    report = {"data": args.data}
    if args.predictions:
        if args.save_json:
            raise CLIError("--save-json writes a model's detections; use it with --weights")
        if Path(args.data).suffix.lower() == ".json":
            ground_truth = load_ground_truth(args.data)
        else:
            source = _load_source(args)
            ground_truth = load_ground_truth(ground_truth_of(source))
            sigmas = sigmas or source.skeleton.sigmas
        detections = load_results(args.predictions)
        metrics, protocol = evaluate_detections(ground_truth, detections, sigmas=sigmas, crowdpose=args.crowdpose)
        report.update(predictions=args.predictions, num_images=len(ground_truth["images"]))
        out = Path(args.out) if args.out else None
    else:
        source = _load_source(args)
        result = validate(
            args.weights, source, imgsz=args.imgsz, batch_size=args.batch, conf=args.conf,
            max_det=args.max_det, device=args.device, progress=not args.no_progress,
            crowdpose=args.crowdpose, sigmas=sigmas, workers=args.workers, iou=args.iou,
        )
        metrics, protocol, detections = result.metrics, result.protocol, result.detections
        report.update(weights=args.weights, num_images=result.num_images, speed_ms=result.speed)
        out = Path(args.out or DEFAULT_OUT)
        saved = save_results(detections, Path(args.save_json) if args.save_json else out / "predictions.json")
        report["predictions"] = str(saved)
    report.update(protocol=protocol, num_detections=len(detections), metrics=metrics)
    if out is not None:
        report["metrics_file"] = str(_write_json(out / "metrics.json", report))

    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{protocol} keypoint evaluation: {report['num_images']} images, {len(detections)} detections")
    print(format_table(metrics))
    if "speed_ms" in report:
        speed = report["speed_ms"]
        print("speed (ms/image): " + ", ".join(f"{k} {v:.1f}" for k, v in speed.items()), file=sys.stderr)
    if not args.predictions:
        print(f"detections: {report['predictions']}")
    if "metrics_file" in report:
        print(f"metrics: {report['metrics_file']}")
    return 0
