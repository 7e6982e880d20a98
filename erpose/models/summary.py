"""Model summary: layers, inference-graph parameters and GFLOPs at a given input size.

Conventions (those of the YOLO11 tables, so the numbers compare): the inference graph is the
deployed (o2m copy dropped) and fused (Conv+BN folded) model; GFLOPs are ``2 x MACs / 1e9`` for
one image of ``imgsz x imgsz``, counted by ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matrix products, attention included; element-wise ops not counted).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from erpose.limits import check_imgsz
from erpose.models.pose_model import MAX_STRIDE, PoseModel


@dataclass(frozen=True)
class ModelSummary:
    """What ``erpose info`` prints.

    Attributes:
        layers: leaf modules of the fused inference graph.
        parameters: parameters of the fused inference graph.
        parameters_unfused: parameters of the deployed graph before BN folding.
        gflops: GFLOPs (2 x MACs) of one ``imgsz`` square image.
        imgsz: the input side used, pixels.
    """

    layers: int
    parameters: int
    parameters_unfused: int
    gflops: float
    imgsz: int

    def __str__(self) -> str:
        return (
            f"{self.layers} layers, {self.parameters:,} parameters ({self.parameters_unfused:,} before "
            f"Conv+BN fusion), {self.gflops:.2f} GFLOPs at {self.imgsz}"
        )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_summary(model: PoseModel, imgsz: int = 640) -> ModelSummary:
    """Summarise the inference graph of ``model`` (a copy is deployed and fused; ``model`` is untouched).

    Args:
        model: any ``PoseModel``.
        imgsz: square input side for the FLOP count, a multiple of 32.
    """
    imgsz = check_imgsz(imgsz, MAX_STRIDE)[0]
    graph = copy.deepcopy(model).cpu().float().deploy()
    unfused = count_parameters(graph)
    graph.fuse()
    layers = sum(1 for m in graph.modules() if not any(True for _ in m.children()))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        graph(torch.zeros(1, 3, imgsz, imgsz))
    return ModelSummary(layers, count_parameters(graph), unfused, counter.get_total_flops() / 1e9, imgsz)
