"""CrowdPose AP with the easy / medium / hard split, as the official crowdposetools computes it.

The rules (``../shared/EVAL_RULES.md`` section B), all reproduced here:

- OKS scale ``s^2 = 0.53 * bbox_w * bbox_h`` (CrowdPose has no ``area``); the CrowdPose-14 sigmas.
- Ground truth ignored when ``iscrowd`` or ``num_keypoints == 0`` (the field; in CrowdPose it
  counts only the 12 body joints, so a person with only head/neck labelled is ignored).
- OKS thresholds 0.50:0.05:0.95, 101 recall points, 20 detections per image, greedy matching
  and accumulation identical to pycocotools.
- AP, AP50, AP75, AR, AR50, AR75 over all images, area range 'all' (mean over entries > -1).
- Images split by their ``crowdIndex``: easy ``< 0.2``, medium ``0.2 <= c < 0.8``, hard ``>= 0.8``.
  Each subset is evaluated on its own (recall normalised by its own ground truth) and its AP is
  ``round(mean(precision[:, :, :, all, :]), 4)``; unlike AP, -1 entries are *not* excluded, so a
  subset without any non-ignored person gives -1.0.

The matching runs in faster-coco-eval (``iouType='keypoints_crowd'``, ``use_area=False``), which
reproduces crowdposetools bit for bit; the split is done here so it needs no file path and leaves
no evaluator state behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from erpose.eval.coco import (
    EvaluationError,
    build_evaluator,
    prepare_detections,
    prepare_ground_truth,
    resolve_sigmas,
    summarize_arrays,
)
from erpose.skeleton import CROWDPOSE14

#: Summary keys of :func:`evaluate_crowdpose`.
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")

#: crowdposetools ``summarize`` calls ``get_type_result(first=0.2, second=0.8)``.
EASY_BELOW = 0.2
MEDIUM_BELOW = 0.8


def split_by_crowd_index(
    images: Sequence[dict], easy_below: float = EASY_BELOW, medium_below: float = MEDIUM_BELOW
) -> dict[str, list]:
    """Image ids per difficulty: ``crowdIndex < 0.2`` easy, ``< 0.8`` medium, else hard.

    Args:
        images: COCO ``images`` entries, each with ``id`` and ``crowdIndex``.

    Returns:
        ``{"easy": [...], "medium": [...], "hard": [...]}`` in file order.

    Raises:
        EvaluationError: an image without ``crowdIndex``.
    """
    split: dict[str, list] = {"easy": [], "medium": [], "hard": []}
    for image in images:
        if "crowdIndex" not in image:
            raise EvaluationError(f"image {image.get('id')} has no 'crowdIndex'; the CrowdPose split needs one")
        index = float(image["crowdIndex"])
        name = "easy" if index < easy_below else "medium" if index < medium_below else "hard"
        split[name].append(image["id"])
    return split


def has_crowd_index(ground_truth: dict) -> bool:
    """True when every image of a COCO-style dict carries ``crowdIndex`` (CrowdPose files do)."""
    images = ground_truth.get("images", [])
    return bool(images) and all("crowdIndex" in image for image in images)


def evaluate_crowdpose(
    ground_truth: dict | str | Path,
    detections: list[dict] | str | Path,
    sigmas: Sequence[float] | None = None,
    max_dets: int = 20,
    use_area: bool = False,
) -> dict[str, float]:
    """CrowdPose AP/AR and AP easy/medium/hard, equal to the official crowdposetools.

    Args:
        ground_truth: CrowdPose annotation dict or JSON path; every image needs ``crowdIndex``.
        detections: COCO results list or JSON path (see :func:`erpose.eval.coco.evaluate_keypoints`).
        sigmas: K OKS sigmas; None uses the official CrowdPose-14 ones (then K must be 14).
        max_dets: detections kept per image (CrowdPose: 20).
        use_area: False (official) scales OKS by 0.53 * box area; True uses the ``area`` field.

    Returns:
        ``{"AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"}``;
        the three split values are rounded to 4 decimals as the official tool does.

    Raises:
        EvaluationError: malformed inputs, or an image without ``crowdIndex``.
        FileNotFoundError: a path that does not exist.
    """
    gt, num_keypoints = prepare_ground_truth(ground_truth, use_area=use_area)
    split = split_by_crowd_index(gt["images"])
    sigma_array = resolve_sigmas(sigmas, CROWDPOSE14.sigmas, num_keypoints)
    dets = prepare_detections(detections, gt, num_keypoints)
    evaluator = build_evaluator(gt, dets, sigma_array, max_dets, use_area, iou_type="keypoints_crowd")
    all_image_ids = list(evaluator.params.imgIds)

    metrics: dict[str, float] = {}
    evaluator.evaluate()
    evaluator.accumulate()
    iou_thresholds = np.asarray(evaluator.params.iouThrs)
    all_area = evaluator.params.areaRngLbl.index("all")
    for suffix, iou in (("", None), ("50", 0.5), ("75", 0.75)):
        ap, ar = summarize_arrays(
            evaluator.eval["precision"], evaluator.eval["recall"], iou_thresholds, all_area, iou
        )
        metrics["AP" + suffix], metrics["AR" + suffix] = ap, ar

    for name, image_ids in split.items():
        if not image_ids:
            # crowdposetools leaves the precision array at -1 for an empty subset.
            metrics[f"AP_{name}"] = -1.0
            continue
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        precision = evaluator.eval["precision"][:, :, :, all_area, :]
        # numpy rounding of the numpy mean, exactly the official ``round(np.mean(...), 4)``.
        metrics[f"AP_{name}"] = float(np.round(np.mean(precision), 4))
    evaluator.params.imgIds = all_image_ids
    return {name: metrics[name] for name in CROWDPOSE_METRICS}
