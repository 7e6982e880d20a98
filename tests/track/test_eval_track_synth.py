"""Smoke test of ``benchmarks/eval_track_synth.py`` on two tiny rendered sequences."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
evaluation = pytest.importorskip("eval_track_synth")

from erpose.track import TrackerConfig  # noqa: E402


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    paths = evaluation.ensure_sequences(root, "crowd", 1, 60, 96, 0.0, 0.0, 4)
    return evaluation.load_sequence(paths[0])


def test_sequences_render_once_and_load_as_posetrack(crowd, tmp_path):
    assert len(crowd.frames) == 60 and crowd.size == 96 and crowd.fps == 30.0
    ids, kpts = crowd.frames[30]
    assert kpts.shape == (len(ids), 17, 3) and len(set(ids.tolist())) == len(ids)
    assert crowd.video.is_file()


def test_exact_detections_track_without_switches_lag_or_jitter(crowd):
    dets = evaluation.simulate_detections(np.random.default_rng(0), crowd, noise=0.0, drop=0.0, low_score=0.0,
                                          false_positives=0.0)
    # Without noise each detection is its true person's labelled keypoints, with that person's id.
    for (ids, kpts), person, det in zip(crowd.frames, dets.person, dets.keypoints):
        rows = np.searchsorted(ids, person)
        assert (ids[rows] == person).all()
        labelled = kpts[rows, :, 2] > 0
        assert np.array_equal(det[..., :2][labelled], kpts[rows][..., :2][labelled])
        assert (det[..., 2][~labelled] == 0).all() and (det[..., 2][labelled] > 0).all()
    assert sum(len(p) for p in dets.person) > 0.5 * sum(len(ids) for ids, _ in crowd.frames)
    row = evaluation.evaluate(TrackerConfig(), crowd, dets)
    # (IDF1 stays well under 1: mostly hidden people are dropped, hidden keypoints are unconfident.)
    assert row["switches"] == 0 and row["idf1"] > 0.5
    assert np.mean(row["lag_raw"]) < 0.05 and abs(np.mean(row["jit_raw"])) < 0.05


def test_noise_makes_jitter_that_smoothing_cuts(crowd):
    dets = evaluation.simulate_detections(np.random.default_rng(1), crowd, noise=0.02, drop=0.05)
    summary = evaluation.summarise([evaluation.evaluate(TrackerConfig(), crowd, dets)])
    assert summary["jitter raw"] > 1.0 and summary["jitter cut %"] > 50
    assert summary["lag smoothed"] < 1.5
    off = replace(TrackerConfig(), smoothing=replace(TrackerConfig().smoothing, enabled=False))
    unsmoothed = evaluation.summarise([evaluation.evaluate(off, crowd, dets)])
    assert unsmoothed["jitter cut %"] == pytest.approx(0.0, abs=1e-9)
