"""Articulated figures: a 3-D kinematic tree per person, posed, turned (yaw) and projected to 2-D.

All functions work on N persons at once (arrays of shape (N,) per parameter); nothing here loops
over persons or joints. Lengths are fractions of the person's stature S (standing height from
ankle to the top of the head), so a figure is scaled to pixels only when projected.

Body frame (before yaw): x = the person's left, y = up, z = forward (towards the camera at
yaw 0). A point's image position is its yawed x (right) and y (up, flipped); its yawed z is its
depth towards the camera, used for self-occlusion and for the painter's order of body parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Internal joints: the 17 COCO joints, then the top of the head and the neck (CrowdPose needs them).
JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head_top", "neck",
)
NUM_JOINTS = len(JOINT_NAMES)
#: Internal joint index of each output keypoint, per built-in skeleton.
SKELETON_JOINTS: dict[str, tuple[int, ...]] = {
    "coco17": tuple(range(17)),
    "crowdpose14": (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18),
}

#: Pose families and how often each is drawn.
POSES = ("standing", "walking", "sitting", "arms_raised", "bending")
POSE_PROBS = (0.30, 0.28, 0.12, 0.15, 0.15)

# Mean segment lengths as fractions of stature (adult anthropometry, e.g. Drillis & Contini
# segment ratios rounded): head radius, neck, torso (neck base to pelvis), shoulder and hip widths,
# upper arm, forearm, thigh, shin, ankle height above the sole.
_MEAN_LENGTHS = {
    "head_r": 0.064, "neck": 0.04, "torso": 0.30, "shoulder_w": 0.25, "hip_w": 0.18,
    "upper_arm": 0.18, "forearm": 0.16, "thigh": 0.245, "shin": 0.245, "ankle_h": 0.04,
}


@dataclass
class Figures:
    """N posed figures in the yawed body frame, in units of stature.

    Attributes:
        joints: (N, 19, 3) float32 joint positions x (image right), y (up), z (towards camera);
            the lowest sole point is at y = 0.
        head_center: (N, 3) centre of the head sphere; ``lengths["head_r"]`` is its radius.
        hair_center: (N, 3) centre of the hair disc (shifted to the back of the head).
        toes: (N, 2, 3) left and right toe tips (feet are drawn from ankle to toe).
        face_visible: (N, 19) bool; False where a face joint is on the far side of the head.
        lengths: dict of (N,) segment lengths (see ``_MEAN_LENGTHS``) and limb radii.
        pose: (N,) int index into ``POSES``.
        yaw: (N,) body yaw in radians (0 = facing the camera).
    """

    joints: np.ndarray
    head_center: np.ndarray
    hair_center: np.ndarray
    toes: np.ndarray
    face_visible: np.ndarray
    lengths: dict[str, np.ndarray]
    pose: np.ndarray
    yaw: np.ndarray


def _direction(pitch: np.ndarray, abduction: np.ndarray, side: float) -> np.ndarray:
    """Unit limb direction: pitch 0 = down, pi/2 = forward, pi = up; abduction moves it sideways.

    ``side`` is +1 for the person's left limb, -1 for the right. Returns (N, 3).
    """
    return np.stack(
        [side * np.sin(abduction), -np.cos(abduction) * np.cos(pitch), np.cos(abduction) * np.sin(pitch)], -1
    )


def sample_angles(rng: np.random.Generator, pose: np.ndarray) -> dict[str, np.ndarray]:
    """Joint angles (radians) within human ranges for each pose family; arrays of shape (N,)."""
    n = pose.shape[0]
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731  (short local sampler)
    a = {
        "lean": rng.normal(0.0, 0.05, n), "side_lean": rng.normal(0.0, 0.04, n),
        "arm_pitch_l": rng.normal(0.0, 0.15, n), "arm_pitch_r": rng.normal(0.0, 0.15, n),
        "arm_abd_l": u(0.05, 0.35), "arm_abd_r": u(0.05, 0.35),
        "elbow_l": u(0.0, 0.5), "elbow_r": u(0.0, 0.5),
        "leg_pitch_l": rng.normal(0.0, 0.08, n), "leg_pitch_r": rng.normal(0.0, 0.08, n),
        "leg_abd_l": u(0.0, 0.12), "leg_abd_r": u(0.0, 0.12),
        "knee_l": u(0.0, 0.15), "knee_r": u(0.0, 0.15),
        "head_yaw": rng.normal(0.0, 0.35, n),
    }
    walk = pose == 1
    swing = u(0.2, 0.5) * rng.choice([-1.0, 1.0], n)
    a["leg_pitch_l"] = np.where(walk, swing, a["leg_pitch_l"])
    a["leg_pitch_r"] = np.where(walk, -swing, a["leg_pitch_r"])
    # The trailing leg bends its knee; the leading one stays nearly straight.
    a["knee_l"] = np.where(walk, np.where(swing < 0, u(0.3, 0.9), u(0.0, 0.3)), a["knee_l"])
    a["knee_r"] = np.where(walk, np.where(swing > 0, u(0.3, 0.9), u(0.0, 0.3)), a["knee_r"])
    a["arm_pitch_l"] = np.where(walk, -0.8 * swing, a["arm_pitch_l"])
    a["arm_pitch_r"] = np.where(walk, 0.8 * swing, a["arm_pitch_r"])

    sit = pose == 2
    for s in ("l", "r"):
        thigh = u(1.2, 1.7)
        a[f"leg_pitch_{s}"] = np.where(sit, thigh, a[f"leg_pitch_{s}"])
        a[f"knee_{s}"] = np.where(sit, thigh + u(-0.3, 0.3), a[f"knee_{s}"])
        a[f"arm_pitch_{s}"] = np.where(sit, u(0.1, 0.8), a[f"arm_pitch_{s}"])
        a[f"elbow_{s}"] = np.where(sit, u(0.3, 1.3), a[f"elbow_{s}"])

    raised = pose == 3
    both = rng.random(n) < 0.5
    for s, on in (("l", raised), ("r", raised & (both | (rng.random(n) < 0.3)))):
        sideways = rng.random(n) < 0.4
        a[f"arm_pitch_{s}"] = np.where(on, np.where(sideways, u(0.0, 0.6), u(2.0, 3.1)), a[f"arm_pitch_{s}"])
        a[f"arm_abd_{s}"] = np.where(on, np.where(sideways, u(1.0, 2.6), u(0.0, 0.5)), a[f"arm_abd_{s}"])
        a[f"elbow_{s}"] = np.where(on, u(0.0, 1.4), a[f"elbow_{s}"])

    bend = pose == 4
    a["lean"] = np.where(bend, u(0.5, 1.3), a["lean"])
    for s in ("l", "r"):
        # Arms hang down under gravity, so their pitch in the pelvis frame stays small.
        a[f"arm_pitch_{s}"] = np.where(bend, u(-0.2, 0.8), a[f"arm_pitch_{s}"])
        a[f"leg_pitch_{s}"] = np.where(bend, u(-0.35, 0.0), a[f"leg_pitch_{s}"])
        a[f"knee_{s}"] = np.where(bend, u(0.0, 0.5), a[f"knee_{s}"])
    return a


def sample_lengths(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-person segment lengths: the mean ratio times a log-normal factor (about +-6 %)."""
    lengths = {k: v * np.exp(rng.normal(0.0, 0.06, n)) for k, v in _MEAN_LENGTHS.items()}
    build = np.exp(rng.normal(0.0, 0.12, n))  # slim .. broad people: one factor for all limb radii
    for name, radius in (("r_upper_arm", 0.032), ("r_forearm", 0.025), ("r_thigh", 0.05), ("r_shin", 0.036),
                         ("r_neck", 0.026), ("r_torso", 0.07)):
        lengths[name] = radius * build
    return lengths


def _rotate_yaw(points: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate (N, ..., 3) points about the vertical axis by (N,) yaw."""
    c = np.cos(yaw).reshape((-1,) + (1,) * (points.ndim - 2))
    s = np.sin(yaw).reshape(c.shape)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([x * c + z * s, y, -x * s + z * c], -1)


def sample_figures(rng: np.random.Generator, n: int) -> Figures:
    """Draw N posed, yawed figures (pose family, proportions, angles, yaw).

    Args:
        rng: the image's random generator.
        n: number of persons.

    Returns:
        Figures in units of stature, the lowest sole point at y = 0.
    """
    pose = rng.choice(len(POSES), size=n, p=POSE_PROBS)
    ln = sample_lengths(rng, n)
    ang = sample_angles(rng, pose)
    yaw = rng.uniform(-np.pi, np.pi, n)
    return pose_figures(ln, ang, yaw, pose)


def pose_figures(ln: dict[str, np.ndarray], ang: dict[str, np.ndarray], yaw: np.ndarray,
                 pose: np.ndarray) -> Figures:
    """Build N figures from given segment lengths, joint angles and yaw (no randomness).

    ``sample_figures`` draws these; a video animates them (a gait cycle in the angles, turns in
    the yaw) and builds each frame's figures here.

    Args:
        ln: (N,) segment lengths and limb radii (keys of ``sample_lengths``), units of stature.
        ang: (N,) joint angles in radians (keys of ``sample_angles``).
        yaw: (N,) body yaw (0 = facing the camera).
        pose: (N,) index into ``POSES`` (kept on the result).

    Returns:
        Figures in units of stature, the lowest sole point at y = 0.
    """
    n = yaw.shape[0]
    zero = np.zeros(n)
    ex = np.stack([np.ones(n), zero, zero], -1)
    col = lambda v: v[:, None]  # noqa: E731

    pelvis = np.zeros((n, 3))
    spine = np.stack([np.sin(ang["side_lean"]), np.cos(ang["side_lean"]) * np.cos(ang["lean"]),
                      np.cos(ang["side_lean"]) * np.sin(ang["lean"])], -1)
    neck_base = pelvis + col(ln["torso"]) * spine
    # People raise their head when bending, so the head leans only half as far as the torso.
    head_dir = spine + np.stack([zero, np.ones(n), zero], -1)
    head_dir /= np.linalg.norm(head_dir, axis=-1, keepdims=True)
    head_c = neck_base + col(ln["neck"] + ln["head_r"]) * head_dir
    joints = np.zeros((n, NUM_JOINTS, 3))
    joints[:, 17] = head_c + col(ln["head_r"]) * head_dir
    joints[:, 18] = neck_base + col(0.3 * ln["neck"]) * head_dir
    for side, sh, el, wr, hip, kn, an in ((1.0, 5, 7, 9, 11, 13, 15), (-1.0, 6, 8, 10, 12, 14, 16)):
        s = "l" if side > 0 else "r"
        joints[:, sh] = neck_base + side * col(0.5 * ln["shoulder_w"]) * ex - col(0.02 + zero) * head_dir
        upper = _direction(ang[f"arm_pitch_{s}"], ang[f"arm_abd_{s}"], side)
        fore = _direction(ang[f"arm_pitch_{s}"] + ang[f"elbow_{s}"], 0.7 * ang[f"arm_abd_{s}"], side)
        joints[:, el] = joints[:, sh] + col(ln["upper_arm"]) * upper
        joints[:, wr] = joints[:, el] + col(ln["forearm"]) * fore
        joints[:, hip] = pelvis + side * col(0.5 * ln["hip_w"]) * ex
        thigh = _direction(ang[f"leg_pitch_{s}"], ang[f"leg_abd_{s}"], side)
        shin = _direction(ang[f"leg_pitch_{s}"] - ang[f"knee_{s}"], ang[f"leg_abd_{s}"], side)
        joints[:, kn] = joints[:, hip] + col(ln["thigh"]) * thigh
        joints[:, an] = joints[:, kn] + col(ln["shin"]) * shin

    # Face on the head sphere, turned by the head yaw relative to the body.
    hy = ang["head_yaw"]
    fwd = np.stack([np.sin(hy), zero, np.cos(hy)], -1)
    left = np.stack([np.cos(hy), zero, -np.sin(hy)], -1)
    up = np.stack([zero, np.ones(n), zero], -1)
    r = col(ln["head_r"])
    joints[:, 0] = head_c + r * (0.95 * fwd - 0.12 * up)
    joints[:, 1] = head_c + r * (0.78 * fwd + 0.38 * left + 0.15 * up)
    joints[:, 2] = head_c + r * (0.78 * fwd - 0.38 * left + 0.15 * up)
    joints[:, 3] = head_c + r * (0.97 * left - 0.12 * fwd)
    joints[:, 4] = head_c + r * (-0.97 * left - 0.12 * fwd)
    # Feet point forward (body z), from the ankle down to the sole.
    toe_offset = np.array([0.0, -0.025, 0.07])
    toes = np.stack([joints[:, 15], joints[:, 16]], 1) + toe_offset * col(ln["shin"] / 0.245)[:, None]
    hair_c = head_c - r * (0.18 * fwd - 0.12 * up)

    joints = _rotate_yaw(joints, yaw)
    head_c, hair_c = _rotate_yaw(head_c[:, None], yaw)[:, 0], _rotate_yaw(hair_c[:, None], yaw)[:, 0]
    toes = _rotate_yaw(toes, yaw)
    # A face point is seen when it faces the camera: depth relative to the head centre, in radii.
    # Ears sit on the silhouette, so they stay visible a little past it (COCO labels them so).
    rel = (joints[:, :5, 2] - head_c[:, None, 2]) / r
    face_visible = np.ones((n, NUM_JOINTS), bool)
    face_visible[:, :5] = rel > np.array([0.1, 0.1, 0.1, -0.25, -0.25])
    sole = np.minimum(joints[:, 15:17, 1].min(1) - ln["ankle_h"], toes[:, :, 1].min(1))
    shift = np.stack([zero, sole, zero], -1)
    return Figures(
        joints=(joints - shift[:, None]).astype(np.float32),
        head_center=(head_c - shift).astype(np.float32),
        hair_center=(hair_c - shift).astype(np.float32),
        toes=(toes - shift[:, None]).astype(np.float32),
        face_visible=face_visible,
        lengths={k: v.astype(np.float32) for k, v in ln.items()},
        pose=pose,
        yaw=yaw,
    )


def figure_extent(figures: Figures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal extent and height of each figure in units of stature.

    Returns:
        x_min (N,), x_max (N,), top (N,): the figure spans x_min..x_max and 0..top (y up),
        including the head sphere.
    """
    x = figures.joints[..., 0]
    top = np.maximum(figures.joints[..., 1].max(1), figures.head_center[:, 1] + figures.lengths["head_r"])
    return x.min(1), x.max(1), top
