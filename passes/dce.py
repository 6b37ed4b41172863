"""``dce``: remove nodes whose results are unused and ``const`` parameters nothing reads.

Graph outputs (including ``update:<buffer>`` state outputs) are always kept; trainable parameters
and buffers are part of the model's interface and are kept even when unused. Region bodies are
swept from their ``yield``: unused nodes inside a loop body go, but a region's results and arguments
(its interface with the owner) are never removed."""
from __future__ import annotations

from graphforge.ir.graph import YIELD, Graph

from .registry import register_pass

__all__ = ["dce"]


def _sweep(block, live: set[int], dead: list) -> None:
    add = live.add  # (plain loops, not generators: this visits every node of the graph)
    for node in reversed(block):
        if node.op == YIELD:  # a region's results are its interface: they stay
            for v in node.inputs:
                add(id(v))
            continue
        for o in node.outputs:
            if id(o) in live:
                break
        else:
            dead.append(node)  # with its regions, if it owns any
            continue
        for v in node.inputs:
            add(id(v))
        for region in node.regions:  # a live region op: its body is swept from its yield
            _sweep(region, live, dead)


@register_pass("dce", preserves=("typed",), idempotent=True)  # one reverse sweep finds every dead node
def dce(graph: Graph) -> tuple[Graph, bool]:
    live = {id(o) for o in graph.outputs}
    dead: list = []
    _sweep(graph.body, live, dead)
    if dead:
        graph.remove_nodes(dead)
    unused = [name for name, v in graph.param_values.items() if v.kind == "const" and id(v) not in live]
    for name in unused:
        graph.remove_param(name)
    return graph, bool(dead or unused)
