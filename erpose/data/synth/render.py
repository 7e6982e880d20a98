"""Drawing: figures as filled capsules and polygons (a per-person part map), clothing colours,
skin tones, textures, and procedural backgrounds. OpenCV primitives only, no per-pixel Python.

Coordinates given to OpenCV use 3 fractional bits (``shift=3``) so that small people keep
sub-pixel accuracy. A coordinate ``x`` is the centre of pixel ``x``, as in the labels (the
convention of ``erpose.data.coco``).
"""

from __future__ import annotations

import cv2
import numpy as np

from erpose.data.synth.figures import NUM_JOINTS, Figures

SHIFT = 3
_ONE = 1 << SHIFT

# Part ids of the per-person part map (0 = not this person).
TORSO, NECK, HEAD, HAIR, FACE = 1, 2, 3, 4, 5
L_UPPER_ARM, L_FOREARM, R_UPPER_ARM, R_FOREARM = 6, 7, 8, 9
L_THIGH, L_SHIN, R_THIGH, R_SHIN = 10, 11, 12, 13
L_HAND, R_HAND, L_FOOT, R_FOOT = 14, 15, 16, 17
NUM_PARTS = 18  # including 0

#: Parts on which each internal joint counts as seen (a joint covered by another part of the same
#: person, e.g. a wrist behind the torso, is self-occluded).
_JOINT_PARTS = (
    (HEAD, HAIR, FACE), (HEAD, HAIR, FACE), (HEAD, HAIR, FACE), (HEAD, HAIR, FACE), (HEAD, HAIR, FACE),
    (TORSO, L_UPPER_ARM), (TORSO, R_UPPER_ARM), (L_UPPER_ARM, L_FOREARM), (R_UPPER_ARM, R_FOREARM),
    (L_FOREARM, L_HAND), (R_FOREARM, R_HAND), (TORSO, L_THIGH), (TORSO, R_THIGH),
    (L_THIGH, L_SHIN), (R_THIGH, R_SHIN), (L_SHIN, L_FOOT), (R_SHIN, R_FOOT),
    (HEAD, HAIR), (TORSO, NECK, HEAD, HAIR),
)
JOINT_PART_TABLE = np.zeros((NUM_JOINTS, NUM_PARTS), bool)
for _j, _parts in enumerate(_JOINT_PARTS):
    JOINT_PART_TABLE[_j, list(_parts)] = True

# Skin tones (BGR), light to dark, and hair colours; each person gets one with a small jitter.
_SKIN = np.array([[196, 214, 245], [160, 190, 232], [130, 170, 220], [100, 140, 198], [70, 105, 160],
                  [50, 75, 120], [35, 55, 90]], np.float32)
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 70, 110], [90, 150, 200], [170, 170, 170],
                  [40, 60, 150]], np.float32)
#: The clothing group of each part: 0 skin, 1 hair, 2 top, 3 bottom, 4 shoes, 5 face features.
_SKIN_G, _HAIR_G, _TOP_G, _BOTTOM_G, _SHOE_G, _FACE_G = range(6)


def person_palettes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-person part colours and texture amplitudes.

    Returns:
        lut: (N, NUM_PARTS, 3) float32 BGR colour of every part.
        amplitude: (N, NUM_PARTS) float32 texture strength (0 = plain).
    """
    skin = _SKIN[rng.integers(0, len(_SKIN), n)] * rng.uniform(0.9, 1.1, (n, 1))
    hair = _HAIR[rng.integers(0, len(_HAIR), n)] * rng.uniform(0.8, 1.2, (n, 1))
    top = rng.uniform(0, 255, (n, 3)) * rng.uniform(0.4, 1.0, (n, 1))
    bottom = np.where(rng.random((n, 1)) < 0.5, rng.uniform(20, 120, (n, 1)) * [1.3, 1.0, 0.8],
                      rng.uniform(0, 255, (n, 3)))
    shoes = rng.uniform(10, 200, (n, 1)) * np.ones((1, 3))
    groups = np.stack([skin, hair, top, bottom, shoes, skin * 0.35], 1)  # (N, 6, 3)
    part_group = np.full((n, NUM_PARTS), _SKIN_G)
    part_group[:, [TORSO, L_UPPER_ARM, R_UPPER_ARM]] = _TOP_G
    part_group[:, [L_THIGH, R_THIGH, L_SHIN, R_SHIN]] = _BOTTOM_G
    part_group[:, [L_FOOT, R_FOOT]] = _SHOE_G
    part_group[:, HAIR] = _HAIR_G
    part_group[:, FACE] = _FACE_G
    long_sleeves = rng.random(n) < 0.5
    part_group[long_sleeves, L_FOREARM] = _TOP_G
    part_group[long_sleeves, R_FOREARM] = _TOP_G
    shorts = rng.random(n) < 0.25
    part_group[shorts, L_SHIN] = _SKIN_G
    part_group[shorts, R_SHIN] = _SKIN_G
    lut = np.take_along_axis(groups, part_group[..., None], 1)
    # Each part a little lighter or darker, so overlapping limbs of one colour stay tellable apart.
    lut = np.clip(lut * rng.uniform(0.85, 1.12, (n, NUM_PARTS, 1)), 0, 255).astype(np.float32)
    cloth_amp = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(0.1, 0.45, n))
    amplitude = np.where((part_group == _TOP_G) | (part_group == _BOTTOM_G), cloth_amp[:, None], 0.04)
    amplitude[:, HAIR] = 0.15
    return lut, amplitude.astype(np.float32)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def draw_capsule(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, value: int) -> None:
    """A tapered capsule (two discs joined by their tangent quad) from p0 (radius r0) to p1 (r1)."""
    if max(r0, r1) < 1.0:  # under a pixel wide a line is the capsule
        q0, q1 = _fixed(p0), _fixed(p1)
        cv2.line(canvas, (int(q0[0]), int(q0[1])), (int(q1[0]), int(q1[1])), value, 1, cv2.LINE_8, SHIFT)
        return
    d = p1 - p0
    length = float(np.hypot(d[0], d[1]))
    normal = np.array([-d[1], d[0]]) / length if length > 1e-6 else np.zeros(2)
    quad = _fixed([p0 + r0 * normal, p1 + r1 * normal, p1 - r1 * normal, p0 - r0 * normal])
    cv2.fillConvexPoly(canvas, quad, value, cv2.LINE_8, SHIFT)
    for p, r in ((p0, r0), (p1, r1)):
        q = _fixed(p)
        cv2.circle(canvas, (int(q[0]), int(q[1])), int(round(r * _ONE)), value, -1, cv2.LINE_8, SHIFT)


def figure_parts(fig: Figures, i: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Geometry of person ``i``'s parts in pixels relative to its origin, with their depths.

    Every part is a tapered capsule (a disc is a capsule of zero length) except the torso quad.

    Args:
        fig: the image's figures (units of stature, y up).
        i: person index.
        scale: stature in pixels.

    Returns:
        capsules: (M, 6) float x0, y0, x1, y1, r0, r1 in pixels (y down).
        part_ids: (M + 1,) int part id of each capsule, then of the torso quad.
        depths: (M + 1,) float depth towards the camera (painter's order: far first).
        quad: (4, 2) float torso corners (shoulders, hips).
    """
    j = fig.joints[i, :, :2] * [scale, -scale]
    z = fig.joints[i, :, 2]
    ln = {k: float(v[i]) * scale for k, v in fig.lengths.items()}
    head = fig.head_center[i, :2] * [scale, -scale]
    hair = fig.hair_center[i, :2] * [scale, -scale]
    toes = fig.toes[i, :, :2] * [scale, -scale]
    pelvis, neck_base = 0.5 * (j[11] + j[12]), 0.5 * (j[5] + j[6])
    torso_z = float(z[[5, 6, 11, 12]].mean())
    head_z, hr = float(fig.head_center[i, 2]), ln["head_r"]
    rows: list[tuple[int, float, np.ndarray, np.ndarray, float, float]] = [
        # The spine capsule gives the torso its depth when the person is seen from the side.
        (TORSO, torso_z, neck_base, pelvis, ln["r_torso"], 0.9 * ln["r_torso"]),
        (NECK, torso_z - 1e-3, neck_base, j[18], ln["r_neck"], ln["r_neck"]),
        (HAIR, float(fig.hair_center[i, 2]), hair, hair, hr, hr),
        (HEAD, head_z, head, head, 0.94 * hr, 0.94 * hr),
    ]
    if hr >= 3.0:  # eyes only where they can be seen as more than a pixel
        for eye in (1, 2):
            if fig.face_visible[i, eye]:
                er = max(0.6, 0.14 * hr)
                rows.append((FACE, head_z + 1.0, j[eye], j[eye], er, er))
    for part, a, b, radius, taper in (
        (L_UPPER_ARM, 5, 7, "r_upper_arm", 0.8), (L_FOREARM, 7, 9, "r_forearm", 0.85),
        (R_UPPER_ARM, 6, 8, "r_upper_arm", 0.8), (R_FOREARM, 8, 10, "r_forearm", 0.85),
        (L_THIGH, 11, 13, "r_thigh", 0.75), (L_SHIN, 13, 15, "r_shin", 0.75),
        (R_THIGH, 12, 14, "r_thigh", 0.75), (R_SHIN, 14, 16, "r_shin", 0.75),
    ):
        rows.append((part, float(z[a] + z[b]) / 2, j[a], j[b], ln[radius], taper * ln[radius]))
    for part, wrist, elbow in ((L_HAND, 9, 7), (R_HAND, 10, 8)):
        d = j[wrist] - j[elbow]
        tip = j[wrist] + d * (0.4 * ln["forearm"] / max(float(np.hypot(d[0], d[1])), 1e-6))
        rows.append((part, float(z[wrist]), j[wrist], tip, 0.8 * ln["r_forearm"], 0.9 * ln["r_forearm"]))
    for part, ankle, k in ((L_FOOT, 15, 0), (R_FOOT, 16, 1)):
        rows.append((part, float(z[ankle]) + 1e-3, j[ankle], toes[k], 0.6 * ln["r_shin"], 0.5 * ln["r_shin"]))
    capsules = np.array([[*p0, *p1, r0, r1] for _, _, p0, p1, r0, r1 in rows], np.float64)
    part_ids = np.array([r[0] for r in rows] + [TORSO])
    depths = np.array([r[1] for r in rows] + [torso_z])
    return capsules, part_ids, depths, np.stack([j[5], j[6], j[12], j[11]])


def draw_parts(canvas: np.ndarray, parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
               origin: np.ndarray) -> None:
    """Paint a person's parts far to near into a uint8 part map; ``origin`` (2,) shifts every point.

    The capsule geometry (tangent quads, end discs) is computed for all parts at once; only the
    OpenCV calls run per part.
    """
    capsules, part_ids, depths, quad = parts
    p0, p1 = capsules[:, :2] + origin, capsules[:, 2:4] + origin
    r0, r1 = capsules[:, 4:5], capsules[:, 5:6]
    d = p1 - p0
    length = np.hypot(d[:, 0], d[:, 1])[:, None]
    normal = np.where(length > 1e-6, np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(length, 1e-6), 0.0)
    quads = _fixed(np.stack([p0 + r0 * normal, p1 + r1 * normal, p1 - r1 * normal, p0 - r0 * normal], 1))
    ends = _fixed(np.concatenate([p0, p1], 1)).tolist()
    radii = np.maximum(_fixed(np.concatenate([r0, r1], 1)), _ONE // 2).tolist()
    thin = (np.maximum(r0, r1)[:, 0] < 1.0).tolist()
    torso = _fixed(quad + origin)
    order = np.lexsort((np.arange(len(depths)), depths)).tolist()  # far first; ties keep list order
    last = len(depths) - 1
    for k in order:
        part = int(part_ids[k])
        if k == last:
            cv2.fillConvexPoly(canvas, torso, part, cv2.LINE_8, SHIFT)
            continue
        x0, y0, x1, y1 = ends[k]
        if thin[k]:  # under a pixel wide a line is the capsule
            cv2.line(canvas, (x0, y0), (x1, y1), part, 1, cv2.LINE_8, SHIFT)
            continue
        if length[k, 0] > 1e-6:
            cv2.fillConvexPoly(canvas, quads[k], part, cv2.LINE_8, SHIFT)
        cv2.circle(canvas, (x0, y0), radii[k][0], part, -1, cv2.LINE_8, SHIFT)
        cv2.circle(canvas, (x1, y1), radii[k][1], part, -1, cv2.LINE_8, SHIFT)


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth value noise in [0, 1]: a cells x cells random grid upsampled with bicubic."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _plane_wave(rng: np.random.Generator, h: int, w: int, period: float) -> np.ndarray:
    """sin of a plane wave at a random angle, (H, W) float32, built from 1-D factors (separable)."""
    a = rng.uniform(0, np.pi)
    k = 2 * np.pi / period
    ax = (np.arange(w, dtype=np.float32) * (k * np.cos(a)))[None, :]
    ay = (np.arange(h, dtype=np.float32) * (k * np.sin(a)))[:, None]
    return (np.sin(ay) * np.cos(ax) + np.cos(ay) * np.sin(ax)).astype(np.float32)


def texture_fields(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Three zero-mean texture fields in [-1, 1] (stripes, checks, fine noise) for clothing.

    Returns:
        (3, H, W) float32.
    """
    stripes = _plane_wave(rng, h, w, rng.uniform(3, 10))
    cell = rng.uniform(3, 9)
    sx = np.where((np.arange(w) // cell) % 2 == 0, 1.0, -1.0).astype(np.float32)
    sy = np.where((np.arange(h) // cell) % 2 == 0, 1.0, -1.0).astype(np.float32)
    noise = 2.0 * _noise(rng, h, w, max(4, w // 3)) - 1.0
    return np.stack([stripes, sy[:, None] * sx[None, :], noise])


def background(rng: np.random.Generator, h: int, w: int, clutter: float = 1.0) -> np.ndarray:
    """A procedural background: gradient, multi-scale noise, stripes or tiles, plus random shapes
    (``clutter`` scales their number: 1 all, 0 none).

    Returns:
        (H, W, 3) uint8 BGR image.
    """
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    kind = rng.integers(0, 4)
    if kind == 0:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        t = (np.arange(w, dtype=np.float32) * np.cos(a))[None, :] + (np.arange(h, dtype=np.float32) * np.sin(a))[:, None]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == 1:  # noise at several scales
        t = 0.5 * _noise(rng, h, w, 3) + 0.3 * _noise(rng, h, w, 9) + 0.2 * _noise(rng, h, w, 33)
    elif kind == 2:  # stripes
        t = 0.5 + 0.5 * _plane_wave(rng, h, w, rng.uniform(6, 60))
    else:  # tiles: a coarse random grid, nearest-neighbour upsampled
        cells = int(rng.integers(3, 16))
        t = cv2.resize(rng.random((cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    t = t + 0.3 * (_noise(rng, h, w, 17) - 0.5)
    img = cv2.merge([c0[c] + (c1[c] - c0[c]) * t for c in range(3)])
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:  # a floor: a different lower part, as in street and room photos
        horizon = int(rng.uniform(0.3, 0.8) * h)
        img[horizon:] = np.clip(img[horizon:] * rng.uniform(0.5, 1.2) + rng.uniform(-30, 30, 3), 0, 255)
    for _ in range(round(int(rng.integers(0, 12)) * clutter)):
        _random_shape(rng, img)
    return img


def _random_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
    s = int(rng.uniform(0.03, 0.3) * max(h, w)) + 1
    kind = rng.integers(0, 3)
    if kind == 0:
        cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2))), colour, -1)
    elif kind == 1:
        cv2.circle(img, (x, y), s // 2, colour, -1, cv2.LINE_AA)
    else:
        cv2.line(img, (x, y), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), colour,
                 int(rng.integers(1, 6)), cv2.LINE_AA)
