"""Shape ops: a ``reshape``/``flatten``/``squeeze``/``unsqueeze``/``broadcast_to``/``cast`` whose
result type equals its input's is its input; a ``reshape`` of a chain of
``reshape``/``flatten``/``squeeze``/``unsqueeze`` reads the chain's start instead (as far down as
the reshape's type rule still gives the same result), and disappears if that start already has the
result's type."""
from __future__ import annotations

from graphforge.errors import GraphforgeError
from graphforge.ops import registry

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


RULES = [
    Rule("noop_shape_op", Op(NOOP_WHEN_SAME_TYPE, X), _operand,
         check=lambda m: m.root.outputs[0].type == m["x"].type, internal_uses_only=False, provenance="root",
         doc=__doc__),
    Rule("reshape_chain", Op("reshape", Op(RESHAPE_LIKE, X)), _collapse, internal_uses_only=False,
         provenance="root", doc=__doc__),
]
