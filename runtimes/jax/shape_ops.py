"""JAX lowerings of the shape ops (``graphforge/ops/shape_ops.py``)."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax



from .lower import const_like, lowers

__all__ = ["wrap_index"]


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
        return [jnp.pad(x, pairs, mode="constant", constant_values=const_like(attrs.get("value", 0.0), x))]
    return [jnp.pad(x, pairs, mode="edge" if mode == "edge" else "reflect")]


def wrap_index(idx, n):
    """Indices made non-negative (gather and embedding wrap negative indices, like np.take)."""
    idx = idx.astype(jnp.int32) if idx.dtype != jnp.int64 else idx
    return jnp.where(idx < 0, idx + n, idx)


@lowers("gather")
def _gather(ctx, args, attrs):
    x, idx = args
    axis = attrs["axis"] % x.ndim
    return [jnp.take(x, wrap_index(idx, x.shape[axis]), axis=axis, mode="clip")]


@lowers("scatter_add")
def _scatter_add(ctx, args, attrs):
    base, idx, upd = args
    axis = attrs["axis"] % base.ndim
    k = idx.ndim
    b = jnp.moveaxis(base, axis, 0)
    perm = list(range(axis, axis + k)) + list(range(axis)) + list(range(axis + k, upd.ndim))
    u = jnp.transpose(upd, perm)
    out = b.at[wrap_index(idx, base.shape[axis])].add(u)
    return [jnp.moveaxis(out, 0, axis)]


@lowers("dim_size")
def _dim_size(ctx, args, attrs):
    n = 1
    for a in attrs["axes"]:
        n *= args[0].shape[a]
    return [jnp.asarray(n, dtype=ctx.dtype)]
