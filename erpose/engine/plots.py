"""Training pictures: curves from ``results.csv``, labelled training samples, drawn predictions.

Skeleton drawing is ``erpose.runtime.draw.draw_poses`` (the same pictures as ``erpose predict``);
this module only lays images out in a grid and writes them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from erpose.skeleton import Skeleton

#: COCO's value for a metric with no data (no large people, no hard images...).
UNDEFINED = -1.0


def columns_to_plot(rows: Sequence[dict[str, str]]) -> dict[str, list[tuple[float, float]]]:
    """The ``results.csv`` curves worth a panel: (epoch, value) points per column, in column order.

    Left out, so that every panel carries signal: a metric whose every value is COCO's -1 ("no
    data": APL, ARL, AP_hard on a set without such people), the -1 points of any metric, and a
    loss term that is 0 in every epoch (a switched-off term such as ``o2o_kpt``).
    """
    columns = [c for c in (rows[0].keys() if rows else []) if c != "epoch"]
    curves: dict[str, list[tuple[float, float]]] = {}
    for column in columns:
        points = [(float(r["epoch"]), float(r[column])) for r in rows if r.get(column) not in ("", None)]
        if column.startswith("metrics/"):
            points = [(e, v) for e, v in points if v != UNDEFINED]
        elif column.startswith("train/") and all(v == 0.0 for _, v in points):
            points = []
        if points:
            curves[column] = points
    return curves


def plot_results(csv_path: str | Path, out_path: str | Path) -> Path:
    """One small plot per informative column of ``results.csv`` against the epoch (``columns_to_plot``).

    Args:
        csv_path: the run's ``results.csv`` (first column ``epoch``).
        out_path: PNG to write.

    Returns:
        ``out_path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; never pick an interactive backend
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        curves = columns_to_plot(list(csv.DictReader(f)))
    n = max(len(curves), 1)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax, (column, points) in zip(axes.flat, curves.items()):
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker=".", linewidth=1.5)
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def mosaic(images: Sequence[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Tile (H, W, 3) uint8 images of equal size into a grid (blank cells at the end)."""
    count = len(images)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    h, w = images[0].shape[:2]
    grid = np.full((rows * h, columns * w, 3), 114, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return grid


def _to_bgr_uint8(image_chw) -> np.ndarray:
    array = image_chw.detach().cpu().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return np.ascontiguousarray(array[..., ::-1])  # RGB -> BGR for OpenCV


def plot_batch(batch, skeleton: Skeleton, out_path: str | Path, max_images: int = 16) -> Path:
    """Draw a ``PoseBatch``'s ground truth (keypoints with v > 0, ignore regions in grey).

    Args:
        batch: a ``erpose.data.sample.PoseBatch`` (images (B, 3, H, W) in [0, 1], keypoints
            (B, N, K, 3) input pixels, person_mask (B, N), ignore_boxes (B, M, 4)).
        skeleton: the keypoint schema.
        out_path: JPEG/PNG to write.
        max_images: at most this many images.
    """
    from erpose.runtime.draw import draw_poses

    tiles = []
    for b in range(min(int(batch.images.shape[0]), max_images)):
        image = _to_bgr_uint8(batch.images[b])
        kpts = batch.keypoints[b][batch.person_mask[b]].detach().cpu().numpy().copy()
        kpts[..., 2] = (kpts[..., 2] > 0).astype(np.float32)  # visibility flag -> drawable confidence
        ignore = batch.ignore_boxes[b][batch.ignore_mask[b]].detach().cpu().numpy()
        for x1, y1, x2, y2 in ignore.round().astype(int):
            cv2.rectangle(image, (x1, y1), (x2, y2), (160, 160, 160), 1)
        tiles.append(draw_poses(image, kpts, skeleton, conf_threshold=0.5))
    return _write(out_path, mosaic(tiles))


def plot_predictions(
    images: Sequence[np.ndarray],
    keypoints: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    skeleton: Skeleton,
    out_path: str | Path,
    conf: float = 0.25,
    size: int = 320,
) -> Path:
    """Draw predicted poses on images and tile them.

    Args:
        images: (H, W, 3) uint8 BGR original images.
        keypoints: per image (n, K, 3) x, y in that image's pixels and keypoint confidence.
        scores: per image (n,) person scores; persons below ``conf`` are not drawn.
        skeleton: the keypoint schema.
        out_path: image file to write.
        conf: person score threshold for drawing.
        size: each tile is letterboxed to ``size`` x ``size``.
    """
    from erpose.runtime.draw import draw_poses

    tiles = []
    for image, kpts, score in zip(images, keypoints, scores):
        keep = np.asarray(score) >= conf
        drawn = draw_poses(image, np.asarray(kpts)[keep], skeleton, scores=np.asarray(score)[keep], show_scores=True)
        tiles.append(_fit(drawn, size))
    return _write(out_path, mosaic(tiles))


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def _write(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
    return path
