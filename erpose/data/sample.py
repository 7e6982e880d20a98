"""The one internal sample format every dataset reader produces, and the training batch format.

Readers (COCO, CrowdPose, YOLO-pose, SynthCrowd) return ``Sample``; the augmentation pipeline maps
``(image, PoseAnnotations) -> (image, PoseAnnotations)``; ``collate`` pads a list of those into
a ``PoseBatch`` that the assigners and losses consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PoseAnnotations:
    """The persons and ignore regions of one image, as arrays (N persons, M ignore regions).

    Attributes:
        keypoints: (N, K, 3) float32, x and y in pixels, v in {0: unlabelled, 1: occluded,
            2: visible}. Unlabelled keypoints have x = y = 0.
        areas: (N,) float32 object area in pixels^2 (COCO ``area``; from the box or the keypoint
            extent where a dataset has none). Used as the OKS scale.
        boxes: (N, 4) float32 person boxes x1, y1, x2, y2 in pixels; NaN rows where the source has none.
        annotation_ids: (N,) int64 ids of the source annotations (-1 where there is none).
        ignore_boxes: (M, 4) float32 x1, y1, x2, y2 of crowd regions and persons without labelled
            keypoints: neither positives nor negatives in training.
    """

    keypoints: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    annotation_ids: np.ndarray
    ignore_boxes: np.ndarray

    @classmethod
    def empty(cls, num_keypoints: int) -> PoseAnnotations:
        return cls(
            keypoints=np.zeros((0, num_keypoints, 3), np.float32),
            areas=np.zeros((0,), np.float32),
            boxes=np.zeros((0, 4), np.float32),
            annotation_ids=np.zeros((0,), np.int64),
            ignore_boxes=np.zeros((0, 4), np.float32),
        )

    @property
    def num_persons(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[1])

    def select(self, keep: np.ndarray) -> PoseAnnotations:
        """Persons where boolean ``keep`` (N,) is true; ignore regions unchanged."""
        return PoseAnnotations(
            self.keypoints[keep], self.areas[keep], self.boxes[keep], self.annotation_ids[keep], self.ignore_boxes
        )


@dataclass
class Sample:
    """One annotated image as a reader yields it (the image itself is decoded lazily).

    Attributes:
        image_path: path of the image file.
        image_id: id that evaluation traces back to the source (COCO ``image_id``).
        width, height: image size in pixels as the annotation states it.
        annotations: persons and ignore regions, in original image pixels.
        crowd_index: CrowdPose image-level crowd index, when the source gives one.
    """

    image_path: str
    image_id: int
    width: int
    height: int
    annotations: PoseAnnotations
    crowd_index: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class PoseBatch:
    """A padded training/validation batch (torch tensors), B images, at most N persons, M ignore regions.

    Attributes:
        images: (B, 3, H, W) float32 RGB in [0, 1].
        keypoints: (B, N, K, 3) float32 in input pixels; padded persons are all zero.
        areas: (B, N) float32; 0 for padding.
        boxes: (B, N, 4) float32 x1y1x2y2 input pixels (tight keypoint box where the source has none).
        person_mask: (B, N) bool, true for real persons.
        ignore_boxes: (B, M, 4) float32 x1y1x2y2; ignore_mask (B, M) bool.
        image_ids: (B,) int64.
        meta: per image dict (``image_path``, ``orig_size`` (h, w), ``ratio``, ``pad`` (x, y)) for
            mapping predictions back through the letterbox.
    """

    images: object
    keypoints: object
    areas: object
    boxes: object
    person_mask: object
    ignore_boxes: object
    ignore_mask: object
    image_ids: object
    meta: list[dict] = field(default_factory=list)

    def to(self, device) -> PoseBatch:
        moved = {
            name: getattr(self, name).to(device, non_blocking=True)
            for name in ("images", "keypoints", "areas", "boxes", "person_mask", "ignore_boxes", "ignore_mask", "image_ids")
        }
        return PoseBatch(**moved, meta=self.meta)
