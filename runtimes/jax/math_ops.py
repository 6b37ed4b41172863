"""JAX lowerings of the elementwise math ops (``graphforge/ops/math_ops.py``)."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .lower import LOWERINGS, is_float, lowers, upcast

__all__: list[str] = []

_UNARY = {
    "floor": jnp.floor, "ceil": jnp.ceil, "round": jnp.round,  # jnp.round: half to even
    "acos": jnp.arccos, "asin": jnp.arcsin, "atan": jnp.arctan, "acosh": jnp.arccosh, "asinh": jnp.arcsinh,
    "atanh": jnp.arctanh, "sinh": jnp.sinh, "cosh": jnp.cosh, "tan": jnp.tan,
}


def _unary(fn):
    def lower(ctx, args, attrs):
        x = args[0]
        return [fn(upcast(x)).astype(x.dtype)]
    return lower


for _n, _f in _UNARY.items():
    LOWERINGS[_n] = _unary(_f)


@lowers("isnan")
def _isnan(ctx, args, attrs):
    return [jnp.isnan(args[0])]


@lowers("isinf")
def _isinf(ctx, args, attrs):
    x = upcast(args[0])
    out = jnp.zeros(x.shape, bool)
    if attrs["detect_positive"]:
        out = out | (x == jnp.inf)
    if attrs["detect_negative"]:
        out = out | (x == -jnp.inf)
    return [out]


@lowers("mod")
def _mod(ctx, args, attrs):
    a, b = jnp.asarray(args[0]), jnp.asarray(args[1])
    if is_float(a):
        wa, wb = upcast(a), upcast(b)
        out = jnp.fmod(wa, wb) if attrs["fmod"] else jnp.mod(wa, wb)  # jnp.mod: Python's sign rule
        return [out.astype(a.dtype)]
    zero = b == 0
    safe = jnp.where(zero, jnp.ones_like(b), b)
    r = lax.rem(*jnp.broadcast_arrays(a, safe))  # C remainder: the sign of a
    if not attrs["fmod"]:
        r = jnp.where((r != 0) & ((r < 0) != (safe < 0)), r + safe, r)
    return [jnp.where(zero, jnp.zeros_like(r), r).astype(ctx.dtype)]


@lowers("bitwise_and")
def _and(ctx, args, attrs):
    return [jnp.bitwise_and(args[0], args[1])]


@lowers("bitwise_or")
def _or(ctx, args, attrs):
    return [jnp.bitwise_or(args[0], args[1])]


@lowers("bitwise_xor")
def _xor(ctx, args, attrs):
    return [jnp.bitwise_xor(args[0], args[1])]


@lowers("bitwise_not")
def _not(ctx, args, attrs):
    return [jnp.bitwise_not(args[0])]


@lowers("bit_shift")
def _shift(ctx, args, attrs):
    a, b = jnp.broadcast_arrays(jnp.asarray(args[0]), jnp.asarray(args[1]))
    bits = a.dtype.itemsize * 8
    valid = (b >= 0) & (b < bits)
    amount = jnp.where(valid, b, jnp.zeros_like(b))
    if attrs["direction"] == "LEFT":
        return [jnp.where(valid, lax.shift_left(a, amount), jnp.zeros_like(a))]
    if jnp.issubdtype(a.dtype, jnp.signedinteger):
        fill = jnp.where(a < 0, jnp.full_like(a, -1), jnp.zeros_like(a))
        return [jnp.where(valid, lax.shift_right_arithmetic(a, amount), fill)]
    return [jnp.where(valid, lax.shift_right_logical(a, amount), jnp.zeros_like(a))]


@lowers("bitcast")
def _bitcast(ctx, args, attrs):
    x = args[0]
    if x.dtype == jnp.bool_:  # XLA has no bitcast from pred: a bool is the byte 0 or 1
        x = x.astype(jnp.uint8)
    return [lax.bitcast_convert_type(x, ctx.dtype)]
