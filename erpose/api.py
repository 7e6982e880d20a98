"""``ERPose``: the Python facade. Each method delegates to one engine entry point; no logic here.

Example::

    from erpose import ERPose

    model = ERPose("erpose-n")                 # fresh model by name, or "runs/train/exp/weights/best.pt"
    model.train(data="synthcrowd-train", epochs=10, imgsz=256)
    metrics = model.val(data="synthcrowd-train")
    results = model.predict("people.jpg", conf=0.25)
    for frame in model.track("walk.mp4"):    # frame.tracks.track_ids, .smoothed, frame.plot()
        ...
    results[0].keypoints.xy, results[0].scores, results[0].boxes
    cv2.imwrite("out.jpg", results[0].plot())
    model.export(format="onnx", imgsz=640)
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any


class ERPose:
    """A pose model by name (``erpose-n``...``x``, ``yolopose-*``, ablation steps), ``.yaml``,
    ``.pt`` checkpoint or ``.onnx`` file (prediction only).

    Args:
        weights: what to load; a name gives a freshly initialised model.
        device: ``cpu``, ``cuda``, ``cuda:N`` for PyTorch models.
    """

    def __init__(self, weights: str | os.PathLike = "erpose-n", device: str = "cpu") -> None:
        from erpose.engine.predictor import load_backend

        self.weights = os.fspath(weights)
        self.device = device
        self.backend = load_backend(self.weights, device=device)
        self.last_train: Any = None

    @property
    def is_onnx(self) -> bool:
        """An exported model (``.onnx`` or OpenVINO IR) run without torch."""
        return hasattr(self.backend, "session")

    @property
    def model(self) -> Any:
        """The PyTorch ``PoseModel`` (None for an ``.onnx`` backend)."""
        return getattr(self.backend, "model", None)

    @property
    def skeleton(self):
        return self.backend.skeleton

    def _require_torch(self, what: str) -> None:
        if self.model is None:
            raise ValueError(f"{self.weights}: {what} needs a PyTorch model (name, .yaml or .pt), not an ONNX file")

    def predict(
        self,
        source: Any,
        *,
        imgsz: int | None = None,
        conf: float = 0.25,
        max_det: int = 100,
        batch_size: int = 1,
        nms: bool = False,
    ) -> list:
        """Poses on an image array, a list of arrays, a path, folder, glob or video.

        ``imgsz`` None takes an ``.onnx`` file's own input size (a fixed-size export accepts only
        that), else 640.

        Returns:
            One ``erpose.runtime.results.Results`` per image or frame (``.keypoints.xy``,
            ``.keypoints.conf``, ``.scores``, ``.boxes``, ``.plot()``).
        """
        from erpose.engine.predictor import Predictor

        predictor = Predictor(
            self.backend, imgsz=imgsz, conf=conf, max_det=max_det, device=self.device,
            batch_size=batch_size, nms=nms,
        )
        return predictor(source)

    __call__ = predict

    def track(
        self,
        source: Any,
        *,
        stream: bool = True,
        tracker: Any = None,
        imgsz: int | None = None,
        conf: float | None = None,
        max_det: int = 100,
        batch_size: int = 1,
    ) -> Any:
        """Poses with track ids on a video, a folder or list of frames (one sequence), a camera or stream.

        Args:
            source: as :meth:`predict`.
            stream: yield frame by frame (default; a long video never sits in memory); False
                returns a list.
            tracker: an ``erpose.track.TrackerConfig`` (association, life cycle, smoothing);
                the defaults when None.
            imgsz: as :meth:`predict` (None: an ``.onnx`` file's own size, else 640).
            conf: lowest person score kept; the tracker's ``low_score`` when None (its second
                round needs the low-score people).

        Returns:
            ``erpose.track.stream.TrackedResults`` per frame: ``.tracks.track_ids``,
            ``.tracks.keypoints`` (raw), ``.tracks.smoothed``, ``.result`` (every person),
            ``.plot()``.
        """
        from erpose.engine.predictor import Predictor
        from erpose.track.config import TrackerConfig
        from erpose.track.stream import track_results

        config = tracker or TrackerConfig()
        predictor = Predictor(
            self.backend, imgsz=imgsz, conf=config.low_score if conf is None else conf, max_det=max_det,
            device=self.device, batch_size=batch_size,
        )
        results = track_results(predictor.stream(source), config)
        return results if stream else list(results)

    def train(self, **overrides: Any):
        """Train this model; keyword arguments are ``TrainConfig`` fields or dotted paths
        (``data="synthcrowd-train", epochs=10, **{"optim.lr0": 0.01}``).

        As ``erpose train``, the run starts from the recipe that fits ``data``
        (``erpose.engine.recipes``: the demo recipe with a 10-minute ``time`` budget for
        SynthCrowd presets, the real-data ``coco`` recipe otherwise); ``epochs=N`` switches the
        budget off, ``time=MINUTES`` sets one. A model made from a name trains from scratch; one
        loaded from ``.pt`` is fine-tuned. Afterwards this object holds the best weights.

        Returns:
            ``erpose.engine.launch.TrainResult``.
        """
        from erpose.config import apply_overrides
        from erpose.engine.launch import train
        from erpose.engine.predictor import load_backend
        from erpose.engine.recipes import recipe_for_data, with_length
        from erpose.engine.train_config import with_step_criterion

        self._require_torch("training")
        resume = overrides.pop("resume", None)
        progress = bool(overrides.pop("progress", True))
        epochs, minutes = overrides.pop("epochs", None), overrides.pop("time", None)
        overrides.setdefault("model", self.weights)
        overrides.setdefault("device", self.device)
        config = replace(recipe_for_data(overrides.get("data")).config, model=overrides["model"])
        if any(key.startswith("criterion.") for key in overrides):
            config = with_step_criterion(config)
        config = with_length(apply_overrides(config, overrides, "ERPose.train"), epochs=epochs, minutes=minutes)
        result = train(config, resume=resume, progress=progress)
        best = Path(result.run_dir) / "weights" / "best.pt"
        if best.is_file():
            self.weights = str(best)
            self.backend = load_backend(self.weights, device=self.device)
        self.last_train = result
        return result

    def val(self, data: str, *, imgsz: int | None = None, batch_size: int = 8, split: str = "val", **kwargs: Any):
        """COCO (or CrowdPose) keypoint AP on a dataset split; returns ``ValidationResult``.

        An ``.onnx`` model runs in ONNX Runtime (at its own input size when ``imgsz`` is None),
        scored exactly as its checkpoint is; a PyTorch model at ``imgsz`` (default 640).
        """
        from erpose.engine.validator import validate

        model = self.backend if self.is_onnx else self.model
        return validate(model, data, imgsz=imgsz, batch_size=batch_size, device=self.device, split=split, **kwargs)

    def export(self, format: str = "onnx", *, path: str | os.PathLike | None = None, **options: Any) -> Path:
        """Export to ONNX, or to an OpenVINO IR folder (``format="openvino"``, float32; returns its ``.xml``);
        ``options`` are ``OnnxExportConfig`` fields (imgsz, dynamic, half, max_det, opset)."""
        from erpose.export.onnx import OnnxExportConfig, export_onnx

        self._require_torch("export")
        if format == "openvino":
            from erpose.export.openvino import export_openvino

            stem = Path(self.weights).stem if Path(self.weights).suffix else self.weights
            folder = Path(path) if path is not None else Path(self.weights).parent / f"{stem}_openvino"
            return export_openvino(self.model, folder, OnnxExportConfig(**options), model_name=stem)
        if format != "onnx":
            raise ValueError(f"unknown export format {format!r}; supported: ['onnx', 'openvino']")
        if path is None:
            path = Path(self.weights).with_suffix(".onnx") if Path(self.weights).suffix else Path(f"{self.weights}.onnx")
        return export_onnx(self.model, path, OnnxExportConfig(**options))

    def info(self, imgsz: int = 640):
        """Layers, inference parameters and GFLOPs (``erpose.models.summary.ModelSummary``)."""
        from erpose.models.summary import model_summary

        self._require_torch("info")
        return model_summary(self.model, imgsz=imgsz)

    def __repr__(self) -> str:
        return f"ERPose({self.weights!r}, device={self.device!r})"
