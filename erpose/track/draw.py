"""Drawing tracked people: each track in its own stable colour, with its id (numpy + OpenCV)."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from erpose.runtime.draw import line_width_for
from erpose.skeleton import Skeleton

# The golden-ratio hue step spreads consecutive ids far apart on the colour wheel.
_GOLDEN = 0.618033988749895
_COORD_LIMIT = 1 << 15


def track_color(track_id: int) -> tuple[int, int, int]:
    """A BGR colour that depends only on the id: the same track looks the same in every frame."""
    hue = (int(track_id) * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_tracks(
    image: np.ndarray,
    keypoints: np.ndarray,
    track_ids: np.ndarray,
    skeleton: Skeleton,
    *,
    conf_threshold: float = 0.5,
    line_width: int | None = None,
    show_ids: bool = True,
) -> np.ndarray:
    """Draw tracked people on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR.
        keypoints: (m, K, 3) x, y pixels, confidence.
        track_ids: (m,) ids; each picks the colour of its limbs, dots and label.
        skeleton: gives the limbs.
        conf_threshold: keypoints below this confidence are not drawn, nor limbs touching them.
        line_width: pixels; default scales with the image.
        show_ids: write ``id N`` above each person.

    Returns:
        (H, W, 3) uint8 BGR drawing.
    """
    canvas = image.copy()
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, skeleton.num_keypoints, 3)
    shown = (kpts[..., 2] >= conf_threshold) & np.isfinite(kpts[..., :2]).all(axis=-1)
    pix = np.clip(np.nan_to_num(kpts[..., :2]), -_COORD_LIMIT, _COORD_LIMIT).round().astype(np.int32)
    width = line_width or line_width_for(canvas.shape)
    limbs = np.asarray(skeleton.limbs, dtype=np.int64).reshape(-1, 2)
    for person, track_id in enumerate(np.asarray(track_ids).reshape(-1)):  # one colour per person
        color = track_color(int(track_id))
        both = shown[person, limbs[:, 0]] & shown[person, limbs[:, 1]]
        segments = np.stack([pix[person, limbs[both, 0]], pix[person, limbs[both, 1]]], axis=1)
        if len(segments):
            cv2.polylines(canvas, list(segments), False, color, width, cv2.LINE_AA)
        points = pix[person, shown[person]]
        if len(points):
            cv2.polylines(canvas, list(np.stack([points, points], axis=1)), False, color, 2 * width + 2,
                          cv2.LINE_AA)
            if show_ids:
                _label(canvas, f"id {int(track_id)}", points.min(axis=0), color, width)
    return canvas


def _label(canvas: np.ndarray, text: str, top_left: np.ndarray, color: tuple[int, int, int], width: int) -> None:
    scale, thickness = max(0.4, width / 3), max(1, width // 2)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = int(top_left[0]), max(int(top_left[1]) - 2 * width, th + base)
    cv2.rectangle(canvas, (x, y - th - base), (x + tw, y), color, -1)
    cv2.putText(canvas, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
