"""OpenVINO IR export: the ONNX export converted by OpenVINO, float32 or INT8 (NNCF post-training).

``erpose export --format openvino`` writes a folder ``<name>_openvino/`` holding ``<name>.xml`` and
``<name>.bin``. The graph is the float32 ONNX export (:func:`erpose.export.onnx.export_onnx`,
decoding and top-k inside) converted by ``openvino.convert_model``, so it has the same one input
and the same one ``(B, max_det, 1 + 3K)`` output, and the batch (or batch, height and width) stays
dynamic when the ONNX file's is. The metadata goes into the IR's ``rt_info`` section ``erpose``
(:func:`erpose.runtime.openvino_session.write_metadata`); weights are saved as float32
(``compress_to_fp16=False``), so the IR computes what the ONNX file computes.

With ``int8`` the model is quantised by NNCF (``nncf.quantize``, the maintained post-training path
of OpenVINO; its older POT tool is gone): int8 weights per output channel, activations per tensor
with the ``MIXED`` preset (asymmetric, since SiLU outputs are not symmetric), fast bias correction.
Calibration images are letterboxed by :func:`erpose.runtime.predict.preprocess`, as at inference.
The nodes kept float follow the same topological rule as the ONNX Runtime INT8 export
(:func:`erpose.export.quantize.float_nodes`): decoding, top-k and, by default, the head's output
convolutions.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from erpose.export.quantize import Int8Config, calibration_batches, calibration_files
from erpose.runtime.openvino_session import INSTALL_HINT, metadata_of, write_metadata

logger = logging.getLogger(__name__)

#: OpenVINO operation types that are convolutions (what the float/int8 split is decided on).
CONV_TYPES = ("Convolution", "GroupConvolution")


def _ov():
    try:
        import openvino
    except ImportError:
        raise ImportError(f"--format openvino needs the openvino package: {INSTALL_HINT}") from None
    return openvino


def _nncf():
    try:
        import nncf
    except ImportError:
        raise ImportError("--format openvino --int8 needs NNCF: pip install nncf (or pip install 'erpose[openvino]')"
                          ) from None
    nncf.set_log_level(logging.WARNING)  # its INFO lines list every node it leaves alone
    return nncf


def float_ops(model, keep_float: str = "head-outputs") -> list[str]:
    """Friendly names of the operations of an ``openvino.Model`` that stay float.

    The rule of :func:`erpose.export.quantize.float_nodes`, on the OpenVINO graph: an operation
    from which no convolution can be reached, and that is not one, stays float (the anchor grid,
    decoding, top-k, gathers); with ``"head-outputs"`` the convolutions whose output reaches no
    other convolution (the head's output convolutions) too.
    """
    ops = list(model.get_ordered_ops())
    reaches: dict[str, bool] = {}
    for op in reversed(ops):  # topological order reversed: every consumer is decided first
        children = [target.get_node() for out in op.outputs() for target in out.get_target_inputs()]
        reaches[op.get_friendly_name()] = any(
            child.get_type_name() in CONV_TYPES or reaches.get(child.get_friendly_name(), False) for child in children
        )
    keep = []
    for op in ops:
        kind, name = op.get_type_name(), op.get_friendly_name()
        if kind in ("Constant", "Parameter", "Result"):
            continue
        if kind in CONV_TYPES:
            if keep_float == "head-outputs" and not reaches[name]:
                keep.append(name)
        elif not reaches[name]:
            keep.append(name)
    return keep


class _CalibrationSet:
    """Re-iterable (1, 3, H, W) float32 calibration inputs (NNCF passes over the data more than once)."""

    def __init__(self, files: Sequence[Path], imgsz: tuple[int, int], channel_order: str) -> None:
        self.files, self.imgsz, self.channel_order = list(files), imgsz, channel_order

    def __iter__(self) -> Iterator[np.ndarray]:
        return calibration_batches(self.files, self.imgsz, self.channel_order)

    def __len__(self) -> int:
        return len(self.files)


def quantize_openvino(model, metadata, config: Int8Config):
    """An INT8 copy of ``model`` (an ``openvino.Model`` of an erpose export) made by NNCF.

    Returns:
        ``(quantised model, scheme text)``.
    """
    nncf = _nncf()
    files = calibration_files(config.calib, config.calib_images)
    data = _CalibrationSet(files, metadata.imgsz, metadata.channel_order)
    keep = float_ops(model, config.keep_float)
    quantized = nncf.quantize(
        model, nncf.Dataset(data), preset=nncf.QuantizationPreset.MIXED, subset_size=len(files),
        ignored_scope=nncf.IgnoredScope(names=keep, validate=False),
    )
    scheme = (f"int8-nncf per-channel weights, per-tensor asymmetric activations, fast bias correction, "
              f"float {config.keep_float}, calibrated on {len(files)} images of {files[0].parent.name}")
    return quantized, scheme


def ir_name(out_dir: Path) -> str:
    """``<name>`` of ``<name>_openvino/<name>.xml``."""
    name = out_dir.name
    return name[: -len("_openvino")] if name.endswith("_openvino") and len(name) > len("_openvino") else name


def onnx_to_openvino(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, int8: Int8Config | None = None) -> Path:
    """Convert an erpose ONNX export (float32) into an OpenVINO IR folder; returns the ``.xml``.

    Raises:
        ValueError: a float16 (``--half``) file, or a bad calibration source.
        OnnxModelError: the file is no erpose export.
        ImportError: openvino (or, for ``int8``, nncf) is missing.
    """
    import onnx

    from erpose.runtime.session import ExportMetadata

    ov = _ov()
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    metadata = ExportMetadata.from_props(props, str(onnx_path))
    if metadata.half:
        raise ValueError("--format openvino starts from the float32 graph; drop --half "
                         "(OpenVINO chooses its own inference precision per device)")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(20, "is a file; --format openvino writes a folder", str(out_dir))
    model = ov.convert_model(str(onnx_path))
    if int8 is not None:
        model, scheme = quantize_openvino(model, metadata, int8)
        from dataclasses import replace

        metadata = replace(metadata, quantization=scheme)
    write_metadata(model, metadata)
    metadata_of(model, str(out_dir))  # the round trip must parse before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    name = ir_name(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / f"{name}.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        # Weights first, then the graph that names them: a reader never sees a new .xml with old weights.
        os.replace(staged.with_suffix(".bin"), out_dir / f"{name}.bin")
        os.replace(staged, out_dir / f"{name}.xml")
    logger.debug("converted %s -> %s%s", onnx_path, out_dir, " (INT8)" if int8 else "")
    return out_dir / f"{name}.xml"


def export_openvino(model, out_dir: str | os.PathLike, config=None, *, int8: Int8Config | None = None,
                    model_name: str | None = None) -> Path:
    """Export a ``PoseModel`` to an OpenVINO IR folder (via a temporary float32 ONNX export).

    Args:
        model: a ``PoseModel`` (any step); it is copied, not modified.
        out_dir: the folder to write (``<name>.xml`` and ``<name>.bin`` inside).
        config: :class:`erpose.export.onnx.OnnxExportConfig` (size, batch, dynamic axes, max_det).
        int8: quantise with NNCF on these calibration images (None: float32).
        model_name: name stored in the metadata.

    Returns:
        The ``.xml`` path.
    """
    from erpose.export.onnx import OnnxExportConfig, export_onnx

    config = config or OnnxExportConfig()
    if config.half:
        raise ValueError("--format openvino starts from the float32 graph; drop --half "
                         "(OpenVINO chooses its own inference precision per device)")
    _ov()
    if int8 is not None:
        _nncf()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(20, "is a file; --format openvino writes a folder", str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "float.onnx", config, model_name=model_name)
        return onnx_to_openvino(onnx_path, out_dir, int8)
