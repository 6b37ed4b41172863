"""JAX lowerings of the elementwise ops (``graphforge/ops/elementwise.py``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from graphforge import dtypes as _dt

from .lower import LOWERINGS, const_like, is_float, lowers, upcast

__all__: list[str] = []


# ---- elementwise unary --------------------------------------------------------------------------

def _gelu(x, a):
    return jax.nn.gelu(x, approximate=a["approximate"] == "tanh")


_UNARY = {
    "neg": lambda x, a: -x,
    "exp": lambda x, a: jnp.exp(x),
    "log": lambda x, a: jnp.log(x),
    "sqrt": lambda x, a: jnp.sqrt(x),
    "rsqrt": lambda x, a: lax.rsqrt(x),
    "abs": lambda x, a: jnp.abs(x),
    "sign": lambda x, a: jnp.sign(x),
    "relu": lambda x, a: jnp.maximum(x, const_like(0, x)),
    "leaky_relu": lambda x, a: jnp.where(x >= 0, x, x * const_like(a["alpha"], x)),
    "sigmoid": lambda x, a: jax.nn.sigmoid(x),
    "tanh": lambda x, a: jnp.tanh(x),
    "erf": lambda x, a: lax.erf(x),
    "gelu": _gelu,
    "silu": lambda x, a: x * jax.nn.sigmoid(x),
    "softplus": lambda x, a: jax.nn.softplus(x),
    "sin": lambda x, a: jnp.sin(x),
    "cos": lambda x, a: jnp.cos(x),
    "reciprocal": lambda x, a: 1 / x,
}


def _unary(fn):
    def lower(ctx, args, attrs):
        x = args[0]
        return [fn(upcast(x), attrs).astype(x.dtype)]
    return lower


for _n, _f in _UNARY.items():
    LOWERINGS[_n] = _unary(_f)


# ---- elementwise binary -------------------------------------------------------------------------

def _int_div(a, b):
    zero = b == 0
    q = lax.div(a, jnp.where(zero, jnp.ones_like(b), b))  # lax.div truncates toward zero
    return jnp.where(zero, jnp.zeros_like(q), q)


def _div(a, b):
    if is_float(a):
        return (upcast(a) / upcast(b)).astype(a.dtype)
    return _int_div(a, b)


def _bcast(args):
    a, b = args
    return jnp.asarray(a), jnp.asarray(b)


_BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": _div, "pow": lambda a, b: (jnp.power(upcast(a), upcast(b))).astype(a.dtype),
    "maximum": jnp.maximum, "minimum": jnp.minimum,
    "equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b,
    "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
    "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b,
    "logical_and": jnp.logical_and, "logical_or": jnp.logical_or, "logical_xor": jnp.logical_xor,
}


def _binary(fn):
    def lower(ctx, args, attrs):
        return [fn(*_bcast(args)).astype(ctx.dtype)]
    return lower


for _n, _f in _BINARY.items():
    LOWERINGS[_n] = _binary(_f)


@lowers("logical_not")
def _logical_not(ctx, args, attrs):
    return [jnp.logical_not(args[0])]


@lowers("where")
def _where(ctx, args, attrs):
    return [jnp.where(args[0], args[1], args[2]).astype(ctx.dtype)]


@lowers("cast")
def _cast(ctx, args, attrs):
    x = args[0]
    target, dst = ctx.dtype, attrs["dtype"]
    if target == np.bool_:
        return [x != 0]
    if _dt.is_int(dst) and is_float(x):
        x = jnp.trunc(x)
        if dst in _dt.INT4_DTYPES + _dt.INT2_DTYPES:  # wrap like the reference (ml_dtypes, ONNX), not XLA's saturation
            x = lax.convert_element_type(x, jnp.int32)
    elif dst == _dt.E8M0 and is_float(x):
        return [_to_e8m0(x.astype(jnp.float32), attrs.get("saturate", True), attrs.get("round_mode", "up"), target)]
    elif dst in _dt.FLOAT8_DTYPES and is_float(x) and attrs.get("saturate", True):
        limit = _dt.float_max(dst)  # ONNX saturate: clamp to the largest finite value, NaN stays
        wide = x.astype(jnp.float32) if x.dtype.itemsize < 4 else x
        x = jnp.clip(wide, -limit, limit)
    return [lax.convert_element_type(x, target)]


@lowers("clip")
def _clip(ctx, args, attrs):
    x = args[0]
    if attrs.get("min") is not None:
        x = jnp.maximum(x, const_like(attrs["min"], x))
    if attrs.get("max") is not None:
        x = jnp.minimum(x, const_like(attrs["max"], x))
    return [x]


def _to_e8m0(x, saturate: bool, round_mode: str, target):
    """ONNX's float32 -> float8e8m0 (``graphforge.dtypes.to_e8m0``) on the float32 bit pattern."""
    bits = lax.bitcast_convert_type(x, jnp.uint32)
    exponent = (bits >> 23) & 0xFF
    special = exponent == 0xFF
    if round_mode == "nearest":
        rest = ((bits & 0x200000) > 0) | ((bits & 0x1FFFFF) > 0) | (exponent > 0)
        up = ((bits & 0x400000) > 0) & rest & ~special
    elif round_mode == "up":
        up = ((bits & 0x7FFFFF) > 0) & ~special
    else:
        up = jnp.zeros(bits.shape, bool)
    if saturate:
        up = up & (exponent != 0xFE)
    out = jnp.where(special, jnp.uint32(0xFF), exponent + up.astype(jnp.uint32)).astype(jnp.uint8)
    return lax.bitcast_convert_type(out, target)
