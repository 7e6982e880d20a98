"""Typed configuration of the tracker and of the One-Euro smoother, every default documented.

Units: pixels for positions, frames for ages, person scores and keypoint confidences in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

ASSOCIATIONS = ("pose", "box")
MOTIONS = ("velocity", "kalman", "static")


#: What a One-Euro filter does with a low-confidence sample.
LOW_CONF = ("coast", "hold")


@dataclass(frozen=True)
class OneEuroConfig:
    """One-Euro filter (Casiez et al., CHI 2012) on each keypoint coordinate of each track.

    The cutoff frequency adapts to the speed: ``fc = min_cutoff + beta * |dx/dt| / scale``, so a
    still keypoint is smoothed hard (little jitter) and a fast one lightly (little lag). In the
    tracker ``scale`` is the person's height (keypoint box), so ``beta`` is per height/second and
    one setting fits near and far people and every resolution. The defaults were tuned on
    SynthCrowd videos (``benchmarks/eval_track_synth.py --tune``, docs/track.md).

    Attributes:
        enabled: smooth at all; the raw keypoints are always kept alongside.
        min_cutoff: cutoff in Hz at zero speed. Lower = smoother at rest, more lag. 1.0 Hz at 30 fps
            weighs a new sample by 0.17 when the keypoint is still.
        beta: cutoff increase per person height/second of keypoint speed (per pixel/second when
            ``one_euro_step`` is called without a scale). 6.0 lifts the cutoff to 5.5 Hz for a
            keypoint moving at 0.75 heights/s (a walking person's body), where an exponential
            filter trails by about 0.9 frames at 30 fps.
        d_cutoff: cutoff in Hz of the speed estimate itself (the paper's default, 1 Hz).
        fps: frames per second, for the time step ``1 / fps``; a video source's own rate is used
            where known.
        conf_threshold: a keypoint whose confidence is below this does not update its filter: an
            occluded, low-confidence guess cannot drag a good estimate.
        low_conf: what such a keypoint's filtered value does: ``"coast"`` moves on at its filtered
            speed (a walker's hidden wrist keeps walking), ``"hold"`` stays put (it falls behind).
    """

    enabled: bool = True
    min_cutoff: float = 1.0
    beta: float = 6.0
    d_cutoff: float = 1.0
    fps: float = 30.0
    conf_threshold: float = 0.3
    low_conf: str = "coast"

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff", "fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OneEuroConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"OneEuroConfig.beta must be >= 0, got {self.beta}")
        if self.low_conf not in LOW_CONF:
            raise ValueError(f"OneEuroConfig.low_conf must be one of {list(LOW_CONF)}, got {self.low_conf!r}")


@dataclass(frozen=True)
class TrackerConfig:
    """Pose (or box) tracker: two-round assignment, birth, survival, motion and smoothing.

    Attributes:
        association: ``"pose"``: similarity is OKS between a detection and the track's predicted
            pose; ``"box"``: IoU of the keypoint-derived boxes (the baseline). Same motion model
            and life cycle either way.
        motion: ``"velocity"``: constant velocity per keypoint (an exponentially averaged
            frame-to-frame displacement); ``"kalman"``: a constant-velocity Kalman filter per
            keypoint; ``"static"``: a track is predicted where it was last seen.
        high_score: detections with a person score at or above this take part in the first round.
        low_score: detections in ``[low_score, high_score)`` take part only in the second round
            (ByteTrack), with tracks that were matched in the previous frame; lower ones are dropped.
        new_track_score: an unmatched first-round detection starts a track only at or above this.
        match_threshold: least similarity (OKS or IoU) for a first-round match.
        low_match_threshold: least similarity for a second-round match; stricter than round 1,
            because a low-score detection is more likely a false positive (ByteTrack's IoU 0.5).
            With OKS, 0.3 keeps more keypoints under heavy keypoint noise but lets more ids
            switch when people are often missed (docs/track.md, Quality).
        min_hits: a new track is confirmed, gets an id and is reported after this many
            consecutive matched frames (its first frame counts). During the first ``min_hits``
            frames of a stream tracks are confirmed at once, so the first frame is not lost.
        max_age: a confirmed track survives this many consecutive frames without a match
            (occlusion), moving with its motion model, before it is deleted.
        kpt_conf: keypoints with confidence at or above this count as seen: they enter OKS, the
            boxes and the motion update.
        velocity_smoothing: weight of the newest displacement in the velocity average (1 = last
            displacement only).
        velocity_decay: a lost track's velocity is multiplied by this per unmatched frame, so a
            long occlusion does not fling the prediction away.
        min_area: floor of the OKS area (pixels^2), so a tiny or collapsed pose still has a scale.
        kalman_process: Kalman only: std of the random acceleration per frame^2, as a fraction of
            the person's height (0.01: 2 px/frame^2 for a 200 px person).
        kalman_measurement: Kalman only: std of a detected keypoint's error, as a fraction of the
            person's height (0.02: 4 px for a 200 px person).
        kalman_initial_speed: Kalman only: prior std of a new track's speed per frame, as a
            fraction of its height.
        smoothing: the One-Euro filter applied to matched tracks.
    """

    association: str = "pose"
    motion: str = "kalman"
    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    match_threshold: float = 0.2
    low_match_threshold: float = 0.5
    min_hits: int = 2
    max_age: int = 30
    kpt_conf: float = 0.3
    velocity_smoothing: float = 0.5
    velocity_decay: float = 0.9
    min_area: float = 32.0
    kalman_process: float = 0.01
    kalman_measurement: float = 0.02
    kalman_initial_speed: float = 0.05
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)

    def __post_init__(self) -> None:
        if self.association not in ASSOCIATIONS:
            raise ValueError(f"TrackerConfig.association must be one of {ASSOCIATIONS}, got {self.association!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"TrackerConfig.motion must be one of {MOTIONS}, got {self.motion!r}")
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(f"TrackerConfig: need 0 <= low_score <= high_score <= 1, got "
                             f"{self.low_score}, {self.high_score}")
        if self.min_hits < 1 or self.max_age < 0:
            raise ValueError(f"TrackerConfig: min_hits >= 1 and max_age >= 0, got {self.min_hits}, {self.max_age}")
        if not 0.0 < self.velocity_smoothing <= 1.0 or not 0.0 <= self.velocity_decay <= 1.0:
            raise ValueError("TrackerConfig: velocity_smoothing in (0, 1] and velocity_decay in [0, 1]")
