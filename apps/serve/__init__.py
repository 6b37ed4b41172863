"""graphforge.serve: an ONNX inference server with dynamic batching and Prometheus metrics.

``graphforge serve MODEL.onnx`` (or :func:`serve`) runs a Starlette app under uvicorn on
onnxruntime: ``POST /v1/predict`` (JSON, ``.npy`` or ``.npz``), ``GET /v1/model``,
``GET /healthz`` and ``GET /metrics``. Concurrent requests are merged along the batch dim
(:class:`DynamicBatcher`). Starlette, uvicorn, prometheus_client, onnx and onnxruntime are
imported only when a name below that needs them is first used (the ``serve`` extra).
"""
from __future__ import annotations

from importlib import import_module

from .config import ServeConfig, add_arguments, config_from_args
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__all__ = ["ServeConfig", "add_arguments", "config_from_args", "create_app", "serve", "InferenceServer",
           "ModelRunner", "DynamicBatcher", "ServeMetrics", "run_from_args"] + list(_errors_all)

_LAZY = {
    "create_app": "app", "serve": "server", "InferenceServer": "server", "run_from_args": "server",
    "ModelRunner": "model", "DynamicBatcher": "batcher", "ServeMetrics": "metrics",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
