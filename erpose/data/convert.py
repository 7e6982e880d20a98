"""Dataset conversion: COCO keypoint JSON <-> ultralytics YOLO-pose, and any source -> COCO GT dict.

COCO -> YOLO-pose writes ``images/<split>/`` (symlinks by default), ``labels/<split>/*.txt`` with
``0 cx cy w h x1 y1 v1 ...`` normalised by the image size, and a ``data.yaml``. Persons without
labelled keypoints are written as a box with all-zero keypoints (ultralytics' own COCO labels do
the same, and the erpose reader reads them back as ignore regions); crowd regions have no YOLO-pose
form and are not written (the count is logged). Coordinates are written with 6 decimals: < 0.01 px at 10 000 px.

YOLO-pose -> COCO writes a COCO keypoint GT file that evaluation can use: ``area`` is
``0.53 * box area`` (the readers' convention, see ``erpose.data.yolo_pose``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from erpose.data.coco import read_coco
from erpose.data.errors import DatasetError
from erpose.data.source import DatasetSource, keypoint_boxes
from erpose.data.yolo_pose import read_yolo_pose
from erpose.files import atomic_write_json, atomic_write_text
from erpose.skeleton import Skeleton

logger = logging.getLogger("erpose.data")

ImageMode = Literal["symlink", "copy", "none"]


def source_to_coco_dict(source: DatasetSource) -> dict:
    """COCO keypoint ground truth for a source (usable by pycocotools / faster-coco-eval).

    Persons become ``iscrowd = 0`` annotations with ``num_keypoints`` = count of ``v > 0``; ignore
    regions become ``iscrowd = 1`` (or, when the reader recorded them as such, non-crowd
    ``num_keypoints = 0``) annotations with zero keypoints. Boxes missing in the source are the tight
    keypoint box. Annotation ids are the source ids where present, else fresh ids above them.
    """
    skeleton = source.skeleton
    k = skeleton.num_keypoints
    root = Path(source.image_dir) if source.image_dir else None
    used = [int(i) for s in source.samples for i in s.annotations.annotation_ids if i >= 0]
    next_id = max(used, default=0) + 1
    images, annotations = [], []
    for sample in source.samples:
        entry = {"id": int(sample.image_id), "file_name": _relative(sample.image_path, root),
                 "width": int(sample.width), "height": int(sample.height)}
        if sample.crowd_index is not None:
            entry["crowdIndex"] = float(sample.crowd_index)
        images.append(entry)
        a = sample.annotations
        boxes = np.where(np.isnan(a.boxes), keypoint_boxes(a.keypoints), a.boxes)
        for p in range(a.num_persons):
            ann_id = int(a.annotation_ids[p])
            if ann_id < 0:
                ann_id, next_id = next_id, next_id + 1
            kp = a.keypoints[p].astype(np.float64)
            annotations.append({
                "id": ann_id, "image_id": int(sample.image_id), "category_id": 1, "iscrowd": 0,
                "keypoints": [_num(v) for v in kp.reshape(-1)],
                "num_keypoints": int((kp[:, 2] > 0).sum()), "area": float(a.areas[p]),
                "bbox": _xywh(boxes[p]),
            })
        crowd = sample.extra.get("ignore_iscrowd", np.ones(len(a.ignore_boxes), bool))
        areas = sample.extra.get("ignore_areas")
        ids = sample.extra.get("ignore_ids", np.full(len(a.ignore_boxes), -1))
        for q, box in enumerate(a.ignore_boxes):
            ann_id = int(ids[q])
            if ann_id < 0:
                ann_id, next_id = next_id, next_id + 1
            box_area = float((box[2] - box[0]) * (box[3] - box[1]))
            annotations.append({
                "id": ann_id, "image_id": int(sample.image_id), "category_id": 1, "iscrowd": int(bool(crowd[q])),
                "keypoints": [0] * (3 * k), "num_keypoints": 0,
                "area": float(areas[q]) if areas is not None else box_area, "bbox": _xywh(box),
            })
    category = {"id": 1, "name": "person", "supercategory": "person",
                "keypoints": list(skeleton.keypoint_names),
                "skeleton": [[a + 1, b + 1] for a, b in skeleton.limbs]}
    return {"info": {"description": f"converted by erpose from {source.name}"},
            "images": images, "annotations": annotations, "categories": [category]}


def yolo_to_coco(data_yaml: str | Path, split: str, out_json: str | Path) -> DatasetSource:
    """Convert one split of a YOLO-pose dataset to a COCO keypoint JSON; returns the source read."""
    source = read_yolo_pose(data_yaml, split)
    atomic_write_json(source_to_coco_dict(source), out_json)
    logger.info("wrote %s (%d images, %d persons)", out_json, source.report.images, source.report.persons)
    return source


def coco_to_yolo(
    annotation_file: str | Path,
    image_dir: str | Path | None,
    out_dir: str | Path,
    split: str = "train",
    images: ImageMode = "symlink",
    skeleton: Skeleton | None = None,
) -> Path:
    """Convert a COCO (or CrowdPose) keypoint JSON to a YOLO-pose dataset split.

    Args:
        annotation_file: COCO keypoint JSON.
        image_dir: its image folder (``None``: inferred as ``read_coco`` does).
        out_dir: dataset root; receives ``images/<split>``, ``labels/<split>`` and ``data.yaml``
            (an existing ``data.yaml`` gets the new split added, so train and val can be converted
            one after the other into the same root).
        split: split name.
        images: ``symlink`` (default, no extra disk), ``copy``, or ``none`` (labels only).
        skeleton: forwarded to ``read_coco`` (default: detected from the JSON).

    Returns:
        Path of the ``data.yaml``.
    """
    source = read_coco(annotation_file, image_dir, skeleton)
    out = Path(out_dir)
    image_out, label_out = out / "images" / split, out / "labels" / split
    label_out.mkdir(parents=True, exist_ok=True)
    image_out.mkdir(parents=True, exist_ok=True)
    dropped = 0
    for sample in source.samples:
        name = Path(sample.extra.get("file_name", Path(sample.image_path).name))
        label = label_out / name.with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        anns = sample.annotations
        crowd = sample.extra.get("ignore_iscrowd", np.ones(len(anns.ignore_boxes), bool))
        text = _label_lines(anns, sample.width, sample.height)
        text += _ignore_lines(anns.ignore_boxes[~crowd], anns.num_keypoints, sample.width, sample.height)
        atomic_write_text(label, text)
        dropped += int(crowd.sum())
        _place_image(Path(sample.image_path), image_out / name, images)
    if dropped:
        logger.info("%s: %d crowd regions have no YOLO-pose form and were not written",
                    annotation_file, dropped)
    return _write_data_yaml(out, split, source)


def _label_lines(anns, width: int, height: int) -> str:
    """``0 cx cy w h x y v ...`` lines, normalised; persons without a box use their keypoint box."""
    if anns.num_persons == 0:
        return ""
    boxes = np.where(np.isnan(anns.boxes), keypoint_boxes(anns.keypoints), anns.boxes).astype(np.float64)
    scale = np.array([width, height], np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / scale
    size = (boxes[:, 2:] - boxes[:, :2]) / scale
    xy = anns.keypoints[..., :2].astype(np.float64) / scale
    v = anns.keypoints[..., 2:3].astype(np.float64)
    kpts = np.concatenate([xy, v], -1).reshape(anns.num_persons, -1)
    rows = np.concatenate([centre, size, kpts], 1)
    return "".join("0 " + " ".join(_fmt(x) for x in row) + "\n" for row in rows)


def _ignore_lines(boxes: np.ndarray, k: int, width: int, height: int) -> str:
    """Persons without labelled keypoints: a box and all-zero keypoints (read back as ignore regions)."""
    boxes = boxes.astype(np.float64)
    scale = np.array([width, height], np.float64)
    rows = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2 / scale, (boxes[:, 2:] - boxes[:, :2]) / scale], 1)
    zeros = " 0" * (3 * k)
    return "".join("0 " + " ".join(_fmt(x) for x in row) + zeros + "\n" for row in rows)


def split_key(split: str) -> str:
    """The data-YAML key of a split folder: ``train2017`` -> ``train``, ``val2017`` -> ``val``.

    Readers (erpose's and ultralytics') look for ``train``/``val``/``test`` keys; COCO names its
    splits after the year, so the key drops what follows the standard name. Other names are kept.
    """
    match = re.match(r"(train|val|test)(?=[^a-z]|$)", split.lower())
    return match.group(1) if match else split


def _write_data_yaml(out: Path, split: str, source: DatasetSource) -> Path:
    path = out / "data.yaml"
    skeleton = source.skeleton
    data = _existing_yaml(path) if path.is_file() else {}
    data.update({
        "path": str(out.resolve()),
        split_key(split): f"images/{split}",
        "kpt_shape": [skeleton.num_keypoints, 3],
        "flip_idx": list(skeleton.flip_idx),
        "names": {0: "person"},
        "kpt_names": {0: list(skeleton.keypoint_names)},
        "kpt_oks_sigmas": [float(s) for s in skeleton.sigmas],
    })
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path


def _existing_yaml(path: Path) -> dict:
    """The data YAML a new split is merged into; raises naming it when it is not a YAML mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot add the split to this file, it is not valid YAML "
                           f"({str(exc).splitlines()[0]})") from None
    if data is not None and not isinstance(data, dict):
        raise DatasetError(f"{path}: cannot add the split to this file, it is not a YAML mapping")
    return data or {}


def _place_image(src: Path, dst: Path, mode: ImageMode) -> None:
    """Link or copy ``src`` to ``dst`` without ever removing a source file.

    Converting inside the dataset's own root makes ``dst`` the source image itself (or a link to
    it): it is left alone. Otherwise the new link or copy is made under a temporary name and
    renamed over ``dst``, so ``dst`` is replaced only once its successor exists.
    """
    if mode == "none":
        return
    if mode not in ("symlink", "copy"):
        raise ValueError(f"images must be 'symlink', 'copy' or 'none', got {mode!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if _same_file(src, dst) and (mode == "symlink" or not dst.is_symlink()):
        return  # the image is already there (with --copy, a link to it still becomes a copy)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        if mode == "symlink":
            tmp.symlink_to(src.resolve())
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _same_file(src: Path, dst: Path) -> bool:
    """Whether ``dst`` is ``src`` (the same path, a hard link, or a symlink resolving to it)."""
    try:
        return os.path.samefile(src, dst)
    except OSError:  # dst missing or a dangling link
        return False


def _relative(path: str, root: Path | None) -> str:
    if root is None:
        return Path(path).name
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # different drive (Windows)
        return path


def _xywh(box: np.ndarray) -> list[float]:
    if not np.isfinite(box).all():
        return [0.0, 0.0, 0.0, 0.0]
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 3)


def _fmt(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"
