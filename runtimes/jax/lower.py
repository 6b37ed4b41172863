"""The JAX lowering table: one function per graphforge op, keyed by op name.

A lowering is ``fn(ctx, args, attrs) -> list[jax.Array]`` where ``ctx`` is a :class:`LowerCtx`
(the node, its concrete output shapes/dtypes with symbolic dims resolved from the input shapes).
Register one with ``@lowers("relu")``. Lowerings target what XLA handles well: ``lax.dot_general``
with batch/contracting dims (no explicit transposes for ``linear``), ``lax.conv_general_dilated``,
``lax.reduce_window`` for pools, ``jax.nn.dot_product_attention`` for attention.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from graphforge import dtypes as _dt

from .._registry import lowering_table

__all__ = ["lowers", "LOWERINGS", "LowerCtx", "has_lowering"]

LOWERINGS, lowers, has_lowering = lowering_table()
_HALF = ("float16", "bfloat16")


class LowerCtx:
    """What a lowering may know about its node: resolved output shapes and dtypes."""

    def __init__(self, node, out_shapes, precision):
        self.node = node
        self.out_shapes = out_shapes
        self.out_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in node.outputs]
        self.precision = precision

    @property
    def shape(self):
        return self.out_shapes[0]

    @property
    def dtype(self):
        return self.out_dtypes[0]


def _is_float(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating)


def _up(x):
    """Half types compute in float32 (like the reference)."""
    return x.astype(jnp.float32) if x.dtype in (jnp.float16, jnp.bfloat16) else x


def _c(value, like):
    return jnp.asarray(value, dtype=like.dtype)


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
    "relu": lambda x, a: jnp.maximum(x, _c(0, x)),
    "leaky_relu": lambda x, a: jnp.where(x >= 0, x, x * _c(a["alpha"], x)),
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
        return [fn(_up(x), attrs).astype(x.dtype)]
    return lower


for _n, _f in _UNARY.items():
    LOWERINGS[_n] = _unary(_f)


# ---- elementwise binary -------------------------------------------------------------------------

def _int_div(a, b):
    zero = b == 0
    q = lax.div(a, jnp.where(zero, jnp.ones_like(b), b))  # lax.div truncates toward zero
    return jnp.where(zero, jnp.zeros_like(q), q)


def _div(a, b):
    if _is_float(a):
        return (_up(a) / _up(b)).astype(a.dtype)
    return _int_div(a, b)


def _bcast(args):
    a, b = args
    return jnp.asarray(a), jnp.asarray(b)


_BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": _div, "pow": lambda a, b: (jnp.power(_up(a), _up(b))).astype(a.dtype),
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
    target = ctx.dtype
    if target == np.bool_:
        return [x != 0]
    if np.issubdtype(target, np.integer) and _is_float(x):
        x = jnp.trunc(x)
    return [lax.convert_element_type(x, target)]


@lowers("clip")
def _clip(ctx, args, attrs):
    x = args[0]
    if attrs.get("min") is not None:
        x = jnp.maximum(x, _c(attrs["min"], x))
    if attrs.get("max") is not None:
        x = jnp.minimum(x, _c(attrs["max"], x))
    return [x]


# ---- reductions -----------------------------------------------------------------------------------

def _axes(attrs, rank, key="axes"):
    axes = attrs.get(key)
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = [axes]
    return tuple(a % rank if rank else 0 for a in axes)


def _reduce(fn, mean=False):
    def lower(ctx, args, attrs):
        x = args[0]
        axes = _axes(attrs, x.ndim)
        if mean and not _is_float(x):
            out = jnp.trunc(jnp.mean(x.astype(jnp.float64), axis=axes, keepdims=attrs["keepdims"]))
        else:
            out = fn(_up(x), axis=axes, keepdims=attrs["keepdims"])
        return [out.astype(x.dtype)]
    return lower


LOWERINGS["sum"] = _reduce(jnp.sum)
LOWERINGS["mean"] = _reduce(jnp.mean, mean=True)
LOWERINGS["max"] = _reduce(jnp.max)
LOWERINGS["min"] = _reduce(jnp.min)
LOWERINGS["prod"] = _reduce(jnp.prod)


@lowers("argmax", "argmin")
def _argmax(ctx, args, attrs):
    fn = jnp.argmax if ctx.node.op == "argmax" else jnp.argmin
    return [fn(args[0], axis=attrs["axis"], keepdims=attrs["keepdims"]).astype(ctx.dtype)]


@lowers("softmax")
def _softmax(ctx, args, attrs):
    x = args[0]
    return [jax.nn.softmax(_up(x), axis=attrs["axis"]).astype(x.dtype)]


@lowers("log_softmax")
def _log_softmax(ctx, args, attrs):
    x = args[0]
    return [jax.nn.log_softmax(_up(x), axis=attrs["axis"]).astype(x.dtype)]


# ---- linear algebra -------------------------------------------------------------------------------

@lowers("matmul")
def _matmul(ctx, args, attrs):
    a, b = args
    return [jnp.matmul(a, b, precision=ctx.precision).astype(ctx.dtype)]


_ACT = {
    "none": lambda y: y, "relu": lambda y: jnp.maximum(y, _c(0, y)),
    "gelu": lambda y: jax.nn.gelu(y, approximate=False), "gelu_tanh": lambda y: jax.nn.gelu(y, approximate=True),
    "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "silu": lambda y: y * jax.nn.sigmoid(y),
}


@lowers("linear")
def _linear(ctx, args, attrs):
    x, w = args[0], args[1]
    if attrs.get("transpose_b", True):
        # contract x's last dim with w's dim 1: XLA picks the layout, no transpose materialised
        y = lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())), precision=ctx.precision)
    else:
        y = lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision=ctx.precision)
    if len(args) > 2:
        y = y + args[2]
    return [_ACT[attrs.get("activation", "none")](y).astype(ctx.dtype)]


# ---- shape ops ------------------------------------------------------------------------------------

@lowers("reshape", "flatten", "squeeze", "unsqueeze")
def _reshape(ctx, args, attrs):
    return [jnp.reshape(args[0], ctx.shape)]


@lowers("broadcast_to")
def _broadcast_to(ctx, args, attrs):
    return [jnp.broadcast_to(args[0], ctx.shape)]


@lowers("transpose")
def _transpose(ctx, args, attrs):
    perm = attrs.get("perm")
    return [jnp.transpose(args[0], None if perm is None else tuple(perm))]


@lowers("concat")
def _concat(ctx, args, attrs):
    return [jnp.concatenate(args, axis=attrs["axis"])]


@lowers("split")
def _split(ctx, args, attrs):
    x = args[0]
    axis = attrs["axis"] % x.ndim
    outs, start = [], 0
    for shape in ctx.out_shapes:
        n = shape[axis]
        outs.append(lax.slice_in_dim(x, start, start + n, axis=axis))
        start += n
    return outs


@lowers("slice")
def _slice(ctx, args, attrs):
    x = args[0]
    axes = attrs.get("axes") or list(range(len(attrs["starts"])))
    steps = attrs.get("steps") or [1] * len(axes)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, attrs["starts"], attrs["ends"], steps):
        index[a % x.ndim] = slice(s, e, st)
    return [x[tuple(index)]]


@lowers("pad")
def _pad(ctx, args, attrs):
    x = args[0]
    p = attrs["pads"]
    pairs = [(p[2 * i], p[2 * i + 1]) for i in range(x.ndim)]
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return [jnp.pad(x, pairs, mode="constant", constant_values=_c(attrs.get("value", 0.0), x))]
    return [jnp.pad(x, pairs, mode="edge" if mode == "edge" else "reflect")]


def _wrap_idx(idx, n):
    idx = idx.astype(jnp.int32) if idx.dtype != jnp.int64 else idx
    return jnp.where(idx < 0, idx + n, idx)


@lowers("gather")
def _gather(ctx, args, attrs):
    x, idx = args
    axis = attrs["axis"] % x.ndim
    return [jnp.take(x, _wrap_idx(idx, x.shape[axis]), axis=axis, mode="clip")]


@lowers("scatter_add")
def _scatter_add(ctx, args, attrs):
    base, idx, upd = args
    axis = attrs["axis"] % base.ndim
    k = idx.ndim
    b = jnp.moveaxis(base, axis, 0)
    perm = list(range(axis, axis + k)) + list(range(axis)) + list(range(axis + k, upd.ndim))
    u = jnp.transpose(upd, perm)
    out = b.at[_wrap_idx(idx, base.shape[axis])].add(u)
    return [jnp.moveaxis(out, 0, axis)]


@lowers("dim_size")
def _dim_size(ctx, args, attrs):
    n = 1
    for a in attrs["axes"]:
        n *= args[0].shape[a]
    return [jnp.asarray(n, dtype=ctx.dtype)]


# ---- creation -------------------------------------------------------------------------------------

@lowers("constant")
def _constant(ctx, args, attrs):
    return [jnp.asarray(np.asarray(attrs["value"]))]


@lowers("arange")
def _arange(ctx, args, attrs):
    return [jnp.arange(attrs["start"], attrs["stop"], attrs["step"]).astype(ctx.dtype)]


@lowers("dim_value")
def _dim_value(ctx, args, attrs):
    return [jnp.asarray(attrs["dim"], dtype=ctx.dtype)]  # resolved from the input shapes (lower())


@lowers("one_hot")
def _one_hot(ctx, args, attrs):
    idx = args[0]
    return [(idx[..., None] == jnp.arange(attrs["num_classes"], dtype=idx.dtype)).astype(ctx.dtype)]
