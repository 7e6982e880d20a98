"""Keypoint-aware augmentation: letterbox, mosaic, random affine, horizontal flip, HSV jitter.

Random draws are separated from their application (torchvision ``transforms.v2`` style):
``params = sample_train_params(rng, ...)`` draws everything from an explicit
``np.random.Generator``; ``apply_train(images, annotations, params, ...)`` is deterministic. The
keypoint kernels (``affine_annotations``, ``flip_annotations``, ``restrict_annotations``) are pure
numpy functions over all persons at once.

Coordinates follow the COCO pixel-index convention (integer = pixel centre). ``cv2.warpAffine``
maps pixel indices, so an affine matrix ``M`` moves image content and keypoints alike with
``x' = M @ [x, y, 1]``; a horizontal flip of a width-``W`` image maps ``x -> W - 1 - x``.

Images are BGR uint8 (H, W, 3), as OpenCV decodes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from erpose.config import ConfigError
from erpose.data.sample import PoseAnnotations
from erpose.runtime.letterbox import letterbox, letterbox_matrix


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (ultralytics-like defaults).

    Attributes:
        hsv_h: hue shift range, fraction of the hue circle (+-).
        hsv_s: saturation gain range (+-, multiplicative around 1).
        hsv_v: value (brightness) gain range (+-, multiplicative around 1).
        degrees: rotation range in degrees (+-).
        translate: translation range, fraction of the output size (+-).
        scale: scale range (+-, around 1), so 0.5 draws a zoom in [0.5, 1.5].
        shear: shear range in degrees (+-), x and y drawn independently.
        fliplr: probability of a horizontal flip (keypoints permuted by ``flip_idx``).
        mosaic: probability of a 4-image mosaic.
        close_mosaic: switch mosaic off for the last N epochs (0 keeps it to the end).
        border_value: grey level of pixels the transforms bring in from outside the image.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    close_mosaic: int = 10
    border_value: int = 114

    def __post_init__(self) -> None:
        for name in ("fliplr", "mosaic", "hsv_h", "hsv_s", "hsv_v", "translate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.scale < 1.0:
            raise ConfigError(f"augment.scale must be in [0, 1), got {self.scale}")
        if not (0.0 <= self.degrees <= 180.0 and 0.0 <= self.shear < 90.0):
            raise ConfigError(f"augment.degrees must be in [0, 180] and shear in [0, 90), got {self.degrees}, {self.shear}")
        if self.close_mosaic < 0 or not 0 <= self.border_value <= 255:
            raise ConfigError("augment.close_mosaic must be >= 0 and border_value in [0, 255]")


@dataclass(frozen=True)
class AffineParams:
    """One draw of the random affine: degrees, zoom, shear (degrees) and translation (fraction)."""

    angle: float = 0.0
    scale: float = 1.0
    shear_x: float = 0.0
    shear_y: float = 0.0
    translate_x: float = 0.0
    translate_y: float = 0.0


@dataclass(frozen=True)
class MosaicParams:
    """Mosaic centre on the (2s, 2s) canvas and the three partner sample indices."""

    center: tuple[int, int]
    partners: tuple[int, int, int]


@dataclass(frozen=True)
class TrainParams:
    """Every random draw for one training sample."""

    mosaic: MosaicParams | None
    affine: AffineParams
    flip: bool
    hsv: tuple[float, float, float]  # hue shift (fraction of the circle), saturation gain, value gain


# ----------------------------------------------------------------------------------------------
# random draws


def sample_affine_params(rng: np.random.Generator, cfg: AugmentConfig) -> AffineParams:
    return AffineParams(
        angle=float(rng.uniform(-cfg.degrees, cfg.degrees)),
        scale=float(rng.uniform(1 - cfg.scale, 1 + cfg.scale)),
        shear_x=float(rng.uniform(-cfg.shear, cfg.shear)),
        shear_y=float(rng.uniform(-cfg.shear, cfg.shear)),
        translate_x=float(rng.uniform(-cfg.translate, cfg.translate)),
        translate_y=float(rng.uniform(-cfg.translate, cfg.translate)),
    )


def sample_train_params(
    rng: np.random.Generator, cfg: AugmentConfig, imgsz: int, num_samples: int, mosaic_enabled: bool = True
) -> TrainParams:
    """Draw all random choices for one training sample, in a fixed order (reproducible per rng)."""
    mosaic = None
    if mosaic_enabled and num_samples > 0 and rng.random() < cfg.mosaic:
        center = rng.integers(imgsz // 2, imgsz + imgsz // 2, size=2, endpoint=True)
        partners = rng.integers(0, num_samples, size=3)
        mosaic = MosaicParams((int(center[0]), int(center[1])), tuple(int(p) for p in partners))
    affine = sample_affine_params(rng, cfg)
    flip = bool(rng.random() < cfg.fliplr)
    hsv = rng.uniform(-1, 1, 3) * (cfg.hsv_h, cfg.hsv_s, cfg.hsv_v) + (0.0, 1.0, 1.0)
    return TrainParams(mosaic, affine, flip, (float(hsv[0]), float(hsv[1]), float(hsv[2])))


# ----------------------------------------------------------------------------------------------
# keypoint / box kernels (pure, vectorised over persons and keypoints)


def transform_points(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine ``matrix`` to points (..., 2)."""
    return xy @ matrix[:, :2].T + matrix[:, 2]


_CORNERS = np.array([[0, 1], [2, 1], [0, 3], [2, 3]])  # (x1,y1) (x2,y1) (x1,y2) (x2,y2) of an x1y1x2y2 box


def _transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Enclosing x1y1x2y2 box of the 4 transformed corners of each (M, 4) box; NaN rows stay NaN."""
    moved = transform_points(boxes[:, _CORNERS], matrix)  # (M, 4, 2)
    return np.concatenate([moved.min(1), moved.max(1)], -1).astype(np.float32)


def restrict_annotations(anns: PoseAnnotations, region: tuple[float, float, float, float]) -> PoseAnnotations:
    """Keep what lies inside ``region`` (x0, y0, x1, y1 pixel edges).

    Labelled keypoints outside become unlabelled (v = 0, x = y = 0); boxes and ignore boxes are
    clipped; ignore boxes left without area are dropped. Persons left with no labelled keypoint are
    removed, and their clipped box, if it still has area, becomes an ignore region (part of a person
    can remain visible, and it must not be trained as background).
    """
    x0, y0, x1, y1 = region
    kpts = anns.keypoints.copy()
    # Pixel-index convention: pixel i spans [i - 0.5, i + 0.5).
    inside = ((kpts[..., 0] >= x0 - 0.5) & (kpts[..., 0] < x1 - 0.5)
              & (kpts[..., 1] >= y0 - 0.5) & (kpts[..., 1] < y1 - 0.5))
    kpts[~(inside & (kpts[..., 2] > 0))] = 0.0
    lo, hi = np.array([x0, y0, x0, y0], np.float32), np.array([x1, y1, x1, y1], np.float32)
    boxes = np.clip(anns.boxes, lo, hi)
    ignore = np.clip(anns.ignore_boxes, lo, hi)
    keep = (kpts[..., 2] > 0).any(1)
    lost = boxes[~keep]
    ignore = np.concatenate([ignore, lost[np.isfinite(lost).all(1)]])
    ignore = ignore[(ignore[:, 2] > ignore[:, 0]) & (ignore[:, 3] > ignore[:, 1])]
    return PoseAnnotations(kpts[keep], anns.areas[keep], boxes[keep], anns.annotation_ids[keep],
                           ignore.reshape(-1, 4).astype(np.float32))


def affine_annotations(
    anns: PoseAnnotations,
    matrix: np.ndarray,
    out_size: tuple[int, int],
    region: tuple[float, float, float, float] | None = None,
) -> PoseAnnotations:
    """Map annotations through a (2, 3) affine matrix into an output image of ``out_size`` (w, h).

    Areas scale with ``|det(A)|`` of the linear part; boxes and ignore boxes become the enclosing box
    of their 4 transformed corners; then everything is restricted to ``region`` (x0, y0, x1, y1;
    default the whole output image) with ``restrict_annotations``.
    """
    matrix = np.asarray(matrix, np.float64)
    kpts = anns.keypoints.copy()
    labelled = kpts[..., 2] > 0
    kpts[..., :2] = np.where(labelled[..., None], transform_points(kpts[..., :2], matrix), 0.0)
    det = abs(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])
    moved = PoseAnnotations(
        keypoints=kpts.astype(np.float32),
        areas=(anns.areas * det).astype(np.float32),
        boxes=_transform_boxes(anns.boxes, matrix),
        annotation_ids=anns.annotation_ids,
        ignore_boxes=_transform_boxes(anns.ignore_boxes, matrix),
    )
    return restrict_annotations(moved, region or (0.0, 0.0, float(out_size[0]), float(out_size[1])))


def flip_annotations(anns: PoseAnnotations, width: int, flip_idx: np.ndarray | tuple[int, ...]) -> PoseAnnotations:
    """Horizontal flip of a ``width``-pixel image: ``x -> width - 1 - x``, keypoints permuted by ``flip_idx``."""
    kpts = anns.keypoints[:, np.asarray(flip_idx)].copy()
    kpts[..., 0] = np.where(kpts[..., 2] > 0, width - 1 - kpts[..., 0], 0.0)
    def flip_boxes(b: np.ndarray) -> np.ndarray:
        return np.stack([width - 1 - b[:, 2], b[:, 1], width - 1 - b[:, 0], b[:, 3]], 1).astype(np.float32)
    return PoseAnnotations(kpts, anns.areas.copy(), flip_boxes(anns.boxes), anns.annotation_ids,
                           flip_boxes(anns.ignore_boxes))


def _shift_annotations(anns: PoseAnnotations, dx: float, dy: float) -> PoseAnnotations:
    """Translate by (dx, dy): the cheap special case of ``affine_annotations`` that mosaic needs."""
    kpts = anns.keypoints.copy()
    labelled = kpts[..., 2] > 0
    kpts[..., 0] += np.where(labelled, dx, 0)
    kpts[..., 1] += np.where(labelled, dy, 0)
    offset = np.array([dx, dy, dx, dy], np.float32)
    return PoseAnnotations(kpts, anns.areas, anns.boxes + offset, anns.annotation_ids, anns.ignore_boxes + offset)


def concat_annotations(parts: list[PoseAnnotations]) -> PoseAnnotations:
    return PoseAnnotations(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                             ("keypoints", "areas", "boxes", "annotation_ids", "ignore_boxes")))


# ----------------------------------------------------------------------------------------------
# deterministic application


def affine_matrix(params: AffineParams, in_center: tuple[float, float], out_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) matrix: move ``in_center`` to the origin, rotate/zoom/shear, then to the (translated) output centre."""
    a = math.radians(params.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * params.scale
    shear = np.array([[1.0, math.tan(math.radians(params.shear_x))], [math.tan(math.radians(params.shear_y)), 1.0]])
    linear = shear @ rot
    out_center = np.array([out_size[0] * (0.5 + params.translate_x), out_size[1] * (0.5 + params.translate_y)])
    offset = out_center - linear @ np.asarray(in_center, np.float64)
    return np.concatenate([linear, offset[:, None]], 1)


def build_mosaic(
    images: list[np.ndarray], anns: list[PoseAnnotations], center: tuple[int, int], imgsz: int, border_value: int = 114
) -> tuple[np.ndarray, PoseAnnotations]:
    """Place 4 images (long side <= ``imgsz``) around ``center`` on a (2s, 2s) canvas.

    Image 0 ends at the centre from the top-left, 1 from the top-right, 2 bottom-left, 3 bottom-right;
    parts past the canvas are cut and their keypoints become unlabelled.
    """
    size = 2 * imgsz
    canvas = np.full((size, size, 3), border_value, np.uint8)
    xc, yc = center
    placed = []
    for i, (image, ann) in enumerate(zip(images, anns)):
        h, w = image.shape[:2]
        x0 = xc - w if i in (0, 2) else xc  # image origin on the canvas
        y0 = yc - h if i in (0, 1) else yc
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
        canvas[cy0:cy1, cx0:cx1] = image[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        placed.append(restrict_annotations(_shift_annotations(ann, x0, y0), (cx0, cy0, cx1, cy1)))
    return canvas, concat_annotations(placed)


def apply_hsv(image: np.ndarray, hsv: tuple[float, float, float]) -> np.ndarray:
    """Hue shift (fraction of the circle) and saturation/value gains on a BGR uint8 image, via lookup tables."""
    hue_shift, sat_gain, val_gain = hsv
    if hue_shift == 0.0 and sat_gain == 1.0 and val_gain == 1.0:
        return image
    x = np.arange(256, dtype=np.float32)
    lut = np.stack([
        np.mod(x + hue_shift * 180.0, 180.0),  # OpenCV's 8-bit hue spans 0..179
        np.clip(x * sat_gain, 0, 255),
        np.clip(x * val_gain, 0, 255),
    ], -1).astype(np.uint8)[:, None, :]  # (256, 1, 3): one table per channel, one LUT call
    return cv2.cvtColor(cv2.LUT(cv2.cvtColor(image, cv2.COLOR_BGR2HSV), lut), cv2.COLOR_HSV2BGR)


def apply_train(
    images: list[np.ndarray],
    anns: list[PoseAnnotations],
    params: TrainParams,
    cfg: AugmentConfig,
    imgsz: int,
    flip_idx: tuple[int, ...],
) -> tuple[np.ndarray, PoseAnnotations]:
    """Deterministic training transform: [mosaic] -> affine (to ``imgsz`` square) -> [flip] -> HSV.

    Args:
        images: 1 image (no mosaic) or 4 (mosaic: the sample, then its 3 partners), BGR uint8, long
            side <= ``imgsz``.
        anns: their annotations in those images' pixels.
        params: from ``sample_train_params``.

    Returns:
        (imgsz, imgsz, 3) BGR uint8 image and annotations in its pixels.
    """
    if params.mosaic is not None:
        image, ann = build_mosaic(images, anns, params.mosaic.center, imgsz, cfg.border_value)
        center = (imgsz, imgsz)  # the canvas centre lands on the output centre (plus translation)
    else:
        image, ann = images[0], anns[0]
        center = (image.shape[1] / 2, image.shape[0] / 2)
    matrix = affine_matrix(params.affine, center, (imgsz, imgsz))
    if params.flip:
        # Fold the flip x -> imgsz - 1 - x into the warp (one pass over the pixels instead of two);
        # the keypoint permutation is the only part the matrix cannot express.
        matrix = np.array([[-1.0, 0.0, imgsz - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    image = cv2.warpAffine(image, matrix, (imgsz, imgsz), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(cfg.border_value,) * 3)
    ann = affine_annotations(ann, matrix, (imgsz, imgsz))
    if params.flip:
        ann.keypoints = np.ascontiguousarray(ann.keypoints[:, np.asarray(flip_idx)])
    return apply_hsv(image, params.hsv), ann


def letterbox_sample(
    image: np.ndarray, anns: PoseAnnotations, imgsz: int, border_value: int = 114
) -> tuple[np.ndarray, PoseAnnotations, tuple[float, float], tuple[int, int]]:
    """Validation transform: letterbox to an ``imgsz`` square; returns (image, anns, ratio, pad)."""
    out, ratio, pad = letterbox(image, imgsz, color=border_value)
    moved = affine_annotations(anns, letterbox_matrix(ratio, pad), (out.shape[1], out.shape[0]))
    return out, moved, ratio, pad
