"""Evaluate a Graph node by node with each op's NumPy reference."""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import BackendError, GraphforgeError, ShapeError
from graphforge.ir.dims import resolve_shape
from graphforge.ir.graph import Graph, Node
from graphforge.ops.evaluate import evaluate_node
from graphforge.ops.registry import get_op

__all__ = ["run", "evaluate", "evaluate_node"]


def _bind_new_dims(shape, actual, env: dict) -> None:
    """Bind the symbols a node's result introduces (a data-dependent length, ops/data_dependent.py)
    from the array it produced, so later nodes can resolve them."""
    for d, n in zip(shape, actual):
        if type(d) is str and d not in env and d.isidentifier():
            env[d] = int(n)


def evaluate(graph: Graph, arrays: list[np.ndarray], env: Mapping[str, int], params: Mapping[str, np.ndarray],
             *, keep: bool = False, after_node=None) -> dict[int, np.ndarray]:
    """All values of the graph by ``id(Value)`` (``keep=True`` keeps intermediates, else frees them).
    ``after_node(node, outs) -> outs``, when given, may replace each top-level node's results before
    anything reads them (the fuzz oracle's float32-rounded twin)."""
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
    env = dict(env)
    for node in graph.nodes:
        outs = evaluate_node(node, [values[id(v)] for v in node.inputs], env)
        if after_node is not None:
            outs = after_node(node, outs)
        for value, array in zip(node.outputs, outs):
            values[id(value)] = array
            _bind_new_dims(value.type.shape, array.shape, env)
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
