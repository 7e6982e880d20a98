"""Torch-free pose prediction from an erpose ONNX file: :class:`OnnxBackend` in the one prediction loop.

numpy + OpenCV + onnxruntime only, the way rtmlib serves RTMO: a deployment installs ``erpose``
without torch, or copies the ``erpose/runtime`` folder (with ``erpose/skeleton.py``,
``erpose/limits.py`` and ``erpose/images.py``).

Example::

    from erpose.runtime.predict import OnnxPredictor
    predictor = OnnxPredictor("erpose-n.onnx", conf=0.25, threads=2)
    results = predictor(["people.jpg"])          # list of Results, one per image
    cv2.imwrite("out.jpg", results[0].plot())
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from erpose.images import read_image
from erpose.runtime.predictor import NMS_OKS_THRESHOLD, Predictor, postprocess, preprocess
from erpose.runtime.results import Results
from erpose.runtime.session import ExportedSession, PoseSession
from erpose.skeleton import Skeleton

__all__ = ["OnnxBackend", "OnnxPredictor", "postprocess", "preprocess"]


class OnnxBackend:
    """A :class:`PoseSession` with the backend interface of :class:`erpose.runtime.predictor.Predictor`.

    Args:
        path: the ``.onnx`` file.
        threads: ORT intra-op threads (None: ORT default).
        providers: ORT execution providers (default CPU).

    Attributes:
        skeleton: keypoint schema read from the file.
        strides: model strides read from the file.
        imgsz: (H, W) input the file was exported at.
        channel_order: ``"RGB"`` or ``"BGR"``, read from the file.
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None
    ) -> None:
        self.attach(PoseSession(path, threads=threads, providers=providers))

    def attach(self, session: ExportedSession) -> None:
        """Serve ``session`` (an ONNX Runtime or OpenVINO one): the attributes come from its metadata."""
        self.session = session
        meta = session.metadata
        self.skeleton: Skeleton = meta.skeleton
        self.strides = meta.strides
        self.imgsz = meta.imgsz
        self.channel_order = meta.channel_order

    @property
    def fixed_imgsz(self) -> tuple[int, int] | None:
        """The (H, W) input the file requires, or None when its H and W axes are dynamic."""
        meta = self.session.metadata
        return None if meta.dynamic_shape else tuple(meta.imgsz)

    @property
    def max_batch(self) -> int | None:
        """Images per run the file accepts: None (any) for a dynamic-batch file, else its batch."""
        meta = self.session.metadata
        return None if meta.dynamic else 1

    def predict(self, images: np.ndarray, conf: float = 0.001, max_det: int = 100) -> list[np.ndarray]:
        """(B, 3, H, W) float32 in [0, 1] -> per image (n_i, 1 + 3K) rows with score > ``conf``.

        A fixed-batch file runs the images one at a time.
        """
        step = self.max_batch or len(images)
        rows: list[np.ndarray] = []
        for start in range(0, len(images), step):
            out = self.session.run(images[start:start + step], conf=conf)
            rows += [image_rows[image_rows[:, 0] > conf][:max_det] for image_rows in out]
        return rows


class OnnxPredictor(Predictor):
    """Images in, :class:`~erpose.runtime.results.Results` out, with ONNX Runtime and no torch.

    The prediction loop of :class:`erpose.runtime.predictor.Predictor` on an :class:`OnnxBackend`,
    letterboxed to the file's own input size.

    Args:
        path: an ``erpose export`` ``.onnx`` file.
        conf: person score threshold.
        max_det: at most this many people per image (and at most the file's ``max_det``).
        threads: ORT intra-op threads (None: ORT default).
        providers: ORT execution providers (default ``["CPUExecutionProvider"]``).
        batch_size: images per run (a fixed-batch file runs them one at a time).
        nms: OKS-NMS after the model (ER-Pose files do not need it).
        nms_threshold: OKS above which the lower-scored person is dropped.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        conf: float = 0.25,
        max_det: int = 100,
        threads: int | None = None,
        providers: list[str] | None = None,
        batch_size: int = 1,
        nms: bool = False,
        nms_threshold: float = NMS_OKS_THRESHOLD,
    ) -> None:
        backend = OnnxBackend(path, threads=threads, providers=providers)
        super().__init__(backend, imgsz=None, conf=conf, max_det=max_det, batch_size=batch_size, nms=nms,
                         nms_threshold=nms_threshold)
        self.session = backend.session

    def __call__(self, images: Sequence[np.ndarray | str | os.PathLike] | np.ndarray | str) -> list[Results]:
        return self.predict(images)

    def predict(self, images: Sequence[np.ndarray | str | os.PathLike] | np.ndarray | str) -> list[Results]:
        """Poses for BGR uint8 arrays or image paths, as one batch (a fixed-batch file takes them one by one).

        Raises:
            erpose.images.ImageFileError: an unreadable image path (an ``OSError`` naming the file).

        Returns:
            One :class:`Results` per image, keypoints in that image's pixels, scores descending.
        """
        if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
            images = [images]
        frames = []
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray):
                frames.append((item, f"image{i}", 0))
            else:
                frames.append((read_image(item), str(Path(item)), 0))
        return self.run_batch(frames) if frames else []
