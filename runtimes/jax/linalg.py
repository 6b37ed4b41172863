"""JAX lowerings of the linalg ops (``graphforge/ops/linalg.py``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax



from .lower import const_like, lowers

__all__: list[str] = []


# ---- linear algebra -------------------------------------------------------------------------------

@lowers("matmul")
def _matmul(ctx, args, attrs):
    a, b = args
    return [jnp.matmul(a, b, precision=ctx.precision).astype(ctx.dtype)]


_ACT = {
    "none": lambda y: y, "relu": lambda y: jnp.maximum(y, const_like(0, y)),
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
