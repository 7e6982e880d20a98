"""Per-image prediction results: people with scores, keypoints and keypoint-derived boxes.

numpy only (plus :mod:`erpose.runtime.draw` for ``plot``), no torch: the PyTorch predictor and the
torch-free ONNX runtime return the same :class:`Results`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from erpose.runtime.draw import draw_poses
from erpose.skeleton import Skeleton

#: Keypoint confidence (the predicted visibility probability) at or above which a keypoint counts
#: as present for drawing and for the derived box: 0.5 = "more likely visible than not".
KEYPOINT_CONF_THRESHOLD = 0.5


def boxes_from_keypoints(
    keypoints: np.ndarray, conf_threshold: float = KEYPOINT_CONF_THRESHOLD, image_shape: tuple | None = None
) -> np.ndarray:
    """Tight boxes around each person's confident keypoints.

    Args:
        keypoints: (n, K, 3) x, y, confidence in pixels.
        conf_threshold: keypoints with confidence >= this span the box; a person with none that
            passes gets the box of all its keypoints (a box is always defined).
        image_shape: (H, W, ...) to clip the boxes to the image; no clipping when None.

    Returns:
        (n, 4) float32 x1, y1, x2, y2.
    """
    kpts = np.asarray(keypoints, dtype=np.float32)
    if kpts.shape[0] == 0:
        return np.zeros((0, 4), dtype=np.float32)
    confident = kpts[..., 2] >= conf_threshold
    confident |= ~confident.any(axis=1, keepdims=True)  # nobody passes: fall back to all keypoints
    xy = kpts[..., :2]
    lo = np.where(confident[..., None], xy, np.inf).min(axis=1)
    hi = np.where(confident[..., None], xy, -np.inf).max(axis=1)
    boxes = np.concatenate([lo, hi], axis=1)
    if image_shape is not None:
        h, w = image_shape[:2]
        boxes = np.clip(boxes, 0.0, np.array([w, h, w, h], dtype=np.float32))
    return boxes.astype(np.float32)


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of the n people of one image.

    Attributes:
        data: (n, K, 3) float32 x, y (original image pixels), confidence in [0, 1].
    """

    data: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        """(n, K, 2) x, y in original image pixels."""
        return self.data[..., :2]

    @property
    def conf(self) -> np.ndarray:
        """(n, K) keypoint confidences."""
        return self.data[..., 2]

    def __len__(self) -> int:
        return int(self.data.shape[0])


@dataclass
class Results:
    """The people found in one image.

    Attributes:
        orig_image: (H, W, 3) uint8 BGR image the keypoints refer to.
        path: file, camera or stream the image came from (``"image0"`` ... for arrays).
        scores: (n,) float32 person scores, descending.
        keypoints: :class:`Keypoints` with ``.xy`` (n, K, 2), ``.conf`` (n, K), ``.data`` (n, K, 3).
        skeleton: the keypoint schema (names, limbs) used to draw and to export.
        frame_index: frame number inside a video, 0 for an image.
        speed: milliseconds spent on this image: ``preprocess``, ``inference``, ``postprocess``.
        box_conf_threshold: keypoint confidence that spans :attr:`boxes`.
    """

    orig_image: np.ndarray
    path: str
    scores: np.ndarray
    keypoints: Keypoints
    skeleton: Skeleton
    frame_index: int = 0
    speed: dict[str, float] = field(default_factory=dict)
    box_conf_threshold: float = KEYPOINT_CONF_THRESHOLD

    def __post_init__(self) -> None:
        if not isinstance(self.keypoints, Keypoints):
            self.keypoints = Keypoints(np.asarray(self.keypoints, dtype=np.float32))
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        k = self.skeleton.num_keypoints
        data = self.keypoints.data
        if data.ndim != 3 or data.shape[1:] != (k, 3) or data.shape[0] != self.scores.shape[0]:
            raise ValueError(
                f"Results: keypoints {data.shape} and scores {self.scores.shape} do not describe n people "
                f"with {k} keypoints (expected (n, {k}, 3) and (n,))"
            )

    @property
    def boxes(self) -> np.ndarray:
        """(n, 4) float32 x1, y1, x2, y2 around the confident keypoints, clipped to the image."""
        return boxes_from_keypoints(self.keypoints.data, self.box_conf_threshold, self.orig_image.shape)

    @property
    def orig_shape(self) -> tuple[int, int]:
        """(H, W) of the original image."""
        return int(self.orig_image.shape[0]), int(self.orig_image.shape[1])

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> Results:
        """The people selected by ``index`` (an int keeps a person axis of length 1)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return Results(self.orig_image, self.path, self.scores[index], Keypoints(self.keypoints.data[index]),
                       self.skeleton, self.frame_index, dict(self.speed), self.box_conf_threshold)

    def plot(
        self,
        conf_threshold: float = KEYPOINT_CONF_THRESHOLD,
        show_scores: bool = False,
        show_boxes: bool = False,
        line_width: int | None = None,
    ) -> np.ndarray:
        """Draw the people on a copy of the original image.

        Args:
            conf_threshold: keypoints below this confidence (and limbs touching them) are not drawn.
            show_scores: write each person's score.
            show_boxes: draw the keypoint-derived boxes.
            line_width: limb width in pixels; default scales with the image.

        Returns:
            (H, W, 3) uint8 BGR image.
        """
        return draw_poses(
            self.orig_image, self.keypoints.data, self.skeleton, scores=self.scores, boxes=self.boxes,
            conf_threshold=conf_threshold, show_scores=show_scores, show_boxes=show_boxes,
            line_width=line_width,
        )

    def to_coco(self, image_id: int | str, category_id: int = 1, decimals: int = 2) -> list[dict]:
        """People as COCO keypoint results (the format of a ``results.json`` for COCOeval).

        Args:
            image_id: the COCO image id.
            category_id: the person category (1 in COCO and CrowdPose).
            decimals: pixel coordinates are rounded to this many decimals (confidences and scores
                keep ``decimals + 3``).

        Returns:
            One dict per person: ``image_id``, ``category_id``, ``keypoints`` (3K floats: x, y,
            confidence per keypoint), ``score``, ``bbox`` (x, y, w, h of :attr:`boxes`).
        """
        data = self.keypoints.data.astype(np.float64)
        data = np.concatenate([data[..., :2].round(decimals), data[..., 2:].round(decimals + 3)], axis=-1)
        boxes = self.boxes.astype(np.float64)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).round(decimals)
        scores = self.scores.astype(np.float64).round(decimals + 3)
        return [
            {"image_id": image_id, "category_id": int(category_id), "keypoints": kpts.reshape(-1).tolist(),
             "score": float(score), "bbox": box.tolist()}
            for kpts, score, box in zip(data, scores, xywh)
        ]

    def to_yolo_txt(self, class_id: int = 0, with_score: bool = False, decimals: int = 6) -> list[str]:
        """People as YOLO-pose label lines, coordinates normalised by the image size.

        Each line is ``class cx cy w h x1 y1 c1 ... xK yK cK`` (box from :attr:`boxes`; ``c`` the
        keypoint confidence), followed by the person score when ``with_score``.

        Returns:
            One line per person, without newline characters; none for an image without people.
        """
        h, w = self.orig_shape
        boxes = self.boxes.astype(np.float64)
        scale = np.array([w, h], dtype=np.float64)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / scale
        size = (boxes[:, 2:] - boxes[:, :2]) / scale
        data = self.keypoints.data.astype(np.float64)
        kpts = np.concatenate([data[..., :2] / scale, data[..., 2:]], axis=-1).reshape(len(self), 3 * data.shape[1])
        columns = np.concatenate([centre, size, kpts], axis=1)
        if with_score:
            columns = np.concatenate([columns, self.scores[:, None].astype(np.float64)], axis=1)
        columns = columns.round(decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        return [" ".join([str(class_id)] + [f"{v:.{decimals}f}".rstrip("0").rstrip(".") or "0" for v in row])
                for row in columns]
