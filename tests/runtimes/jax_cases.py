"""One-node graphs for every op-table sample, shared by the JAX op and gradient tests."""
from __future__ import annotations

import numpy as np

from graphforge.ir.graph import Graph
from graphforge.ops import registry
from graphforge.ops.samples import make_inputs
from graphforge.trace.builder import Builder


def sample_cases():
    """(id, op, sample_index, sample) for every sample of every registered op."""
    out = []
    for name in sorted(registry.all_ops()):
        for i, s in enumerate(registry.get_op(name).samples):
            out.append((f"{name}-{i}", name, i, s))
    return out


def one_node_graph(op: str, sample) -> Graph:
    graph = Graph(op)
    ins = [graph.add_input(f"x{i}", t) for i, t in enumerate(sample.inputs)]
    builder = Builder(graph, capture_locations=False)
    regions = sample.regions(builder, list(sample.inputs), dict(sample.attrs)) if sample.regions else None
    outs = builder.emit(op, ins, dict(sample.attrs), regions=regions)
    graph.set_outputs(outs)
    return graph


def tolerance(dtype) -> dict:
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-12, atol=1e-12)
    if np.dtype(dtype) in (np.float16,):
        return dict(rtol=1e-3, atol=1e-3)
    return dict(rtol=1e-5, atol=1e-6)


__all__ = ["sample_cases", "one_node_graph", "tolerance", "make_inputs"]
