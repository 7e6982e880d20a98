"""Ultralytics YOLO-pose reader: a data YAML plus ``images/`` and ``labels/*.txt``.

Label lines, values normalised to [0, 1] by the image width/height:
``cls cx cy w h x1 y1 v1 ... xK yK vK`` (with a box), ``cls x1 y1 v1 ...`` (without a box), and the
same with 2-value keypoints ``x y`` when ``kpt_shape: [K, 2]``. With 2-value keypoints a point at
exactly (0, 0) is unlabelled and every other point visible (``v = 2``).

Area (the OKS scale): ``0.53 * box area`` from the label's box, else ``0.53 *`` the area of the
tight box around the labelled keypoints. YOLO labels carry no segmentation area; 0.53 is the ratio
crowdposetools and ultralytics' pose loss use between a person's area and its box area.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from erpose.data.errors import DatasetError, LoadReport
from erpose.data.sample import PoseAnnotations, Sample
from erpose.data.source import IMAGE_SUFFIXES, DatasetSource, finish_source, image_size, keypoint_boxes
from erpose.skeleton import BOX_AREA_FACTOR, COCO17, Skeleton, SkeletonError

#: Tolerance (normalised units) before a keypoint counts as outside the image.
OUTSIDE_EPS = 1e-3


def read_data_yaml(data_yaml: str | Path) -> dict:
    """Load and check an ultralytics-style data YAML; ``path`` is resolved to an absolute root.

    Raises:
        FileNotFoundError: the YAML is missing.
        DatasetError: invalid YAML, a missing required key (named), or a bad ``kpt_shape``.
    """
    path = Path(data_yaml)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: data YAML not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text file (not UTF-8), so not a data YAML") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with keys path/train/val/kpt_shape")
    if "kpt_shape" not in data:
        raise DatasetError(f"{path}: missing key 'kpt_shape' (e.g. kpt_shape: [17, 3])")
    shape = data["kpt_shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
            and shape[0] > 0 and shape[1] in (2, 3)):
        raise DatasetError(f"{path}: kpt_shape must be [K, 2] or [K, 3], got {shape!r}")
    root = Path(str(data.get("path", "")))
    if not root.is_absolute():
        root = (path.parent / root) if (path.parent / root).exists() or not root.exists() else root.resolve()
    data["path"] = str(root)
    return data

#: A word of a skeleton error -> the data-YAML key it is about (for the line number).
SKELETON_KEYS = {"flip_idx": "flip_idx", "sigmas": "kpt_oks_sigmas", "name": "kpt_names", "limb": "skeleton"}


def skeleton_from_yaml(data: dict, name: str = "custom", file: str | Path | None = None) -> Skeleton:
    """Skeleton from ``kpt_shape``, ``flip_idx``, ``kpt_names`` and ``kpt_oks_sigmas``.

    Raises:
        DatasetError: these do not fit K, naming ``file`` and the line of the key (``SkeletonError``
            when no ``file`` is given).
    """
    k = int(data["kpt_shape"][0])
    names = data.get("kpt_names")
    if isinstance(names, dict):  # ultralytics keys kpt_names by class: {0: [...]}
        names = next(iter(names.values()), None)
    flip = data.get("flip_idx")
    if k == 17 and flip is None and names is None and data.get("kpt_oks_sigmas") is None:
        return COCO17
    try:
        return Skeleton.custom(k, name=name, keypoint_names=names, sigmas=data.get("kpt_oks_sigmas"),
                               flip_idx=flip, limbs=data.get("skeleton", ()) or ())
    except (SkeletonError, TypeError, ValueError) as exc:
        if file is None:
            raise
        message = str(exc).removeprefix(f"skeleton {name!r}: ")
        key = next((key for word, key in SKELETON_KEYS.items() if word in message and key in data), None)
        line = _key_line(Path(file), key) if key else None
        raise DatasetError(f"{file}{f':{line}' if line else ''}: {message}") from None


def _key_line(path: Path, key: str) -> int | None:
    """1-based line of a top-level ``key`` in a YAML file (None when it cannot be told)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((k.start_mark.line + 1 for k, _ in node.value if getattr(k, "value", None) == key), None)


def read_yolo_pose(data_yaml: str | Path, split: str = "train") -> DatasetSource:
    """Read one split of a YOLO-pose dataset.

    Args:
        data_yaml: data YAML (``path``, ``train``/``val``/``test``, ``kpt_shape``, ``flip_idx``, ``names``,
            optional ``kpt_names``, ``kpt_oks_sigmas``). A split is a folder of images, a ``.txt`` list of
            image paths, or a list of those, relative to ``path``.
        split: which key to read.

    Returns:
        The source, image ids = the numeric file stems when all are unique integers (as after a
        COCO -> YOLO conversion), else 1-based positions in sorted path order.

    Raises:
        DatasetError: missing key ``split``, or no usable sample (naming the path).
    """
    yaml_path = Path(data_yaml)
    data = read_data_yaml(yaml_path)
    if data.get(split) in (None, ""):
        raise DatasetError(f"{yaml_path}: missing key {split!r} (the {split} images)")
    skeleton = skeleton_from_yaml(data, name=yaml_path.stem, file=yaml_path)
    root = Path(data["path"])
    report = LoadReport()
    image_paths = _list_images(data[split], root, yaml_path, report)
    _check_label_folders(image_paths, yaml_path, split)
    image_ids = _image_ids(image_paths)
    k, dims = data["kpt_shape"]
    samples: list[Sample] = []
    next_ann_id = 1
    for image_path, image_id in zip(image_paths, image_ids):
        try:
            width, height = image_size(image_path)
        except OSError as exc:
            report.add(str(image_path), "unreadable image", str(exc).split(": ", 1)[-1])
            report.skipped += 1
            continue
        label_path = label_path_for(image_path)
        anns = parse_label_file(label_path, k, dims, width, height, report)
        if anns is None:
            report.skipped += 1
            continue
        anns.annotation_ids = np.arange(next_ann_id, next_ann_id + anns.num_persons, dtype=np.int64)
        next_ann_id += anns.num_persons
        samples.append(Sample(str(image_path), image_id, width, height, anns))
        report.persons += anns.num_persons
        report.ignore_regions += len(anns.ignore_boxes)
    image_dir = os.path.commonpath([str(p.parent) for p in image_paths]) if image_paths else str(root)
    source = DatasetSource(samples, skeleton, report, name=f"{yaml_path}:{split}", image_dir=image_dir)
    return finish_source(source, yaml_path)


def _check_label_folders(image_paths: list[Path], yaml_path: Path, split: str) -> None:
    """Raise when no labels folder exists for the split: every image would silently be a background."""
    folders = {label_path_for(p).parent for p in image_paths}
    if folders and not any(folder.is_dir() for folder in folders):
        shown = min(folders)
        raise DatasetError(
            f"{yaml_path}: split {split!r}: labels folder {shown} not found (each image needs a label file "
            f"such as {label_path_for(image_paths[0])}; an images/ folder's labels are in the labels/ folder "
            "beside it)")


def label_path_for(image_path: Path) -> Path:
    """``.../images/x/a.jpg`` -> ``.../labels/x/a.txt`` (the last ``images`` folder is swapped)."""
    parts = list(image_path.parts)
    idx = max((i for i, p in enumerate(parts[:-1]) if p == "images"), default=None)
    if idx is not None:
        parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def parse_label_file(path: Path, k: int, dims: int, width: int, height: int,
                     report: LoadReport) -> PoseAnnotations | None:
    """Parse one label file into pixel-space annotations; ``None`` (reported) when a line is bad.

    A missing label file is an image without persons (ultralytics' convention for backgrounds).
    """
    if not path.is_file():
        return PoseAnnotations.empty(k)
    rows, has_box = [], []
    n_with, n_without = 5 + k * dims, 1 + k * dims
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{line_no}"
        if len(tokens) not in (n_with, n_without):
            report.add(where, "wrong value count",
                       f"{len(tokens)} values, expected {n_with} (with box) or {n_without} (without) for "
                       f"kpt_shape [{k}, {dims}]")
            return None
        try:
            values = np.array(tokens, np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            report.add(where, "non-numeric value", f"non-numeric value {bad!r}")
            return None
        if not np.isfinite(values).all():
            report.add(where, "NaN value", "NaN or infinite value")
            return None
        if values[0] != 0:
            report.add(where, "bad class id", f"class id {tokens[0]}, expected 0 (person; pose labels are single-class)")
            return None
        if dims == 3:
            visibility = values[-k * dims:][2::3]
            outside = visibility[~np.isin(visibility, (0.0, 1.0, 2.0))]
            if outside.size:
                report.add(where, "bad visibility", f"visibility {_fmt_values(outside)} outside {{0, 1, 2}}")
                return None
        boxed = len(tokens) == n_with
        if boxed and (values[3] <= 0 or values[4] <= 0):
            report.add(where, "bad box size", f"box width/height must be positive, got {values[3]} {values[4]}")
            return None
        rows.append(np.concatenate([values[1:5] if boxed else np.full(4, np.nan), values[-k * dims:]]))
        has_box.append(boxed)
    if not rows:
        return PoseAnnotations.empty(k)
    table = np.stack(rows)
    return _to_annotations(table, k, dims, width, height, path, report)


def _to_annotations(table: np.ndarray, k: int, dims: int, width: int, height: int, path: Path,
                    report: LoadReport) -> PoseAnnotations:
    n = table.shape[0]
    pts = table[:, 4:].reshape(n, k, dims)
    xy = pts[..., :2]
    if dims == 3:
        v = np.where(pts[..., 2] > 0, np.where(pts[..., 2] == 1, 1.0, 2.0), 0.0)
    else:
        v = np.where((xy[..., 0] == 0) & (xy[..., 1] == 0), 0.0, 2.0)
    # Labels are COCO pixel-centre coordinates over the size, so the image spans
    # [-0.5, size - 0.5] px: the same bounds as the COCO reader, plus a rounding tolerance.
    px = xy * [width, height]
    outside = (v > 0) & ((px < -0.5 - OUTSIDE_EPS * np.array([width, height])) |
                         (px > np.array([width, height]) - 0.5 + OUTSIDE_EPS * np.array([width, height]))).any(-1)
    if outside.any():
        lines = sorted({int(i) + 1 for i in np.nonzero(outside.any(1))[0]})
        report.add(f"{path}:{lines[0]}", "keypoint outside image",
                   f"{int(outside.sum())} keypoint(s) outside the image marked unlabelled (label rows {lines})",
                   skipped=False)
        v = np.where(outside, 0.0, v)
    kpts = np.concatenate([xy * [width, height], v[..., None]], -1)
    kpts[v <= 0] = 0.0
    cx, cy, w, h = (table[:, i] * s for i, s in enumerate((width, height, width, height)))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    tight = keypoint_boxes(kpts)
    extent = np.where(np.isfinite(boxes).all(1, keepdims=True), boxes, tight)
    areas = BOX_AREA_FACTOR * np.nan_to_num((extent[:, 2] - extent[:, 0]) * (extent[:, 3] - extent[:, 1]))
    person = (v > 0).any(1)
    ignore = boxes[~person]
    ignore = ignore[np.isfinite(ignore).all(1)]
    return PoseAnnotations(
        keypoints=kpts[person].astype(np.float32),
        areas=areas[person].astype(np.float32),
        boxes=boxes[person].astype(np.float32),
        annotation_ids=np.full(int(person.sum()), -1, np.int64),
        ignore_boxes=ignore.astype(np.float32).reshape(-1, 4),
    )


def _fmt_values(values: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in sorted(set(values.tolist())))


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _list_images(entry: str | list, root: Path, yaml_path: Path, report: LoadReport) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    found: list[Path] = []
    for item in entries:
        target = Path(str(item))
        target = target if target.is_absolute() else root / target
        if target.is_dir():
            found += [p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        elif target.is_file() and target.suffix == ".txt":
            for line in target.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    p = Path(line.strip())
                    found.append(p if p.is_absolute() else (root / p if not line.startswith("./")
                                                            else target.parent / p))
        elif target.is_file():
            found.append(target)
        else:
            raise FileNotFoundError(f"{yaml_path}: image folder or list {target} not found")
    return sorted(set(found))


def _image_ids(paths: list[Path]) -> list[int]:
    stems = [p.stem for p in paths]
    if stems and all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))
