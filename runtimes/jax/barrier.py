"""JAX lowering of ``optimization_barrier`` (``graphforge/ops/barrier.py``)."""
from __future__ import annotations

from jax import lax

from .lower import lowers

__all__: list[str] = []


@lowers("optimization_barrier")
def _barrier(ctx, args, attrs):
    return list(lax.optimization_barrier(tuple(args)))
