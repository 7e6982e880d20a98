"""ONNX Runtime session for an erpose export: reads the file's metadata, returns ``(B, max_det, 1+3K)``.

numpy + onnxruntime + :mod:`erpose.skeleton` only (no torch), so a deployment needs neither
PyTorch nor the training code. The file alone is enough: its ``metadata_props`` carry the
skeleton, input size, strides, ``max_det`` and whether the graph still needs NMS.

Output layout of :meth:`PoseSession.run` for every model, NMS-free or not::

    out[b, i] = [score, x_0, y_0, conf_0, x_1, y_1, conf_1, ..., x_{K-1}, y_{K-1}, conf_{K-1}]

``score`` is the person probability, ``x, y`` input (letterboxed) pixels, ``conf`` the keypoint
visibility probability; rows sorted by descending score. ER-Pose exports produce this inside the
graph; for the box-driven baseline (and the ablation steps) the graph returns raw anchors and
:func:`erpose.runtime.nms.nms_poses` runs here, in numpy, as ultralytics deployments do.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from erpose.runtime.nms import nms_poses
from erpose.skeleton import Skeleton

logger = logging.getLogger(__name__)

#: Value of the ``format`` metadata key; its presence marks a file as an erpose export.
FORMAT_TAG = "erpose-pose"
#: Version of the metadata schema below; bumped when a key changes meaning.
METADATA_SCHEMA = 1
#: Column layout of the final output, stored in the file for readers that never saw this module.
OUTPUT_LAYOUT = "score, then x, y, conf per keypoint (input pixels, probabilities); rows sorted by score"

#: NMS kinds a graph may leave to the runtime.
NMS_KINDS = ("none", "box", "oks")


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used: unreadable, corrupt, or not an erpose export."""


@dataclass(frozen=True)
class ExportMetadata:
    """What an erpose ONNX file says about itself (stored as string ``metadata_props``).

    Attributes:
        skeleton: keypoint schema (names, sigmas, flip_idx, limbs).
        imgsz: (H, W) input size the graph was exported at, pixels.
        strides: feature-map strides, pixels (the letterbox pads to a multiple of the largest).
        max_det: rows of the final output.
        model_name: zoo name or checkpoint stem (``"erpose-n"``).
        step: ablation step (``"B5"`` = ER-Pose, ``"B0"`` = YOLO-Pose baseline).
        needs_nms: the graph returns raw anchors and the runtime must run NMS.
        nms: ``"none"`` (ER-Pose), ``"box"`` (baseline B0) or ``"oks"`` (ablation B1..B4).
        nms_iou: IoU (box) or OKS threshold of that NMS.
        raw_columns: for NMS graphs, column offsets in the raw ``(B, A, C)`` output of the
            score probability (``"score"``), the 3K keypoint values x, y, conf (``"keypoints"``)
            and the x1y1x2y2 box in input pixels (``"box"``, B0 only).
        dynamic: the batch axis is symbolic.
        dynamic_shape: the H and W axes are symbolic too.
        half: float16 input and weights.
        channel_order: ``"RGB"`` or ``"BGR"`` order the network expects.
        quantization: ``"none"`` (float weights) or a description of the INT8 scheme, e.g.
            ``"int8-qdq"`` (:mod:`erpose.export.quantize`); the input stays float either way.
        version: erpose version that wrote the file.
        schema: metadata schema version.
    """

    skeleton: Skeleton
    imgsz: tuple[int, int]
    strides: tuple[int, ...]
    max_det: int
    model_name: str = "erpose"
    step: str = "B5"
    needs_nms: bool = False
    nms: str = "none"
    nms_iou: float = 0.7
    raw_columns: dict[str, int] = field(default_factory=dict)
    dynamic: bool = False
    dynamic_shape: bool = False
    half: bool = False
    channel_order: str = "RGB"
    quantization: str = "none"
    version: str = ""
    schema: int = METADATA_SCHEMA

    @property
    def stride(self) -> int:
        """Largest stride, pixels: letterboxed sides must be multiples of it."""
        return max(self.strides)

    @property
    def num_keypoints(self) -> int:
        return self.skeleton.num_keypoints

    def to_props(self) -> dict[str, str]:
        """Flat ``{key: string}`` for ONNX ``metadata_props``; non-strings are JSON."""
        return {
            "format": FORMAT_TAG,
            "schema": str(self.schema),
            "erpose_version": self.version,
            "model_name": self.model_name,
            "step": self.step,
            "skeleton": json.dumps(self.skeleton.to_dict()),
            "names": json.dumps(list(self.skeleton.keypoint_names)),
            "kpt_shape": json.dumps([self.num_keypoints, 3]),
            "imgsz": json.dumps(list(self.imgsz)),
            "stride": str(self.stride),
            "strides": json.dumps(list(self.strides)),
            "max_det": str(self.max_det),
            "needs_nms": json.dumps(self.needs_nms),
            "nms": self.nms,
            "nms_iou": repr(float(self.nms_iou)),
            "raw_columns": json.dumps(self.raw_columns),
            "dynamic": json.dumps(self.dynamic),
            "dynamic_shape": json.dumps(self.dynamic_shape),
            "half": json.dumps(self.half),
            "channel_order": self.channel_order,
            "quantization": self.quantization,
            "input": "images: (B, 3, H, W) float in [0, 1], letterboxed, " + self.channel_order,
            "output_layout": OUTPUT_LAYOUT,
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "<metadata>") -> ExportMetadata:
        """Parse ``metadata_props``; raises :class:`OnnxModelError` naming ``source`` and the key."""
        if props.get("format") != FORMAT_TAG:
            raise OnnxModelError(
                f"{source}: not an erpose ONNX export (metadata key 'format' is "
                f"{props.get('format')!r}, expected {FORMAT_TAG!r}); export it with `erpose export`"
            )
        key = "schema"
        try:
            schema = int(props["schema"])
            if schema > METADATA_SCHEMA:
                raise OnnxModelError(f"{source}: metadata schema {schema} is newer than this erpose reads "
                                     f"({METADATA_SCHEMA}); upgrade erpose")
            key = "skeleton"
            skeleton = Skeleton.from_dict(json.loads(props[key]))
            key = "imgsz"
            imgsz = tuple(int(v) for v in json.loads(props[key]))
            if len(imgsz) != 2:
                raise ValueError(f"expected [H, W], got {imgsz}")
            key = "strides"
            strides = tuple(int(v) for v in json.loads(props[key]))
            key = "max_det"
            max_det = int(props[key])
            key = "nms"
            nms = props.get(key, "none")
            if nms not in NMS_KINDS:
                raise ValueError(f"unknown NMS kind {nms!r}, expected one of {NMS_KINDS}")
            key = "raw_columns"
            raw_columns = {str(k): int(v) for k, v in json.loads(props.get(key, "{}")).items()}
            return cls(
                skeleton=skeleton, imgsz=imgsz, strides=strides, max_det=max_det,  # type: ignore[arg-type]
                model_name=props.get("model_name", "erpose"), step=props.get("step", ""),
                needs_nms=bool(json.loads(props.get("needs_nms", "false"))), nms=nms,
                nms_iou=float(props.get("nms_iou", "0.7")), raw_columns=raw_columns,
                dynamic=bool(json.loads(props.get("dynamic", "false"))),
                dynamic_shape=bool(json.loads(props.get("dynamic_shape", "false"))),
                half=bool(json.loads(props.get("half", "false"))),
                channel_order=props.get("channel_order", "RGB"), quantization=props.get("quantization", "none"),
                version=props.get("erpose_version", ""),
                schema=schema,
            )
        except OnnxModelError:
            raise
        except (KeyError, ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise OnnxModelError(f"{source}: bad erpose metadata key {key!r}: {exc!r}") from exc


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the erpose ONNX runtime needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


def session_options(threads: int | None = None):
    """ORT options: ``threads`` intra-op threads (None = ORT default), sequential graph execution.

    With ``OMP_WAIT_POLICY=PASSIVE`` in the environment (``erpose serve`` sets it) the intra-op
    threads sleep between operations instead of spinning, as OpenMP's do: a spinning pool slows
    down whenever anything else wants the cores (measured on 2 shared cores, ER-Pose-n at 640 px:
    ~85 ms per image passive, ~155 ms spinning).
    """
    ort = _ort()
    options = ort.SessionOptions()
    if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        # Pose graphs are a single chain; inter-op parallelism only adds thread contention.
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class ExportedSession:
    """What every exported-model session shares: metadata accessors, the input check, and
    :meth:`run` (the graph, then the numpy NMS a baseline graph leaves to the runtime).

    A subclass sets ``path``, ``metadata`` and ``conf`` and implements :meth:`run_raw`.
    """

    path: Path
    metadata: ExportMetadata
    conf: float

    @property
    def skeleton(self) -> Skeleton:
        return self.metadata.skeleton

    @property
    def imgsz(self) -> tuple[int, int]:
        return self.metadata.imgsz

    def check_input(self, images: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """``images`` as a contiguous (B, 3, H, W) array of ``dtype``; a fixed-size graph's H, W checked."""
        images = np.ascontiguousarray(images, dtype=dtype)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.path}: expected (B, 3, H, W) images, got {images.shape}")
        meta = self.metadata
        if not meta.dynamic_shape and tuple(images.shape[2:]) != meta.imgsz:
            raise ValueError(f"{self.path}: exported with a fixed input of {meta.imgsz}, got "
                             f"{tuple(images.shape[2:])}; letterbox to that size or re-export with --dynamic")
        return images

    def run_raw(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, images: np.ndarray, conf: float | None = None) -> np.ndarray:
        """Poses for a batch of letterboxed images.

        Args:
            images: (B, 3, H, W) float in [0, 1], channel order ``metadata.channel_order``.
            conf: score threshold of the numpy NMS of baseline graphs (None: :attr:`conf`);
                NMS-free graphs return all their rows whatever it is.

        Returns:
            (B, N, 1 + 3K) float32, N <= ``max_det``: score, then x, y, conf per keypoint in
            input pixels, sorted by descending score. NMS graphs pad missing rows with zeros.
        """
        raw = self.run_raw(images).astype(np.float32, copy=False)
        meta = self.metadata
        if not meta.needs_nms:
            return raw
        return nms_poses(raw, kind=meta.nms, raw_columns=meta.raw_columns, sigmas=meta.skeleton.sigmas_array(),
                         conf=self.conf if conf is None else float(conf), iou=meta.nms_iou, max_det=meta.max_det)

    __call__ = run


class PoseSession(ExportedSession):
    """An erpose ONNX file loaded in ONNX Runtime.

    Args:
        path: the ``.onnx`` file written by ``erpose export``.
        providers: ORT execution providers; default CPU only.
        threads: ``intra_op_num_threads`` (None = ORT default, all cores).
        conf: person-score threshold used by the numpy NMS of baseline graphs (ER-Pose graphs
            return all ``max_det`` rows and leave thresholding to the caller).

    Raises:
        FileNotFoundError: no such file.
        OnnxModelError: unreadable / corrupt file, or a file without erpose metadata.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
        conf: float = 0.001,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file")
        ort = _ort()
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=session_options(threads),
                providers=providers or ["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            raise OnnxModelError(f"{self.path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0][:300]})") from exc
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ExportMetadata.from_props(props, str(self.path))
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise OnnxModelError(f"{self.path}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        self.input_name = inputs[0].name
        self.input_dtype = np.float16 if "float16" in inputs[0].type else np.float32
        self.conf = float(conf)

    def run_raw(self, images: np.ndarray) -> np.ndarray:
        """The graph's own output for (B, 3, H, W) images in [0, 1] (cast to the input dtype)."""
        images = self.check_input(images, self.input_dtype)
        return self.session.run(None, {self.input_name: images})[0]


def read_metadata(path: str | os.PathLike) -> ExportMetadata:
    """Metadata of an erpose ONNX file without building an inference session (needs ``onnx``)."""
    try:
        import onnx
    except ImportError:
        return PoseSession(path).metadata
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise OnnxModelError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from exc
    return ExportMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))


def load_backend(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
    """The prediction backend of an ``.onnx`` file (:class:`erpose.runtime.predict.OnnxBackend`).

    ``erpose.engine.predictor.load_backend`` calls this for ``.onnx`` weights.
    """
    from erpose.runtime.predict import OnnxBackend

    return OnnxBackend(path, threads=threads, providers=providers)
