"""ONNX lowerings of the selection ops (``graphforge/ops/selection.py``): ``topk`` is TopK (opset
11+: ties to the lower index, ``largest``, ``sorted``) with a constant K."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


@lowers("topk")
def _topk(ctx, args, attrs):
    values, indices = ctx.op("TopK", [args[0], ctx.ints([attrs["k"]])], outputs=2, axis=attrs["axis"],
                             largest=int(attrs["largest"]), sorted=1)
    return [values, indices]
