"""The JAX lowering table and what every lowering shares: ``LOWERINGS``, ``@lowers``, :class:`LowerCtx`.

A lowering is ``fn(ctx, args, attrs) -> list[jax.Array]`` where ``ctx`` is a :class:`LowerCtx`
(the node, its concrete output shapes/dtypes with symbolic dims resolved from the input shapes).
Register one with ``@lowers("relu")`` in the module named like the op's family in ``graphforge/ops``
(``elementwise.py``, ``reduction.py``, ``linalg.py``, ``shape_ops.py``, ``creation.py``, ``nn_ops.py``).
Lowerings target what XLA handles well: ``lax.dot_general`` with batch/contracting dims (no explicit
transposes for ``linear``), ``lax.conv_general_dilated``, ``lax.reduce_window`` for pools,
``jax.nn.dot_product_attention`` for attention.
"""
from __future__ import annotations

import jax.numpy as jnp

from graphforge import dtypes as _dt

from .._registry import lowering_table

__all__ = ["lowers", "LOWERINGS", "LowerCtx", "has_lowering", "is_float", "upcast", "const_like"]

LOWERINGS, lowers, has_lowering = lowering_table()
_HALF = ("float16", "bfloat16")


class LowerCtx:
    """What a lowering may know about its node: resolved output shapes and dtypes."""

    def __init__(self, node, out_shapes, precision):
        self.node = node
        self.out_shapes = out_shapes
        self.out_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in node.outputs]
        self.precision = precision

    @property
    def shape(self):
        return self.out_shapes[0]

    @property
    def dtype(self):
        return self.out_dtypes[0]


def is_float(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating)


def upcast(x):
    """Half types compute in float32 (like the reference)."""
    return x.astype(jnp.float32) if x.dtype in (jnp.float16, jnp.bfloat16) else x


def const_like(value, like):
    return jnp.asarray(value, dtype=like.dtype)
