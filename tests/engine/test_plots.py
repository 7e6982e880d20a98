"""results.png shows signal: no panel for COCO's -1 ("no data") or for a loss term that is switched off."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from erpose.engine.plots import columns_to_plot, plot_results

ROWS = [
    {"epoch": "1", "train/loss": "3.0", "train/kpt": "2.0", "train/o2o_kpt": "0.0", "train/o2o_vis": "0",
     "lr/weight": "0.001", "metrics/AP": "0.0", "metrics/APL": "-1.0", "metrics/AP_hard": "-1", "metrics/APM": "-1"},
    {"epoch": "2", "train/loss": "2.0", "train/kpt": "1.5", "train/o2o_kpt": "0.0", "train/o2o_vis": "0",
     "lr/weight": "0.002", "metrics/AP": "0.1", "metrics/APL": "-1.0", "metrics/AP_hard": "-1", "metrics/APM": "0.2"},
    {"epoch": "3", "train/loss": "1.0", "train/kpt": "1.0", "train/o2o_kpt": "0.0", "train/o2o_vis": "0",
     "lr/weight": "0.001", "metrics/AP": "0.2", "metrics/APL": "-1.0", "metrics/AP_hard": "-1", "metrics/APM": ""},
]


def test_undefined_metrics_and_disabled_terms_get_no_panel() -> None:
    curves = columns_to_plot(ROWS)
    assert list(curves) == ["train/loss", "train/kpt", "lr/weight", "metrics/AP", "metrics/APM"]
    assert curves["metrics/AP"] == [(1.0, 0.0), (2.0, 0.1), (3.0, 0.2)]  # an AP of 0 is signal: kept
    assert curves["metrics/APM"] == [(2.0, 0.2)]  # -1 ("no data") and empty points left out


def test_plot_results_draws_one_panel_per_curve(tmp_path: Path) -> None:
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    image = cv2.imread(str(plot_results(tmp_path / "results.csv", tmp_path / "results.png")))
    # Five panels in one row (3.2 x 2.6 inches each at 100 dpi); the nine columns took two rows.
    assert image.shape[:2] == (260, 1600)
