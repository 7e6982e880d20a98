"""``erpose export``: write an ONNX file with decoding (and top-k) in the graph and erpose metadata.

``--int8 --calib DATA`` quantises that file statically (QDQ, per-channel int8 weights) with ONNX
Runtime's tools; see :mod:`erpose.export.quantize`. ``--format openvino`` converts the float32 ONNX
graph into an OpenVINO IR folder (INT8 with NNCF under ``--int8``); see :mod:`erpose.export.openvino`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from erpose.cli.main import CLIError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True,
                        help="checkpoint (.pt), model config (.yaml) or model name (erpose-n: fresh weights)")
    parser.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                        help="onnx (a .onnx file) or openvino (a folder NAME_openvino/ with NAME.xml and NAME.bin)")
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
    parser.add_argument("--int8", action="store_true",
                        help="static INT8 quantisation (onnx: ONNX Runtime QDQ; openvino: NNCF), per-channel weights; needs --calib")
    parser.add_argument("--calib", default=None, metavar="DATA",
                        help="--int8 calibration images: a folder (its train*/ sub-folder if any) or a SynthCrowd preset")
    parser.add_argument("--calib-images", type=int, default=64, help="--int8: calibration images (default 64)")
    parser.add_argument("--int8-float", default="head-outputs", choices=["decode", "head-outputs"],
                        help="--int8: nodes kept float: the decoding, top-k and the head's output convolutions "
                             "(default), or the decoding and top-k only")
    parser.add_argument("--int8-method", default=None, choices=["ort", "nncf"],
                        help="--int8 --format onnx: ort (ONNX Runtime's quantize_static, default; fast in ONNX Runtime "
                             "on CPU) or nncf (more accurate; for runtimes that compile QDQ graphs). "
                             "--format openvino always uses NNCF")
    parser.add_argument("--out", default=None,
                        help="output file (default: next to the weights, .onnx), or folder for --format openvino "
                             "(default NAME_openvino/)")


def _default_out(weights: str, half: bool, int8: bool = False, fmt: str = "onnx") -> Path:
    path = Path(weights)
    stem = path.stem if path.suffix else path.name
    tag = "-fp16" if half else "-int8" if int8 else ""
    end = "_openvino" if fmt == "openvino" else ".onnx"
    return (path.parent if path.suffix else Path(".")) / f"{stem}{tag}{end}"


def _check_openvino(args: argparse.Namespace) -> None:
    if args.format != "openvino":
        return
    if args.half:
        raise CLIError("--format openvino and --half exclude each other (the IR starts from the float32 graph; "
                       "OpenVINO chooses its own inference precision per device)")
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise CLIError("--format openvino needs the openvino package: pip install 'erpose[openvino]'") from None
    if args.int8:
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise CLIError("--format openvino --int8 needs NNCF: pip install 'erpose[openvino]'") from None


def _check_int8(args: argparse.Namespace) -> None:
    if not args.int8:
        if args.calib is not None or args.int8_method is not None:
            raise CLIError(f"{'--calib' if args.calib is not None else '--int8-method'} is for --int8 exports")
        return
    if args.calib is None:
        raise CLIError("--int8 needs calibration images: --calib FOLDER or --calib SYNTHCROWD_PRESET")
    if args.half:
        raise CLIError("--int8 and --half exclude each other (INT8 starts from the float32 graph)")
    if args.calib_images < 1:
        raise CLIError(f"--calib-images must be positive, got {args.calib_images}")
    if args.format == "openvino":
        if args.int8_method == "ort":
            raise CLIError("--int8-method ort is for --format onnx; an OpenVINO IR is quantised by NNCF")
        return
    if args.int8_method == "nncf":
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise CLIError("--int8-method nncf needs NNCF: pip install nncf") from None
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise CLIError("--int8 needs onnxruntime (its quantization tools): pip install 'erpose[onnx]'") from None


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
    _check_int8(args)
    _check_openvino(args)
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else (args.imgsz[0], args.imgsz[1])
    config = OnnxExportConfig(
        imgsz=imgsz, batch=args.batch, dynamic=args.dynamic, dynamic_batch=args.dynamic_batch, half=args.half,
        max_det=args.max_det, opset=args.opset, simplify=args.simplify,
    )
    model = load_model(args.weights)
    out = Path(args.out) if args.out else _default_out(args.weights, args.half, args.int8, args.format)
    name = Path(args.weights).stem if Path(args.weights).suffix else args.weights
    if args.format == "openvino":
        return _export_openvino(model, out, config, name, args)
    try:
        if args.int8:
            _export_int8(model, out, config, name, args)
        else:
            export_onnx(model, out, config, model_name=name)
    except ExportError as exc:
        raise CLIError(str(exc)) from exc
    meta = read_metadata(out)
    post = "none (decoded, sorted, top-k in the graph)" if not meta.needs_nms else f"{meta.nms} NMS in the runtime"
    print(f"{out}: {meta.model_name} ({meta.step}), input (B, 3, {meta.imgsz[0]}, {meta.imgsz[1]}) "
          f"{'float16' if meta.half else 'float32'}{', INT8 weights (' + meta.quantization + ')' if args.int8 else ''}, output (B, {meta.max_det if not meta.needs_nms else 'A'}, "
          f"{1 + 3 * meta.num_keypoints if not meta.needs_nms else '...'}), post-processing: {post}, "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return 0


def _export_int8(model, out: Path, config, name: str, args: argparse.Namespace) -> None:
    """Float export to a temporary file, then static INT8 quantisation of it into ``out``."""
    import tempfile

    from erpose.export.onnx import export_onnx
    from erpose.export.quantize import Int8Config, quantize_onnx

    try:
        int8 = Int8Config(calib=args.calib, calib_images=args.calib_images, keep_float=args.int8_float,
                          method=args.int8_method or "ort")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        float_path = export_onnx(model, Path(tmp) / "float.onnx", config, model_name=name)
        try:
            quantize_onnx(float_path, out, int8)
        except ValueError as exc:
            raise CLIError(str(exc)) from None


def _export_openvino(model, out: Path, config, name: str, args: argparse.Namespace) -> int:
    """``--format openvino``: float32 ONNX export, converted (and with ``--int8`` quantised by NNCF)."""
    from erpose.export.onnx import ExportError
    from erpose.export.openvino import export_openvino
    from erpose.export.quantize import Int8Config
    from erpose.runtime.openvino_session import read_metadata

    int8 = None
    if args.int8:
        try:
            int8 = Int8Config(calib=args.calib, calib_images=args.calib_images, keep_float=args.int8_float)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    try:
        xml = export_openvino(model, out, config, int8=int8, model_name=name)
    except ExportError as exc:
        raise CLIError(str(exc)) from exc
    meta = read_metadata(xml)
    size = sum(f.stat().st_size for f in (xml, xml.with_suffix(".bin"))) / 1e6
    batch = "B" if meta.dynamic else str(config.batch)
    post = "none (decoded, sorted, top-k in the graph)" if not meta.needs_nms else f"{meta.nms} NMS in the runtime"
    print(f"{xml}: {meta.model_name} ({meta.step}), OpenVINO IR, input ({batch}, 3, {meta.imgsz[0]}, {meta.imgsz[1]}) "
          f"float32{', INT8 (' + meta.quantization + ')' if int8 else ''}, output ({batch}, "
          f"{meta.max_det if not meta.needs_nms else 'A'}, {1 + 3 * meta.num_keypoints if not meta.needs_nms else '...'}), "
          f"post-processing: {post}, {size:.1f} MB")
    return 0
