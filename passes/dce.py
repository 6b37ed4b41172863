"""``dce``: remove nodes whose results are unused and ``const`` parameters nothing reads.

Graph outputs (including ``update:<buffer>`` state outputs) are always kept; trainable parameters
and buffers are part of the model's interface and are kept even when unused."""
from __future__ import annotations

from graphforge.ir.graph import Graph

from .registry import register_pass

__all__ = ["dce"]


@register_pass("dce", preserves=("typed",))
def dce(graph: Graph) -> tuple[Graph, bool]:
    live = {id(o) for o in graph.outputs}
    dead = []
    for node in reversed(graph.nodes):
        if any(id(o) in live for o in node.outputs):
            live.update(id(v) for v in node.inputs)
        else:
            dead.append(node)
    if dead:
        graph.remove_nodes(dead)
    unused = [name for name, v in graph.param_values.items() if v.kind == "const" and id(v) not in live]
    for name in unused:
        graph.remove_param(name)
    return graph, bool(dead or unused)
