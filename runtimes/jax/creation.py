"""JAX lowerings of the creation ops (``graphforge/ops/creation.py``)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np



from .lower import lowers

__all__: list[str] = []


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
