"""Shape ops: a ``reshape``/``flatten``/``squeeze``/``unsqueeze``/``broadcast_to``/``cast`` whose
result type equals its input's is its input; a ``reshape`` of a chain of
``reshape``/``flatten``/``squeeze``/``unsqueeze`` reads the chain's start instead (as far down as
the reshape's type rule still gives the same result), and disappears if that start already has the
result's type.

A reshape that only drops the size-1 axes a reduction kept (``flatten(global_avg_pool2d(x))``, the
classifier head of every ResNet; ``squeeze(mean(x, axes, keepdims=True), axes)``) is the reduction
without ``keepdims``: one node instead of two (one ONNX ``ReduceMean`` with ``keepdims=0``, as
torch.onnx writes the head). Only when the reshape is the reduction's one user (no work repeated)."""
from __future__ import annotations

from graphforge.errors import GraphforgeError
from graphforge.ops import registry
from graphforge.trace.tensor import apply

from ..pattern import Op, Rule, Var

__all__ = ["RULES"]

X = Var("x")
NOOP_WHEN_SAME_TYPE = ("reshape", "flatten", "squeeze", "unsqueeze", "broadcast_to", "cast")
RESHAPE_LIKE = ("reshape", "flatten", "squeeze", "unsqueeze")


def _operand(m, rw):
    return m["x"]


def _gives_same_type(node, value) -> bool:
    """Whether ``node``'s op, reading ``value`` instead, still gives its result type."""
    try:
        opdef = registry.get_op(node.op)
        types = registry.infer_types(opdef, [value.type], registry.check_attrs(opdef, node.attrs))
    except GraphforgeError:
        return False
    return types == [o.type for o in node.outputs]


def _collapse(m, rw):
    root = m.root
    source = root.inputs[0]
    while source.producer is not None and source.producer.op in RESHAPE_LIKE and \
            len(source.producer.outputs) == 1 and _gives_same_type(root, source.producer.inputs[0]):
        source = source.producer.inputs[0]
    if source is root.inputs[0]:
        return root.outputs  # nothing to collapse: no change
    if source.type == root.outputs[0].type:
        return source
    return rw.clone(root, inputs=[source])


_KEEPDIMS_REDUCTIONS = ("mean", "sum", "max", "min", "prod")


def _reduced_axes(node) -> list[int] | None:
    """The axes ``node`` reduces with their size-1 dims kept (None: it keeps none)."""
    rank = node.inputs[0].type.rank
    if node.op == "global_avg_pool2d":
        return list(range(2, rank))
    if node.attrs.get("keepdims") is not True:
        return None
    axes = node.attrs.get("axes")
    if axes is None:
        return list(range(rank))
    if not all(isinstance(a, int) for a in axes):
        return None
    return sorted(a % rank for a in axes)


def _drops_only_the_kept_axes(m) -> bool:
    red, root = m["r"], m.root
    axes = _reduced_axes(red)
    if axes is None or len(root.outputs) != 1:
        return False
    shape = red.inputs[0].type.shape
    return tuple(root.outputs[0].type.shape) == tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_without_keepdims(m, rw):
    red = m["r"]
    axes = _reduced_axes(red)
    op = "mean" if red.op == "global_avg_pool2d" else red.op
    return apply(op, rw.t(red.inputs[0]), axes=axes, keepdims=False)


RULES = [
    Rule("noop_shape_op", Op(NOOP_WHEN_SAME_TYPE, X), _operand,
         check=lambda m: m.root.outputs[0].type == m["x"].type, internal_uses_only=False, provenance="root",
         doc=__doc__),
    Rule("reshape_chain", Op("reshape", Op(RESHAPE_LIKE, X)), _collapse, internal_uses_only=False,
         provenance="root", doc=__doc__),
    Rule("reduce_then_drop_kept_axes", Op(RESHAPE_LIKE, Op(_KEEPDIMS_REDUCTIONS + ("global_avg_pool2d",), X, name="r")),
         _reduce_without_keepdims, check=_drops_only_the_kept_axes, internal_uses_only=True, provenance="root",
         doc=__doc__),
]
