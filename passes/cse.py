"""``cse``: common-subexpression elimination.

Two nodes are the same when they have the same op, the same attributes (arrays compared by dtype,
shape and bytes; defaults filled in), the same result types and the same inputs — in any order for
commutative ops (``OpDef.commutative``). Random ops (``OpDef.random``) are never merged. The first
node (in topological order) survives with its own scope and location. Two graph outputs are never
merged into one value, so the graph's outputs keep their identity."""
from __future__ import annotations

import numpy as np

from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph
from graphforge.ops import registry

from .registry import register_pass
from .rewrite import can_replace, erase_dead, output_ids, replace_value

__all__ = ["cse", "attr_key"]


def _freeze(value):
    kind = type(value)  # the common exact types first (CSE keys every node of the graph)
    if kind is int:
        return ("i", value)
    if kind is str or value is None:
        return ("o", repr(value))
    if kind is float:
        return ("f", repr(value))
    if kind is bool:
        return ("b", value)
    if isinstance(value, np.ndarray):
        return ("nd", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_freeze(v) for v in value))
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("i", int(value))
    if isinstance(value, (float, np.floating)):
        return ("f", repr(float(value)))
    if isinstance(value, dict):
        return ("d", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    return ("o", repr(value))


def attr_key(attrs: dict) -> tuple:
    return tuple(sorted((k, _freeze(v)) for k, v in attrs.items()))


def _blocks(block):
    yield block
    for node in block:
        for region in node.regions:
            yield from _blocks(region)


@register_pass("cse", preserves=("typed",))
def cse(graph: Graph) -> tuple[Graph, bool]:
    outs = output_ids(graph)
    merged = []
    opdefs: dict[str, object] = {}
    # One table per block: a value never replaces one in another region (that would be an implicit
    # capture, or a region value leaking out). Region ops themselves are not merged (their keys
    # would have to compare whole bodies).
    for block in list(_blocks(graph.body)):
        table: dict[tuple, object] = {}
        _cse_block(graph, block, table, merged, opdefs, outs)
    if merged:
        erase_dead(graph, merged, outs)
    return graph, bool(merged)


def _cse_block(graph, block, table, merged, opdefs, outs) -> None:
    for node in block:
        if node.regions:
            continue
        opdef = opdefs.get(node.op)
        if opdef is None:
            try:
                opdef = opdefs[node.op] = registry.get_op(node.op)
            except GraphforgeError:
                continue
        if opdef.random:
            continue
        attrs = node.attrs
        if len(attrs) != len(opdef.attrs):  # defaults left out (hand-written IR): fill them in
            try:
                attrs = registry.check_attrs(opdef, attrs)
            except GraphforgeError:
                pass
        ins = [id(v) for v in node.inputs]
        if opdef.commutative:
            ins.sort()
        outputs = node.outputs
        key = (node.op, tuple(ins), attr_key(attrs) if attrs else (),
               (outputs[0].type,) if len(outputs) == 1 else tuple([o.type for o in outputs]))
        first = table.get(key)
        if first is None:
            table[key] = node
            continue
        if not all(can_replace(graph, o, f, outs) for o, f in zip(node.outputs, first.outputs)):
            continue
        for o, f in zip(node.outputs, first.outputs):
            replace_value(graph, o, f, outs)
        merged.append(node)
