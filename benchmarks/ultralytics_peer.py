"""Train an ultralytics pose model from scratch on a SynthCrowd dataset, predict, export: one ablation peer.

Runs INSIDE a virtual environment that has ultralytics (it is not an erpose dependency and this
file imports nothing from erpose), e.g. ``/work/venv-ultra/bin/python``. ``benchmarks/ablation.py``
calls it; the COCO results files it writes are scored there by erpose's evaluator, so that every
row of the table is measured the same way.

    /work/venv-ultra/bin/python benchmarks/ultralytics_peer.py --model yolo11n-pose \
        --data ~/.cache/erpose/synth/synthcrowd-s-v1/data.yaml --epochs 5 --imgsz 160 --batch 16 \
        --nbs 16 --warmup-epochs 1 --out runs/ablation/yolo11n-pose_s0 \
        --predict synthcrowd-s=/path/to/images/val

From scratch: the model is built from the packaged YAML (``nc=1``, ``kpt_shape [17, 3]``) and
``pretrained=False``. Nothing is downloaded: sockets are blocked (a font or weights download
fails loudly instead of silently), ``YOLO_OFFLINE=1``, ``amp=False`` (the AMP check fetches
weights) and ``plots=False``. Writes ``OUT/peer.json`` last (its presence marks the run done).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

FAMILY = {"yolo11n-pose": ("11", "yolo11-pose.yaml", {}), "yolo26n-pose": ("26", "yolo26-pose.yaml", {"nms": False})}
NETWORK_ATTEMPTS: list[str] = []


def block_network() -> None:
    """Make every outgoing connection fail, and remember what was tried."""

    def blocked(self, address, *args, **kwargs):
        NETWORK_ATTEMPTS.append(str(address))
        raise OSError(f"network blocked by ultralytics_peer.py: {address}")

    socket.socket.connect = blocked
    os.environ["YOLO_OFFLINE"] = "1"


def mirror_dataset(data_yaml: Path, out: Path) -> Path:
    """A YOLO-pose copy of the dataset under ``out``: images linked, labels copied.

    Ultralytics writes ``labels/*.cache`` next to the labels; the copy keeps the shared erpose
    dataset cache untouched.
    """
    import yaml

    spec = yaml.safe_load(data_yaml.read_text())
    src = Path(spec.get("path") or data_yaml.parent)
    if not src.is_absolute():
        src = (data_yaml.parent / src).resolve()
    dst = out / "data"
    for split in ("train", "val"):
        (dst / "images").mkdir(parents=True, exist_ok=True)
        link = dst / "images" / split
        if not link.exists():
            link.symlink_to((src / "images" / split).resolve(), target_is_directory=True)
        if not (dst / "labels" / split).exists():
            shutil.copytree(src / "labels" / split, dst / "labels" / split)
    spec.update(path=str(dst), train="images/train", val="images/val")
    (dst / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dst / "data.yaml"


def model_yaml(name: str, out: Path) -> Path:
    """The packaged model YAML with one class (person) and COCO-17 keypoints, named ``<name>.yaml``."""
    import ultralytics
    import yaml

    family, file, _ = FAMILY[name]
    spec = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg" / "models" / family / file).read_text())
    spec["nc"], spec["kpt_shape"] = 1, [17, 3]
    path = out / f"{name}.yaml"  # the "n" in the file name picks the scale
    path.write_text(yaml.safe_dump(spec))
    return path


def predict(model, images: Path, imgsz: int, batch: int, device: str = "cpu") -> list[dict]:
    """COCO keypoint results (original pixels) keyed by image file stem, at conf 0.001."""
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    dets: list[dict] = []
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        for path, result in zip(chunk, model.predict([str(p) for p in chunk], imgsz=imgsz, conf=0.001, iou=0.7,
                                                      max_det=100, verbose=False, device=device)):
            if result.keypoints is None or len(result.boxes) == 0:
                continue
            kpts = result.keypoints.data.cpu().numpy()  # (n, 17, 3): x, y, confidence
            scores = result.boxes.conf.cpu().numpy()
            for k, s in zip(kpts, scores):
                dets.append({"image_stem": path.stem, "category_id": 1, "score": round(float(s), 5),
                             "keypoints": [round(float(v), 2 if j % 3 < 2 else 5) for j, v in enumerate(k.reshape(-1))]})
    return dets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(FAMILY))
    p.add_argument("--data", required=True, type=Path, help="YOLO-pose data.yaml (a SynthCrowd folder's)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--imgsz", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nbs", type=int, default=64, help="nominal batch (gradient accumulation target)")
    p.add_argument("--warmup-epochs", type=float, default=3.0)
    p.add_argument("--augment", nargs="*", default=[], metavar="KEY=VALUE",
                   help="ultralytics augmentation arguments (hsv_h, scale, mosaic, close_mosaic...), e.g. "
                        "erpose's AugmentConfig of the rows this peer is compared with")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="ultralytics device: cpu, 0, ...")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--predict", action="append", default=[], help="NAME=IMAGE_DIR, repeatable")
    p.add_argument("--export-imgsz", type=int, default=640, help="ONNX export size (0: no export)")
    args = p.parse_args(argv)

    block_network()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = mirror_dataset(args.data, out)
    weights = out / "train" / "weights"
    start = time.perf_counter()
    if not (weights / "best.pt").is_file():
        last = weights / "last.pt"
        model = YOLO(str(last) if last.is_file() else str(model_yaml(args.model, out)), task="pose")
        model.add_callback("on_pretrain_routine_end", lambda trainer: torch.set_num_threads(args.threads))
        augment = {"close_mosaic": 10, **{k: float(v) for k, v in (a.split("=", 1) for a in args.augment)}}
        augment["close_mosaic"] = int(augment["close_mosaic"])
        model.train(**augment, data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, seed=args.seed,
                    deterministic=True, workers=args.workers, device=args.device, pretrained=False, amp=False,
                    plots=False, project=str(out), name="train", exist_ok=True, nbs=args.nbs,
                    warmup_epochs=args.warmup_epochs, optimizer="auto", patience=0,
                    resume=bool(last.is_file()), verbose=False)
    train_s = time.perf_counter() - start
    csv = out / "train" / "results.csv"
    if csv.is_file():  # cumulative seconds per epoch (training + validation), also after a resume
        import csv as csv_module

        rows = [{k.strip(): v for k, v in r.items()} for r in csv_module.DictReader(csv.open())]
        train_s = float(rows[-1]["time"]) if rows and "time" in rows[-1] else train_s
    model = YOLO(str(weights / "best.pt"), task="pose")
    n_train = sum(1 for _ in (out / "data" / "labels" / "train").glob("*.txt"))
    predictions = {}
    for item in args.predict:
        name, _, folder = item.partition("=")
        path = out / f"predictions_{name}.json"
        path.write_text(json.dumps(predict(model, Path(folder), args.imgsz, args.batch, args.device)))
        predictions[name] = str(path)
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    params = get_num_params(model.model)
    fused = YOLO(str(weights / "best.pt"), task="pose")
    fused.fuse()
    params_fused, gflops_fused = get_num_params(fused.model), get_flops(fused.model, imgsz=640)
    onnx_path = None
    if args.export_imgsz:
        _, _, extra = FAMILY[args.model]
        exported = model.export(format="onnx", imgsz=args.export_imgsz, opset=17, simplify=False, dynamic=False,
                                batch=1, max_det=100, **extra)
        onnx_path = str(out / "model.onnx")
        shutil.copyfile(exported, onnx_path)
    import ultralytics

    info = {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "params": int(params_fused),
            "params_unfused": int(params), "gflops_640": float(gflops_fused), "predictions": predictions,
            "onnx": onnx_path, "results_csv": str(csv) if csv.is_file() else None, "train_wall_s": train_s,
            "epoch_img_s": [n_train * args.epochs / train_s] if train_s > 1 else [],
            "network_attempts": NETWORK_ATTEMPTS}
    tmp = out / "peer.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / "peer.json")
    print("network attempts (blocked):", NETWORK_ATTEMPTS or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
