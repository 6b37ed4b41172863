"""JAX lowerings of the selection ops (``graphforge/ops/selection.py``): ``topk`` is XLA's TopK
(``lax.top_k``, ties to the lower index) on the axis moved last; the smallest entries are the top
of ``-x`` (floats) or ``~x`` (integers, no overflow at the minimum)."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .lower import lowers

__all__: list[str] = []


@lowers("topk")
def _topk(ctx, args, attrs):
    x = args[0]
    axis = attrs["axis"] % x.ndim
    xm = jnp.moveaxis(x, axis, -1)
    key = xm
    if not attrs["largest"]:
        key = ~xm if jnp.issubdtype(x.dtype, jnp.integer) else -xm
    _, idx = lax.top_k(key, attrs["k"])
    values = jnp.take_along_axis(xm, idx, axis=-1)
    return [jnp.moveaxis(values, -1, axis), jnp.moveaxis(idx, -1, axis).astype(ctx.out_dtypes[1])]


# ---- data-dependent lengths (graphforge/ops/data_dependent.py) -------------------------------------
# These run eagerly (``run`` executes a graph holding them op by op, outside jax.jit): their result
# sizes come from the values. Under jax.jit ``lower`` refuses them unless the caller's binding holds
# the length (``ctx.shape`` known): then they pass it as ``size=`` and trace like any other op.


def _size(ctx, i, axis):
    shape = ctx.out_shapes[i]
    return None if shape is None else shape[axis]

@lowers("nonzero")
def _nonzero(ctx, args, attrs):
    x = args[0]
    return [jnp.stack(jnp.nonzero(x, size=_size(ctx, 0, 1))).reshape(x.ndim, -1).astype(jnp.int64)]


@lowers("compress")
def _compress(ctx, args, attrs):
    x, cond = args
    axis = attrs["axis"]
    keep = jnp.nonzero(cond, size=_size(ctx, 0, 0 if axis is None else axis % x.ndim))[0]
    if axis is None:
        return [jnp.take(x.reshape(-1), keep)]
    return [jnp.take(x, keep, axis=axis)]


@lowers("unique")
def _unique(ctx, args, attrs):
    x = args[0]
    axis = attrs["axis"]
    y, first, inverse, counts = jnp.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis,
                                           size=_size(ctx, 1, 0))
    inverse = inverse.reshape(-1)
    if not attrs["sorted"]:  # order of first occurrence
        order = jnp.argsort(first, stable=True)
        y = jnp.take(y, order, axis=0 if axis is None else axis)
        first, counts = first[order], counts[order]
        inverse = jnp.argsort(order)[inverse]
    return [y, first.astype(jnp.int64), inverse.astype(jnp.int64), counts.astype(jnp.int64)]
