"""``fuse``: run the declarative fusion rules of :mod:`graphforge.passes.fusion`.

Nodes are visited consumers-first (reverse topological order), so the largest pattern rooted at a
node wins over a smaller one inside it; sweeps repeat until no rule fires (at most
:data:`MAX_SWEEPS`), so a rule can build on another's result (``softmax`` → ``attention``,
``linear`` → ``linear`` with an activation). Each rewrite builds its replacement with graphforge ops
under the merged provenance of the nodes it absorbs, redirects the root's uses and erases what
became dead. The pass is linear in the graph size per sweep."""
from __future__ import annotations

from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph
from graphforge.trace.tensor import Tensor

from .manager import register_pass
from .rewrite import Rewriter, RewriteRefused, erase_dead, output_ids, replace_value

__all__ = ["fuse", "MAX_SWEEPS", "last_counts"]

MAX_SWEEPS = 8
_LAST: dict[str, int] = {}


def last_counts() -> dict[str, int]:
    """Matches per rule in the most recent ``fuse`` run."""
    return dict(_LAST)


def _values(result):
    if isinstance(result, (list, tuple)):
        return [r.value if isinstance(r, Tensor) else r for r in result]
    return [result.value if isinstance(result, Tensor) else result]


@register_pass("fuse")
def fuse(graph: Graph, rules=None) -> tuple[Graph, bool]:
    from . import fusion

    rules = [r for r in (fusion.RULES if rules is None else rules) if r.available]
    by_op: dict[str, list] = {}
    for rule in rules:
        for op in rule.root_ops():
            by_op.setdefault(op, []).append(rule)
    outs = output_ids(graph)
    rw = Rewriter(graph)
    _LAST.clear()
    changed = False
    for _ in range(MAX_SWEEPS):
        dead: dict[int, object] = {}
        fired = False
        position = {id(n): i for i, n in enumerate(graph.nodes)}
        placement: dict[int, list] = {}
        for node in reversed(list(graph.nodes)):
            if id(node) in dead:
                continue
            for rule in by_op.get(node.op, ()):
                m = rule.find(node, graph, outs, dead)
                if m is None:
                    continue
                absorbed = sorted([node] + [n for n in m.nodes if n is not node],
                                  key=lambda n: position.get(id(n), len(position)))
                mark = len(graph.nodes)
                try:
                    with rw.at(absorbed):
                        new = _values(rule.build(m, rw))
                        if len(new) != len(node.outputs) or any(
                                a.type != b.type for a, b in zip(new, node.outputs)):
                            raise GraphforgeError(
                                f"rule {rule.name} built {', '.join(str(v.type) for v in new)} for "
                                f"{', '.join(str(o.type) for o in node.outputs)}")
                except RewriteRefused:
                    continue
                if not all(replace_value(graph, old, v, outs) for old, v in zip(node.outputs, new)):
                    continue
                # The replacement takes the root's place in the order (it reads only what the
                # absorbed nodes read, all of which come before the root).
                placement.setdefault(id(node), []).extend(graph.nodes[mark:])
                del graph.nodes[mark:]
                erase_dead(graph, absorbed, outs, dead)
                rule.matches += 1
                _LAST[rule.name] = _LAST.get(rule.name, 0) + 1
                fired = changed = True
                break
        if placement:
            order = []
            for n in graph.nodes:
                order.extend(placement.get(id(n), ()))
                order.append(n)
            graph.nodes = order
        if dead:
            graph.remove_nodes(dead.values())
        if not fired:
            break
        graph.toposort()
    return graph, changed
