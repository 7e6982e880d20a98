"""``erpose serve``: an HTTP API (Starlette + uvicorn, the optional ``[serve]`` extra) and a demo page.

``create_app`` builds the ASGI app around any prediction backend; ``MicroBatcher`` batches requests
that arrive together and runs the model off the event loop; ``ServeMetrics`` renders Prometheus text.
"""

from erpose.serve.config import ServeConfig

__all__ = ["ServeConfig"]
