"""Keypoint schemas: names, OKS sigmas, left/right flip permutation and drawing limbs.

No torch here: the torch-free runtime imports this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Sigma used for every keypoint of a custom skeleton that brings none. It is the mean of the
#: COCO-17 sigmas rounded, so OKS on an unknown skeleton is about as strict as COCO on average.
DEFAULT_CUSTOM_SIGMA = 0.05

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# Official COCO keypoint sigmas (pycocotools cocoeval.py, Params.setKpParams).
COCO17_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
COCO17_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
COCO17_LIMBS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

CROWDPOSE14_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head", "neck",
)
# Official CrowdPose sigmas (crowdposetools cocoeval.py).
CROWDPOSE14_SIGMAS = (
    0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
)
CROWDPOSE14_FLIP = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
CROWDPOSE14_LIMBS = (
    (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
    (6, 8), (8, 10), (7, 9), (9, 11),
)


#: A person's OKS area as a fraction of its box area, where a dataset gives no segmentation area
#: (crowdposetools, xtcocotools, METHOD.md and ultralytics' pose loss all use 0.53). The one
#: definition: readers, the evaluator, OKS-NMS and the torch-free runtime import it from here.
BOX_AREA_FACTOR = 0.53


class SkeletonError(ValueError):
    """A keypoint schema that cannot be used (bad flip_idx, wrong lengths...)."""


@dataclass(frozen=True)
class Skeleton:
    """A keypoint schema.

    Attributes:
        name: short identifier (``"coco17"``, ``"crowdpose14"`` or a user name).
        keypoint_names: K names, in annotation order.
        sigmas: K per-keypoint OKS sigmas (COCO convention: the constant is ``2 * sigma``).
        flip_idx: K indices; keypoint ``k`` of a horizontally flipped person is ``flip_idx[k]``
            of the original. Must be a permutation of ``range(K)``.
        limbs: pairs of keypoint indices joined when drawing.
    """

    name: str
    keypoint_names: tuple[str, ...]
    sigmas: tuple[float, ...]
    flip_idx: tuple[int, ...]
    limbs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        if k == 0:
            raise SkeletonError(f"skeleton {self.name!r}: no keypoints")
        if len(self.sigmas) != k:
            raise SkeletonError(f"skeleton {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if any(not (s > 0) for s in self.sigmas):
            raise SkeletonError(f"skeleton {self.name!r}: sigmas must be positive, got {self.sigmas}")
        if len(self.flip_idx) != k or sorted(self.flip_idx) != list(range(k)):
            raise SkeletonError(
                f"skeleton {self.name!r}: flip_idx {list(self.flip_idx)} is not a permutation of 0..{k - 1}"
            )
        if any(self.flip_idx[self.flip_idx[i]] != i for i in range(k)):
            raise SkeletonError(f"skeleton {self.name!r}: flip_idx {list(self.flip_idx)} is not its own inverse")
        for a, b in self.limbs:
            if not (0 <= a < k and 0 <= b < k):
                raise SkeletonError(f"skeleton {self.name!r}: limb ({a}, {b}) outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float32)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "keypoint_names": list(self.keypoint_names),
            "sigmas": [float(s) for s in self.sigmas],
            "flip_idx": [int(i) for i in self.flip_idx],
            "limbs": [[int(a), int(b)] for a, b in self.limbs],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Skeleton:
        return cls(
            name=str(data["name"]),
            keypoint_names=tuple(str(n) for n in data["keypoint_names"]),
            sigmas=tuple(float(s) for s in data["sigmas"]),
            flip_idx=tuple(int(i) for i in data["flip_idx"]),
            limbs=tuple((int(a), int(b)) for a, b in data.get("limbs", ())),
        )

    @classmethod
    def custom(
        cls,
        num_keypoints: int,
        *,
        name: str = "custom",
        keypoint_names: Sequence[str] | None = None,
        sigmas: Sequence[float] | None = None,
        flip_idx: Sequence[int] | None = None,
        limbs: Sequence[Sequence[int]] = (),
    ) -> Skeleton:
        """Build a skeleton from a data YAML's fields; fills what is missing.

        A 17-keypoint skeleton without sigmas gets the COCO sigmas (as ultralytics does);
        any other K without sigmas gets ``DEFAULT_CUSTOM_SIGMA`` for every keypoint and a warning.
        Without ``flip_idx`` the identity is used (flipping keeps keypoint order).
        """
        k = int(num_keypoints)
        if k <= 0:
            raise SkeletonError(f"number of keypoints must be positive, got {num_keypoints}")
        if sigmas is None:
            if k == 17:
                sigmas = COCO17_SIGMAS
            else:
                warnings.warn(
                    f"skeleton {name!r}: {k} keypoints and no kpt_oks_sigmas; using a uniform sigma "
                    f"of {DEFAULT_CUSTOM_SIGMA} for every keypoint",
                    stacklevel=2,
                )
                sigmas = (DEFAULT_CUSTOM_SIGMA,) * k
        if keypoint_names is None:
            keypoint_names = COCO17_NAMES if k == 17 else tuple(f"kpt{i}" for i in range(k))
        if not limbs and k == 17:
            limbs = COCO17_LIMBS
        return cls(
            name=name,
            keypoint_names=tuple(keypoint_names),
            sigmas=tuple(float(s) for s in sigmas),
            flip_idx=tuple(range(k)) if flip_idx is None else tuple(int(i) for i in flip_idx),
            limbs=tuple((int(a), int(b)) for a, b in limbs),
        )


COCO17 = Skeleton("coco17", COCO17_NAMES, COCO17_SIGMAS, COCO17_FLIP, COCO17_LIMBS)
CROWDPOSE14 = Skeleton("crowdpose14", CROWDPOSE14_NAMES, CROWDPOSE14_SIGMAS, CROWDPOSE14_FLIP, CROWDPOSE14_LIMBS)

BUILTIN_SKELETONS: dict[str, Skeleton] = {"coco17": COCO17, "crowdpose14": CROWDPOSE14}


def get_skeleton(name: str) -> Skeleton:
    """Return a built-in skeleton by name; raises naming the known ones."""
    try:
        return BUILTIN_SKELETONS[name]
    except KeyError:
        raise SkeletonError(f"unknown skeleton {name!r}; built in: {sorted(BUILTIN_SKELETONS)}") from None
