"""JAX lowering of the random ops (``graphforge/ops/random.py``) and the counter-based hash they
share with dropout (uint32 arithmetic wraps mod 2**32)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .lower import lowers

__all__ = ["counter_hash"]


def counter_hash(shape, key):
    """The contract's hash of every flat index of ``shape`` under ``key`` (uint32, shaped)."""
    u = jnp.uint32
    n = int(np.prod(shape))
    i = lax.iota(u, max(n, 1))[:n].reshape(shape)
    h = i + key.astype(u) * u(0x9E3779B9)
    h = h ^ (h >> u(16))
    h = h * u(0x7FEB352D)
    h = h ^ (h >> u(15))
    h = h * u(0x846CA68B)
    return h ^ (h >> u(16))


@lowers("random_uniform")
def _random_uniform(ctx, args, attrs):
    bits = (counter_hash(ctx.shape, args[0]) >> jnp.uint32(9)).astype(jnp.float32)  # < 2**23: exact
    return [((bits + 0.5) * (2.0 ** -23)).astype(ctx.dtype)]                         # 24 bits: exact
