"""``infer``: re-run every node's type rule, check the declared result types, fill default attributes.

A node whose declared types disagree with its op's type rule raises :class:`PassError` naming the
node's module scope, op and source location. Attributes left out (e.g. in hand-written IR) are
filled with their schema defaults so that later passes (CSE, patterns) see one spelling."""
from __future__ import annotations

from graphforge.errors import GraphforgeError, PassError
from graphforge.ir.graph import Graph
from graphforge.ops import registry

from .manager import register_pass

__all__ = ["infer"]


@register_pass("infer")
def infer(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    for node in graph.nodes:
        try:
            opdef = registry.get_op(node.op)
            attrs = registry.check_attrs(opdef, node.attrs)
            types = registry.infer_types(opdef, [v.type for v in node.inputs], attrs)
        except GraphforgeError as exc:
            raise PassError(f"type check failed: {exc.detail}", scope=node.scope or None, op=node.op,
                            loc=node.loc or None) from exc
        declared = [o.type for o in node.outputs]
        if types != declared:
            raise PassError(f"declared result types {', '.join(map(str, declared))} but the type rule gives "
                            f"{', '.join(map(str, types))}", scope=node.scope or None, op=node.op,
                            loc=node.loc or None)
        if set(attrs) != set(node.attrs):
            node.attrs = attrs
            changed = True
    return graph, changed
