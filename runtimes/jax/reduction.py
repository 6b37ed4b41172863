"""JAX lowerings of the reduction ops (``graphforge/ops/reduction.py``)."""
from __future__ import annotations

import jax.numpy as jnp



from .lower import LOWERINGS, is_float, lowers, softmax_shift, upcast

__all__: list[str] = []


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
        if mean and not is_float(x):
            out = jnp.trunc(jnp.mean(x.astype(jnp.float64), axis=axes, keepdims=attrs["keepdims"]))
        else:
            out = fn(upcast(x), axis=axes, keepdims=attrs["keepdims"])
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
    x, axis = args[0], attrs["axis"]
    e = jnp.exp(softmax_shift(upcast(x), axis))
    return [(e / jnp.sum(e, axis=axis, keepdims=True)).astype(x.dtype)]


@lowers("log_softmax")
def _log_softmax(ctx, args, attrs):
    x, axis = args[0], attrs["axis"]
    d = softmax_shift(upcast(x), axis)
    return [(d - jnp.log(jnp.sum(jnp.exp(d), axis=axis, keepdims=True))).astype(x.dtype)]
