"""``--paste-from``: real people cut out along their segmentation polygons, composed into new scenes.

People come with their COCO keypoints; they are scaled, flipped (keypoints permuted with
``flip_idx``) and occlude each other by the same depth rules as drawn figures. Backgrounds are
crops of the dataset's person-free images, or procedural ones when it has none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from erpose.data.synth import render
from erpose.skeleton import COCO17

logger = logging.getLogger(__name__)

MIN_PERSON_HEIGHT = 24.0  # px in the source image: smaller cut-outs are too blurry to reuse
MIN_LABELLED = 5
MAX_SCALE = 3.0  # a cut-out is never enlarged more than this


@dataclass(frozen=True)
class _Person:
    image: str
    polygons: tuple[np.ndarray, ...]  # each (M, 2) float, source pixels (continuous coordinates)
    keypoints: np.ndarray  # (17, 3)
    box: tuple[int, int, int, int]  # integer crop x0, y0, x1, y1 around the polygons


class PasteBank:
    """People and person-free backgrounds from a COCO keypoint dataset with polygon segmentations.

    Images are decoded lazily and cached per process, so a worker reads each file at most once.
    """

    def __init__(self, people: list[_Person], backgrounds: list[str]):
        self.people = people
        self.backgrounds = backgrounds
        self._images: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, json_path: str | Path, image_dir: str | Path) -> PasteBank:
        """Read a COCO person-keypoints JSON and index its usable people.

        Raises:
            FileNotFoundError: the JSON or the image folder is missing.
            ValueError: the JSON has no usable person with a polygon segmentation.
        """
        json_path, image_dir = Path(json_path), Path(image_dir)
        if not json_path.is_file():
            raise FileNotFoundError(f"--paste-from: annotation file {json_path} not found")
        if not image_dir.is_dir():
            raise FileNotFoundError(f"--paste-from: image folder {image_dir} not found")
        try:
            doc = json.loads(json_path.read_text())
            images = {int(im["id"]): im for im in doc["images"]}
            annotations = doc.get("annotations", [])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"--paste-from: {json_path} is not a COCO JSON ({exc})") from None
        with_person = {int(a["image_id"]) for a in annotations}
        people = []
        for ann in sorted(annotations, key=lambda a: int(a["id"])):
            person = _person(ann, images.get(int(ann["image_id"])), image_dir)
            if person is not None:
                people.append(person)
        if not people:
            raise ValueError(
                f"--paste-from: {json_path} has no person with a polygon segmentation, >= {MIN_LABELLED} "
                f"labelled keypoints and >= {MIN_PERSON_HEIGHT:.0f} px height"
            )
        backgrounds = sorted(str(image_dir / images[i]["file_name"]) for i in images if i not in with_person)
        backgrounds = [b for b in backgrounds if Path(b).is_file()]
        if not backgrounds:
            logger.warning("--paste-from: %s has no person-free image; using procedural backgrounds", json_path)
        return cls(people, backgrounds)

    def _read(self, path: str) -> np.ndarray:
        if path not in self._images:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"--paste-from: cannot read image {path}")
            self._images[path] = image
        return self._images[path]

    def background(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A random square crop of a person-free image (or a procedural one), (size, size, 3) uint8."""
        if not self.backgrounds:
            return render.background(rng, size, size)
        image = self._read(self.backgrounds[int(rng.integers(len(self.backgrounds)))])
        h, w = image.shape[:2]
        side = int(rng.uniform(0.5, 1.0) * min(h, w))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
        return crop[:, ::-1].copy() if rng.random() < 0.5 else crop

    def sample_people(self, rng: np.random.Generator, layout: np.ndarray) -> _PastedPeople:
        """Choose a cut-out and a flip for each row (stature, centre x, foot y) of the layout."""
        return _PastedPeople(self, rng, layout)


def _person(ann: dict, image: dict | None, image_dir: Path) -> _Person | None:
    """A usable person (polygons, enough keypoints, big enough, image present) or None."""
    seg = ann.get("segmentation")
    if image is None or ann.get("iscrowd", 0) or not isinstance(seg, list) or not seg:
        return None
    kp = np.asarray(ann.get("keypoints", []), np.float64).reshape(-1, 3)
    if kp.shape[0] != COCO17.num_keypoints or (kp[:, 2] > 0).sum() < MIN_LABELLED:
        return None
    polygons = tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in seg if len(p) >= 6)
    if not polygons:
        return None
    pts = np.concatenate(polygons + (kp[kp[:, 2] > 0, :2],))
    x0, y0 = np.floor(pts.min(0) - 2).astype(int)
    x1, y1 = np.ceil(pts.max(0) + 2).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), int(image["width"])), min(int(y1), int(image["height"]))
    if y1 - y0 < MIN_PERSON_HEIGHT or x1 <= x0:
        return None
    path = image_dir / image["file_name"]
    if not path.is_file():
        return None
    return _Person(str(path), polygons, kp, (x0, y0, x1, y1))


class _PastedPeople:
    """The pasted people of one image; ``draw`` paints one and returns its keypoints."""

    def __init__(self, bank: PasteBank, rng: np.random.Generator, layout: np.ndarray):
        n = layout.shape[0]
        self.bank = bank
        self.layout = layout
        self.choice = rng.integers(0, len(bank.people), n)
        self.flip = rng.random(n) < 0.5
        kp = np.stack([bank.people[c].keypoints for c in self.choice]) if n else np.zeros((0, 17, 3))
        kp = np.where(self.flip[:, None, None], kp[:, list(COCO17.flip_idx)], kp)
        self.keypoints = kp
        self.labelled = kp[..., 2] > 0

    def draw(self, i: int, img: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paint person i; returns keypoints in drawing coordinates (K, 2) and self-visibility (K,)."""
        from erpose.data.synth.scene import _composite

        person = self.bank.people[int(self.choice[i])]
        stature, cx, foot_y = self.layout[i]
        x0, y0, x1, y1 = person.box
        scale = min(stature / (y1 - y0), MAX_SCALE)
        dw, dh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        sx, sy = dw / (x1 - x0), dh / (y1 - y0)
        crop = self.bank._read(person.image)[y0:y1, x0:x1]
        crop = cv2.resize(crop, (dw, dh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

        def to_crop(points: np.ndarray) -> np.ndarray:
            # Source pixel indices (integer = centre) -> crop coordinates with 0 at the left edge.
            out = (points + 0.5 - [x0, y0]) * [sx, sy]
            return np.stack([dw - out[:, 0], out[:, 1]], 1) if self.flip[i] else out

        if self.flip[i]:
            crop = crop[:, ::-1]
        mask = np.zeros((dh, dw), np.uint8)
        polys = [render._fixed(to_crop(p) - 0.5) for p in person.polygons]
        cv2.fillPoly(mask, polys, 1, cv2.LINE_8, render.SHIFT)
        kp = self.keypoints[i]
        # The source flip_idx permutation was applied in __init__; map the coordinates the same way.
        kp_crop = to_crop(self.bank.people[int(self.choice[i])].keypoints[:, :2])
        if self.flip[i]:
            kp_crop = kp_crop[list(COCO17.flip_idx)]
        # Polygons are coarse: a visible keypoint may sit just outside. Its own pixels join the mask,
        # so that a keypoint labelled visible is on the person's body.
        radius = max(1.5, 0.012 * dh)
        for x, y in kp_crop[kp[:, 2] == 2] - 0.5:
            q = render._fixed([x, y])
            cv2.circle(mask, (int(q[0]), int(q[1])), int(radius * 8), 1, -1, cv2.LINE_8, render.SHIFT)
        ox, oy = round(cx - dw / 2), round(foot_y - dh)
        kp_draw = (kp_crop + [ox, oy] - 0.5).astype(np.float32)
        size = img.shape[0]
        cx0, cy0, cx1, cy1 = max(ox, 0), max(oy, 0), min(ox + dw, size), min(oy + dh, size)
        if cx1 > cx0 and cy1 > cy0:
            m = mask[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox].astype(bool)
            _composite(img, owner, cx0, cy0, m, crop[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox][m], i)
        return kp_draw, kp[:, 2] == 2
