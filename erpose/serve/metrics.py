"""Request counters and a latency histogram, rendered in the Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter

#: Upper bounds of the latency histogram buckets, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """Thread-safe counters: requests by route and status, and ``/v1/predict`` latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.bucket_counts = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.batches = 0
        self.batched_images = 0

    def record(self, route: str, status: int, seconds: float | None = None) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            if seconds is not None:
                self.latency_sum += seconds
                self.latency_count += 1
                for i, bound in enumerate(LATENCY_BUCKETS):
                    if seconds <= bound:
                        self.bucket_counts[i] += 1

    def record_batch(self, size: int) -> None:
        with self._lock:
            self.batches += 1
            self.batched_images += size

    def render(self, queue_depth: int) -> str:
        with self._lock:
            lines = ["# HELP erpose_requests_total HTTP requests by route and status.",
                     "# TYPE erpose_requests_total counter"]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'erpose_requests_total{{route="{route}",status="{status}"}} {count}')
            errors = sum(c for (_, status), c in self.requests.items() if status >= 400)
            lines += ["# HELP erpose_errors_total HTTP responses with status >= 400.",
                      "# TYPE erpose_errors_total counter", f"erpose_errors_total {errors}",
                      "# HELP erpose_predict_seconds Latency of /v1/predict, seconds.",
                      "# TYPE erpose_predict_seconds histogram"]
            for bound, count in zip(LATENCY_BUCKETS, self.bucket_counts):
                lines.append(f'erpose_predict_seconds_bucket{{le="{bound}"}} {count}')
            lines += [f'erpose_predict_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                      f"erpose_predict_seconds_sum {self.latency_sum:.6f}",
                      f"erpose_predict_seconds_count {self.latency_count}",
                      "# HELP erpose_batches_total Model calls; erpose_batched_images_total / this = mean batch.",
                      "# TYPE erpose_batches_total counter", f"erpose_batches_total {self.batches}",
                      "# TYPE erpose_batched_images_total counter", f"erpose_batched_images_total {self.batched_images}",
                      "# HELP erpose_queue_depth Requests waiting for the model.",
                      "# TYPE erpose_queue_depth gauge", f"erpose_queue_depth {queue_depth}"]
        return "\n".join(lines) + "\n"
