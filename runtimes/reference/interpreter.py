"""Evaluate a Graph node by node with each op's NumPy reference."""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import BackendError, GraphforgeError, ShapeError
from graphforge.ir.dims import resolve_shape
from graphforge.ir.graph import Graph, Node
from graphforge.ops.registry import get_op

__all__ = ["run", "evaluate", "evaluate_node"]


def evaluate_node(node: Node, args: list[np.ndarray], env: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """Run one node's reference; results are checked against the node's declared types."""
    opdef = get_op(node.op)
    try:
        # IEEE semantics (inf, nan, mean of nothing = nan) are results here, not warnings.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            outs = opdef.reference(args, node.attrs, env or {})
    except GraphforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - report which node failed, with its provenance
        raise BackendError(f"reference evaluation of {node.op} failed: {type(exc).__name__}: {exc}",
                           scope=node.scope, op=node.op, loc=node.loc) from exc
    outs = [np.asarray(o) for o in outs]
    _check_results(node, outs, env or {})
    return outs


def _check_results(node: Node, outs: list[np.ndarray], env: Mapping[str, int]) -> None:
    """The reference must produce what the type rule promised: a reference that disagrees with its
    op's type rule is a bug that would otherwise surface far away (in folding or a back end)."""
    if len(outs) != len(node.outputs):
        raise BackendError(f"reference of {node.op} returned {len(outs)} results for {len(node.outputs)} outputs",
                           scope=node.scope, op=node.op, loc=node.loc)
    for value, array in zip(node.outputs, outs):
        want = _dt.to_numpy_dtype(value.type.dtype)
        try:
            shape = resolve_shape(value.type.shape, env)
        except ShapeError:  # a symbol the caller did not bind (evaluation of a fragment)
            shape = array.shape
        if array.dtype != want or array.shape != shape:
            raise BackendError(f"reference of {node.op} returned {array.dtype}{list(array.shape)}, the node's "
                               f"type is {value.type}", scope=node.scope, op=node.op, loc=node.loc)


def evaluate(graph: Graph, arrays: list[np.ndarray], env: Mapping[str, int], params: Mapping[str, np.ndarray],
             *, keep: bool = False) -> dict[int, np.ndarray]:
    """All values of the graph by ``id(Value)`` (``keep=True`` keeps intermediates, else frees them)."""
    values: dict[int, np.ndarray] = {}
    for spec, array in zip(graph.inputs, arrays):
        values[id(spec)] = array
    for name, v in graph.param_values.items():
        values[id(v)] = params[name]
    remaining = {}
    if not keep:
        for node in graph.nodes:
            for v in node.inputs:
                remaining[id(v)] = remaining.get(id(v), 0) + 1
        for o in graph.outputs:
            remaining[id(o)] = remaining.get(id(o), 0) + 1
    for node in graph.nodes:
        outs = evaluate_node(node, [values[id(v)] for v in node.inputs], env)
        for value, array in zip(node.outputs, outs):
            values[id(value)] = array
        if not keep:
            for v in node.inputs:
                remaining[id(v)] -= 1
                if remaining[id(v)] == 0 and v.kind in ("node",):
                    values.pop(id(v), None)
    return values


def run(graph: Graph, arrays: list[np.ndarray], env: Mapping[str, int], params: Mapping[str, np.ndarray],
        **options) -> list[np.ndarray]:
    values = evaluate(graph, arrays, env, params, keep=bool(options.get("keep")))
    return [values[id(o)] for o in graph.outputs]
