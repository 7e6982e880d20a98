"""The one prediction loop: sources -> letterboxed batches -> a backend -> :class:`Results` in original pixels.

numpy + OpenCV only. Every way erpose predicts goes through here: ``erpose predict``/``track``,
``ERPose.predict``, the server, the torch-free :class:`~erpose.runtime.predict.OnnxPredictor` and
the ONNX validation path (which shares :func:`preprocess` and :func:`postprocess`).

A *backend* is any object with

- ``skeleton``: the :class:`~erpose.skeleton.Skeleton` of its outputs;
- ``predict(images, conf, max_det) -> list[array (n_i, 1 + 3K)]``: ``images`` (B, 3, H, W) float32
  RGB in [0, 1]; rows are score, then x, y, confidence per keypoint in input pixels, each with
  score > ``conf`` (the backend thresholds; nothing after it thresholds again);
- optionally ``strides`` (the input size is rounded up to a multiple of the largest), ``imgsz``
  (the size used when none is asked for) and ``fixed_imgsz`` (the only size a file accepts).

``erpose.engine.predictor.TorchBackend`` runs a PyTorch model, ``erpose.runtime.predict.OnnxBackend``
an exported file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from erpose.limits import MAX_BATCH, MAX_DET, check_imgsz, check_size
from erpose.runtime.letterbox import letterbox, unletterbox_keypoints
from erpose.runtime.nms import oks_nms as numpy_oks_nms
from erpose.runtime.results import Keypoints, Results
from erpose.runtime.sources import Source, open_source
from erpose.skeleton import Skeleton

log = logging.getLogger(__name__)

#: Default OKS above which the lower-scored of two people is dropped by the optional OKS-NMS.
NMS_OKS_THRESHOLD = 0.65
#: Input size when neither the caller nor the backend names one.
DEFAULT_IMGSZ = 640

#: Per image: (x, y) scale and (left, top) padding of its letterbox, for :func:`postprocess`.
LetterboxParams = tuple[Any, tuple[int, int]]


class PoseBackend(Protocol):
    """What the predictor needs from a model (PyTorch, ONNX Runtime or another runtime)."""

    skeleton: Skeleton

    def predict(self, images: np.ndarray, conf: float, max_det: int) -> Sequence[np.ndarray]: ...


def preprocess(
    images: Sequence[np.ndarray], imgsz: tuple[int, int], channel_order: str = "RGB"
) -> tuple[np.ndarray, list[LetterboxParams]]:
    """Letterbox BGR uint8 images to ``imgsz`` and stack them as the network input.

    Args:
        images: (H, W, 3) uint8 BGR images (OpenCV's order), any sizes.
        imgsz: (H, W) network input.
        channel_order: ``"RGB"`` (erpose models and exports) or ``"BGR"``.

    Returns:
        ``(batch, params)``: (B, 3, H, W) float32 in [0, 1]; per image ``(ratio, pad)`` for
        :func:`postprocess`.
    """
    boxed, params = [], []
    for image in images:
        resized, ratio, pad = letterbox(image, imgsz)
        boxed.append(resized)
        params.append((ratio, pad))
    batch = np.stack(boxed)
    if channel_order == "RGB":
        batch = batch[..., ::-1]
    batch = batch.transpose(0, 3, 1, 2)  # BHWC -> BCHW
    # Divided, not multiplied by 1/255: the validation transform's arithmetic, bit for bit.
    return np.ascontiguousarray(batch, dtype=np.float32) / np.float32(255.0), params


def postprocess(
    rows: np.ndarray,
    params: LetterboxParams,
    num_keypoints: int,
    max_det: int | None = None,
    sigmas: np.ndarray | None = None,
    nms_threshold: float = NMS_OKS_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """One image's backend rows -> scores (n,) and keypoints (n, K, 3) in original pixels.

    The only un-letterbox of the prediction paths (predictor, torch-free runtime, validation).
    Rows are ordered by descending score (stable, so equal scores keep the backend's order), cut
    to ``max_det`` and, when ``sigmas`` are given, thinned by greedy OKS-NMS at ``nms_threshold``.
    No score threshold: the backend applied it.
    """
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 1 + 3 * num_keypoints)
    rows = rows[np.argsort(-rows[:, 0], kind="stable")][:max_det]
    keypoints = rows[:, 1:].reshape(len(rows), num_keypoints, 3)
    if sigmas is not None and len(rows) > 1:
        keep = numpy_oks_nms(keypoints, rows[:, 0], sigmas, nms_threshold)
        rows, keypoints = rows[keep], keypoints[keep]
    keypoints = unletterbox_keypoints(keypoints, *params).astype(np.float32, copy=False)
    return rows[:, 0].copy(), keypoints


def oks_nms(detections: np.ndarray, skeleton: Skeleton, threshold: float = NMS_OKS_THRESHOLD) -> np.ndarray:
    """Greedy OKS-NMS on one image's rows (:func:`erpose.runtime.nms.oks_nms` on the row layout).

    Args:
        detections: (n, 1 + 3K) rows: score, then x, y, conf per keypoint.
        skeleton: gives the OKS sigmas.
        threshold: a person is dropped when its OKS with a kept, higher-scored person exceeds this.

    Returns:
        (m,) int64 indices of the kept rows, best first.
    """
    dets = np.asarray(detections, dtype=np.float32)
    keypoints = dets[:, 1:].reshape(len(dets), skeleton.num_keypoints, 3)
    return numpy_oks_nms(keypoints, dets[:, 0], skeleton.sigmas_array(), threshold)


def input_size(backend: Any, imgsz: int | Sequence[int] | None) -> tuple[int, int]:
    """The letterbox size for ``backend``: ``imgsz``, else the backend's own, else 640.

    Rounded up to a multiple of the backend's largest stride (with a warning). A file exported at a
    fixed size accepts only that size.

    Raises:
        LimitError: ``imgsz`` is not a positive size within ``erpose.limits.MAX_IMGSZ``.
        ValueError: ``imgsz`` differs from a fixed-size file's input, naming both.
    """
    fixed = getattr(backend, "fixed_imgsz", None)
    stride = max(getattr(backend, "strides", None) or (32,))
    if imgsz is None:
        return fixed or check_imgsz(getattr(backend, "imgsz", None) or DEFAULT_IMGSZ, stride, round_up=True)
    size = check_imgsz(imgsz, stride, round_up=True)
    if fixed is not None and size != tuple(fixed):
        where = getattr(getattr(backend, "session", None), "path", "the model")
        raise ValueError(f"{where}: exported with a fixed input of {tuple(fixed)}, not imgsz {size}; leave "
                         "imgsz out (the file's own size) or re-export with --dynamic")
    return size


class Predictor:
    """Batched pose prediction on images, folders, globs, videos, cameras and streams.

    Args:
        backend: a :class:`PoseBackend` (``erpose.engine.predictor.Predictor`` also takes a PyTorch model).
        imgsz: network input size, square ``int`` or ``(height, width)``; None takes the backend's
            own (an export's size), else 640. Rounded up to a multiple of the largest stride;
            every image is letterboxed to it, so batches stack.
        conf: person score threshold (people with a score above it are kept).
        max_det: at most this many people per image.
        batch_size: images per forward pass.
        nms: apply OKS-NMS after the model (off by default: ER-Pose is NMS-free).
        nms_threshold: OKS above which the lower-scored person is dropped.
    """

    def __init__(
        self,
        backend: Any,
        imgsz: int | tuple[int, int] | None = None,
        conf: float = 0.25,
        max_det: int = 100,
        batch_size: int = 1,
        nms: bool = False,
        nms_threshold: float = NMS_OKS_THRESHOLD,
    ) -> None:
        check_size("batch", batch_size, MAX_BATCH)
        check_size("max_det", max_det, MAX_DET)
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {conf}")
        if not callable(getattr(backend, "predict", None)) or not isinstance(getattr(backend, "skeleton", None),
                                                                             Skeleton):
            raise ValueError(f"{type(backend).__name__} is not a pose model or backend (needs predict() and skeleton)")
        self.backend: PoseBackend = backend
        self.skeleton: Skeleton = backend.skeleton
        self.imgsz = input_size(backend, imgsz)
        self.conf, self.max_det, self.batch_size = float(conf), int(max_det), int(batch_size)
        self.nms, self.nms_threshold = bool(nms), float(nms_threshold)
        #: Totals over every image seen: ``images`` count and milliseconds per stage.
        self.totals: dict[str, float] = {"images": 0, "preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    def __call__(self, source: Any) -> list[Results]:
        """Predict on every frame of ``source`` (see :func:`~erpose.runtime.sources.open_source`)."""
        return list(self.stream(source))

    def stream(self, source: Any) -> Iterator[Results]:
        """Yield one :class:`Results` per readable frame, in source order, computed in batches."""
        frames = source if isinstance(source, Source) else open_source(source)
        batch: list[tuple[np.ndarray, str, int]] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_size:
                yield from self.run_batch(batch)
                batch = []
        if batch:
            yield from self.run_batch(batch)

    def speed(self) -> dict[str, float]:
        """Mean milliseconds per image so far for ``preprocess``, ``inference``, ``postprocess``."""
        n = max(1.0, self.totals["images"])
        return {key: self.totals[key] / n for key in ("preprocess", "inference", "postprocess")}

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[LetterboxParams]]:
        """Letterbox BGR uint8 images to :attr:`imgsz` -> ((B, 3, H, W) float32 RGB [0, 1], [(ratio, pad)])."""
        return preprocess(images, self.imgsz, getattr(self.backend, "channel_order", "RGB"))

    def postprocess(self, rows: np.ndarray, ratio: Any, pad: tuple) -> tuple[np.ndarray, np.ndarray]:
        """One image's (n, 1 + 3K) rows -> scores (n,) and keypoints (n, K, 3) in original pixels."""
        sigmas = self.skeleton.sigmas_array() if self.nms else None
        return postprocess(rows, (ratio, pad), self.skeleton.num_keypoints, self.max_det, sigmas, self.nms_threshold)

    def run_batch(self, batch: Sequence[tuple[np.ndarray, str, int]]) -> list[Results]:
        """One forward pass over ``(frame, path, frame_index)`` tuples -> one :class:`Results` each."""
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
        return [Results(frame, path, scores, Keypoints(keypoints), self.skeleton, index, dict(speed))
                for (frame, path, index), (scores, keypoints) in zip(batch, people)]
