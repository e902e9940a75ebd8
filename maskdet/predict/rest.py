"""`maskdet serve` / `make serve`: MLflow's own scoring server for a logged
Predictor (the same routes, request and answer formats as ``mlflow models
serve``), behind two limits that the scoring server does not have:

- a request body over ``MASKDET_MAX_REQUEST_MB`` is refused with 413 before it
  is read whole (by its Content-Length, or as it streams in);
- past ``MASKDET_MAX_IN_FLIGHT`` requests at once in this worker, a request is
  refused at once with 503 and a Retry-After, instead of queueing bodies and
  decoded images in memory without bound (40 requests of a 49-megapixel PNG
  held 4.6 GB).

uvicorn imports this module in each worker (``uvicorn maskdet.predict.rest:app``);
the model URI comes in ``MASKDET_SERVE_MODEL``.
"""

from __future__ import annotations

import json
import os

MODEL_ENV = "MASKDET_SERVE_MODEL"
MAX_REQUEST_MB_ENV = "MASKDET_MAX_REQUEST_MB"
MAX_IN_FLIGHT_ENV = "MASKDET_MAX_IN_FLIGHT"
DEFAULT_MAX_REQUEST_MB = 64  # the CLI's limit for one image file; base64 adds a third
DEFAULT_MAX_IN_FLIGHT = 8
LIMITED_PATHS = ("/invocations",)


async def _answer(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error_code": {413: "REQUEST_TOO_LARGE", 503: "BUSY"}[status], "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: a size limit on request bodies and a cap on requests in
    flight, for ``LIMITED_PATHS`` (``/ping`` and ``/health`` stay free, so that a
    busy server still answers its health check). One event loop per worker, so
    the counter needs no lock."""

    def __init__(self, app, max_bytes: int, max_in_flight: int):
        self.app, self.max_bytes, self.max_in_flight = app, max_bytes, max_in_flight
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in LIMITED_PATHS:
            return await self.app(scope, receive, send)
        too_large = (
            f"the request is larger than {self.max_bytes // 2**20} MB; send fewer or smaller images per "
            f"request (the server's limit is {MAX_REQUEST_MB_ENV})"
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _answer(send, 413, too_large)
        if self.in_flight >= self.max_in_flight:
            return await _answer(
                send,
                503,
                f"the server is busy with {self.in_flight} requests; retry in a second "
                f"(the limit per worker is {MAX_IN_FLIGHT_ENV})",
                ((b"retry-after", b"1"),),
            )
        self.in_flight += 1
        try:
            # The body is read here, counted as it arrives, and handed on whole: raising
            # from inside the app's receive would reach Starlette's error handler as a 500.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_bytes:
                    return await _answer(send, 413, too_large)
                if not message.get("more_body"):
                    break
            body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
            chunks.clear()

            async def replay():
                return body.pop() if body else await receive()

            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1


def limits_from_environment() -> tuple[int, int]:
    """(max request bytes, max requests in flight) from the environment, checked."""
    from maskdet.errors import InputError

    values = {}
    for name, default in ((MAX_REQUEST_MB_ENV, DEFAULT_MAX_REQUEST_MB), (MAX_IN_FLIGHT_ENV, DEFAULT_MAX_IN_FLIGHT)):
        raw = os.environ.get(name, str(default))
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"{name}={raw!r}: expected a whole number of at least 1")
        values[name] = int(raw)
    return values[MAX_REQUEST_MB_ENV] * 2**20, values[MAX_IN_FLIGHT_ENV]


def wait_until_ready(base_url: str, process, timeout_s: float, path: str = "/ping") -> float:
    """Seconds until ``base_url`` + ``path`` answers 200 (the scoring server's
    /ping: each worker loads its Predictor first; MLflow's tracking server's
    /health). RuntimeError when ``process`` (the server's Popen) exits or the time runs out."""
    import time

    import requests

    started = time.perf_counter()
    while True:
        try:
            if requests.get(f"{base_url}{path}", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s")
        time.sleep(0.5)


def build_app(model_uri: str):
    """MLflow's scoring app for ``model_uri``, behind the limits of the environment."""
    from mlflow.pyfunc import scoring_server

    max_bytes, max_in_flight = limits_from_environment()
    model = scoring_server.load_model_with_mlflow_config(model_uri)
    return RequestLimits(scoring_server.init(model), max_bytes, max_in_flight)


def __getattr__(name):  # `app` is built when uvicorn asks for it, not when the module is imported
    if name == "app":
        globals()["app"] = build_app(os.environ[MODEL_ENV])
        return globals()["app"]
    raise AttributeError(name)
