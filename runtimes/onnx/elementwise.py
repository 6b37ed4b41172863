"""ONNX lowerings of the elementwise ops (``graphforge/ops/elementwise.py``).

Where onnxruntime's CPU kernels lack a dtype the lowering spells the op with ones it has: float64
``erf`` is a positive-term series (no cancellation, ~1e-15 relative error), ``softplus`` is the
stable ``relu(x) + log(1 + exp(-|x|))`` for every dtype, integer ``div`` guards the zero divisor
(the contract gives 0 there; a raw integer Div by zero would trap).
"""
from __future__ import annotations

import math

import numpy as np

from graphforge import dtypes as _dt

from .lower import Emitter, NotExpressible, lowers

__all__ = ["erf", "gelu", "zero_guarded", "static_array", "static_nonzero"]


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
    # onnxruntime's float64 Gelu (either form) is only float32-accurate (~1e-8 absolute): primitives
    if ctx.native("Gelu") and dtype != "float64":
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
    return [ctx.op("Mul", [args[0], ctx.op("Sigmoid", args)])]


@lowers("softplus")
def _softplus_op(ctx, args, attrs):
    return [_softplus(ctx, args[0], ctx.in_types[0].dtype)]


# ---- binary, comparison, logic ----------------------------------------------------------------------

_SIMPLE_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "maximum": "Max", "minimum": "Min",
                  "equal": "Equal", "greater": "Greater", "greater_equal": "GreaterOrEqual", "less": "Less",
                  "less_equal": "LessOrEqual", "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


@lowers(*_SIMPLE_BINARY)
def _binary(ctx, args, attrs):
    op = _SIMPLE_BINARY[ctx.node.op]
    dtype = ctx.in_types[0].dtype
    _string_equal_opset(ctx, dtype)
    if op in ("Max", "Min") and dtype in ("uint16", "int16", "int8"):
        # onnxruntime has no Max/Min kernel for these: exactly in int32, then back
        wide = [ctx.cast(a, "int32") for a in args]
        return [ctx.cast(ctx.op(op, wide), dtype)]
    return [ctx.op(op, args)]


def _string_equal_opset(ctx, dtype):
    if dtype == "string" and ctx.opset < 19:  # Equal takes string tensors from opset 19
        raise NotExpressible(f"Equal on string tensors needs opset >= 19 (exporting at {ctx.opset})")


@lowers("not_equal")
def _not_equal(ctx, args, attrs):
    _string_equal_opset(ctx, ctx.in_types[0].dtype)
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
    if static_nonzero(ctx, ctx.node.inputs[1]):  # a constant divisor without zeros: no guard
        return [ctx.op("Div", [a, b])]
    q, z = zero_guarded(ctx, "Div", a, b, dtype)  # integer Div truncates toward zero, as the contract says
    return [ctx.op("Mul", [q, ctx.op("Sub", [ctx.scalar(1, dtype), z])])]


def zero_guarded(ctx, op_type: str, a: str, b: str, dtype: str, **attrs) -> tuple[str, str]:
    """``op_type(a, b')`` with every zero of ``b`` replaced by 1, and ``z`` (1 where ``b`` was 0, else 0):
    arithmetic rather than Where, which onnxruntime has no uint16/uint64 kernel for."""
    z = ctx.cast(ctx.op("Equal", [b, ctx.scalar(0, dtype)]), dtype)
    return ctx.op(op_type, [a, ctx.op("Add", [b, z])], **attrs), z


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
    if dst == "float32":
        exact = ctx.exact_float_of.get(args[0])  # (quantize.py: conv_integer as a float Conv)
        if exact is not None:
            return [exact]
    for dt in (src, dst):
        if ctx.opset < _dt.min_onnx_opset(dt):
            raise NotExpressible(f"Cast to or from {dt} needs opset >= {_dt.min_onnx_opset(dt)}")
    x = args[0]
    if src == "bfloat16" and dst != "float32":
        x, src = ctx.cast(x, "float32"), "float32"
    if dst == "bfloat16" and src != "float32":
        x = ctx.cast(x, "float32")
    if dst == _dt.E8M0 and _dt.is_float(src):
        # ONNX's definition sends ±inf to NaN (0xFF); onnxruntime's kernel saturates them to 2**127
        fsrc = src if src in ("float16", "float32", "float64") else "float32"
        x = x if fsrc == src else ctx.cast(x, fsrc)
        x = ctx.op("Where", [ctx.op("IsInf", [x]), ctx.scalar(float("nan"), fsrc), x])
    if dst in _dt.INT4_DTYPES + _dt.INT2_DTYPES and _dt.is_float(src):
        x = ctx.cast(x, "int32")  # onnxruntime rounds float -> int4; the contract truncates, then wraps
    # float -> int truncates toward zero, like the reference; float -> float8 saturates by default
    return [ctx.cast(x, dst, saturate=attrs.get("saturate", True), round_mode=attrs.get("round_mode", "up"))]


@lowers("clip")
def _clip(ctx, args, attrs):
    x, dtype = args[0], ctx.in_types[0].dtype
    producer = ctx.producer(x)
    if dtype != "float64" or producer is None or producer.op_type != "Relu":
        # one native Clip (an imported Clip re-exports as one node); an absent bound is an empty input
        lo = "" if attrs.get("min") is None else ctx.scalar(attrs["min"], dtype)
        hi = "" if attrs.get("max") is None else ctx.scalar(attrs["max"], dtype)
        return [ctx.op("Clip", [x, lo, hi] if hi else [x, lo])]
    # onnxruntime's Relu+Clip fusion only handles float32 bounds and refuses to load a float64 Clip
    # that follows a Relu: Max/Min there
    if attrs.get("min") is not None:
        x = ctx.op("Max", [x, ctx.scalar(attrs["min"], dtype)])
    if attrs.get("max") is not None:
        x = ctx.op("Min", [x, ctx.scalar(attrs["max"], dtype)])
    return [x]


def static_nonzero(ctx, value) -> bool:
    """Whether ``value`` is a constant (a stored parameter or a ``constant`` node) with no zero."""
    array = static_array(ctx, value)
    return array is not None and bool(np.all(array != 0))


def static_array(ctx, value):
    """``value``'s array when it is a constant (a stored parameter or a ``constant`` node), else None."""
    array = None
    stored = ctx.stored_params.get(getattr(value, "name", None) or "")
    if stored is not None and getattr(value, "kind", "") in ("param", "const", "buffer"):
        array = stored[0]
    producer = getattr(value, "producer", None)
    if producer is not None and producer.op == "constant":
        array = producer.attrs.get("value")
    return None if array is None else np.asarray(array)
