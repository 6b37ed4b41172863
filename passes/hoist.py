"""``hoist``: loop-invariant code motion out of ``scan`` and ``while_loop`` bodies.

A node of a loop region is invariant when it computes only from the loop's consts (the region
arguments that stay the same every iteration) and from other invariant nodes or constants; it is not
random and owns no regions. Each invariant node that does work (not a lone ``constant``) is emitted
once before the loop with the loop's const operands in place of the region arguments; the region
reads the hoisted result through a new const argument instead (the capture rule stays explicit), and
the loop node is rebuilt with the extra const operand (and without the consts no region reads any
more). Innermost loops first, so a value invariant
in two nested loops moves out of both (the outer loop's pass moves what the inner one hoisted).
"""
from __future__ import annotations

from graphforge.ir.graph import YIELD, Graph, Node, Value
from graphforge.ops.registry import lookup_op
from graphforge.trace.builder import Builder

from .registry import register_pass

__all__ = ["hoist", "LOOP_OPS"]

# loop op -> which region arguments are the consts (the first num_consts of every region)
LOOP_OPS = ("scan", "while_loop")


def _loops_innermost_first(block) -> list[Node]:
    out = []
    for node in block:
        for region in node.regions:
            out.extend(_loops_innermost_first(region))
        if node.op in LOOP_OPS:
            out.append(node)
    return out


def _invariant_nodes(region, nc: int) -> list[Node]:
    invariant = {id(a) for a in region.arguments[:nc]}
    found = []
    for node in region:
        if node.op == YIELD or node.regions:
            continue
        opdef = lookup_op(node.op)
        if opdef is None or opdef.random:
            continue
        if all(id(v) in invariant for v in node.inputs):
            invariant.update(id(o) for o in node.outputs)
            found.append(node)
    return found


def _unused_consts(regions, nc: int) -> list[int]:
    return [j for j in range(nc) if not any(r.arguments[j].uses for r in regions)]


def _hoist_loop(graph: Graph, builder: Builder, loop: Node, stats: dict) -> Node | None:
    nc = loop.attrs.get("num_consts", 0)
    regions = loop.regions
    plans = []
    for k, region in enumerate(regions):
        nodes = _invariant_nodes(region, nc)
        # a lone constant is not worth an operand; it moves only with a node that reads it
        needed = {id(n) for n in nodes if n.op != "constant"}
        if not needed:
            continue
        plans.append((k, region, nodes))
    if not plans and not _unused_consts(regions, nc):
        return None
    new_consts: list[Value] = []  # outer values appended to the loop's consts
    rewires: list[tuple[int, Value, Value]] = []  # (region index, inner value, outer value)
    clones: list[Node] = []
    with builder.inserting_before(loop):
        for k, region, nodes in plans:
            outer = {id(a): v for a, v in zip(region.arguments[:nc], loop.inputs[:nc])}
            hoisted = {id(n) for n in nodes}
            for node in nodes:
                with builder.provenance(node.scope, node.loc):
                    outs = builder.emit(node.op, [outer[id(v)] for v in node.inputs], dict(node.attrs))
                outer.update((id(o), n) for o, n in zip(node.outputs, outs))
                clones.append(outs[0].producer)
                if node.op != "constant":
                    stats["hoisted"] = stats.get("hoisted", 0) + 1
            for node in nodes:
                if node.op == "constant":  # stays inside for the nodes that remain there
                    continue
                for o in node.outputs:
                    if any(id(user) not in hoisted for user, _ in o.uses):
                        rewires.append((k, o, outer[id(o)]))
    for clone in reversed(clones):  # constants cloned for nothing
        if clone.op == "constant" and not clone.outputs[0].uses:
            graph.erase(clone)
    # Every region gets one new const argument per hoisted value (unused where it is not read).
    for k, inner, outer_value in rewires:
        index = nc + len(new_consts)
        args = [r.add_argument(inner.type, index=index) for r in regions]
        new_consts.append(outer_value)
        for user, i in list(inner.uses):
            if user.block is regions[k]:
                user.set_input(i, args[k])
    # The invariant nodes are now unused inside: remove them (consumers first).
    for k, region, nodes in plans:
        for node in reversed(nodes):
            if node.block is region and not any(o.uses for o in node.outputs):
                region.erase(node)
    consts = list(loop.inputs[:nc]) + new_consts
    # Consts no region reads any more (what the hoisted nodes alone read) are dropped.
    unused = set(_unused_consts(regions, len(consts)))
    for r in regions:
        r.arguments[:] = [a for j, a in enumerate(r.arguments) if j not in unused]
    consts = [v for j, v in enumerate(consts) if j not in unused]
    return rebuild_loop(graph, builder, loop, consts + list(loop.inputs[nc:]), len(consts), regions)


def rebuild_loop(graph: Graph, builder: Builder, loop: Node, inputs: list, num_consts: int, regions) -> Node:
    """Replace ``loop`` by the same loop op over new ``inputs`` (``num_consts`` of them consts) and its
    (edited) ``regions``: results keep their names and readers, the old node is erased."""
    attrs = dict(loop.attrs, num_consts=num_consts)
    with builder.inserting_before(loop), builder.provenance(loop.scope, loop.loc):
        outs = builder.emit(loop.op, inputs, attrs, regions=list(regions))
    for old, new in zip(loop.outputs, outs):
        new.name = old.name
        old.name = None
        graph.replace_all_uses_with(old, new)
    loop.regions = ()  # the regions now belong to the new node: erase the old one alone
    graph.erase(loop)
    return outs[0].producer


@register_pass("hoist", preserves=("typed",), stats=True)
def hoist(graph: Graph, *, stats: dict | None = None) -> tuple[Graph, bool]:
    stats = {} if stats is None else stats
    builder = Builder(graph, capture_locations=False)
    changed = False
    for loop in _loops_innermost_first(graph.body):
        if _hoist_loop(graph, builder, loop, stats) is not None:
            changed = True
    return graph, changed
