"""A VJP rule derived from an op's decomposition: differentiate the primitives it stands for.

Sampling ops (``grid_sample``, ``roi_align``, ``deform_conv``, ...) are composites whose gradient is
exactly the gradient of their decomposition (gathers, floors, weights): writing it by hand again
would be a second spelling of the same maths. :func:`vjp_from_decomposition` traces the decomposition
as a region on the node's inputs and runs the region reverse sweep (``_region_ad.block_vjp``) on it,
so the gradient is a graph of primitives like every other VJP and is itself differentiable.
"""
from __future__ import annotations

from typing import Callable

from ..trace.tensor import Tensor
from ._region_ad import block_vjp, trace_regions

__all__ = ["vjp_from_decomposition"]


def vjp_from_decomposition(decompose: Callable) -> Callable:
    """A VJP rule ``(inputs, outputs, cotangents, attrs) -> [cotangent | None]`` for the op whose
    ``decompose(inputs, attrs) -> [Tensor]`` is given (the forward is recomputed in the gradient graph)."""

    def vjp(inputs, outputs, cots, attrs):
        if all(c is None for c in cots):
            return [None] * len(inputs)
        builder = inputs[0].builder
        types = [t.value.type for t in inputs]

        def body(args):
            outs = decompose([Tensor(a, builder) for a in args], attrs)
            return [o.value for o in outs]

        with builder.activate():  # decompositions may build constants through the functional API
            (block,), captured = trace_regions(builder, [types], [body], capture_at=len(types))
            args = [t.value for t in inputs] + list(captured)
            res = block_vjp(builder, block, args, [None if c is None else c.value for c in cots])
        return [None if r is None else Tensor(r, builder) for r in res[:len(inputs)]]

    return vjp
