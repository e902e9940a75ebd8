"""`maskdet serve` / `make serve`: MLflow's own scoring server for a logged
Predictor (the same routes, request and answer formats as ``mlflow models
serve``), behind the limits that the scoring server does not have. Each is
checked before the request takes one of the worker's slots, so that no client
can hold a slot with a slow or oversized request:

- the body is read whole within ``MASKDET_BODY_TIMEOUT_S`` (408 after it: a
  client sending a byte every few seconds holds nothing but its own socket);
- a body over ``MASKDET_MAX_REQUEST_MB`` is refused with 413 (by its
  Content-Length, or as it streams in);
- a request with more than ``MASKDET_MAX_IMAGES`` images, or more than
  ``MASKDET_MAX_MEGAPIXELS`` of them once decoded (read from the image headers,
  nothing decoded), is refused with 413, so that every request's work is bounded
  (70 blank 7000x7000 PNGs once held a worker past MLflow's 60-s timeout);
- past ``MASKDET_MAX_IN_FLIGHT`` requests at once in this worker, a request is
  refused at once with 503 and a Retry-After, instead of queueing decoded
  images in memory without bound.

When the worker has been idle for a second it hands freed memory back to the
system (``malloc_trim``): decoded photos leave glibc's heap fragmented, and a
worker kept 1.4 GB after a burst without it. Not after every request: a trim
walks the whole heap, and under steady traffic it cost a third of the throughput.

uvicorn imports this module in each worker (``uvicorn maskdet.predict.rest:app``);
the model URI comes in ``MASKDET_SERVE_MODEL``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import functools
import io
import json
import os
import time
from dataclasses import dataclass

MODEL_ENV = "MASKDET_SERVE_MODEL"
MAX_REQUEST_MB_ENV = "MASKDET_MAX_REQUEST_MB"
MAX_IN_FLIGHT_ENV = "MASKDET_MAX_IN_FLIGHT"
MAX_IMAGES_ENV = "MASKDET_MAX_IMAGES"
MAX_MEGAPIXELS_ENV = "MASKDET_MAX_MEGAPIXELS"
BODY_TIMEOUT_ENV = "MASKDET_BODY_TIMEOUT_S"
METRICS_ENV = "MASKDET_METRICS"  # 0: no /metrics, /model-info or counting (make bench-serve measures the cost)
DEFAULT_MAX_REQUEST_MB = 64  # the CLI's limit for one image file; base64 adds a third
DEFAULT_MAX_IN_FLIGHT = 8
DEFAULT_MAX_IMAGES = 32
DEFAULT_MAX_MEGAPIXELS = 200  # four 50-MP photos, the most one image may have
DEFAULT_BODY_TIMEOUT_S = 30
IDLE_TRIM_S = 1.0  # idle this long, a worker trims its heap
LIMITED_PATHS = ("/invocations",)
ERROR_CODES = {408: "REQUEST_TIMEOUT", 413: "REQUEST_TOO_LARGE", 503: "BUSY"}


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_in_flight: int
    max_images: int = DEFAULT_MAX_IMAGES
    max_pixels: int = DEFAULT_MAX_MEGAPIXELS * 10**6
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S


async def _answer(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error_code": ERROR_CODES[status], "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def request_images(body: bytes) -> list | None:
    """The base64 images of a request in any of the scoring server's JSON forms
    (``dataframe_records``, ``dataframe_split``, ``inputs``); None when the body
    is not one of them (the scoring server answers that itself)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("dataframe_records"), list):
        return [r.get("image") for r in data["dataframe_records"] if isinstance(r, dict)]
    split = data.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list) and "image" in (split.get("columns") or []):
        column = split["columns"].index("image")
        return [row[column] for row in split["data"] if isinstance(row, list) and len(row) > column]
    inputs = data.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("image"), list):
        return inputs["image"]
    return None


def _pixels(encoded) -> int:
    """Width x height from an image's header (nothing decoded); 0 when it is not an
    image (the Predictor answers that image with its ``error``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(str(encoded), validate=True))) as img:
            return img.width * img.height
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return 0


def request_problem(body: bytes, limits: Limits) -> tuple[str, str] | None:
    """Why a request is too big to take a slot, as (reason, message): too many
    images, or too many pixels."""
    images = request_images(body)
    if images is None:
        return None
    if len(images) > limits.max_images:
        return "too_many_images", (
            f"{len(images)} images in one request, more than the server's {limits.max_images} "
            f"({MAX_IMAGES_ENV}); send them in several requests"
        )
    pixels = sum(_pixels(image) for image in images)
    if pixels > limits.max_pixels:
        return "too_many_pixels", (
            f"the request's images hold {pixels / 1e6:.0f} megapixels once decoded, more than the server's "
            f"{limits.max_pixels // 10**6} ({MAX_MEGAPIXELS_ENV}); send fewer or smaller images per request"
        )
    return None


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS). Looked up once: ctypes.util.find_library
    would start a process at every call."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Hand the heap's free pages back to the system (glibc); nothing elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class RequestLimits:
    """ASGI middleware: the limits above, for ``LIMITED_PATHS`` (``/ping`` and
    ``/health`` stay free, so that a busy server still answers its health check).
    One event loop per worker, so the counter needs no lock. ``monitor``
    (``predict.metrics``) counts the refusals and the requests in flight."""

    def __init__(self, app, limits: Limits, monitor=None):
        self.app, self.limits, self.monitor = app, limits, monitor
        self.in_flight = 0
        self._trim = None  # the pending trim of an idle worker

    async def _refuse(self, send, status: int, reason: str, message: str, headers: tuple = ()) -> None:
        if self.monitor is not None:
            self.monitor.refused.labels(reason).inc()
        await _answer(send, status, message, headers)

    def _trim_if_idle(self) -> None:
        self._trim = None
        if self.in_flight == 0:
            release_memory()

    async def _read_body(self, receive) -> bytes | None:
        """The whole body (None if the client left); _TooLarge past the size limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limits.max_bytes:
                raise _TooLarge
            if not message.get("more_body"):
                return b"".join(chunks)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in LIMITED_PATHS:
            return await self.app(scope, receive, send)
        limits = self.limits
        too_large = (
            f"the request is larger than {limits.max_bytes // 2**20} MB; send fewer or smaller images per "
            f"request (the server's limit is {MAX_REQUEST_MB_ENV})"
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_bytes:
            return await self._refuse(send, 413, "too_large", too_large)
        # The body is read before a slot is taken, under a deadline, and handed on whole:
        # raising from inside the app's receive would reach Starlette's error handler as a 500.
        try:
            body = await asyncio.wait_for(self._read_body(receive), limits.body_timeout_s)
        except TimeoutError:
            return await self._refuse(
                send,
                408,
                "body_timeout",
                f"the request body did not arrive within {limits.body_timeout_s:g} s ({BODY_TIMEOUT_ENV})",
            )
        except _TooLarge:
            return await self._refuse(send, 413, "too_large", too_large)
        if body is None:
            return
        problem = await asyncio.to_thread(request_problem, body, limits)
        if problem:
            return await self._refuse(send, 413, *problem)
        if self.in_flight >= limits.max_in_flight:
            return await self._refuse(
                send,
                503,
                "busy",
                f"the server is busy with {self.in_flight} requests; retry in a second "
                f"(the limit per worker is {MAX_IN_FLIGHT_ENV})",
                ((b"retry-after", b"1"),),
            )
        self.in_flight += 1
        if self.monitor is not None:
            self.monitor.in_flight.inc()
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        try:
            pending = [{"type": "http.request", "body": body, "more_body": False}]
            del body

            async def replay():
                return pending.pop() if pending else await receive()

            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1
            if self.monitor is not None:
                self.monitor.in_flight.dec()
            if self.in_flight == 0 and self._trim is None:
                self._trim = asyncio.get_running_loop().call_later(IDLE_TRIM_S, self._trim_if_idle)


def limits_from_environment() -> Limits:
    """The limits from the environment (``maskdet serve`` sets them from its options), checked."""
    from maskdet.errors import InputError

    values = {}
    for name, default in (
        (MAX_REQUEST_MB_ENV, DEFAULT_MAX_REQUEST_MB),
        (MAX_IN_FLIGHT_ENV, DEFAULT_MAX_IN_FLIGHT),
        (MAX_IMAGES_ENV, DEFAULT_MAX_IMAGES),
        (MAX_MEGAPIXELS_ENV, DEFAULT_MAX_MEGAPIXELS),
        (BODY_TIMEOUT_ENV, DEFAULT_BODY_TIMEOUT_S),
    ):
        raw = os.environ.get(name, str(default))
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"{name}={raw!r}: expected a whole number of at least 1")
        values[name] = int(raw)
    return Limits(
        max_bytes=values[MAX_REQUEST_MB_ENV] * 2**20,
        max_in_flight=values[MAX_IN_FLIGHT_ENV],
        max_images=values[MAX_IMAGES_ENV],
        max_pixels=values[MAX_MEGAPIXELS_ENV] * 10**6,
        body_timeout_s=values[BODY_TIMEOUT_ENV],
    )


def wait_until_ready(base_url: str, process, timeout_s: float, path: str = "/ping", verify=True) -> float:
    """Seconds until ``base_url`` + ``path`` answers 200 (the scoring server's
    /ping: each worker loads its Predictor first; MLflow's tracking server's
    /health). RuntimeError when ``process`` (the server's Popen) exits or the time runs out.
    ``verify``: requests' certificate check (a CA file for a server with the team's certificate)."""
    import time

    import requests

    started = time.perf_counter()
    while True:
        try:
            if requests.get(f"{base_url}{path}", timeout=2, verify=verify).status_code == 200:
                return time.perf_counter() - started
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or too busy starting to answer within the poll's 2 s
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s")
        time.sleep(0.5)


class MetricsAndInfo:
    """ASGI middleware in front of everything: ``GET /metrics`` (Prometheus text,
    ``predict.metrics``) and ``GET /model-info`` (``predict.model_info``) are
    answered here, never refused by the limits, and every request is counted by
    route and status and timed."""

    def __init__(self, app, monitor, info: dict):
        from concurrent.futures import ThreadPoolExecutor

        self.app, self.monitor = app, monitor
        self.info = json.dumps(info, indent=2).encode()
        # A thread of its own: the scoring server predicts in the event loop's default
        # pool, and a scrape queued behind eight busy predictions waited past 10 s.
        self._scrapes = ThreadPoolExecutor(1, thread_name_prefix="maskdet-scrape")

    async def _send_body(self, send, body: bytes, content_type: str) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from maskdet.predict.metrics import route_of

        started = time.perf_counter()
        route, status, counted = route_of(scope["path"]), 500, False

        def count():
            nonlocal counted
            if not counted:
                counted = True
                self.monitor.requests.labels(route, str(status)).inc()
                self.monitor.latency.labels(route).observe(time.perf_counter() - started)

        async def counting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # counted before the answer's last bytes leave: a client that has its answer, and
                # scrapes next (any worker), finds it counted
                count()
            await send(message)

        try:
            if scope["method"] == "GET" and route == "/metrics":
                loop = asyncio.get_running_loop()
                body, content_type = await loop.run_in_executor(self._scrapes, self.monitor.exposition)
                await self._send_body(counting_send, body, content_type)
            elif scope["method"] == "GET" and route == "/model-info":
                await self._send_body(counting_send, self.info, "application/json")
            else:
                await self.app(scope, receive, counting_send)
        finally:
            count()  # a request that ended without a whole answer (the client left, or a fault)


def build_app(model_uri: str):
    """MLflow's scoring app for ``model_uri``, behind the limits of the
    environment and, unless ``MASKDET_METRICS`` is 0, the metrics and model-info routes."""
    from mlflow.pyfunc import scoring_server

    from maskdet.predict.model_cache import is_model_uri, local_model

    limits = limits_from_environment()
    started = time.perf_counter()
    # a kept copy: MLflow's own download would stay behind in a temporary folder
    local = local_model(model_uri) if is_model_uri(model_uri) else model_uri
    model = scoring_server.load_model_with_mlflow_config(str(local))
    loaded_s = time.perf_counter() - started
    app = scoring_server.init(model)
    if os.environ.get(METRICS_ENV, "1") == "0":
        return RequestLimits(app, limits)
    from maskdet.predict import metrics
    from maskdet.predict.model_info import model_info, resolve_registry

    predictor = model.unwrap_python_model().predictor
    monitor = metrics.for_predictor(predictor)
    monitor.load_seconds.set(loaded_s)
    info = model_info(predictor, resolve_registry(model_uri))
    info["model"] = model_uri  # the Predictor only knows the folder MLflow unpacked it to
    info["served_run_id"] = model.metadata.run_id  # the run that logged the served model
    return MetricsAndInfo(RequestLimits(app, limits, monitor), monitor, info)


def __getattr__(name):  # `app` is built when uvicorn asks for it, not when the module is imported
    if name == "app":
        globals()["app"] = build_app(os.environ[MODEL_ENV])
        return globals()["app"]
    raise AttributeError(name)
