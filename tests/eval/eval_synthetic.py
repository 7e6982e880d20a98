"""Generated COCO/CrowdPose-style ground truth and detections with the evaluation edge cases."""

from __future__ import annotations

import numpy as np


def make_ground_truth(seed: int, num_keypoints: int = 17, num_images: int = 12, crowd_index: bool = False) -> dict:
    """Persons with areas spanning small/medium/large (and exactly 1024 / 9216), crowd regions,
    persons with num_keypoints 0 (with and without labelled points) and empty images."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    ann_id = 1
    for i in range(num_images):
        image_id = 1000 + 7 * i
        image = {"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480}
        if crowd_index:
            image["crowdIndex"] = float(rng.choice([0.0, 0.1, 0.2, 0.35, 0.79, 0.8, 1.4]))
        images.append(image)
        if i == num_images - 1:
            continue  # an image without any person
        for _ in range(int(rng.integers(1, 5))):
            w, h = rng.uniform(15, 220, 2)
            x, y = rng.uniform(0, 400), rng.uniform(0, 250)
            keypoints = np.zeros((num_keypoints, 3))
            keypoints[:, 0] = x + rng.uniform(0, w, num_keypoints)
            keypoints[:, 1] = y + rng.uniform(0, h, num_keypoints)
            keypoints[:, 2] = rng.choice([0, 1, 2], num_keypoints, p=[0.25, 0.25, 0.5])
            kind = rng.uniform()
            iscrowd = 0
            if kind < 0.06:  # unlabelled person: bbox fallback OKS, ignored
                keypoints[:] = 0
            elif kind < 0.12:  # crowd region
                iscrowd, keypoints[:] = 1, 0
            keypoints[keypoints[:, 2] == 0, :2] = 0
            num_labelled = int((keypoints[:, 2] > 0).sum())
            num_field = num_labelled if rng.uniform() > 0.1 else 0  # num_keypoints 0 with labelled points
            area = float(rng.choice([w * h * 0.6, 1024.0, 9216.0], p=[0.8, 0.1, 0.1]))
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
                "bbox": [float(x), float(y), float(w), float(h)], "area": area,
                "num_keypoints": num_field, "keypoints": keypoints.ravel().tolist(),
            })
            ann_id += 1
    rng.shuffle(annotations)
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def make_detections(gt: dict, seed: int, with_bbox: bool = False) -> list[dict]:
    """Perturbed copies of the persons, random false positives, 2-decimal scores (ties) and one
    image with more than 20 detections."""
    rng = np.random.default_rng(seed + 100)
    dets = []
    for ann in gt["annotations"]:
        if rng.uniform() < 0.15:
            continue  # missed person
        keypoints = np.asarray(ann["keypoints"], float).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        keypoints[:, 0] = np.where(keypoints[:, 2] > 0, keypoints[:, 0], x + rng.uniform(0, w, len(keypoints)))
        keypoints[:, 1] = np.where(keypoints[:, 2] > 0, keypoints[:, 1], y + rng.uniform(0, h, len(keypoints)))
        keypoints[:, :2] += rng.normal(0, 0.06 * np.sqrt(w * h), (len(keypoints), 2))
        keypoints[:, 2] = rng.uniform(0, 1, len(keypoints))
        dets.append({"image_id": ann["image_id"], "category_id": 1,
                     "keypoints": keypoints.ravel().tolist(), "score": float(np.round(rng.uniform(), 2))})
    image_ids = [image["id"] for image in gt["images"]]
    crowded = image_ids[0]
    for index in range(40):
        image_id = crowded if index < 25 else int(rng.choice(image_ids))
        keypoints = np.zeros((len(gt["annotations"][0]["keypoints"]) // 3, 3))
        keypoints[:, 0] = rng.uniform(0, 600, len(keypoints))
        keypoints[:, 1] = rng.uniform(0, 450, len(keypoints))
        keypoints[:, 2] = rng.uniform(0, 1, len(keypoints))
        dets.append({"image_id": image_id, "category_id": 1,
                     "keypoints": keypoints.ravel().tolist(), "score": float(np.round(rng.uniform(), 2))})
    rng.shuffle(dets)
    if with_bbox:
        for det in dets:
            xs, ys = det["keypoints"][0::3], det["keypoints"][1::3]
            det["bbox"] = [min(xs), min(ys), (max(xs) - min(xs)) * 0.7, (max(ys) - min(ys)) * 1.3]
    return dets


def write_image_dataset(root, num_images: int = 3) -> tuple:
    """Small images on disk in COCO layout (``annotations/val.json``, ``images/val/``)."""
    import json

    import cv2

    rng = np.random.default_rng(5)
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for index in range(num_images):
        h, w = (48, 72) if index % 2 else (80, 40)
        image_id = 1 + index
        cv2.imwrite(str(root / "images" / "val" / f"{image_id}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        keypoints = np.column_stack([rng.uniform(1, w - 2, 17), rng.uniform(1, h - 2, 17), np.full(17, 2.0)])
        annotations.append({"id": 10 + index, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "num_keypoints": 17, "keypoints": np.round(keypoints, 2).ravel().tolist(),
                            "bbox": [0.0, 0.0, float(w), float(h)], "area": float(w * h) * 0.5})
    gt = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    path = root / "annotations" / "val.json"
    path.write_text(json.dumps(gt))
    return path, gt
