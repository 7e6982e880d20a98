"""ONNX export: the eval graph (decode + top-k inside for ER-Pose), metadata, checker.

The exported graph is the model's own eval-mode forward, traced, so PyTorch/ONNX parity holds
by construction. An ER-Pose (B5) graph has one output ``(B, max_det, 1 + 3K)``: score, then x, y,
conf per keypoint, input pixels, sorted by score; nothing is left to post-process. The graphs of
steps that need NMS (the box-driven baseline B0, and B1..B4) output their raw anchors
``(B, A, C)`` and the runtime runs the NMS in numpy (:mod:`erpose.runtime.nms`), the way
ultralytics deploys YOLO-Pose, so the latency comparison is like for like.

The metadata written into ``metadata_props`` is :class:`erpose.runtime.session.ExportMetadata`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from erpose import __version__
from erpose.files import check_output_file, target_error
from erpose.limits import MAX_BATCH, MAX_DET, check_imgsz, check_size
from erpose.runtime.session import ExportMetadata

logger = logging.getLogger(__name__)

#: Oldest opset the graph is checked with (LayerNormalization, TopK with sorted output).
MIN_OPSET = 17
#: IoU / OKS threshold of the NMS of steps that need one (``PoseModel.postprocess`` default).
NMS_THRESHOLD = 0.7


class ExportError(RuntimeError):
    """The model could not be exported or the result failed the ONNX checker."""


@dataclass(frozen=True)
class OnnxExportConfig:
    """Options of :func:`export_onnx`.

    Attributes:
        imgsz: input (H, W) pixels (an int is square); multiples of the model's largest stride.
        batch: batch size of the traced input (the fixed batch unless a dynamic option is on).
        dynamic: batch, height and width symbolic (any input size; an input with fewer anchor
            points than ``max_det`` gets zero rows at the end).
        dynamic_batch: only the batch axis symbolic (implied by ``dynamic``).
        half: float16 input, backbone and neck; float32 head and output (for GPU runtimes;
            see docs/deploy.md).
        max_det: persons per image of the output (None: the model's own).
        opset: ONNX opset, >= 17.
        simplify: run onnxsim when it is installed (skipped with a warning otherwise).
    """

    imgsz: int | tuple[int, int] = 640
    batch: int = 1
    dynamic: bool = False
    dynamic_batch: bool = False
    half: bool = False
    max_det: int | None = None
    opset: int = 17
    simplify: bool = False

    def __post_init__(self) -> None:
        check_imgsz(self.imgsz)  # the stride rule needs the model: _validate
        check_size("batch", self.batch, MAX_BATCH)
        if self.max_det is not None:
            check_size("max_det", self.max_det, MAX_DET)

    @property
    def size(self) -> tuple[int, int]:
        size = (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else tuple(self.imgsz)
        return int(size[0]), int(size[1])


def build_metadata(
    model: torch.nn.Module, config: OnnxExportConfig, model_name: str | None = None
) -> ExportMetadata:
    """The :class:`ExportMetadata` describing ``model`` exported with ``config``."""
    step = str(getattr(model.config, "step", "B5"))
    needs_nms = bool(model.needs_nms)
    k = model.num_keypoints
    if not needs_nms:
        nms, raw_columns = "none", {}
    elif step == "B0":  # score, 3K keypoint values, then the x1y1x2y2 box (PoseModel's eval layout)
        nms, raw_columns = "box", {"score": 0, "keypoints": 1, "box": 1 + 3 * k}
    else:
        nms, raw_columns = "oks", {"score": 0, "keypoints": 1}
    return ExportMetadata(
        skeleton=model.skeleton,
        imgsz=config.size,
        strides=tuple(int(s) for s in model.strides),
        max_det=int(config.max_det or model.max_det),
        model_name=model_name or f"{'yolopose' if step == 'B0' else 'erpose'}-{model.config.scale}",
        step=step,
        needs_nms=needs_nms,
        nms=nms,
        nms_iou=NMS_THRESHOLD,
        raw_columns=raw_columns,
        dynamic=config.dynamic or config.dynamic_batch,
        dynamic_shape=config.dynamic,
        half=config.half,
        channel_order="RGB",
        version=__version__,
    )


def _validate(model: torch.nn.Module, config: OnnxExportConfig) -> None:
    if config.opset < MIN_OPSET:
        raise ValueError(f"opset {config.opset} is too old: erpose exports need opset >= {MIN_OPSET}")
    check_imgsz(config.imgsz, max(model.strides))


def _prepare(model: torch.nn.Module, config: OnnxExportConfig) -> torch.nn.Module:
    """A deployed, fused, eval-mode copy (the caller's model is left untouched)."""
    model = copy.deepcopy(model).cpu().float()
    if hasattr(model, "deploy"):
        model.deploy()
    model.eval()
    if hasattr(model, "fuse"):
        model.fuse()
    if config.max_det is not None:
        model.max_det = int(config.max_det)
    for p in model.parameters():
        p.requires_grad_(False)
    return _HalfGraph(model) if config.half else model


class _HalfGraph(torch.nn.Module):
    """float16 backbone and neck (nearly all the compute), float32 head.

    The head stays in float32 because the anchor grid is an ONNX ``Range``, which has no float16
    kernel, and because float16 cannot hold 640-px coordinates to better than a quarter pixel.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        model.backbone.half()
        model.neck.half()

    @property
    def needs_nms(self) -> bool:
        return self.model.needs_nms

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.neck(self.model.backbone(images))
        return self.model.head({stride: f.float() for stride, f in features.items()})


def _trace_to_onnx(model: torch.nn.Module, sample: torch.Tensor, path: Path, config: OnnxExportConfig) -> None:
    axes: dict[str, dict[int, str]] = {}
    if config.dynamic:
        axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch"}}
        if model.needs_nms:
            axes["output"][1] = "anchors"
    elif config.dynamic_batch:
        axes = {"images": {0: "batch"}, "output": {0: "batch"}}
    # The TorchScript exporter: the dynamo one needs onnxscript and gains nothing for a plain
    # conv graph. Its deprecation and tracer warnings are expected noise; kept at debug level.
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        torch.onnx.export(
            model, (sample,), str(path), dynamo=False, opset_version=config.opset,
            input_names=["images"], output_names=["output"], dynamic_axes=axes or None,
            do_constant_folding=True,
        )
    for warning in caught:
        logger.debug("torch.onnx.export: %s", warning.message)


def _simplify(onnx_model):
    try:
        import onnxsim
    except ImportError:
        logger.warning("--simplify: onnxsim is not installed (pip install onnxsim); exporting unsimplified")
        return onnx_model
    simplified, ok = onnxsim.simplify(onnx_model)
    if not ok:
        logger.warning("--simplify: onnxsim could not validate the simplified graph; keeping the original")
        return onnx_model
    return simplified


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    config: OnnxExportConfig | None = None,
    *,
    model_name: str | None = None,
) -> Path:
    """Export a ``PoseModel`` to an ONNX file with erpose metadata.

    Args:
        model: a ``PoseModel`` (any step); it is copied, not modified.
        path: the ``.onnx`` file to write (atomically; parent folders are created).
        config: export options (defaults: 640 px, batch 1, static, fp32, opset 17).
        model_name: name stored in the metadata (default: zoo name from the config).

    Returns:
        The written path.

    Raises:
        ValueError: bad options (opset < 17, imgsz not a stride multiple, ...).
        ExportError: tracing failed or the ONNX checker rejected the graph.
        OSError: ``path`` cannot be written (naming ``path``).
    """
    import onnx

    config = config or OnnxExportConfig()
    _validate(model, config)
    metadata = build_metadata(model, config, model_name)
    prepared = _prepare(model, config)
    h, w = config.size
    dtype = torch.float16 if config.half else torch.float32
    sample = torch.rand(config.batch, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dtype)
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = tempfile.TemporaryDirectory(dir=path.parent)
    except OSError as exc:  # the graph is staged next to ``path``: an unwritable folder is about ``path``
        raise target_error(exc, path) from None
    with staging as tmp:
        traced = Path(tmp) / "graph.onnx"
        try:
            _trace_to_onnx(prepared, sample, traced, config)
        except Exception as exc:
            raise ExportError(f"ONNX export of {metadata.model_name} failed: {exc}") from exc
        onnx_model = onnx.load(str(traced))
        if config.simplify:
            onnx_model = _simplify(onnx_model)
        del onnx_model.metadata_props[:]
        for key, value in metadata.to_props().items():
            onnx_model.metadata_props.add(key=key, value=value)
        onnx_model.producer_name = "erpose"
        onnx_model.producer_version = __version__
        onnx_model.doc_string = f"{metadata.model_name} ({metadata.step}) exported by erpose {__version__}"
        try:
            onnx.checker.check_model(onnx_model, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"ONNX checker rejected the exported graph: {exc}") from exc
        staged = Path(tmp) / "final.onnx"
        onnx.save(onnx_model, str(staged))
        try:
            os.replace(staged, path)
        except OSError as exc:
            raise target_error(exc, path) from None
    logger.debug("exported %s (%s) to %s", metadata.model_name, metadata.step, path)
    return path
