"""``PoseDataset``: a ``DatasetSource`` behind the augmentation pipeline, and ``collate`` into ``PoseBatch``.

Determinism: the random draws of item ``i`` come from ``np.random.default_rng((seed, epoch, i))``,
so an epoch's augmentations do not depend on worker count, order of access, or what ran before;
a resumed run that calls ``set_epoch(epoch, total_epochs)`` reproduces them exactly. With a
``DataLoader``, call ``set_epoch`` before creating the epoch's iterator and do not use
``persistent_workers`` (workers would keep the old epoch).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from erpose.data.errors import DatasetError
from erpose.data.sample import PoseAnnotations, PoseBatch
from erpose.data.source import DatasetSource, keypoint_boxes
from erpose.data.transforms import (
    AugmentConfig,
    affine_annotations,
    apply_train,
    letterbox_sample,
    sample_train_params,
)
from erpose.images import ImageFileError, read_image
from erpose.runtime.letterbox import letterbox_matrix

logger = logging.getLogger("erpose.data")


@dataclass
class PoseItem:
    """One transformed sample.

    Attributes:
        image: (3, imgsz, imgsz) uint8 RGB, CHW.
        annotations: persons and ignore regions in input pixels.
        meta: ``image_path``, ``image_id``, ``index``, ``orig_size`` (h, w), ``ratio`` (rx, ry) and
            ``pad`` (x, y) of the letterbox (``None`` for augmented training items), ``crowd_index``.
    """

    image: np.ndarray
    annotations: PoseAnnotations
    meta: dict


class PoseDataset(torch.utils.data.Dataset):
    """Training (augmented) or validation (letterbox only) view of a dataset source.

    Args:
        source: from a reader or ``load_source``.
        imgsz: square network input size in pixels.
        augment: training augmentation; ``None`` means validation mode (letterbox only).
        cache_images: ``True`` or ``"ram"`` decodes every image once (resized to long side ``imgsz``)
            and keeps it in memory; ``False`` reads from disk each time.
        seed: base seed of the per-item random generators.
    """

    def __init__(
        self,
        source: DatasetSource,
        imgsz: int = 640,
        augment: AugmentConfig | None = None,
        cache_images: bool | str = False,
        seed: int = 0,
    ) -> None:
        if cache_images not in (False, True, "ram"):
            raise ValueError(f"cache_images must be False, True or 'ram', got {cache_images!r}")
        if not source.samples:
            raise DatasetError(f"{source.name}: dataset has no samples")
        self.source = source
        self.samples = source.samples
        self.skeleton = source.skeleton
        self.imgsz = int(imgsz)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self._mosaic = augment is not None and augment.mosaic > 0
        self.num_bad = 0  # per process: each DataLoader worker counts its own
        self._bad: set[int] = set()
        self._bad_reasons: dict[int, str] = {}
        self._resized_anns: dict[int, PoseAnnotations] = {}
        self._cache: dict[int, tuple[np.ndarray, tuple[float, float]]] | None = {} if cache_images else None
        if self._cache is not None:
            self.preload()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def mosaic_enabled(self) -> bool:
        return self._mosaic

    def close_mosaic(self) -> None:
        """Switch mosaic off (the last ``augment.close_mosaic`` epochs train on single images)."""
        self._mosaic = False

    def set_epoch(self, epoch: int, total_epochs: int | None = None) -> None:
        """Select the epoch's random stream; with ``total_epochs``, mosaic is on/off as ``close_mosaic`` says."""
        self.epoch = int(epoch)
        if total_epochs is not None and self.augment is not None:
            closing = self.augment.close_mosaic > 0 and epoch >= total_epochs - self.augment.close_mosaic
            self._mosaic = self.augment.mosaic > 0 and not closing

    def preload(self) -> None:
        """Decode and cache every image (threads: OpenCV releases the GIL while decoding)."""
        if self._cache is None:
            self._cache = {}
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            for i, loaded in enumerate(pool.map(self._read_resized, range(len(self)))):
                if loaded is None:
                    self._mark_bad(i)
                else:
                    self._cache[i] = loaded
        nbytes = sum(im.nbytes for im, _ in self._cache.values())
        logger.info("%s: cached %d images (%.1f MB)", self.source.name, len(self._cache), nbytes / 2**20)

    # ------------------------------------------------------------------------------------------

    def _read_resized(self, i: int) -> tuple[np.ndarray, tuple[float, float]] | None:
        """Decode image ``i`` as BGR and resize it so its long side is ``imgsz``; None if unreadable."""
        path = self.samples[i].image_path
        try:
            image = read_image(path)
        except ImageFileError as exc:
            self._bad_reasons[i] = exc.reason
            return None
        h, w = image.shape[:2]
        r = self.imgsz / max(h, w)
        new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
        if (new_w, new_h) != (w, h):
            # Same rule as runtime.letterbox in validation (so val = predictor preprocessing);
            # INTER_LINEAR in training is faster and the affine resamples anyway.
            fast = self.augment is not None or r > 1
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if fast else cv2.INTER_AREA)
        return image, (new_w / w, new_h / h)

    def _mark_bad(self, i: int) -> None:
        if i not in self._bad:
            self._bad.add(i)
            self.num_bad += 1
            reason = self._bad_reasons.get(i, "cannot read image")
            logger.warning("%s: %s, sample skipped", self.samples[i].image_path, reason)

    def _load(self, i: int) -> tuple[int, np.ndarray, PoseAnnotations, tuple[float, float]]:
        """Image ``i`` (or the next readable one) resized, with its annotations in resized pixels."""
        n = len(self)
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            loaded = self._cache.get(j) if self._cache is not None else None
            if loaded is None:
                loaded = self._read_resized(j)
            if loaded is None:
                self._mark_bad(j)
                continue
            image, ratio = loaded
            anns = self._resized_anns.get(j)
            if anns is None:  # the same for every epoch: computed once per process
                size = (image.shape[1], image.shape[0])
                anns = affine_annotations(self.samples[j].annotations, letterbox_matrix(ratio, (0, 0)), size)
                self._resized_anns[j] = anns
            return j, image, anns, ratio
        raise DatasetError(f"{self.source.name}: no readable image left ({self.num_bad} unreadable)")

    def __getitem__(self, index: int) -> PoseItem:
        j, image, anns, ratio = self._load(int(index))
        sample = self.samples[j]
        meta = {"image_path": sample.image_path, "image_id": sample.image_id, "index": j,
                "orig_size": (round(image.shape[0] / ratio[1]), round(image.shape[1] / ratio[0])),
                "ratio": None, "pad": None, "crowd_index": sample.crowd_index}
        if self.augment is None:
            image, anns, _, pad = letterbox_sample(image, anns, self.imgsz)
            meta.update(ratio=ratio, pad=pad)
        else:
            rng = np.random.default_rng((self.seed, self.epoch, j))
            params = sample_train_params(rng, self.augment, self.imgsz, len(self), self._mosaic)
            images, all_anns = [image], [anns]
            if params.mosaic is not None:
                for partner in params.mosaic.partners:
                    _, im, an, _ = self._load(partner)
                    images.append(im)
                    all_anns.append(an)
            image, anns = apply_train(images, all_anns, params, self.augment, self.imgsz, self.skeleton.flip_idx)
        blue, green, red = cv2.split(image)
        chw = np.stack([red, green, blue])  # BGR HWC -> RGB CHW; 4x faster than a strided transpose copy
        return PoseItem(chw, anns, meta)


def collate(items: list[PoseItem]) -> PoseBatch:
    """Stack items into a ``PoseBatch``, padding persons to the batch maximum N and ignore boxes to M.

    Person boxes missing in the source (NaN) are replaced by the tight box of the labelled keypoints.
    """
    b = len(items)
    k = items[0].annotations.num_keypoints
    n = max(it.annotations.num_persons for it in items)
    m = max(len(it.annotations.ignore_boxes) for it in items)
    keypoints = np.zeros((b, n, k, 3), np.float32)
    areas = np.zeros((b, n), np.float32)
    boxes = np.zeros((b, n, 4), np.float32)
    person_mask = np.zeros((b, n), bool)
    ignore = np.zeros((b, m, 4), np.float32)
    ignore_mask = np.zeros((b, m), bool)
    for i, it in enumerate(items):
        a = it.annotations
        p, q = a.num_persons, len(a.ignore_boxes)
        keypoints[i, :p] = a.keypoints
        areas[i, :p] = a.areas
        boxes[i, :p] = np.where(np.isnan(a.boxes), keypoint_boxes(a.keypoints), a.boxes)
        person_mask[i, :p] = True
        ignore[i, :q] = a.ignore_boxes
        ignore_mask[i, :q] = True
    images = torch.from_numpy(np.stack([it.image for it in items])).float().div_(255.0)
    return PoseBatch(
        images=images,
        keypoints=torch.from_numpy(keypoints),
        areas=torch.from_numpy(areas),
        boxes=torch.from_numpy(boxes),
        person_mask=torch.from_numpy(person_mask),
        ignore_boxes=torch.from_numpy(ignore),
        ignore_mask=torch.from_numpy(ignore_mask),
        image_ids=torch.tensor([it.meta["image_id"] for it in items], dtype=torch.int64),
        meta=[it.meta for it in items],
    )
