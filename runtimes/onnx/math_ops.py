"""ONNX lowerings of the elementwise math ops (``graphforge/ops/math_ops.py``): each is its native ONNX
op (Floor, Round, IsNaN, BitwiseAnd, Mod, ...) where onnxruntime has a kernel for the dtype, so an
imported model re-exports node for node. The gaps it spells with other ops: onnxruntime's float64
inverse/hyperbolic trig (log/exp formulas; atan as float32 Atan plus two float64 Newton steps), float
``Mod`` with fmod=0 (fmod plus a sign fix-up), integer remainders by zero (0, as the contract says),
and BitShift on signed types or out-of-range shift amounts (int64 arithmetic).
"""
from __future__ import annotations

import math

import numpy as np

from graphforge import dtypes as _dt

from .elementwise import static_array, static_nonzero, zero_guarded
from .lower import NotExpressible, lowers, onnx_dtype

__all__ = ["MIN_OPSET"]

# ops whose ONNX form first exists at a later opset than graphforge's minimum (17)
MIN_OPSET = {"bitwise_and": 18, "bitwise_or": 18, "bitwise_xor": 18, "bitwise_not": 18, "bitcast": 26}

_NATIVE = {"floor": "Floor", "ceil": "Ceil", "round": "Round", "acos": "Acos", "asin": "Asin", "atan": "Atan",
           "acosh": "Acosh", "asinh": "Asinh", "atanh": "Atanh", "sinh": "Sinh", "cosh": "Cosh", "tan": "Tan",
           "isnan": "IsNaN", "bitwise_not": "BitwiseNot"}


def _atan64(ctx, x):
    y = ctx.cast(ctx.op("Atan", [ctx.cast(x, "float32")]), "float64")
    for _ in range(2):  # Newton on tan(y) = x: y -= (sin y - x cos y) * cos y
        s, c = ctx.op("Sin", [y]), ctx.op("Cos", [y])
        y = ctx.op("Sub", [y, ctx.op("Mul", [ctx.op("Sub", [s, ctx.op("Mul", [x, c])]), c])])
    return y


def _trig64(ctx, op, x):
    """float64 spellings of the trig ops onnxruntime has no double kernel for."""
    one, half = ctx.scalar(1.0, "float64"), ctx.scalar(0.5, "float64")
    e = ctx.op
    if op in ("sinh", "cosh"):
        a, b = e("Exp", [x]), e("Exp", [e("Neg", [x])])
        return e("Mul", [e("Sub" if op == "sinh" else "Add", [a, b]), half])
    if op == "tan":
        return e("Div", [e("Sin", [x]), e("Cos", [x])])
    if op == "asinh":  # odd: sign(x) * log(|x| + sqrt(x^2 + 1)), no cancellation for x < 0
        ax = e("Abs", [x])
        mag = e("Log", [e("Add", [ax, e("Sqrt", [e("Add", [e("Mul", [x, x]), one])])])])
        return e("Mul", [e("Sign", [x]), mag])
    if op == "acosh":
        return e("Log", [e("Add", [x, e("Sqrt", [e("Sub", [e("Mul", [x, x]), one])])])])
    if op == "atanh":
        return e("Mul", [half, e("Log", [e("Div", [e("Add", [one, x]), e("Sub", [one, x])])])])
    if op == "atan":
        return _atan64(ctx, x)
    # asin(x) = atan(x / sqrt(1 - x^2)); acos(x) = pi/2 - asin(x)
    asin = _atan64(ctx, e("Div", [x, e("Sqrt", [e("Sub", [one, e("Mul", [x, x])])])]))
    if op == "asin":
        return asin
    return e("Sub", [ctx.scalar(math.pi / 2, "float64"), asin])


def _check_opset(ctx):
    need = MIN_OPSET.get(ctx.node.op, 0)
    if ctx.opset < need:
        raise NotExpressible(f"{ctx.node.op} needs ONNX opset >= {need}")


@lowers(*_NATIVE)
def _native(ctx, args, attrs):
    op = ctx.node.op
    _check_opset(ctx)
    if ctx.in_types[0].dtype == "float64" and op not in ("floor", "ceil", "round", "isnan", "bitwise_not"):
        return [_trig64(ctx, op, args[0])]
    return [ctx.op(_NATIVE[op], args)]


@lowers("isinf")
def _isinf(ctx, args, attrs):
    return [ctx.op("IsInf", args, detect_positive=int(attrs["detect_positive"]),
                   detect_negative=int(attrs["detect_negative"]))]


@lowers("bitwise_and", "bitwise_or", "bitwise_xor")
def _bitwise(ctx, args, attrs):
    _check_opset(ctx)
    op = {"bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr", "bitwise_xor": "BitwiseXor"}[ctx.node.op]
    return [ctx.op(op, args)]


@lowers("mod")
def _mod(ctx, args, attrs):
    a, b = args
    dtype = ctx.in_types[0].dtype
    if _dt.is_float(dtype):
        r = ctx.op("Mod", [a, b], fmod=1)
        if attrs["fmod"]:
            return [r]
        # Python's rule: a non-zero remainder takes the divisor's sign (onnxruntime has no float fmod=0)
        zero = ctx.scalar(0, dtype)
        fix = ctx.op("And", [ctx.op("Not", [ctx.op("Equal", [r, zero])]),
                             ctx.op("Xor", [ctx.op("Less", [r, zero]), ctx.op("Less", [b, zero])])])
        return [ctx.op("Where", [fix, ctx.op("Add", [r, b]), r])]
    if static_nonzero(ctx, ctx.node.inputs[1]):  # the usual case: a constant divisor, no guard
        return [ctx.op("Mod", [a, b], fmod=int(attrs["fmod"]))]
    # x mod 1 is 0, so the guarded divisor alone gives the contract's 0 for a zero divisor
    return [zero_guarded(ctx, "Mod", a, b, dtype, fmod=int(attrs["fmod"]))[0]]


@lowers("bit_shift")
def _bit_shift(ctx, args, attrs):
    # onnxruntime's BitShift takes unsigned types only, its Where no 8/16-bit or uint64 ones, and C++
    # leaves shifts by >= the width undefined: the shift runs on uint64, the masking on int64, and the
    # final Cast back to the node's dtype keeps the low bits (the contract's wrap-around).
    a, b = args
    dtype = ctx.in_types[0].dtype
    bits = _dt.to_numpy_dtype(dtype).itemsize * 8
    amounts = static_array(ctx, ctx.node.inputs[1])
    if (dtype in ("uint8", "uint16", "uint32", "uint64") and amounts is not None
            and bool(np.all((amounts >= 0) & (amounts < bits)))):
        return [ctx.op("BitShift", [a, b], direction=attrs["direction"])]  # the kernel's own case
    i64, u64 = "int64", "uint64"
    zero = ctx.scalar(0, i64)
    b64 = ctx.cast(b, i64)  # (a uint64 amount >= 2**63 turns negative: out of range either way)
    valid = ctx.op("And", [ctx.op("GreaterOrEqual", [b64, zero]), ctx.op("Less", [b64, ctx.scalar(bits, i64)])])
    amount = ctx.cast(ctx.op("Where", [valid, b64, zero]), u64)
    signed = dtype.startswith("int")
    if attrs["direction"] == "LEFT" or not signed:
        shifted = ctx.cast(ctx.op("BitShift", [ctx.cast(a, u64), amount], direction=attrs["direction"]), i64)
        return [ctx.cast(ctx.op("Where", [valid, shifted, zero]), dtype)]
    # arithmetic right shift of a sign-extended value: a >= 0 ? a >> b : ~(~a >> b), with ~v = -1 - v
    a64, minus_one = ctx.cast(a, i64), ctx.scalar(-1, i64)
    neg = ctx.op("Less", [a64, zero])
    flipped = ctx.op("Where", [neg, ctx.op("Sub", [minus_one, a64]), a64])
    shifted = ctx.cast(ctx.op("BitShift", [ctx.cast(flipped, u64), amount], direction="RIGHT"), i64)
    out = ctx.op("Where", [neg, ctx.op("Sub", [minus_one, shifted]), shifted])
    fill = ctx.op("Where", [neg, minus_one, zero])
    return [ctx.cast(ctx.op("Where", [valid, out, fill]), dtype)]


@lowers("bitcast")
def _bitcast(ctx, args, attrs):
    if ctx.in_types[0].dtype == "bool":  # a bool is the byte 0 or 1 (onnxruntime has no bool BitCast)
        return [ctx.cast(args[0], attrs["dtype"])]
    _check_opset(ctx)
    return [ctx.op("BitCast", args, to=onnx_dtype(attrs["dtype"]))]
