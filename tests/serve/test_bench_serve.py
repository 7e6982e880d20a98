"""``benchmarks/bench_serve.py`` end to end at toy scale: the protocol's record, on loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench = pytest.importorskip("bench_serve")


def test_bench_serve_records_every_level(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    out = tmp_path / "serve.json"
    code = bench.main(["--weights", "erpose-n", "--imgsz", "64", "--clients", "1", "3", "--duration", "1.5",
                       "--max-batch", "2", "--threads", "1", "--rss-interval", "0.2", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert [row["clients"] for row in report["rows"]] == [1, 3]
    for row in report["rows"]:
        assert row["requests"] > 0 and row["errors"] == 0 and row["busy_503"] == 0
        assert row["p50_ms"] <= row["p99_ms"] and 0 < row["model_ms_per_image"] <= row["mean_latency_ms"]
        assert row["rss_before_mb"] > 0 and row["rss_max_mb"] >= max(row["rss_before_mb"], row["rss_after_mb"])
        assert 1.0 <= row["mean_batch"] <= 2.0
    assert report["rows"][0]["mean_batch"] == 1.0  # one client never batches
    assert report["server_omp_wait_policy"] == "PASSIVE"
    assert report["plain"]["omp_wait_policy"] == "unset"  # the user's loop, then the server's policy
    assert report["plain_server_policy"]["omp_wait_policy"] == "PASSIVE"
    assert report["plain"]["rps"] > 0 and len(report["rss_samples"]) >= 5
    table = capsys.readouterr().out
    assert "| 3 |" in table and "plain `ERPose.predict` loop" in table
