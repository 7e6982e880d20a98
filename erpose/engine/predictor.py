"""The PyTorch backend of the prediction loop, and backend loading by file kind.

The loop itself (sources, letterbox, un-letterbox, optional OKS-NMS, :class:`Results`) is
:class:`erpose.runtime.predictor.Predictor`, torch-free; this module adds :class:`TorchBackend`
(a ``PoseModel`` as one more backend), a :class:`Predictor` that wraps a PyTorch model on the way
in, and :func:`load_backend` (zoo name, ``.yaml``, ``.pt`` or ``.onnx``). torch is imported only
when a torch backend needs it, so importing this module works without torch.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from erpose.runtime.predictor import NMS_OKS_THRESHOLD, PoseBackend, oks_nms
from erpose.runtime.predictor import Predictor as RuntimePredictor
from erpose.skeleton import Skeleton

log = logging.getLogger(__name__)

__all__ = ["NMS_OKS_THRESHOLD", "PoseBackend", "Predictor", "TorchBackend", "load_backend", "oks_nms", "parse_device"]


class TorchBackend:
    """Runs a PyTorch ``PoseModel`` (anything with ``predict(tensor, conf=, max_det=)``) as a backend.

    Args:
        model: the model; put in eval mode and moved to ``device``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a bare GPU index such as ``"0"``.
        half: run in float16 (CUDA only; ignored with a warning elsewhere).
    """

    def __init__(self, model: Any, device: str = "cpu", half: bool = False) -> None:
        self.device = parse_device(device)
        self.half = bool(half) and self.device.type == "cuda"
        if half and not self.half:
            log.warning("half precision needs a CUDA device; running in float32 on %s", self.device)
        self.model = model.to(self.device).eval()
        if self.half:
            self.model = self.model.half()
        self.skeleton: Skeleton = model.skeleton
        self.strides = tuple(int(s) for s in getattr(model, "strides", (32,)))
        #: What ``predict`` runs: a ``PoseModel`` reduced to its inference graph with Conv+BN folded
        #: (batch norm was ~10 % of a served request's CPU time), as ``erpose export`` does; other
        #: modules as they are. ``model`` stays the trainable original.
        self.inference_model = self.model
        if callable(getattr(model, "deploy", None)) and callable(getattr(model, "fuse", None)):
            self.inference_model = copy.deepcopy(self.model).deploy().fuse()

    def predict(self, images: np.ndarray, conf: float, max_det: int) -> list[np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.half() if self.half else x.float()
        with torch.inference_mode():
            outputs = self.inference_model.predict(x, conf=conf, max_det=max_det)
        return [out.detach().float().cpu().numpy() for out in outputs]


def parse_device(device: str | int) -> Any:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"0"`` -> ``torch.device``; clear error if unusable."""
    import torch

    text = str(device).strip().lower()
    if text.isdigit():
        text = f"cuda:{text}"
    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (use cpu, cuda, cuda:N, N or mps)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but MPS is not available")
    return parsed


def load_backend(weights: str | os.PathLike, device: str = "cpu", half: bool = False) -> PoseBackend:
    """Load a backend from a model name (``"erpose-n"``), a ``.yaml`` config, a ``.pt`` or an ``.onnx``.

    ``.onnx`` files go to :func:`erpose.runtime.session.load_backend` (ONNX Runtime, no torch);
    everything else to :func:`erpose.models.checkpoint.load_model` in a :class:`TorchBackend`.

    Raises:
        FileNotFoundError: a weights path that does not exist.
        ValueError: a file of another kind.
    """
    text = os.fspath(weights)
    from erpose.runtime import openvino_session

    if openvino_session.is_openvino_path(text):  # an OpenVINO IR: its .xml or the folder holding it
        return openvino_session.load_backend(text)
    if Path(text).suffix.lower() == ".onnx":
        if not os.path.isfile(text):
            raise FileNotFoundError(f"weights file not found: {text}")
        from erpose.runtime.session import load_backend as load_onnx_backend

        return load_onnx_backend(text)
    looks_like_path = Path(text).suffix != "" or os.sep in text
    if looks_like_path and not os.path.exists(text):
        raise FileNotFoundError(f"weights file not found: {text}")
    from erpose.models.checkpoint import load_model

    return TorchBackend(load_model(text), device=device, half=half)


class Predictor(RuntimePredictor):
    """:class:`erpose.runtime.predictor.Predictor` that also takes a PyTorch model.

    Args:
        model: a PyTorch ``PoseModel`` (wrapped in :class:`TorchBackend`) or any :class:`PoseBackend`.
        imgsz, conf, max_det, batch_size, nms, nms_threshold: as the runtime predictor.
        device: torch device for a PyTorch model (ignored for other backends).
        half: float16 inference (CUDA, PyTorch models).
    """

    def __init__(
        self,
        model: Any,
        imgsz: int | tuple[int, int] | None = None,
        conf: float = 0.25,
        max_det: int = 100,
        device: str = "cpu",
        batch_size: int = 1,
        nms: bool = False,
        nms_threshold: float = NMS_OKS_THRESHOLD,
        half: bool = False,
    ) -> None:
        if _is_torch_module(model):
            model = TorchBackend(model, device=device, half=half)
        super().__init__(model, imgsz=imgsz, conf=conf, max_det=max_det, batch_size=batch_size, nms=nms,
                         nms_threshold=nms_threshold)


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)
