"""ONNX lowerings of the creation ops (``graphforge/ops/creation.py``)."""
from __future__ import annotations


import numpy as np


from .lower import lowers

__all__: list[str] = []


# ---- creation ----------------------------------------------------------------------------------------------

@lowers("constant")
def _constant(ctx, args, attrs):
    return [ctx.const(np.asarray(attrs["value"]), ctx.out_types[0].dtype)]


ARANGE_CONST_MAX = 1 << 16
"""Static aranges up to this many elements export as an initializer; longer ones as a ``Range`` node,
so that an imported ``Range(0, 2**40)`` (untrusted input) is never materialised by the exporter."""


def _arange_length(attrs) -> int:
    start, stop, step = attrs["start"], attrs["stop"], attrs["step"]
    return max(0, -((start - stop) // step)) if step else 0


@lowers("arange")
def _arange(ctx, args, attrs):
    dtype = ctx.out_types[0].dtype
    if (isinstance(attrs["start"], str) or isinstance(attrs["stop"], str)  # bounds known at run time
            or _arange_length(attrs) > ARANGE_CONST_MAX):
        out = ctx.op("Range", [ctx.scalar_dim(attrs["start"]), ctx.scalar_dim(attrs["stop"]),
                               ctx.scalar(attrs["step"], "int64")])
        return [out if dtype == "int64" else ctx.cast(out, dtype)]
    values = np.arange(attrs["start"], attrs["stop"], attrs["step"])
    return [ctx.const(values, dtype)]


@lowers("dim_value")
def _dim_value(ctx, args, attrs):
    return [ctx.scalar_dim(attrs["dim"], ctx.out_types[0].dtype)]


@lowers("one_hot")
def _one_hot(ctx, args, attrs):
    idx = ctx.cast(args[0], "int64") if ctx.in_types[0].dtype != "int64" else args[0]
    idx = ctx.op("Unsqueeze", [idx, ctx.ints([-1])])
    n = attrs["num_classes"]
    classes = (ctx.const(np.arange(n, dtype=np.int64)) if n <= ARANGE_CONST_MAX
               else ctx.op("Range", [ctx.scalar(0, "int64"), ctx.scalar(n, "int64"), ctx.scalar(1, "int64")]))
    hit = ctx.op("Equal", [idx, classes])
    return [ctx.cast(hit, ctx.out_types[0].dtype)]
