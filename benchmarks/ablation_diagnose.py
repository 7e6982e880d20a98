"""Why does a row win or lose? Assignment, duplicate, recall and gradient statistics of trained runs.

For each run's ``best.pt`` on the first ``--images`` val images of the training data (letterbox only):

* assignment (training-mode head, BatchNorm in eval mode): positives per valid person (o2m, o2o),
  OKS of the positives with their person, best OKS per person;
* inference (the model's own ``predict``, conf 0.001, top 20 as COCO scores them): recall at
  OKS 0.5 per crowd-index bucket, duplicates (predictions with OKS >= 0.5 to a person a
  higher-scored prediction already covers), mean best OKS per person, score of matched vs
  unmatched predictions;
* gradients of one batch: L2 norm of the keypoint terms' and of the score terms' gradient (the
  trainer clips the total at ``optim.grad_clip``).

    python benchmarks/ablation_diagnose.py runs/ablation/B0_s0 runs/ablation/B5_s0 --imgsz 160

``--decodings SET,...`` instead asks what the NMS-free output costs or gains: each run with an
o2o copy (B5) is scored on the val split of each set three ways, with the same evaluator as the
table: the o2o copy as shipped (no NMS), the o2o copy + OKS-NMS 0.7, and the o2m copy + OKS-NMS 0.7
(what B3 would deploy from the same weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def _batches(data: str, imgsz: int, images: int, batch: int):
    from erpose.data.dataset import PoseDataset, collate
    from erpose.data.source import load_source

    source = load_source(data, "val")
    dataset = PoseDataset(source, imgsz, augment=None)
    n = min(images, len(dataset))
    for start in range(0, n, batch):
        indices = range(start, min(start + batch, n))
        crowd = [source.samples[i].crowd_index for i in indices]
        yield collate([dataset[i] for i in indices]), [float("nan") if c is None else c for c in crowd]


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def diagnose(run_dir: Path, data: str, imgsz: int, images: int, batch: int, overrides: list[str] = ()) -> dict:
    """Statistics of one run's ``best.pt`` (see the module docstring)."""
    from erpose.config import apply_overrides
    from erpose.geometry.oks import pairwise_oks
    from erpose.models.checkpoint import load_model
    from erpose.models.criterion import build_criterion, default_criterion_config

    model = load_model(run_dir / "weights" / "best.pt")
    config = apply_overrides(default_criterion_config(model.config.step), list(overrides))
    criterion = build_criterion(model.config, model.skeleton, config)
    sigmas = torch.tensor(model.skeleton.sigmas, dtype=torch.float32)
    stats: dict[str, list[float]] = {k: [] for k in (
        "pos_o2m", "pos_o2o", "oks_pos", "best_oks_pred", "recall_easy", "recall_medium",
        "recall_hard", "dup", "score_tp", "score_fp", "grad_kpt", "grad_score", "grad_total")}
    params = [p for p in model.parameters() if p.requires_grad]
    for i, (pb, crowd) in enumerate(_batches(data, imgsz, images, batch)):
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        out = model(pb.images)
        valid = pb.person_mask & ((pb.keypoints[..., 2] > 0).sum(-1) > 0)
        for name, branch, topk in (("o2m", out.o2m, criterion.config.assign.topk), ("o2o", out.o2o, 1)):
            if branch is None:
                continue
            a = criterion.assign(branch, out, pb, topk)
            stats[f"pos_{name}"].append(float(a.positives_per_person[valid].float().mean()))
            if name == "o2m":
                stats["oks_pos"].append(float(a.quality[a.positive].mean()) if a.positive.any() else 0.0)
        if i == 0:  # gradient split on the first batch only (it is the expensive part)
            total, _ = criterion(out, pb)
            terms = {}
            for prefix, branch, topk in [("", out.o2m, criterion.config.assign.topk)] + (
                    [("o2o_", out.o2o, 1)] if out.o2o is not None else []):
                a = criterion.assign(branch, out, pb, topk)
                for k, v in criterion.branch_losses(branch, a, out).items():
                    terms[prefix + k] = v
            scale = pb.images.shape[0] if criterion.config.loss.scale_by_batch else 1
            kpt = sum(v for k, v in terms.items() if k.endswith("kpt")) * scale
            score = sum(v for k, v in terms.items() if k.endswith("score")) * scale
            stats["grad_kpt"].append(_grad_norm(kpt, params))
            stats["grad_score"].append(_grad_norm(score, params))
            stats["grad_total"].append(_grad_norm(total, params))
        with torch.no_grad():
            dets = model.predict(pb.images, conf=0.001, max_det=20)
        for b, det in enumerate(dets):
            gt = pb.keypoints[b][valid[b]]
            if len(gt) == 0:
                continue
            areas = pb.areas[b][valid[b]]
            if len(det) == 0:
                oks = torch.zeros(len(gt), 0)
            else:
                oks = pairwise_oks(det[:, 1:].reshape(len(det), -1, 3)[..., :2], gt, areas, sigmas)  # (G, P)
            best = oks.max(1).values if oks.shape[1] else torch.zeros(len(gt))
            stats["best_oks_pred"] += best.tolist()
            bucket = "easy" if crowd[b] < 0.2 else "medium" if crowd[b] < 0.8 else "hard"  # NaN: hard
            stats[f"recall_{bucket}"] += (best >= 0.5).float().tolist()
            if oks.shape[1]:
                hit = oks >= 0.5  # predictions are sorted by score: a later hit on a covered person is a duplicate
                covered = torch.cumsum(hit.int(), 1) > 1
                stats["dup"].append(float((hit & covered).any(0).sum()))
                matched = hit.any(0)
                stats["score_tp"] += det[matched, 0].tolist()
                stats["score_fp"] += det[~matched, 0].tolist()
    return {k: (sum(v) / len(v) if v else float("nan")) for k, v in stats.items()} | {
        "n_persons": len(stats["best_oks_pred"])}


class Decoding(torch.nn.Module):
    """A trained ER model decoded another way: from its ``o2m`` or ``o2o`` copy, with or without
    OKS-NMS. Quacks like a ``PoseModel`` for ``erpose.engine.validator.validate``."""

    def __init__(self, model: torch.nn.Module, branch: str, nms: bool, iou: float = 0.7) -> None:
        super().__init__()
        self.model, self.branch, self.nms, self.iou = model, branch, nms, iou
        self.skeleton = model.skeleton

    @torch.no_grad()
    def predict(self, images: torch.Tensor, conf: float = 0.001, max_det: int = 100) -> list[torch.Tensor]:
        head, k = self.model.head, self.model.num_keypoints
        o2o = head.o2o
        if self.branch == "o2m":
            head.o2o = None  # the eval forward then decodes the o2m copy's whole grid
        try:
            raw = self.model.eval()(images)
        finally:
            head.o2o = o2o
        detections = self.model.postprocess(raw, conf=conf, max_det=max_det, iou=self.iou, nms=self.nms)
        return [d[:, : 1 + 3 * k] for d in detections]


DECODINGS = {"o2o (shipped, no NMS)": ("o2o", False), "o2o + OKS-NMS": ("o2o", True), "o2m + OKS-NMS": ("o2m", True)}


def compare_decodings(run_dir: Path, eval_sets: list, imgsz: int, batch: int) -> dict[str, dict[str, dict]]:
    """``{set: {decoding: metrics}}`` of one run with an o2o copy."""
    from erpose.data.coco import read_coco
    from erpose.engine.validator import validate
    from erpose.models.checkpoint import load_model

    model = load_model(run_dir / "weights" / "best.pt").eval()
    if getattr(model.head, "o2o", None) is None:
        raise SystemExit(f"{run_dir}: --decodings needs a model with an o2o copy (B5)")
    results: dict[str, dict[str, dict]] = {}
    for es in eval_sets:
        source = read_coco(es.annotations, es.images)
        results[es.name] = {
            name: dict(validate(Decoding(model, branch, nms), source, imgsz=imgsz, batch_size=batch,
                                progress=False).metrics)
            for name, (branch, nms) in DECODINGS.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data", default="synthcrowd-s")
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--override", nargs="*", default=[], help="criterion overrides, e.g. loss.kpt_area=box")
    p.add_argument("--decodings", default="", metavar="SET,...",
                   help="score B5 runs decoded three ways (o2o, o2o + OKS-NMS, o2m + OKS-NMS) on these sets")
    p.add_argument("--data-dir", type=Path, default=Path("runs/ablation/data"), help="rendered evaluation sets")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ablation_data import register_presets

    register_presets()  # --data may be one of the study's own presets
    if args.decodings:
        from ablation_data import ensure_eval_set

        sets = [es for name in args.decodings.split(",") if (es := ensure_eval_set(name, args.data_dir)) is not None]
        found = {str(r.name): compare_decodings(r, sets, args.imgsz, args.batch) for r in args.runs}
        print("| run | set | decoding | AP | AP50 | AP75 | AR | AP easy / medium / hard |\n|---|---|---|---|---|---|---|---|")
        for run, per_set in found.items():
            for name, per_decoding in per_set.items():
                for decoding, m in per_decoding.items():
                    print(f"| {run} | {name} | {decoding} | {m['AP']:.4f} | {m['AP50']:.4f} | {m['AP75']:.4f} | "
                          f"{m['AR']:.4f} | {m.get('AP_easy', -1):.4f} / {m.get('AP_medium', -1):.4f} / "
                          f"{m.get('AP_hard', -1):.4f} |")
        if args.json:
            args.json.write_text(json.dumps(found, indent=1))
        return 0
    rows = {str(r.name): diagnose(r, args.data, args.imgsz, args.images, args.batch, args.override) for r in args.runs}
    keys = list(next(iter(rows.values())))
    print("| stat | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[k]:.4g}" for r in rows.values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
