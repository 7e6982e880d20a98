"""``DatasetSource``: what every reader returns, and ``load_source``, which picks the reader.

A source is a list of ``Sample`` (images + persons in the internal format of
``erpose.data.sample``), the keypoint ``Skeleton``, the load report, and, where one exists, the
COCO-format annotation file that evaluation should score against.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from erpose.data.errors import DatasetError, LoadReport
from erpose.data.sample import Sample
from erpose.images import check_pixels
from erpose.skeleton import Skeleton

logger = logging.getLogger("erpose.data")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class DatasetSource:
    """A dataset split as read from disk.

    Attributes:
        samples: usable samples, in a stable order.
        skeleton: the keypoint schema (K, names, sigmas, flip_idx).
        report: counts of images / persons / ignore regions and every skipped input.
        name: short label for logs (file or preset name and split).
        annotation_file: COCO-format keypoint JSON that evaluation scores against, when the source
            is one (``None`` for YOLO-pose: build one with ``convert.source_to_coco_dict``).
        image_dir: folder that the samples' ``file_name`` values are relative to.
    """

    samples: list[Sample]
    skeleton: Skeleton
    report: LoadReport = field(default_factory=LoadReport)
    name: str = ""
    annotation_file: str | None = None
    image_dir: str | None = None

    def __len__(self) -> int:
        return len(self.samples)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels.

    Raises:
        OSError: the file is missing or not a readable image; ``ImageFileError`` when it has more
            pixels than ``erpose.limits.MAX_IMAGE_PIXELS``.
    """
    try:
        from PIL import Image  # header-only read: ~100x faster than decoding

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # erpose's own limit applies
            with Image.open(path) as im:
                width, height = int(im.width), int(im.height)
    except ImportError:  # pragma: no cover - Pillow ships with matplotlib
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise OSError(f"cannot read image {path}") from None
        return int(image.shape[1]), int(image.shape[0])
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, ValueError...
        raise OSError(f"cannot read image {path}: {exc}") from None
    check_pixels(width, height, path)
    return width, height


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Tight x1y1x2y2 boxes around the labelled keypoints.

    Args:
        keypoints: (N, K, 3) x, y, v in pixels.

    Returns:
        (N, 4) float32; NaN rows for persons without a labelled keypoint.
    """
    labelled = keypoints[..., 2] > 0
    x = np.where(labelled, keypoints[..., 0], np.nan)
    y = np.where(labelled, keypoints[..., 1], np.nan)
    out = np.full((keypoints.shape[0], 4), np.nan, np.float32)
    has = labelled.any(axis=1)
    if has.any():
        out[has] = np.stack(
            [np.nanmin(x[has], 1), np.nanmin(y[has], 1), np.nanmax(x[has], 1), np.nanmax(y[has], 1)], 1
        )
    return out


def finish_source(source: DatasetSource, path: str | Path) -> DatasetSource:
    """Log the summary; raise if no usable sample is left (naming ``path``)."""
    source.report.images = len(source.samples)
    source.report.log_summary(source.name)
    if source.samples and source.report.persons == 0:
        logger.warning("%s: no labelled person in any of its %d images", source.name, len(source.samples))
    if not source.samples:
        reasons = source.report.skipped_reasons
        detail = f" ({', '.join(f'{k} x{v}' for k, v in sorted(reasons.items()))})" if reasons else ""
        raise DatasetError(f"{path}: no usable sample{detail}")
    return source


def load_source(data: str, split: str = "train") -> DatasetSource:
    """Read a dataset split from a SynthCrowd preset name, a data YAML or a COCO/CrowdPose JSON.

    Args:
        data: a preset of ``erpose.data.synth.PRESETS``, a ``.yaml``/``.yml`` ultralytics-style data
            file, or a ``.json`` COCO keypoint (or CrowdPose) annotation file.
        split: ``train``/``val``/``test``; used for presets and data YAMLs, ignored for a JSON file.

    Raises:
        DatasetError: unknown form of ``data``, or a dataset with no usable sample.
        FileNotFoundError: a path that does not exist.
    """
    synth = _synth_module()
    if synth is not None and data in getattr(synth, "PRESETS", {}):
        root = Path(synth.ensure_preset(data))
        from erpose.data.coco import read_coco

        source = read_coco(root / "annotations" / f"{split}.json", root / "images" / split)
        source.name = f"{data}/{split}"
        return source
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from erpose.data.yolo_pose import read_yolo_pose

        return read_yolo_pose(path, split)
    if suffix == ".json":
        from erpose.data.coco import read_coco

        return read_coco(path)
    if not path.exists():
        raise FileNotFoundError(f"{data}: not a dataset preset, data YAML or annotation JSON (no such file)")
    raise DatasetError(f"{data}: expected a .yaml data file or a .json annotation file")


def _synth_module():
    # erpose.data.synth is written separately; load it only if it exists so this module never
    # depends on it at import time.
    try:
        return importlib.import_module("erpose.data.synth")
    except ModuleNotFoundError as exc:
        if exc.name in ("erpose.data.synth",):
            return None
        raise
