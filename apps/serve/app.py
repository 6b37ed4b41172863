"""The Starlette ASGI app: the Open Inference Protocol (``/v2``), the ``/v1`` endpoints and ``/metrics``.

``/v2`` (KServe v2 / Triton HTTP): health, server and model metadata, ``infer`` (JSON and binary
tensors, see :mod:`.oip`) and the model repository (index, load, unload). Errors are
``{"error": "..."}``. ``/v1`` (``/v1/predict``, ``/v1/model``, ``/healthz``) serves the one model
of a single-model server and keeps its ``{"error": {"type", "message"}}`` errors. Every inference
goes through the model version's :class:`DynamicBatcher`; requests are fully validated before they
reach it, so one bad request never fails the others of a batch.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphforge.errors import LoadError

from .auth import BearerAuthMiddleware
from .batcher import DynamicBatcher
from .codec import decode_request, encode_response, response_format
from .config import ServeConfig
from .errors import (BadRequestError, ModelNotFoundError, PayloadTooLargeError, RequestTimeoutError, ServeError,
                     ShuttingDownError)
from .metrics import MetricsMiddleware, ServeMetrics
from .model import ModelRunner
from .oip import HEADER_LENGTH, datatype_of, encode_infer_response, parse_infer_request
from .repository import ModelRepository, ModelVersion

__all__ = ["Service", "create_app"]

log = logging.getLogger("graphforge.serve")

_OFFLOAD_BYTES = 256 * 1024  # decode/encode bodies larger than this off the event loop


@dataclass
class Service:
    """What the handlers share: the model repository, the metrics and the options."""

    repository: ModelRepository
    metrics: ServeMetrics
    config: ServeConfig
    draining: bool = False

    def default(self) -> ModelVersion:
        """The model ``/v1`` serves: the only one, in its latest version."""
        names = self.repository.names()
        if len(names) != 1:
            raise ModelNotFoundError(f"/v1 serves a single model, and {len(names)} are loaded {names}; "
                                     "use POST /v2/models/<name>/infer")
        return self.repository.get(names[0])

    @property
    def runner(self) -> ModelRunner:
        return self.default().runner

    @property
    def batcher(self) -> DynamicBatcher:
        return self.default().batcher


@dataclass
class _Outcome:
    status: int = 500


def _v1_error(status: int, kind: str, message: str) -> JSONResponse:
    # 503s are transient (full queue, draining): tell well-behaved clients when to come back.
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _v2_error(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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


def _check_finite(feeds: dict[str, np.ndarray]) -> None:
    for name, arr in feeds.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise BadRequestError(f"input {name!r} holds NaN or infinity, refused by --reject-nonfinite")


def _tensor_meta(info) -> dict:
    shape = [-1] if info.shape is None else [d if isinstance(d, int) else -1 for d in info.shape]
    return {"name": info.name, "datatype": datatype_of(info.dtype), "shape": shape}


def create_app(model: str | os.PathLike | ModelRunner | None = None, config: ServeConfig | None = None) -> Starlette:
    """Load ``model`` (a path or a ready :class:`ModelRunner`) or ``config.model_repository`` and build the app.

    Models load before this returns (a :class:`LoadError` names what is wrong); their batchers start
    with the app's lifespan and drain on shutdown. ``app.state.service`` holds the :class:`Service`.
    """
    config = (config or ServeConfig()).validate()
    if (model is None) == (config.model_repository is None):
        from .errors import ServeConfigError

        raise ServeConfigError("give either a model file or --model-repository (exactly one)")
    metrics = ServeMetrics(config.max_batch)

    def make_batcher(runner: ModelRunner, model_config, name: str, version: str) -> DynamicBatcher:
        max_batch = model_config.max_batch or config.max_batch
        max_wait = config.max_wait_ms if model_config.max_wait_ms is None else model_config.max_wait_ms
        return DynamicBatcher(runner, max_batch=max_batch, max_wait_ms=max_wait, workers=config.workers,
                              queue_size=config.queue_size, batchable=runner.batchable, metrics=metrics,
                              labels=(name, version))

    def forget(mv: ModelVersion) -> None:
        if mv.name not in repository.names() or mv.version not in repository.versions(mv.name):
            metrics.forget_model(mv.name, mv.version)

    if isinstance(model, ModelRunner):
        repository = ModelRepository(single=model.path, make_batcher=make_batcher,
                                     drain_timeout=config.graceful_timeout, on_retire=forget)
        repository.load_now(preloaded=model)
    elif model is not None:
        repository = ModelRepository(single=model, make_batcher=make_batcher,
                                     drain_timeout=config.graceful_timeout, on_retire=forget)
        repository.load_now()
    else:
        repository = ModelRepository(root=config.model_repository, make_batcher=make_batcher,
                                     drain_timeout=config.graceful_timeout, on_retire=forget)
        repository.load_now()
    service = Service(repository, metrics, config)
    metrics.queue_depth.set_function(repository.queue_depth)
    import graphforge

    if len(repository.names()) == 1:
        only = service.default()
        metrics.set_model(file=os.path.basename(only.runner.path), sha256=only.runner.sha256,
                          graphforge_version=graphforge.__version__, providers=",".join(only.runner.providers),
                          batching=str(only.batcher.batching).lower())

    def check_feeds(runner: ModelRunner, arrays, *, from_json: bool):
        feeds, rows = runner.validate(arrays, from_json=from_json)
        if config.reject_nonfinite:
            _check_finite(feeds)
        return feeds, rows

    # -- /v1 -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def observed(mv: ModelVersion):
        """One inference request of ``mv`` in the metrics: in flight while the block runs, then its
        status (500 unless the block sets ``outcome.status`` or raises a ServeError) and duration."""
        metrics.inflight.inc()
        outcome, start = _Outcome(), time.perf_counter()
        try:
            yield outcome
        except ServeError as exc:
            outcome.status = exc.status
            raise
        finally:
            metrics.inflight.dec()
            metrics.observe_inference(mv.name, mv.version, outcome.status, time.perf_counter() - start)

    async def predict(request: Request) -> Response:
        if service.draining:
            raise ShuttingDownError("the server is shutting down")
        mv = service.default()
        runner, batcher = mv.runner, mv.batcher

        def decode_and_validate(body: bytes, content_type: str | None):
            req = decode_request(body, content_type, max_array_bytes=config.max_body_bytes)
            feeds, rows = check_feeds(runner, req.arrays, from_json=req.format == "json")
            return req.format, feeds, rows

        with observed(mv) as outcome:
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
            outcome.status = 200
            return Response(payload, media_type=media)

    async def model_info(request: Request) -> Response:
        mv = service.default()
        doc = mv.runner.describe()
        doc["serving"] = {"batching": mv.batcher.batching, "max_batch": mv.batcher.max_batch,
                          "max_wait_ms": mv.batcher.max_wait * 1000.0, "workers": config.workers,
                          "queue_size": config.queue_size, "max_body_bytes": config.max_body_bytes,
                          "body_timeout": config.body_timeout}
        return JSONResponse(doc)

    async def healthz(request: Request) -> Response:
        if service.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        doc = {"status": "ok"}
        if len(repository.names()) == 1:
            doc["sha256"] = service.default().runner.sha256
        return JSONResponse(doc)

    async def metrics_endpoint(request: Request) -> Response:
        payload, content_type = metrics.render()
        return Response(payload, headers={"Content-Type": content_type})

    # -- /v2: health and metadata -------------------------------------------------------------
    async def v2_live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def v2_ready(request: Request) -> Response:
        ready = not service.draining and bool(repository.names())
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def v2_server(request: Request) -> Response:
        return JSONResponse({"name": "graphforge", "version": graphforge.__version__,
                             "extensions": ["binary_tensor_data", "model_repository"]})

    def lookup(request: Request) -> ModelVersion:
        return repository.get(request.path_params["model"], request.path_params.get("version"))

    async def v2_model(request: Request) -> Response:
        mv = lookup(request)
        return JSONResponse({
            "name": mv.name, "versions": repository.versions(mv.name), "platform": "onnxruntime_onnx",
            "inputs": [_tensor_meta(i) for i in mv.runner.inputs],
            "outputs": [_tensor_meta(o) for o in mv.runner.outputs]})

    async def v2_model_ready(request: Request) -> Response:
        mv = lookup(request)
        ready = not (service.draining or mv.retired)
        return JSONResponse({"name": mv.name, "version": mv.version, "ready": ready},
                            status_code=200 if ready else 503)

    # -- /v2: inference -----------------------------------------------------------------------
    def decode_v2(mv: ModelVersion, body: bytes, header_length: str | None):
        req = parse_infer_request(body, header_length, max_array_bytes=config.max_body_bytes)
        runner = mv.runner
        by_name = {i.name: i for i in runner.inputs}
        for name, datatype in req.datatypes.items():
            info = by_name.get(name)
            if info is None:
                raise BadRequestError(f"unknown input {name!r}; model {mv.name!r} takes {runner.input_names}")
            want = datatype_of(info.dtype)
            if datatype != want:
                raise BadRequestError(f"input {name!r} has datatype {datatype}, model {mv.name!r} expects {want}")
        feeds, rows = check_feeds(runner, req.arrays, from_json=False)
        if req.outputs is None:
            wanted = [(n, req.binary_output) for n in runner.output_names]
        else:
            wanted = []
            for name, binary in req.outputs:
                if name not in runner.output_names:
                    raise BadRequestError(f"unknown output {name!r}; model {mv.name!r} has {runner.output_names}")
                wanted.append((name, req.binary_output if binary is None else binary))
        return req, feeds, rows, wanted

    def encode_v2(mv: ModelVersion, req, wanted, outputs):
        index = {n: i for i, n in enumerate(mv.runner.output_names)}
        return encode_infer_response(mv.name, mv.version, req.id, [n for n, _ in wanted],
                                     [outputs[index[n]] for n, _ in wanted], [b for _, b in wanted])

    async def v2_infer(request: Request) -> Response:
        if service.draining:
            raise ShuttingDownError("the server is shutting down")
        mv = lookup(request)  # no await between the lookup and receiving(): a reload waits for us
        with observed(mv) as outcome:
            with mv.batcher.receiving():
                body = await _read_body(request, config.max_body_bytes, config.body_timeout)
                header_length = request.headers.get(HEADER_LENGTH)
                if len(body) > _OFFLOAD_BYTES:
                    req, feeds, rows, wanted = await run_in_threadpool(decode_v2, mv, body, header_length)
                else:
                    req, feeds, rows, wanted = decode_v2(mv, body, header_length)
                del body
            outputs = await mv.batcher.submit(feeds, rows)
            if sum(o.nbytes for o in outputs) > _OFFLOAD_BYTES:
                payload, headers = await run_in_threadpool(encode_v2, mv, req, wanted, outputs)
            else:
                payload, headers = encode_v2(mv, req, wanted, outputs)
            outcome.status = 200
            return Response(payload, headers=headers)

    # -- /v2: repository ----------------------------------------------------------------------
    async def v2_index(request: Request) -> Response:
        body = await _read_body(request, 64 * 1024, config.body_timeout)
        ready_only = False
        if body.strip():
            import json

            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise BadRequestError(f"malformed JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise BadRequestError('the index request must be a JSON object like {"ready": true}')
            ready_only = bool(doc.get("ready", False))
        entries = await run_in_threadpool(repository.index)
        if ready_only:
            entries = [e for e in entries if e["state"] == "READY"]
        return JSONResponse(entries)

    async def v2_load(request: Request) -> Response:
        name = request.path_params["model"]
        try:
            versions = await repository.load(name)
        except LoadError as exc:
            raise BadRequestError(f"failed to load model {name!r}: {exc}") from None
        return JSONResponse({"name": name, "versions": versions})

    async def v2_unload(request: Request) -> Response:
        await repository.unload(request.path_params["model"])
        return JSONResponse({"name": request.path_params["model"], "unloaded": True})

    # -- errors --------------------------------------------------------------------------------
    def error_response(request: Request, status: int, kind: str, message: str) -> Response:
        if request.url.path.startswith("/v2"):
            return _v2_error(status, message)
        return _v1_error(status, kind, message)

    async def on_serve_error(request: Request, exc: ServeError) -> Response:
        return error_response(request, exc.status, type(exc).__name__, exc.detail)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(request, exc.status_code, "HTTPError", str(exc.detail))

    async def on_disconnect(request: Request, exc: ClientDisconnect) -> Response:
        return error_response(request, 499, "ClientDisconnect", "the client went away")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "InternalError", f"internal server error ({type(exc).__name__})")

    async def poll_forever() -> None:
        while True:
            await asyncio.sleep(config.repository_poll)
            try:
                await repository.poll()
            except Exception:  # a scan error must not end polling: log it and try again next time
                log.exception("repository poll failed")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await repository.start()
        poller = asyncio.create_task(poll_forever()) if config.repository_poll > 0 else None
        log.info("graphforge serve: %s", ", ".join(f"{mv.name}/{mv.version}" for mv in repository.loaded()))
        try:
            yield
        finally:
            service.draining = True
            if poller is not None:
                poller.cancel()
            await repository.stop(timeout=max(config.graceful_timeout, 1.0))

    model_path = "/v2/models/{model}"
    version_path = "/v2/models/{model}/versions/{version}"
    routes = [
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/model", model_info, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/v2", v2_server, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2/repository/index", v2_index, methods=["POST"]),
        Route("/v2/repository/models/{model}/load", v2_load, methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", v2_unload, methods=["POST"]),
    ]
    for prefix in (model_path, version_path):
        routes += [Route(prefix, v2_model, methods=["GET"]),
                   Route(prefix + "/ready", v2_model_ready, methods=["GET"]),
                   Route(prefix + "/infer", v2_infer, methods=["POST"])]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics),
                    Middleware(BearerAuthMiddleware, token=config.auth_token)],
        exception_handlers={ServeError: on_serve_error, HTTPException: on_http_error,
                            ClientDisconnect: on_disconnect, Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.service = service
    return app
