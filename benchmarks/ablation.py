"""The ablation study B0..B5 of ``../shared/METHOD.md`` and the ultralytics peers, as one script.

Every row trains from scratch with the same data, input size, epochs, batch, augmentation,
optimiser settings and seed, then its ``best.pt`` is scored on every evaluation set by the same
evaluator (``erpose.engine.validator``). The peers (ultralytics YOLO11n-pose / YOLO26n-pose) train
in their own virtual environment on the YOLO-pose export of the same data (the SynthCrowd folder
*is* a YOLO-pose dataset) with the same budget, predict at conf 0.001, and their COCO results
files are scored here by the same evaluator. See ``docs/BENCHMARKS.md``.

    # P3 of docs/BENCHMARKS.md: mixed and crowd scenes at 128 px, 28 epochs, the main command's recipe
    python benchmarks/ablation.py --rows B0,B1,B2,B3,B4,B5 --seeds 0,1 \
        --peers yolo11n-pose,yolo26n-pose --data synthcrowd-mixed128 \
        --eval-data synthcrowd-mixed128,synthcrowd-crowd128,paste-real --epochs 28 --imgsz 128 \
        --batch 16 --jobs 2 --threads 1 --out runs/ablation-p3 --override --latency-runs 0
    python benchmarks/ablation.py --out runs/ablation-p3 --table-only --imgsz 128   # + latency, plots

``--rows`` also takes the variants in ``benchmarks/variants/`` by file name (``B5-full48``...).
``--override`` with no values trains with the ``TrainConfig`` defaults (the main command's recipe).

Resumable: a run with ``row.json`` is done and skipped; a run killed in training continues with
the trainer's ``--resume`` (same batches, same weights); one killed in evaluation re-evaluates.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROWS = {"B0": "yolopose-n", "B1": "erpose-n-b1", "B2": "erpose-n-b2", "B3": "erpose-n-b3", "B4": "erpose-n-b4",
        "B5": "erpose-n"}
PEERS = ("yolo11n-pose", "yolo26n-pose")
PEER_AUGMENT_KEYS = ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "fliplr", "mosaic", "close_mosaic")
DEFAULT_ULTRA_PYTHON = "/work/venv-ultra/bin/python"
#: Variant rows: ``VARIANTS/<row>.yaml`` is a model YAML (a zoo model with one field changed, e.g. a
#: wider score branch) that ``--rows`` accepts by its file name, next to B0..B5.
VARIANTS = Path(__file__).resolve().with_name("variants")


def row_model(row: str) -> str:
    """The model (zoo name or YAML path) of an ablation row or variant; SystemExit when unknown."""
    if row in ROWS:
        return ROWS[row]
    variant = VARIANTS / f"{row}.yaml"
    if variant.is_file():
        return str(variant)
    known = ", ".join([*ROWS, *sorted(p.stem for p in VARIANTS.glob("*.yaml"))])
    raise SystemExit(f"unknown row {row!r}; choose from {known}")
LOGGER = logging.getLogger("ablation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="B0,B1,B2,B3,B4,B5", help="ablation steps, comma-separated ('' for none)")
    p.add_argument("--seeds", default="0", help="seeds of every row, comma-separated")
    p.add_argument("--seeds-extra", default="", help="extra row:seed runs, e.g. B0:1,B5:1")
    p.add_argument("--peers", default="", help="ultralytics peers: yolo11n-pose,yolo26n-pose")
    p.add_argument("--data", default="synthcrowd-s", help="training data (preset, data YAML or paste-real-train)")
    p.add_argument("--eval-data", default="synthcrowd-s,synthcrowd-crowd,paste-real",
                   help="evaluation sets: SynthCrowd presets (val split) and paste-real")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--override", nargs="*", default=["optim.nominal_batch=16", "optim.warmup_epochs=1"],
                   help="TrainConfig key=value overrides applied to every row (the peers get the same values)")
    p.add_argument("--first", default="", help="run ids to start first, e.g. B0_s0,B5_s0,B0_s1,B5_s1")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--workers", type=int, default=0, help="data-loading workers per run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="start no new run after this many minutes (0: no limit); finished rows stay in the table")
    p.add_argument("--latency-runs", type=int, default=30, help="ONNX latency runs per model (0: skip)")
    p.add_argument("--latency-imgsz", type=int, default=640)
    p.add_argument("--latency-threads", type=int, default=2)
    p.add_argument("--ultra-python", default=os.environ.get("ERPOSE_ULTRA_PYTHON", DEFAULT_ULTRA_PYTHON))
    p.add_argument("--table-only", action="store_true", help="only rebuild table.json, table.md and the plots")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their configs, train nothing")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one run, in a child process
    return p.parse_args(argv)


def plan_runs(args: argparse.Namespace) -> list[str]:
    """Run ids (``B0_s0``, ``yolo11n-pose_s0``...) in the order given: rows x seeds, extras, peers."""
    rows = [r for r in args.rows.split(",") if r]
    for row in rows:
        row_model(row)
    seeds = [int(s) for s in str(args.seeds).split(",") if s != ""]
    runs = [f"{row}_s{seed}" for seed in seeds for row in rows]
    for item in filter(None, args.seeds_extra.split(",")):
        row, _, seed = item.partition(":")
        if row not in PEERS:
            row_model(row)
        runs.append(f"{row}_s{int(seed)}")
    for peer in filter(None, args.peers.split(",")):
        if peer not in PEERS:
            raise SystemExit(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
        runs.extend(f"{peer}_s{seed}" for seed in seeds or [0])  # the peers get every seed of the rows
    runs = list(dict.fromkeys(runs))
    first = [r for r in args.first.split(",") if r in runs]
    return first + [r for r in runs if r not in first]


def train_config(args: argparse.Namespace, run: str, data: str):
    """The ``TrainConfig`` of one ablation run (``project=--out``, ``name=run``)."""
    from erpose.config import apply_overrides
    from erpose.engine.train_config import TrainConfig, with_step_criterion

    row, seed = run.rsplit("_s", 1)
    config = TrainConfig(model=row_model(row), data=data, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
                         seed=int(seed), workers=args.workers, device=args.device, project=args.out, name=run,
                         exist_ok=True, patience=0)
    if any(item.startswith("criterion.") for item in args.override):
        config = with_step_criterion(config)  # criterion.* overrides start from the row's own criterion
    return apply_overrides(config, list(args.override))


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


class _RateLog(logging.Handler):
    """Collects the trainer's per-epoch ``img/s`` log values (training + that epoch's validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = re.search(r"([\d.]+) img/s", record.getMessage())
        if match and record.getMessage().startswith("epoch"):
            self.rates.append(float(match.group(1)))


def run_erpose(args: argparse.Namespace, run: str, eval_sets: list) -> dict:
    """Train (or resume) one erpose row, evaluate it, export it; returns its ``row.json`` dict."""
    import torch
    from ablation_data import ensure_train_data

    from erpose.data.coco import read_coco
    from erpose.engine.launch import train
    from erpose.engine.validator import validate
    from erpose.export.onnx import OnnxExportConfig, export_onnx
    from erpose.models.checkpoint import load_model
    from erpose.models.summary import model_summary

    data, _ = ensure_train_data(args.data, Path(args.out) / "data")
    run_dir = Path(args.out) / run
    done = run_dir / "train_done.json"
    if not done.is_file():
        rates = _RateLog()
        logging.getLogger("erpose").addHandler(rates)
        start = time.perf_counter()
        if (run_dir / "weights" / "last.pt").is_file():
            LOGGER.info("%s: resuming the killed run", run)
            result = train(train_config(args, run, data), resume=run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            result = train(train_config(args, run, data))
        _atomic_json(done, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                            "metrics": result.metrics, "epoch_img_s": rates.rates,
                            "wall_s": time.perf_counter() - start})
    info = json.loads(done.read_text())
    info["train_metrics"] = info.pop("metrics")  # the trainer's own val metrics at its best epoch
    model = load_model(run_dir / "weights" / "best.pt").eval()
    metrics = {}
    for es in eval_sets:
        source = read_coco(es.annotations, es.images)
        result = validate(model, source, imgsz=args.imgsz, batch_size=args.batch, conf=0.001, device=args.device,
                          progress=False)
        metrics[es.name] = dict(result.metrics)
        LOGGER.info("%s on %s: AP %.4f", run, es.name, result.metrics.get("AP", -1))
    summary = model_summary(model, 640)
    onnx_path = export_onnx(model, run_dir / "model.onnx", OnnxExportConfig(imgsz=args.latency_imgsz, max_det=100),
                            model_name=Path(row_model(run.rsplit("_s", 1)[0])).stem)
    del torch
    return {"run": run, "model": Path(row_model(run.rsplit("_s", 1)[0])).stem, "kind": "erpose", "metrics": metrics,
            "params": summary.parameters, "gflops_640": summary.gflops, "onnx": str(onnx_path), **info}


def _ultralytics_device(device: str) -> str:
    """erpose's ``cuda``/``cuda:N``/``cpu`` as ultralytics spells it (``0``, ``N``, ``cpu``)."""
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def run_peer(args: argparse.Namespace, run: str, eval_sets: list) -> dict:
    """Train one ultralytics peer in its venv, then score its predictions with our evaluator."""
    from ablation_data import ensure_train_data

    from erpose.engine.validator import evaluate_detections

    peer, seed = run.rsplit("_s", 1)
    _, root = ensure_train_data(args.data, Path(args.out) / "data")
    run_dir = Path(args.out) / run
    run_dir.mkdir(parents=True, exist_ok=True)
    # The peer gets what the erpose rows get after --override: nominal batch, warmup, augmentation.
    reference = train_config(args, f"B0_s{seed}", str(root / "data.yaml"))
    augment = [f"{key}={getattr(reference.augment, key)}" for key in PEER_AUGMENT_KEYS]
    cmd = [args.ultra_python, str(Path(__file__).with_name("ultralytics_peer.py")), "--model", peer,
           "--data", str(root / "data.yaml"), "--epochs", str(args.epochs), "--imgsz", str(args.imgsz),
           "--batch", str(args.batch), "--seed", seed, "--out", str(run_dir.resolve()),
           "--threads", str(args.threads), "--workers", str(args.workers),
           "--device", _ultralytics_device(args.device),
           "--nbs", str(reference.optim.nominal_batch), "--warmup-epochs", str(reference.optim.warmup_epochs),
           "--export-imgsz", str(args.latency_imgsz), "--augment", *augment]
    for es in eval_sets:
        cmd += ["--predict", f"{es.name}={es.images.resolve()}"]
    if not (run_dir / "peer.json").is_file():
        with open(run_dir / "peer.log", "a") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT,
                           env=dict(os.environ, YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(run_dir.resolve() / "ucfg")))
    peer_info = json.loads((run_dir / "peer.json").read_text())
    metrics = {}
    for es in eval_sets:
        dets = json.loads(Path(peer_info["predictions"][es.name]).read_text())
        gt = json.loads(es.annotations.read_text())
        ids = {image["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]: image["id"] for image in gt["images"]}
        for det in dets:  # the peer knows image stems only; ids come from our ground truth
            det["image_id"] = ids[det.pop("image_stem")]
        metrics[es.name], _ = evaluate_detections(gt, dets)
        LOGGER.info("%s on %s: AP %.4f", run, es.name, metrics[es.name].get("AP", -1))
    return {"run": run, "model": peer, "kind": "ultralytics", "metrics": metrics, **peer_info}


def worker(args: argparse.Namespace, run: str) -> int:
    """Child process: one run, start to ``row.json``."""
    import torch
    from ablation_data import ensure_eval_set

    torch.set_num_threads(args.threads)
    run_dir = Path(args.out) / run
    eval_sets = [es for name in filter(None, args.eval_data.split(","))
                 if (es := ensure_eval_set(name, Path(args.out) / "data")) is not None]
    row = (run_peer if run.rsplit("_s", 1)[0] in PEERS else run_erpose)(args, run, eval_sets)
    row["protocol"] = {k: getattr(args, k) for k in ("data", "epochs", "imgsz", "batch", "override", "threads")}
    _atomic_json(run_dir / "row.json", row)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    out = Path(args.out)
    if args.worker:
        return worker(args, args.worker)
    from ablation_report import write_report
    if args.table_only:
        write_report(out, latency_runs=args.latency_runs, latency_imgsz=args.latency_imgsz,
                     latency_threads=args.latency_threads, bench_imgsz=args.imgsz, bench_batch=args.batch)
        return 0
    runs = plan_runs(args)
    if args.dry_run:
        for run in runs:
            row = run.rsplit("_s", 1)[0]
            print(run, "ultralytics" if row in PEERS else train_config(args, run, args.data))
        return 0
    (out / "logs").mkdir(parents=True, exist_ok=True)
    from ablation_data import ensure_eval_set, ensure_train_data

    ensure_train_data(args.data, out / "data", workers=max(args.jobs, 1))  # once, before the children start
    for name in filter(None, args.eval_data.split(",")):
        ensure_eval_set(name, out / "data", workers=max(args.jobs, 1))
    start = time.monotonic()
    base = [sys.executable, os.path.abspath(__file__)] + [a for a in (argv if argv is not None else sys.argv[1:])]

    def launch(run: str) -> tuple[str, int]:
        if (out / run / "row.json").is_file():
            LOGGER.info("%s: done, skipped", run)
            return run, 0
        if args.time_budget_min and time.monotonic() - start > args.time_budget_min * 60:
            LOGGER.info("%s: time budget spent, not started", run)
            return run, -1
        LOGGER.info("%s: started (log %s)", run, out / "logs" / f"{run}.log")
        with open(out / "logs" / f"{run}.log", "a") as log:
            rc = subprocess.run(base + ["--worker", run], stdout=log, stderr=subprocess.STDOUT).returncode
        LOGGER.info("%s: finished with status %d", run, rc)
        return run, rc

    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        results = list(pool.map(launch, runs))
    write_report(out, latency_runs=args.latency_runs, latency_imgsz=args.latency_imgsz,
                 latency_threads=args.latency_threads, bench_imgsz=args.imgsz, bench_batch=args.batch)
    failed = [run for run, rc in results if rc > 0]
    if failed:
        print(f"failed runs (see {out / 'logs'}): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
