"""Skeleton drawing with OpenCV: limbs coloured by body side, keypoint dots, optional boxes and scores.

Imports only numpy, OpenCV and :mod:`erpose.skeleton` (no torch), so the torch-free ONNX runtime and
the PyTorch predictor draw the same pictures.

Colours are BGR. Left-side limbs are blue shades, right-side limbs orange shades and limbs on the
body's centre line (or joining left to right, e.g. shoulder to shoulder) green shades, so a mirrored
prediction is visible at a glance.
"""

from __future__ import annotations

import cv2
import numpy as np

from erpose.skeleton import Skeleton

CENTRE, LEFT, RIGHT = 0, 1, 2

#: Limb colours per side (BGR); consecutive limbs of a side cycle through the shades so that
#: neighbouring limbs (upper and lower arm) stay distinguishable.
LIMB_PALETTE: dict[int, tuple[tuple[int, int, int], ...]] = {
    LEFT: ((255, 128, 0), (255, 191, 64), (204, 102, 0)),
    RIGHT: ((0, 128, 255), (64, 191, 255), (0, 80, 220)),
    CENTRE: ((0, 200, 0), (102, 255, 102), (0, 150, 60)),
}
#: Keypoint dot colours per side: lighter than the limbs so dots stand out on their own lines.
DOT_PALETTE: dict[int, tuple[int, int, int]] = {
    LEFT: (255, 230, 180),
    RIGHT: (180, 230, 255),
    CENTRE: (200, 255, 200),
}
BOX_COLOR = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)

# OpenCV takes int32 pixel coordinates; clip far-off predictions so the cast cannot overflow.
_COORD_LIMIT = 1 << 15


def keypoint_sides(skeleton: Skeleton) -> np.ndarray:
    """Body side of each keypoint.

    A name containing ``left`` / ``right`` (or starting with ``l_`` / ``r_``) decides. Otherwise a
    keypoint that ``flip_idx`` maps to itself is on the centre line, and of a left/right pair the
    lower index is called left (a convention: custom skeletons carry no side information).

    Returns:
        (K,) int array of ``CENTRE`` (0), ``LEFT`` (1) or ``RIGHT`` (2).
    """
    sides = np.full(skeleton.num_keypoints, CENTRE, dtype=np.int64)
    for k, (name, partner) in enumerate(zip(skeleton.keypoint_names, skeleton.flip_idx)):
        lower = name.lower()
        if "left" in lower or lower.startswith("l_"):
            sides[k] = LEFT
        elif "right" in lower or lower.startswith("r_"):
            sides[k] = RIGHT
        elif partner != k:
            sides[k] = LEFT if k < partner else RIGHT
    return sides


def limb_colors(skeleton: Skeleton) -> list[tuple[int, int, int]]:
    """BGR colour of each limb of ``skeleton.limbs``, by the side of its end points.

    A limb is on a side when one end is on that side and the other on the same side or the centre
    line; a limb joining left to right is a centre limb.
    """
    sides = keypoint_sides(skeleton)
    colors = []
    count = {CENTRE: 0, LEFT: 0, RIGHT: 0}
    for a, b in skeleton.limbs:
        side_set = {int(sides[a]), int(sides[b])} - {CENTRE}
        side = side_set.pop() if len(side_set) == 1 else CENTRE
        shades = LIMB_PALETTE[side]
        colors.append(shades[count[side] % len(shades)])
        count[side] += 1
    return colors


def line_width_for(shape: tuple[int, ...]) -> int:
    """Line width in pixels for an image of ``shape`` (H, W, ...): about 1/200 of the short side."""
    return max(1, round(min(shape[0], shape[1]) / 200))


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Skeleton,
    *,
    scores: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    conf_threshold: float = 0.5,
    show_scores: bool = False,
    show_boxes: bool = False,
    line_width: int | None = None,
    copy: bool = True,
) -> np.ndarray:
    """Draw people on an image.

    Args:
        image: (H, W, 3) uint8 BGR image.
        keypoints: (n, K, 3) x, y (image pixels), confidence; or (n, K, 2), taken as fully confident.
        skeleton: keypoint schema; its ``limbs`` are drawn.
        scores: (n,) person scores; written next to each person when ``show_scores``.
        boxes: (n, 4) x1, y1, x2, y2 pixels. Scores are placed at a box's top-left corner, or at
            the top-left of the drawn keypoints when no boxes are given.
        conf_threshold: keypoints with confidence below this are not drawn, nor limbs touching them.
        show_scores: write the person score (needs ``scores``).
        show_boxes: draw ``boxes``.
        line_width: limb width in pixels; default scales with the image (``line_width_for``).
        copy: draw on a copy (default) instead of in place.

    Returns:
        (H, W, 3) uint8 BGR image with the drawing.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_poses expects an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
    canvas = image.copy() if copy else image
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, skeleton.num_keypoints, keypoints.shape[-1])
    if len(kpts) == 0:
        return canvas
    xy = kpts[..., :2]
    conf = kpts[..., 2] if kpts.shape[-1] > 2 else np.ones(kpts.shape[:2])
    shown = (conf >= conf_threshold) & np.isfinite(xy).all(axis=-1)  # (n, K)
    pix = np.clip(np.nan_to_num(xy), -_COORD_LIMIT, _COORD_LIMIT).round().astype(np.int32)
    width = line_width or line_width_for(canvas.shape)

    if show_boxes and boxes is not None and len(boxes):
        b = np.clip(np.asarray(boxes, dtype=np.float64), -_COORD_LIMIT, _COORD_LIMIT).round().astype(np.int32)
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)  # (n, 4, 2)
        cv2.polylines(canvas, list(corners), True, BOX_COLOR, max(1, width // 2), cv2.LINE_AA)

    # One polylines call per limb draws that limb for every person at once.
    for (a, b), color in zip(skeleton.limbs, limb_colors(skeleton)):
        both = shown[:, a] & shown[:, b]
        if both.any():
            segments = np.stack([pix[both, a], pix[both, b]], axis=1)  # (m, 2, 2)
            cv2.polylines(canvas, list(segments), False, color, width, cv2.LINE_AA)

    # A zero-length polyline with a thick pen is a filled round dot: one call per keypoint index.
    sides = keypoint_sides(skeleton)
    dot = width + max(2, width)
    for k in range(skeleton.num_keypoints):
        if shown[:, k].any():
            points = pix[shown[:, k], k]
            cv2.polylines(canvas, list(np.stack([points, points], axis=1)), False,
                          DOT_PALETTE[int(sides[k])], dot, cv2.LINE_AA)

    if show_scores and scores is not None:
        _draw_scores(canvas, np.asarray(scores, dtype=np.float64), pix, shown, boxes, width)
    return canvas


def _draw_scores(
    canvas: np.ndarray, scores: np.ndarray, pix: np.ndarray, shown: np.ndarray,
    boxes: np.ndarray | None, width: int,
) -> None:
    """Write each person's score on a filled label at its box (or visible keypoints') top-left."""
    if boxes is not None and len(boxes):
        anchors = np.asarray(boxes, dtype=np.float64)[:, :2]
    else:
        big = float(_COORD_LIMIT)
        anchors = np.where(shown[..., None], pix, big).min(axis=1).astype(np.float64)
    font_scale = max(0.3, width / 3)
    thickness = max(1, width // 2)
    for score, (x, y) in zip(scores, anchors):  # text is drawn one label at a time by nature
        if not np.isfinite([x, y]).all() or x >= _COORD_LIMIT:
            continue
        text = f"{score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        x0, y0 = int(x), max(int(y), th + base)
        cv2.rectangle(canvas, (x0, y0 - th - base), (x0 + tw, y0), BOX_COLOR, -1)
        cv2.putText(canvas, text, (x0, y0 - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOR,
                    thickness, cv2.LINE_AA)
