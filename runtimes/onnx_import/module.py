"""``GraphModule``: an imported graph as an ``nn.Module``, so ``gf.Trainer`` can fine-tune it.

Float params listed in ``trainable`` (default: all float params) become trainable Parameters, the
others frozen ones; integer ``const`` params stay constants. ``forward`` replays the graph's nodes
(provenance kept) on the traced inputs."""
from __future__ import annotations

import numpy as np

from graphforge.ir.graph import Graph
from graphforge.nn.module import Module
from graphforge.nn.parameter import Parameter
from graphforge.trace.builder import current_builder
from graphforge.trace.tensor import Tensor

__all__ = ["GraphModule"]


class GraphModule(Module):
    def __init__(self, graph: Graph, trainable=None):
        super().__init__()
        object.__setattr__(self, "_graph", graph)
        names = set(graph.trainable_names if trainable is None else trainable)
        unknown = names - set(graph.param_values)
        if unknown:
            from graphforge.errors import InputError
            raise InputError(f"GraphModule: no params named {sorted(unknown)}; the graph has "
                             f"{sorted(graph.trainable_names)}")
        for pname, v in graph.param_values.items():
            if v.kind != "const":
                setattr(self, pname, Parameter(np.array(graph.params[pname]), trainable=pname in names))

    @property
    def graph(self) -> Graph:
        return self._graph

    def forward(self, *xs):
        g = self._graph
        b = current_builder()
        env = {}
        for v, x in zip(g.inputs, xs):
            env[id(v)] = x.value if isinstance(x, Tensor) else x
        for pname, v in g.param_values.items():
            if v.kind == "const":
                arr = g.params[pname]
                env[id(v)] = b.graph.add_param(b.graph.fresh_param_name(pname), v.type, arr, "const")
            else:
                env[id(v)] = getattr(self, pname).value
        for node in g.nodes:
            with b.provenance(node.scope, node.loc):
                outs = b.emit(node.op, [env[id(i)] for i in node.inputs], dict(node.attrs))
            for o, n in zip(node.outputs, outs):
                env[id(o)] = n
        res = [Tensor(env[id(o)], b) for o in g.outputs]
        return res[0] if len(res) == 1 else tuple(res)
