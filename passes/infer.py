"""``infer``: re-run every node's type rule, check the declared result types, fill default attributes.

Nodes whose type stamp still holds (built by a Builder, or checked by an earlier ``infer``, with
nothing changed since: same OpDef, equal input/result types and attributes) are skipped.

A node whose declared types disagree with its op's type rule raises :class:`PassError` naming the
node's module scope, op and source location. Attributes left out (e.g. in hand-written IR) are
filled with their schema defaults so that later passes (CSE, patterns) see one spelling."""
from __future__ import annotations

from graphforge.errors import GraphforgeError, PassError
from graphforge.ir.graph import YIELD, Graph
from graphforge.ops import registry

from .registry import register_pass

__all__ = ["infer"]


@register_pass("infer", provides=("typed",))
def infer(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    for node in graph.walk():  # region bodies too
        if node.op == YIELD:
            continue
        # A node built by a Builder (tracing, passes) had its rule run on exactly these types and
        # attributes (rule 3); unless something changed since, re-running it cannot disagree.
        if node.type_stamp is not None and registry.stamp_holds(node):
            continue
        try:
            opdef = registry.get_op(node.op)
            attrs = registry.check_attrs(opdef, node.attrs)
            types = registry.infer_types(opdef, [v.type for v in node.inputs], attrs,
                                         regions=node.regions if (node.regions or opdef.regions) else None)
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
        node.type_stamp = registry.type_stamp(opdef, [v.type for v in node.inputs], node.attrs, declared)
    return graph, changed
