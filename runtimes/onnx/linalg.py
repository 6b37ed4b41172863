"""ONNX lowerings of the linalg ops (``graphforge/ops/linalg.py``)."""
from __future__ import annotations

from graphforge import dtypes as _dt
from graphforge.ops.linalg import activation_op

from .lower import lowers

__all__: list[str] = []


# ---- linear algebra --------------------------------------------------------------------------------------

@lowers("matmul")
def _matmul(ctx, args, attrs):
    a_type, b_type = ctx.in_types[0], ctx.in_types[1]
    if b_type.rank == 1 and a_type.rank >= 2 and ctx.producer(args[0]) is not None:
        # A matrix (or batch) times a vector, written as times a (K, 1) matrix. onnxruntime 1.32's
        # MatmulTransposeFusion folds a Transpose feeding MatMul's A into FusedMatMul(transA=1),
        # which is wrong when B is 1-D (transpose(a) @ v gave a @ v's numbers; fuzz seed 8913).
        # A computed A may be or become such a Transpose (the exporter's, or one onnxruntime's
        # transpose optimizer moves there); an input or initializer cannot.
        col = ctx.op("MatMul", [args[0], ctx.op("Unsqueeze", [args[1], ctx.ints([-1])])])
        return [ctx.op("Squeeze", [col, ctx.ints([-1])])]
    return [ctx.op("MatMul", args)]


@lowers("linear")
def _linear(ctx, args, attrs):
    x, w = args[0], args[1]
    xt, dtype = ctx.in_types[0], ctx.out_types[0].dtype
    bias = args[2] if len(args) > 2 else None
    transpose_b = attrs.get("transpose_b", True)
    if xt.rank == 2 and _dt.is_float(dtype):
        inputs = [x, w] + ([bias] if bias is not None else [])
        y = ctx.op("Gemm", inputs, transB=int(transpose_b))
    else:
        wt = (ctx.transposed_param(w) or ctx.transpose(w, [1, 0])) if transpose_b else w
        y = ctx.op("MatMul", [x, wt])
        if bias is not None:
            y = ctx.op("Add", [y, bias])
    act = activation_op(attrs["activation"])
    if act is None:
        return [y]
    op, act_attrs = act  # the activation op's own lowering: one activation table, in graphforge/ops
    return ctx.lower_as(op, [y], act_attrs)
