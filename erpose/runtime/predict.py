"""Torch-free pose prediction from an erpose ONNX file: letterbox -> ONNX Runtime -> un-letterbox -> Results.

numpy + OpenCV + onnxruntime only (``erpose.engine.results`` and ``erpose.runtime.draw`` are numpy
too), the way rtmlib serves RTMO: a deployment installs ``erpose`` without torch, or copies
this folder.

Example::

    from erpose.runtime.predict import OnnxPredictor
    predictor = OnnxPredictor("erpose-n.onnx", conf=0.25, threads=2)
    results = predictor(["people.jpg"])          # list of Results, one per image
    cv2.imwrite("out.jpg", results[0].plot())
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from erpose.engine.results import Keypoints, Results
from erpose.images import read_image
from erpose.limits import MAX_DET, check_size
from erpose.runtime.letterbox import letterbox, unletterbox_keypoints
from erpose.runtime.session import PoseSession
from erpose.skeleton import Skeleton

LetterboxParams = tuple[tuple[float, float], tuple[int, int]]


def preprocess(
    images: Sequence[np.ndarray], imgsz: tuple[int, int], channel_order: str = "RGB"
) -> tuple[np.ndarray, list[LetterboxParams]]:
    """Letterbox BGR uint8 images to ``imgsz`` and stack them as the network input.

    Args:
        images: (H, W, 3) uint8 BGR images (OpenCV's order), any sizes.
        imgsz: (H, W) network input.
        channel_order: ``"RGB"`` (erpose exports) or ``"BGR"``.

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
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1.0 / 255.0), params


def postprocess(
    output: np.ndarray, params: LetterboxParams, num_keypoints: int, conf: float, max_det: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One image's ``(N, 1 + 3K)`` rows -> scores (n,) and keypoints (n, K, 3) in original pixels.

    Rows must be sorted by score (every :class:`PoseSession` output is); rows with score <= ``conf``
    are dropped, so are rows past ``max_det``.
    """
    output = np.asarray(output, dtype=np.float32).reshape(-1, 1 + 3 * num_keypoints)
    output = output[output[:, 0] > conf][:max_det]
    keypoints = output[:, 1:].reshape(len(output), num_keypoints, 3)
    keypoints = unletterbox_keypoints(keypoints, *params).astype(np.float32, copy=False)
    return output[:, 0].copy(), keypoints


class OnnxBackend:
    """A :class:`PoseSession` with the backend interface of ``erpose.engine.predictor.Predictor``.

    Args:
        path: the ``.onnx`` file.
        threads: ORT intra-op threads (None: ORT default).
        providers: ORT execution providers (default CPU).

    Attributes:
        skeleton: keypoint schema read from the file.
        strides: model strides read from the file.
        imgsz: (H, W) input the file was exported at.
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None
    ) -> None:
        self.session = PoseSession(path, threads=threads, providers=providers)
        meta = self.session.metadata
        self.skeleton: Skeleton = meta.skeleton
        self.strides = meta.strides
        self.imgsz = meta.imgsz

    @property
    def fixed_imgsz(self) -> tuple[int, int] | None:
        """The (H, W) input the file requires, or None when its H and W axes are dynamic."""
        meta = self.session.metadata
        return None if meta.dynamic_shape else tuple(meta.imgsz)

    def predict(self, images: np.ndarray, conf: float = 0.001, max_det: int = 100) -> list[np.ndarray]:
        """(B, 3, H, W) float32 in [0, 1] -> per image (n_i, 1 + 3K) rows with score > ``conf``."""
        self.session.conf = float(conf)  # the NMS of baseline graphs thresholds before suppressing
        out = self.session.run(images)
        return [rows[rows[:, 0] > conf][:max_det] for rows in out]


class OnnxPredictor:
    """Images in, :class:`~erpose.engine.results.Results` out, with ONNX Runtime and no torch.

    Args:
        path: an ``erpose export`` ``.onnx`` file.
        conf: person score threshold.
        max_det: at most this many people per image (and at most the file's ``max_det``).
        threads: ORT intra-op threads (None: ORT default).
        providers: ORT execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        conf: float = 0.25,
        max_det: int = 100,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        self.session = PoseSession(path, threads=threads, providers=providers, conf=conf)
        self.conf, self.max_det = float(conf), check_size("max_det", max_det, MAX_DET)

    @property
    def skeleton(self) -> Skeleton:
        return self.session.skeleton

    def __call__(self, images: Sequence[np.ndarray | str | os.PathLike] | np.ndarray) -> list[Results]:
        return self.predict(images)

    def predict(self, images: Sequence[np.ndarray | str | os.PathLike] | np.ndarray) -> list[Results]:
        """Poses for BGR uint8 arrays or image paths (one batch; a static file takes batch 1 each).

        Returns:
            One :class:`Results` per image, keypoints in that image's pixels, scores descending.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        frames, paths = [], []
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray):
                frames.append(item)
                paths.append(f"image{i}")
            else:
                frames.append(read_image(item))  # ImageFileError (an OSError) names the file
                paths.append(str(Path(item)))
        if not frames:
            return []
        meta = self.session.metadata
        chunk = len(frames) if meta.dynamic else 1
        results: list[Results] = []
        for start in range(0, len(frames), chunk):
            results += self._predict_batch(frames[start:start + chunk], paths[start:start + chunk])
        return results

    def _predict_batch(self, frames: list[np.ndarray], paths: list[str]) -> list[Results]:
        meta = self.session.metadata
        t0 = time.perf_counter()
        batch, params = preprocess(frames, meta.imgsz, meta.channel_order)
        t1 = time.perf_counter()
        out = self.session.run(batch)
        t2 = time.perf_counter()
        people = [postprocess(rows, p, meta.num_keypoints, self.conf, self.max_det) for rows, p in zip(out, params)]
        t3 = time.perf_counter()
        n = len(frames)
        speed = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                 "postprocess": (t3 - t2) * 1e3 / n}
        return [Results(frame, path, scores, Keypoints(keypoints), meta.skeleton, 0, dict(speed))
                for frame, path, (scores, keypoints) in zip(frames, paths, people)]
