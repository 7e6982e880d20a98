"""Static INT8 quantisation of an erpose ONNX export (QDQ, per-channel weights).

Two tools, both writing a QDQ graph with float32 input and output:

* ``method="ort"`` (default): ``onnxruntime.quantization.quantize_static``: weights int8 per
  output channel (symmetric), activations uint8 per tensor (asymmetric; the range of a tensor is
  the mean over the calibration images of its per-image minimum and maximum, ORT's
  ``CalibMovingAverage``, which measured better than the global min/max, see docs/deploy.md).
  Every SiLU, add and concatenation is quantised too, so ONNX Runtime fuses each
  ``DequantizeLinear -> Conv -> QuantizeLinear`` into an integer convolution: the fast layout for
  ONNX Runtime on CPU.
* ``method="nncf"``: NNCF's post-training quantisation (``nncf.quantize``, the tool the OpenVINO
  export uses): quantisers only on the inputs of convolutions and matrix products (SiLU, adds and
  concatenations stay float), per-image-mean activation ranges, fast bias correction. Far more
  accurate, but ONNX Runtime's CPU provider then runs the convolutions in float (their outputs are
  not quantised), so the file is slower than the float one there; it is meant for runtimes that
  compile QDQ graphs themselves (TensorRT, ONNX Runtime's OpenVINO or TensorRT providers).

Which nodes stay float is decided from the graph's topology, not from node names, so it holds for
any K, scale and ablation step:

* ``keep_float="decode"``: every node that feeds no convolution and is not one, i.e. the
  anchor grid, the sigmoid/offset decoding, the top-k and the gathers, runs in float32. Quantising
  them would round 640-px coordinates to 1/255 of their range (~2.5 px) and the person scores to
  steps of 1/255, and it saves nothing measurable (they are a few percent of the FLOPs).
* ``keep_float="head-outputs"`` (default): the head's output convolutions (score logits, keypoint
  offsets and visibility, the convolutions no other convolution reads) stay float as well. On the
  real-photo model this kept 1 AP more than ``"decode"`` at the same speed (they are 1x1 or small
  convolutions); the measurement is in docs/deploy.md.
 Calibration images are letterboxed by
:func:`erpose.runtime.predict.preprocess`, the same function the runtime uses at inference.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Which nodes stay float (see the module docstring).
KEEP_FLOAT = ("decode", "head-outputs")
#: Quantisation tools of an ONNX export (see the module docstring).
METHODS = ("ort", "nncf")
#: Image suffixes read from a calibration folder.
CALIB_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Int8Config:
    """Options of :func:`quantize_onnx`.

    Attributes:
        calib: a folder of images (searched recursively; its first ``train*`` sub-folder, e.g.
            ``train2017``, when it has one) or a SynthCrowd preset name (rendered into the cache if needed).
        calib_images: images used for calibration, spread evenly over the sorted file list.
        keep_float: ``"decode"`` or ``"head-outputs"`` (see the module docstring).
        per_channel: int8 weights per output channel (per tensor otherwise; ``method="ort"`` only).
        method: ``"ort"`` (ONNX Runtime's quantize_static) or ``"nncf"`` (see the module docstring).
    """

    calib: str
    calib_images: int = 64
    keep_float: str = "head-outputs"
    per_channel: bool = True
    method: str = "ort"

    def __post_init__(self) -> None:
        if self.calib_images < 1:
            raise ValueError(f"calib_images must be >= 1, got {self.calib_images}")
        if self.keep_float not in KEEP_FLOAT:
            raise ValueError(f"keep_float must be one of {KEEP_FLOAT}, got {self.keep_float!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


def calibration_files(calib: str, count: int) -> list[Path]:
    """``count`` image files of a folder or SynthCrowd preset, evenly spread, sorted.

    Raises:
        ValueError: ``calib`` is neither an existing folder nor a preset, or holds no images.
    """
    root = Path(calib).expanduser()
    if not root.is_dir():
        from erpose.data.synth import PRESETS, ensure_preset

        if calib not in PRESETS:
            raise ValueError(f"--calib {calib!r}: not a folder of images nor a SynthCrowd preset "
                             f"({', '.join(PRESETS)})")
        root = ensure_preset(calib, progress=True)
    # Calibrate on training images where the data has a split (train/, train2017/), never on val.
    train = sorted(p for p in root.rglob("train*") if p.is_dir())
    search = train[0] if train else root
    files = sorted(p for p in search.rglob("*") if p.suffix.lower() in CALIB_SUFFIXES)
    if not files:
        raise ValueError(f"--calib {calib!r}: no images ({', '.join(CALIB_SUFFIXES)}) under {search}")
    if len(files) > count:
        files = [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]
    elif len(files) < count:
        logger.warning("--calib %s: %d images, fewer than the %d asked for; using them all", calib, len(files), count)
    return files


def calibration_batches(files: Sequence[Path], imgsz: tuple[int, int], channel_order: str = "RGB",
                        ) -> Iterator[np.ndarray]:
    """(1, 3, H, W) float32 inputs, letterboxed exactly as :class:`erpose.runtime.predict.OnnxPredictor` does."""
    import cv2

    from erpose.runtime.predict import preprocess

    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("calibration: cannot read %s; skipped", path)
            continue
        yield preprocess([image], imgsz, channel_order)[0]


def float_nodes(onnx_model, keep_float: str = "head-outputs") -> list[str]:
    """Names of the nodes that stay float: those upstream of no convolution (and not one).

    With ``keep_float="head-outputs"`` the convolutions that no other convolution reads (the head's
    output convolutions) are added.
    """
    graph = onnx_model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[str, bool] = {}  # node name -> some convolution lies downstream of its outputs

    def downstream_conv(node) -> bool:
        # Iterative post-order walk: the graphs are a few hundred nodes deep.
        stack = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if current.name in feeds_conv:
                continue
            children = [c for out in current.output for c in consumers.get(out, [])]
            if not expanded:
                stack.append((current, True))
                stack.extend((c, False) for c in children if c.name not in feeds_conv)
                continue
            feeds_conv[current.name] = any(c.op_type == "Conv" or feeds_conv.get(c.name, False) for c in children)
        return feeds_conv[node.name]

    keep = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        reaches = downstream_conv(node)
        if node.op_type == "Conv":
            if keep_float == "head-outputs" and not reaches:
                keep.append(node.name)
        elif not reaches:
            keep.append(node.name)
    return keep


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over :func:`calibration_batches`."""

    def __init__(self, input_name: str, batches: Iterator[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = batches
        self.count = 0

    def get_next(self):
        batch = next(self.batches, None)
        if batch is None:
            return None
        self.count += 1
        return {self.input_name: batch}


def quantize_onnx(float_path: str | os.PathLike, out_path: str | os.PathLike, config: Int8Config) -> Path:
    """Write a static INT8 (QDQ) copy of the erpose float export ``float_path`` to ``out_path``.

    The metadata is copied, with ``quantization`` set; the input and output stay float32.

    Raises:
        ValueError: bad calibration source, or a float16 export (quantise the float32 one).
        ImportError: onnxruntime's quantisation tools are missing.
    """
    import onnx

    from erpose.export.onnx import ExportError
    from erpose.runtime.session import ExportMetadata

    float_path, out_path = Path(float_path), Path(out_path)
    model = onnx.load(str(float_path))
    props = {p.key: p.value for p in model.metadata_props}
    metadata = ExportMetadata.from_props(props, str(float_path))
    if metadata.half:
        raise ValueError("INT8 quantisation starts from a float32 export; drop --half")
    keep = float_nodes(model, config.keep_float)
    files = calibration_files(config.calib, config.calib_images)
    batches = calibration_batches(files, metadata.imgsz, metadata.channel_order)
    source = f"float {config.keep_float}, calibrated on {len(files)} images of {files[0].parent.name}"
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        if config.method == "nncf":
            quantized = _quantize_nncf(model, list(batches), keep)
            scheme = f"int8-qdq per-channel weights, activations per tensor (NNCF, convolution inputs only, " \
                     f"fast bias correction), {source}"
        else:
            staged = Path(tmp) / "int8.onnx"
            count = _quantize_ort(float_path, staged, model.graph.input[0].name, batches, keep, config.per_channel)
            if count == 0:
                raise ValueError(f"--calib {config.calib!r}: none of the images could be read")
            quantized = onnx.load(str(staged))
            scheme = f"int8-qdq per-{'channel' if config.per_channel else 'tensor'} weights, u8 activations " \
                     f"(ONNX Runtime, per-image mean min/max), {source}"
        del quantized.metadata_props[:]
        props["quantization"] = scheme
        for key, value in props.items():
            quantized.metadata_props.add(key=key, value=value)
        quantized.producer_name = "erpose"
        quantized.doc_string = f"{model.doc_string} [{scheme}]"
        try:
            onnx.checker.check_model(quantized)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"ONNX checker rejected the INT8 graph: {exc}") from exc
        final = Path(tmp) / "final.onnx"
        onnx.save(quantized, str(final))
        os.replace(final, out_path)
    logger.debug("quantised %s -> %s (%d float nodes, %d calibration images)", float_path, out_path,
                 len(keep), len(files))
    return out_path


def _quantize_ort(float_path: Path, out: Path, input_name: str, batches: Iterator[np.ndarray], keep: list[str],
                  per_channel: bool) -> int:
    """ONNX Runtime's ``quantize_static`` into ``out``; returns the calibration images read."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = _Reader(input_name, batches)
    quantize_static(
        str(float_path), str(out), reader, quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
        nodes_to_exclude=keep, calibrate_method=CalibrationMethod.MinMax,
        # CalibMovingAverage: a tensor's range is the mean over the images of its per-image min and
        # max (one image per calibration batch), not the global extremes, which a few outliers set.
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "CalibMovingAverage": True},
    )
    return reader.count


def _quantize_nncf(model, batches: list[np.ndarray], keep: list[str]):
    """NNCF's post-training quantisation of the ONNX ``model`` (MIXED preset: asymmetric activations)."""
    try:
        import nncf
    except ImportError:
        raise ImportError("--int8-method nncf needs NNCF: pip install nncf") from None
    if not batches:
        raise ValueError("calibration: none of the images could be read")
    nncf.set_log_level(logging.WARNING)
    model = _constants_as_initializers(model)  # NNCF's ONNX backend looks weights up among the initializers
    name = model.graph.input[0].name
    data = nncf.Dataset([{name: batch} for batch in batches])
    return nncf.quantize(model, data, preset=nncf.QuantizationPreset.MIXED, subset_size=len(batches),
                         ignored_scope=nncf.IgnoredScope(names=keep, validate=False))


def _constants_as_initializers(model):
    """A copy of ``model`` whose tensor ``Constant`` nodes are initializers (same tensor names)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for node in copy.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            copy.graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy
