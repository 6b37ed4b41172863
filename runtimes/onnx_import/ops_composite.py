"""Importers for ONNX ops that graphforge expresses as small compositions of its registry ops
(hyperbolic/inverse trig functions, Swish/Mish/Shrink, Hardmax, Lp/Instance/Group/RMS normalisation,
Trilu, Space/DepthToSpace, EyeLike, IsNaN/IsInf)."""
from __future__ import annotations

import numpy as np

from graphforge.errors import UnsupportedOpError

from .importer import ImportContext, importer
from .ops_basic import attrs_of

__all__: list[str] = []


def _unsupported(node, why: str):
    raise UnsupportedOpError(f"{node.op_type} node {node.name!r}: {why}", op=node.op_type)


def _float_in(ctx, node):
    x = ctx.input(node, 0)
    return x, x.type.dtype


@importer("Tan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh")
def _trig(ctx: ImportContext, node):
    x, dt = _float_in(ctx, node)
    e = ctx.emit
    one = ctx.scalar(1, dt)
    half = ctx.scalar(0.5, dt)
    t = node.op_type
    if t == "Tan":
        return [e("div", [e("sin", [x]), e("cos", [x])])]
    if t in ("Sinh", "Cosh"):
        a, b = e("exp", [x]), e("exp", [e("neg", [x])])
        return [e("mul", [e("sub" if t == "Sinh" else "add", [a, b]), half])]
    if t == "Asinh":
        return [e("log", [e("add", [x, e("sqrt", [e("add", [e("mul", [x, x]), one])])])])]
    if t == "Acosh":
        return [e("log", [e("add", [x, e("sqrt", [e("sub", [e("mul", [x, x]), one])])])])]
    return [e("mul", [half, e("log", [e("div", [e("add", [one, x]), e("sub", [one, x])])])])]


@importer("Swish", "Mish")
def _swish(ctx, node):
    x, dt = _float_in(ctx, node)
    if node.op_type == "Mish":
        return [ctx.emit("mul", [x, ctx.emit("tanh", [ctx.emit("softplus", [x])])])]
    alpha = float(attrs_of(node).get("alpha", 1.0))
    if alpha == 1.0:
        return [ctx.emit("silu", [x])]
    return [ctx.emit("mul", [x, ctx.emit("sigmoid", [ctx.emit("mul", [x, ctx.scalar(alpha, dt)])])])]


@importer("Shrink")
def _shrink(ctx, node):
    x, dt = _float_in(ctx, node)
    a = attrs_of(node)
    lambd, bias = float(a.get("lambd", 0.5)), float(a.get("bias", 0.0))
    e = ctx.emit
    lo = e("add", [x, ctx.scalar(bias, dt)])
    hi = e("sub", [x, ctx.scalar(bias, dt)])
    zero = ctx.scalar(0, dt)
    return [e("where", [e("less", [x, ctx.scalar(-lambd, dt)]), lo,
                        e("where", [e("greater", [x, ctx.scalar(lambd, dt)]), hi, zero])])]


@importer("Hardmax")
def _hardmax(ctx, node):
    x, dt = _float_in(ctx, node)
    rank = len(x.type.shape)
    axis = int(attrs_of(node).get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    if ctx.opset < 13:
        _unsupported(node, "opset < 13 (2-D coercion) is not supported")
    n = x.type.shape[axis]
    if not isinstance(n, int):
        _unsupported(node, "symbolic axis")
    idx = ctx.emit("argmax", [x], axis=axis, keepdims=False)
    oh = ctx.emit("one_hot", [idx], num_classes=n, dtype=dt)
    if axis != rank - 1:
        perm = list(range(rank - 1))
        perm.insert(axis, rank - 1)
        oh = ctx.emit("transpose", [oh], perm=perm)
    return [oh]


@importer("LpNormalization")
def _lpnorm(ctx, node):
    x, dt = _float_in(ctx, node)
    a = attrs_of(node)
    axis, p = int(a.get("axis", -1)), int(a.get("p", 2))
    if p == 1:
        n = ctx.emit("sum", [ctx.emit("abs", [x])], axes=[axis], keepdims=True)
    elif p == 2:
        n = ctx.emit("sqrt", [ctx.emit("sum", [ctx.emit("mul", [x, x])], axes=[axis], keepdims=True)])
    else:
        _unsupported(node, f"p={p}")
    zero = ctx.scalar(0, dt)
    safe = ctx.emit("where", [ctx.emit("equal", [n, zero]), ctx.scalar(1, dt), n])
    return [ctx.emit("where", [ctx.emit("equal", [n, zero]), zero, ctx.emit("div", [x, safe])])]


def _normalize(ctx, x, axes, eps, dt):
    """(x - mean) / sqrt(var + eps) over ``axes`` plus mean and inv-std (keepdims)."""
    mean = ctx.emit("mean", [x], axes=axes, keepdims=True)
    d = ctx.emit("sub", [x, mean])
    var = ctx.emit("mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=True)
    inv = ctx.emit("rsqrt", [ctx.emit("add", [var, ctx.scalar(eps, dt)])])
    return ctx.emit("mul", [d, inv]), mean, inv


def _channel_affine(ctx, y, scale, bias, rank):
    shape = [-1] + [1] * (rank - 2)
    y = ctx.emit("mul", [y, ctx.emit("reshape", [scale], shape=shape)])
    return ctx.emit("add", [y, ctx.emit("reshape", [bias], shape=shape)])


@importer("InstanceNormalization")
def _instnorm(ctx, node):
    x, dt = _float_in(ctx, node)
    rank = len(x.type.shape)
    y, _, _ = _normalize(ctx, x, list(range(2, rank)), float(attrs_of(node).get("epsilon", 1e-5)), dt)
    return [_channel_affine(ctx, y, ctx.input(node, 1), ctx.input(node, 2), rank)]


@importer("GroupNormalization")
def _groupnorm(ctx, node):
    x, dt = _float_in(ctx, node)
    a = attrs_of(node)
    groups = int(a["num_groups"])
    shape = list(x.type.shape)
    rank = len(shape)
    if ctx.opset < 21:
        _unsupported(node, "opset-18 GroupNormalization (per-group scale) is not supported")
    c = shape[1]
    if not isinstance(c, int):
        _unsupported(node, "symbolic channel dim")
    xg = ctx.emit("reshape", [x], shape=[shape[0], groups, -1])
    y, _, _ = _normalize(ctx, xg, [2], float(a.get("epsilon", 1e-5)), dt)
    y = ctx.emit("reshape", [y], shape=shape)
    return [_channel_affine(ctx, y, ctx.input(node, 1), ctx.input(node, 2), rank)]


@importer("MeanVarianceNormalization")
def _mvn(ctx, node):
    x, dt = _float_in(ctx, node)
    axes = [int(i) for i in attrs_of(node).get("axes", [0, 2, 3])]
    mean = ctx.emit("mean", [x], axes=axes, keepdims=True)
    d = ctx.emit("sub", [x, mean])
    var = ctx.emit("mean", [ctx.emit("mul", [d, d])], axes=axes, keepdims=True)
    return [ctx.emit("div", [d, ctx.emit("add", [ctx.emit("sqrt", [var]), ctx.scalar(1e-9, dt)])])]


@importer("RMSNormalization")
def _rmsnorm(ctx, node):
    x, dt = _float_in(ctx, node)
    a = attrs_of(node)
    rank = len(x.type.shape)
    axis = int(a.get("axis", -1)) % rank
    stash = int(a.get("stash_type", 1))
    xc = ctx.cast(x, "float32") if stash == 1 and dt != "float32" else x
    cdt = xc.type.dtype
    ms = ctx.emit("mean", [ctx.emit("mul", [xc, xc])], axes=list(range(axis, rank)), keepdims=True)
    y = ctx.emit("mul", [xc, ctx.emit("rsqrt", [ctx.emit("add", [ms, ctx.scalar(float(a.get("epsilon", 1e-5)), cdt)])])])
    y = ctx.cast(y, dt)
    return [ctx.emit("mul", [y, ctx.input(node, 1)])]


@importer("Trilu")
def _trilu(ctx, node):
    x = ctx.input(node, 0)
    upper = int(attrs_of(node).get("upper", 1))
    k = int(np.asarray(ctx.need_const(node, 1, "k")).reshape(-1)[0]) if ctx.has(node, 1) else 0
    n, m = x.type.shape[-2:]
    if not isinstance(n, int) or not isinstance(m, int):
        _unsupported(node, "symbolic matrix dims")
    mask = np.triu(np.ones((n, m), bool), k) if upper else np.tril(np.ones((n, m), bool), k)
    zero = np.zeros((), dtype=np.dtype(x.type.dtype) if x.type.dtype != "bfloat16" else np.float32)
    return [ctx.emit("where", [ctx.materialize(mask, "trilu_mask"), x,
                               ctx.emit("cast", [ctx.materialize(zero)], dtype=x.type.dtype)])]


@importer("DepthToSpace", "SpaceToDepth")
def _d2s(ctx, node):
    x = ctx.input(node, 0)
    a = attrs_of(node)
    b = int(a["blocksize"])
    n, c, h, w = x.type.shape
    if node.op_type == "SpaceToDepth":
        t = ctx.emit("reshape", [x], shape=[n, c, h // b, b, w // b, b])
        crd = a.get("mode", "DCR") == "CRD"
        t = ctx.emit("transpose", [t], perm=[0, 1, 3, 5, 2, 4] if crd else [0, 3, 5, 1, 2, 4])
        return [ctx.emit("reshape", [t], shape=[n, c * b * b, h // b, w // b])]
    if a.get("mode", "DCR") == "DCR":
        t = ctx.emit("reshape", [x], shape=[n, b, b, c // (b * b), h, w])
        t = ctx.emit("transpose", [t], perm=[0, 3, 4, 1, 5, 2])
    else:
        t = ctx.emit("reshape", [x], shape=[n, c // (b * b), b, b, h, w])
        t = ctx.emit("transpose", [t], perm=[0, 1, 4, 2, 5, 3])
    return [ctx.emit("reshape", [t], shape=[n, c // (b * b), h * b, w * b])]


@importer("EyeLike")
def _eyelike(ctx, node):
    from .importer import onnx_dtype
    from graphforge.dtypes import to_numpy_dtype

    x = ctx.input(node, 0)
    a = attrs_of(node)
    dt = onnx_dtype(a["dtype"]) if "dtype" in a else x.type.dtype
    n, m = x.type.shape
    if not isinstance(n, int) or not isinstance(m, int):
        _unsupported(node, "symbolic dims")
    return [np.eye(n, m, int(a.get("k", 0)), dtype=to_numpy_dtype(dt))]


@importer("IsNaN", "IsInf")
def _isnan(ctx, node):
    x = ctx.input(node, 0)
    if node.op_type == "IsNaN":
        return [ctx.emit("not_equal", [x, x])]
    a = attrs_of(node)
    pos, neg = int(a.get("detect_positive", 1)), int(a.get("detect_negative", 1))
    dt = x.type.dtype
    outs = []
    if pos:
        outs.append(ctx.emit("equal", [x, ctx.scalar(np.inf, dt)]))
    if neg:
        outs.append(ctx.emit("equal", [x, ctx.scalar(-np.inf, dt)]))
    if not outs:
        return [ctx.emit("less", [x, ctx.scalar(-np.inf, dt)])]  # all False, NaN included
    return [outs[0] if len(outs) == 1 else ctx.emit("logical_or", outs)]
