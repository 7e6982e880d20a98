"""COCO keypoint AP/AR through faster-coco-eval, with the numbers pycocotools gives.

The matching and accumulation run in faster-coco-eval's C++ core; this module only prepares the
inputs so that every rule pycocotools applies holds (``../shared/EVAL_RULES.md`` section A):

- OKS scale is the ground-truth ``area`` field (the COCO segmentation area), not the box area.
- A ground truth is ignored when ``iscrowd`` or ``num_keypoints == 0`` (the field, not a count).
- Area ranges ``medium = [32^2, 96^2]`` and ``large = [96^2, 1e10]`` are inclusive at both ends.
- At most ``max_dets`` (20) detections per image after a stable sort by score.

Where pycocotools would crash (an empty detection list, a ground truth without ``num_keypoints``
or ``iscrowd``) this module gives a defined result instead; where it would assert (detections for
images that are not in the ground truth) it raises :class:`EvaluationError` naming the ids.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from erpose.skeleton import BOX_AREA_FACTOR, COCO17

logger = logging.getLogger(__name__)

#: Summary keys of :func:`evaluate_keypoints`, in pycocotools ``stats`` order.
COCO_METRICS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

#: pycocotools keypoint area ranges (pixels^2), both ends inclusive.
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}



class EvaluationError(ValueError):
    """Ground truth or detections that cannot be evaluated; the message names the file and the entry."""


def _silent(*args, **kwargs) -> None:
    """faster-coco-eval reports progress through a print function; keep it quiet."""


class JsonFromFile:
    """Mixin of :class:`FileDict` / :class:`FileList`: parsed JSON that remembers its file.

    Callers (``erpose val``, the validator) load a file once and pass the parsed object on;
    every error found later still names the file instead of "ground truth" or "detections".
    """

    path: str = ""


class FileDict(dict, JsonFromFile):
    """A JSON object read from :attr:`path`."""


class FileList(list, JsonFromFile):
    """A JSON list read from :attr:`path`."""


def read_json_file(path: str | Path, what: str) -> FileDict | FileList | object:
    """Parse a JSON file; objects and lists come back labelled with the file (see :class:`JsonFromFile`).

    Raises:
        FileNotFoundError: no such file.
        EvaluationError: not valid UTF-8 JSON, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, (dict, list)):
        data = (FileDict if isinstance(data, dict) else FileList)(data)
        data.path = str(path)
    return data


def _read_json(source: dict | list | str | Path, what: str) -> tuple[dict | list, str]:
    """Return (parsed object, label for messages); dicts and lists are used as they are."""
    if isinstance(source, (dict, list)):
        return source, getattr(source, "path", "") or what
    data = read_json_file(source, what)
    return data, str(source)


def keypoint_values(values: object, num_keypoints: int | None, where: str) -> np.ndarray:
    """A flat keypoint list as a (3K,) float64 array of finite numbers; raises naming ``where``.

    ``num_keypoints=None`` accepts any length that is a multiple of 3.
    """
    if not isinstance(values, (list, tuple)):
        raise EvaluationError(f"{where}: 'keypoints' must be a list of numbers, got {type(values).__name__} "
                              f"{str(values)[:40]!r}" if values is not None else f"{where}: 'keypoints' is null")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        bad = next(v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool))
        raise EvaluationError(f"{where}: non-numeric keypoint value {bad!r}")
    flat = np.asarray(values, dtype=np.float64)
    expected = 3 * num_keypoints if num_keypoints is not None else None
    if (expected is not None and flat.size != expected) or flat.size % 3:
        raise EvaluationError(f"{where} has {flat.size} keypoint values, expected {expected or 'a multiple of 3'}")
    if not np.isfinite(flat).all():
        raise EvaluationError(f"{where}: NaN or infinite keypoint value")
    return flat


def num_keypoints_of(ground_truth: dict) -> int | None:
    """K of a COCO keypoint dict: the keypoint category's name count, else the most common length.

    Never the first annotation's length alone: one malformed annotation must be blamed itself,
    not make every good one look wrong. None when nothing tells.
    """
    for category in ground_truth.get("categories") or []:
        if isinstance(category, dict) and isinstance(category.get("keypoints"), list) and category["keypoints"]:
            return len(category["keypoints"])
    lengths = Counter(len(ann["keypoints"]) for ann in ground_truth.get("annotations") or []
                      if isinstance(ann, dict) and isinstance(ann.get("keypoints"), list)
                      and ann["keypoints"] and len(ann["keypoints"]) % 3 == 0)
    return lengths.most_common(1)[0][0] // 3 if lengths else None


def _labelled_extent_box(keypoints: np.ndarray) -> list[float]:
    """[x, y, w, h] of the labelled keypoints (v > 0) of one (K, 3) array; zeros when none."""
    labelled = keypoints[keypoints[:, 2] > 0]
    if len(labelled) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = labelled[:, :2].min(axis=0)
    x1, y1 = labelled[:, :2].max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def prepare_ground_truth(
    ground_truth: dict | str | Path,
    num_keypoints: int | None = None,
    use_area: bool = True,
) -> tuple[dict, int]:
    """Validate a COCO keypoint ground truth and return a private copy ready for faster-coco-eval.

    Missing fields that pycocotools would crash on are filled the way xtcocotools fills them:
    ``iscrowd`` -> 0, ``num_keypoints`` -> count of labelled keypoints (v > 0), ``bbox`` -> extent
    of the labelled keypoints (only used by the no-keypoint fallback, so it must be given when a
    person has no labelled keypoint). With ``use_area=False`` the ``area`` field is replaced by
    ``0.53 * w * h`` of the box, the crowdposetools scale, so the OKS and the area ranges agree.

    Args:
        ground_truth: COCO keypoint dict or path to its JSON.
        num_keypoints: K expected; None: see :func:`num_keypoints_of`.
        use_area: take the OKS scale from ``area`` (COCO) or from 0.53 * box area (CrowdPose).

    Returns:
        (ground-truth dict copy, K).

    Raises:
        EvaluationError: malformed JSON structure, keypoint lengths that differ from 3K, a missing
            ``area`` with ``use_area=True``, or a missing ``bbox`` where one is needed.
    """
    data, label = _read_json(ground_truth, "ground truth")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise EvaluationError(f"{label}: not a COCO annotation file (needs 'images' and 'annotations')")
    if not all(isinstance(image, dict) for image in data["images"]) or not isinstance(data["annotations"], list):
        raise EvaluationError(f"{label}: 'images' and 'annotations' must be lists of objects")
    images = [dict(image) for image in data["images"]]
    for index, image in enumerate(images):
        if "id" not in image:
            raise EvaluationError(f"{label}: images[{index}] has no 'id'")
    if num_keypoints is None:
        num_keypoints = num_keypoints_of(data)
    image_ids = {image["id"] for image in images}
    annotations = []
    for index, source in enumerate(data["annotations"]):
        if not isinstance(source, dict):
            raise EvaluationError(f"{label}: annotations[{index}] is not an object")
        ann = dict(source)
        where = f"{label}: annotations[{index}] (id {ann.get('id')})"
        if "keypoints" not in ann or "image_id" not in ann:
            raise EvaluationError(f"{where} has no 'keypoints' or 'image_id'")
        if ann["image_id"] not in image_ids:
            # pycocotools never looks at it; say so instead of failing the whole evaluation.
            logger.warning("%s: image_id %r is not in 'images'; not evaluated", where, ann["image_id"])
            continue
        flat = keypoint_values(ann["keypoints"], num_keypoints, where)
        if num_keypoints is None:
            num_keypoints = len(flat) // 3
        keypoints = flat.reshape(num_keypoints, 3)
        ann["keypoints"] = [float(v) for v in flat]
        ann.setdefault("category_id", 1)
        ann["iscrowd"] = int(ann.get("iscrowd", 0))
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int((keypoints[:, 2] > 0).sum())
        if "bbox" not in ann:
            if not (keypoints[:, 2] > 0).any() or not use_area:
                raise EvaluationError(f"{where} has no 'bbox' and one is needed for its OKS")
            ann["bbox"] = _labelled_extent_box(keypoints)
        if use_area:
            if "area" not in ann:
                raise EvaluationError(
                    f"{where} has no 'area'; COCO OKS uses it (datasets without it, like CrowdPose, "
                    "are evaluated with use_area=False, i.e. 0.53 * box area)"
                )
        else:
            # Same operand order as faster-coco-eval's ``tmparea`` so the OKS is bit-identical.
            ann["area"] = ann["bbox"][3] * ann["bbox"][2] * BOX_AREA_FACTOR
        annotations.append(ann)
    categories = [dict(c) for c in data.get("categories", [])]
    if not categories:
        categories = [{"id": cid, "name": "person"} for cid in sorted({a["category_id"] for a in annotations})]
    prepared = {key: value for key, value in data.items() if key not in ("images", "annotations", "categories")}
    prepared.update(images=images, annotations=annotations, categories=categories)
    return prepared, int(num_keypoints or 0)


def prepare_detections(
    detections: list[dict] | str | Path,
    ground_truth: dict,
    num_keypoints: int,
) -> list[dict]:
    """Validate COCO keypoint results against a prepared ground truth and return copies.

    Copies are returned because the COCO loaders add ``id``/``area``/``bbox`` in place. A ``bbox``
    field is kept: pycocotools then takes the detection area from it (it matters for APM/APL).

    Raises:
        EvaluationError: missing fields, wrong keypoint length, non-finite score, or image ids that
            are not in the ground truth (listed in the message).
    """
    data, label = _read_json(detections, "detections")
    if not isinstance(data, list):
        raise EvaluationError(f"{label}: COCO results must be a JSON list of detections")
    category_ids = [c["id"] for c in ground_truth["categories"]]
    image_ids = {image["id"] for image in ground_truth["images"]}
    prepared = []
    for index, source in enumerate(data):
        where = f"{label}: detection {index}"
        if not isinstance(source, dict) or "image_id" not in source or "keypoints" not in source:
            raise EvaluationError(f"{where} needs 'image_id', 'keypoints' and 'score'")
        det = dict(source)
        if isinstance(det["image_id"], bool) or not isinstance(det["image_id"], (int, str)):
            raise EvaluationError(f"{where} has image_id {det['image_id']!r}, expected an integer")
        if "category_id" not in det:
            if len(category_ids) != 1:
                raise EvaluationError(f"{where} has no 'category_id' and the ground truth has several")
            det["category_id"] = category_ids[0]
        det["keypoints"] = [float(v) for v in keypoint_values(det["keypoints"], num_keypoints, where)]
        score = det.get("score")
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise EvaluationError(f"{where} has no finite 'score' (got {score!r})")
        prepared.append(det)
    unknown = sorted({d["image_id"] for d in prepared} - image_ids, key=str)
    if unknown:
        raise EvaluationError(
            f"{label}: {len(unknown)} image id(s) not in the ground truth, e.g. {unknown[:5]}; "
            "were the detections made on another split?"
        )
    return prepared


def summarize_arrays(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    area_index: int = 0,
    iou: float | None = None,
) -> tuple[float, float]:
    """pycocotools ``_summarize`` for one (area range, IoU) selection: mean over entries > -1.

    Args:
        precision: (T, R, C, A, M) precision array of an accumulated evaluation.
        recall: (T, C, A, M) recall array.
        iou_thresholds: (T,) OKS thresholds.
        area_index: index into the area ranges (0 all, 1 medium, 2 large).
        iou: one OKS threshold, or None for the mean over all T.

    Returns:
        (AP, AR), each -1.0 when nothing is defined (no non-ignored ground truth), as pycocotools.
    """
    rows = slice(None) if iou is None else np.flatnonzero(np.isclose(iou_thresholds, iou))
    values = []
    for array in (precision[rows, ..., area_index, -1], recall[rows, ..., area_index, -1]):
        defined = array[array > -1]
        values.append(float(np.mean(defined)) if defined.size else -1.0)
    return values[0], values[1]


def build_evaluator(
    ground_truth: dict,
    detections: list[dict],
    sigmas: Sequence[float],
    max_dets: int,
    use_area: bool,
    iou_type: str = "keypoints",
):
    """A faster-coco-eval ``COCOeval_faster`` on prepared inputs (not yet evaluated)."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(ground_truth, print_function=_silent)
    coco_dt = coco_gt.loadRes(detections)
    evaluator = COCOeval_faster(
        coco_gt,
        coco_dt,
        iouType=iou_type,
        kpt_oks_sigmas=np.asarray(sigmas, dtype=np.float64),
        use_area=use_area,
        print_function=_silent,
    )
    evaluator.params.maxDets = [int(max_dets)]
    return evaluator


def resolve_sigmas(sigmas: Sequence[float] | None, default: Sequence[float], num_keypoints: int) -> np.ndarray:
    """Sigmas as a (K,) float64 array; raises when their count is not K."""
    chosen = np.asarray(default if sigmas is None else sigmas, dtype=np.float64)
    if chosen.shape != (num_keypoints,):
        hint = "" if sigmas is not None else " (pass sigmas= for a custom skeleton)"
        raise EvaluationError(f"{chosen.size} OKS sigmas for {num_keypoints} keypoints{hint}")
    if not np.all(chosen > 0):
        raise EvaluationError(f"OKS sigmas must be positive, got {chosen.tolist()}")
    return chosen


def evaluate_keypoints(
    ground_truth: dict | str | Path,
    detections: list[dict] | str | Path,
    sigmas: Sequence[float] | None = None,
    max_dets: int = 20,
    use_area: bool = True,
) -> dict[str, float]:
    """COCO keypoint AP/AR of COCO-format detections, equal to pycocotools to ~1e-16.

    Args:
        ground_truth: COCO keypoint annotation dict or JSON path. Every image in it counts,
            including images without persons (their detections are false positives).
        detections: COCO results list or JSON path: dicts with ``image_id``, ``category_id``,
            ``keypoints`` (flat [x, y, c] * K in original image pixels) and ``score``. The
            keypoint confidences are not used by COCO evaluation; only ``score`` ranks.
        sigmas: K per-keypoint OKS sigmas; None uses COCO-17 (and then K must be 17).
        max_dets: detections kept per image, highest score first (COCO: 20).
        use_area: OKS scale from the ground-truth ``area`` (COCO); False uses 0.53 * box area.

    Returns:
        ``{"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"}`` as floats in
        [0, 1]; -1.0 where undefined (no non-ignored ground truth in that range). An empty
        detection list gives 0.0 (pycocotools would crash on it).

    Raises:
        EvaluationError: see :func:`prepare_ground_truth` and :func:`prepare_detections`.
        FileNotFoundError: a path that does not exist.
    """
    gt, num_keypoints = prepare_ground_truth(ground_truth, use_area=use_area)
    sigma_array = resolve_sigmas(sigmas, COCO17.sigmas, num_keypoints)
    dets = prepare_detections(detections, gt, num_keypoints)
    evaluator = build_evaluator(gt, dets, sigma_array, max_dets, use_area)
    evaluator.evaluate()
    evaluator.accumulate()
    precision, recall = evaluator.eval["precision"], evaluator.eval["recall"]
    iou_thresholds = np.asarray(evaluator.params.iouThrs)
    labels = evaluator.params.areaRngLbl
    metrics: dict[str, float] = {}
    for suffix, area, iou in (("", "all", None), ("50", "all", 0.5), ("75", "all", 0.75),
                              ("M", "medium", None), ("L", "large", None)):
        ap, ar = summarize_arrays(precision, recall, iou_thresholds, labels.index(area), iou)
        metrics["AP" + suffix], metrics["AR" + suffix] = ap, ar
    return {name: metrics[name] for name in COCO_METRICS}
