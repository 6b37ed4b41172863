"""ONNX lowerings of the elementwise, reduction, linear-algebra and creation ops.

Where onnxruntime's CPU kernels lack a dtype the lowering spells the op with ones it has: float64
``erf`` is a positive-term series (no cancellation, ~1e-15 relative error), ``softplus`` is the
stable ``relu(x) + log(1 + exp(-|x|))`` for every dtype, integer ``div`` guards the zero divisor
(the contract gives 0 there; a raw integer Div by zero would trap) and integer ``mean`` reduces in
float64 and truncates like the reference.
"""
from __future__ import annotations

import math

import numpy as np

from graphforge import dtypes as _dt
from graphforge.ir.dims import dim_product

from .lower import Emitter, lowers, reduce

__all__ = ["erf", "gelu", "activation"]


# ---- unary ----------------------------------------------------------------------------------------

def _erf_terms(limit: float = 6.0) -> int:
    """Series terms for erf on |x| <= limit: sum_n (2x^2)^n / (1*3*...*(2n+1)) to double precision."""
    t, term, total, n = limit * limit, 1.0, 1.0, 0
    while term > total * 1e-18:
        n += 1
        term *= 2 * t / (2 * n + 1)
        total += term
    return n


_ERF_TERMS = _erf_terms()


def erf(ctx: Emitter, x: str, dtype: str) -> str:
    if dtype != "float64":
        return ctx.op("Erf", [x])
    # onnxruntime has no float64 Erf kernel: erf(x) = 2/sqrt(pi) * x * exp(-x^2) * S(x^2) with
    # S(t) = 1 + 2t/3 (1 + 2t/5 (1 + ...)), all terms positive; |x| is clamped at 6 (erf(6) == 1.0).
    # The clamp is Max/Min, not Clip: onnxruntime's Relu+Clip fusion only handles float32 bounds and
    # refuses to load a float64 Clip that follows a Relu.
    c = ctx.op("Min", [ctx.op("Max", [x, ctx.scalar(-6.0, dtype)]), ctx.scalar(6.0, dtype)])
    t = ctx.op("Mul", [c, c])
    t2 = ctx.op("Mul", [t, ctx.scalar(2.0, dtype)])
    one = ctx.scalar(1.0, dtype)
    r = one
    for n in range(_ERF_TERMS, 0, -1):
        r = ctx.op("Add", [one, ctx.op("Mul", [ctx.op("Mul", [t2, r]), ctx.scalar(1.0 / (2 * n + 1), dtype)])])
    e = ctx.op("Exp", [ctx.op("Neg", [t])])
    y = ctx.op("Mul", [ctx.op("Mul", [c, e]), r])
    return ctx.op("Mul", [y, ctx.scalar(2.0 / math.sqrt(math.pi), dtype)])


def gelu(ctx: Emitter, x: str, dtype: str, approximate: str) -> str:
    if ctx.native("Gelu") and (approximate == "tanh" or dtype != "float64"):
        return ctx.op("Gelu", [x], approximate=approximate)
    half, one = ctx.scalar(0.5, dtype), ctx.scalar(1.0, dtype)
    if approximate == "tanh":
        cube = ctx.op("Mul", [ctx.op("Mul", [x, x]), x])
        inner = ctx.op("Add", [x, ctx.op("Mul", [cube, ctx.scalar(0.044715, dtype)])])
        inner = ctx.op("Mul", [inner, ctx.scalar(math.sqrt(2 / math.pi), dtype)])
        s = ctx.op("Tanh", [inner])
    else:
        s = erf(ctx, ctx.op("Mul", [x, ctx.scalar(1 / math.sqrt(2), dtype)]), dtype)
    return ctx.op("Mul", [ctx.op("Mul", [x, half]), ctx.op("Add", [one, s])])


def _softplus(ctx, x, dtype):
    neg_abs = ctx.op("Neg", [ctx.op("Abs", [x])])
    log1p = ctx.op("Log", [ctx.op("Add", [ctx.scalar(1.0, dtype), ctx.op("Exp", [neg_abs])])])
    return ctx.op("Add", [ctx.op("Relu", [x]), log1p])


def activation(ctx: Emitter, y: str, name: str, dtype: str) -> str:
    if name == "none":
        return y
    if name == "relu":
        return ctx.op("Relu", [y])
    if name in ("gelu", "gelu_tanh"):
        return gelu(ctx, y, dtype, "tanh" if name == "gelu_tanh" else "none")
    if name == "tanh":
        return ctx.op("Tanh", [y])
    if name == "sigmoid":
        return ctx.op("Sigmoid", [y])
    if name == "silu":
        return ctx.op("Mul", [y, ctx.op("Sigmoid", [y])])
    raise ValueError(f"unknown activation {name!r}")


_SIMPLE_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "sign": "Sign",
                 "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "sin": "Sin", "cos": "Cos",
                 "reciprocal": "Reciprocal"}


@lowers(*_SIMPLE_UNARY)
def _unary(ctx, args, attrs):
    return [ctx.op(_SIMPLE_UNARY[ctx.node.op], args)]


@lowers("rsqrt")
def _rsqrt(ctx, args, attrs):
    return [ctx.op("Reciprocal", [ctx.op("Sqrt", args)])]


@lowers("leaky_relu")
def _leaky_relu(ctx, args, attrs):
    dtype = ctx.in_types[0].dtype
    if dtype == "float32":
        return [ctx.op("LeakyRelu", args, alpha=float(attrs["alpha"]))]
    x = args[0]  # onnxruntime's LeakyRelu-16 has no float64 kernel
    neg = ctx.op("Mul", [x, ctx.scalar(attrs["alpha"], dtype)])
    return [ctx.op("Where", [ctx.op("GreaterOrEqual", [x, ctx.scalar(0, dtype)]), x, neg])]


@lowers("erf")
def _erf(ctx, args, attrs):
    return [erf(ctx, args[0], ctx.in_types[0].dtype)]


@lowers("gelu")
def _gelu(ctx, args, attrs):
    return [gelu(ctx, args[0], ctx.in_types[0].dtype, attrs["approximate"])]


@lowers("silu")
def _silu(ctx, args, attrs):
    return [activation(ctx, args[0], "silu", ctx.in_types[0].dtype)]


@lowers("softplus")
def _softplus_op(ctx, args, attrs):
    return [_softplus(ctx, args[0], ctx.in_types[0].dtype)]


# ---- binary, comparison, logic ----------------------------------------------------------------------

_SIMPLE_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "maximum": "Max", "minimum": "Min",
                  "equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual", "less": "Less",
                  "less_equal": "LessOrEqual", "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


@lowers(*_SIMPLE_BINARY)
def _binary(ctx, args, attrs):
    return [ctx.op(_SIMPLE_BINARY[ctx.node.op], args)]


@lowers("not_equal")
def _not_equal(ctx, args, attrs):
    return [ctx.op("Not", [ctx.op("Equal", args)])]


@lowers("logical_not")
def _logical_not(ctx, args, attrs):
    return [ctx.op("Not", args)]


@lowers("div")
def _div(ctx, args, attrs):
    a, b = args
    dtype = ctx.in_types[0].dtype
    if _dt.is_float(dtype):
        return [ctx.op("Div", [a, b])]
    zero = ctx.scalar(0, dtype)
    is_zero = ctx.op("Equal", [b, zero])
    safe = ctx.op("Where", [is_zero, ctx.scalar(1, dtype), b])
    q = ctx.op("Div", [a, safe])  # integer Div truncates toward zero, as the contract says
    return [ctx.op("Where", [is_zero, zero, q])]


@lowers("pow")
def _pow(ctx, args, attrs):
    a, b = args
    dtype = ctx.in_types[0].dtype
    if not _dt.is_float(dtype):
        b = ctx.op("Max", [b, ctx.scalar(0, dtype)])
    return [ctx.op("Pow", [a, b])]


@lowers("where")
def _where(ctx, args, attrs):
    return [ctx.op("Where", args)]


@lowers("cast")
def _cast(ctx, args, attrs):
    src, dst = ctx.in_types[0].dtype, attrs["dtype"]
    if src == dst:
        return [args[0]]
    x = args[0]
    if src == "bfloat16" and dst != "float32":
        x, src = ctx.cast(x, "float32"), "float32"
    if dst == "bfloat16" and src != "float32":
        x = ctx.cast(x, "float32")
    return [ctx.cast(x, dst)]  # float -> int truncates toward zero, like the reference


@lowers("clip")
def _clip(ctx, args, attrs):
    x, dtype = args[0], ctx.in_types[0].dtype
    if attrs.get("min") is not None:
        x = ctx.op("Max", [x, ctx.scalar(attrs["min"], dtype)])
    if attrs.get("max") is not None:
        x = ctx.op("Min", [x, ctx.scalar(attrs["max"], dtype)])
    return [x]


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


# ---- linear algebra --------------------------------------------------------------------------------------

@lowers("matmul")
def _matmul(ctx, args, attrs):
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
    return [activation(ctx, y, attrs.get("activation", "none"), dtype)]


# ---- creation and size queries ----------------------------------------------------------------------------

@lowers("constant")
def _constant(ctx, args, attrs):
    return [ctx.const(np.asarray(attrs["value"]), ctx.out_types[0].dtype)]


@lowers("arange")
def _arange(ctx, args, attrs):
    dtype = ctx.out_types[0].dtype
    if isinstance(attrs["start"], str) or isinstance(attrs["stop"], str):  # bounds known at run time
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
    hit = ctx.op("Equal", [idx, ctx.const(np.arange(attrs["num_classes"], dtype=np.int64))])
    return [ctx.cast(hit, ctx.out_types[0].dtype)]


@lowers("dim_size")
def _dim_size(ctx, args, attrs):
    t = ctx.in_types[0]
    dims = [t.shape[a % t.rank] for a in attrs["axes"]]
    dtype = ctx.out_types[0].dtype
    total = dim_product(dims) if dims else 1
    if isinstance(total, int):
        return [ctx.scalar(total, dtype)]
    n = ctx.numel(dims)
    return [ctx.cast(n, dtype) if dtype != "int64" else n]


