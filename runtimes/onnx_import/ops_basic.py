"""Importers for ONNX elementwise, comparison, reduction, shape and constant ops."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from graphforge.dtypes import from_numpy_dtype, is_float
from graphforge.errors import UnsupportedOpError

from .importer import ImportContext, Known, importer, onnx_dtype
from .shape_values import as_dims, as_dim, dims_array, is_dims

__all__ = ["attrs_of"]


def attrs_of(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        out[a.name] = v
    return out


def _unsupported(node, why: str):
    raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: {why}", op=node.op_type)


# ---- elementwise ------------------------------------------------------------------------------
_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Abs": "abs",
          "Neg": "neg", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos", "Erf": "erf",
          "Sign": "sign", "Softplus": "softplus", "Not": "logical_not"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Equal": "equal", "Greater": "greater",
           "Less": "less", "GreaterOrEqual": "greater_equal", "LessOrEqual": "less_equal",
           "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}
_VARIADIC = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}


@importer(*_UNARY)
def _unary(ctx: ImportContext, node):
    return [ctx.emit(_UNARY[node.op_type], [ctx.input(node, 0)])]


@importer(*_BINARY)
def _binary(ctx: ImportContext, node):
    return [ctx.emit(_BINARY[node.op_type], [ctx.input(node, 0), ctx.input(node, 1)])]


@importer(*_VARIADIC)
def _variadic(ctx: ImportContext, node):
    xs = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    acc = xs[0]
    for x in xs[1:]:
        acc = ctx.emit(_VARIADIC[node.op_type], [acc, x])
    if node.op_type == "Mean" and len(xs) > 1:
        acc = ctx.emit("div", [acc, ctx.scalar(len(xs), acc.type.dtype)])
    return [acc]


@importer("Pow")
def _pow(ctx, node):
    x, y = ctx.input(node, 0), ctx.input(node, 1)
    return [ctx.emit("pow", [x, ctx.cast(y, x.type.dtype)])]


@importer("Identity")
def _identity(ctx, node):
    c = ctx.const(node.input[0])
    return [c if c is not None else ctx.input(node, 0)]


@importer("Dropout")
def _dropout(ctx, node):
    """Inference: identity. Training mode (``training_mode`` a constant true): graphforge's own
    ``dropout`` op, its mask seeded by the ``seed`` attribute. The kept/dropped pattern therefore differs
    from onnxruntime's RNG, but it is a proper dropout and reproducible on every graphforge back end."""
    x = ctx.input(node, 0)
    training = ctx.has(node, 2) and bool(np.asarray(ctx.need_const(node, 2, "training_mode")).item())
    want_mask = len(node.output) > 1 and bool(node.output[1])
    if not training:
        outs = [x]
        if want_mask:
            outs.append(np.ones(x.type.shape, dtype=bool) if all(isinstance(d, int) for d in x.type.shape)
                        else ctx.emit("broadcast_to", [ctx.scalar(True, "bool")], shape=list(x.type.shape)))
        return outs
    if not is_float(x.type.dtype):
        _unsupported(node, f"training-mode Dropout of a {x.type.dtype} tensor")
    a = attrs_of(node)
    ratio = float(np.asarray(ctx.need_const(node, 1, "ratio")).reshape(())) if ctx.has(node, 1) else \
        float(a.get("ratio", 0.5))
    key = ctx.scalar(int(a.get("seed", 0)) % (1 << 32), "uint32")
    y = ctx.emit("dropout", [x, key], p=ratio)
    outs = [y]
    if want_mask:  # the same key on a tensor of ones: kept elements are exactly the non-zero ones
        ones = ctx.emit("broadcast_to", [ctx.scalar(1, x.type.dtype)], shape=list(x.type.shape))
        kept = ctx.emit("dropout", [ones, key], p=ratio)
        outs.append(ctx.emit("not_equal", [kept, ctx.scalar(0, x.type.dtype)]))
    return outs


@importer("LeakyRelu")
def _leaky(ctx, node):
    return [ctx.emit("leaky_relu", [ctx.input(node, 0)], alpha=float(attrs_of(node).get("alpha", 0.01)))]


@importer("Elu", "Selu", "Celu")
def _elu(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    dt = x.type.dtype
    if node.op_type == "Celu":
        alpha = float(a.get("alpha", 1.0))
        neg = ctx.emit("mul", [ctx.scalar(alpha, dt), ctx.emit("sub", [ctx.emit("exp", [ctx.emit("div", [x, ctx.scalar(alpha, dt)])]), ctx.scalar(1, dt)])])
        return [ctx.emit("add", [ctx.emit("relu", [x]), ctx.emit("minimum", [ctx.scalar(0, dt), neg])])]
    alpha = float(a.get("alpha", 1.0 if node.op_type == "Elu" else 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875)) if node.op_type == "Selu" else 1.0
    neg = ctx.emit("mul", [ctx.scalar(alpha, dt), ctx.emit("sub", [ctx.emit("exp", [x]), ctx.scalar(1, dt)])])
    y = ctx.emit("where", [ctx.emit("greater", [x, ctx.scalar(0, dt)]), x, neg])
    if gamma != 1.0:
        y = ctx.emit("mul", [y, ctx.scalar(gamma, dt)])
    return [y]


@importer("HardSigmoid", "HardSwish")
def _hard(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    dt = x.type.dtype
    alpha = float(a.get("alpha", 0.2 if node.op_type == "HardSigmoid" else 1 / 6))
    beta = float(a.get("beta", 0.5))
    y = ctx.emit("clip", [ctx.emit("add", [ctx.emit("mul", [x, ctx.scalar(alpha, dt)]), ctx.scalar(beta, dt)])],
                 min=0.0, max=1.0)
    return [y if node.op_type == "HardSigmoid" else ctx.emit("mul", [x, y])]


@importer("Softsign")
def _softsign(ctx, node):
    x = ctx.input(node, 0)
    return [ctx.emit("div", [x, ctx.emit("add", [ctx.emit("abs", [x]), ctx.scalar(1, x.type.dtype)])])]


@importer("ThresholdedRelu")
def _trelu(ctx, node):
    x = ctx.input(node, 0)
    dt = x.type.dtype
    alpha = float(attrs_of(node).get("alpha", 1.0))
    return [ctx.emit("where", [ctx.emit("greater", [x, ctx.scalar(alpha, dt)]), x, ctx.scalar(0, dt)])]


@importer("PRelu")
def _prelu(ctx, node):
    x, slope = ctx.input(node, 0), ctx.input(node, 1)
    dt = x.type.dtype
    xs, ss = x.type.shape, slope.type.shape
    if len(ss) == 1 and len(xs) > 2 and ss[0] == xs[1] and ss[0] != xs[-1]:
        # PRelu-1/6 (and converters targeting them): a (C,) slope is per channel, not right-aligned
        slope = ctx.emit("reshape", [slope], shape=[-1] + [1] * (len(xs) - 2))
    return [ctx.emit("where", [ctx.emit("less", [x, ctx.scalar(0, dt)]), ctx.emit("mul", [x, slope]), x])]


@importer("Gelu")
def _gelu(ctx, node):
    approx = attrs_of(node).get("approximate", "none")
    return [ctx.emit("gelu", [ctx.input(node, 0)], approximate=approx)]


@importer("Clip")
def _clip(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    if ctx.opset < 11:
        lo, hi = a.get("min"), a.get("max")
    else:
        lo = float(ctx.need_const(node, 1, "min")) if ctx.has(node, 1) else None
        hi = float(ctx.need_const(node, 2, "max")) if ctx.has(node, 2) else None
    if not is_float(x.type.dtype):
        y = x
        if lo is not None:
            y = ctx.emit("maximum", [y, ctx.scalar(lo, x.type.dtype)])
        if hi is not None:
            y = ctx.emit("minimum", [y, ctx.scalar(hi, x.type.dtype)])
        return [y]
    return [ctx.emit("clip", [x], min=lo, max=hi)]


@importer("Where")
def _where(ctx, node):
    return [ctx.emit("where", [ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)])]


@importer("Cast")
def _cast(ctx, node):
    to = onnx_dtype(attrs_of(node)["to"])
    x = ctx.input(node, 0)
    if x.type.dtype == "bool" and to != "bool" or to == x.type.dtype:
        return [ctx.emit("cast", [x], dtype=to)] if to != x.type.dtype else [x]
    return [ctx.emit("cast", [x], dtype=to)]


@importer("CastLike")
def _castlike(ctx, node):
    like = ctx.const(node.input[1])
    dt = from_numpy_dtype(like.dtype) if like is not None else ctx.input(node, 1).type.dtype
    c = ctx.const(node.input[0])
    if c is not None:  # only the dtype of `target_type` matters: the result stays static
        from graphforge.dtypes import to_numpy_dtype
        return [np.asarray(c).astype(to_numpy_dtype(dt))]
    return [ctx.cast(ctx.input(node, 0), dt)]


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
            _unsupported(node, "empty reduction with symbolic dims")
        npdt = np.dtype(x.type.dtype) if x.type.dtype != "bfloat16" else np.dtype(np.float32)
        big = ((np.inf if node.op_type == "ReduceMin" else -np.inf) if npdt.kind == "f" else
               (True if node.op_type == "ReduceMin" else False) if npdt.kind == "b" else
               (np.iinfo(npdt).max if node.op_type == "ReduceMin" else np.iinfo(npdt).min))
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
        _unsupported(node, "select_last_index=1 on a symbolic axis")
    rev = ctx.emit("slice", [x], starts=[-1], ends=[-(2 ** 63)], axes=[axis], steps=[-1])
    i = ctx.emit(op, [rev], axis=axis, keepdims=keep)
    return [ctx.emit("sub", [ctx.scalar(n - 1, i.type.dtype), i])]


# ---- constants and shapes -----------------------------------------------------------------------
@importer("Constant")
def _constant(ctx, node):
    a = attrs_of(node)
    if "value" in a:
        return [numpy_helper.to_array(a["value"])]
    for k, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if k in a:
            return [np.array(a[k], dtype=dt)]
    for k, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if k in a:
            return [np.array(list(a[k]), dtype=dt)]
    _unsupported(node, f"constant attribute {sorted(a)} is not supported")


def _static_shape(ctx, node, x) -> list[int]:
    shape = list(x.type.shape)
    if not all(isinstance(d, int) for d in shape):
        _unsupported(node, f"shape {x.type} has symbolic dims; only static shapes fold at import time")
    return shape


@importer("Shape")
def _shape(ctx, node):
    a = attrs_of(node)
    name = node.input[0]
    c = ctx.const(name)
    shape = list(c.shape) if c is not None else list(ctx.value(name).type.shape)
    start, end = int(a.get("start", 0)), a.get("end")
    sel = shape[start:] if end is None else shape[start:int(end)]
    if all(isinstance(d, int) for d in sel):
        return [np.array(sel, dtype=np.int64)]
    x = ctx.value(name)
    rank = len(shape)
    parts = []
    for i in range(rank)[start:None if end is None else int(end)]:
        parts.append(ctx.emit("reshape", [ctx.emit("dim_size", [x], axes=[i], dtype="int64")], shape=[1]))
    # also known at import time as dims, for the shape arithmetic that feeds Reshape/Expand/… (shape_values)
    return [Known(ctx.emit("concat", parts, axis=0) if len(parts) > 1 else parts[0], dims_array(sel))]


@importer("Size")
def _size(ctx, node):
    c = ctx.const(node.input[0])
    if c is not None:
        return [np.array(c.size, dtype=np.int64)]
    x = ctx.value(node.input[0])
    size = ctx.emit("dim_size", [x], axes=list(range(len(x.type.shape))), dtype="int64")
    if all(isinstance(d, int) for d in x.type.shape):  # static: shape arithmetic can still fold on it
        return [Known(size, np.array(int(np.prod(x.type.shape, dtype=np.int64)), dtype=np.int64))]
    return [size]


@importer("ConstantOfShape")
def _cos(ctx, node):
    shape = as_dims(ctx.need_const(node, 0, "shape", dims=True))
    a = attrs_of(node)
    val = numpy_helper.to_array(a["value"]).reshape(-1)[0] if "value" in a else np.float32(0)
    if not all(isinstance(d, int) for d in shape):  # a run-time shape: a broadcast scalar
        return [ctx.emit("broadcast_to", [ctx.materialize(np.asarray(val))], shape=shape)]
    return [np.full(shape, val, dtype=np.asarray(val).dtype)]


@importer("Reshape")
def _reshape(ctx, node):
    x = ctx.input(node, 0)
    shape = as_dims(ctx.need_const(node, 1, "shape", dims=True))
    allowzero = int(attrs_of(node).get("allowzero", 0))
    if not allowzero:
        shape = [x.type.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [ctx.emit("reshape", [x], shape=shape)]


@importer("Flatten")
def _flatten(ctx, node):
    x = ctx.input(node, 0)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        return [ctx.emit("reshape", [x], shape=[1, -1])]
    y = ctx.emit("flatten", [x], start_axis=axis, end_axis=-1) if axis < rank else x
    if axis > 1:
        y = ctx.emit("flatten", [y], start_axis=0, end_axis=axis - 1)
    if axis == rank:
        y = ctx.emit("unsqueeze", [y], axes=[-1])
    return [y]


@importer("Transpose")
def _transpose(ctx, node):
    perm = attrs_of(node).get("perm")
    return [ctx.emit("transpose", [ctx.input(node, 0)], perm=list(perm) if perm is not None else None)]


def _axes(ctx, node, idx: int):
    a = attrs_of(node)
    if "axes" in a:
        return [int(i) for i in a["axes"]]
    if ctx.has(node, idx):
        return [int(i) for i in ctx.need_const(node, idx, "axes").reshape(-1)]
    return None


@importer("Squeeze")
def _squeeze(ctx, node):
    return [ctx.emit("squeeze", [ctx.input(node, 0)], axes=_axes(ctx, node, 1))]


@importer("Unsqueeze")
def _unsqueeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _axes(ctx, node, 1)
    out_rank = len(x.type.shape) + len(axes)
    return [ctx.emit("unsqueeze", [x], axes=sorted(a % out_rank for a in axes))]


@importer("Concat")
def _concat(ctx, node):
    xs = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    return [ctx.emit("concat", xs, axis=int(attrs_of(node)["axis"]))]


@importer("Split")
def _split(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    axis = int(a.get("axis", 0))
    dim = x.type.shape[axis]
    if "split" in a:
        sizes = [int(s) for s in a["split"]]
    elif ctx.has(node, 1):
        sizes = [int(s) for s in ctx.need_const(node, 1, "split")]
    else:
        if not isinstance(dim, int):
            _unsupported(node, "split of a symbolic dim without explicit sizes")
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-dim // n)
        sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    outs = ctx.emit_n("split", [x], axis=axis, sizes=sizes)
    return outs


@importer("Slice")
def _slice(ctx, node):
    x = ctx.input(node, 0)
    if ctx.opset < 10:
        a = attrs_of(node)
        starts, ends, axes, steps = list(a["starts"]), list(a["ends"]), a.get("axes"), None
    else:
        starts = as_dims(ctx.need_const(node, 1, "starts", dims=True))
        ends = as_dims(ctx.need_const(node, 2, "ends", dims=True))
        axes = [int(i) for i in ctx.need_const(node, 3, "axes")] if ctx.has(node, 3) else None
        steps = [int(i) for i in ctx.need_const(node, 4, "steps")] if ctx.has(node, 4) else None
    big = 2 ** 63 - 1
    ends = [e if isinstance(e, str) else min(max(e, -big), big) for e in ends]
    starts = [s if isinstance(s, str) else min(max(s, -big), big) for s in starts]
    return [ctx.emit("slice", [x], starts=starts, ends=ends,
                     axes=list(map(int, axes)) if axes is not None else None, steps=steps)]


@importer("Gather")
def _gather(ctx, node):
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    axis = int(attrs_of(node).get("axis", 0))
    shape = x.type.shape
    if axis in (0, -len(shape)) and len(shape) >= 2 and is_float(x.type.dtype) and \
            all(isinstance(d, int) for d in shape[1:]):
        # rows of a table (token embeddings, …): the embedding op, whose VJP is a scatter_add of rows
        table = x if len(shape) == 2 else ctx.emit("reshape", [x], shape=[shape[0], -1])
        y = ctx.emit("embedding", [table, idx])
        return [y if len(shape) == 2 else ctx.emit("reshape", [y], shape=list(idx.type.shape) + list(shape[1:]))]
    return [ctx.emit("gather", [x, idx], axis=axis)]


@importer("Expand")
def _expand(ctx, node):
    x = ctx.input(node, 0)
    shape = as_dims(ctx.need_const(node, 1, "shape", dims=True))
    xs = list(x.type.shape)
    rank = max(len(xs), len(shape))
    xs = [1] * (rank - len(xs)) + xs
    shape = [1] * (rank - len(shape)) + shape
    out = [a if b == 1 else b for a, b in zip(xs, shape)]
    return [ctx.emit("broadcast_to", [x], shape=out)]


@importer("Tile")
def _tile(ctx, node):
    x = ctx.input(node, 0)
    reps = [int(i) for i in ctx.need_const(node, 1, "repeats")]
    for axis, r in enumerate(reps):
        if r != 1:
            x = ctx.emit("concat", [x] * r, axis=axis) if r > 0 else ctx.emit("slice", [x], starts=[0], ends=[0], axes=[axis])
    return [x]


@importer("Range")
def _range(ctx, node):
    s, l, d = (np.asarray(ctx.need_const(node, i, n, dims=True)).reshape(()) for i, n in
               enumerate(("start", "limit", "delta")))
    if is_dims(s) or is_dims(l):  # bounds from run-time shapes: an arange with symbolic bounds
        if is_dims(d) or int(d) <= 0:
            _unsupported(node, "a Range over symbolic bounds needs a static positive delta")
        dtype = from_numpy_dtype(d.dtype) if d.dtype.kind in "iu" else "int64"
        return [ctx.emit("arange", [], start=as_dim(s.item()), stop=as_dim(l.item()), step=int(d), dtype=dtype)]
    dt = np.asarray(s).dtype
    # ONNX: n = max(ceil((limit - start) / delta), 0), element i = start + i * delta (in the input dtype)
    n = max(int(np.ceil((float(l) - float(s)) / float(d))), 0) if float(d) != 0 else 0
    arr = (s + np.arange(n, dtype=dt) * d).astype(dt) if n else np.zeros((0,), dt)
    if dt.kind in "iu" and n:  # integer ranges stay an `arange` node (no stored table)
        v = ctx.emit("arange", [], start=int(s), stop=int(s) + n * int(d), step=int(d),
                     dtype=from_numpy_dtype(dt))
        return [Known(v, arr)]
    return [arr]


@importer("Pad")
def _pad(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    rank = len(x.type.shape)
    mode = a.get("mode", "constant")
    if ctx.opset < 11:
        pads, value, axes = list(a["pads"]), float(a.get("value", 0.0)), None
    else:
        pads = [int(i) for i in ctx.need_const(node, 1, "pads")]
        value = float(ctx.need_const(node, 2, "constant_value").reshape(-1)[0]) if ctx.has(node, 2) else 0.0
        axes = [int(i) % rank for i in ctx.need_const(node, 3, "axes")] if ctx.has(node, 3) else None
    axes = axes if axes is not None else list(range(rank))
    n = len(axes)
    full = [0] * (2 * rank)
    for k, ax in enumerate(axes):
        full[2 * ax], full[2 * ax + 1] = pads[k], pads[k + n]
    if mode == "wrap" or mode not in ("constant", "reflect", "edge"):
        _unsupported(node, f"mode {mode!r}")
    if any(p < 0 for p in full):
        # negative pads crop
        starts = [max(-full[2 * i], 0) for i in range(rank)]
        ends = [(-full[2 * i + 1] if full[2 * i + 1] < 0 else 2 ** 63 - 1) for i in range(rank)]
        ends = [e if e != 0 else 2 ** 63 - 1 for e in ends]
        x = ctx.emit("slice", [x], starts=starts, ends=ends, axes=list(range(rank)))
        full = [max(p, 0) for p in full]
    if not any(full):
        return [x]
    return [ctx.emit("pad", [x], pads=full, mode=mode, value=value)]


@importer("OneHot")
def _onehot(ctx, node):
    idx = ctx.input(node, 0)
    depth = int(np.asarray(ctx.need_const(node, 1, "depth")).reshape(-1)[0])
    vals = ctx.need_const(node, 2, "values")
    axis = int(attrs_of(node).get("axis", -1))
    dt = from_numpy_dtype(vals.dtype)
    idx = ctx.cast(idx, "int64")
    # negative indices wrap
    idx = ctx.emit("where", [ctx.emit("less", [idx, ctx.scalar(0, "int64")]),
                             ctx.emit("add", [idx, ctx.scalar(depth, "int64")]), idx])
    oh = ctx.emit("one_hot", [idx], num_classes=depth, dtype="bool")
    y = ctx.emit("where", [oh, ctx.scalar(vals[1], dt), ctx.scalar(vals[0], dt)])
    rank = len(y.type.shape)
    if axis % rank != rank - 1:
        perm = list(range(rank - 1))
        perm.insert(axis % rank, rank - 1)
        y = ctx.emit("transpose", [y], perm=perm)
    return [y]
