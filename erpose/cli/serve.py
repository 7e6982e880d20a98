"""``erpose serve``: the model behind an HTTP API, with a demo page (docs/serve.md).

Examples::

    erpose serve --weights runs/train/exp/weights/best.pt            # http://127.0.0.1:8000
    erpose serve --weights model.onnx --port 9000 --token s3cret      # or $ERPOSE_SERVE_TOKEN
"""

from __future__ import annotations

import argparse

from erpose.cli.main import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("routes: POST /v1/predict (image as form field 'file' or raw body; ?conf=&max_det=&imgsz=&draw=), "
                     "GET /health, GET /metrics (Prometheus), GET / (demo page)")
    parser.add_argument("--weights", default="erpose-n", help="zoo name, .pt checkpoint (erpose or YOLO11) or .onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                        help="auto: ONNX Runtime for an .onnx file, PyTorch otherwise")
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with its own model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--imgsz", type=int, default=640, help="default input size (requests may override)")
    parser.add_argument("--max-imgsz", type=int, default=1280,
                        help="largest imgsz a request may ask for (each new size costs memory; default 1280)")
    parser.add_argument("--conf", type=float, default=0.25, help="default person score threshold")
    parser.add_argument("--max-det", type=int, default=100)
    parser.add_argument("--max-batch", type=int, default=8, help="images per model call across clients")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits for more requests")
    parser.add_argument("--queue-size", type=int, default=64, help="waiting requests before 503")
    parser.add_argument("--max-upload-mb", type=float, default=20.0)
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip running every batch size 1..--max-batch once before serving "
                             "(the warm-up takes the memory those shapes need at startup)")
    parser.add_argument("--token", default=None, help="bearer token for every route but /health "
                                                      "(default: $ERPOSE_SERVE_TOKEN, else none)")


#: OpenMP wait policy of the server unless the environment sets one (see docs/serve.md, "Threads").
OMP_WAIT_POLICY = "PASSIVE"


def run(args: argparse.Namespace) -> int:
    import json
    import os

    # Before torch loads libgomp, which reads it once: idle OpenMP threads sleep instead of spinning.
    # A spinning team collapses whenever anything else wants the CPU (the event loop parsing the
    # next upload, other processes): measured 10x slower per request on a shared 2-core machine.
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

    from erpose.config import ConfigError, to_dict
    from erpose.serve.config import ServeConfig

    try:
        import uvicorn
    except ImportError:
        raise CLIError("erpose serve needs the serve extra: pip install 'erpose[serve]'") from None
    is_onnx = args.weights.lower().endswith(".onnx")
    if args.backend == "onnx" and not is_onnx:
        raise CLIError(f"--backend onnx needs an .onnx file (erpose export --weights {args.weights} --format onnx)")
    if args.backend == "torch" and is_onnx:
        raise CLIError(f"--backend torch needs a PyTorch model, not {args.weights}")
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1, got {args.workers}")
    try:
        config = ServeConfig(weights=args.weights, host=args.host, port=args.port, device=args.device,
                             imgsz=args.imgsz, max_imgsz=args.max_imgsz, conf=args.conf, max_det=args.max_det,
                             max_batch=args.max_batch,
                             batch_wait_ms=args.batch_wait_ms, queue_size=args.queue_size,
                             max_upload_mb=args.max_upload_mb, token=args.token,
                             warmup=not args.no_warmup)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    exposed = "" if args.host in ("127.0.0.1", "localhost", "::1") else " (reachable from other machines)"
    auth = "bearer token required" if config.resolved_token() else "no token"
    print(f"erpose serve: {args.weights} on http://{args.host}:{args.port}{exposed}; {auth}; "
          f"demo page at /, API at /v1/predict", flush=True)
    if args.workers == 1:
        from erpose.serve.app import app_from_config

        uvicorn.run(app_from_config(config), host=args.host, port=args.port, log_level="warning")
        return 0
    from erpose.serve.app import CONFIG_ENV

    os.environ[CONFIG_ENV] = json.dumps(to_dict(config))
    uvicorn.run("erpose.serve.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning")
    return 0
