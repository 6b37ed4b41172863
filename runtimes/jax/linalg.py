"""JAX lowerings of the linalg ops (``graphforge/ops/linalg.py``)."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from graphforge.ops.linalg import activation_op

from .lower import lowers

__all__: list[str] = []


# ---- linear algebra -------------------------------------------------------------------------------

@lowers("matmul")
def _matmul(ctx, args, attrs):
    a, b = args
    return [jnp.matmul(a, b, precision=ctx.precision).astype(ctx.dtype)]


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
    act = activation_op(attrs["activation"])
    if act is not None:
        op, act_attrs = act  # the activation op's own lowering: one activation table, in graphforge/ops
        (y,) = ctx.lower_as(op, [y], act_attrs)
    return [y.astype(ctx.dtype)]
