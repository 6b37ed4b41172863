"""Mixed precision as a graph-to-graph pass: compute in float16/bfloat16, keep float32 where needed.

``mixed_precision(graph, "bfloat16")`` rewrites a float32 graph so that the ops the policy table
(:mod:`graphforge.ops.precision`) marks ``"half"`` (matmul, linear, conv, attention) read their float
inputs — float32 parameters included, which stay float32 *master* weights in the graph — through
``cast`` nodes to the half type; ``"float32"`` ops (reductions, softmax, norms, exp/log) cast half
inputs back up; every other op follows its inputs (the narrowest float type wins, float32 operands
such as a bias are cast down). Graph outputs keep their original dtypes (the loss stays float32).
Because parameters are only *cast* in the graph, ``gf.grad`` of the result gives float32 gradients
(the VJP of ``cast`` casts back) while the backward matmuls run in the half type too.

``half_precision(graph, dtype)`` is the deployment variant (``graphforge compile --dtype``): the
same rewrite, then every parameter read only through casts to the half type is stored in it, so the
exported file holds half-precision weights; graph inputs and outputs keep their types.

Nodes that own regions (control flow) are left as float32 islands: their inputs are cast back to
the types they had.
"""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import ConfigError
from graphforge.ir.graph import Graph, Value
from graphforge.ir.types import TensorType
from graphforge.ops.precision import FLOAT32, HALF, precision_class
from graphforge.trace.builder import Builder

from .registry import register_pass

__all__ = ["mixed_precision", "half_precision", "mixed_precision_pass", "HALF_DTYPES"]

HALF_DTYPES = ("float16", "bfloat16")


def _check_dtype(dtype: str) -> str:
    name = _dt.canonical_dtype(dtype)
    if name not in HALF_DTYPES:
        raise ConfigError(f"mixed precision computes in float16 or bfloat16, not {dtype!r}",
                          hint="use 'bfloat16' (no loss scaling needed) or 'float16'")
    return name


def _targets(node, inputs: list[Value], half: str) -> list[str]:
    """The dtype each input must have for ``node`` under the policy."""
    current = [v.dtype for v in inputs]
    if node.regions:  # a float32 island: exactly the types the node was built with
        return [v.dtype for v in node.inputs]
    cls = precision_class(node.op)
    if cls == HALF:
        return [half if d == "float32" else d for d in current]
    if cls == FLOAT32:
        return ["float32" if d == half else d for d in current]
    if any(d == half for d in current):  # follow: the narrowest float among the inputs
        return [half if d == "float32" else d for d in current]
    return current


def mixed_precision(graph: Graph, dtype: str = "bfloat16") -> Graph:
    """A copy of ``graph`` computing in ``dtype`` per the op policy (see the module docstring)."""
    half = _check_dtype(dtype)
    g = graph.copy()
    builder = Builder(g, capture_locations=False)
    mapping: dict[int, Value] = {}
    casts: dict[tuple[int, str], Value] = {}
    replaced = []

    def cast(value: Value, to: str, node) -> Value:
        if value.dtype == to:
            return value
        key = (id(value), to)
        if key not in casts:
            # provenance: the cast belongs to the scope of its producer (a parameter's cast to its user)
            src = value.producer or node
            with builder.inserting_before(node), builder.provenance(src.scope, src.loc):
                casts[key] = builder.emit1("cast", [value], {"dtype": to})
        return casts[key]

    with builder.activate():
        for node in list(g.nodes):
            inputs = [mapping.get(id(v), v) for v in node.inputs]
            targets = _targets(node, inputs, half)
            new_inputs = [cast(v, t, node) for v, t in zip(inputs, targets)]
            if [v.type for v in new_inputs] == [v.type for v in node.inputs]:
                for i, v in enumerate(new_inputs):
                    if v is not node.inputs[i]:
                        node.set_input(i, v)
                continue
            with builder.inserting_before(node), builder.provenance(node.scope, node.loc):
                outs = builder.emit(node.op, new_inputs, node.attrs)
            for old, new in zip(node.outputs, outs):
                mapping[id(old)] = new
            replaced.append(node)
        outputs = []
        for old in g.outputs:
            new = mapping.get(id(old), old)
            if new.dtype != old.dtype:
                with builder.inserting_at_end(), builder.provenance(new.producer.scope, new.producer.loc):
                    new = builder.emit1("cast", [new], {"dtype": old.dtype})
            outputs.append(new)
    g.set_outputs(outputs, list(g.output_names))
    # the replaced nodes are read only by each other now (consumers were rebuilt or re-pointed)
    g.remove_nodes(replaced)
    g.name = graph.name
    return g.verify()


def half_precision(graph: Graph, dtype: str = "float16") -> Graph:
    """``mixed_precision`` with half-precision weight storage: each float32 parameter whose every
    use is a cast to ``dtype`` becomes a ``dtype`` parameter (its array converted)."""
    half = _check_dtype(dtype)
    g = mixed_precision(graph, half)
    np_half = _dt.to_numpy_dtype(half)
    for name, value in list(g.param_values.items()):
        users = [n for n, _ in value.uses]
        if (value.dtype != "float32" or not users
                or not all(n.op == "cast" and n.attrs["dtype"] == half for n in users)):
            continue
        array = g.params.get(name)
        # a param Value's type is fixed: a fresh half param takes over its name
        g.remove_param(name)
        new = g.add_param(name, TensorType(value.type.shape, half),
                          None if array is None else np.asarray(array).astype(np_half), value.kind)
        for node in users:
            g.replace_all_uses_with(node.outputs[0], new)
        g.remove_nodes(users)
    return g.verify()


@register_pass("mixed_precision", in_place=False, preserves=("typed",))
def mixed_precision_pass(graph: Graph) -> tuple[Graph, bool]:
    """``mixed_precision(graph, "bfloat16")`` as a pipeline step."""
    return mixed_precision(graph, "bfloat16"), True
