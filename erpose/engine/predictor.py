"""Prediction: sources -> letterboxed batches -> a backend -> :class:`Results` in original pixels.

The :class:`Predictor` works on numpy arrays and talks to a *backend*: any object with

- ``skeleton``: the :class:`~erpose.skeleton.Skeleton` of its outputs;
- ``strides``: optional, the model strides (the input size is rounded up to the largest);
- ``predict(images, conf, max_det) -> list[array (n_i, 1 + 3K)]``: ``images`` (B, 3, H, W) float32
  RGB in [0, 1]; rows are score, then x, y, confidence per keypoint in input pixels.

A PyTorch ``PoseModel`` is wrapped in :class:`TorchBackend`; an ONNX session (issue 7) plugs in by
implementing the same three members (see :func:`load_backend`). torch is imported only when a torch
backend or ``nms=True`` needs it, so this module itself runs without torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from erpose.engine.results import Keypoints, Results
from erpose.engine.sources import Source, open_source
from erpose.limits import MAX_BATCH, MAX_DET, check_imgsz, check_size
from erpose.runtime.letterbox import letterbox, unletterbox_keypoints
from erpose.skeleton import Skeleton

log = logging.getLogger(__name__)

#: Default OKS above which the lower-scored of two people is dropped by the optional OKS-NMS.
NMS_OKS_THRESHOLD = 0.65


class PoseBackend(Protocol):
    """What the predictor needs from a model (PyTorch or ONNX)."""

    skeleton: Skeleton

    def predict(self, images: np.ndarray, conf: float, max_det: int) -> Sequence[np.ndarray]: ...


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

    def predict(self, images: np.ndarray, conf: float, max_det: int) -> list[np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = x.half() if self.half else x.float()
        with torch.inference_mode():
            outputs = self.model.predict(x, conf=conf, max_det=max_det)
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

    ``.onnx`` files go to ``erpose.runtime.session.load_backend(path)`` when the runtime provides it
    (the hook for issue 7); everything else to ``erpose.models.checkpoint.load_model``.

    Raises:
        FileNotFoundError: a weights path that does not exist.
        ValueError: a file of another kind, or ``.onnx`` before the runtime supports it.
    """
    text = os.fspath(weights)
    from erpose.runtime import openvino_session

    if openvino_session.is_openvino_path(text):  # an OpenVINO IR: its .xml or the folder holding it
        return openvino_session.load_backend(text)
    if Path(text).suffix.lower() == ".onnx":
        if not os.path.isfile(text):
            raise FileNotFoundError(f"weights file not found: {text}")
        try:
            session = importlib.import_module("erpose.runtime.session")
            loader = session.load_backend
        except (ImportError, AttributeError):
            raise ValueError(f"{text}: ONNX weights are not supported by this version yet") from None
        return loader(text)
    looks_like_path = Path(text).suffix != "" or os.sep in text
    if looks_like_path and not os.path.exists(text):
        raise FileNotFoundError(f"weights file not found: {text}")
    from erpose.models.checkpoint import load_model

    return TorchBackend(load_model(text), device=device, half=half)


class Predictor:
    """Batched pose prediction on images, folders, globs, videos, cameras and streams.

    Args:
        model: a PyTorch ``PoseModel`` (wrapped in :class:`TorchBackend`) or any :class:`PoseBackend`.
        imgsz: network input size, square ``int`` or ``(height, width)``; rounded up to a multiple of
            the largest model stride. Every image is letterboxed to it, so batches stack.
        conf: person score threshold.
        max_det: at most this many people per image.
        device: torch device for a PyTorch model (ignored for other backends).
        batch_size: images per forward pass.
        nms: apply OKS-NMS after the model (off by default: ER-Pose is NMS-free).
        nms_threshold: OKS above which the lower-scored person is dropped.
        half: float16 inference (CUDA, PyTorch models).
    """

    def __init__(
        self,
        model: Any,
        imgsz: int | tuple[int, int] = 640,
        conf: float = 0.25,
        max_det: int = 100,
        device: str = "cpu",
        batch_size: int = 1,
        nms: bool = False,
        nms_threshold: float = NMS_OKS_THRESHOLD,
        half: bool = False,
    ) -> None:
        check_size("batch", batch_size, MAX_BATCH)
        check_size("max_det", max_det, MAX_DET)
        check_imgsz(imgsz)
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {conf}")
        if _is_torch_module(model):
            model = TorchBackend(model, device=device, half=half)
        if not callable(getattr(model, "predict", None)) or not isinstance(getattr(model, "skeleton", None), Skeleton):
            raise ValueError(f"{type(model).__name__} is not a pose model or backend (needs predict() and skeleton)")
        self.backend: PoseBackend = model
        self.skeleton: Skeleton = model.skeleton
        self.imgsz = _round_imgsz(imgsz, max(getattr(model, "strides", (32,)) or (32,)))
        self.conf, self.max_det, self.batch_size = float(conf), int(max_det), int(batch_size)
        self.nms, self.nms_threshold = bool(nms), float(nms_threshold)
        #: Totals over every image seen: ``images`` count and milliseconds per stage.
        self.totals: dict[str, float] = {"images": 0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    def __call__(self, source: Any) -> list[Results]:
        """Predict on every frame of ``source`` (see :func:`~erpose.engine.sources.open_source`)."""
        return list(self.stream(source))

    def stream(self, source: Any) -> Iterator[Results]:
        """Yield one :class:`Results` per readable frame, in source order, computed in batches."""
        frames = source if isinstance(source, Source) else open_source(source)
        batch: list[tuple[np.ndarray, str, int]] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield from self._run_batch(batch)
                batch = []
        if batch:
            yield from self._run_batch(batch)

    def speed(self) -> dict[str, float]:
        """Mean milliseconds per image so far for ``preprocess``, ``inference``, ``postprocess``."""
        n = max(1.0, self.totals["images"])
        return {key: self.totals[key] / n for key in ("preprocess", "inference", "postprocess")}

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, tuple]]]:
        """Letterbox BGR uint8 images to :attr:`imgsz` -> ((B, 3, H, W) float32 RGB [0, 1], [(ratio, pad)])."""
        boxed, params = [], []
        for image in images:
            resized, ratio, pad = letterbox(image, self.imgsz)
            boxed.append(resized)
            params.append((ratio, pad))
        batch = np.stack(boxed)[..., ::-1].transpose(0, 3, 1, 2)  # BGR HWC -> RGB CHW
        return np.ascontiguousarray(batch, dtype=np.float32) / np.float32(255.0), params

    def postprocess(self, output: np.ndarray, ratio: float, pad: tuple) -> tuple[np.ndarray, np.ndarray]:
        """One image's (n, 1 + 3K) output -> scores (n,) and keypoints (n, K, 3) in original pixels."""
        output = np.asarray(output, dtype=np.float32).reshape(-1, 1 + 3 * self.skeleton.num_keypoints)
        output = output[np.argsort(-output[:, 0], kind="stable")][: self.max_det]
        if self.nms and len(output) > 1:
            output = output[oks_nms(output, self.skeleton, self.nms_threshold)]
        keypoints = output[:, 1:].reshape(len(output), self.skeleton.num_keypoints, 3).copy()
        keypoints[..., :2] = unletterbox_keypoints(keypoints[..., :2], ratio, pad)
        return output[:, 0].copy(), keypoints

    def _run_batch(self, batch: list[tuple[np.ndarray, str, int]]) -> Iterator[Results]:
        t0 = time.perf_counter()
        images, params = self.preprocess([frame for frame, _, _ in batch])
        t1 = time.perf_counter()
        outputs = self.backend.predict(images, conf=self.conf, max_det=self.max_det)
        t2 = time.perf_counter()
        if len(outputs) != len(batch):
            raise ValueError(f"backend returned {len(outputs)} outputs for a batch of {len(batch)} images")
        people = [self.postprocess(out, *p) for out, p in zip(outputs, params)]
        t3 = time.perf_counter()
        n = len(batch)
        speed = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                 "postprocess": (t3 - t2) * 1e3 / n}
        self.totals["images"] += n
        for key, value in speed.items():
            self.totals[key] += value * n
        for (frame, path, index), (scores, keypoints) in zip(batch, people):
            yield Results(frame, path, scores, Keypoints(keypoints), self.skeleton, index, dict(speed))


def oks_nms(detections: np.ndarray, skeleton: Skeleton, threshold: float = NMS_OKS_THRESHOLD) -> np.ndarray:
    """Greedy OKS-NMS on one image's rows: :func:`erpose.runtime.nms.oks_nms` (the numpy one) on the
    row layout, so the prediction loop stays torch-free.

    Args:
        detections: (n, 1 + 3K) rows: score, then x, y, conf per keypoint.
        skeleton: gives the OKS sigmas.
        threshold: a person is dropped when its OKS with a kept, higher-scored person exceeds this.

    Returns:
        (m,) int64 indices of the kept rows, best first.
    """
    from erpose.runtime.nms import oks_nms as numpy_oks_nms

    dets = np.asarray(detections, dtype=np.float32)
    keypoints = dets[:, 1:].reshape(len(dets), skeleton.num_keypoints, 3)
    return numpy_oks_nms(keypoints, dets[:, 0], skeleton.sigmas_array(), threshold)


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


def _round_imgsz(imgsz: int | Sequence[int], stride: int) -> tuple[int, int]:
    size = (int(imgsz), int(imgsz)) if isinstance(imgsz, (int, np.integer)) else tuple(int(s) for s in imgsz)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"imgsz must be a positive int or (height, width), got {imgsz}")
    rounded = tuple(-(-s // stride) * stride for s in size)
    if rounded != size:
        log.warning("imgsz %s is not a multiple of the stride %d; using %s", size, stride, rounded)
    return rounded  # type: ignore[return-value]
