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
