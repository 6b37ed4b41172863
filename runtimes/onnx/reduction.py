"""ONNX lowerings of the reduction ops (``graphforge/ops/reduction.py``).

Integer ``mean`` reduces in float64 and truncates like the reference.
"""
from __future__ import annotations



from graphforge import dtypes as _dt

from .lower import lowers, reduce

__all__: list[str] = []


# ---- reductions ---------------------------------------------------------------------------------------

def _norm_axes(axes, rank):
    if axes is None:
        return None
    return sorted({a % rank if rank else 0 for a in axes})


_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd"}


@lowers(*_REDUCE)
def _reduce(ctx, args, attrs):
    t = ctx.in_types[0]
    axes = _norm_axes(attrs["axes"], t.rank)
    if t.rank == 0:
        return [args[0]]
    x = args[0]
    if ctx.node.op == "mean" and not _dt.is_float(t.dtype):
        m = reduce(ctx, "ReduceMean", ctx.cast(x, "float64"), axes, attrs["keepdims"])
        return [ctx.cast(m, t.dtype)]  # Cast truncates toward zero, like the reference's astype
    if t.dtype in ("int32", "int16", "int8", "uint8", "uint32") and ctx.node.op in ("sum", "prod"):
        # onnxruntime's integer reductions cover int32/int64; small ints wrap like NumPy after the cast
        y = reduce(ctx, _REDUCE[ctx.node.op], ctx.cast(x, "int64"), axes, attrs["keepdims"])
        return [ctx.cast(y, t.dtype)]
    return [reduce(ctx, _REDUCE[ctx.node.op], x, axes, attrs["keepdims"])]


@lowers("argmax", "argmin")
def _argmax(ctx, args, attrs):
    t = ctx.in_types[0]
    op = "ArgMax" if ctx.node.op == "argmax" else "ArgMin"
    x = args[0]
    if t.dtype not in ("float32", "float64", "int32", "int64"):
        x = ctx.cast(x, "float64" if _dt.is_float(t.dtype) or t.dtype == "uint32" else "int32")
    return [ctx.op(op, [x], axis=attrs["axis"] % t.rank, keepdims=int(attrs["keepdims"]), select_last_index=0)]


@lowers("softmax")
def _softmax(ctx, args, attrs):
    return [ctx.op("Softmax", args, axis=attrs["axis"] % ctx.in_types[0].rank)]


@lowers("log_softmax")
def _log_softmax(ctx, args, attrs):
    return [ctx.op("LogSoftmax", args, axis=attrs["axis"] % ctx.in_types[0].rank)]
