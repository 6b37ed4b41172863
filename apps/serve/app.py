"""The Starlette ASGI app: ``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``, ``GET /metrics``.

Every error is answered as JSON ``{"error": {"type": ..., "message": ...}}`` with a 4xx/5xx
status; requests are fully validated before they reach the batcher, so one bad request never
fails the others of a batch.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batcher import DynamicBatcher
from .codec import decode_request, encode_response, response_format
from .config import ServeConfig
from .errors import BadRequestError, PayloadTooLargeError, RequestTimeoutError, ServeError
from .metrics import MetricsMiddleware, ServeMetrics
from .model import ModelRunner

__all__ = ["Service", "create_app"]

log = logging.getLogger("graphforge.serve")

_OFFLOAD_BYTES = 256 * 1024  # decode/encode bodies larger than this off the event loop


@dataclass
class Service:
    """What the handlers share: the model, the batcher, the metrics and the options."""

    runner: ModelRunner
    batcher: DynamicBatcher
    metrics: ServeMetrics
    config: ServeConfig
    draining: bool = False


def _error(status: int, kind: str, message: str) -> JSONResponse:
    # 503s are transient (full queue, draining): tell well-behaved clients when to come back.
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds (a stalled client
    would otherwise hold its place among the ``--queue-size`` admitted requests for ever)."""
    try:
        async with asyncio.timeout(timeout):
            return await _read_body_unbounded(request, limit)
    except TimeoutError:
        raise RequestTimeoutError(f"the request body did not arrive within {timeout:g} s (--body-timeout)") from None


async def _read_body_unbounded(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BadRequestError(f"invalid Content-Length {length!r}") from None
        if declared > limit:
            raise PayloadTooLargeError(f"request body is {declared} bytes, the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model: str | os.PathLike | ModelRunner, config: ServeConfig | None = None) -> Starlette:
    """Load ``model`` (a path or a ready :class:`ModelRunner`) and build the app.

    The batcher starts with the app's lifespan and drains on shutdown. ``app.state.service``
    holds the :class:`Service`.
    """
    config = (config or ServeConfig()).validate()
    runner = model if isinstance(model, ModelRunner) else ModelRunner(
        model, intra_op_threads=config.intra_op_threads)
    metrics = ServeMetrics(config.max_batch)
    batcher = DynamicBatcher(runner, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
                             workers=config.workers, queue_size=config.queue_size,
                             batchable=runner.batchable, metrics=metrics)
    service = Service(runner, batcher, metrics, config)
    import graphforge

    metrics.set_model(file=os.path.basename(runner.path), sha256=runner.sha256,
                      graphforge_version=graphforge.__version__, providers=",".join(runner.providers),
                      batching=str(batcher.batching).lower())

    def decode_and_validate(body: bytes, content_type: str | None):
        req = decode_request(body, content_type, max_array_bytes=config.max_body_bytes)
        feeds, rows = runner.validate(req.arrays, from_json=req.format == "json")
        return req.format, feeds, rows

    async def predict(request: Request) -> Response:
        if service.draining:
            return _error(503, "ShuttingDownError", "the server is shutting down")
        metrics.inflight.inc()
        try:
            with batcher.receiving():
                body = await _read_body(request, config.max_body_bytes, config.body_timeout)
                content_type = request.headers.get("content-type")
                if len(body) > _OFFLOAD_BYTES:
                    fmt, feeds, rows = await run_in_threadpool(decode_and_validate, body, content_type)
                else:
                    fmt, feeds, rows = decode_and_validate(body, content_type)
                del body
            outputs = await batcher.submit(feeds, rows)
            out_fmt = response_format(request.headers.get("accept"), fmt, len(outputs))
            if sum(o.nbytes for o in outputs) > _OFFLOAD_BYTES:
                payload, media = await run_in_threadpool(encode_response, runner.output_names, outputs, out_fmt)
            else:
                payload, media = encode_response(runner.output_names, outputs, out_fmt)
            return Response(payload, media_type=media)
        finally:
            metrics.inflight.dec()

    async def model_info(request: Request) -> Response:
        doc = runner.describe()
        doc["serving"] = {"batching": batcher.batching, "max_batch": config.max_batch,
                          "max_wait_ms": config.max_wait_ms, "workers": config.workers,
                          "queue_size": config.queue_size, "max_body_bytes": config.max_body_bytes,
                          "body_timeout": config.body_timeout}
        return JSONResponse(doc)

    async def healthz(request: Request) -> Response:
        if service.draining or batcher.stopping:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ok", "sha256": runner.sha256})

    async def metrics_endpoint(request: Request) -> Response:
        payload, content_type = metrics.render()
        return Response(payload, headers={"Content-Type": content_type})

    async def on_serve_error(request: Request, exc: ServeError) -> Response:
        return _error(exc.status, type(exc).__name__, exc.detail)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, "HTTPError", str(exc.detail))

    async def on_disconnect(request: Request, exc: ClientDisconnect) -> Response:
        return _error(499, "ClientDisconnect", "the client went away")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "InternalError", f"internal server error ({type(exc).__name__})")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        log.info("graphforge serve: %s (sha256 %s) on %s, batching %s (max %d rows, %g ms)",
                 runner.path, runner.sha256[:12], ",".join(runner.providers),
                 "on" if batcher.batching else "off", config.max_batch, config.max_wait_ms)
        try:
            yield
        finally:
            service.draining = True
            await batcher.stop(timeout=max(config.graceful_timeout, 1.0))

    app = Starlette(
        routes=[
            Route("/v1/predict", predict, methods=["POST"]),
            Route("/v1/model", model_info, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={ServeError: on_serve_error, HTTPException: on_http_error,
                            ClientDisconnect: on_disconnect, Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.service = service
    return app
