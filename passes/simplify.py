"""``simplify``: local algebraic and shape simplifications.

* ``x*1``, ``1*x``, ``x+0``, ``0+x``, ``x-0``, ``x/1``, ``x**1`` → ``x`` (only when the constant does
  not broadcast ``x`` to a larger shape or another dtype);
* ``neg(neg(x))``, ``logical_not(logical_not(x))`` → ``x``;
* the ``axis`` of ``softmax``/``log_softmax``/``layer_norm`` in its negative spelling (``softmax(x, 1)``
  on a rank-3 ``x`` → ``axis=-2``), the one ``nn`` layers and the fusion rules use, so one
  computation has one graph whichever way the user counted the axis (and CSE can merge them);
* ``transpose(transpose(x))`` → one transpose, or ``x`` when the permutations cancel;
* ``reshape`` of a ``reshape``/``flatten``/``squeeze``/``unsqueeze`` → one ``reshape``;
* no-op ``reshape``/``flatten``/``squeeze``/``unsqueeze``/``broadcast_to``/``cast``/``transpose``
  (result type equal to the input type, identity permutation) → their input;
* ``dim_size`` over static dims → a ``constant``.

Every rewrite is O(1), so the pass is linear in the graph size. Rewritten nodes keep their scope
and location; a node that becomes unused is erased with the producers only it used."""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.ops import registry
from graphforge.trace.builder import Builder

from .manager import register_pass
from .rewrite import erase_dead, output_ids, replace_value, scalar_value

__all__ = ["simplify"]

_NOOP_WHEN_SAME_TYPE = {"reshape", "flatten", "squeeze", "unsqueeze", "broadcast_to", "cast"}
_RESHAPE_LIKE = {"reshape", "flatten", "squeeze", "unsqueeze"}
_INVOLUTIONS = {"neg", "logical_not"}
# Ops whose int ``axis`` counts dims of their first input (the same rank as their result).
_AXIS_OPS = {"softmax", "log_softmax", "layer_norm"}


def _identity_operand(graph: Graph, node: Node) -> Value | None:
    """The operand ``x`` when ``node`` is ``x (op) identity-constant``."""
    op = node.op
    a, b = node.inputs
    out = node.outputs[0].type
    if op in ("add", "mul"):
        unit = 0.0 if op == "add" else 1.0
        if b.type == out and scalar_value(graph, a) == unit:
            return b
        if a.type == out and scalar_value(graph, b) == unit:
            return a
    elif op in ("sub", "div", "pow"):
        unit = 0.0 if op == "sub" else 1.0
        if a.type == out and scalar_value(graph, b) == unit:
            return a
    return None


def _retarget(node: Node, index: int, value: Value) -> bool:
    """Point ``node``'s input at ``value`` if its type rule still gives the same result types."""
    old = node.inputs[index]
    node.set_input(index, value)
    try:
        opdef = registry.get_op(node.op)
        types = registry.infer_types(opdef, [v.type for v in node.inputs], registry.check_attrs(opdef, node.attrs))
    except GraphforgeError:
        types = None
    if types != [o.type for o in node.outputs]:
        node.set_input(index, old)
        return False
    return True


@register_pass("simplify")
def simplify(graph: Graph) -> tuple[Graph, bool]:
    outs = output_ids(graph)
    builder = Builder(graph, capture_locations=False)
    snapshot = graph.nodes
    graph.nodes = []
    touched: list[Node] = []
    changed = False
    for node in snapshot:
        graph.nodes.append(node)
        op = node.op
        if len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        replacement: Value | None = None
        if op in ("add", "mul", "sub", "div", "pow"):
            replacement = _identity_operand(graph, node)
        elif op in _INVOLUTIONS:
            src = node.inputs[0].producer
            if src is not None and src.op == op:
                replacement = src.inputs[0]
        elif op in _AXIS_OPS:
            axis, rank = node.attrs.get("axis"), node.inputs[0].type.rank
            if isinstance(axis, int) and not isinstance(axis, bool) and 0 <= axis < rank:
                node.attrs = dict(node.attrs, axis=axis - rank)
                changed = True
        elif op == "transpose":
            x = node.inputs[0]
            perm = _perm(node.attrs.get("perm"), x.type.rank)
            src = x.producer
            if perm == list(range(len(perm))):
                replacement = x
            elif src is not None and src.op == "transpose":
                inner = _perm(src.attrs.get("perm"), src.inputs[0].type.rank)
                composed = [inner[p] for p in perm]
                if composed == list(range(len(composed))):
                    replacement = src.inputs[0]
                else:
                    saved = dict(node.attrs)
                    node.attrs = dict(node.attrs, perm=composed)
                    if _retarget(node, 0, src.inputs[0]):
                        touched.append(src)
                        changed = True
                    else:
                        node.attrs = saved
        elif op == "dim_size":
            x = node.inputs[0]
            dims = [x.type.shape[a] for a in node.attrs["axes"]]
            if all(isinstance(d, int) for d in dims):
                with builder.provenance(node.scope, node.loc):
                    array = np.array(int(np.prod(dims, dtype=np.int64)), dtype=_dt.to_numpy_dtype(out.type.dtype))
                    graph.nodes.pop()  # emit the constant in front of the node it replaces
                    replacement = builder.emit1("constant", [], {"value": array})
                    graph.nodes.append(node)
        if replacement is None and op in _NOOP_WHEN_SAME_TYPE and node.inputs[0].type == out.type:
            if op != "cast" or node.inputs[0].type.dtype == out.type.dtype:
                replacement = node.inputs[0]
        if replacement is None and op == "reshape":
            src = node.inputs[0].producer
            while src is not None and src.op in _RESHAPE_LIKE and len(src.outputs) == 1:
                if not _retarget(node, 0, src.inputs[0]):
                    break
                touched.append(src)
                changed = True
                src = node.inputs[0].producer
            if node.inputs[0].type == out.type:
                replacement = node.inputs[0]
        if replacement is not None and replace_value(graph, out, replacement, outs):
            touched.append(node)
            changed = True
    if touched:
        erase_dead(graph, touched, outs)
    return graph, changed


def _perm(perm, rank: int) -> list[int]:
    if perm is None:
        return list(range(rank))[::-1]
    return [p % rank for p in perm]
