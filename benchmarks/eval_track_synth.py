"""Tracker quality on rendered SynthCrowd videos (``erpose synth --video``), sparse and crowd.

Two settings on the same sequences:

(a) ``--input gt`` (default): each sequence's ground-truth poses made into detections: keypoint
    noise as a fraction of the person's height (hidden keypoints twice as noisy and less
    confident; keypoints outside the frame absent), people dropped at random (more often when
    mostly hidden), 15 % of people with a low score and about 0.1 false people per frame. This
    isolates the tracker.
(b) ``--input model --weights W``: a trained model's own detections on the rendered videos (read
    back from the mp4 files; saved next to them as ``<seq>.dets-<weights>-<imgsz>-<conf>.npz``
    and reused, so other tracker settings need no second model run), then tracked.

For each: pose vs box association (same Kalman motion and life cycle), keypoint MOTA, IDF1,
id switches per 100 ground-truth tracks, and jitter (px/frame^2 above the ground truth's) and lag
(frames) of the raw and the One-Euro-smoothed keypoints. ``--tune`` instead sweeps the One-Euro
parameters on setting (a).

    python benchmarks/eval_track_synth.py --data /tmp/h15/seq          # renders the sequences once, then (a)
    python benchmarks/eval_track_synth.py --data /tmp/h15/seq --input model --weights best.pt --imgsz 256
    python benchmarks/eval_track_synth.py --data /tmp/h15/seq --tune
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from erpose.data.synth import VideoConfig, generate_video
from erpose.skeleton import COCO17
from erpose.track import PoseTracker, TrackerConfig
from erpose.track.config import OneEuroConfig
from erpose.track.metrics import identity_scores, jitter, keypoint_mota, lag_frames

PRESETS = ("sparse", "crowd")


@dataclass
class Sequence:
    """Ground truth of one sequence: per frame (track ids (n,), keypoints (n, K, 3) with v)."""

    name: str
    video: Path
    frames: list[tuple[np.ndarray, np.ndarray]]
    num_people: int
    fps: float
    size: int


@dataclass
class Detections:
    """Per frame: person scores (n,), keypoints (n, K, 3) and the true track id of each (-1: none known)."""

    scores: list[np.ndarray]
    keypoints: list[np.ndarray]
    person: list[np.ndarray]


def ensure_sequences(root: Path, preset: str, count: int, frames: int, imgsz: int, clutter: float,
                     shake: float, seed: int) -> list[Path]:
    """The JSON files of ``count`` sequences under ``root/preset``, rendered once if missing."""
    folder = root / preset
    wanted = [folder / f"{i:06d}.json" for i in range(count)]
    if not all(p.is_file() and p.with_suffix(".mp4").is_file() for p in wanted):
        config = VideoConfig(frames=frames, imgsz=imgsz, preset=preset, seed=seed, clutter=clutter, shake=shake)
        start = time.perf_counter()
        generate_video(folder, sequences=count, config=config)
        print(f"rendered {count} {preset} sequences of {frames} frames at {imgsz} px in "
              f"{time.perf_counter() - start:.0f} s -> {folder}", flush=True)
    return wanted


def load_sequence(path: Path) -> Sequence:
    doc = json.loads(path.read_text())
    images = sorted(doc["images"], key=lambda im: im["frame_id"])
    by_image: dict[int, list[dict]] = {im["id"]: [] for im in images}
    for ann in doc["annotations"]:
        by_image[ann["image_id"]].append(ann)
    frames = []
    for im in images:
        anns = by_image[im["id"]]
        ids = np.array([a["track_id"] for a in anns], np.int64)
        kpts = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), 17, 3)
        frames.append((ids, kpts))
    people = 1 + max((int(a["track_id"]) for a in doc["annotations"]), default=-1)
    return Sequence(path.stem, path.with_suffix(".mp4"), frames, people, float(doc["info"].get("fps", 30.0)),
                    int(images[0]["width"]))


def simulate_detections(rng: np.random.Generator, seq: Sequence, noise: float, drop: float,
                        low_score: float = 0.15, false_positives: float = 0.1) -> Detections:
    """Setting (a): noisy, incomplete detections made from the ground truth (see the module docstring)."""
    scores, keypoints, person = [], [], []
    size = seq.size
    for ids, gt in seq.frames:
        n = len(ids)
        v = gt[..., 2] if n else np.zeros((0, 17))
        labelled, seen = v > 0, v == 2
        lo = np.where(labelled[..., None], gt[..., :2], np.inf).min(1)
        hi = np.where(labelled[..., None], gt[..., :2], -np.inf).max(1)
        height = np.maximum(hi[:, 1] - lo[:, 1], 0.5 * (hi[:, 0] - lo[:, 0])) if n else np.zeros(0)
        seen_share = seen.sum(1) / np.maximum(labelled.sum(1), 1)
        p_drop = drop + 0.5 * np.clip(1.0 - 2.0 * seen_share, 0.0, 1.0)  # mostly hidden: often missed
        kept = np.flatnonzero((rng.random(n) >= p_drop) & (labelled.sum(1) >= 3))
        std = (noise * height[kept])[:, None] * np.where(seen[kept], 1.0, 2.0)
        xy = gt[kept, :, :2] + rng.normal(0.0, 1.0, (len(kept), 17, 2)) * std[..., None]
        conf = np.where(seen[kept], rng.uniform(0.6, 1.0, (len(kept), 17)), rng.uniform(0.1, 0.6, (len(kept), 17)))
        conf = np.where(labelled[kept], conf, 0.0)  # outside the frame: nothing there
        score = np.where(rng.random(len(kept)) < low_score, rng.uniform(0.15, 0.5, len(kept)),
                         rng.uniform(0.6, 1.0, len(kept)))
        n_fp = rng.poisson(false_positives)
        fp_size = rng.uniform(0.2, 0.5, n_fp) * size
        fp_xy = rng.uniform(0, size, (n_fp, 1, 2)) + rng.normal(0, 0.2, (n_fp, 17, 2)) * fp_size[:, None, None]
        fp_conf = rng.uniform(0.2, 0.7, (n_fp, 17))
        scores.append(np.concatenate([score, rng.uniform(0.1, 0.45, n_fp)]))
        keypoints.append(np.concatenate([np.concatenate([xy, conf[..., None]], -1),
                                         np.concatenate([fp_xy, fp_conf[..., None]], -1)]))
        person.append(np.concatenate([ids[kept], np.full(n_fp, -1)]))
    return Detections(scores, keypoints, person)


def model_detections(model, seq: Sequence, imgsz: int, conf: float, cache: Path | None = None) -> Detections:
    """Setting (b): the model's people on the rendered video (the true id of each is unknown: -1).

    With ``cache``, the detections are saved there (npz) and read back on the next run.
    """
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            splits = np.cumsum(z["counts"])[:-1]
            scores, keypoints = np.split(z["scores"], splits), np.split(z["keypoints"], splits)
    else:
        results = model.predict(str(seq.video), imgsz=imgsz, conf=conf)
        scores = [r.scores.astype(np.float64) for r in results]
        keypoints = [r.keypoints.data.astype(np.float64).reshape(-1, 17, 3) for r in results]
        if cache is not None:
            np.savez(cache, counts=np.array([len(x) for x in scores]), scores=np.concatenate(scores),
                     keypoints=np.concatenate(keypoints))
    if len(scores) != len(seq.frames):
        raise ValueError(f"{seq.video}: {len(scores)} frames decoded, {len(seq.frames)} labelled")
    return Detections(list(scores), list(keypoints), [np.full(len(x), -1) for x in scores])


def assign_people(seq: Sequence, dets: Detections) -> Detections:
    """For model detections: each detection's true person by a per-frame OKS-free PCKh pairing."""
    from erpose.track.metrics import keypoint_matches, pair_people, pckh_thresholds

    person = []
    for (ids, gt), kpts in zip(seq.frames, dets.keypoints):
        out = np.full(len(kpts), -1)
        if len(ids) and len(kpts):
            matches = keypoint_matches(gt, kpts, pckh_thresholds(gt), 0.5)
            rows, cols = pair_people(matches, gt[..., 2] > 0, 0.5)
            out[cols] = ids[rows]
        person.append(out)
    return replace(dets, person=person)


def run_tracker(config: TrackerConfig, dets: Detections, fps: float) -> list:
    tracker = PoseTracker(COCO17.sigmas_array(), config)
    return [tracker.update(s, k, dt=1.0 / fps) for s, k in zip(dets.scores, dets.keypoints)]


def smoothness(seq: Sequence, dets: Detections, outputs: list, which: str) -> tuple[list[float], list[float]]:
    """Per true person: jitter (px/frame^2 above the ground truth) and lag (frames) of the reported keypoints."""
    frames, people = len(seq.frames), seq.num_people
    pred = np.full((frames, people, 17, 2), np.nan)
    gt = np.full((frames, people, 17, 2), np.nan)
    for t, ((ids, kpts), out) in enumerate(zip(seq.frames, outputs)):
        gt[t, ids] = np.where(kpts[..., 2:] > 0, kpts[..., :2], np.nan)
        who = dets.person[t][out.detection_index]
        real = who >= 0
        pred[t, who[real]] = getattr(out, which)[real, :, :2]
    valid = np.isfinite(pred).all(-1) & np.isfinite(gt).all(-1)
    jitters, lags = [], []
    for p in range(people):
        if valid[:, p].any(axis=-1).sum() < 3:
            continue
        jitters.append(jitter(np.nan_to_num(pred[:, p]), np.nan_to_num(gt[:, p]), valid[:, p]))
        if valid[:, p].any(axis=-1).sum() > 30:
            lags.append(lag_frames(np.where(valid[:, p, :, None], pred[:, p], np.nan), gt[:, p], max_lag=8))
    return jitters, lags


def evaluate(config: TrackerConfig, seq: Sequence, dets: Detections, smooth_only: bool = False) -> dict:
    outputs = run_tracker(config, dets, seq.fps)
    out: dict = {}
    jit_raw, lag_raw = smoothness(seq, dets, outputs, "keypoints")
    jit_smooth, lag_smooth = smoothness(seq, dets, outputs, "smoothed")
    out.update(jit_raw=jit_raw, jit_smooth=jit_smooth, lag_raw=lag_raw, lag_smooth=lag_smooth)
    if smooth_only:
        return out
    gt_frames = seq.frames
    pred_frames = [(o.track_ids, o.keypoints) for o in outputs]
    mota = keypoint_mota(gt_frames, pred_frames, pred_conf=0.5)
    ident = identity_scores(gt_frames, pred_frames, pred_conf=0.5)
    out.update(mota=mota.mota, idf1=ident.idf1, switches=ident.id_switches, tracks=ident.num_gt_tracks)
    return out


def summarise(rows: list[dict]) -> dict[str, float]:
    pooled = lambda key: [v for r in rows for v in r[key]]  # noqa: E731
    jit_raw, jit_smooth = np.mean(pooled("jit_raw")), np.mean(pooled("jit_smooth"))
    out = {"jitter raw": jit_raw, "jitter smoothed": jit_smooth, "jitter cut %": 100 * (1 - jit_smooth / jit_raw),
           "lag raw": np.mean(pooled("lag_raw")), "lag smoothed": np.mean(pooled("lag_smooth"))}
    if "mota" in rows[0]:
        switches, tracks = sum(r["switches"] for r in rows), sum(r["tracks"] for r in rows)
        out = {"MOTA": np.mean([r["mota"] for r in rows]), "IDF1": np.mean([r["idf1"] for r in rows]),
               "IDSW": switches, "IDSW/100": 100.0 * switches / max(tracks, 1), **out}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the sequences (rendered there if missing)")
    parser.add_argument("--sequences", type=int, default=10, help="sequences per preset")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", type=int, default=256, help="rendered frame side, px")
    parser.add_argument("--clutter", type=float, default=0.0, help="occluders and background shapes, 0..1")
    parser.add_argument("--shake", type=float, default=1.0, help="camera shake std, px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", choices=["gt", "model"], default="gt")
    parser.add_argument("--conditions", default="0.01:0.05,0.03:0.10",
                        help="(a): noise:drop pairs, noise as a fraction of the person's height")
    parser.add_argument("--weights", help="(b): the model")
    parser.add_argument("--imgsz", type=int, default=256, help="(b): model input size")
    parser.add_argument("--conf", type=float, default=0.1, help="(b): lowest person score kept (the tracker's low_score)")
    parser.add_argument("--model-thresholds", type=float, nargs=2, default=[0.2, 0.25], metavar=("HIGH", "NEW"),
                        help="(b): high_score and new_track_score for the model's score scale")
    parser.add_argument("--tune", action="store_true", help="sweep the One-Euro parameters on (a) instead")
    parser.add_argument("--min-cutoffs", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 5.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.05, 0.1])
    parser.add_argument("--d-cutoffs", type=float, nargs="+", default=[1.0])
    parser.add_argument("--conf-thresholds", type=float, nargs="+", default=[0.3])
    parser.add_argument("--low-confs", nargs="+", default=["hold"])
    args = parser.parse_args()

    data = {p: [load_sequence(path) for path in ensure_sequences(args.data, p, args.sequences, args.frames,
                                                                  args.size, args.clutter, args.shake, args.seed)]
            for p in PRESETS}
    base = TrackerConfig()
    variants = {"pose (default)": base, "box": replace(base, association="box")}
    if args.tune:
        tune(data, args)
        return
    conditions = [tuple(float(v) for v in c.split(":")) for c in args.conditions.split(",")]
    if args.input == "model":
        from erpose import ERPose

        high, new = args.model_thresholds
        tuned = replace(base, high_score=high, new_track_score=new, low_score=args.conf)
        variants = {"pose, default thresholds": replace(base, low_score=args.conf),
                    f"pose, high {high:g} / new {new:g}": tuned,
                    f"box, high {high:g} / new {new:g}": replace(tuned, association="box")}

        model = ERPose(args.weights)
        inputs = {}
        for preset, seqs in data.items():
            start = time.perf_counter()
            tag = f"{Path(args.weights).stem}-{args.imgsz}-{args.conf:g}"
            inputs[(preset, "model")] = [
                assign_people(s, model_detections(model, s, args.imgsz, args.conf,
                                                  s.video.with_name(f"{s.name}.dets-{tag}.npz")))
                for s in seqs]
            frames = sum(len(s.frames) for s in seqs)
            print(f"{preset}: model on {frames} frames in {time.perf_counter() - start:.0f} s", flush=True)
    else:
        inputs = {(preset, f"noise {n:.0%}, drop {d:.0%}"): [
            simulate_detections(np.random.default_rng([args.seed, i]), s, n, d) for i, s in enumerate(seqs)]
            for preset, seqs in data.items() for n, d in conditions}
    people = {p: np.mean([len(ids) for s in seqs for ids, _ in s.frames]) for p, seqs in data.items()}
    print(f"{args.sequences} sequences x {args.frames} frames per preset at {args.size} px "
          f"(people labelled per frame: " + ", ".join(f"{p} {v:.1f}" for p, v in people.items()) + ")")
    keys = ["MOTA", "IDF1", "IDSW", "IDSW/100", "jitter raw", "jitter smoothed", "jitter cut %", "lag raw",
            "lag smoothed"]
    print("| preset | input | association | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for (preset, cname), dets in inputs.items():
        for vname, config in variants.items():
            rows = [evaluate(config, s, d) for s, d in zip(data[preset], dets)]
            mean = summarise(rows)
            cells = [f"{mean[k]:.0f}" if k == "IDSW" else f"{mean[k]:.1f}" if k == "jitter cut %" else f"{mean[k]:.3f}"
                     for k in keys]
            print(f"| {preset} | {cname} | {vname} | " + " | ".join(cells) + " |", flush=True)


def tune(data: dict[str, list[Sequence]], args: argparse.Namespace) -> None:
    """Jitter cut and lag of the smoothed keypoints over a grid of One-Euro parameters, setting (a)."""
    noise, drop = (float(v) for v in args.conditions.split(",")[0].split(":"))
    inputs = [(s, simulate_detections(np.random.default_rng([args.seed, i]), s, noise, drop))
              for seqs in data.values() for i, s in enumerate(seqs)]
    print(f"One-Euro sweep on (a), noise {noise:.0%}, drop {drop:.0%}, sparse + crowd")
    print("| min_cutoff | beta | d_cutoff | conf_threshold | low_conf | jitter cut % | lag smoothed |")
    print("|---|---|---|---|---|---|---|")
    grid = itertools.product(args.min_cutoffs, args.betas, args.d_cutoffs, args.conf_thresholds, args.low_confs)
    for min_cutoff, beta, d_cutoff, conf_threshold, low_conf in grid:
        smoothing = OneEuroConfig(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, conf_threshold=conf_threshold,
                                  low_conf=low_conf)
        config = replace(TrackerConfig(), smoothing=smoothing)
        mean = summarise([evaluate(config, s, d, smooth_only=True) for s, d in inputs])
        print(f"| {min_cutoff} | {beta} | {d_cutoff} | {conf_threshold} | {low_conf} | {mean['jitter cut %']:.1f} | "
              f"{mean['lag smoothed']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
