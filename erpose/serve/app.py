"""The ASGI app of ``erpose serve``: ``POST /v1/predict``, ``GET /health``, ``GET /metrics``, ``GET /``.

Built on Starlette; ``create_app`` takes any prediction backend (``erpose.engine.predictor``'s
PyTorch backend or the torch-free ONNX one) so tests can serve a tiny model. Errors are JSON
``{"error": "<one line>"}`` with the status a client can act on: 401 (token), 413 (too large),
415 (not an image type), 400 (corrupt image), 422 (bad parameter), 503 (queue full). No message
contains a server path or an exception's internals.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hmac
import time
from importlib import resources
from typing import Any

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from erpose import __version__
from erpose.images import ImageFileError, check_image_bytes
from erpose.limits import MAX_DET, MAX_IMGSZ
from erpose.serve.batcher import MicroBatcher, QueueFullError, model_thread
from erpose.serve.config import ServeConfig
from erpose.serve.metrics import ServeMetrics

#: File signatures of the accepted uploads: JPEG, PNG, WebP (RIFF....WEBP).
_SIGNATURES = {"jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",)}


class HTTPProblem(Exception):
    """A request the server refuses: status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def image_kind(data: bytes) -> str | None:
    """``jpeg``, ``png`` or ``webp`` from the first bytes, else None."""
    for kind, signatures in _SIGNATURES.items():
        if data.startswith(signatures):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_upload(data: bytes) -> np.ndarray:
    """Upload bytes -> (H, W, 3) BGR; ``HTTPProblem`` 415 / 400 / 413 with a one-line reason."""
    if not data:
        raise HTTPProblem(400, "empty upload: send an image as the form field 'file' or as the request body")
    kind = image_kind(data)
    if kind is None:
        raise HTTPProblem(415, "not a JPEG, PNG or WebP image")
    try:
        check_image_bytes(data, "upload")
    except ImageFileError as exc:
        raise HTTPProblem(413 if "megapixels" in exc.reason else 400, f"{kind} image: {exc.reason}") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise HTTPProblem(400, f"corrupt {kind} image: it cannot be decoded")
    return image


def _parameter(request: Request, name: str, cast: type, default: Any, low: float, high: float) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise HTTPProblem(422, f"{name}={raw!r:.40} is not a {cast.__name__}") from None
    if not low <= value <= high:
        raise HTTPProblem(422, f"{name}={value} is outside [{low}, {high}]")
    return value


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise HTTPProblem(422, f"{name}={raw!r:.20} is not true/false")
    return raw in ("true", "1", "yes")


def make_batch_runner(backend: Any) -> Any:
    """``run_batch(imgsz, [(image, conf, max_det), ...]) -> [Results]``: one model call per batch."""
    from erpose.engine.predictor import Predictor

    def run_batch(imgsz: Any, payloads: list[tuple[np.ndarray, float, int]]) -> list[Any]:
        lowest = min(conf for _, conf, _ in payloads)
        most = max(max_det for _, _, max_det in payloads)
        predictor = Predictor(backend, imgsz=imgsz, conf=lowest, max_det=most, batch_size=len(payloads))
        results = predictor([image for image, _, _ in payloads])
        out = []
        for result, (_, conf, max_det) in zip(results, payloads):
            keep = np.flatnonzero(result.scores >= conf)[:max_det]
            out.append(result[keep])
        return out

    return run_batch


def results_to_json(result: Any, draw: bool) -> dict:
    keypoints, boxes = result.keypoints.data, result.boxes
    people = [{"score": round(float(score), 5), "keypoints": np.round(kpts, 2).tolist(),
               "box": np.round(box, 2).tolist()}
              for score, kpts, box in zip(result.scores, keypoints, boxes)]
    height, width = result.orig_shape
    body: dict[str, Any] = {"people": people, "count": len(people), "image": {"width": width, "height": height},
                            "timing_ms": {k: round(v, 2) for k, v in result.speed.items()}}
    if draw:
        ok, encoded = cv2.imencode(".jpg", result.plot(show_scores=True), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            body["image_jpeg_base64"] = base64.b64encode(encoded.tobytes()).decode("ascii")
    return body


def _demo_page() -> str:
    return resources.files("erpose.serve").joinpath("demo.html").read_text(encoding="utf-8")


def create_app(backend: Any, config: ServeConfig, *, model_name: str | None = None,
               executor: concurrent.futures.ThreadPoolExecutor | None = None) -> Starlette:
    """The ASGI app serving ``backend`` (anything with ``predict`` and ``skeleton``, see ``PoseBackend``).

    Args:
        backend: the loaded model backend.
        config: limits, defaults, batching and the optional token.
        model_name: what ``/health`` reports (default: ``config.weights``).
        executor: the single thread the model was loaded in, to run it in (``MicroBatcher``).
    """
    metrics = ServeMetrics()
    # A fixed-batch ONNX file takes one image per call, as `erpose predict` and `erpose val` run it.
    meta = getattr(getattr(backend, "session", None), "metadata", None)
    max_batch = 1 if meta is not None and not meta.dynamic else config.max_batch
    batcher = MicroBatcher(make_batch_runner(backend), max_batch, config.batch_wait_ms / 1000.0,
                           config.queue_size, executor=executor)
    batcher.on_batch = metrics.record_batch
    token = config.resolved_token()
    fixed = getattr(backend, "fixed_imgsz", None)  # an ONNX file exported at one size is served at it
    skeleton = backend.skeleton
    skeleton_json = {"name": skeleton.name, "keypoint_names": list(skeleton.keypoint_names),
                     "limbs": [list(limb) for limb in skeleton.limbs]}

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_upload_bytes + 64 * 1024:
            raise HTTPProblem(413, f"upload larger than the limit of {config.max_upload_mb:g} MB")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_upload_bytes + 64 * 1024:  # multipart framing on top of the file
                raise HTTPProblem(413, f"upload larger than the limit of {config.max_upload_mb:g} MB")
            chunks.append(chunk)
        return b"".join(chunks)

    async def image_bytes(request: Request) -> bytes:
        body = await read_body(request)
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            if len(body) > config.max_upload_bytes:  # the read allowed room for multipart framing
                raise HTTPProblem(413, f"upload larger than the limit of {config.max_upload_mb:g} MB")
            return body
        # Parse the multipart body we already hold (bounded above), not a second stream.
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def replay():
            yield body

        parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=16,
                                 max_part_size=config.max_upload_bytes)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPProblem(400, f"malformed multipart body ({exc.message})") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPProblem(400, "multipart body without a 'file' field")
        data = await upload.read()
        if len(data) > config.max_upload_bytes:
            raise HTTPProblem(413, f"upload larger than the limit of {config.max_upload_mb:g} MB")
        return data

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        conf = _parameter(request, "conf", float, config.conf, 0.0, 1.0)
        max_det = _parameter(request, "max_det", int, config.max_det, 1, MAX_DET)
        imgsz = _parameter(request, "imgsz", int, config.imgsz, 32, min(config.max_imgsz, MAX_IMGSZ))
        if imgsz % 32:
            raise HTTPProblem(422, f"imgsz={imgsz} is not a multiple of 32")
        draw = _flag(request, "draw")
        with batcher.arriving():  # a batch being collected may wait for this one
            image = decode_upload(await image_bytes(request))
        key = fixed if fixed is not None else (imgsz, imgsz)
        try:  # nothing awaits between leaving `arriving` and joining the queue
            result = await batcher.submit(key, (image, conf, max_det))
        except QueueFullError:
            raise HTTPProblem(503, "server busy: the request queue is full, retry later") from None
        body = results_to_json(result, draw)
        body["timing_ms"]["server"] = round((time.perf_counter() - started) * 1e3, 2)
        return JSONResponse(body)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model_name or config.weights, "erpose": __version__,
                             "skeleton": skeleton_json, "input_size": list(fixed) if fixed else config.imgsz,
                             "max_batch": max_batch,
                             "auth": token is not None})

    async def metrics_route(request: Request) -> Response:
        return PlainTextResponse(metrics.render(batcher.depth), media_type="text/plain; version=0.0.4")

    async def index(request: Request) -> Response:
        return HTMLResponse(_demo_page())

    handlers = {"/v1/predict": predict, "/health": health, "/metrics": metrics_route, "/": index}

    def guarded(path: str):
        handler = handlers[path]

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if path != "/health" and not authorised(request):
                    raise HTTPProblem(401, "missing or wrong bearer token")
                response = await handler(request)
            except HTTPProblem as problem:
                response = JSONResponse({"error": problem.message}, status_code=problem.status)
            except Exception:  # never leak internals; the server keeps running
                response = JSONResponse({"error": "internal error while predicting"}, status_code=500)
            metrics.record(path, response.status_code,
                           time.perf_counter() - started if path == "/v1/predict" else None)
            return response

        return endpoint

    routes = [Route("/v1/predict", guarded("/v1/predict"), methods=["POST"]),
              Route("/health", guarded("/health"), methods=["GET"]),
              Route("/metrics", guarded("/metrics"), methods=["GET"]),
              Route("/", guarded("/"), methods=["GET"])]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await batcher.start()
        if config.warmup:  # every batch shape once, before the port accepts requests
            size = fixed if fixed is not None else (config.imgsz, config.imgsz)
            blank = np.zeros((*size, 3), np.uint8)
            await batcher.warm_up(size, (blank, config.conf, config.max_det))
        try:
            yield
        finally:
            await batcher.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics, app.state.batcher, app.state.config = metrics, batcher, config
    return app


def app_from_config(config: ServeConfig) -> Starlette:
    """Load ``config.weights`` and build the app (what ``erpose serve`` runs).

    The model is loaded in the thread that will run it, so PyTorch keeps a single OpenMP thread
    team, as a plain ``ERPose.predict`` loop does, and the environment's wait policy holds
    (``MicroBatcher``'s ``executor``).
    """
    from erpose.engine import predictor

    executor = model_thread()
    try:
        backend = executor.submit(predictor.load_backend, config.weights, device=config.device).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return create_app(backend, config, executor=executor)


#: Environment variable through which ``erpose serve --workers N`` hands its config to each worker.
CONFIG_ENV = "ERPOSE_SERVE_CONFIG"


def app_from_env() -> Starlette:
    """The app of one ``--workers`` process: the config comes as JSON in ``$ERPOSE_SERVE_CONFIG``."""
    import json
    import os

    from erpose.config import from_dict

    return app_from_config(from_dict(ServeConfig, json.loads(os.environ[CONFIG_ENV]), CONFIG_ENV))
