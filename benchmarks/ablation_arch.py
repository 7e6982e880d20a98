"""Architecture columns of the ablation table for every row, without training: parameters, GFLOPs,
ONNX Runtime end-to-end latency and training-step throughput, all measured in one process.

These do not depend on training (fresh weights; for NMS models the NMS cost at conf 0.25 is then a
lower bound, see ``bench_latency_onnx.py``), so the table has them for rows whose training did not
run. All models are timed round robin so that load drift on a shared machine hits them alike.

    python benchmarks/ablation_arch.py --out runs/ablation --latency-runs 30 --train-imgsz 160
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROWS = {"B0": "yolopose-n", "B1": "erpose-n-b1", "B2": "erpose-n-b2", "B3": "erpose-n-b3", "B4": "erpose-n-b4",
        "B5": "erpose-n"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--latency-runs", type=int, default=30)
    p.add_argument("--latency-imgsz", type=int, default=640)
    p.add_argument("--latency-threads", type=int, default=2)
    p.add_argument("--train-imgsz", type=int, default=160)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--data", default="synthcrowd-s", help="where the training-step batch comes from")
    p.add_argument("--ultra-python", default=os.environ.get("ERPOSE_ULTRA_PYTHON", "/work/venv-ultra/bin/python"))
    args = p.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch
    from ablation_data import register_presets
    from bench_latency_onnx import Pipeline, _export_peers, _load_image, _stats
    from bench_train import make_batch, measure

    from erpose.export.onnx import OnnxExportConfig, export_onnx
    from erpose.models.checkpoint import load_model
    from erpose.models.summary import model_summary

    torch.set_num_threads(1)
    register_presets()  # --data may be one of the study's own presets
    table: dict[str, dict] = {}
    image, image_name = _load_image(None, np)
    with tempfile.TemporaryDirectory(prefix="erpose-arch-") as tmp:
        pipelines = []
        for row, name in ROWS.items():
            torch.manual_seed(0)
            model = load_model(name)
            summary = model_summary(model, 640)
            table[row] = {"model": name, "params": summary.parameters, "gflops_640": summary.gflops}
            path = export_onnx(model, Path(tmp) / f"{name}.onnx", OnnxExportConfig(imgsz=args.latency_imgsz),
                               model_name=name)
            pipelines.append(Pipeline(row, path, "erpose" if name == "erpose-n" else "baseline",
                                      args.latency_threads, 0.25, 100))
        if Path(args.ultra_python).is_file():
            for name, info in _export_peers(args.ultra_python, Path(tmp), args.latency_imgsz, 100).items():
                table[name] = {"model": name, "params": info["params"], "gflops_640": None}
                pipelines.append(Pipeline(name, Path(info["path"]), "yolo11" if "11" in name else "yolo26",
                                          args.latency_threads, 0.25, 100))
        for _ in range(3):
            for pipe in pipelines:
                pipe.run_once(image, args.latency_imgsz, np)
        times: dict[str, list[float]] = {pipe.name: [] for pipe in pipelines}
        for i in range(args.latency_runs):  # rotated round robin
            for pipe in pipelines[i % len(pipelines):] + pipelines[: i % len(pipelines)]:
                times[pipe.name].append(pipe.run_once(image, args.latency_imgsz, np)["total"])
    for name, values in times.items():
        table[name]["latency_ms"] = _stats(values, np)
    batch, skeleton = make_batch(args.train_imgsz, args.train_batch, args.data)
    for row, rate in zip(ROWS, measure(list(ROWS.values()), batch, skeleton, steps=3, warmup=1)):
        table[row]["train_img_s"] = rate
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"onnxruntime": ort.__version__, "torch": torch.__version__, "image": image_name,
            "latency_imgsz": args.latency_imgsz, "latency_threads": args.latency_threads,
            "latency_runs": args.latency_runs, "train_imgsz": args.train_imgsz, "train_batch": args.train_batch}
    (out / "arch.json").write_text(json.dumps({"meta": meta, "rows": table}, indent=1, default=float))
    b5 = table["B5"]["latency_ms"]["median"]
    lines = ["| row | model | params (M) | GFLOPs@640 | ONNX e2e ms (median, p10-p90) | B5 / row | train img/s |",
             "|---|---|---|---|---|---|---|"]
    for row, r in table.items():
        lat = r["latency_ms"]
        gflops = f"{r['gflops_640']:.2f}" if r.get("gflops_640") else "-"
        speed = f"{r['train_img_s']:.1f}" if "train_img_s" in r else "-"
        lines.append(f"| {row} | {r['model']} | {r['params'] / 1e6:.2f} | {gflops} | {lat['median']:.1f} "
                     f"({lat['p10']:.1f}-{lat['p90']:.1f}) | {b5 / lat['median']:.2f} | {speed} |")
    (out / "arch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
