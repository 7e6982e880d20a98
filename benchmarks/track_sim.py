"""Simulated walking crowds for the tracker's benchmark and evaluation (numpy only).

Ground truth: COCO-17 stick figures walking (swinging arms and legs) with smoothly turning
velocities, bouncing off the frame edges, so people cross and overlap. Detections: the ground
truth plus Gaussian keypoint noise proportional to the person's height, keypoint confidences,
person scores (some low, as a detector gives for hard cases), whole people dropped at random,
and occasional false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# COCO-17 at height 1, origin between the hips, the person facing the camera (their left = +x).
TEMPLATE = np.array([
    [0.0, -0.45], [0.03, -0.47], [-0.03, -0.47], [0.06, -0.45], [-0.06, -0.45],  # nose, eyes, ears
    [0.12, -0.30], [-0.12, -0.30], [0.15, -0.12], [-0.15, -0.12], [0.16, 0.05], [-0.16, 0.05],  # arms
    [0.08, 0.0], [-0.08, 0.0], [0.08, 0.25], [-0.08, 0.25], [0.08, 0.50], [-0.08, 0.50],  # legs
])
# Swing amplitude (fraction of height) per keypoint and its sign: legs and opposite arms.
SWING = np.array([0, 0, 0, 0, 0, 0, 0, 0.04, -0.04, 0.08, -0.08, 0, 0, 0.06, -0.06, 0.12, -0.12])


@dataclass
class Scene:
    """gt: (F, P, 17, 2) true keypoints, pixels; heights: (P,) person heights, pixels."""

    gt: np.ndarray
    heights: np.ndarray
    width: int
    height: int


def walking_scene(rng: np.random.Generator, frames: int, people: int, width: int = 1280, height: int = 720,
                  heights: tuple[float, float] = (120.0, 260.0), speed: float = 3.0) -> Scene:
    """People walking and turning smoothly in a ``width`` x ``height`` frame."""
    size = rng.uniform(*heights, people)
    pos = np.stack([rng.uniform(0.1, 0.9, people) * width, rng.uniform(0.3, 0.8, people) * height], 1)
    angle = rng.uniform(0, 2 * np.pi, people)
    phase = rng.uniform(0, 2 * np.pi, people)
    gt = np.empty((frames, people, 17, 2))
    for t in range(frames):  # the walk is a recursion in time; people and keypoints are vectorised
        angle += rng.normal(0, 0.05, people)
        step = speed * np.stack([np.cos(angle), 0.4 * np.sin(angle)], 1) * (size / 190)[:, None]
        pos += step
        low, high = 0.5 * size[:, None] * [0.4, 1.0], np.array([width, height]) - 0.5 * size[:, None] * [0.4, 1.0]
        bounce = (pos < low) | (pos > high)
        angle = np.where(bounce[:, 0], np.pi - angle, angle)
        angle = np.where(bounce[:, 1], -angle, angle)
        pos = np.clip(pos, low, high)
        phase += 0.15 * speed / 3.0
        shape = TEMPLATE + np.stack([SWING * np.sin(phase)[:, None], np.zeros((people, 17))], -1)
        gt[t] = pos[:, None] + shape * size[:, None, None]
    return Scene(gt, size, width, height)


@dataclass
class Detections:
    """Per frame: scores (n,), keypoints (n, 17, 3) and the true person index of each (-1: false positive)."""

    scores: list[np.ndarray]
    keypoints: list[np.ndarray]
    person: list[np.ndarray]


def detect(rng: np.random.Generator, scene: Scene, noise: float = 0.01, drop: float = 0.05,
           low_score: float = 0.15, false_positives: float = 0.1) -> Detections:
    """Noisy detections of ``scene``.

    Args:
        noise: keypoint noise std as a fraction of the person's height.
        drop: probability that a person is missed in a frame.
        low_score: probability that a detected person gets a low score in [0.15, 0.5) (round 2).
        false_positives: expected false people per frame (random poses at random places).
    """
    scores, keypoints, person = [], [], []
    frames, people = scene.gt.shape[:2]
    for t in range(frames):
        kept = np.flatnonzero(rng.random(people) >= drop)
        xy = scene.gt[t, kept] + rng.normal(0, 1, (len(kept), 17, 2)) * (noise * scene.heights[kept])[:, None, None]
        conf = rng.uniform(0.6, 1.0, (len(kept), 17))
        score = np.where(rng.random(len(kept)) < low_score, rng.uniform(0.15, 0.5, len(kept)),
                         rng.uniform(0.6, 1.0, len(kept)))
        n_fp = rng.poisson(false_positives)
        fp_size = rng.uniform(100, 200, n_fp)
        fp_xy = rng.uniform([0, 0], [scene.width, scene.height], (n_fp, 1, 2)) + \
            rng.normal(0, 0.2, (n_fp, 17, 2)) * fp_size[:, None, None]
        fp_conf = rng.uniform(0.2, 0.7, (n_fp, 17))
        all_xy = np.concatenate([xy, fp_xy])
        all_conf = np.concatenate([conf, fp_conf])
        scores.append(np.concatenate([score, rng.uniform(0.1, 0.45, n_fp)]))
        keypoints.append(np.concatenate([all_xy, all_conf[..., None]], -1))
        person.append(np.concatenate([kept, np.full(n_fp, -1)]))
    return Detections(scores, keypoints, person)
