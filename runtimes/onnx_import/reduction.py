"""Importers for ONNX reductions, arg-reductions, Softmax/LogSoftmax/Hardmax and CumSum/CumProd onto
``graphforge/ops/reduction.py`` (cumulative ones as masked reductions)."""
from __future__ import annotations

import numpy as np

from graphforge.dtypes import is_float

from .importer import attrs_of, float_input, importer, unsupported

__all__: list[str] = []


# ---- softmax family -----------------------------------------------------------------------------
@importer("Softmax", "LogSoftmax")
def _softmax(ctx, node):
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    x = ctx.input(node, 0)
    axis = int(attrs_of(node).get("axis", -1 if ctx.opset >= 13 else 1))
    if ctx.opset >= 13:
        return [ctx.emit(op, [x], axis=axis)]
    # opset < 13: coerce to 2-D at `axis`, softmax over the flattened trailing dims
    rank = len(x.type.shape)
    axis = axis % rank if rank else 0
    if axis == rank - 1:
        return [ctx.emit(op, [x], axis=-1)]
    shape = list(x.type.shape)
    flat = ctx.emit("flatten", [x], start_axis=axis, end_axis=-1) if axis > 0 else ctx.emit("reshape", [x], shape=[1, -1])
    y = ctx.emit(op, [flat], axis=-1)
    return [ctx.emit("reshape", [y], shape=shape)]


# ---- reductions -----------------------------------------------------------------------------
_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod",
           "ReduceSumSquare": "sum", "ReduceL1": "sum", "ReduceL2": "sum", "ReduceLogSum": "sum",
           "ReduceLogSumExp": "sum"}


@importer(*_REDUCE)
def _reduce(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    keep = bool(a.get("keepdims", 1))
    axes_from_input = node.op_type == "ReduceSum" and ctx.opset >= 13 or ctx.opset >= 18
    if axes_from_input:
        axes = [int(i) for i in ctx.need_const(node, 1, "axes").reshape(-1)] if ctx.has(node, 1) else None
    else:
        axes = a.get("axes")
        axes = [int(i) for i in axes] if axes is not None else None
    if axes is not None and len(axes) == 0:
        axes = None
        if int(a.get("noop_with_empty_axes", 0)):
            return [x]
    rank = len(x.type.shape)
    if axes is None:
        axes = list(range(rank))
    if node.op_type in ("ReduceMax", "ReduceMin") and any(
            x.type.shape[i % rank] == 0 for i in axes if rank):
        # ONNX: the max (min) of an empty set is the lowest (highest) value of the type
        shape = [1 if (i in {a % rank for a in axes}) else d for i, d in enumerate(x.type.shape)]
        if not keep:
            shape = [d for i, d in enumerate(shape) if i not in {a % rank for a in axes}]
        if not all(isinstance(d, int) for d in shape):
            unsupported(node, "empty reduction with symbolic dims")
        npdt = np.dtype(x.type.dtype) if x.type.dtype != "bfloat16" else np.dtype(np.float32)
        big = ((np.inf if node.op_type == "ReduceMin" else -np.inf) if npdt.kind == "f" else
               (True if node.op_type == "ReduceMin" else False) if npdt.kind == "b" else
               (np.iinfo(npdt).max if node.op_type == "ReduceMin" else np.iinfo(npdt).min))
        ctx.require(shape, npdt.itemsize, "the empty-reduction result")
        return [np.full(shape, big, dtype=npdt)]
    t = node.op_type
    if t == "ReduceSumSquare" or t == "ReduceL2":
        x = ctx.emit("mul", [x, x])
    elif t == "ReduceL1":
        x = ctx.emit("abs", [x])
    elif t == "ReduceLogSumExp":
        x = ctx.emit("exp", [x])
    y = ctx.emit(_REDUCE[t], [x], axes=axes, keepdims=keep)
    if t == "ReduceL2":
        y = ctx.emit("sqrt", [y])
    elif t in ("ReduceLogSum", "ReduceLogSumExp"):
        y = ctx.emit("log", [y])
    return [y]


@importer("ArgMax", "ArgMin")
def _arg(ctx, node):
    a = attrs_of(node)
    op = "argmax" if node.op_type == "ArgMax" else "argmin"
    x = ctx.input(node, 0)
    axis = int(a.get("axis", 0))
    keep = bool(a.get("keepdims", 1))
    if not int(a.get("select_last_index", 0)):
        return [ctx.emit(op, [x], axis=axis, keepdims=keep)]
    n = x.type.shape[axis]
    if not isinstance(n, int):
        unsupported(node, "select_last_index=1 on a symbolic axis")
    rev = ctx.emit("slice", [x], starts=[-1], ends=[-(2 ** 63)], axes=[axis], steps=[-1])
    i = ctx.emit(op, [rev], axis=axis, keepdims=keep)
    return [ctx.emit("sub", [ctx.scalar(n - 1, i.type.dtype), i])]


@importer("Hardmax")
def _hardmax(ctx, node):
    x, dt = float_input(ctx, node)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    if ctx.opset < 13:
        unsupported(node, "opset < 13 (2-D coercion) is not supported")
    n = x.type.shape[axis]
    if not isinstance(n, int):
        unsupported(node, "symbolic axis")
    idx = ctx.emit("argmax", [x], axis=axis, keepdims=False)
    oh = ctx.emit("one_hot", [idx], num_classes=n, dtype=dt)
    if axis != rank - 1:
        perm = list(range(rank - 1))
        perm.insert(axis, rank - 1)
        oh = ctx.emit("transpose", [oh], perm=perm)
    return [oh]


def _cumulative_mask(ctx, node):
    """The input, its rank, the normalised axis and the (n, n) bool mask of a CumSum/CumProd node:
    ``m[i, j]`` is true when x_j contributes to y_i under the node's exclusive/reverse attributes."""
    x = ctx.input(node, 0)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(np.asarray(ctx.need_const(node, 1, "axis")).reshape(-1)[0]) % rank
    n = x.type.shape[axis]
    if not isinstance(n, int):
        unsupported(node, "symbolic axis length")
    i, j = np.indices((n, n))
    excl, rev = int(a.get("exclusive", 0)), int(a.get("reverse", 0))
    return x, rank, axis, (j > i if excl else j >= i) if rev else (j < i if excl else j <= i)


@importer("CumSum")
def _cumsum(ctx, node):
    x, rank, axis, m = _cumulative_mask(ctx, node)
    dt = x.type.dtype
    cdt = dt if is_float(dt) else "float64"
    xc = ctx.cast(x, cdt)
    perm = [d for d in range(rank) if d != axis] + [axis]
    xt = ctx.emit("transpose", [xc], perm=perm) if axis != rank - 1 else xc
    mt = ctx.materialize(m.T.astype(np.dtype(cdt) if cdt != "bfloat16" else np.float32), "cumsum_mask")
    mt = ctx.cast(mt, cdt)
    y = ctx.emit("matmul", [xt, mt])
    if axis != rank - 1:
        inv = list(np.argsort(perm))
        y = ctx.emit("transpose", [y], perm=[int(p) for p in inv])
    return [ctx.cast(y, dt)]


@importer("CumProd")
def _cumprod(ctx, node):
    """y_i = prod over the j that precede i (per exclusive/reverse): a (n, n) mask reduced with ``prod``."""
    x, rank, axis, m = _cumulative_mask(ctx, node)
    e = ctx.emit
    perm = [d for d in range(rank) if d != axis] + [axis]
    xt = e("transpose", [x], perm=perm) if axis != rank - 1 else x
    picked = e("where", [ctx.materialize(m, "cumprod_mask"), e("unsqueeze", [xt], axes=[rank - 1]),
                         ctx.scalar(1, x.type.dtype)])
    y = e("prod", [picked], axes=[-1], keepdims=False)
    if axis != rank - 1:
        y = e("transpose", [y], perm=[int(p) for p in np.argsort(perm)])
    return [y]
