"""Prometheus metrics of the inference server (``GET /metrics``), on ``prometheus_client``.

Each app owns its own :class:`~prometheus_client.CollectorRegistry`, so several servers in one
process (tests, benchmarks) do not share counters. :class:`MetricsMiddleware` counts every HTTP
request by endpoint, method and status and times it; the batcher reports batch sizes, queue depth
and onnxruntime time. Inference is also counted per model and version
(``graphforge_inference_*{model,version}``), and the registry carries the standard ``process_*``
metrics (resident memory, open file descriptors, CPU seconds).
"""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info,
                               ProcessCollector)
from prometheus_client.exposition import generate_latest

__all__ = ["ServeMetrics", "MetricsMiddleware", "ENDPOINTS", "endpoint_label"]

ENDPOINTS = ("/v1/predict", "/v1/model", "/healthz", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready",
             "/v2/repository/index")
"""Paths counted under their own name; ``/v2/models/...`` paths by their shape (``/v2/models/{m}/infer``),
anything else as ``other``: labels stay bounded whatever clients send."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _size_buckets(max_batch: int) -> tuple[float, ...]:
    out, b = [], 1
    while b < max_batch:
        out.append(float(b))
        b *= 2
    out.append(float(max(max_batch, 1)))
    return tuple(out)


class ServeMetrics:
    """The server's metric families, in a private registry."""

    def __init__(self, max_batch: int = 64):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("graphforge_serve_requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("graphforge_serve_request_duration_seconds",
                                 "HTTP request latency, from first byte in to last byte out.",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        sizes = _size_buckets(max_batch)
        self.batch_size = Histogram("graphforge_serve_batch_size",
                                    "Rows (samples) per onnxruntime call.", buckets=sizes, registry=r)
        self.batch_requests = Histogram("graphforge_serve_batch_requests",
                                        "Requests merged into one onnxruntime call.", buckets=sizes, registry=r)
        self.inference = Histogram("graphforge_serve_inference_duration_seconds",
                                   "Time of one onnxruntime call (a whole batch).",
                                   buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("graphforge_serve_queue_depth",
                                 "Requests waiting for an inference worker.", registry=r)
        self.inflight = Gauge("graphforge_serve_inflight_requests",
                              "Predict requests accepted and not yet answered.", registry=r)
        self.rejected = Counter("graphforge_serve_rejected_requests",
                                "Predict requests refused before inference, by reason.", ["reason"], registry=r)
        self.model_info = Info("graphforge_serve_model", "The served model.", registry=r)
        per_model = ["model", "version"]
        self.inference_requests = Counter(
            "graphforge_inference_requests", "Inference requests by model, version and HTTP status.",
            per_model + ["status"], registry=r)
        self.inference_duration = Histogram(
            "graphforge_inference_request_duration_seconds",
            "Inference request time in the server, body read to answer encoded.", per_model,
            buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_duration = Histogram(
            "graphforge_inference_queue_duration_seconds",
            "Time a validated request waited in the batcher before its batch ran.", per_model,
            buckets=_LATENCY_BUCKETS, registry=r)
        self.model_batch_size = Histogram(
            "graphforge_inference_batch_size", "Rows (samples) per execution of a model version.",
            per_model, buckets=_size_buckets(1024), registry=r)
        self.executions = Counter(
            "graphforge_inference_executions", "onnxruntime executions (batches) of a model version.",
            per_model, registry=r)
        ProcessCollector(registry=r)

    def set_model(self, **labels: Any) -> None:
        self.model_info.info({k: str(v) for k, v in labels.items()})

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, rows: int, requests: int, seconds: float,
                      model: tuple[str, str] | None = None) -> None:
        self.batch_size.observe(rows)
        self.batch_requests.observe(requests)
        self.inference.observe(seconds)
        if model is not None:
            self.model_batch_size.labels(*model).observe(rows)
            self.executions.labels(*model).inc()

    def observe_queue(self, model: tuple[str, str] | None, seconds: float) -> None:
        if model is not None:
            self.queue_duration.labels(*model).observe(seconds)

    def observe_inference(self, model: str, version: str, status: int, seconds: float | None) -> None:
        """One finished inference request (``seconds`` None: refused before it was timed)."""
        self.inference_requests.labels(model, version, str(status)).inc()
        if seconds is not None and status < 400:
            self.inference_duration.labels(model, version).observe(seconds)

    def forget_model(self, model: str, version: str) -> None:
        """Drop the per-version series of an unloaded version (a reload keeps its number's)."""
        for family in (self.inference_duration, self.queue_duration, self.model_batch_size, self.executions):
            try:
                family.remove(model, version)
            except KeyError:
                pass

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def endpoint_label(path: str) -> str:
    """A bounded label for ``path``: itself if known, ``/v2/models/{m}[/versions/{v}]/<verb>``, or ``other``."""
    if path in ENDPOINTS:
        return path
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v2" and parts[2] in ("models", "repository"):
        if parts[2] == "repository":
            return "/v2/repository/models/{m}/" + parts[-1] if parts[-1] in ("load", "unload") else "other"
        rest = parts[4:]
        if len(rest) >= 2 and rest[0] == "versions":
            prefix, rest = "/v2/models/{m}/versions/{v}", rest[2:]
        else:
            prefix = "/v2/models/{m}"
        if not rest:
            return prefix
        if len(rest) == 1 and rest[0] in ("ready", "infer", "config"):
            return f"{prefix}/{rest[0]}"
    return "other"


class MetricsMiddleware:
    """Pure ASGI middleware: times and counts HTTP requests (status 500 if the app raised)."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope.get("method", "")
        method = method if method in _METHODS else "OTHER"
        endpoint = endpoint_label(scope.get("path", ""))
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(endpoint, method, status,
                                         time.perf_counter() - start)
