"""Independent pure-Python keypoint evaluator written from the rules in EVAL_RULES.md.

Deliberately loop-based and free of faster-coco-eval / pycocotools so the tests compare two
separate implementations of pycocotools (section A) and crowdposetools (section B).
"""

from __future__ import annotations

import math

import numpy as np

# The exact float values matter (np.linspace(0, 1, 101)[35] is 0.35000000000000003, so a recall
# of 7/20 does not reach it): take them from np.linspace as the libraries do.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()
AREA_RANGES = [(0.0, 1e10), (32.0**2, 96.0**2), (96.0**2, 1e10)]


def _gt_scale(gt, use_area):
    return gt["area"] if use_area else gt["bbox"][2] * gt["bbox"][3] * 0.53


def _oks(det, gt, sigmas, use_area):
    k = len(sigmas)
    xg, yg, vg = gt["keypoints"][0::3], gt["keypoints"][1::3], gt["keypoints"][2::3]
    xd, yd = det["keypoints"][0::3], det["keypoints"][1::3]
    labelled = [i for i in range(k) if vg[i] > 0]
    bx, by, bw, bh = gt["bbox"]
    terms = []
    for i in labelled or range(k):
        if labelled:
            dx, dy = xd[i] - xg[i], yd[i] - yg[i]
        else:  # box 3x its size: distance 0 inside
            dx = max(0.0, bx - bw - xd[i]) + max(0.0, xd[i] - (bx + 2 * bw))
            dy = max(0.0, by - bh - yd[i]) + max(0.0, yd[i] - (by + 2 * bh))
        var = (2 * sigmas[i]) ** 2
        terms.append(math.exp(-(dx * dx + dy * dy) / var / (_gt_scale(gt, use_area) + 2.220446049250313e-16) / 2))
    return sum(terms) / len(terms)


def _det_area(det, has_bbox):
    if has_bbox:
        return det["bbox"][2] * det["bbox"][3]
    xs, ys = det["keypoints"][0::3], det["keypoints"][1::3]
    return (max(xs) - min(xs)) * (max(ys) - min(ys))


def _evaluate_image(gts, dets, area_range, sigmas, use_area, has_bbox, max_dets):
    """Per-image matching; returns (det scores, matched[t][d], ignored[t][d], num non-ignored gt)."""
    lo, hi = area_range
    flagged = []
    for gt in gts:
        ignore = bool(gt["iscrowd"]) or gt["num_keypoints"] == 0
        area = _gt_scale(gt, use_area)
        flagged.append((gt, ignore or area < lo or area > hi))
    flagged.sort(key=lambda pair: pair[1])  # stable: non-ignored first
    dets = sorted(dets, key=lambda d: -d["score"])[:max_dets]
    T = len(IOU_THRESHOLDS)
    matched = [[False] * len(dets) for _ in range(T)]
    ignored = [[False] * len(dets) for _ in range(T)]
    for t, threshold in enumerate(IOU_THRESHOLDS):
        gt_taken = [False] * len(flagged)
        for d, det in enumerate(dets):
            best, m = min(threshold, 1 - 1e-10), -1
            for g, (gt, gt_ignore) in enumerate(flagged):
                if gt_taken[g] and not gt["iscrowd"]:
                    continue
                if m > -1 and not flagged[m][1] and gt_ignore:
                    break
                value = _oks(det, gt, sigmas, use_area)
                if value < best:
                    continue
                best, m = value, g
            if m > -1:
                matched[t][d] = True
                ignored[t][d] = flagged[m][1]
                gt_taken[m] = True
            else:
                area = _det_area(det, has_bbox)
                ignored[t][d] = area < lo or area > hi
    num_gt = sum(1 for _, gt_ignore in flagged if not gt_ignore)
    return [d["score"] for d in dets], matched, ignored, num_gt


def evaluate(gt_dict, detections, sigmas, use_area=True, image_ids=None, max_dets=20):
    """Returns (precision[t][r][a], recall[t][a]) for one category; -1 where undefined."""
    image_ids = sorted(set(image_ids if image_ids is not None else [im["id"] for im in gt_dict["images"]]))
    has_bbox = bool(detections) and "bbox" in detections[0] and detections[0]["bbox"] != []
    gts_by_image = {i: [] for i in image_ids}
    dets_by_image = {i: [] for i in image_ids}
    for gt in gt_dict["annotations"]:
        if gt["image_id"] in gts_by_image:
            gts_by_image[gt["image_id"]].append(gt)
    for det in detections:
        if det["image_id"] in dets_by_image:
            dets_by_image[det["image_id"]].append(det)
    T, R, A = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES)
    precision = [[[-1.0] * A for _ in range(R)] for _ in range(T)]
    recall = [[-1.0] * A for _ in range(T)]
    for a, area_range in enumerate(AREA_RANGES):
        per_image = []
        for image_id in image_ids:
            gts, dets = gts_by_image[image_id], dets_by_image[image_id]
            if not gts and not dets:
                continue
            per_image.append(_evaluate_image(gts, dets, area_range, sigmas, use_area, has_bbox, max_dets))
        if not per_image:
            continue
        num_gt = sum(p[3] for p in per_image)
        if num_gt == 0:
            continue
        entries = []  # (score, image order, det order) -> stable cross-image order
        for p_index, (scores, _, _, _) in enumerate(per_image):
            for d, score in enumerate(scores):
                entries.append((score, p_index, d))
        order = sorted(range(len(entries)), key=lambda i: -entries[i][0])
        for t in range(T):
            tp = fp = 0
            rc, pr = [], []
            for i in order:
                _, p_index, d = entries[i]
                _, matched, ignored, _ = per_image[p_index]
                if ignored[t][d]:
                    continue
                if matched[t][d]:
                    tp += 1
                else:
                    fp += 1
                rc.append(tp / num_gt)
                pr.append(tp / (tp + fp + 2.220446049250313e-16))
            recall[t][a] = rc[-1] if rc else 0.0
            for i in range(len(pr) - 1, 0, -1):
                pr[i - 1] = max(pr[i - 1], pr[i])
            for r, threshold in enumerate(RECALL_THRESHOLDS):
                index = next((i for i, value in enumerate(rc) if value >= threshold), None)
                precision[t][r][a] = pr[index] if index is not None else 0.0
    return precision, recall


def _mean_defined(values):
    defined = [v for v in values if v > -1]
    return sum(defined) / len(defined) if defined else -1.0


def summarize_coco(precision, recall):
    out = {}
    for suffix, a, ts in (("", 0, range(10)), ("50", 0, [0]), ("75", 0, [5]), ("M", 1, range(10)), ("L", 2, range(10))):
        out["AP" + suffix] = _mean_defined([precision[t][r][a] for t in ts for r in range(101)])
        out["AR" + suffix] = _mean_defined([recall[t][a] for t in ts])
    return out


def crowdpose_metrics(gt_dict, detections, sigmas):
    """Official crowdposetools numbers: AP/AR (area 'all') and the rounded easy/medium/hard APs."""
    precision, recall = evaluate(gt_dict, detections, sigmas, use_area=False)
    coco = summarize_coco(precision, recall)
    out = {key: coco[key] for key in ("AP", "AP50", "AP75", "AR", "AR50", "AR75")}
    subsets = {"easy": [], "medium": [], "hard": []}
    for image in gt_dict["images"]:
        c = image["crowdIndex"]
        subsets["easy" if c < 0.2 else "medium" if c < 0.8 else "hard"].append(image["id"])
    for name, ids in subsets.items():
        if not ids:
            out[f"AP_{name}"] = -1.0
            continue
        sub_precision, _ = evaluate(gt_dict, detections, sigmas, use_area=False, image_ids=ids)
        values = [sub_precision[t][r][0] for t in range(10) for r in range(101)]  # -1 NOT excluded
        out[f"AP_{name}"] = round(sum(values) / len(values), 4)
    return out
