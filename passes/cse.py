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
    # A node with an operand no other node reads has no twin (a twin reads all the same values), so
    # its key is not computed: in a chain of layers that is most nodes. It is keyed later if a merge
    # gives that operand another reader (``waiting``: skipped nodes by the id of each operand).
    waiting: dict[int, list] = {}
    for node in block:
        if node.regions:
            continue
        ins = node.inputs
        lonely = False
        for v in ins:
            if len(v.uses) == 1:
                lonely = True
                break
        if lonely:
            for v in ins:
                waiting.setdefault(id(v), []).append(node)
            continue
        key = _key(node, opdefs)
        if key is None:
            continue
        first = table.get(key)
        if first is None:
            table[key] = node
            continue
        if not all(can_replace(graph, o, f, outs) for o, f in zip(node.outputs, first.outputs)):
            continue
        for o, f in zip(node.outputs, first.outputs):
            replace_value(graph, o, f, outs)
            # ``f`` gained readers: the nodes skipped for reading it alone may have twins now. They
            # come before ``node`` in the order, so they take their place in the table first.
            for early in waiting.pop(id(f), ()):
                if early is not node and all(len(v.uses) > 1 for v in early.inputs):
                    early_key = _key(early, opdefs)
                    if early_key is not None:
                        table.setdefault(early_key, early)
        merged.append(node)


def _key(node, opdefs) -> tuple | None:
    """What makes ``node`` equal to another (None: never merged)."""
    opdef = opdefs.get(node.op)
    if opdef is None:
        try:
            opdef = opdefs[node.op] = registry.get_op(node.op)
        except GraphforgeError:
            return None
    if opdef.random:
        return None
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
    return (node.op, tuple(ins), attr_key(attrs) if attrs else (),
            (outputs[0].type,) if len(outputs) == 1 else tuple([o.type for o in outputs]))
