"""End-to-end ONNX Runtime CPU latency: ER-Pose-n vs the YOLO-Pose baseline-n (and YOLO11n/YOLO26n-pose).

What is timed, per image, batch 1, at 640 px, identically for every model in ONE process with the
same onnxruntime, the same threads and the same pre/post-processing code:

    letterbox + BGR->RGB/CHW/255  ->  session.run  ->  decode (threshold, NMS where the model needs
    it)  ->  keypoints mapped back to the original image

Models:
    erpose-n      ER-Pose, NMS-free: the graph returns (1, 100, 52) decoded, sorted and top-k'd.
    yolopose-n    this project's YOLO-Pose baseline: raw anchors out, box NMS (IoU 0.7) in numpy.
    yolo11n-pose  ultralytics, exported from its packaged YAML (nc=1, kpt_shape 17x3, random weights):
                  raw (1, 56, 8400) out, the same numpy box NMS.
    yolo26n-pose  ultralytics end-to-end (NMS-free) export: (1, 100, 57) boxes, score, class, keypoints.

The ultralytics models are exported by *another* interpreter that has ultralytics installed (a
separate virtual environment; ultralytics is not an erpose dependency), with sockets blocked so a
weights download cannot happen silently; this script re-runs itself there with
``--export-ultralytics DIR`` and then times every file here.

Random weights: scores of fresh YOLO-style heads sit near their prior (about 1e-3), so at
``--conf 0.25`` almost nothing enters the NMS; the table reports the NMS candidate count, and the
NMS models' post-processing is then a lower bound (real scenes give them tens to hundreds).

Usage (ER-Pose-n vs baseline-n only, or with the peers when the venv exists)::

    python benchmarks/bench_latency_onnx.py --runs 50 --threads 2
    python benchmarks/bench_latency_onnx.py --ultra-python /work/venv-ultra/bin/python
    python benchmarks/bench_latency_onnx.py --int8 DATA_DIR --onnx my-model-int8.onnx   # + INT8 rows
    python benchmarks/bench_latency_onnx.py --no-zoo --onnx m.onnx --openvino m_openvino/ \
        --yolo11-weights yolo11n-pose.pt --peers-openvino      # trained files; OpenVINO rows too

``--openvino IR`` times an erpose OpenVINO IR (``erpose export --format openvino``) with the OpenVINO
runtime (``INFERENCE_NUM_THREADS`` = ``--threads``, latency hint, f32 precision for the float parts),
through the same pre- and post-processing; ``--peers-openvino`` adds the ultralytics files converted
to OpenVINO (fp32) by ``openvino.convert_model``, for a same-runtime comparison, and
``--peers-int8 CALIB`` YOLO11n-pose quantised by NNCF with erpose's own OpenVINO INT8 recipe.

Relation to ``benchmarks/bench_latency.py`` (the model engineer's PyTorch latency script): that
one times the PyTorch forward; this one is the deployment path (ONNX Runtime, end to end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ULTRA_PYTHON = "/work/venv-ultra/bin/python"
ULTRA_MODELS = {"yolo11n-pose": ("11", "yolo11-pose.yaml", {}), "yolo26n-pose": ("26", "yolo26-pose.yaml", {"nms": False})}


# --------------------------------------------------------------------------- ultralytics side
def export_ultralytics(out_dir: str, imgsz: int, max_det: int, yolo11_weights: str | None = None) -> int:
    """Run inside the ultralytics venv: write yolo11n-pose.onnx and yolo26n-pose.onnx to ``out_dir``."""
    import socket

    attempts: list[str] = []

    def blocked(self, address, *args, **kwargs):
        attempts.append(str(address))
        raise OSError(f"network blocked during the benchmark export: {address}")

    socket.socket.connect = blocked  # a weights/font download would fail loudly, not silently
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics
    import yaml
    from ultralytics import YOLO

    cfg_root = Path(ultralytics.__file__).parent / "cfg" / "models"
    out = Path(out_dir)
    report = {"ultralytics": ultralytics.__version__, "files": {}}
    for name, (family, yaml_name, extra) in ULTRA_MODELS.items():
        spec = yaml.safe_load((cfg_root / family / yaml_name).read_text())
        spec["nc"], spec["kpt_shape"] = 1, [17, 3]  # one class (person), COCO keypoints
        model_yaml = out / f"{name}.yaml"  # the "n" in the file name picks the scale
        model_yaml.write_text(yaml.safe_dump(spec))
        model = YOLO(str(model_yaml), task="pose")
        if name == "yolo11n-pose" and yolo11_weights:  # the trained COCO weights: realistic NMS load
            model = YOLO(yolo11_weights, task="pose")
        params = sum(p.numel() for p in model.model.parameters())
        cwd = os.getcwd()
        os.chdir(out)
        try:
            path = model.export(format="onnx", imgsz=imgsz, opset=17, simplify=False, dynamic=False, batch=1,
                                max_det=max_det, **extra)
        finally:
            os.chdir(cwd)
        report["files"][name] = {"path": str(Path(out, path).resolve()), "params": params}
    report["network_attempts"] = attempts
    print("ULTRA_REPORT " + json.dumps(report))
    return 0


# --------------------------------------------------------------------------- timing side
class Pipeline:
    """One model's end-to-end path: shared preprocess, its session, its decode, shared un-letterbox."""

    def __init__(self, name: str, path: Path, kind: str, threads: int, conf: float, max_det: int,
                 engine: str = "ort") -> None:
        self.name, self.path, self.kind, self.conf, self.max_det, self.engine = name, path, kind, conf, max_det, engine
        self.params = None
        self.candidates: list[int] = []
        if engine == "openvino":  # an erpose IR, or a peer's ONNX file converted in memory
            import openvino as ov

            from erpose.runtime import openvino_session

            core = ov.Core()
            xml = openvino_session.openvino_xml(path)
            model = core.read_model(str(xml)) if xml is not None else ov.convert_model(str(path))
            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            self.request = core.compile_model(model, "CPU", config).create_infer_request()
            if kind in ("erpose", "baseline"):
                self.meta = openvino_session.metadata_of(model, str(xml))
            return
        import onnxruntime as ort

        from erpose.runtime.session import session_options

        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        if kind in ("erpose", "baseline"):
            from erpose.runtime.session import PoseSession

            self.meta = PoseSession(path).metadata

    def infer(self, batch):
        if self.engine == "openvino":
            self.request.infer({0: batch})
            return self.request.get_output_tensor(0).data
        return self.session.run(None, {self.input_name: batch})[0]

    def decode(self, raw, np):
        """Raw graph output (batch 1) -> (n, 1 + 3K) rows, score > conf, input pixels."""
        from erpose.runtime.nms import box_nms, nms_poses

        if self.kind == "erpose":  # decoded, sorted, top-k'd in the graph
            rows = raw[0]
            self.candidates.append(0)
            return rows[rows[:, 0] > self.conf]
        if self.kind == "baseline":
            meta = self.meta
            self.candidates.append(int((raw[0][:, meta.raw_columns["score"]] > self.conf).sum()))
            rows = nms_poses(raw, kind=meta.nms, raw_columns=meta.raw_columns, sigmas=meta.skeleton.sigmas_array(),
                             conf=self.conf, iou=meta.nms_iou, max_det=self.max_det)[0]
            return rows[rows[:, 0] > self.conf]
        if self.kind == "yolo11":  # (1, 4 + 1 + 3K, A): cx, cy, w, h, score, keypoints
            anchors = raw[0].T
            anchors = anchors[anchors[:, 4] > self.conf]
            self.candidates.append(len(anchors))
            boxes = np.concatenate([anchors[:, :2] - anchors[:, 2:4] / 2, anchors[:, :2] + anchors[:, 2:4] / 2], 1)
            keep = box_nms(boxes, anchors[:, 4], 0.7, max_keep=self.max_det)
            return np.concatenate([anchors[keep, 4:5], anchors[keep, 5:]], 1)
        # yolo26 end-to-end: (1, max_det, 4 + 1 + 1 + 3K): x1, y1, x2, y2, score, class, keypoints
        rows = raw[0]
        rows = rows[rows[:, 4] > self.conf]
        self.candidates.append(0)
        return np.concatenate([rows[:, 4:5], rows[:, 6:]], 1)

    def run_once(self, image, imgsz, np) -> dict[str, float]:
        from erpose.runtime.predict import postprocess, preprocess

        t0 = time.perf_counter()
        batch, params = preprocess([image], (imgsz, imgsz))
        t1 = time.perf_counter()
        raw = self.infer(batch)
        t2 = time.perf_counter()
        rows = self.decode(raw, np)
        postprocess(rows[rows[:, 0] > self.conf], params[0], 17, max_det=self.max_det)
        t3 = time.perf_counter()
        return {"pre": t1 - t0, "infer": t2 - t1, "post": t3 - t2, "total": t3 - t0}


def _load_image(path: str | None, np):
    import cv2

    if path:
        image = cv2.imread(path)
        if image is None:
            raise FileNotFoundError(f"cannot read image {path}")
        return image, path
    real = Path(os.environ.get("ERPOSE_REAL_DATA", Path(__file__).resolve().parents[1] / "../shared/data/real"))
    for candidate in sorted(real.rglob("*.jpg"))[:1] if real.is_dir() else []:
        return cv2.imread(str(candidate)), str(candidate)
    return np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8), "random 480x640"


def _export_erpose(out: Path, imgsz: int, max_det: int, extra: list[str]) -> dict[str, tuple[Path, str]]:
    """{label: (ONNX path, pipeline kind)} for erpose-n, yolopose-n and each ``--extra`` model."""
    import torch

    from erpose.export.onnx import OnnxExportConfig, export_onnx
    from erpose.models.checkpoint import load_model

    torch.manual_seed(0)
    files = {}
    for name in ("erpose-n", "yolopose-n", *extra):
        model = load_model(name)
        label = Path(name).stem if name.endswith((".yaml", ".yml", ".pt")) else name
        kind = "erpose" if model.config.head.kind == "er" and model.config.head.o2o else "baseline"
        files[label] = (export_onnx(model, out / f"{label}.onnx", OnnxExportConfig(imgsz=imgsz, max_det=max_det),
                                    model_name=label), kind)
    return files


def _quantise(files: dict[str, tuple[Path, str]], out: Path, calib: str, calib_images: int,
              ) -> dict[str, tuple[Path, str]]:
    """An ``<label>-int8`` static INT8 (QDQ) copy of every ER-Pose file (the NMS baselines are left out)."""
    from erpose.export.quantize import Int8Config, quantize_onnx

    config = Int8Config(calib=calib, calib_images=calib_images)
    return {f"{label}-int8": (quantize_onnx(path, out / f"{label}-int8.onnx", config), kind)
            for label, (path, kind) in files.items() if kind == "erpose"}


def _existing(paths: list[str]) -> dict[str, tuple[Path, str]]:
    """``--onnx`` files: {stem: (path, kind)}, the kind read from the erpose metadata."""
    from erpose.runtime.session import read_metadata

    return {Path(p).stem: (Path(p), "baseline" if read_metadata(p).needs_nms else "erpose") for p in paths}


def _existing_openvino(paths: list[str]) -> dict[str, tuple[Path, str]]:
    """``--openvino`` IRs: {label: (path, kind)}; the label is the folder (or .xml) name."""
    from erpose.runtime.openvino_session import read_metadata

    return {Path(p).name.removesuffix(".xml"): (Path(p), "baseline" if read_metadata(p).needs_nms else "erpose")
            for p in paths}


def _quantise_peer(onnx_path: Path, out: Path, calib: str, calib_images: int, imgsz: int) -> Path:
    """A peer's ONNX file as an NNCF INT8 OpenVINO IR, made as erpose makes its own (MIXED preset, the
    nodes that reach no convolution and the last convolutions kept float)."""
    import nncf
    import openvino as ov

    from erpose.export.openvino import _CalibrationSet, float_ops
    from erpose.export.quantize import calibration_files

    model = ov.convert_model(str(onnx_path))
    data = _CalibrationSet(calibration_files(calib, calib_images), (imgsz, imgsz), "RGB")
    quantized = nncf.quantize(model, nncf.Dataset(data), preset=nncf.QuantizationPreset.MIXED, subset_size=len(data),
                              ignored_scope=nncf.IgnoredScope(names=float_ops(model), validate=False))
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out / "model.xml"), compress_to_fp16=False)
    return out / "model.xml"


def _export_peers(python: str, out: Path, imgsz: int, max_det: int, yolo11_weights: str | None = None,
                  ) -> dict[str, dict]:
    env = dict(os.environ, YOLO_CONFIG_DIR=str(out / "ultralytics-config"), YOLO_OFFLINE="1")
    weights = ["--yolo11-weights", os.path.abspath(yolo11_weights)] if yolo11_weights else []
    proc = subprocess.run([python, os.path.abspath(__file__), "--export-ultralytics", str(out),
                           "--imgsz", str(imgsz), "--max-det", str(max_det), *weights],
                          capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ULTRA_REPORT ")]
    if proc.returncode != 0 or not lines:
        print(f"ultralytics export failed (rc {proc.returncode}); timing erpose models only\n"
              f"{proc.stderr[-1500:]}", file=sys.stderr)
        return {}
    report = json.loads(lines[-1][len("ULTRA_REPORT "):])
    if report["network_attempts"]:
        print(f"note: the ultralytics export tried to reach {report['network_attempts']} (blocked)", file=sys.stderr)
    print(f"ultralytics {report['ultralytics']} exported: {', '.join(report['files'])}", file=sys.stderr)
    return report["files"]


def _stats(values, np) -> dict[str, float]:
    ms = np.asarray(values) * 1e3
    p10, p25, p50, p75, p90 = np.percentile(ms, [10, 25, 50, 75, 90])
    return {"median": p50, "p10": p10, "p90": p90, "iqr": p75 - p25, "mean": float(ms.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model (>= 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="ORT intra_op_num_threads")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--conf", type=float, default=0.25, help="person score threshold (drawing default)")
    parser.add_argument("--max-det", type=int, default=100)
    parser.add_argument("--image", default=None, help="image to time on (default: a real photo or random)")
    parser.add_argument("--ultra-python", default=os.environ.get("ERPOSE_ULTRA_PYTHON", DEFAULT_ULTRA_PYTHON),
                        help="python of a venv with ultralytics (skipped when missing)")
    parser.add_argument("--no-peers", action="store_true", help="time the erpose models only")
    parser.add_argument("--extra", action="append", default=[], metavar="MODEL",
                        help="also time this zoo name, model YAML or checkpoint (repeatable)")
    parser.add_argument("--onnx", action="append", default=[], metavar="FILE",
                        help="also time this erpose ONNX file as it is (float or INT8; repeatable)")
    parser.add_argument("--int8", default=None, metavar="CALIB",
                        help="also time an INT8 (QDQ) copy of each ER-Pose model, calibrated on this folder "
                             "of images or SynthCrowd preset")
    parser.add_argument("--calib-images", type=int, default=64, help="calibration images of --int8")
    parser.add_argument("--openvino", action="append", default=[], metavar="IR",
                        help="also time this erpose OpenVINO IR (folder or .xml) with OpenVINO (repeatable)")
    parser.add_argument("--peers-openvino", action="store_true",
                        help="also time the ultralytics files converted to OpenVINO (fp32)")
    parser.add_argument("--peers-int8", default=None, metavar="CALIB",
                        help="also time YOLO11n-pose quantised to INT8 by NNCF for OpenVINO (the same recipe and "
                             "float split as erpose's --format openvino --int8), calibrated on this folder or preset")
    parser.add_argument("--yolo11-weights", default=None, metavar="PT",
                        help="export YOLO11n-pose from these trained weights instead of its YAML (random weights)")
    parser.add_argument("--no-zoo", action="store_true",
                        help="skip the freshly initialised erpose-n and yolopose-n (time only the given files)")
    parser.add_argument("--reference", default=None,
                        help="row the 'reference / model' column divides (default erpose-n, else the first row)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--export-ultralytics", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export_ultralytics:
        return export_ultralytics(args.export_ultralytics, args.imgsz, args.max_det, args.yolo11_weights)
    if args.runs < 30:
        parser.error("--runs must be at least 30 for a median and spread worth reporting")

    import numpy as np
    import onnxruntime as ort

    image, image_name = _load_image(args.image, np)
    with tempfile.TemporaryDirectory(prefix="erpose-bench-") as tmp:
        out = Path(tmp)
        files = {} if args.no_zoo else _export_erpose(out, args.imgsz, args.max_det, args.extra)
        if args.int8:
            files.update(_quantise(files, out, args.int8, args.calib_images))
        files.update(_existing(args.onnx))
        pipelines = [Pipeline(n, p, kind, args.threads, args.conf, args.max_det) for n, (p, kind) in files.items()]
        pipelines += [Pipeline(f"{n} (OpenVINO)", p, kind, args.threads, args.conf, args.max_det, engine="openvino")
                      for n, (p, kind) in _existing_openvino(args.openvino).items()]
        if not args.no_peers and Path(args.ultra_python).is_file():
            peers = _export_peers(args.ultra_python, out, args.imgsz, args.max_det, args.yolo11_weights)
            for name, info in peers.items():
                kind = "yolo11" if "11" in name else "yolo26"
                pipelines.append(Pipeline(name, Path(info["path"]), kind, args.threads, args.conf, args.max_det))
                if args.peers_openvino:
                    try:
                        pipelines.append(Pipeline(f"{name} (OpenVINO)", Path(info["path"]), kind, args.threads,
                                                  args.conf, args.max_det, engine="openvino"))
                    except RuntimeError as exc:  # e.g. YOLO26's end-to-end graph fails OpenVINO's shape checks
                        print(f"{name}: OpenVINO cannot convert it, left out ({str(exc).splitlines()[0][:200]})",
                              file=sys.stderr)
                if args.peers_int8 and kind == "yolo11":
                    xml = _quantise_peer(Path(info["path"]), out / f"{name}-int8", args.peers_int8,
                                         args.calib_images, args.imgsz)
                    pipelines.append(Pipeline(f"{name} INT8 (OpenVINO)", xml, kind, args.threads, args.conf,
                                              args.max_det, engine="openvino"))
        elif not args.no_peers:
            print(f"no ultralytics venv at {args.ultra_python}: timing erpose models only", file=sys.stderr)

        for _ in range(args.warmup):
            for p in pipelines:
                p.run_once(image, args.imgsz, np)
        for p in pipelines:
            p.candidates.clear()
        times: dict[str, list[dict[str, float]]] = {p.name: [] for p in pipelines}
        for i in range(args.runs):  # round robin, rotated, so load drift hits every model alike
            for p in pipelines[i % len(pipelines):] + pipelines[: i % len(pipelines)]:
                times[p.name].append(p.run_once(image, args.imgsz, np))

    rows = {}
    for p in pipelines:
        rows[p.name] = {stage: _stats([t[stage] for t in times[p.name]], np) for stage in ("pre", "infer", "post", "total")}
        rows[p.name]["nms_candidates"] = float(np.mean(p.candidates)) if p.candidates else 0.0
    reference = args.reference or ("erpose-n" if "erpose-n" in rows else next(iter(rows)))
    ours = rows[reference]["total"]["median"]
    peer = rows.get("yolo11n-pose", {}).get("total", {}).get("median")
    engines = f"ONNX Runtime {ort.__version__}"
    if any(p.engine == "openvino" for p in pipelines):
        import openvino

        engines += f", OpenVINO {openvino.__version__.split('-')[0]}"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n{engines} CPU, {args.threads} threads, batch 1, {args.imgsz} px, "
          f"{args.runs} runs (+{args.warmup} warm-up), image: {image_name}, conf {args.conf}, "
          f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| model | end-to-end median ms | p10-p90 ms | IQR ms | infer ms | pre ms | post ms "
          f"| NMS candidates | {reference} / model | model / YOLO11n-pose |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        t = r["total"]
        print(f"| {name} | {t['median']:.1f} | {t['p10']:.1f}-{t['p90']:.1f} | {t['iqr']:.1f} | "
              f"{r['infer']['median']:.1f} | {r['pre']['median']:.2f} | {r['post']['median']:.2f} | "
              f"{r['nms_candidates']:.0f} | {ours / t['median']:.2f} | "
              f"{t['median'] / peer if peer else float('nan'):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "image": image_name, "load_average": load,
                                               "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
