"""Letterbox resize (keep aspect ratio, pad to the network input) and its exact inverse for keypoints.

Coordinate convention (the one used across erpose): keypoint coordinates are pixel indices,
integer = pixel centre, as in COCO. ``cv2.resize`` aligns pixel *corners*, so a point at index
``x`` lands at ``rx * (x + 0.5) - 0.5``; with the padding added, the forward map is

    x_in = rx * (x + 0.5) - 0.5 + pad_x        (and the same in y)

and ``unletterbox_keypoints`` applies its inverse. ``rx``/``ry`` are the *actual* per-axis scales
(``new_w / w``) after rounding the resized size to whole pixels, so the round trip is exact.

numpy + OpenCV only: imported by the torch-free ONNX runtime.
"""

from __future__ import annotations

import cv2
import numpy as np


def letterbox(
    image: np.ndarray,
    new_shape: int | tuple[int, int] = 640,
    *,
    color: int | tuple[int, int, int] = 114,
    scaleup: bool = True,
    center: bool = True,
    stride: int | None = None,
    interpolation: int | None = None,
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Resize ``image`` to fit ``new_shape`` keeping its aspect ratio, then pad.

    Args:
        image: (H, W, C) or (H, W) uint8 image.
        new_shape: output (height, width), or one int for a square.
        color: padding value.
        scaleup: allow enlarging; if False, small images are only padded.
        center: pad equally on both sides (else only right/bottom).
        stride: if given, pad only up to the next multiple of ``stride`` (minimal "rect" letterbox)
            instead of the full ``new_shape``.
        interpolation: OpenCV flag; default INTER_AREA when shrinking, INTER_LINEAR when enlarging.

    Returns:
        ``(out, ratio, pad)``: the letterboxed image; ``ratio = (rx, ry)``, the actual per-axis
        scales; ``pad = (pad_x, pad_y)``, the left/top padding in pixels.
    """
    out_h, out_w = (new_shape, new_shape) if isinstance(new_shape, int) else new_shape
    h, w = image.shape[:2]
    r = min(out_h / h, out_w / w)
    if not scaleup:
        r = min(r, 1.0)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    if (new_w, new_h) != (w, h):
        if interpolation is None:
            interpolation = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    if stride is not None:
        out_w = min(out_w, int(np.ceil(new_w / stride) * stride))
        out_h = min(out_h, int(np.ceil(new_h / stride) * stride))
    dw, dh = out_w - new_w, out_h - new_h
    left, top = (dw // 2, dh // 2) if center else (0, 0)
    if dw or dh:
        value = (color,) * 3 if isinstance(color, int) else tuple(color)
        image = cv2.copyMakeBorder(image, top, dh - top, left, dw - left, cv2.BORDER_CONSTANT, value=value)
    return image, (new_w / w, new_h / h), (left, top)


def _ratio_xy(ratio: float | tuple[float, float]) -> np.ndarray:
    return np.asarray(ratio if isinstance(ratio, (tuple, list, np.ndarray)) else (ratio, ratio), np.float64)


def letterbox_keypoints(
    xy: np.ndarray, ratio: float | tuple[float, float], pad: tuple[float, float]
) -> np.ndarray:
    """Map points from original-image pixels to letterboxed-input pixels.

    Args:
        xy: (..., 2) pixel coordinates (integer = pixel centre).
        ratio: ``(rx, ry)`` from ``letterbox`` (or one float for both).
        pad: ``(pad_x, pad_y)`` from ``letterbox``.

    Returns:
        (..., 2) float coordinates in the letterboxed image, same dtype as ``xy`` when floating.
    """
    xy = np.asarray(xy)
    out = (xy[..., :2] + 0.5) * _ratio_xy(ratio) - 0.5 + np.asarray(pad, np.float64)
    return out.astype(xy.dtype if np.issubdtype(xy.dtype, np.floating) else np.float64)


def unletterbox_keypoints(
    kpts_xy: np.ndarray, ratio: float | tuple[float, float], pad: tuple[float, float]
) -> np.ndarray:
    """Inverse of ``letterbox_keypoints``: letterboxed-input pixels -> original-image pixels.

    Args:
        kpts_xy: (..., 2) or (..., 3) coordinates in input pixels; a third column (score or
            visibility) is passed through unchanged.
        ratio: ``(rx, ry)`` from ``letterbox`` (or one float for both).
        pad: ``(pad_x, pad_y)`` from ``letterbox``.

    Returns:
        Array of the same shape with x, y in original-image pixels.
    """
    kpts = np.asarray(kpts_xy)
    out = kpts.astype(kpts.dtype if np.issubdtype(kpts.dtype, np.floating) else np.float64, copy=True)
    xy = (kpts[..., :2] - np.asarray(pad, np.float64) + 0.5) / _ratio_xy(ratio) - 0.5
    out[..., :2] = xy
    return out


def letterbox_matrix(ratio: float | tuple[float, float], pad: tuple[float, float]) -> np.ndarray:
    """(2, 3) affine matrix of ``letterbox_keypoints`` (for composing with other affine maps)."""
    rx, ry = _ratio_xy(ratio)
    return np.array([[rx, 0.0, 0.5 * rx - 0.5 + pad[0]], [0.0, ry, 0.5 * ry - 0.5 + pad[1]]], np.float64)
