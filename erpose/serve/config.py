"""``ServeConfig``: every knob of ``erpose serve``, with its default and its bounds."""

from __future__ import annotations

import os
from dataclasses import dataclass

from erpose.config import ConfigError

#: Environment variable holding the bearer token when ``--token`` is not given.
TOKEN_ENV = "ERPOSE_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeConfig:
    """Server settings.

    Attributes:
        weights: model to serve (zoo name, ``.pt`` or ``.onnx``).
        host, port: where to listen; loopback by default (say ``--host 0.0.0.0`` to expose it).
        device: ``cpu`` / ``cuda`` for PyTorch weights.
        imgsz, conf, max_det: request defaults (each request may override them within the limits).
        max_imgsz: the largest ``imgsz`` a request may ask for: each new size warms new shapes
            (about 160 MB per image of a batch at 640 px, growing with the square of the size), so
            a server left running bounds it well below the library's 8192 px.
        max_batch: images per model call at most, across clients.
        batch_wait_ms: how long the first request of a batch waits for others to join.
        queue_size: requests waiting at most; beyond it the server answers 503.
        max_upload_mb: request bodies above this get 413.
        token: bearer token required on every route but ``/health`` (None: open).
        warmup: before serving, run every batch size 1..``max_batch`` once at ``imgsz``, so the
            memory those shapes need is taken at startup, not while serving.
    """

    weights: str = "erpose-n"
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"
    imgsz: int = 640
    conf: float = 0.25
    max_det: int = 100
    max_imgsz: int = 1280
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    queue_size: int = 64
    max_upload_mb: float = 20.0
    token: str | None = None
    warmup: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.max_batch < 1 or self.queue_size < 1:
            raise ConfigError(f"max_batch and queue_size must be positive, got {self.max_batch}, {self.queue_size}")
        if not 32 <= self.imgsz <= self.max_imgsz or self.imgsz % 32 or self.max_imgsz % 32:
            raise ConfigError(f"imgsz ({self.imgsz}) and max_imgsz ({self.max_imgsz}) must be multiples of 32 "
                              "with 32 <= imgsz <= max_imgsz")
        if self.batch_wait_ms < 0 or self.max_upload_mb <= 0:
            raise ConfigError("batch_wait_ms must be >= 0 and max_upload_mb > 0")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def resolved_token(self) -> str | None:
        """``token``, else ``$ERPOSE_SERVE_TOKEN``, else None."""
        return self.token or os.environ.get(TOKEN_ENV) or None
