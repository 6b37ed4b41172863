"""Identities with a meaning for compilers and for autodiff: ``optimization_barrier`` and ``stop_gradient``.

``stop_gradient(x)`` is ``x`` forward and a constant for differentiation (``jax.lax.stop_gradient``,
PyTorch's ``x.detach()``): a GAN's generator output fed to the discriminator's update, a target
network's values, a straight-through estimator. The ``decompose`` pass also routes an op's
non-differentiable float inputs (``OpDef.nondiff_inputs``: ``roi_align``'s boxes) through it,
so a decomposed op keeps its gradient contract on every back end.

``optimization_barrier``: identity on several values that compilers may not look through.

Rematerialisation (:mod:`graphforge.passes.remat`) recomputes forward values in the backward pass.
A compiler that sees the recomputation as a copy of the forward computation merges the two again
(graphforge's ``cse``, XLA's CSE) and the memory saving is gone; routing the recomputation's inputs
through a barrier — together with the backward value it must wait for — keeps it a separate
computation that runs when the backward pass reaches it (``jax.lax.optimization_barrier``, which
``jax.checkpoint`` uses the same way). Values pass through unchanged, gradients too.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import TensorType
from ..trace.tensor import apply
from .registry import OpDef, Sample, register_op

__all__ = ["optimization_barrier", "stop_gradient"]


def _vjp(inputs, outputs, cotangents, attrs):
    return list(cotangents)


def _identity_rule(ts, attrs):
    return list(ts)


def _identity_ref(xs, attrs, env=None):
    return [np.asarray(x) for x in xs]


register_op(OpDef(
    name="optimization_barrier", family="barrier", num_inputs=(1, None),
    type_rule=_identity_rule, reference=_identity_ref,
    flops=lambda ins, outs, attrs: 0, vjp=_vjp,
    doc="identity on its inputs that compilers may not merge, hoist or look through",
    samples=[Sample([TensorType((3, 4), "float32")]),
             Sample([TensorType(("batch", 4), "float32"), TensorType((4,), "float64")], bind={"batch": 2}),
             Sample([TensorType((5,), "int64"), TensorType((2, 2), "float32")], domain=["int:-9:9", "any"],
                    grad=False)],
))


def optimization_barrier(*xs):
    """The values ``xs`` unchanged, as one unit no compiler pass merges or moves across."""
    out = apply("optimization_barrier", *xs)
    return out if isinstance(out, tuple) else (out,)


register_op(OpDef(
    name="stop_gradient", family="barrier", num_inputs=(1, 1), type_rule=_identity_rule, reference=_identity_ref,
    flops=lambda ins, outs, attrs: 0, vjp=lambda inputs, outputs, cotangents, attrs: [None],
    nondiff_inputs=(0,),
    doc="its input unchanged; a constant for differentiation (no gradient flows through it)",
    samples=[Sample([TensorType((3, 4), "float32")]),
             Sample([TensorType(("batch", 5), "float64")], bind={"batch": 2}),
             Sample([TensorType((4,), "int64")], domain=["int:-9:9"])],
))


def stop_gradient(x):
    """``x`` unchanged, but a constant for ``gf.grad`` and ``jax.grad`` alike (``jax.lax.stop_gradient``,
    ``tensor.detach()`` in PyTorch): no gradient flows back through it."""
    return apply("stop_gradient", x)
