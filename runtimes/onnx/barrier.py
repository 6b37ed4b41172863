"""ONNX lowering of ``optimization_barrier``: the values themselves (onnxruntime does not
rematerialise, so there is nothing to keep apart)."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


@lowers("optimization_barrier")
def _barrier(ctx, args, attrs):
    return list(args)
