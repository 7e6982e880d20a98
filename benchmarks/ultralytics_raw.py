"""Run a released ultralytics pose checkpoint itself: raw decoded head outputs and COCO predictions.

Runs INSIDE a virtual environment that has ultralytics (not an erpose dependency; this file
imports nothing from erpose), e.g. ``/work/venv-ultra/bin/python``. ``benchmarks/pretrained_parity.py``
calls it and compares what it writes with the converted erpose model. Sockets are blocked and
``YOLO_OFFLINE=1``: nothing is downloaded.

    /work/venv-ultra/bin/python benchmarks/ultralytics_raw.py --weights yolo11n-pose.pt \
        --inputs inputs.npz --raw-out raw.npz --predict-dir val2017 --predict-out preds.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path


def block_network() -> None:
    def blocked(self, address, *args, **kwargs):
        raise OSError(f"network blocked by ultralytics_raw.py: {address}")

    socket.socket.connect = blocked
    os.environ["YOLO_OFFLINE"] = "1"


def raw_outputs(model, inputs: Path, out: Path) -> None:
    """The eval-mode head output on the given letterboxed batch: (N, 4 + nc + 3K, A), decoded."""
    import numpy as np
    import torch

    images = torch.from_numpy(np.load(inputs)["images"])
    net = model.model.float().eval()
    with torch.no_grad():
        output = net(images)
    output = output[0] if isinstance(output, (list, tuple)) else output
    np.savez(out, output=output.numpy(), nc=len(net.names))


def predict(model, folder: Path, imgsz: int, conf: float, iou: float, max_det: int) -> list[dict]:
    """COCO keypoint results keyed by integer file stem (COCO image ids), box score as the person score."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    results = []
    for path in files:
        result = model.predict(str(path), imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, verbose=False, device="cpu")[0]
        if result.keypoints is None or len(result.boxes) == 0:
            continue
        for keypoints, score in zip(result.keypoints.data.numpy(), result.boxes.conf.numpy()):
            results.append({"image_id": int(path.stem), "category_id": 1, "score": float(score),
                            "keypoints": [float(v) for v in keypoints.reshape(-1)]})
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--inputs", help="npz with 'images' (N, 3, H, W) float32 in [0, 1]")
    p.add_argument("--raw-out", help="npz to write the decoded head output to")
    p.add_argument("--predict-dir", help="image folder to predict (file stems are COCO image ids)")
    p.add_argument("--predict-out", help="COCO results JSON to write")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--conf", type=float, default=0.001)
    p.add_argument("--iou", type=float, default=0.65)
    p.add_argument("--max-det", type=int, default=100)
    args = p.parse_args(argv)
    block_network()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = YOLO(args.weights)
    if args.inputs and args.raw_out:
        raw_outputs(model, Path(args.inputs), Path(args.raw_out))
    if args.predict_dir and args.predict_out:
        results = predict(model, Path(args.predict_dir), args.imgsz, args.conf, args.iou, args.max_det)
        Path(args.predict_out).write_text(json.dumps(results))
    import ultralytics

    print(json.dumps({"ultralytics": ultralytics.__version__, "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
