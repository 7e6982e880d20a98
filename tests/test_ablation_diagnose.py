"""``benchmarks/ablation_diagnose.py --decodings``: the three ways of decoding a B5 model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
diagnose = pytest.importorskip("ablation_diagnose")


def test_decodings_match_the_model_and_suppress_duplicates() -> None:
    from erpose.geometry.oks import pairwise_oks
    from erpose.models.zoo import build_model

    torch.manual_seed(0)
    model = build_model("erpose-n").eval()
    images = torch.rand(2, 3, 64, 64)
    anchors = 8 * 8 + 4 * 4 + 2 * 2  # a 64 px input has 84 anchor points: compare all of them
    shipped = model.predict(images, conf=0.0, max_det=anchors)
    o2o = model.head.o2o
    plain = diagnose.Decoding(model, "o2o", nms=False).predict(images, conf=0.0, max_det=anchors)
    for a, b in zip(plain, shipped):  # the shipped NMS-free rows (tied scores may swap places)
        assert a.shape == b.shape == (anchors, 1 + 3 * 17)
        torch.testing.assert_close(a[:, 0], b[:, 0])
        distance = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
        assert float(distance.min(1).values.max()) < 1e-4
    sigmas = torch.tensor(model.skeleton.sigmas)
    for branch in ("o2o", "o2m"):
        kept = diagnose.Decoding(model, branch, nms=True, iou=0.5).predict(images, conf=0.0, max_det=30)
        assert model.head.o2o is o2o  # the o2o copy is put back after an o2m decoding
        for rows in kept:
            assert 0 < len(rows) <= 30 and bool((rows[:-1, 0] >= rows[1:, 0]).all())
            kpts = rows[:, 1:].view(len(rows), -1, 3)
            # OKS between kept poses (each as ground truth, its own keypoint extent as area)
            extent = (kpts[..., :2].amax(1) - kpts[..., :2].amin(1)).prod(-1).clamp_min(1.0)
            oks = pairwise_oks(kpts[..., :2], torch.cat((kpts[..., :2], torch.full_like(kpts[..., :1], 2.0)), -1),
                               extent, sigmas)
            assert bool((oks.fill_diagonal_(0) <= 0.5 + 1e-4).all())
    model.head.max_det = 20
    o2m = diagnose.Decoding(model, "o2m", nms=False).predict(images, conf=0.0, max_det=1000)
    assert len(o2m[0]) == anchors  # the o2m copy decodes the whole grid, not the o2o's top max_det
