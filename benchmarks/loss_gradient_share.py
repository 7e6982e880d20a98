"""How much of the gradient does each keypoint-loss formulation take, and which gain evens it out?

For one model (fresh weights or a checkpoint) and a few val batches, every formulation (a list of
``criterion.*`` overrides on the model's own criterion) is applied to the *same* forward pass and
the *same* assignment (the assigner never reads the loss), and the script measures the L2 norm of
the gradient of the keypoint terms and of the score terms, on the shared trunk (backbone + neck,
where the two compete) and on the whole model. The score gradient is the same for every
formulation, so the share of a formulation is ``|g_kpt| / |g_score|`` on the trunk, and the gain that
gives it the first formulation's (the reference's) share is

    kpt_gain * share_reference / share_formulation

(norms are taken over the gain-weighted terms, so this is exact for one batch and a ratio of means
over several). Batch norm runs in eval mode, as in ``ablation_diagnose.py``.

It also says *where* each formulation spends its keypoint gradient: over the labelled keypoints
of the o2m positives, the share of ``sum_k |dL/du_k|`` that comes from keypoints with ``u > 1``
and ``u > 2`` (``exp(-u^2)`` = 0.37 and 0.018: a keypoint beyond ``u = 2`` adds almost nothing to
OKS), and the distribution of ``u`` itself.

    python benchmarks/loss_gradient_share.py erpose-n runs/ablation-p3/B5_s0/weights/best.pt \\
        --data synthcrowd-mixed128 --imgsz 128 --images 64
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

#: name -> criterion overrides (on top of the model's own step criterion). The first is the reference.
FORMULATIONS: dict[str, list[str]] = {
    "plain": ["loss.kpt_loss=plain"],
    "smooth": ["loss.kpt_loss=smooth"],
    "t_kernel_a1": ["loss.kpt_loss=t_kernel", "loss.kpt_tail=1"],
    "t_kernel_a2": ["loss.kpt_loss=t_kernel", "loss.kpt_tail=2"],
    "cauchy": ["loss.kpt_loss=cauchy"],
    "neg_log_oks": ["loss.kpt_loss=neg_log_oks"],
}


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def _u_slopes(u: torch.Tensor, labelled: torch.Tensor, overrides: list[str], loss_config) -> torch.Tensor:
    """|dL/du_k| of one formulation at the positives' normalised distances ``u`` (P, K)."""
    from erpose.models.losses import keypoint_loss

    u = u.detach().clone().requires_grad_(True)
    # keypoint_loss takes pixels: a ground truth at 0, a prediction at (u, 0), 2 A (2 sigma)^2 = 1.
    gt = torch.zeros(*u.shape, 3)
    gt[..., 2] = labelled.float() * 2
    pred = torch.stack((u, torch.zeros_like(u)), -1)
    sigma = torch.full((u.shape[1],), 0.5 / math.sqrt(2.0))  # 2 * 1 * (2 sigma)^2 = 1 with A = 1
    loss = keypoint_loss(pred, gt, torch.ones(u.shape[0]), sigma, loss_config.kpt_loss, loss_config.u0,
                         loss_config.l1_weight, loss_config.kpt_tail).sum()
    (grad,) = torch.autograd.grad(loss, u)
    return grad.abs() * labelled


def measure(model_name: str, data: str, imgsz: int, images: int, batch: int, formulations: dict[str, list[str]],
            seed: int = 0) -> dict[str, dict[str, float]]:
    """``{formulation: {kpt_trunk, score_trunk, kpt_all, score_all, kpt_value, kpt_gain}}`` (means over batches)."""
    from ablation_diagnose import _batches

    from erpose.config import apply_overrides
    from erpose.models.checkpoint import load_model
    from erpose.models.criterion import build_criterion, default_criterion_config

    torch.manual_seed(seed)
    model = load_model(model_name)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    trunk = [p for name, p in model.named_parameters() if not name.startswith("head.") and p.requires_grad]
    every = [p for p in model.parameters() if p.requires_grad]
    criteria = {name: build_criterion(model.config, model.skeleton,
                                      apply_overrides(default_criterion_config(model.config.step), list(items)))
                for name, items in formulations.items()}
    from erpose.geometry.boxes import box_areas
    from erpose.geometry.oks import oks_terms

    sums: dict[str, dict[str, float]] = {name: {} for name in formulations}
    u_all: list[torch.Tensor] = []
    batches = 0
    for pb, _ in _batches(data, imgsz, images, batch):
        out = model(pb.images)
        batches += 1
        reference = next(iter(criteria.values()))
        a = reference.assign(out.o2m, out, pb, reference.config.assign.topk)
        gt = a.keypoints[a.positive]
        areas = a.areas[a.positive]
        if reference.config.loss.kpt_area == "box":
            box_area = box_areas(a.boxes[a.positive])
            areas = torch.where(box_area > 0, box_area, areas)
        u = oks_terms(out.o2m.keypoints[a.positive][..., :2].detach().float(), gt, areas, reference.sigmas).sqrt()
        labelled = gt[..., 2] > 0
        u_all.append(u[labelled])
        for name, criterion in criteria.items():
            slopes = _u_slopes(u, labelled, formulations[name], criterion.config.loss)
            total = float(slopes.sum()) or 1.0
            sums[name]["tail1"] = sums[name].get("tail1", 0.0) + float(slopes[u > 1].sum()) / total
            sums[name]["tail2"] = sums[name].get("tail2", 0.0) + float(slopes[u > 2].sum()) / total
            terms: dict[str, torch.Tensor] = {}
            branches = [("", out.o2m, criterion.config.assign.topk)] + ([("o2o_", out.o2o, 1)] if out.o2o is not None else [])
            for prefix, branch, topk in branches:
                assignment = criterion.assign(branch, out, pb, topk)
                for key, value in criterion.branch_losses(branch, assignment, out).items():
                    if prefix and key in ("kpt", "vis"):
                        value = value * criterion.config.loss.o2o_keypoint_gain
                    terms[prefix + key] = value
            scale = pb.images.shape[0] if criterion.config.loss.scale_by_batch else 1
            kpt = sum(v for k, v in terms.items() if k.endswith("kpt")) * scale
            score = sum(v for k, v in terms.items() if k.endswith("score")) * scale
            row = {"kpt_trunk": _grad_norm(kpt, trunk), "score_trunk": _grad_norm(score, trunk),
                   "kpt_all": _grad_norm(kpt, every), "score_all": _grad_norm(score, every),
                   "kpt_value": float(terms["kpt"].detach()) / criterion.config.loss.kpt}
            for key, value in row.items():
                sums[name][key] = sums[name].get(key, 0.0) + value
    result = {name: {k: v / max(batches, 1) for k, v in values.items()} for name, values in sums.items()}
    u_cat = torch.cat(u_all) if u_all else torch.zeros(1)
    result["_u"] = {"median": float(u_cat.median()), "p90": float(u_cat.quantile(0.9)),
                    "frac_above_1": float((u_cat > 1).float().mean()), "frac_above_2": float((u_cat > 2).float().mean()),
                    "keypoints": float(u_cat.numel())}
    reference = result[next(iter(formulations))]
    ref_share = reference["kpt_trunk"] / max(reference["score_trunk"], 1e-12)
    for name, row in result.items():
        if name == "_u":
            continue
        gain = criteria[name].config.loss.kpt
        row["share_trunk"] = row["kpt_trunk"] / max(row["score_trunk"], 1e-12)
        row["share_all"] = row["kpt_all"] / max(row["score_all"], 1e-12)
        row["kpt_gain"] = gain
        row["balanced_gain"] = gain * ref_share / row["share_trunk"] if row["share_trunk"] > 0 else math.nan
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="zoo names, model YAMLs or checkpoints")
    p.add_argument("--data", default="synthcrowd-mixed128")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--only", default="", help="comma-separated subset of the formulations (first = reference)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE]",
                   help="another formulation, e.g. smooth_k3=loss.kpt_loss=smooth,loss.kpt=3")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ablation_data import register_presets

    register_presets()
    formulations = dict(FORMULATIONS)
    if args.only:
        formulations = {name: formulations[name] for name in args.only.split(",")}
    for item in args.extra:
        name, _, overrides = item.partition("=")
        formulations[name] = overrides.split(",")
    found = {}
    for model in args.models:
        found[model] = measure(model, args.data, args.imgsz, args.images, args.batch, formulations)
        u = found[model]["_u"]
        print(f"\n{model}: u of the o2m positives' labelled keypoints ({u['keypoints']:.0f}): median {u['median']:.2f}, "
              f"90th percentile {u['p90']:.2f}, {u['frac_above_1']:.0%} above 1, {u['frac_above_2']:.0%} above 2")
        print("| formulation | kpt loss value | |g_kpt| trunk | |g_score| trunk | share trunk | share all | gain | "
              "balanced gain | dL/du from u > 1 | from u > 2 |\n|---|---|---|---|---|---|---|---|---|---|")
        for name, r in found[model].items():
            if name == "_u":
                continue
            print(f"| {name} | {r['kpt_value']:.4f} | {r['kpt_trunk']:.4g} | {r['score_trunk']:.4g} | "
                  f"{r['share_trunk']:.3g} | {r['share_all']:.3g} | {r['kpt_gain']:g} | {r['balanced_gain']:.3g} | "
                  f"{r['tail1']:.0%} | {r['tail2']:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
