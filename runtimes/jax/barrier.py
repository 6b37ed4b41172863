"""JAX lowerings of ``optimization_barrier`` and ``stop_gradient`` (``graphforge/ops/barrier.py``)."""
from __future__ import annotations

from jax import lax

from .lower import lowers

__all__: list[str] = []


@lowers("optimization_barrier")
def _barrier(ctx, args, attrs):
    return list(lax.optimization_barrier(tuple(args)))


@lowers("stop_gradient")
def _stop_gradient(ctx, args, attrs):
    return [lax.stop_gradient(args[0])]
