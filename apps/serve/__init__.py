"""graphforge.serve: an ONNX inference server speaking the Open Inference Protocol, with dynamic batching.

``graphforge serve MODEL.onnx`` or ``--model-repository DIR`` (or :func:`serve`) runs a Starlette
app under uvicorn on onnxruntime: the Open Inference Protocol (KServe v2 / Triton HTTP, ``/v2/...``,
JSON and binary tensors), a model repository with versions and live reload
(:class:`ModelRepository`), ``POST /v1/predict`` (JSON, ``.npy`` or ``.npz``), ``GET /v1/model``,
``GET /healthz`` and ``GET /metrics`` (Prometheus, per model and version). Concurrent requests are
merged along the batch dim (:class:`DynamicBatcher`). Starlette, uvicorn, prometheus_client, onnx
and onnxruntime are imported only when a name below that needs them is first used (the ``serve`` extra).
"""
from __future__ import annotations

from importlib import import_module

from .config import ServeConfig, add_arguments, config_from_args
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__all__ = ["ServeConfig", "add_arguments", "config_from_args", "create_app", "serve", "InferenceServer",
           "ModelRunner", "DynamicBatcher", "ServeMetrics", "ModelRepository", "run_from_args"] + list(_errors_all)

_LAZY = {
    "create_app": "app", "serve": "server", "InferenceServer": "server", "run_from_args": "server",
    "ModelRunner": "model", "DynamicBatcher": "batcher", "ServeMetrics": "metrics",
    "ModelRepository": "repository",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
