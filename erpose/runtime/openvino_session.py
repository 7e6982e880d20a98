"""OpenVINO runtime for an erpose OpenVINO IR (``erpose export --format openvino``), torch-free.

numpy + openvino + :mod:`erpose.skeleton` only. The IR is the ONNX export converted by OpenVINO
(float32 weights, or INT8 with NNCF's post-training quantisation), so it has the same one input
``images (B, 3, H, W)`` float32 RGB in [0, 1] and the same one output ``(B, max_det, 1 + 3K)``;
its ``rt_info`` section ``erpose`` carries the metadata the ONNX file keeps in ``metadata_props``
(:class:`erpose.runtime.session.ExportMetadata`).

An IR is named by its ``.xml`` file or by the folder ``erpose export`` writes (``*_openvino/``,
holding one ``.xml`` and its ``.bin``). :class:`OpenVinoSession` and :class:`OpenVinoBackend`
mirror :class:`erpose.runtime.session.PoseSession` and :class:`erpose.runtime.predict.OnnxBackend`,
so ``erpose predict/val --weights m_openvino/`` and ``ERPose("m_openvino/")`` take it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from erpose.runtime.nms import nms_poses
from erpose.runtime.session import ExportMetadata, OnnxModelError
from erpose.skeleton import Skeleton

#: The ``rt_info`` section holding the erpose metadata (string values, as ``ExportMetadata.to_props``).
RT_INFO_SECTION = "erpose"
#: OpenVINO device the runtime uses by default.
DEFAULT_DEVICE = "CPU"
INSTALL_HINT = "pip install openvino (or pip install 'erpose[openvino]')"


class OpenVinoModelError(OnnxModelError):
    """An OpenVINO IR that cannot be used: unreadable, or not an erpose export."""


class OpenVinoMissingError(ImportError, ValueError):
    """openvino is not installed (a ``ValueError`` too, so the CLI reports it as one line, exit 2)."""


def _ov():
    try:
        import openvino
    except ImportError:
        raise OpenVinoMissingError(f"OpenVINO IR models need the openvino package: {INSTALL_HINT}") from None
    return openvino


def openvino_xml(path: str | os.PathLike) -> Path | None:
    """The ``.xml`` of an OpenVINO IR named by ``path``, or None when ``path`` names no IR.

    ``path`` is an ``.xml`` file (returned as is, existing or not, so the caller reports a missing
    file) or a folder holding exactly one ``.xml``.

    Raises:
        OpenVinoModelError: a folder with several ``.xml`` files (which one is ambiguous).
    """
    path = Path(path)
    if path.suffix.lower() == ".xml":
        return path
    if not path.is_dir():
        return None
    found = sorted(path.glob("*.xml"))
    if len(found) > 1:
        raise OpenVinoModelError(f"{path}: {len(found)} .xml files in the folder; name the model's .xml file")
    return found[0] if found else None


def is_openvino_path(path: object) -> bool:
    """``path`` names an OpenVINO IR: an ``.xml`` file or a folder with one."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        return openvino_xml(path) is not None
    except OpenVinoModelError:
        return True  # an IR folder, ambiguous: loading it reports why


def _resolve(path: str | os.PathLike) -> Path:
    xml = openvino_xml(path)
    if xml is None:
        raise OpenVinoModelError(f"{path}: not an OpenVINO IR (an .xml file, or a folder holding one)")
    if not xml.is_file():
        raise FileNotFoundError(f"{xml}: no such OpenVINO IR file")
    if not xml.with_suffix(".bin").is_file():
        raise FileNotFoundError(f"{xml.with_suffix('.bin')}: the weights of {xml.name} are missing")
    return xml


def _read_model(core, xml: Path):
    try:
        return core.read_model(str(xml))
    except Exception as exc:  # OpenVINO raises RuntimeError/its own types for a corrupt IR
        raise OpenVinoModelError(f"{xml}: OpenVINO cannot read it ({type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''})") from exc


def metadata_of(model, source: str) -> ExportMetadata:
    """The :class:`ExportMetadata` of an ``openvino.Model`` (its ``rt_info`` section ``erpose``)."""
    props: dict[str, str] = {}
    if model.has_rt_info([RT_INFO_SECTION]):
        section = model.get_rt_info()[RT_INFO_SECTION]
        if isinstance(section, dict):
            props = {str(key): value.astype(str) for key, value in section.items()}
    if not props:
        raise OpenVinoModelError(f"{source}: not an erpose OpenVINO export (no rt_info section "
                                 f"{RT_INFO_SECTION!r}); export it with `erpose export --format openvino`")
    try:
        return ExportMetadata.from_props(props, source)
    except OnnxModelError as exc:
        raise OpenVinoModelError(str(exc).replace("ONNX export", "OpenVINO export")) from None


def write_metadata(model, metadata: ExportMetadata) -> None:
    """Store ``metadata`` in ``model``'s ``rt_info`` (saved with the IR by ``openvino.save_model``)."""
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key])


def read_metadata(path: str | os.PathLike) -> ExportMetadata:
    """Metadata of an erpose OpenVINO IR (``.xml`` or its folder), without compiling it."""
    xml = _resolve(path)
    core = _ov().Core()
    return metadata_of(_read_model(core, xml), str(xml))


class OpenVinoSession:
    """An erpose OpenVINO IR compiled for a device; the :class:`~erpose.runtime.session.PoseSession` API.

    Args:
        path: the IR's ``.xml`` or the folder holding it.
        threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's default, all cores).
        device: OpenVINO device (``"CPU"``, ``"GPU"``, ``"AUTO"``...).
        conf: person-score threshold used by the numpy NMS of baseline graphs.
        precision: ``INFERENCE_PRECISION_HINT`` for the float parts; ``"f32"`` (default) runs the
            model as exported on every CPU (OpenVINO would otherwise pick bf16 on CPUs that have
            it); None leaves OpenVINO's own choice.

    Raises:
        FileNotFoundError: no such file.
        OpenVinoModelError: unreadable IR, or an IR without erpose metadata.
        OpenVinoMissingError: openvino is not installed (an ``ImportError`` and a ``ValueError``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        device: str = DEFAULT_DEVICE,
        conf: float = 0.001,
        precision: str | None = "f32",
    ) -> None:
        self.path = _resolve(path)
        ov = _ov()
        core = ov.Core()
        model = _read_model(core, self.path)
        self.metadata = metadata_of(model, str(self.path))
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise OpenVinoModelError(f"{self.path}: expected 1 input and 1 output, got {len(model.inputs)} "
                                     f"and {len(model.outputs)}")
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision is not None and device.upper().startswith("CPU"):
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            self.compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise OpenVinoModelError(f"{self.path}: OpenVINO cannot compile it for {device} ({type(exc).__name__}: "
                                     f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''})") from exc
        self.request = self.compiled.create_infer_request()
        self.device = device
        self.conf = float(conf)

    @property
    def skeleton(self) -> Skeleton:
        return self.metadata.skeleton

    @property
    def imgsz(self) -> tuple[int, int]:
        return self.metadata.imgsz

    def run_raw(self, images: np.ndarray) -> np.ndarray:
        """The graph's own output for (B, 3, H, W) float32 images in [0, 1]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.path}: expected (B, 3, H, W) images, got {images.shape}")
        meta = self.metadata
        if not meta.dynamic_shape and tuple(images.shape[2:]) != meta.imgsz:
            raise ValueError(f"{self.path}: exported with a fixed input of {meta.imgsz}, got "
                             f"{tuple(images.shape[2:])}; letterbox to that size or re-export with --dynamic")
        if not meta.dynamic:
            batch = self.compiled.inputs[0].get_partial_shape()[0].get_length()
            if images.shape[0] != batch:
                if batch != 1:
                    raise ValueError(f"{self.path}: exported with a fixed batch of {batch}, got {images.shape[0]} "
                                     f"images; re-export with --dynamic-batch")
                # A static batch-1 IR runs a batch image by image.
                return np.concatenate([self.run_raw(image[None]) for image in images])
        self.request.infer({0: images})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)

    def run(self, images: np.ndarray, conf: float | None = None) -> np.ndarray:
        """Poses for a batch: (B, N, 1 + 3K) float32 sorted by score (see ``PoseSession.run``; ``conf``
        is the threshold of the numpy NMS of baseline graphs, None: :attr:`conf`)."""
        raw = self.run_raw(images)
        meta = self.metadata
        if not meta.needs_nms:
            return raw
        return nms_poses(raw, kind=meta.nms, raw_columns=meta.raw_columns, sigmas=meta.skeleton.sigmas_array(),
                         conf=self.conf if conf is None else float(conf), iou=meta.nms_iou, max_det=meta.max_det)

    __call__ = run


class OpenVinoBackend:
    """An :class:`OpenVinoSession` with the backend interface of :class:`erpose.runtime.predictor.Predictor`
    (the same as :class:`erpose.runtime.predict.OnnxBackend`)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = DEFAULT_DEVICE) -> None:
        self.session = OpenVinoSession(path, threads=threads, device=device)
        meta = self.session.metadata
        self.skeleton: Skeleton = meta.skeleton
        self.strides = meta.strides
        self.imgsz = meta.imgsz
        self.channel_order = meta.channel_order

    @property
    def fixed_imgsz(self) -> tuple[int, int] | None:
        """The (H, W) input the IR requires, or None when its H and W axes are dynamic."""
        meta = self.session.metadata
        return None if meta.dynamic_shape else tuple(meta.imgsz)

    def predict(self, images: np.ndarray, conf: float = 0.001, max_det: int = 100) -> list[np.ndarray]:
        """(B, 3, H, W) float32 in [0, 1] -> per image (n_i, 1 + 3K) rows with score > ``conf``."""
        out = self.session.run(images, conf=conf)
        return [rows[rows[:, 0] > conf][:max_det] for rows in out]


def load_backend(path: str | os.PathLike, threads: int | None = None, device: str = DEFAULT_DEVICE) -> OpenVinoBackend:
    """The ``erpose predict`` backend of an OpenVINO IR (``.xml`` or its folder)."""
    return OpenVinoBackend(path, threads=threads, device=device)
