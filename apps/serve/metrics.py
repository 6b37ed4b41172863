"""Prometheus metrics of the inference server (``GET /metrics``), on ``prometheus_client``.

Each app owns its own :class:`~prometheus_client.CollectorRegistry`, so several servers in one
process (tests, benchmarks) do not share counters. :class:`MetricsMiddleware` counts every HTTP
request by endpoint, method and status and times it; the batcher reports batch sizes, queue depth
and onnxruntime time.
"""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

__all__ = ["ServeMetrics", "MetricsMiddleware", "ENDPOINTS"]

ENDPOINTS = ("/v1/predict", "/v1/model", "/healthz", "/metrics")
"""Paths counted under their own name; anything else is counted as ``other`` (bounded labels)."""

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

    def set_model(self, **labels: Any) -> None:
        self.model_info.info({k: str(v) for k, v in labels.items()})

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.batch_requests.observe(requests)
        self.inference.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


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
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(endpoint, method, status,
                                         time.perf_counter() - start)
