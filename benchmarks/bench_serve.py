"""Load test of ``erpose serve`` on loopback: what cross-client batching buys.

Starts ``erpose serve`` as a subprocess on a free 127.0.0.1 port (never another address), then for
each concurrency level runs that many asyncio clients posting the same photo for ``--duration``
seconds: requests/s, p50 / p99 latency, errors (503s counted apart), and the server's resident
memory before and after. The baseline is a plain loop of ``ERPose.predict`` calls in this
process, one image at a time, for the same duration.

    python benchmarks/bench_serve.py --weights erpose-n --clients 1 4 16 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo(imgsz: int) -> bytes:
    real = HERE.parent.parent / "shared" / "data" / "real" / "public_domain_samples" / "astronaut.png"
    image = cv2.imread(str(real)) if real.is_file() else None
    if image is None:
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


async def load(url: str, body: bytes, clients: int, duration: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = busy = 0
    stop = time.perf_counter() + duration

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, busy
        while time.perf_counter() < stop:
            started = time.perf_counter()
            response = await http.post(url, content=body, headers={"content-type": "image/jpeg"})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            elif response.status_code == 503:
                busy += 1
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1e3
    return {"clients": clients, "requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None, "errors": errors, "busy_503": busy}


def baseline(weights: str, body: bytes, imgsz: int, duration: float) -> float:
    from erpose.api import ERPose

    model = ERPose(weights)
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    model.predict(image, imgsz=imgsz)  # warm-up
    count, stop = 0, time.perf_counter() + duration
    started = time.perf_counter()
    while time.perf_counter() < stop:
        model.predict(image, imgsz=imgsz)
        count += 1
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="erpose-n")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--duration", type=float, default=60.0, help="seconds per concurrency level")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("ERPOSE_SERVE_TOKEN", None)
    server = subprocess.Popen([sys.executable, "-m", "erpose.cli.main", "serve", "--weights", args.weights,
                               "--host", "127.0.0.1", "--port", str(port), "--imgsz", str(args.imgsz),
                               "--max-batch", str(args.max_batch)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    body = photo(args.imgsz)
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        httpx.post(url + "/v1/predict", content=body, timeout=120)  # warm-up
        memory_before = rss_mb(server.pid)
        rows = [asyncio.run(load(url + "/v1/predict", body, n, args.duration)) for n in args.clients]
        memory_after = rss_mb(server.pid)
        metrics = httpx.get(url + "/metrics").text
    finally:
        server.terminate()
        server.wait(20)
    batches = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
               if line.startswith(("erpose_batches_total", "erpose_batched_images_total"))}
    plain = baseline(args.weights, body, args.imgsz, args.duration)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    report = {"cpu": cpu, "weights": args.weights, "imgsz": args.imgsz, "duration_s": args.duration, "rows": rows,
              "plain_predict_rps": plain, "server_rss_mb": [memory_before, memory_after],
              "mean_batch": batches.get("erpose_batched_images_total", 0) / max(batches.get("erpose_batches_total", 1), 1)}
    print(f"CPU: {cpu}; {args.weights} at {args.imgsz}; {args.duration:g} s per level; server RSS "
          f"{memory_before:.0f} -> {memory_after:.0f} MB; mean batch {report['mean_batch']:.2f}")
    print("\n| clients | requests/s | p50 ms | p99 ms | errors | 503 | vs plain predict loop |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['clients']} | {row['rps']:.2f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | "
              f"{row['busy_503']} | {row['rps'] / plain:.2f}x |")
    print(f"| plain `ERPose.predict` loop | {plain:.2f} | | | | | 1.00x |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
