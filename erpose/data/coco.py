"""COCO keypoint JSON reader (``person_keypoints_*.json``), also used for CrowdPose and SynthCrowd.

Conventions (shared by every erpose reader):
- keypoint coordinates are COCO pixel indices (integer = pixel centre); unlabelled keypoints
  (``v == 0``) get ``x = y = 0``;
- an annotation is a *person* when ``iscrowd == 0`` and its ``num_keypoints`` field is > 0 (the field,
  not a count of ``v > 0``: that is the rule pycocotools/crowdposetools use to ignore a GT); every
  other annotation (crowd regions, persons without labelled keypoints) becomes an *ignore region*;
- ``area`` is the annotation's ``area``; CrowdPose has none, so ``0.53 * bbox_w * bbox_h`` is used,
  the OKS scale crowdposetools uses.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np

from erpose.data.errors import DatasetError, LoadReport
from erpose.data.sample import PoseAnnotations, Sample
from erpose.data.source import DatasetSource, finish_source, keypoint_boxes
from erpose.skeleton import BOX_AREA_FACTOR, COCO17, COCO17_NAMES, CROWDPOSE14, CROWDPOSE14_NAMES, Skeleton

logger = logging.getLogger("erpose.data")


def read_coco(
    annotation_file: str | Path, image_dir: str | Path | None = None, skeleton: Skeleton | None = None
) -> DatasetSource:
    """Read a COCO-format keypoint annotation file.

    Args:
        annotation_file: COCO keypoint JSON (``images``, ``annotations``, ``categories``).
        image_dir: folder the ``file_name`` values are relative to; default: inferred from the COCO
            layout (``annotations/person_keypoints_val2017.json`` -> ``../val2017`` or
            ``../images/val2017``), else the JSON's own folder.
        skeleton: keypoint schema; default: COCO-17 or CrowdPose-14 when the category's keypoint
            names match them, else a custom skeleton built from the names.

    Returns:
        The source; bad annotations and missing images are reported and their image skipped.

    Raises:
        FileNotFoundError: missing annotation file or image folder.
        DatasetError: unreadable JSON, missing top-level keys, or no usable sample.
    """
    path = Path(annotation_file)
    data = _load_json(path)
    category, names = _person_category(data, path)
    if skeleton is None:
        skeleton = _skeleton_for(names, data, path)
    k = skeleton.num_keypoints
    if names is not None and len(names) != k:
        raise DatasetError(f"{path}: category has {len(names)} keypoints, skeleton {skeleton.name!r} has {k}")
    root = Path(image_dir) if image_dir is not None else _infer_image_dir(path, data["images"])
    report = LoadReport()

    per_image: dict[int, list[dict]] = {}
    images: dict[int, dict] = {}
    bad_images: set[int] = set()
    for index, image in enumerate(data["images"]):
        image_id = image.get("id") if isinstance(image, dict) else None
        if not isinstance(image_id, int) or image_id in images:
            report.add(f"{path}: images[{index}] (id {image_id!r})", "bad image entry", "missing or duplicate image id")
            continue
        images[image_id] = image
        per_image[image_id] = []
    seen_ids: dict[object, int] = {}
    for index, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{index}] (id {ann.get('id') if isinstance(ann, dict) else None!r})"
        if not isinstance(ann, dict):
            report.add(where, "bad annotation", "not a JSON object")
            continue
        if category is not None and ann.get("category_id", category) != category:
            continue
        image_id = ann.get("image_id")
        if not isinstance(image_id, int) or image_id not in images:
            report.add(where, "unknown image", f"image_id {image_id!r} not in images")
            continue
        ann_id = ann.get("id")
        if ann_id is not None and isinstance(ann_id, (int, str)):
            if ann_id in seen_ids:
                # Evaluation matches by annotation id: two with one id would score as one.
                report.add(where, "duplicate annotation id",
                           f"id {ann_id!r} already used by annotations[{seen_ids[ann_id]}] (image skipped)")
                bad_images.add(image_id)
                continue
            seen_ids[ann_id] = index
        per_image[image_id].append(ann)

    samples: list[Sample] = []
    for image_id, image in images.items():
        where = f"{path}: image {image_id}"
        if image_id in bad_images:
            continue
        try:
            width, height = _positive_size(image)
            anns, extra = _parse_annotations(per_image[image_id], k, width, height, where, report)
        except ValueError as exc:
            report.add(where, "bad annotation", str(exc))
            bad_images.add(image_id)
            continue
        file_path = root / str(image.get("file_name", ""))
        if not file_path.is_file():
            report.add(str(file_path), "missing image", f"image file not found (image id {image_id})")
            bad_images.add(image_id)
            continue
        crowd = image.get("crowdIndex")
        extra["file_name"] = str(image["file_name"])
        samples.append(
            Sample(str(file_path), int(image_id), width, height, anns,
                   crowd_index=None if crowd is None else float(crowd), extra=extra)
        )
        report.persons += anns.num_persons
        report.ignore_regions += len(anns.ignore_boxes)
    report.skipped = len(bad_images)
    source = DatasetSource(samples, skeleton, report, name=str(path), annotation_file=str(path), image_dir=str(root))
    return finish_source(source, path)


def read_crowdpose(annotation_file: str | Path, image_dir: str | Path | None = None) -> DatasetSource:
    """Read a CrowdPose JSON (COCO format, 14 keypoints, image-level ``crowdIndex``).

    Same as ``read_coco`` with the CrowdPose-14 skeleton; the OKS area is ``0.53 * bbox area``
    because CrowdPose annotations carry no ``area``.
    """
    return read_coco(annotation_file, image_dir, skeleton=CROWDPOSE14)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing key {key!r} (a list)")
    return data


def _person_category(data: dict, path: Path) -> tuple[int | None, list[str] | None]:
    """(category id, keypoint names) of the keypoint category, preferring one named 'person'."""
    cats = [c for c in data.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        return None, None
    cat = next((c for c in cats if c.get("name") == "person"), cats[0])
    return cat.get("id"), [str(n) for n in cat["keypoints"]]


def _skeleton_for(names: list[str] | None, data: dict, path: Path) -> Skeleton:
    if names is None:
        # The most common length, so that one malformed annotation is the one reported.
        lengths = Counter(len(a["keypoints"]) for a in data["annotations"]
                          if isinstance(a, dict) and isinstance(a.get("keypoints"), list) and a["keypoints"])
        k = lengths.most_common(1)[0][0] // 3 if lengths else 17
        if k == 17:
            return COCO17
        if k == 14 and any("crowdIndex" in im for im in data["images"]):
            return CROWDPOSE14
        return Skeleton.custom(k, name=path.stem)
    if tuple(names) == COCO17_NAMES:
        return COCO17
    if tuple(names) == CROWDPOSE14_NAMES:
        return CROWDPOSE14
    limbs = [(a - 1, b - 1) for a, b in _category_limbs(data) if 1 <= a <= len(names) and 1 <= b <= len(names)]
    logger.info("%s: custom skeleton, flip_idx derived from left/right in the keypoint names", path)
    return Skeleton.custom(len(names), name=path.stem, keypoint_names=names,
                           flip_idx=flip_idx_from_names(names), limbs=limbs)


def _category_limbs(data: dict) -> list[tuple[int, int]]:
    cats = [c for c in data.get("categories", []) if isinstance(c, dict) and c.get("keypoints")]
    return [tuple(p) for p in cats[0].get("skeleton", []) if len(p) == 2] if cats else []


def flip_idx_from_names(names: list[str]) -> list[int]:
    """Left/right permutation from keypoint names (``left_eye`` <-> ``right_eye``; others map to themselves)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for name in names:
        low = name.lower()
        twin = low.replace("left", "\0").replace("right", "left").replace("\0", "right")
        match = next((index[n] for n in names if n.lower() == twin), index[name])
        out.append(match)
    return out


def _infer_image_dir(path: Path, images: list[dict]) -> Path:
    """COCO layout: annotations/person_keypoints_val2017.json -> ../val2017 or ../images/val2017."""
    stem = path.stem.split("_")[-1]
    parent = path.parent
    candidates = [parent.parent / stem, parent.parent / "images" / stem, parent, parent.parent / "images",
                  parent.parent]
    probe = next((str(im["file_name"]) for im in images if isinstance(im, dict) and im.get("file_name")), None)
    if probe is None:
        return candidates[0] if candidates[0].is_dir() else parent
    for folder in candidates:
        if (folder / probe).is_file():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"{path}: cannot find the image folder (looked for {probe} in {tried}); pass image_dir")


def _positive_size(image: dict) -> tuple[int, int]:
    width, height = image.get("width"), image.get("height")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (width, height)):
        raise ValueError(f"bad image size width={width!r} height={height!r}")
    return int(width), int(height)


def _parse_annotations(
    anns: list[dict], k: int, width: int, height: int, where: str, report: LoadReport
) -> tuple[PoseAnnotations, dict]:
    """Split one image's annotations into persons and ignore regions; raises ValueError on bad values."""
    kpts = np.zeros((len(anns), k, 3), np.float64)
    boxes = np.full((len(anns), 4), np.nan, np.float64)
    areas = np.full(len(anns), np.nan, np.float64)
    ids = np.full(len(anns), -1, np.int64)
    person = np.zeros(len(anns), bool)
    crowd = np.zeros(len(anns), bool)
    for i, ann in enumerate(anns):
        kp = ann.get("keypoints", [0] * (3 * k)) or [0] * (3 * k)  # absent or [] (crowd regions): none labelled
        if ann.get("keypoints", ()) is None or not isinstance(kp, list):
            raise ValueError(f"annotation {ann.get('id')}: 'keypoints' is {json.dumps(ann.get('keypoints'))[:40]}, "
                             "expected a list of numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in kp):
            raise ValueError(f"annotation {ann.get('id')}: non-numeric keypoints")
        kp = np.asarray(kp, np.float64)
        if kp.shape != (3 * k,):
            raise ValueError(f"annotation {ann.get('id')}: {kp.size} keypoint values, expected {3 * k}")
        if not np.isfinite(kp).all():
            raise ValueError(f"annotation {ann.get('id')}: NaN or infinite keypoint values")
        visibility = kp[2::3]
        if not np.isin(visibility, (0, 1, 2)).all():
            bad = sorted({float(v) for v in visibility[~np.isin(visibility, (0, 1, 2))]})
            raise ValueError(f"annotation {ann.get('id')}: visibility values {bad} outside {{0, 1, 2}}")
        kpts[i] = kp.reshape(k, 3)
        if "bbox" in ann:
            try:
                box = np.asarray(ann["bbox"], np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"annotation {ann.get('id')}: non-numeric bbox") from None
            if box.shape != (4,) or not np.isfinite(box).all() or (box[2:] < 0).any():
                raise ValueError(f"annotation {ann.get('id')}: bad bbox {ann['bbox']} (NaN or negative size)")
            boxes[i] = [box[0], box[1], box[0] + box[2], box[1] + box[3]]
        if ann.get("area") is not None:
            area = ann["area"]
            if not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
                raise ValueError(f"annotation {ann.get('id')}: bad area {area!r}")
            areas[i] = area
        ids[i] = int(ann.get("id", -1))
        crowd[i] = bool(ann.get("iscrowd", 0))
        num = ann.get("num_keypoints")
        person[i] = not crowd[i] and (int(num) if num is not None else int((kpts[i, :, 2] > 0).sum())) > 0
    if not np.isfinite(kpts).all():
        raise ValueError("NaN or infinite keypoint values")
    kpts = _drop_outside(kpts, person, width, height, where, report)
    person &= (kpts[..., 2] > 0).any(axis=1)
    # No area: crowdposetools' OKS scale 0.53 * box area; without a box, the tight keypoint box.
    fallback = np.where(np.isfinite(boxes).all(1), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
                        _box_areas(keypoint_boxes(kpts)))
    areas = np.where(np.isnan(areas), BOX_AREA_FACTOR * np.nan_to_num(fallback), areas)

    ignore = ~person
    ignore_boxes = np.where(np.isfinite(boxes[ignore]), boxes[ignore], keypoint_boxes(kpts[ignore]))
    has_box = np.isfinite(ignore_boxes).all(1)
    annotations = PoseAnnotations(
        keypoints=kpts[person].astype(np.float32),
        areas=areas[person].astype(np.float32),
        boxes=boxes[person].astype(np.float32),
        annotation_ids=ids[person],
        ignore_boxes=ignore_boxes[has_box].astype(np.float32).reshape(-1, 4),
    )
    extra = {"ignore_iscrowd": crowd[ignore][has_box], "ignore_areas": areas[ignore][has_box].astype(np.float32),
             "ignore_ids": ids[ignore][has_box]}
    return annotations, extra


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.nan_to_num((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))


def _drop_outside(kpts: np.ndarray, person: np.ndarray, width: int, height: int, where: str,
                  report: LoadReport) -> np.ndarray:
    """Labelled keypoints outside the image become unlabelled (reported); unlabelled get x = y = 0."""
    x, y, v = kpts[..., 0], kpts[..., 1], kpts[..., 2]
    # Pixel-index convention: the image spans [-0.5, size - 0.5]; allow that half pixel.
    outside = (v > 0) & ((x < -0.5) | (y < -0.5) | (x > width - 0.5) | (y > height - 0.5))
    if outside[person].any():
        report.add(where, "keypoint outside image",
                   f"{int(outside[person].sum())} keypoint(s) outside the {width}x{height} image marked unlabelled",
                   skipped=False)
    unlabelled = (v <= 0) | outside
    kpts = kpts.copy()
    kpts[unlabelled] = 0.0
    return kpts
