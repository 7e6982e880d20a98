"""Validation: run a ``PoseModel`` over a dataset split and score it with COCO / CrowdPose AP.

Images go through the validation transform only (letterbox to ``imgsz``); the model's keypoints
(input pixels) are mapped back through the exact inverse letterbox to original pixels, written as
COCO results and scored against the split's annotation file (or, for sources without one, the
COCO dict built from the samples).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from erpose.eval.coco import EvaluationError, FileDict, evaluate_keypoints, num_keypoints_of, read_json_file
from erpose.eval.crowdpose import evaluate_crowdpose, has_crowd_index
from erpose.eval.results import detections_to_results
from erpose.limits import MAX_BATCH, MAX_DET, check_imgsz, check_size
from erpose.skeleton import COCO17, CROWDPOSE14

logger = logging.getLogger(__name__)

CROWDPOSE_MODES = ("auto", "on", "off")


@dataclass
class ValidationResult:
    """What ``validate`` returns.

    Attributes:
        metrics: AP/AR keys of ``erpose.eval.COCO_METRICS`` or ``CROWDPOSE_METRICS``.
        detections: COCO results (original pixels), one dict per detected person.
        protocol: ``"coco"``, ``"crowdpose"`` or ``"coco+crowd"`` (see ``evaluate_detections``).
        num_images: images run through the model.
        speed: milliseconds per image: ``preprocess`` (loading + letterbox), ``inference``, ``postprocess``.
    """

    metrics: dict[str, float]
    detections: list[dict]
    protocol: str = "coco"
    num_images: int = 0
    speed: dict[str, float] = field(default_factory=dict)


def default_sigmas(num_keypoints: int) -> tuple[float, ...]:
    """COCO-17 sigmas for K = 17, CrowdPose-14 for K = 14; any other K must bring its own."""
    if num_keypoints == COCO17.num_keypoints:
        return COCO17.sigmas
    if num_keypoints == CROWDPOSE14.num_keypoints:
        return CROWDPOSE14.sigmas
    raise EvaluationError(
        f"no default OKS sigmas for {num_keypoints} keypoints: give them (data YAML kpt_oks_sigmas or --sigmas)"
    )


def load_ground_truth(ground_truth: dict | str | Path) -> dict:
    """A COCO keypoint dict from a dict or JSON path (raises naming the file)."""
    if isinstance(ground_truth, dict):
        return ground_truth
    return read_json_file(ground_truth, "ground-truth")  # remembers the file for later messages


def evaluate_detections(
    ground_truth: dict | str | Path,
    detections: list[dict] | str | Path,
    sigmas: Sequence[float] | None = None,
    crowdpose: str = "auto",
    max_dets: int = 20,
) -> tuple[dict[str, float], str]:
    """Score COCO results with the protocol the ground truth calls for.

    Args:
        ground_truth: COCO/CrowdPose keypoint dict or JSON path.
        detections: COCO results list or JSON path.
        sigmas: K OKS sigmas; None picks COCO-17 or CrowdPose-14 by K.
        crowdpose: ``"auto"``: when every image has ``crowdIndex``, the CrowdPose protocol for
            files without ``area`` (official CrowdPose) and the COCO protocol plus the
            easy/medium/hard split for files with it (SynthCrowd); ``"on"``: CrowdPose protocol;
            ``"off"``: COCO protocol.
        max_dets: detections per image that count (20 for COCO and CrowdPose).

    Returns:
        (metrics, protocol) with protocol ``"coco"``, ``"crowdpose"`` or ``"coco+crowd"``.
    """
    if crowdpose not in CROWDPOSE_MODES:
        raise ValueError(f"crowdpose must be one of {CROWDPOSE_MODES}, got {crowdpose!r}")
    gt = load_ground_truth(ground_truth)
    if not isinstance(gt, dict) or not isinstance(gt.get("annotations"), list):
        label = ground_truth if isinstance(ground_truth, (str, Path)) else "ground truth"
        raise EvaluationError(f"{label}: not a COCO annotation file (needs 'images' and 'annotations')")
    annotations = [ann for ann in gt["annotations"] if isinstance(ann, dict)]
    num_keypoints = num_keypoints_of(gt)
    if sigmas is None and num_keypoints:
        sigmas = default_sigmas(num_keypoints)
    use_crowd = crowdpose == "on" or (crowdpose == "auto" and has_crowd_index(gt))
    # CrowdPose files have no ``area``: the official 0.53 * box area scale. Files that have one
    # (SynthCrowd carries both ``area`` and ``crowdIndex``) keep the COCO scale.
    use_area = bool(annotations) and all("area" in ann for ann in annotations)
    if not use_area:
        logger.info("ground truth has no 'area' for every person: OKS scale is 0.53 * box area")
    if use_crowd and (crowdpose == "on" or not use_area):
        metrics = evaluate_crowdpose(gt, detections, sigmas=sigmas, max_dets=max_dets, use_area=use_area)
        return metrics, "crowdpose"
    if use_crowd:
        # A dataset with both COCO areas and crowd indices (SynthCrowd): users want the COCO table
        # (APM/APL included) and the crowd split, so report COCO metrics plus easy/medium/hard.
        metrics = evaluate_keypoints(gt, detections, sigmas=sigmas, max_dets=max_dets, use_area=use_area)
        split = evaluate_crowdpose(gt, detections, sigmas=sigmas, max_dets=max_dets, use_area=use_area)
        metrics.update({key: split[key] for key in ("AP_easy", "AP_medium", "AP_hard")})
        return metrics, "coco+crowd"
    metrics = evaluate_keypoints(gt, detections, sigmas=sigmas, max_dets=max_dets, use_area=use_area)
    return metrics, "coco"


def ground_truth_of(source: Any) -> dict:
    """The COCO ground truth of a ``DatasetSource``: exactly what its reader accepted.

    A source read from an annotation JSON gives that file restricted to the images the reader
    kept and to the annotations it accepted there (values untouched, so the metrics are those of
    the file); an image skipped for a bad annotation, an annotation of an unknown image or of
    another category is not scored. Other sources give the COCO dict built from their samples.
    """
    annotation_file = getattr(source, "annotation_file", None)
    if annotation_file and Path(annotation_file).is_file():
        return accepted_ground_truth(load_ground_truth(annotation_file), source)
    from erpose.data.convert import source_to_coco_dict

    return source_to_coco_dict(source)


def accepted_ground_truth(ground_truth: dict, source: Any) -> dict:
    """``ground_truth`` (the source's annotation file) keeping only its samples and their annotations."""
    accepted: dict[int, set[int]] = {}
    for sample in source.samples:
        ids = {int(i) for i in sample.annotations.annotation_ids}
        ids.update(int(i) for i in sample.extra.get("ignore_ids", ()))
        accepted[int(sample.image_id)] = ids
    images = [image for image in ground_truth["images"] if image.get("id") in accepted]
    annotations = [ann for ann in ground_truth["annotations"]
                   if isinstance(ann.get("image_id"), int) and ann["image_id"] in accepted
                   and ann.get("id", -1) in accepted[ann["image_id"]]]
    kept = FileDict({**ground_truth, "images": images, "annotations": annotations})
    kept.path = getattr(ground_truth, "path", "")
    return kept


def _resolve_model(model: Any, skeleton: Any) -> Any:
    from erpose.runtime import openvino_session

    if openvino_session.is_openvino_path(model):  # an OpenVINO IR runs through the same torch-free path as ONNX
        return openvino_session.load_backend(model)
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx":
        from erpose.runtime.session import load_backend

        if not Path(model).is_file():
            raise FileNotFoundError(f"weights file not found: {model}")
        return load_backend(model)
    if isinstance(model, (str, Path)):
        from erpose.models.checkpoint import load_model

        # A checkpoint carries its skeleton; a zoo name or config (fresh weights) takes the dataset's.
        if Path(model).suffix.lower() == ".pt":
            return load_model(str(model))
        return load_model(str(model), skeleton=skeleton)
    return model


def _resolve_source(source: Any, split: str) -> Any:
    if isinstance(source, (str, Path)):
        from erpose.data.source import load_source

        return load_source(str(source), split)
    return source


def image_results(rows: np.ndarray, num_keypoints: int, max_det: int, ratio: Any, pad: Any,
                  image_id: int) -> list[dict]:
    """One image's backend rows (n, 1 + 3K), input pixels -> COCO results in original pixels.

    The prediction loop's own :func:`erpose.runtime.predictor.postprocess` (best first, stable,
    at most ``max_det``; the backend already thresholded the scores), so the PyTorch and the
    ONNX Runtime paths write the same results as ``erpose predict``.
    """
    from erpose.runtime.predictor import postprocess

    scores, keypoints = postprocess(rows, (ratio, pad), num_keypoints, max_det)
    return detections_to_results(scores, keypoints, image_id)


def is_onnx_model(model: Any) -> bool:
    """An ``.onnx`` path, an OpenVINO IR path or a backend of either (``OnnxBackend``, ``OpenVinoBackend``)."""
    from erpose.runtime.openvino_session import is_openvino_path

    if isinstance(model, (str, Path)):
        return Path(model).suffix.lower() == ".onnx" or is_openvino_path(model)
    return hasattr(model, "session") and hasattr(model.session, "metadata")


def onnx_input_size(backend: Any, imgsz: int | None) -> tuple[int, int]:
    """The letterbox size for an ONNX file: its own, or ``imgsz`` when its input size is dynamic.

    Raises:
        ValueError: ``imgsz`` differs from a fixed-size file's input, naming both.
    """
    from erpose.runtime.predictor import input_size

    return input_size(backend, imgsz)


def predict_dataset_onnx(
    backend: Any,
    source: Any,
    imgsz: int | None = None,
    batch_size: int = 8,
    conf: float = 0.001,
    max_det: int = 20,
    progress: bool = True,
) -> tuple[list[dict], int, dict[str, float]]:
    """``predict_dataset`` through ONNX Runtime, torch-free: the runtime's letterbox and session.

    The letterbox is the validation transform's (same size rule, interpolation and padding), so
    an export and its checkpoint are scored on the same pixels. A fixed-batch file runs one image
    at a time; a dynamic-batch file takes ``batch_size``.

    Returns:
        (COCO results, images run, ms per image for ``preprocess``, ``inference``, ``postprocess``).
    """
    from erpose.images import ImageFileError, read_image
    from erpose.runtime.predictor import preprocess

    meta = backend.session.metadata
    size = onnx_input_size(backend, imgsz)
    chunk = batch_size if meta.dynamic else 1
    samples = list(source.samples)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(samples), desc="val (onnx)", unit="image", leave=False)
    results: list[dict] = []
    times = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    num_images = 0
    try:
        for start in range(0, len(samples), chunk):
            tick = time.perf_counter()
            frames, kept = [], []
            group = samples[start:start + chunk]
            for sample in group:
                try:
                    frames.append(read_image(sample.image_path))
                    kept.append(sample)
                except ImageFileError as exc:  # as the dataset does: counted out, never scored
                    logger.warning("%s: %s, sample skipped", sample.image_path, exc.reason)
            if bar is not None:
                bar.update(len(group))
            if not frames:
                continue
            batch, params = preprocess(frames, size, meta.channel_order)
            middle = time.perf_counter()
            outputs = backend.predict(batch, conf=conf, max_det=max_det)
            end = time.perf_counter()
            for rows, (ratio, pad), sample in zip(outputs, params, kept):
                results.extend(image_results(rows, meta.num_keypoints, max_det, ratio, pad, sample.image_id))
            times["preprocess"] += middle - tick
            times["inference"] += end - middle
            times["postprocess"] += time.perf_counter() - end
            num_images += len(frames)
    finally:
        if bar is not None:
            bar.close()
    speed = {name: 1000.0 * value / max(num_images, 1) for name, value in times.items()}
    return results, num_images, speed


def predict_dataset(
    model: Any,
    source: Any,
    imgsz: int = 640,
    batch_size: int = 8,
    conf: float = 0.001,
    max_det: int = 20,
    device: str = "cpu",
    progress: bool = True,
    workers: int = 0,
    iou: float = 0.7,
) -> tuple[list[dict], int, dict[str, float]]:
    """Run ``model`` over every sample of ``source``; returns (COCO results, images, ms per image)."""
    import torch

    from erpose.data.dataset import PoseDataset, collate
    from erpose.engine.predictor import parse_device

    torch_device = parse_device(device)
    # Only models that apply NMS take its threshold (duck-typed models may lack the argument).
    nms_options = {"iou": iou} if getattr(model, "needs_nms", False) else {}
    dataset = PoseDataset(source, imgsz=imgsz, augment=None)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="val", unit="batch", leave=False)
    was_training = model.training
    model.to(torch_device).eval()
    num_keypoints = model.skeleton.num_keypoints
    results: list[dict] = []
    seen: set[int] = set()
    times = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    try:
        tick = time.perf_counter()
        for batch in loader:
            images = batch.images.to(torch_device, non_blocking=True)
            start = time.perf_counter()
            times["preprocess"] += start - tick
            with torch.inference_mode():
                outputs = model.predict(images, conf=conf, max_det=max_det, **nms_options)
            if torch_device.type == "cuda":
                torch.cuda.synchronize(torch_device)
            middle = time.perf_counter()
            times["inference"] += middle - start
            for rows, meta in zip(outputs, batch.meta):
                # The dataset substitutes the next readable image for an unreadable one: score each once.
                if meta["index"] in seen:
                    continue
                seen.add(meta["index"])
                rows = rows.detach().float().cpu().numpy()
                results.extend(image_results(rows, num_keypoints, max_det, meta["ratio"], meta["pad"],
                                             meta["image_id"]))
            tick = time.perf_counter()
            times["postprocess"] += tick - middle
    finally:
        model.train(was_training)
    num_images = len(seen)
    speed = {name: 1000.0 * value / max(num_images, 1) for name, value in times.items()}
    return results, num_images, speed


def validate(
    model: Any,
    source: Any,
    imgsz: int | None = None,
    batch_size: int = 8,
    conf: float = 0.001,
    max_det: int = 20,
    device: str = "cpu",
    progress: bool = True,
    *,
    split: str = "val",
    crowdpose: str = "auto",
    sigmas: Sequence[float] | None = None,
    workers: int = 0,
    iou: float = 0.7,
) -> ValidationResult:
    """Predict every image of a dataset split and compute COCO (or CrowdPose) keypoint AP.

    Args:
        model: a ``PoseModel`` (``.predict`` and ``.skeleton``), weights / zoo name for
            ``erpose.models.checkpoint.load_model``, or an ``.onnx`` export (path or
            ``erpose.runtime.predict.OnnxBackend``), run by ONNX Runtime without torch
            (``predict_dataset_onnx``).
        source: a ``DatasetSource`` or anything ``erpose.data.source.load_source`` reads
            (SynthCrowd preset, data YAML, COCO/CrowdPose JSON).
        imgsz: square letterbox input size in pixels (multiple of 32); None: an ONNX file's
            own input size, 640 for a PyTorch model.
        batch_size: images per forward pass.
        conf: minimum person score kept (low, so the PR curve is complete).
        max_det: persons kept per image (COCO scores at most 20).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``...
        progress: show a progress bar (stderr).
        split: split used when ``source`` is a preset or data YAML.
        crowdpose: ``"auto"``, ``"on"`` or ``"off"`` (see ``evaluate_detections``).
        sigmas: OKS sigmas; None takes the dataset skeleton's.
        workers: DataLoader worker processes.
        iou: NMS threshold of the models that need NMS (box IoU for B0, OKS for B1..B4); an
            NMS-free model ignores it, and an ONNX file uses the threshold it was exported with.

    Returns:
        ``ValidationResult`` with metrics and the COCO results in original pixels.
    """
    if imgsz is not None:
        check_imgsz(imgsz)
    check_size("batch", batch_size, MAX_BATCH)
    check_size("max_det", max_det, MAX_DET)
    model_name = f"{model}: model" if isinstance(model, (str, Path)) else "model"
    onnx = is_onnx_model(model)
    if onnx:  # before reading the data: a wrong size is one line, not a minute of loading
        model = _resolve_model(model, None)
        onnx_input_size(model, imgsz)
    source = _resolve_source(source, split)
    model = _resolve_model(model, source.skeleton)
    if model.skeleton.num_keypoints != source.skeleton.num_keypoints:
        raise ValueError(
            f"{model_name} predicts {model.skeleton.num_keypoints} keypoints but {source.name or 'the dataset'} "
            f"has {source.skeleton.num_keypoints}"
        )
    if onnx:
        detections, num_images, speed = predict_dataset_onnx(model, source, imgsz, batch_size, conf, max_det,
                                                             progress)
    else:
        detections, num_images, speed = predict_dataset(
            model, source, imgsz or 640, batch_size, conf, max_det, device, progress, workers, iou
        )
    ground_truth = ground_truth_of(source)
    metrics, protocol = evaluate_detections(
        ground_truth, detections, sigmas=sigmas if sigmas is not None else source.skeleton.sigmas,
        crowdpose=crowdpose,
    )
    logger.info("validated %d images, %d detections: AP %.4f", num_images, len(detections), metrics["AP"])
    return ValidationResult(metrics, detections, protocol, num_images, speed)
