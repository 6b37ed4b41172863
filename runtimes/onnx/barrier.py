"""ONNX lowerings of ``optimization_barrier`` and ``stop_gradient``: the values themselves
(onnxruntime neither rematerialises nor differentiates, so there is nothing to keep apart or stop)."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


@lowers("optimization_barrier", "stop_gradient")
def _barrier(ctx, args, attrs):
    return list(args)
