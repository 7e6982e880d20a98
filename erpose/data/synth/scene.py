"""Scenes: layouts from sparse to dense crowds, depth order, occluders, distractors, and labels.

Every object (person, occluder, distractor) is painted far to near onto the image and onto an
``owner`` map holding, per pixel, the index of the person that is seen there (or a negative code).
The labels are then read off that map: a keypoint is visible (v = 2) only where its own person
is seen and no part of the same person covers it; hidden keypoints inside the image get v = 1;
keypoints outside the image get v = 0 and zero coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from erpose.data.synth import render
from erpose.data.synth.figures import SKELETON_JOINTS, Figures, sample_figures

if TYPE_CHECKING:
    from erpose.data.synth.paste import PasteBank

DENSITIES = ("sparse", "mixed", "crowd")
BACKGROUND, OCCLUDER, DISTRACTOR = -1, -2, -3
MIN_STATURE = 16.0
MAX_PERSONS = 40


@dataclass
class SceneRender:
    """One rendered image with its labels and the masks the labels were read from.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        keypoints: (N, K, 3) float32 x, y in pixels (integer = pixel centre), v in {0, 1, 2}.
        self_occluded: (N, K) bool, keypoints hidden by another part of the same person (or on
            the far side of the head).
        boxes: (N, 4) float32 x, y, w, h of the visible body (the mask's bounding box).
        areas: (N,) float32 number of visible body pixels.
        crowd_index: CrowdPose crowd index of the image (see ``writers.crowd_index``).
        owner: (H, W) int16 person index seen at each pixel, or BACKGROUND / OCCLUDER / DISTRACTOR.
    """

    image: np.ndarray
    keypoints: np.ndarray
    self_occluded: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    crowd_index: float
    owner: np.ndarray

    @property
    def person_masks(self) -> np.ndarray:
        """(N, H, W) bool, the pixels where each labelled person is seen (computed on demand)."""
        return self.owner[None] == np.arange(self.keypoints.shape[0], dtype=np.int16)[:, None, None]


def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int | None = None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo * 1.01)), n))


def _sparse(rng: np.random.Generator, size: int, n: int, stature: tuple[float, float] = (0.0, 0.9)) -> np.ndarray:
    """n people spread out: rows of (stature, centre x, foot y) in pixels; ``stature`` bounds the
    height as fractions of the image side (never below ``MIN_STATURE`` px)."""
    lo, hi = max(MIN_STATURE, stature[0] * size), stature[1] * size
    out = np.zeros((0, 3))
    for _ in range(n):
        for _try in range(8):  # rejection keeps sparse scenes sparse; the last try is kept anyway
            h = float(_loguniform(rng, lo, hi))
            row = np.array([h, rng.uniform(-0.05, 1.05) * size, rng.uniform(0.8 * h, size + 0.1 * h)])
            dx = np.abs(out[:, 1] - row[1]) < 0.25 * (out[:, 0] + h) * 0.5
            dy = np.abs(out[:, 2] - row[2]) < 0.8 * np.minimum(out[:, 0], h)
            if not np.any(dx & dy):
                break
        out = np.vstack([out, row])
    return out


def _group(rng: np.random.Generator, size: int, rows: int, spacing: tuple[float, float],
           stature: tuple[float, float] = (0.0, 0.9)) -> np.ndarray:
    """A group standing in rows; spacing is the gap between neighbours as a fraction of stature."""
    h0 = float(_loguniform(rng, max(22.0, stature[0] * size), min(0.75, stature[1]) * size))
    base_y = rng.uniform(min(0.7 * size, 0.95 * h0 + 0.2 * size), size + 0.1 * h0)
    out = []
    for r in range(rows):
        h = h0 * 0.82**r
        gap = rng.uniform(*spacing) * h
        span = rng.uniform(0.3, 1.1) * size
        count = max(1, int(span / gap))
        x = rng.uniform(-0.1, 0.9) * size + gap * np.arange(count) + rng.normal(0, 0.15 * gap, count)
        y = base_y - r * rng.uniform(0.1, 0.25) * h0 + rng.normal(0, 0.03 * h, count)
        out.append(np.stack([h * np.exp(rng.normal(0, 0.07, count)), x, y], 1))
    return np.concatenate(out)


def sample_layout(rng: np.random.Generator, size: int, density: str,
                  stature: tuple[float, float] | None = None, max_people: int | None = None) -> np.ndarray:
    """Where people stand: (N, 3) rows of stature px, centre x px, foot y px.

    ``sparse``: 1-5 people of any size, little overlap. ``crowd``: one or two groups in 1-3 rows,
    neighbours 0.15-0.5 statures apart (heavy overlap). ``mixed`` draws per image between sparse
    scenes, loose groups and crowds. ``stature`` (fractions of the image side) bounds the person
    heights (default 16 px to 0.9); ``max_people`` caps the people per image (default 40).
    """
    stature = stature or (0.0, 0.9)
    if not 0.0 <= stature[0] < stature[1] <= 1.5:
        raise ValueError(f"stature range must satisfy 0 <= low < high <= 1.5, got {stature}")
    if density not in DENSITIES:
        raise ValueError(f"unknown density preset {density!r}; known: {list(DENSITIES)}")
    mode = density
    if density == "mixed":
        mode = ("sparse", "group", "crowd")[rng.choice(3, p=[0.25, 0.45, 0.3])]
    if mode == "sparse":
        rows = _sparse(rng, size, int(rng.integers(1, 6)), stature)
    elif mode == "group":
        group = _group(rng, size, int(rng.integers(1, 3)), (0.25, 0.8), stature)
        rows = np.vstack([group, _sparse(rng, size, int(rng.integers(0, 3)), stature)])
    else:
        groups = [_group(rng, size, int(rng.integers(1, 4)), (0.15, 0.5), stature) for _ in range(rng.integers(1, 3))]
        rows = np.vstack(groups)
    rows = rows[: min(MAX_PERSONS, max_people or MAX_PERSONS)]
    rows[:, 0] = np.maximum(rows[:, 0], MIN_STATURE)
    return rows


def _composite(img: np.ndarray, owner: np.ndarray, x0: int, y0: int, mask: np.ndarray,
               colours: np.ndarray, code: int) -> None:
    """Paint ``colours[mask]`` into the crop at (x0, y0) of img and mark those pixels with ``code``."""
    h, w = mask.shape
    img[y0:y0 + h, x0:x0 + w][mask] = colours
    owner[y0:y0 + h, x0:x0 + w][mask] = code


def _crop_box(points: np.ndarray, margin: float, size: int) -> tuple[int, int, int, int] | None:
    x0, y0 = np.floor(points.min(0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(0) + margin).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def _props(rng: np.random.Generator, size: int) -> list[tuple[float, int, np.ndarray, np.ndarray, tuple]]:
    """Occluders (boxes, poles) and distractors (limb-like sticks, blobs) as (depth, code, colour,
    texture amplitude, primitive) with primitives in image pixels."""
    out = []
    for _ in range(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])):
        colour = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:  # a box standing on the ground (crate, table, car door...)
            w, h = rng.uniform(0.08, 0.4) * size, rng.uniform(0.05, 0.3) * size
            x, bottom = rng.uniform(-0.1, 1.0) * size, rng.uniform(0.4, 1.1) * size
            poly = np.array([[x, bottom - h], [x + w, bottom - h], [x + w, bottom], [x, bottom]])
        else:  # a pole from the top edge (or mid air) down to the ground
            w, x, bottom = rng.uniform(2, 0.05 * size), rng.uniform(0, size), rng.uniform(0.5, 1.1) * size
            top = rng.uniform(-0.1, 0.5) * size
            poly = np.array([[x, top], [x + w, top], [x + w, bottom], [x, bottom]])
        out.append((float(bottom), OCCLUDER, colour, rng.uniform(0, 0.3), ("poly", poly)))
    skin = render.person_palettes(rng, 1)[0][0, render.HEAD]
    for _ in range(int(rng.integers(0, 5))):
        depth = rng.uniform(0, 1.1 * size)
        colour = skin * rng.uniform(0.8, 1.2) if rng.random() < 0.5 else rng.uniform(0, 255, 3)
        p0 = rng.uniform(0, size, 2)
        length, r = rng.uniform(0.03, 0.2) * size, rng.uniform(0.6, 0.025 * size + 1)
        if rng.random() < 0.6:  # a limb-like stick, sometimes bent at an "elbow"
            a = rng.uniform(0, 2 * np.pi)
            p1 = p0 + length * np.array([np.cos(a), np.sin(a)])
            out.append((depth, DISTRACTOR, colour, 0.0, ("capsule", p0, p1, r, 0.8 * r)))
            if rng.random() < 0.5:
                a += rng.uniform(-1.5, 1.5)
                out.append((depth, DISTRACTOR, colour, 0.0,
                            ("capsule", p1, p1 + length * np.array([np.cos(a), np.sin(a)]), 0.8 * r, 0.7 * r)))
        else:  # a blob (a head-sized disc or an ellipse)
            out.append((depth, DISTRACTOR, colour, 0.0, ("ellipse", p0, (length / 2, length * rng.uniform(0.3, 1)),
                                                          rng.uniform(0, 180))))
    return out


def _draw_prop(img: np.ndarray, owner: np.ndarray, tex: np.ndarray, prop: tuple) -> None:
    _, code, colour, amp, prim = prop
    size = img.shape[0]
    if prim[0] == "ellipse":
        pts = np.array([prim[1] - max(prim[2]), prim[1] + max(prim[2])])
    elif prim[0] == "capsule":
        pts = np.array([prim[1], prim[2]])
    else:
        pts = prim[1]
    box = _crop_box(pts, 2 + (max(prim[3], prim[4]) if prim[0] == "capsule" else 0), size)
    if box is None:
        return
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    off = np.array([x0, y0], float)
    if prim[0] == "poly":
        cv2.fillConvexPoly(mask, render._fixed(prim[1] - off), 1, cv2.LINE_8, render.SHIFT)
    elif prim[0] == "capsule":
        render.draw_capsule(mask, prim[1] - off, prim[2] - off, prim[3], prim[4], 1)
    else:
        c = prim[1] - off
        cv2.ellipse(mask, (int(c[0]), int(c[1])), (int(prim[2][0]) + 1, int(prim[2][1]) + 1), prim[3], 0, 360, 1, -1)
    m = mask.astype(bool)
    shade = 1.0 + amp * tex[y0:y1, x0:x1][m]
    _composite(img, owner, x0, y0, m, np.clip(colour * shade[:, None], 0, 255), code)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Photometric jitter of the whole image (labels unaffected): contrast, brightness, noise, blur."""
    out = cv2.addWeighted(img, rng.uniform(0.75, 1.25), img, 0.0, rng.uniform(-25, 25))
    sigma = rng.uniform(0, 6)
    # Grey (one channel) sensor noise: a third of the random draws of colour noise.
    noise = (rng.standard_normal(img.shape[:2], dtype=np.float32) * sigma).astype(np.int16)
    out = np.clip(out.astype(np.int16) + noise[..., None], 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out


def _labels(kp_draw: np.ndarray, self_vis: np.ndarray, labelled: np.ndarray, owner: np.ndarray,
            ids: np.ndarray) -> np.ndarray:
    """Visibility from the owner map. kp_draw (N, K, 2) drawing coordinates; returns (N, K, 3)."""
    size_y, size_x = owner.shape
    # Keypoints are pixel indices (integer = pixel centre, the COCO reader's convention), so the
    # image spans [-0.5, size - 0.5) and a keypoint lies on pixel round(x).
    x, y = kp_draw[..., 0], kp_draw[..., 1]
    inside = (x >= -0.5) & (x < size_x - 0.5) & (y >= -0.5) & (y < size_y - 0.5) & labelled
    px = np.clip(np.floor(kp_draw + 0.5).astype(int), 0, [size_x - 1, size_y - 1])
    seen = owner[px[..., 1], px[..., 0]] == ids[:, None]
    v = np.where(inside, np.where(seen & self_vis, 2, 1), 0)
    return np.concatenate([np.where(inside[..., None], kp_draw, 0.0), v[..., None]], -1).astype(np.float32)


def render_scene(rng: np.random.Generator, imgsz: int, density: str = "mixed", skeleton: str = "coco17",
                 paste_bank: PasteBank | None = None, stature: tuple[float, float] | None = None,
                 max_people: int | None = None, clutter: float = 1.0) -> SceneRender:
    """Render one square image of people, occluders and distractors, and label it.

    Args:
        rng: generator for this image (all randomness comes from it, so output is reproducible).
        imgsz: image side in pixels.
        density: ``sparse``, ``mixed`` or ``crowd`` layout.
        skeleton: ``coco17`` or ``crowdpose14`` (keypoints written).
        paste_bank: when given, people are real cut-outs from it instead of drawn figures.
        stature, max_people: person height range (fractions of ``imgsz``) and people per image cap;
            see ``sample_layout``.
        clutter: how much of the usual distraction to draw, 0..1: occluders, limb-like distractors
            and background shapes (1: all; 0: none, people on a plain procedural background).

    Returns:
        SceneRender with the persons that are seen at least one pixel.
    """
    from erpose.data.synth.writers import crowd_index

    if skeleton not in SKELETON_JOINTS:
        raise ValueError(f"unknown skeleton {skeleton!r} for synth; known: {sorted(SKELETON_JOINTS)}")
    layout = sample_layout(rng, imgsz, density, stature, max_people)
    n = layout.shape[0]
    if not 0.0 <= clutter <= 1.0:
        raise ValueError(f"clutter must be in [0, 1], got {clutter}")
    img = paste_bank.background(rng, imgsz) if paste_bank is not None else render.background(rng, imgsz, imgsz, clutter)
    tex = render.texture_fields(rng, imgsz, imgsz)
    owner = np.full((imgsz, imgsz), BACKGROUND, np.int16)
    props = _props(rng, imgsz)
    props = props[: round(len(props) * clutter)]
    # Nearer people stand lower in the image: depth is the foot line, with a little noise.
    depth = layout[:, 2] + rng.normal(0, 0.02 * imgsz, n)
    if paste_bank is not None:
        people = paste_bank.sample_people(rng, layout)
        joints_out = people.keypoints.shape[1]
    else:
        people = _FigurePeople.sample(rng, n, layout, tex, skeleton)
        joints_out = len(SKELETON_JOINTS[skeleton])
    kp_draw = np.zeros((n, joints_out, 2), np.float32)
    self_vis = np.zeros((n, joints_out), bool)
    order = sorted([(float(depth[i]), 0, i) for i in range(n)] + [(p[0], 1, k) for k, p in enumerate(props)])
    for _, is_prop, k in order:
        if is_prop:
            _draw_prop(img, owner, tex[k % 3], props[k])
        else:
            kp_draw[k], self_vis[k] = people.draw(k, img, owner)
    ids = np.arange(n)
    keypoints = _labels(kp_draw, self_vis, people.labelled, owner, ids)
    boxes, areas = _visible_boxes(owner, n)
    keep = areas > 0  # people hidden entirely are not in the picture, so they get no label
    remap = np.full(n + 3, -1, np.int16)  # owner codes renumbered to the kept persons
    remap[np.flatnonzero(keep)] = np.arange(int(keep.sum()))
    owner = np.where(owner >= 0, remap[np.maximum(owner, 0)], owner).astype(np.int16)
    keypoints, boxes, areas = keypoints[keep], boxes[keep], areas[keep]
    return SceneRender(
        image=_finish(rng, img), keypoints=keypoints, self_occluded=~self_vis[keep], boxes=boxes, areas=areas,
        crowd_index=crowd_index(keypoints, boxes), owner=owner,
    )


def _visible_boxes(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (N, 4) x, y, w, h and pixel counts (N,) of each person's visible pixels."""
    ys, xs = np.nonzero(owner >= 0)
    ids = owner[ys, xs].astype(np.intp)
    areas = np.bincount(ids, minlength=n).astype(np.float32)
    big = np.iinfo(np.int64).max
    x0, y0 = np.full(n, big), np.full(n, big)
    x1, y1 = np.full(n, -1), np.full(n, -1)
    np.minimum.at(x0, ids, xs)
    np.minimum.at(y0, ids, ys)
    np.maximum.at(x1, ids, xs)
    np.maximum.at(y1, ids, ys)
    # Pixel j spans [j - 0.5, j + 0.5] in the pixel-centre convention of the keypoints.
    boxes = np.stack([x0 - 0.5, y0 - 0.5, x1 + 1 - x0, y1 + 1 - y0], 1).astype(np.float32)
    return np.where(areas[:, None] > 0, boxes, 0.0).astype(np.float32), areas


class _FigurePeople:
    """Drawn figures for one image: palettes, textures and per-person part drawing."""

    def __init__(self, fig: Figures, layout: np.ndarray, lut: np.ndarray, amp: np.ndarray, tex_id: np.ndarray,
                 tex: np.ndarray, skeleton: str):
        self.fig = fig
        self.layout = layout
        self.lut, self.amp = lut, amp
        self.tex_id = tex_id
        self.tex = tex
        self.out_joints = np.asarray(SKELETON_JOINTS[skeleton])
        self.labelled = np.ones((len(layout), len(self.out_joints)), bool)

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int, layout: np.ndarray, tex: np.ndarray,
               skeleton: str) -> _FigurePeople:
        """N random figures with random clothes (one still image)."""
        fig = sample_figures(rng, n)
        lut, amp = render.person_palettes(rng, n)
        return cls(fig, layout, lut, amp, rng.integers(0, 3, n), tex, skeleton)

    def draw(self, i: int, img: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paint person i; returns its keypoints in drawing coordinates (K, 2) and self-visibility (K,)."""
        stature, cx, foot_y = self.layout[i]
        origin = np.array([cx, foot_y])
        parts = render.figure_parts(self.fig, i, stature)
        joints = self.fig.joints[i, :, :2] * [stature, -stature] + origin
        kp = joints[self.out_joints].astype(np.float32)
        self_vis = np.zeros(len(self.out_joints), bool)
        margin = 2.0 + stature * float(self.fig.lengths["head_r"][i] + self.fig.lengths["r_thigh"][i])
        head = self.fig.head_center[i, :2] * [stature, -stature] + origin
        box = _crop_box(np.vstack([joints, head]), margin, img.shape[0])
        if box is None:
            return kp, self_vis
        x0, y0, x1, y1 = box
        partmap = np.zeros((y1 - y0, x1 - x0), np.uint8)
        render.draw_parts(partmap, parts, origin - [x0, y0])
        # Self-occlusion: the part of this person under each joint, before anyone nearer paints over.
        px = np.floor(joints + 0.5).astype(int) - [x0, y0]
        ok = (px[:, 0] >= 0) & (px[:, 0] < x1 - x0) & (px[:, 1] >= 0) & (px[:, 1] < y1 - y0)
        part = np.where(ok, partmap[np.clip(px[:, 1], 0, y1 - y0 - 1), np.clip(px[:, 0], 0, x1 - x0 - 1)], 0)
        seen = render.JOINT_PART_TABLE[np.arange(len(joints)), part] & self.fig.face_visible[i]
        m = partmap > 0
        pm = partmap[m]
        shade = 1.0 + self.amp[i, pm] * self.tex[self.tex_id[i], y0:y1, x0:x1][m]
        _composite(img, owner, x0, y0, m, np.clip(self.lut[i, pm] * shade[:, None], 0, 255), i)
        return kp, seen[self.out_joints]
