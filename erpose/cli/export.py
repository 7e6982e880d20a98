"""``erpose export``: write an ONNX file with decoding (and top-k) in the graph and erpose metadata."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from erpose.cli.main import CLIError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True,
                        help="checkpoint (.pt), model config (.yaml) or model name (erpose-n: fresh weights)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640],
                        help="input size: one int (square) or H W; multiples of 32")
    parser.add_argument("--batch", type=int, default=1, help="batch size of a static graph")
    parser.add_argument("--dynamic", action="store_true",
                        help="symbolic batch, height and width (the top-k size stays max_det)")
    parser.add_argument("--dynamic-batch", action="store_true", help="symbolic batch only")
    parser.add_argument("--half", action="store_true",
                        help="float16 input, backbone and neck (for GPU runtimes; see docs/deploy.md)")
    parser.add_argument("--max-det", type=int, default=None, help="people per image in the output (default 100)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--simplify", action="store_true", help="run onnxsim if installed")
    parser.add_argument("--out", default=None, help="output file (default: next to the weights, .onnx)")


def _default_out(weights: str, half: bool) -> Path:
    path = Path(weights)
    stem = path.stem if path.suffix else path.name
    return (path.parent if path.suffix else Path(".")) / f"{stem}{'-fp16' if half else ''}.onnx"


def run(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CLIError("exporting needs the onnx package: pip install 'erpose[onnx]'") from None
    from erpose.export.onnx import ExportError, OnnxExportConfig, export_onnx
    from erpose.models.checkpoint import load_model
    from erpose.runtime.session import read_metadata

    if len(args.imgsz) not in (1, 2):
        raise CLIError(f"--imgsz takes one or two numbers, got {args.imgsz}")
    if args.max_det is not None and args.max_det < 1:
        raise CLIError(f"--max-det must be positive, got {args.max_det}")
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else (args.imgsz[0], args.imgsz[1])
    config = OnnxExportConfig(
        imgsz=imgsz, batch=args.batch, dynamic=args.dynamic, dynamic_batch=args.dynamic_batch, half=args.half,
        max_det=args.max_det, opset=args.opset, simplify=args.simplify,
    )
    model = load_model(args.weights)
    out = Path(args.out) if args.out else _default_out(args.weights, args.half)
    name = Path(args.weights).stem if Path(args.weights).suffix else args.weights
    try:
        export_onnx(model, out, config, model_name=name)
    except ExportError as exc:
        raise CLIError(str(exc)) from exc
    meta = read_metadata(out)
    post = "none (decoded, sorted, top-k in the graph)" if not meta.needs_nms else f"{meta.nms} NMS in the runtime"
    print(f"{out}: {meta.model_name} ({meta.step}), input (B, 3, {meta.imgsz[0]}, {meta.imgsz[1]}) "
          f"{'float16' if meta.half else 'float32'}, output (B, {meta.max_det if not meta.needs_nms else 'A'}, "
          f"{1 + 3 * meta.num_keypoints if not meta.needs_nms else '...'}), post-processing: {post}, "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return 0
