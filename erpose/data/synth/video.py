"""SynthCrowd video: sequences of people with identities, for tracking ground truth.

People walk across a fixed scene with a gait cycle (legs swing, the trailing knee bends, arms
swing opposite), some turn round (through facing the camera or facing away), some stand, they
cross and hide each other (painter's order by the foot line), and they enter and leave through
the frame edges; the camera can shake. Each frame is drawn with the SynthCrowd renderer (the same
figures, clothes, occluders and labels as ``render_scene``), so the labels are exact: a keypoint
is visible (v = 2) where its own person is seen there, hidden inside the frame (v = 1), or out of
the frame (v = 0, coordinates 0). A person is labelled in a frame when at least one of its pixels
is seen and one of its keypoints lies in the frame; its ``track_id`` is the same in every frame
and never reused.

Everything comes from ``SeedSequence([seed, sequence index])``: the same arguments give the same
frames and labels. Written per sequence: ``<stem>.mp4`` (OpenCV, mp4v) and ``<stem>.json``
(PoseTrack18 layout: images with ``frame_id``, annotations with ``track_id`` and ``keypoints``).
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from erpose.data.synth import render
from erpose.data.synth.figures import POSES, SKELETON_JOINTS, pose_figures, sample_angles, sample_lengths
from erpose.data.synth.scene import (
    BACKGROUND,
    _draw_prop,
    _FigurePeople,
    _labels,
    _props,
    _visible_boxes,
)
from erpose.data.synth.writers import coco_annotations, coco_document
from erpose.files import atomic_write_text, target_error
from erpose.skeleton import get_skeleton

#: Bumped whenever the same arguments would produce different frames or labels.
VIDEO_VERSION = 1
MIN_IMGSZ = 64
MAX_IMGSZ = 1920
MAX_FRAMES = 100_000
_WALKING = POSES.index("walking")


@dataclass(frozen=True)
class VideoPreset:
    """How busy a sequence is.

    Attributes:
        people: people over the whole sequence (some there at the start, the others walk in).
        start: people in the frame at the first frame.
        stature: (low, high) person heights as fractions of the frame side (log-uniform).
        depth: (low, high) foot line as fractions of the frame side (nearer people stand lower).
        turn: probability that a walker turns round once.
        stand: probability that a person stands (swaying, no walking).
    """

    people: int
    start: int
    stature: tuple[float, float]
    depth: tuple[float, float]
    turn: float = 0.35
    stand: float = 0.1


#: ``sparse``: a few large people, little overlap. ``crowd``: many people in a narrow band of
#: depth, so they cross and hide each other all the time.
VIDEO_PRESETS: dict[str, VideoPreset] = {
    "sparse": VideoPreset(people=5, start=2, stature=(0.4, 0.7), depth=(0.72, 1.0)),
    "crowd": VideoPreset(people=16, start=8, stature=(0.3, 0.5), depth=(0.78, 0.98), stand=0.15),
}


@dataclass(frozen=True)
class VideoConfig:
    """One synthetic sequence (or several, from the same settings and consecutive indices).

    Attributes:
        frames: frames per sequence.
        imgsz: square frame side, pixels.
        preset: ``sparse`` or ``crowd`` (see ``VIDEO_PRESETS``).
        seed: base seed; sequence i draws from ``SeedSequence([seed, i])``.
        fps: frame rate of the written video; walking speed and cadence are per second.
        shake: camera shake, standard deviation of the frame offset in pixels (0: a still camera).
        clutter: occluders and background shapes, 0..1 (1: all, as in ``render_scene``).
        people: people over the sequence (None: the preset's).
        stature: person heights as fractions of ``imgsz`` (None: the preset's).
        skeleton: ``coco17`` or ``crowdpose14``.
    """

    frames: int = 150
    imgsz: int = 256
    preset: str = "sparse"
    seed: int = 0
    fps: float = 30.0
    shake: float = 0.0
    clutter: float = 1.0
    people: int | None = None
    stature: tuple[float, float] | None = None
    skeleton: str = "coco17"

    def __post_init__(self) -> None:
        if self.preset not in VIDEO_PRESETS:
            raise ValueError(f"unknown video preset {self.preset!r}; known: {sorted(VIDEO_PRESETS)}")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise ValueError(f"frames must be in [1, {MAX_FRAMES}], got {self.frames}")
        if not MIN_IMGSZ <= self.imgsz <= MAX_IMGSZ:
            raise ValueError(f"imgsz must be in [{MIN_IMGSZ}, {MAX_IMGSZ}] for a video, got {self.imgsz}")
        if not (np.isfinite(self.fps) and 1.0 <= self.fps <= 240.0):
            raise ValueError(f"fps must be in [1, 240], got {self.fps}")
        if not (np.isfinite(self.shake) and 0.0 <= self.shake <= 0.1 * self.imgsz):
            raise ValueError(f"shake must be in [0, {0.1 * self.imgsz:g}] px (a tenth of imgsz), got {self.shake}")
        if not 0.0 <= self.clutter <= 1.0:
            raise ValueError(f"clutter must be in [0, 1], got {self.clutter}")
        if self.people is not None and not 1 <= self.people <= 200:
            raise ValueError(f"people must be in [1, 200], got {self.people}")
        if self.stature is not None and not 0.05 <= self.stature[0] < self.stature[1] <= 1.2:
            raise ValueError(f"stature range must satisfy 0.05 <= low < high <= 1.2, got {tuple(self.stature)}")
        if self.skeleton not in SKELETON_JOINTS:
            raise ValueError(f"unknown skeleton {self.skeleton!r} for synth; known: {sorted(SKELETON_JOINTS)}")


@dataclass
class SynthVideo:
    """One rendered sequence and its labels; P people over F frames.

    Attributes:
        frames: (F, S, S, 3) uint8 BGR frames.
        keypoints: (F, P, K, 3) float32 labels x, y (pixels, integer = pixel centre), v in {0, 1, 2};
            all zero where the person is not labelled.
        true_xy: (F, P, K, 2) float32 where each keypoint truly is in the frame, also outside it or
            under other people (NaN before a person enters and after it has left).
        present: (F, P) bool, the person is labelled (a pixel seen, a keypoint in the frame).
        boxes: (F, P, 4) float32 x, y, w, h of the visible body; areas: (F, P) visible pixels.
        stature: (F, P) float32 person height in pixels (NaN when not in the scene).
        fps: frame rate.
        config: the settings; index: the sequence index.
    """

    frames: np.ndarray
    keypoints: np.ndarray
    true_xy: np.ndarray
    present: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    stature: np.ndarray
    fps: float
    config: VideoConfig
    index: int

    @property
    def track_ids(self) -> np.ndarray:
        """(P,) int64 id of each person: 0, 1, ... in order of entering the scene."""
        return np.arange(self.present.shape[1], dtype=np.int64)

    def frame_labels(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(track_ids (n,), keypoints (n, K, 3))`` of the people labelled in frame ``t``."""
        people = np.flatnonzero(self.present[t])
        return people.astype(np.int64), self.keypoints[t, people]

    def to_posetrack(self, file_name: str, first_image_id: int = 0, first_annotation_id: int = 0) -> dict:
        """The labels as a PoseTrack18-style document (one image per frame, ``track_id`` per person)."""
        skeleton = get_skeleton(self.config.skeleton)
        num_frames, size = self.keypoints.shape[0], self.config.imgsz
        vid = Path(file_name).stem
        images, annotations = [], []
        for t in range(num_frames):
            image_id = first_image_id + t
            images.append({"id": image_id, "file_name": file_name, "frame_id": t, "vid_id": vid,
                           "nframes": num_frames, "width": size, "height": size, "is_labeled": True})
            people, keypoints = self.frame_labels(t)
            anns = coco_annotations(keypoints, self.boxes[t, people], self.areas[t, people], image_id,
                                    first_annotation_id + len(annotations), skeleton)
            for ann, person in zip(anns, people):
                ann["track_id"] = int(person)
            annotations.extend(anns)
        info = {"description": "SynthCrowd video", "version": VIDEO_VERSION, "sequence": self.index,
                "fps": self.fps, **{k: v for k, v in asdict(self.config).items() if k != "frames"}}
        return coco_document(images, annotations, skeleton, info)


@dataclass
class _Cast:
    """Everyone in a sequence and where each is at every frame (arrays over frames and people)."""

    x: np.ndarray  # (F, P) centre x, world pixels
    foot: np.ndarray  # (F, P) foot line y
    stature: np.ndarray  # (F, P) pixels
    yaw: np.ndarray  # (F, P)
    phase: np.ndarray  # (F, P) gait phase
    gait: np.ndarray  # (F, P) 0 (standing) .. 1 (walking): swing amplitude factor
    alive: np.ndarray  # (F, P) in the scene (entered, not yet left)


def _cast(rng: np.random.Generator, cfg: VideoConfig, preset: VideoPreset, n: int) -> tuple[_Cast, dict]:
    """Plan every person's walk: entry, speed, depth drift, turn, gait phase, and their body."""
    size, frames = float(cfg.imgsz), cfg.frames
    lo, hi = cfg.stature or preset.stature
    stature0 = np.exp(rng.uniform(np.log(lo * size), np.log(hi * size), n))
    foot0 = rng.uniform(*preset.depth, n) * size
    # Perspective: height proportional to the distance of the foot line below a horizon above the frame.
    horizon = -0.6 * size
    direction = rng.choice([-1.0, 1.0], n)
    start = min(preset.start, n)
    stands = (rng.random(n) < preset.stand) & (np.arange(n) < start)  # standers are there from the start
    # Walking ~1.3 m/s at ~1.7 m stature: 0.6-0.95 statures per second; cadence ~0.8-1.0 strides/s.
    speed = np.where(stands, 0.0, rng.uniform(0.6, 0.95, n)) / cfg.fps
    cadence = rng.uniform(0.8, 1.0, n) * 2.0 * np.pi / cfg.fps
    enter = np.concatenate([np.zeros(start), np.sort(rng.uniform(0, max(frames - 10, 1), n - start))]).astype(int)
    margin = 0.35 * stature0
    x0 = np.where(np.arange(n) < start, rng.uniform(0.1, 0.9, n) * size,
                  np.where(direction > 0, -margin, size + margin))
    drift = rng.normal(0.0, 0.1, n) * speed * stature0
    turns = (rng.random(n) < preset.turn) & ~stands
    turn_at = enter + rng.uniform(20, 110, n) * cfg.fps / 30.0
    turn_len = rng.uniform(12, 24, n) * cfg.fps / 30.0
    # Facing: side-on walkers turned a little towards (or away from) the camera.
    facing = direction * (np.pi / 2 - rng.uniform(-0.5, 0.6, n))
    sweep = np.where(rng.random(n) < 0.5, -2.0 * facing, np.sign(facing) * (2.0 * np.pi - 2.0 * np.abs(facing)))
    stand_yaw = rng.uniform(-1.2, 1.2, n)
    phase0 = rng.uniform(0, 2 * np.pi, n)

    shape = (frames, n)
    out = _Cast(*(np.zeros(shape) for _ in range(6)), alive=np.zeros(shape, bool))
    x, foot, phase, gone = x0.copy(), foot0.copy(), phase0.copy(), np.zeros(n, bool)
    for t in range(frames):  # the walk is a recursion in time; people are vectorised
        alive = (t >= enter) & ~gone
        progress = np.clip((t - turn_at) / turn_len, 0.0, 1.0) * turns
        heading = direction * np.cos(np.pi * progress)  # velocity sign and size through a turn
        stature = stature0 * (foot - horizon) / (foot0 - horizon)
        moving = alive & (t > enter)
        x = x + np.where(moving, speed * stature * heading, 0.0)
        foot = foot + np.where(moving, drift, 0.0)
        band = (foot < preset.depth[0] * size) | (foot > preset.depth[1] * size)
        drift = np.where(band & moving, -drift, drift)
        gait = np.where(stands, 0.0, np.abs(heading))
        phase = phase + np.where(moving, cadence * (0.3 + 0.7 * gait), 0.0)
        out.x[t], out.foot[t], out.stature[t], out.phase[t], out.gait[t] = x, foot, stature, phase, gait
        out.yaw[t] = np.where(stands, stand_yaw, facing + sweep * progress)
        out.alive[t] = alive
        # Gone for good once fully outside and walking away from the frame.
        outside = np.abs(x - size / 2) > size / 2 + 0.5 * stature
        gone |= alive & outside & (np.sign(x - size / 2) == np.sign(heading)) & (heading != 0)
    body = {"lengths": sample_lengths(rng, n), "angles": sample_angles(rng, np.full(n, _WALKING)),
            "palettes": render.person_palettes(rng, n), "tex_id": rng.integers(0, 3, n),
            "swing": rng.uniform(0.25, 0.45, n), "head_rate": rng.uniform(0.02, 0.08, n)}
    return out, body


def _gait_angles(base: dict[str, np.ndarray], phase: np.ndarray, gait: np.ndarray, swing: np.ndarray,
                 head: np.ndarray) -> dict[str, np.ndarray]:
    """Joint angles of a walking cycle at ``phase`` for the selected people (arrays of shape (n,))."""
    a = dict(base)
    legs = swing * gait * np.sin(phase)
    forward = np.cos(phase)  # > 0: the left leg swings forward (its knee bends most mid-swing)
    a["leg_pitch_l"], a["leg_pitch_r"] = legs, -legs
    a["knee_l"] = 0.08 + gait * 0.9 * np.clip(forward, 0, None) ** 2
    a["knee_r"] = 0.08 + gait * 0.9 * np.clip(-forward, 0, None) ** 2
    a["arm_pitch_l"], a["arm_pitch_r"] = -0.8 * legs, 0.8 * legs
    a["elbow_l"] = base["elbow_l"] * 0.5 + 0.3 * gait * np.clip(-legs, 0, None)
    a["elbow_r"] = base["elbow_r"] * 0.5 + 0.3 * gait * np.clip(legs, 0, None)
    a["arm_abd_l"], a["arm_abd_r"] = np.minimum(base["arm_abd_l"], 0.2), np.minimum(base["arm_abd_r"], 0.2)
    a["lean"] = 0.03 + 0.05 * gait
    a["head_yaw"] = base["head_yaw"] * 0.5 + 0.25 * np.sin(head)
    return a


def _shake(rng: np.random.Generator, frames: int, std: float) -> np.ndarray:
    """(F, 2) integer camera offsets: a smooth random walk (AR(1), 0.8) with stationary std ``std``."""
    steps = rng.normal(0.0, std * 0.6, (frames, 2))
    offset = np.zeros((frames, 2))
    for t in range(1, frames):
        offset[t] = 0.8 * offset[t - 1] + steps[t]
    return np.rint(np.clip(offset, -3 * std, 3 * std)).astype(int)


def render_video(config: VideoConfig, index: int = 0,
                 on_frame: Callable[[np.ndarray], None] | None = None) -> SynthVideo:
    """Render sequence ``index`` of ``config`` (frames and labels in memory).

    Args:
        config: the settings.
        index: the sequence number (its seed is ``SeedSequence([config.seed, index])``).
        on_frame: when given, each finished (S, S, 3) frame is handed to it in order and not
            kept (``frames`` of the result is then empty): a long or large video never sits
            in memory.

    Returns:
        :class:`SynthVideo`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    preset = VIDEO_PRESETS[config.preset]
    n = config.people or preset.people
    size, frames = config.imgsz, config.frames
    margin = int(np.ceil(3 * config.shake))
    canvas = size + 2 * margin
    cast, body = _cast(rng, config, preset, n)
    offsets = _shake(rng, frames, config.shake) if config.shake > 0 else np.zeros((frames, 2), int)
    background = render.background(rng, canvas, canvas, config.clutter)
    tex = render.texture_fields(rng, canvas, canvas)
    props = _props(rng, canvas)
    props = props[: round(len(props) * config.clutter)]
    gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    noise_sigma, blur = rng.uniform(0, 4), rng.random() < 0.3
    lut, amp = body["palettes"]
    out_joints = np.asarray(SKELETON_JOINTS[config.skeleton])
    k = len(out_joints)
    images = np.zeros((0 if on_frame else frames, size, size, 3), np.uint8)
    keypoints = np.zeros((frames, n, k, 3), np.float32)
    true_xy = np.full((frames, n, k, 2), np.nan, np.float32)
    present = np.zeros((frames, n), bool)
    boxes = np.zeros((frames, n, 4), np.float32)
    areas = np.zeros((frames, n), np.float32)
    noise_rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 1]))
    for t in range(frames):
        people = np.flatnonzero(cast.alive[t])
        img, owner = background.copy(), np.full((canvas, canvas), BACKGROUND, np.int16)
        corner = margin + offsets[t]  # the frame's top-left corner on the canvas
        if len(people):
            base = {name: v[people] for name, v in body["angles"].items()}
            angles = _gait_angles(base, cast.phase[t, people], cast.gait[t, people], body["swing"][people],
                                  body["head_rate"][people] * t * 30.0 / config.fps)
            lengths = {name: v[people] for name, v in body["lengths"].items()}
            figures = pose_figures(lengths, angles, cast.yaw[t, people], np.full(len(people), _WALKING))
            layout = np.stack([cast.stature[t, people], cast.x[t, people] + margin, cast.foot[t, people] + margin], 1)
            drawn = _FigurePeople(figures, layout, lut[people], amp[people], body["tex_id"][people], tex,
                                  config.skeleton)
            depth = cast.foot[t, people] + margin + 1e-3 * people  # ties: the later entrant in front
            order = sorted([(float(depth[i]), 0, i) for i in range(len(people))]
                           + [(p[0], 1, j) for j, p in enumerate(props)])
            kp_draw = np.zeros((len(people), k, 2), np.float32)
            self_vis = np.zeros((len(people), k), bool)
            for _, is_prop, j in order:
                if is_prop:
                    _draw_prop(img, owner, tex[j % 3], props[j])
                else:
                    kp_draw[j], self_vis[j] = drawn.draw(j, img, owner)
            window = owner[corner[1]:corner[1] + size, corner[0]:corner[0] + size]
            kp_frame = kp_draw - corner.astype(np.float32)
            labels = _labels(kp_frame, self_vis, drawn.labelled, window, np.arange(len(people)))
            box, area = _visible_boxes(window, len(people))
            seen = (area > 0) & (labels[..., 2] > 0).any(-1)  # a pixel seen and a keypoint in the frame
            keypoints[t, people[seen]] = labels[seen]
            boxes[t, people[seen]], areas[t, people[seen]] = box[seen], area[seen]
            present[t, people[seen]] = True
            true_xy[t, people] = kp_frame
        else:
            for j, prop in enumerate(props):
                _draw_prop(img, owner, tex[j % 3], prop)
        frame = img[corner[1]:corner[1] + size, corner[0]:corner[0] + size]
        finished = _finish_frame(noise_rng, frame, gain, bias, noise_sigma, blur)
        if on_frame is None:
            images[t] = finished
        else:
            on_frame(finished)
    stature = np.where(cast.alive, cast.stature, np.nan).astype(np.float32)
    return SynthVideo(images, keypoints, true_xy, present, boxes, areas, stature, config.fps, config, index)


def _finish_frame(rng: np.random.Generator, img: np.ndarray, gain: float, bias: float, sigma: float,
                  blur: bool) -> np.ndarray:
    """The sequence's fixed contrast, brightness and blur, and fresh sensor noise in every frame."""
    out = cv2.addWeighted(img, gain, img, 0.0, bias)
    noise = (rng.standard_normal(img.shape[:2], dtype=np.float32) * sigma).astype(np.int16)
    out = np.clip(out.astype(np.int16) + noise[..., None], 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (3, 3), 0) if blur else out


class _VideoFile:
    """An mp4 (mp4v) written to a temporary name next to ``path`` and renamed into place on success."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise OSError(errno.EIO, "OpenCV cannot open an mp4 (mp4v) writer there", str(path))

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(np.ascontiguousarray(frame))

    def close(self, keep: bool) -> None:
        self.writer.release()
        if not keep:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise target_error(exc, self.path) from exc


def generate_video(out_dir: str | os.PathLike, *, sequences: int = 1, config: VideoConfig | None = None,
                   progress: bool = False) -> list[Path]:
    """Render ``sequences`` sequences into ``out_dir``: ``<index>.mp4`` and ``<index>.json`` each.

    Args:
        out_dir: output folder (made if missing; files of the same names are replaced).
        sequences: how many sequences (indices 0 .. sequences - 1).
        config: the settings (defaults: ``VideoConfig()``).
        progress: a progress bar on stderr.

    Returns:
        The JSON paths, in index order.

    Raises:
        ValueError: bad settings. OSError: the folder cannot be made or written (naming it).
    """
    config = config or VideoConfig()
    if not 1 <= sequences <= 10_000:
        raise ValueError(f"sequences must be in [1, 10000], got {sequences}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    indices = range(sequences)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth video", unit="seq")
    for index in indices:
        stem = f"{index:06d}"
        file = _VideoFile(out / f"{stem}.mp4", config.fps, (config.imgsz, config.imgsz))
        ok = False
        try:
            video = render_video(config, index, on_frame=file.write)  # frames go to the file, not to memory
            ok = True
        finally:
            file.close(ok)
        doc = video.to_posetrack(f"{stem}.mp4", first_image_id=index * 1_000_000)
        written.append(atomic_write_text(out / f"{stem}.json", json.dumps(doc, separators=(",", ":"))))
    return written
