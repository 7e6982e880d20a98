import json

import numpy as np
import pytest

from erpose.skeleton import COCO17

torch = pytest.importorskip("torch")
try:
    from erpose.data.source import load_source
    from erpose.engine.validator import evaluate_detections, validate
    from erpose.runtime.letterbox import letterbox, letterbox_keypoints
except ImportError as exc:  # pieces of the pipeline written in parallel may be missing
    pytest.skip(f"validator dependencies not available: {exc}", allow_module_level=True)

IMGSZ = 64
SIZES = [(48, 80), (90, 40), (64, 64)]  # (height, width): landscape, portrait, square


def write_dataset(root, crowd_index=False):
    """Three images with 1-2 persons each, COCO keypoint JSON next to them."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for index, (h, w) in enumerate(SIZES):
        image_id = 10 + index
        cv2.imwrite(str(root / "images" / "val" / f"{image_id}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        image = {"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h}
        if crowd_index:
            image["crowdIndex"] = [0.1, 0.5, 0.9][index]
        images.append(image)
        for person in range(1 + index % 2):
            keypoints = np.zeros((17, 3))
            keypoints[:, 0] = rng.uniform(2, w - 3, 17)
            keypoints[:, 1] = rng.uniform(2, h - 3, 17)
            keypoints[:, 2] = 2
            x0, y0 = keypoints[:, :2].min(0)
            x1, y1 = keypoints[:, :2].max(0)
            annotations.append({
                "id": 100 * image_id + person, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "num_keypoints": 17, "keypoints": np.round(keypoints, 2).ravel().tolist(),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": float((x1 - x0) * (y1 - y0)),
            })
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoint_names)}]}
    path = root / "annotations" / "val.json"  # COCO layout: images in ../images/val
    path.write_text(json.dumps(gt))
    return path, gt


class OracleModel(torch.nn.Module):
    """Returns each image's ground truth mapped into letterboxed input pixels, in dataset order,
    so a correct validator (order, inverse letterbox, results, evaluation) scores AP 1.0."""

    def __init__(self, gt):
        super().__init__()
        self.skeleton = COCO17
        by_image = {image["id"]: [] for image in gt["images"]}
        for ann in gt["annotations"]:
            by_image[ann["image_id"]].append(np.asarray(ann["keypoints"], float).reshape(17, 3))
        self.queue = []
        for image in gt["images"]:
            _, ratio, pad = letterbox(np.zeros((image["height"], image["width"], 3), np.uint8), IMGSZ)
            rows = []
            for keypoints in by_image[image["id"]]:
                moved = keypoints.copy()
                moved[:, :2] = letterbox_keypoints(keypoints[:, :2], ratio, pad)
                rows.append(np.concatenate([[0.9], moved.ravel()]))
            # plus a low-score junk person: the model drops it at the conf the validator passes (the
            # one threshold), and ranking is exercised
            rows.append(np.concatenate([[0.0005], np.full(51, 1.0)]))
            self.queue.append(torch.tensor(np.array(rows), dtype=torch.float32))

    def predict(self, images, conf=0.001, max_det=100):
        assert images.shape[1:] == (3, IMGSZ, IMGSZ) and images.dtype == torch.float32
        rows = [self.queue.pop(0) for _ in range(images.shape[0])]
        return [r[r[:, 0] > conf] for r in rows]  # as PoseModel.predict: score > conf


def test_oracle_model_scores_perfect_ap_in_original_pixels(tmp_path):
    path, gt = write_dataset(tmp_path)
    source = load_source(str(path), "val")
    result = validate(OracleModel(gt), source, imgsz=IMGSZ, batch_size=2, progress=False)
    assert result.protocol == "coco" and result.num_images == 3
    assert result.metrics["AP"] == pytest.approx(1.0)
    assert result.metrics["AR"] == pytest.approx(1.0)
    assert len(result.detections) == len(gt["annotations"])  # the 0.0005 junk row is below conf
    # coordinates are back in original pixels (within the 0.01 px rounding of the results)
    by_id = {(a["image_id"], round(a["keypoints"][0], 1)): a for a in gt["annotations"]}
    for det in result.detections:
        ann = by_id[(det["image_id"], round(det["keypoints"][0], 1))]
        assert np.allclose(np.array(det["keypoints"])[0::3], np.array(ann["keypoints"])[0::3], atol=0.011)
        assert np.allclose(np.array(det["keypoints"])[1::3], np.array(ann["keypoints"])[1::3], atol=0.011)
        assert det["category_id"] == 1 and det["score"] == pytest.approx(0.9)


def test_crowd_index_adds_the_crowd_split(tmp_path):
    path, gt = write_dataset(tmp_path, crowd_index=True)
    detections = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt["annotations"]
    ]
    # With COCO areas (SynthCrowd-like): the COCO table plus easy/medium/hard.
    metrics, protocol = evaluate_detections(str(path), detections, sigmas=COCO17.sigmas)
    assert protocol == "coco+crowd"
    assert metrics["AP"] == 1.0 and metrics["AP_easy"] == 1.0 and metrics["AP_hard"] == 1.0
    assert "APM" in metrics
    # Forced CrowdPose protocol: no area ranges.
    metrics, protocol = evaluate_detections(str(path), detections, sigmas=COCO17.sigmas, crowdpose="on")
    assert protocol == "crowdpose" and "APM" not in metrics and metrics["AP_hard"] == 1.0
    # Without areas (official CrowdPose files), auto picks the CrowdPose protocol.
    for ann in gt["annotations"]:
        del ann["area"]
    metrics, protocol = evaluate_detections(gt, detections, sigmas=COCO17.sigmas)
    assert protocol == "crowdpose"
    _, protocol = evaluate_detections(str(path), [], sigmas=COCO17.sigmas, crowdpose="off")
    assert protocol == "coco"


def test_real_tiny_model_runs_end_to_end(tmp_path):
    zoo = pytest.importorskip("erpose.models.zoo")
    torch.manual_seed(0)
    path, _ = write_dataset(tmp_path)
    model = zoo.build_model("erpose-n")
    result = validate(model, str(path), imgsz=IMGSZ, batch_size=3, conf=0.001, max_det=5, progress=False)
    assert set(result.metrics) >= {"AP", "AP50", "AR"}
    assert 0.0 <= result.metrics["AP"] <= 1.0
    counts = {}
    for det in result.detections:
        counts[det["image_id"]] = counts.get(det["image_id"], 0) + 1
        assert len(det["keypoints"]) == 51
    assert all(n <= 5 for n in counts.values())
    assert model.training  # mode restored


@pytest.mark.parametrize("bad", [
    {"keypoints": [1, 2, 2] * 5},            # wrong keypoint length
    {"keypoints": ["1"] * 51},               # string values
    {"image_id": 999},                       # an image that does not exist
    {"keypoints": None},                     # null keypoints
])
def test_evaluation_scores_exactly_what_the_loader_accepted(tmp_path, bad):
    """One bad annotation skips its image (reported) instead of aborting evaluation or blaming others."""
    from erpose.engine.validator import ground_truth_of

    path, gt = write_dataset(tmp_path)
    good = [dict(a) for a in gt["annotations"]]
    gt["annotations"][0].update(bad)  # the FIRST annotation is the bad one: K must not come from it
    path.write_text(json.dumps(gt))
    source = load_source(str(path), "val")
    assert source.report.problems and str(path) in source.report.problems[0].where
    kept = ground_truth_of(source)
    kept_images = {image["id"] for image in kept["images"]}
    assert kept_images == {s.image_id for s in source.samples}
    assert all(a["image_id"] in kept_images and a["id"] != gt["annotations"][0]["id"] for a in kept["annotations"])
    kept_ids = {a["id"] for a in kept["annotations"]}
    detections = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                  for a in good if a["id"] in kept_ids]
    metrics, _ = evaluate_detections(kept, detections, sigmas=COCO17.sigmas)
    assert metrics["AP"] == pytest.approx(1.0)
    # The whole pipeline (as run after every training epoch) completes.
    result = validate(build_tiny(), source, imgsz=IMGSZ, batch_size=3, progress=False)
    assert result.num_images == len(source.samples)


def build_tiny():
    from erpose.models.zoo import build_model

    torch.manual_seed(0)
    return build_model("erpose-n")
