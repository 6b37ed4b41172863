"""JAX lowering of ``det`` (``graphforge/ops/linalg_det.py``): ``jnp.linalg.det`` (LU); the storage
float types (float16, bfloat16) are lifted to float32, which XLA's LU needs."""
from __future__ import annotations

import jax.numpy as jnp

from .lower import lowers

__all__: list[str] = []


@lowers("det")
def _det(ctx, args, attrs):
    x = args[0]
    if x.dtype in (jnp.float16, jnp.bfloat16):
        return [jnp.linalg.det(x.astype(jnp.float32)).astype(x.dtype)]
    return [jnp.linalg.det(x)]
