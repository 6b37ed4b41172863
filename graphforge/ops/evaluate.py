"""Evaluate one node with its op's NumPy reference, checking the results against the node's types.

This is the registry's own semantics, so it lives in the core: the constant folder (a pass) and the
reference interpreter (a back end) both call it, and neither has to import the other.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from .. import dtypes as _dt
from ..errors import BackendError, GraphforgeError, ShapeError
from ..ir.dims import resolve_shape
from ..ir.graph import Node
from .registry import get_op

__all__ = ["evaluate_node", "evaluate_block"]


def evaluate_node(node: Node, args: list[np.ndarray], env: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """Run one node's reference; results are checked against the node's declared types."""
    opdef = get_op(node.op)
    try:
        # IEEE semantics (inf, nan, mean of nothing = nan) are results here, not warnings.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if opdef.regions:
                outs = opdef.reference(args, node.attrs, env or {}, regions=node.regions)
            else:
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


def evaluate_block(block, args: list[np.ndarray], env: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """Run a region with its op references: bind ``args`` to its arguments, evaluate its nodes in
    order (nested regions through their owners' references) and return what its ``yield`` names."""
    values: dict[int, np.ndarray] = {id(a): x for a, x in zip(block.arguments, args)}
    for node in block:
        if node.op == "yield":
            return [values[id(v)] for v in node.inputs]
        outs = evaluate_node(node, [values[id(v)] for v in node.inputs], env)
        for value, array in zip(node.outputs, outs):
            values[id(value)] = array
    raise BackendError("a region without 'yield' cannot be evaluated")
