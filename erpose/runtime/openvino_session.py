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

from erpose.runtime.predict import OnnxBackend
from erpose.runtime.session import ExportedSession, ExportMetadata, OnnxModelError

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


class OpenVinoSession(ExportedSession):
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

    def run_raw(self, images: np.ndarray) -> np.ndarray:
        """The graph's own output for (B, 3, H, W) float32 images in [0, 1]."""
        images = self.check_input(images)
        if not self.metadata.dynamic:
            batch = self.compiled.inputs[0].get_partial_shape()[0].get_length()
            if images.shape[0] != batch:
                if batch != 1:
                    raise ValueError(f"{self.path}: exported with a fixed batch of {batch}, got {images.shape[0]} "
                                     f"images; re-export with --dynamic-batch")
                # A static batch-1 IR runs a batch image by image.
                return np.concatenate([self.run_raw(image[None]) for image in images])
        self.request.infer({0: images})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)


class OpenVinoBackend(OnnxBackend):
    """An :class:`OpenVinoSession` with the backend interface of :class:`erpose.runtime.predictor.Predictor`
    (:class:`erpose.runtime.predict.OnnxBackend`'s, on another session)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = DEFAULT_DEVICE) -> None:
        self.attach(OpenVinoSession(path, threads=threads, device=device))


def load_backend(path: str | os.PathLike, threads: int | None = None, device: str = DEFAULT_DEVICE) -> OpenVinoBackend:
    """The ``erpose predict`` backend of an OpenVINO IR (``.xml`` or its folder)."""
    return OpenVinoBackend(path, threads=threads, device=device)
