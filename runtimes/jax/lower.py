"""The JAX lowering table and what every lowering shares: ``LOWERINGS``, ``@lowers``, :class:`LowerCtx`.

A lowering is ``fn(ctx, args, attrs) -> list[jax.Array]`` where ``ctx`` is a :class:`LowerCtx`
(the node, its concrete output shapes/dtypes with symbolic dims resolved from the input shapes).
Register one with ``@lowers("relu")`` in the module named like the op's family in ``graphforge/ops``
(``elementwise.py``, ``reduction.py``, ``linalg.py``, ``shape_ops.py``, ``creation.py``, ``nn_ops.py``).
Lowerings target what XLA handles well: ``lax.dot_general`` with batch/contracting dims (no explicit
transposes for ``linear``), ``lax.conv_general_dilated``, ``lax.reduce_window`` for pools,
and :func:`softmax_shift` for softmax, log-softmax and attention
(not ``jax.nn.softmax``/``dot_product_attention``: see its docstring for the XLA behaviour it guards).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from graphforge import dtypes as _dt

from graphforge.errors import BackendError, GraphforgeError
from graphforge.ops.registry import lookup_op

from .._registry import lowering_table

__all__ = ["lowers", "LOWERINGS", "LowerCtx", "has_lowering", "apply_lowering", "is_float", "upcast", "const_like", "softmax_shift"]

LOWERINGS, lowers, has_lowering = lowering_table()


class _Within:
    """A stand-in node for an op lowered inside another node's lowering (``LowerCtx.lower_as``)."""

    def __init__(self, op: str, attrs: dict, outer):
        self.op, self.attrs = op, dict(attrs)
        self.scope, self.loc = outer.scope, outer.loc
        self.inputs, self.outputs = outer.outputs[:1], outer.outputs[:1]


class LowerCtx:
    """What a lowering may know about its node: resolved output shapes and dtypes."""

    def __init__(self, node, out_shapes, precision, env=None):
        self.node = node
        self.out_shapes = out_shapes
        self.out_dtypes = [_dt.to_numpy_dtype(v.type.dtype) for v in node.outputs]
        self.precision = precision
        self.env = env if env is not None else {}  # symbol bindings (region ops lower their bodies with them)

    def lower_as(self, op: str, args, attrs: dict):
        """Lower ``op`` (registry name) on ``args`` with its own lowering, for a result of this node's
        first result type: how ``linear`` applies its fused activation without a second copy of the
        activation's lowering."""
        return LOWERINGS[op](LowerCtx(_Within(op, attrs, self.node), self.out_shapes[:1], self.precision, self.env),
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
    """Half and float8 types compute in float32 (like the reference)."""
    if x.dtype in (jnp.float16, jnp.bfloat16) or (x.dtype.itemsize == 1 and is_float(x)):  # float8 too
        return x.astype(jnp.float32)
    return x


def const_like(value, like):
    return jnp.asarray(value, dtype=like.dtype)


def softmax_shift(x, axis):
    """``x - max(x)`` along ``axis``, exactly 0 where ``x`` is the maximum (NaN there if the max is ±inf/NaN).

    Why not plain ``x - max(x)``: XLA duplicates a cheap elementwise producer of ``x`` (a mean's
    ``* 1/n``, attention's ``* scale``) into both the max-reduction fusion and the ``exp(x - max)``
    fusion, and the code generator contracts the multiply and the subtraction there into one fused
    multiply-add. The max is then taken over rounded products while the subtraction sees unrounded
    ones, so ``x - max`` is off by up to half an ulp of ``x`` (±512 at 1e10): every ``exp`` of a row
    underflows to 0 (0/0) or overflows (inf/inf) and the whole row is NaN. A comparison is never
    contracted, so ``x == max`` still sees the rounded value and pins the maximum to exactly 0; every
    other entry is then at most 0 and the row's sum of exps lies in [1, n]. An all -inf row and a
    +inf entry keep PyTorch's NaN (-inf - -inf and inf - inf are undefined)."""
    m = jnp.max(x, axis=axis, keepdims=True, initial=-jnp.inf)  # (initial: an empty axis is fine)
    at_max = jnp.where(jnp.isfinite(m), jnp.zeros_like(m), jnp.full_like(m, jnp.nan))
    return jnp.where(x == m, at_max, x - m)


def _nondiff_inputs(op: str) -> tuple[int, ...]:
    opdef = lookup_op(op)  # (not cached: a user may re-register an op)
    return opdef.nondiff_inputs if opdef is not None else ()


def apply_lowering(node, ctx: "LowerCtx", args: list, attrs: dict) -> list:
    """Run ``node``'s JAX lowering on ``args``; a failure that is not already typed becomes a
    BackendError naming the node (op, module scope, user line) — top-level graphs and region bodies alike."""
    nondiff = _nondiff_inputs(node.op)
    if nondiff:
        # A float input the op declares non-differentiable (RoI boxes, a pooling gradient's routing
        # input, a quantization scale) gets no cotangent from gf.grad; stop it here too, so that
        # jax.grad of a lowered graph and gf.grad's gradient graph are the same function.
        args = [jax.lax.stop_gradient(a) if i in nondiff and hasattr(a, "dtype")
                and jnp.issubdtype(a.dtype, jnp.inexact) else a for i, a in enumerate(args)]
    try:
        return LOWERINGS[node.op](ctx, args, attrs)
    except GraphforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the node that failed
        raise BackendError(f"JAX lowering of {node.op} failed: {type(exc).__name__}: {exc}",
                           scope=node.scope, op=node.op, loc=node.loc) from exc
