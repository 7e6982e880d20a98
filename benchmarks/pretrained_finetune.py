"""ER-Pose-n (NMS-free) fine-tuned from YOLO11n-pose on tiny_coco: the whole recipe, one command.

Steps (each an ``erpose`` command, printed as it runs; skipped when its output exists):

1. tiny_coco train2017 / val2017 -> one YOLO-pose dataset (``erpose convert``);
2. ``--composites`` SynthCrowd scenes of the *train* photos' people pasted into new crowds
   (``erpose synth --paste-from``; 0 skips them) and a data YAML training on both;
3. ``erpose train --cfg finetune-yolo11 --pretrained WEIGHTS`` (only the o2o
   score branch trains; ``--epochs`` overrides the recipe's);
4. ``erpose val`` of the best checkpoint on val2017 (NMS-free), its ONNX export, and the ONNX
   model's predictions scored by the same evaluator.

    python benchmarks/pretrained_finetune.py --weights yolo11n-pose.pt --out runs/pretrained

Writes ``OUT/summary.json`` (AP / AP50 / AR of the checkpoint and of its ONNX export, training
minutes, CPU). The weights and everything trained from them keep the source licence (AGPL-3.0
for ultralytics' release): keep OUT out of the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def erpose(*args: str) -> None:
    command = [sys.executable, "-m", "erpose.cli.main", *args]
    print("$ erpose " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def metrics_of(path: Path) -> dict:
    data = json.loads(path.read_text())
    metrics = data.get("metrics", data)
    return {k: metrics[k] for k in ("AP", "AP50", "AR")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="ultralytics YOLO11n-pose .pt")
    p.add_argument("--real", default=str(REPO.parent / "shared" / "data" / "real"), help="the real-data folder")
    p.add_argument("--composites", type=int, default=1000, help="paste-real training scenes (0: none)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", default="runs/pretrained")
    p.add_argument("--model", default=None,
                   help="another model layout (zoo name or YAML) than the recipe's erpose-n-pt; its outputs get "
                        "the YAML's stem as a suffix, next to the recipe's in the same --out (data shared)")
    args = p.parse_args(argv)
    tag = f"-{Path(args.model).stem}" if args.model else ""
    model_args = ("--model", args.model) if args.model else ()

    tiny = Path(args.real) / "tiny_coco"
    out = Path(args.out).resolve()
    data = out / "tiny_coco"
    if not (data / "data.yaml").is_file():
        for split in ("train", "val"):
            erpose("convert", str(tiny / "annotations" / f"person_keypoints_{split}2017.json"), "--images",
                   str(tiny / f"{split}2017"), "--out", str(data), "--split", split)
    spec = yaml.safe_load((data / "data.yaml").read_text())
    train_dirs = [str(data / "images" / "train")]
    if args.composites:
        composites = out / f"paste{args.composites}"
        if not (composites / "data.yaml").is_file():
            erpose("synth", "--out", str(composites), "--paste-from", str(tiny / "annotations" / "person_keypoints_train2017.json"),
                   str(tiny / "train2017"), "--imgsz", "640", "--train", str(args.composites), "--val", "10",
                   "--preset", "mixed", "--max-people", "8", "--stature", "0.2", "0.9", "--seed", "2")
        train_dirs.append(str(composites / "images" / "train"))
    spec.update(path=str(data), train=train_dirs, val=str(data / "images" / "val"))
    mix = out / "mix.yaml"
    mix.write_text(yaml.safe_dump(spec))

    run = out / f"finetune{tag}"
    started = time.perf_counter()
    erpose("train", "--cfg", "finetune-yolo11", *model_args, "--pretrained", args.weights,
           "--data", str(mix), "--epochs", str(args.epochs), "--project", str(out), "--name", run.name, "--exist-ok",
           "--no-progress")
    minutes = (time.perf_counter() - started) / 60
    best = run / "weights" / "best.pt"
    annotations = tiny / "annotations" / "person_keypoints_val2017.json"
    erpose("val", "--weights", str(best), "--data", str(annotations), "--imgsz", "640", "--out", str(out / f"val{tag}"),
           "--no-progress")
    onnx = out / f"finetuned{tag}.onnx"
    erpose("export", "--weights", str(best), "--format", "onnx", "--imgsz", "640", "--out", str(onnx))
    erpose("predict", "--weights", str(onnx), "--source", str(tiny / "val2017"), "--conf", "0.001", "--max-det", "20",
           "--save-json", "--no-save", "--project", str(out), "--name", f"onnx-predictions{tag}", "--exist-ok",
           "--no-progress")
    erpose("val", "--predictions", str(out / f"onnx-predictions{tag}" / "predictions.json"), "--data", str(annotations),
           "--out", str(out / f"val-onnx{tag}"))
    from pretrained_parity import cpu_name

    summary = {"cpu": cpu_name(), "model": args.model or "erpose-n-pt (the recipe's)", "train_minutes": round(minutes, 1),
               "epochs": args.epochs, "composites": args.composites,
               "checkpoint": metrics_of(out / f"val{tag}" / "metrics.json"),
               "onnx": metrics_of(out / f"val-onnx{tag}" / "metrics.json")}
    (out / f"summary{tag}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
