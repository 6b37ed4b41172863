"""``graph.verify()``: SSA, types, topological order, consistent use lists, known ops."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import GraphforgeError, VerifyError
from .graph import _VALUE_NAME, Graph

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
    for position, node in enumerate(graph.nodes):
        where = f"node {position} ({node.op}{' @' + node.scope if node.scope else ''})"
        for i, value in enumerate(node.inputs):
            if id(value) not in defined:
                producer = value.producer
                if producer is not None and producer in graph.nodes:
                    raise VerifyError(f"{where}: input {i} is used before it is defined (topological order)")
                raise VerifyError(f"{where}: input {i} ({value!r}) is not defined in this graph (dangling)")
            if (node, i) not in value.uses:
                raise VerifyError(f"{where}: input {i} does not list this node among its uses")
        try:
            opdef = registry.get_op(node.op)
        except GraphforgeError as exc:
            raise VerifyError(f"{where}: {exc.detail}") from None
        try:
            attrs = registry.check_attrs(opdef, node.attrs)
            expected = registry.infer_types(opdef, [v.type for v in node.inputs], attrs)
        except GraphforgeError as exc:
            raise VerifyError(f"{where}: {exc.detail}") from None
        actual = [o.type for o in node.outputs]
        if expected != actual:
            raise VerifyError(f"{where}: declared result types {', '.join(map(str, actual))} but the type rule "
                              f"gives {', '.join(map(str, expected))}")
        for j, out in enumerate(node.outputs):
            if out.producer is not node or out.index != j:
                raise VerifyError(f"{where}: output {j} does not point back to its producer")
            define(out, where)
    in_graph = {id(node) for node in graph.nodes}
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
        if id(out) not in defined:
            raise VerifyError(f"output {i} ({graph.output_names[i]}) is not defined in this graph")
    if len(set(graph.output_names)) != len(graph.output_names):
        raise VerifyError(f"duplicate output names: {graph.output_names}")
