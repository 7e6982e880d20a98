"""Load test of ``erpose serve`` on loopback: throughput, latency, errors and memory per concurrency level.

The issue-16 protocol, in one run:

1. a plain loop of single-image ``ERPose.predict`` calls for ``--duration`` seconds, before the server
   starts, in a fresh process twice: with the OpenMP wait policy of the environment (what a user's
   own loop gets) and with the server's (``erpose serve`` sets ``OMP_WAIT_POLICY=PASSIVE``), so the
   comparison separates what the server and its batching buy from what the wait policy does;
2. ``erpose serve`` as a subprocess on a free port of 127.0.0.1 (loopback only: asserted), which
   warms up every batch size 1..``--max-batch`` before it answers ``/health``;
3. for each of ``--clients`` (1, 4, 16) concurrent asyncio clients posting the same photo:
   ``--duration`` seconds (and at most ``--max-requests`` requests), requests/s, p50 / p99 latency,
   errors (anything but 200 and 503; must be 0 while the clients fit in the queue), 503s, the
   mean batch the server ran, the machine's load average, and the server's resident memory sampled
   every ``--rss-interval`` seconds: before and after the level and its maximum.

Prints a markdown table and writes the whole record (with the RSS samples) as JSON. Use trained
weights for timing: a freshly initialised model runs far slower on CPU (denormal floats).

    python benchmarks/bench_serve.py --weights best.pt --clients 1 4 16 --duration 60 --json serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples a process's resident memory every ``interval`` seconds in a thread: (t, MB) pairs."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((round(time.perf_counter() - self._t0, 2), rss_mb(self.pid)))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def photo() -> bytes:
    """The shared public-domain photo as a JPEG (a random image where the data is missing)."""
    real = HERE.parent.parent / "shared" / "data" / "real" / "public_domain_samples" / "astronaut.png"
    image = cv2.imread(str(real)) if real.is_file() else None
    if image is None:
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def scrape(text: str, name: str) -> float:
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)


async def load(url: str, body: bytes, clients: int, duration: float, max_requests: int) -> dict:
    """``clients`` clients posting ``body`` back to back until ``duration`` or ``max_requests``."""
    import httpx

    latencies: list[float] = []
    in_server: list[float] = []  # per request: ms from the handler's start to its answer
    in_model: list[float] = []  # per request: the model's ms per image (its batch's time / batch size)
    statuses: dict[int, int] = {}
    sent = 0
    stop = time.perf_counter() + duration

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < stop and sent < max_requests:
            sent += 1
            started = time.perf_counter()
            try:
                response = await http.post(url, content=body, headers={"content-type": "image/jpeg"})
                status = response.status_code
            except httpx.HTTPError:
                status = -1  # transport error or timeout
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - started)
                timing = response.json()["timing_ms"]
                in_server.append(timing["server"])
                in_model.append(timing["preprocess"] + timing["inference"] + timing["postprocess"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        # A hard bound on the level: the duration plus one slow request per client.
        await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(clients))), duration + 180)
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1e3
    busy = statuses.get(503, 0)
    return {"clients": clients, "requests": len(latencies), "seconds": round(elapsed, 2),
            "rps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "server_ms": float(np.mean(in_server)) if in_server else None,
            "model_ms_per_image": float(np.mean(in_model)) if in_model else None,
            "mean_latency_ms": float(ms.mean()) if len(ms) else None,
            "errors": sum(n for s, n in statuses.items() if s not in (200, 503)), "busy_503": busy,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def plain_loop(weights: str, body: bytes, imgsz: int, duration: float, max_requests: int) -> dict:
    """Single-image ``ERPose.predict`` calls back to back, on the decoded photo, in this process."""
    from erpose.api import ERPose

    model = ERPose(weights)
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    for _ in range(2):
        model.predict(image, imgsz=imgsz)  # warm-up
    times: list[float] = []
    stop = time.perf_counter() + duration
    started = time.perf_counter()
    while time.perf_counter() < stop and len(times) < max_requests:
        t0 = time.perf_counter()
        model.predict(image, imgsz=imgsz)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    ms = np.asarray(times) * 1e3
    return {"requests": len(times), "rps": len(times) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def plain_in_process(args: argparse.Namespace, body_path: str, policy: str | None) -> dict:
    """:func:`plain_loop` in a fresh process with ``OMP_WAIT_POLICY=policy`` (None: as inherited)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    load_before = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--plain-only", body_path, "--weights", args.weights,
                          "--imgsz", str(args.imgsz), "--duration", str(args.duration),
                          "--max-requests", str(args.max_requests)],
                         env=env, capture_output=True, text=True, timeout=args.duration + 600, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(omp_wait_policy=env.get("OMP_WAIT_POLICY", "unset"),
               load_avg=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return row


def start_server(args: argparse.Namespace, port: int, log) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("ERPOSE_SERVE_TOKEN", None)
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    command = [sys.executable, "-m", "erpose.cli.main", "serve", "--weights", args.weights, "--host", HOST,
               "--port", str(port), "--imgsz", str(args.imgsz), "--max-batch", str(args.max_batch),
               "--batch-wait-ms", str(args.batch_wait_ms), "--queue-size", str(args.queue_size)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"erpose serve exited with {server.returncode} before it was ready")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"erpose serve not ready after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="erpose-n", help="use trained weights for timing (a fresh model is slow)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--duration", type=float, default=60.0, help="seconds per level (and for the plain loop)")
    p.add_argument("--max-requests", type=int, default=100_000, help="requests per level at most")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--queue-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="model threads, server and plain loop")
    p.add_argument("--rss-interval", type=float, default=1.0, help="seconds between server RSS samples")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server environment")
    p.add_argument("--skip-plain", action="store_true", help="no plain-loop baseline (quick server-only runs)")
    p.add_argument("--json", default=None, help="write the record here")
    p.add_argument("--plain-only", default=None, metavar="JPEG", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.plain_only:
        body = Path(args.plain_only).read_bytes()
        print(json.dumps(plain_loop(args.weights, body, args.imgsz, args.duration, args.max_requests)))
        return 0
    assert ipaddress.ip_address(HOST).is_loopback  # the load never leaves this machine
    import httpx

    body = photo()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    report: dict = {"cpu": cpu, "cores": os.cpu_count(), "weights": args.weights, "imgsz": args.imgsz,
                    "duration_s": args.duration, "max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms,
                    "threads": args.threads, "server_env": args.env, "photo_bytes": len(body)}
    server_policy = next((item.split("=", 1)[1] for item in args.env if item.startswith("OMP_WAIT_POLICY=")),
                         os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    report["server_omp_wait_policy"] = server_policy
    if not args.skip_plain:
        with tempfile.NamedTemporaryFile(suffix=".jpg") as jpeg:
            jpeg.write(body)
            jpeg.flush()
            report["plain"] = plain_in_process(args, jpeg.name, None)
            if report["plain"]["omp_wait_policy"] != server_policy:
                report["plain_server_policy"] = plain_in_process(args, jpeg.name, server_policy)
        for key in ("plain", "plain_server_policy"):
            if key in report:
                q = report[key]
                print(f"plain ERPose.predict loop, OMP_WAIT_POLICY {q['omp_wait_policy']}: {q['rps']:.2f} images/s",
                      flush=True)
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    url = f"http://{HOST}:{port}"
    assert ipaddress.ip_address(httpx.URL(url).host).is_loopback
    rows = []
    with tempfile.TemporaryFile("w+") as log:
        server = start_server(args, port, log)
        try:
            with RssSampler(server.pid, args.rss_interval) as sampler:
                started = time.perf_counter()
                wait_healthy(url, server, timeout=600)
                report["server_ready_s"] = round(time.perf_counter() - started, 1)
                report["server_rss_ready_mb"] = rss_mb(server.pid)
                for n in args.clients:
                    first = len(sampler.samples)
                    before_metrics = httpx.get(url + "/metrics").text
                    before, load_before = rss_mb(server.pid), os.getloadavg()[0]
                    row = asyncio.run(load(url + "/v1/predict", body, n, args.duration, args.max_requests))
                    after_metrics = httpx.get(url + "/metrics").text
                    level = [mb for _, mb in sampler.samples[first:]]
                    batches = scrape(after_metrics, "erpose_batches_total") - scrape(before_metrics, "erpose_batches_total")
                    images = (scrape(after_metrics, "erpose_batched_images_total")
                              - scrape(before_metrics, "erpose_batched_images_total"))
                    row.update(rss_before_mb=before, rss_after_mb=rss_mb(server.pid),
                               rss_max_mb=max(level + [before]), mean_batch=images / max(batches, 1),
                               load_avg=[round(load_before, 2), round(os.getloadavg()[0], 2)])
                    rows.append(row)
                    print(f"{n} clients: {row['rps']:.2f} req/s, mean batch {row['mean_batch']:.2f}, RSS "
                          f"{row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} MB (max {row['rss_max_mb']:.0f})",
                          flush=True)
            report["rss_samples"] = sampler.samples
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.seek(0)
            server_log = log.read()[-4000:]
    report["rows"] = rows
    report["server_log_tail"] = server_log
    plain = report.get("plain", {}).get("rps")
    print(f"\nCPU: {cpu} ({os.cpu_count()} cores, {args.threads} model threads); {args.weights} at {args.imgsz}; "
          f"{args.duration:g} s per level; server OMP_WAIT_POLICY {server_policy}, ready (warmed up) in "
          f"{report['server_ready_s']} s at {report['server_rss_ready_mb']:.0f} MB RSS")
    print("\n| clients | requests/s | p50 ms | p99 ms | model ms/image | errors | 503 | mean batch | server RSS "
          "before -> after (max) MB | load avg | vs plain loop (first row) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{row['rps'] / plain:.2f}x" if plain else ""
        print(f"| {row['clients']} | {row['rps']:.2f} | {row['p50_ms'] or 0:.0f} | {row['p99_ms'] or 0:.0f} | "
              f"{row['model_ms_per_image'] or 0:.0f} | {row['errors']} | {row['busy_503']} | {row['mean_batch']:.2f} | "
              f"{row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} ({row['rss_max_mb']:.0f}) | "
              f"{row['load_avg'][0]:.1f}-{row['load_avg'][1]:.1f} | {ratio} |")
    for key in ("plain", "plain_server_policy"):
        if key in report:
            q = report[key]
            print(f"| plain `ERPose.predict` loop, OMP_WAIT_POLICY {q['omp_wait_policy']} | {q['rps']:.2f} | "
                  f"{q['p50_ms']:.0f} | {q['p99_ms']:.0f} | {q['mean_ms']:.0f} | | | 1 | | "
                  f"{q['load_avg'][0]:.1f}-{q['load_avg'][1]:.1f} | {q['rps'] / plain:.2f}x |")
    single = next((row for row in rows if row["clients"] == 1 and row["mean_latency_ms"]), None)
    if single:  # what serving adds to one request, measured inside the same requests (robust to load)
        extra = single["mean_latency_ms"] - single["model_ms_per_image"]
        print(f"\n1 client: {single['mean_latency_ms']:.0f} ms per request, of which the model "
              f"{single['model_ms_per_image']:.0f} ms; HTTP, upload decoding, queueing and JSON add {extra:.0f} ms "
              f"({extra / single['mean_latency_ms']:.0%}); the server's own share (handler start to answer, minus "
              f"the model) is {single['server_ms'] - single['model_ms_per_image']:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    bad = [row["clients"] for row in rows if row["errors"] and row["clients"] <= args.queue_size]
    if bad:
        print(f"errors below the queue limit at {bad} clients", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
