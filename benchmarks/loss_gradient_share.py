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
    sums: dict[str, dict[str, float]] = {name: {} for name in formulations}
    batches = 0
    for pb, _ in _batches(data, imgsz, images, batch):
        out = model(pb.images)
        batches += 1
        for name, criterion in criteria.items():
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
    reference = next(iter(result.values()))
    ref_share = reference["kpt_trunk"] / max(reference["score_trunk"], 1e-12)
    for name, row in result.items():
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
        print(f"\n{model}\n| formulation | kpt loss value | |g_kpt| trunk | |g_score| trunk | share trunk | "
              f"share all | gain | balanced gain |\n|---|---|---|---|---|---|---|---|")
        for name, r in found[model].items():
            print(f"| {name} | {r['kpt_value']:.4f} | {r['kpt_trunk']:.4g} | {r['score_trunk']:.4g} | "
                  f"{r['share_trunk']:.3g} | {r['share_all']:.3g} | {r['kpt_gain']:g} | {r['balanced_gain']:.3g} |")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
