"""Importer for ONNX's preview-training ``Gradient`` (domain ``ai.onnx.preview.training``).

``Gradient<xs, y>`` outputs dY/dX for each named X, with Y's cotangent all ones (a non-scalar Y is
summed). graphforge builds it with its own reverse-mode machinery at import time: the nodes already
imported between the X values and Y are swept in reverse with each op's registry VJP
(``ops._region_ad.reverse_sweep``, the sweep ``gf.grad`` uses), so the gradients are ordinary graph
nodes and run on every back end. An X that Y does not depend on gets zeros. Y and the Xs must be
tensors of the graph being imported (not of an enclosing graph seen from a subgraph), Xs floating-point.
"""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.ops._region_ad import reverse_sweep, zeros_value

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


@importer("ai.onnx.preview.training::Gradient")
def _gradient(ctx, node):
    a = attrs_of(node)
    xs_names = [_text(n) for n in a.get("xs", [])]
    y_name = _text(a.get("y", ""))
    if y_name not in ctx.values:
        unsupported(node, f"y={y_name!r} is not a tensor computed in this graph (a constant, or not imported)")
    y = ctx.values[y_name]
    if not _dt.is_float(y.type.dtype):
        unsupported(node, f"y={y_name!r} has type {y.type}; only floating-point tensors are differentiated")
    xs = []
    for name in xs_names:
        if name not in ctx.values:
            unsupported(node, f"xs entry {name!r} is not a tensor of this graph")
        xs.append(ctx.values[name])
    if len(node.output) != len(xs):
        unsupported(node, f"{len(node.output)} outputs for {len(xs)} xs")
    nodes = list(ctx.graph.nodes)
    if y.producer is not None and y.producer not in nodes:
        unsupported(node, f"y={y_name!r} is computed inside a control-flow subgraph; Gradient differentiates "
                          "the top-level graph")
    # the nodes on a path from an X to Y, in order (as gf.grad's _active_nodes)
    forward = {id(v) for v in xs}
    live = set()
    for n in nodes:
        if any(id(v) in forward for v in n.inputs):
            live.add(id(n))
            forward.update(id(o) for o in n.outputs)
    wanted, needed = {id(y)}, set()
    for n in reversed(nodes):
        if any(id(o) in wanted for o in n.outputs):
            needed.add(id(n))
            wanted.update(id(v) for v in n.inputs)
    steps = [(n, list(n.inputs), list(n.outputs)) for n in nodes if id(n) in live & needed]
    requires = {id(v) for v in xs if _dt.is_float(v.type.dtype)}
    for n, _, outs in steps:
        requires.update(id(o) for o in outs if _dt.is_float(o.type.dtype))
    builder = ctx.builder
    with builder.activate(), builder.provenance(ctx.node_name, ""):
        one = builder.emit1("constant", [], {"value": np.ones((), dtype=_dt.to_numpy_dtype(y.type.dtype))})
        seed = builder.emit1("broadcast_to", [one], {"shape": list(y.type.shape)}) if y.type.shape else one
        cotangents = {id(y): seed}
        reverse_sweep(builder, steps, cotangents, requires)
        return [cotangents.get(id(x)) if cotangents.get(id(x)) is not None else zeros_value(builder, x.type)
                for x in xs]
