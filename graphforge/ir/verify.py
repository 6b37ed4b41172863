"""``graph.verify()``: SSA, types, topological order, consistent use lists and node links, known ops.

Nested regions are checked like the top level, under the explicit capture rule (docs/control_flow.md):
a node in a region may read only the region's arguments and values defined before it in that region
(the regions nested inside it keep their own values). An outer value a region needs is passed to the
owner as an operand; reading it directly is an implicit capture, refused naming the value and node.
Every region ends with exactly one ``yield``; the owner's type rule sees the regions' argument and
result types."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import GraphforgeError, VerifyError
from .graph import _VALUE_NAME, YIELD, Block, Graph

__all__ = ["verify_graph"]


def verify_graph(graph: Graph) -> None:
    from ..ops import registry

    defined: set[int] = set()
    names: set[str] = set()

    def define(value, what: str):
        if id(value) in defined:
            raise VerifyError(f"{what}: value {value!r} is defined twice (SSA)")
        defined.add(id(value))
        if value.name is not None:
            if not isinstance(value.name, str) or not _VALUE_NAME.fullmatch(value.name) or value.name.isdigit():
                raise VerifyError(f"{what}: invalid value name {value.name!r} (all-digit names are reserved for "
                                  "anonymous values)")
            if value.name in names:
                raise VerifyError(f"{what}: name %{value.name} is defined twice")
            names.add(value.name)

    for v in graph.inputs:
        if v.kind != "input":
            raise VerifyError(f"graph input {v.name} has kind {v.kind!r}")
        define(v, "input")
    for name, v in graph.param_values.items():
        if v.name != name or v.kind not in ("param", "buffer", "const"):
            raise VerifyError(f"parameter table entry {name!r} is inconsistent ({v!r}, kind {v.kind})")
        define(v, "parameter")
        if name in graph.params:
            array = graph.params[name]
            if tuple(np.shape(array)) != v.type.shape or np.asarray(array).dtype != _dt.to_numpy_dtype(v.type.dtype):
                raise VerifyError(f"parameter {name}: stored array is {np.asarray(array).dtype}"
                                  f"{list(np.shape(array))}, IR type is {v.type}")
    stray = sorted(set(graph.params) - set(graph.param_values))
    if stray:
        raise VerifyError(f"stored arrays for names the graph does not declare: {', '.join(stray[:10])}")
    visible = set(defined)  # what the top level may read; _verify_block adds each result
    _verify_block(graph.body, define, visible, registry, "")
    in_graph = {id(node) for node in graph.walk()}
    for value in graph.all_values():
        for user, index in value.uses:
            if index >= len(user.inputs) or user.inputs[index] is not value:
                raise VerifyError(f"value {value!r} lists a stale use by {user.op}")
            if id(user) not in in_graph:
                raise VerifyError(f"value {value!r} lists a use by a {user.op} node that is not in the graph "
                                  "(removed without detach())")
        if len({(id(user), index) for user, index in value.uses}) != len(value.uses):
            raise VerifyError(f"value {value!r} lists one use twice")
    if len(graph.outputs) != len(graph.output_names):
        raise VerifyError("graph outputs and output names differ in length")
    for i, out in enumerate(graph.outputs):
        if id(out) not in visible:
            raise VerifyError(f"output {i} ({graph.output_names[i]}) is not defined in this graph")
    if len(set(graph.output_names)) != len(graph.output_names):
        raise VerifyError(f"duplicate output names: {graph.output_names}")


def _describe(value) -> str:
    return f"%{value.name}" if value.name else repr(value)


def _verify_block(block: Block, define, visible: set[int], registry, prefix: str) -> None:
    _verify_links(block, prefix)
    for arg in block.arguments:
        if arg.kind != "arg":
            raise VerifyError(f"{prefix}region argument {arg!r} has kind {arg.kind!r} (expected 'arg')")
        define(arg, f"{prefix}region argument")
        visible.add(id(arg))
    if block.owner is not None and block.terminator is None:
        raise VerifyError(f"{prefix}the region does not end with 'yield'")
    for position, node in enumerate(block):
        where = f"{prefix}node {position} ({node.op}{' @' + node.scope if node.scope else ''})"
        for i, value in enumerate(node.inputs):
            if id(value) not in visible:
                producer = value.producer
                if producer is not None and producer.block is block:
                    raise VerifyError(f"{where}: input {i} is used before it is defined (topological order)")
                if block.owner is not None and (value.kind != "node" or producer is not None and producer.block is not None):
                    raise VerifyError(f"{where}: input {i} reads {_describe(value)}, defined outside this region of "
                                      f"{block.owner.op} (an implicit capture)",
                                      hint=f"pass the value to {block.owner.op} as an operand and read the region "
                                           "argument (the capture rule is explicit, see docs/control_flow.md)")
                if producer is not None and producer.block is not None:
                    raise VerifyError(f"{where}: input {i} ({_describe(value)}) is defined inside a region of "
                                      f"{producer.block.owner.op if producer.block.owner else 'another node'} "
                                      "and is not visible here")
                raise VerifyError(f"{where}: input {i} ({value!r}) is not defined in this graph (dangling)")
            if (node, i) not in value.uses:
                raise VerifyError(f"{where}: input {i} does not list this node among its uses")
        if node.op == YIELD:
            if block.owner is None:
                raise VerifyError(f"{where}: 'yield' outside a region (the top level ends with the graph outputs)")
            if node is not block.last:
                raise VerifyError(f"{where}: 'yield' must be the last node of its region")
            if node.outputs or node.regions:
                raise VerifyError(f"{where}: 'yield' has no results and no regions")
            continue
        try:
            opdef = registry.get_op(node.op)
        except GraphforgeError as exc:
            raise VerifyError(f"{where}: {exc.detail}") from None
        for k, region in enumerate(node.regions):
            if region.owner is not node:
                raise VerifyError(f"{where}: region {k} does not name this node as its owner")
            # A region sees only its own arguments and values (explicit capture).
            _verify_block(region, define, set(), registry, f"{where} region {k}: ")
        try:
            attrs = registry.check_attrs(opdef, node.attrs)
            expected = registry.infer_types(opdef, [v.type for v in node.inputs], attrs,
                                            regions=node.regions if (node.regions or opdef.regions) else None)
        except GraphforgeError as exc:
            raise VerifyError(f"{where}: {exc.detail}") from None
        actual = [o.type for o in node.outputs]
        if expected != actual:
            raise VerifyError(f"{where}: declared result types {', '.join(map(str, actual))} but the type rule "
                              f"gives {', '.join(map(str, expected))}")
        for j, out in enumerate(node.outputs):
            if out.producer is not node or out.index != j:
                raise VerifyError(f"{where}: output {j} does not point back to its producer")
        for out in node.outputs:
            define(out, where)
            visible.add(id(out))


def _verify_links(block: Block, prefix: str) -> None:
    """The doubly linked list is consistent: links agree both ways and the length is right."""
    count, prev, node = 0, None, block.first
    while node is not None:
        if node.block is not block or node._prev is not prev:
            raise VerifyError(f"{prefix}node list is corrupt at {node!r} (edited without the Block API)")
        count += 1
        if count > len(block):
            break
        prev, node = node, node._next
    if count != len(block) or block.last is not prev:
        raise VerifyError(f"{prefix}node list is corrupt: it links {count} nodes but records {len(block)}")
