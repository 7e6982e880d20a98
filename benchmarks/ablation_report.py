"""Tables and plots of the ablation study, built from the finished runs' ``row.json`` files.

``write_report(out)`` reads every ``out/<run>/row.json``, measures what is measured once for all
rows together (ONNX Runtime end-to-end latency, training step throughput: interleaved so that a
load change on a shared machine hits every model alike; cached in ``latency.json`` /
``train_bench.json`` and redone only when a new model appears), and writes ``table.json``,
``table.md`` and ``ablation_ap_vs_epoch.png``. Idempotent: safe to call after every run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import statistics
from pathlib import Path

LOGGER = logging.getLogger("ablation")
ORDER = ("B0", "B1", "B2", "B3", "B4", "B5", "yolo11n-pose", "yolo26n-pose")  # variants follow, by name
DETAIL = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AP_easy", "AP_medium", "AP_hard")


def load_rows(out: Path) -> list[dict]:
    """Every finished run's ``row.json``, in table order (row, then seed)."""
    rows = [json.loads(p.read_text()) for p in out.glob("*/row.json")]

    def key(row: dict) -> tuple[tuple[int, str], int]:
        name, seed = row["run"].rsplit("_s", 1)
        return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name), int(seed)

    return sorted(rows, key=key)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


def measure_latency(out: Path, rows: list[dict], runs: int, imgsz: int, threads: int) -> dict[str, dict]:
    """End-to-end ONNX Runtime latency per model (seed-0 export of each), round robin, cached."""
    cache_path = out / "latency.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    models = {}
    for row in rows:
        name = _row_name(row)
        if row.get("onnx") and Path(row["onnx"]).is_file() and name not in models:
            models[name] = (row["onnx"], row["kind"], row["model"])
    if runs <= 0 or not models or set(models) <= set(cache.get("results", {})):
        return cache.get("results", {})
    import numpy as np
    from bench_latency_onnx import Pipeline, _load_image, _stats

    image, image_name = _load_image(None, np)
    pipelines = []
    for name, (path, kind, model) in models.items():
        if kind == "ultralytics":
            pipe_kind = "yolo11" if "11" in model else "yolo26"
        else:  # the file says whether its graph is NMS-free (B5 and its variants) or needs NMS (B0..B4)
            from erpose.runtime.session import PoseSession

            pipe_kind = "baseline" if PoseSession(path).metadata.needs_nms else "erpose"
        pipelines.append(Pipeline(name, Path(path), pipe_kind, threads, 0.25, 100))
    for _ in range(3):
        for p in pipelines:
            p.run_once(image, imgsz, np)
    for p in pipelines:
        p.candidates.clear()
    times: dict[str, list[float]] = {p.name: [] for p in pipelines}
    for i in range(runs):  # rotated round robin: load drift hits every model alike
        for p in pipelines[i % len(pipelines):] + pipelines[: i % len(pipelines)]:
            times[p.name].append(p.run_once(image, imgsz, np)["total"])
    results = {p.name: {**_stats(times[p.name], np), "nms_candidates": float(np.mean(p.candidates))}
               for p in pipelines}
    _write_json(cache_path, {"image": image_name, "imgsz": imgsz, "threads": threads, "runs": runs,
                             "results": results})
    return results


def measure_train_speed(out: Path, rows: list[dict], imgsz: int, batch: int) -> dict[str, float]:
    """Training step images/s (forward, loss, backward, SGD step; 1 thread), erpose rows, cached."""
    cache_path = out / "train_bench.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    from ablation import row_model  # row.json keeps a variant's name, not its YAML path

    erpose_rows = {name: group for name, group in _by_row(rows).items() if group[0]["kind"] == "erpose"}
    names = {name: row_model(name) for name in erpose_rows}
    if not names or set(names) <= set(cache):
        return cache
    import torch
    from ablation_data import ensure_train_data
    from bench_train import make_batch, measure

    torch.set_num_threads(1)
    # the protocol's training set may be one of ablation_data's presets, which erpose alone doesn't know
    data, _ = ensure_train_data(next(iter(erpose_rows.values()))[0]["protocol"]["data"], out / "data")
    images, skeleton = make_batch(imgsz, batch, data)
    rates = measure(list(names.values()), images, skeleton, steps=3, warmup=1)
    cache = dict(zip(names, rates))
    _write_json(cache_path, cache)
    return cache


def _curve(row: dict, out: Path, metric: str = "AP") -> tuple[list[int], list[float]]:
    """(epochs, AP or AP50) of a run: our ``results.csv`` or ultralytics' own pose mAP columns."""
    path = Path(row["results_csv"]) if row.get("results_csv") else out / row["run"] / "results.csv"
    if not path.is_file():
        return [], []
    with path.open() as f:
        records = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    if row["kind"] == "erpose":
        column = f"metrics/{metric}"
    else:
        column = "metrics/mAP50-95(P)" if metric == "AP" else "metrics/mAP50(P)"
    pairs = [(int(float(r["epoch"])), float(r[column])) for r in records if r.get(column) not in (None, "")]
    return [e for e, _ in pairs], [a for _, a in pairs]


def plot_curves(out: Path, rows: list[dict]) -> Path | None:
    """AP and AP50 (val split of the training set) against epoch: one line per row, the mean of its
    seeds, with the band between its lowest and highest seed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = _by_row(rows)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), dpi=110)
    colours = plt.get_cmap("tab20").colors  # more rows than the default cycle's 10 colours
    for ax, metric in zip(axes, ("AP", "AP50")):
        for i, (name, group) in enumerate(groups.items()):
            curves = [c for c in (_curve(row, out, metric) for row in group) if c[0]]
            if not curves:
                continue
            length = min(len(epochs) for epochs, _ in curves)  # a run still training has fewer epochs
            epochs = curves[0][0][:length]
            values = [ap[:length] for _, ap in curves]
            mean = [statistics.fmean(v) for v in zip(*values)]
            peer = group[0]["kind"] != "erpose"
            colour = colours[i % len(colours)]
            label = f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''}{', ultralytics val' if peer else ''})"
            ax.plot(epochs, mean, "--" if peer else "-", marker="o", ms=2.5, lw=1.3, color=colour, label=label)
            if len(curves) > 1:
                ax.fill_between(epochs, [min(v) for v in zip(*values)], [max(v) for v in zip(*values)],
                                color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (val split of the training data)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    path = out / "ablation_ap_vs_epoch.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, (int, float)) and value < 0):
        return "-"
    return f"{value:.{digits}f}"


def _row_name(row: dict) -> str:
    """The row of a run: ``B5_s1`` -> ``B5``, ``B5-full48_s0`` -> ``B5-full48``."""
    return row["run"].rsplit("_s", 1)[0]


def _by_row(rows: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by row name (``B5_s0``, ``B5_s1`` -> ``B5``), in table order."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_row_name(row), []).append(row)
    return groups


def _mean(group: list[dict], eval_set: str, key: str, spread: bool = False, digits: int = 4) -> str:
    """Mean of a metric over a row's seeds, with ``± half the range`` when asked and seeds > 1."""
    values = [g["metrics"].get(eval_set, {}).get(key, -1) for g in group]
    text = _fmt(statistics.mean(values), digits)
    return text + (f" ± {(max(values) - min(values)) / 2:.4f}" if spread and len(values) > 1 else "")


def headline(rows: list[dict], eval_sets: list[str], latency: dict, speed: dict) -> list[str]:
    """One line per row (seeds averaged): size, speed, and per set AP ± half-range, AP50 / AR and
    AP easy / medium / hard."""
    by_row = _by_row(rows)
    head = "| row | seeds | params (M) | GFLOPs@640 | ONNX e2e ms | train img/s | "
    head += " | ".join(f"AP {s} | AP50 / AR {s} | AP easy / medium / hard {s}" for s in eval_sets) + " |"
    lines = [head, "|---|---|---|---|---|---|" + "---|---|---|" * len(eval_sets)]
    for name, group in by_row.items():
        cells = []
        for s in eval_sets:
            cells += [_mean(group, s, "AP", spread=True),
                      f"{_mean(group, s, 'AP50', digits=3)} / {_mean(group, s, 'AR', digits=3)}",
                      " / ".join(_mean(group, s, k, digits=3) for k in ("AP_easy", "AP_medium", "AP_hard"))]
        first = group[0]
        lines.append(f"| {name} | {len(group)} | {first['params'] / 1e6:.2f} | {first['gflops_640']:.2f} | "
                     f"{_fmt(latency.get(name, {}).get('median'), 1)} | {_fmt(speed.get(name), 1)} | "
                     + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[dict], eval_sets: list[str], latency: dict, speed: dict) -> str:
    """The per-row headline (seeds averaged), the per-run summary and one detail table per set."""
    lines = ["Per row, seeds averaged (± half the range of AP):", ""]
    lines += headline(rows, eval_sets, latency, speed)
    lines += ["", "Per run:", "",
              "| run | model | params (M) | GFLOPs@640 | ONNX e2e ms | train img/s | epoch img/s | "
              + " | ".join(f"AP {s}" for s in eval_sets) + " |",
              "|---|---|---|---|---|---|---|" + "---|" * len(eval_sets)]
    for row in rows:
        name = _row_name(row)
        lat = latency.get(name, {}).get("median")
        rates = row.get("epoch_img_s") or []
        lines.append(f"| {row['run']} | {row['model']} | {row['params'] / 1e6:.2f} | {row['gflops_640']:.2f} | "
                     f"{_fmt(lat, 1)} | {_fmt(speed.get(name), 1)} | {_fmt(statistics.median(rates) if rates else None, 1)} | "
                     + " | ".join(_fmt(row["metrics"].get(s, {}).get("AP")) for s in eval_sets) + " |")
    lines += ["", "Means over seeds (± half the range; APL is '-' where a set has no large person):"]
    for s in eval_sets:
        lines += ["", f"**{s}, mean per row**", "", "| row | seeds | " + " | ".join(DETAIL) + " |",
                  "|---|---|" + "---|" * len(DETAIL)]
        for name, group in _by_row(rows).items():
            cells = [_mean(group, s, k, spread=k == "AP") for k in DETAIL]
            lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    for s in eval_sets:
        lines += ["", f"**{s}**", "", "| run | " + " | ".join(DETAIL) + " |", "|---|" + "---|" * len(DETAIL)]
        for row in rows:
            m = row["metrics"].get(s, {})
            lines.append(f"| {row['run']} | " + " | ".join(_fmt(m.get(k)) for k in DETAIL) + " |")
    return "\n".join(lines) + "\n"


def write_report(out: str | Path, latency_runs: int = 30, latency_imgsz: int = 640, latency_threads: int = 2,
                 bench_imgsz: int = 160, bench_batch: int = 16) -> dict:
    """Write ``table.json``, ``table.md`` and the AP-vs-epoch plot for the finished runs; returns the table."""
    out = Path(out)
    rows = load_rows(out)
    if not rows:
        LOGGER.info("no finished run in %s yet", out)
        return {}
    eval_sets = list(dict.fromkeys(s for row in rows for s in row["metrics"]))
    latency = measure_latency(out, rows, latency_runs, latency_imgsz, latency_threads)
    speed = measure_train_speed(out, rows, bench_imgsz, bench_batch) if latency_runs > 0 else {}
    table = {"rows": rows, "eval_sets": eval_sets, "latency_ms": latency, "train_img_s": speed}
    _write_json(out / "table.json", table)
    text = markdown(rows, eval_sets, latency, speed)
    tmp = out / "table.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / "table.md")
    plot_curves(out, rows)
    return table
