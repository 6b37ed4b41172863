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


class _Within:
    """A stand-in node for an op lowered inside another node's lowering (``LowerCtx.lower_as``)."""

    def __init__(self, op: str, attrs: dict, outer):
        self.op, self.attrs = op, dict(attrs)
        self.scope, self.loc = outer.scope, outer.loc
        self.inputs, self.outputs = outer.outputs[:1], outer.outputs[:1]


class LowerCtx:
    """What a lowering may know about its node: resolved output shapes and dtypes."""

    def __init__(self, node, out_shapes, precision):
        self.node = node
        self.out_shapes = out_shapes
        self.out_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in node.outputs]
        self.precision = precision

    def lower_as(self, op: str, args, attrs: dict):
        """Lower ``op`` (registry name) on ``args`` with its own lowering, for a result of this node's
        first result type: how ``linear`` applies its fused activation without a second copy of the
        activation's lowering."""
        return LOWERINGS[op](LowerCtx(_Within(op, attrs, self.node), self.out_shapes[:1], self.precision),
                             list(args), attrs)

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
