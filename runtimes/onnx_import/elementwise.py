"""Importers for ONNX elementwise ops (unary/binary math, activations, comparisons, logic, casts) onto
``graphforge/ops/elementwise.py``; the ones graphforge has no op for are small compositions of its ops."""
from __future__ import annotations

import numpy as np

from graphforge.dtypes import E8M0, FLOAT8_DTYPES, PACKED_BITS, from_numpy_dtype, is_float, to_numpy_dtype

from .importer import attrs_of, float_input, ImportContext, importer, onnx_dtype

__all__: list[str] = []


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
    a = attrs_of(node)
    to = onnx_dtype(a["to"])
    x = ctx.input(node, 0)
    if to == x.type.dtype:
        return [x]
    extra = {}
    if not int(a.get("saturate", 1)) and to in FLOAT8_DTYPES + (E8M0,):
        extra["saturate"] = False
    mode = a.get("round_mode", "up")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if to == E8M0 and mode != "up":
        extra["round_mode"] = mode
    return [ctx.emit("cast", [x], dtype=to, **extra)]


@importer("CastLike")
def _castlike(ctx, node):
    like = ctx.const(node.input[1])
    dt = from_numpy_dtype(like.dtype) if like is not None else ctx.input(node, 1).type.dtype
    a = attrs_of(node)
    extra = {}
    if not int(a.get("saturate", 1)) and dt in FLOAT8_DTYPES + (E8M0,):
        extra["saturate"] = False
    mode = a.get("round_mode", "up")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if dt == E8M0 and mode != "up":
        extra["round_mode"] = mode
    c = ctx.const(node.input[0])
    if c is not None and dt not in FLOAT8_DTYPES + tuple(PACKED_BITS) + (E8M0,):
        # only the dtype of `target_type` matters: the result stays static
        return [np.asarray(c).astype(to_numpy_dtype(dt))]
    x = ctx.input(node, 0)
    if x.type.dtype == dt:
        return [x]
    return [ctx.emit("cast", [x], dtype=dt, **extra)]


@importer("Swish", "Mish")
def _swish(ctx, node):
    x, dt = float_input(ctx, node)
    if node.op_type == "Mish":
        return [ctx.emit("mul", [x, ctx.emit("tanh", [ctx.emit("softplus", [x])])])]
    alpha = float(attrs_of(node).get("alpha", 1.0))
    if alpha == 1.0:
        return [ctx.emit("silu", [x])]
    return [ctx.emit("mul", [x, ctx.emit("sigmoid", [ctx.emit("mul", [x, ctx.scalar(alpha, dt)])])])]


@importer("Shrink")
def _shrink(ctx, node):
    x, dt = float_input(ctx, node)
    a = attrs_of(node)
    lambd, bias = float(a.get("lambd", 0.5)), float(a.get("bias", 0.0))
    e = ctx.emit
    lo = e("add", [x, ctx.scalar(bias, dt)])
    hi = e("sub", [x, ctx.scalar(bias, dt)])
    zero = ctx.scalar(0, dt)
    return [e("where", [e("less", [x, ctx.scalar(-lambd, dt)]), lo,
                        e("where", [e("greater", [x, ctx.scalar(lambd, dt)]), hi, zero])])]
