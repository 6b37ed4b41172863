"""``loop_weights``: a loop-invariant weight that a loop body reads transposed is transposed once,
before the loop.

``linear(x, w, b)`` (``transpose_b=True``, the layers' form: ``w`` is ``(out, in)``) contracts ``x``
with ``w``'s second dimension. XLA:CPU hands such a dot to YNNPACK, which transposes ``w`` into
its own layout on every call — inside a ``scan`` body that is once per step, for a weight that
never changes (an LSTM's ``W_hh``: a (4H, H) transpose per time step; ``ynn::transpose_x32`` was
4 % of the LSTM train step's CPU time, docs/benchmarks.md "LSTM train step"). This pass rewrites
each such ``linear`` whose weight is one of the loop's consts to ``linear(x, transpose(w), b,
transpose_b=False)`` and lets :mod:`hoist <graphforge.passes.hoist>` move the transpose out of the
loop, so the body's dot reads a ``(in, out)`` weight as it is.

Only weights that are loop consts (region arguments below ``num_consts``) are rewritten: a weight
computed per step gains nothing. The JAX lowering runs this pass on its working copy of a graph
(``runtimes/jax``: ``prepared``); the graph a user holds, and its ONNX export (whose native
``LSTM``/``GRU`` ops read the layers' scans as traced), keep the ``(out, in)`` form.
"""
from __future__ import annotations

from graphforge.ir.graph import Graph, Node
from graphforge.trace.builder import Builder

from .hoist import _hoist_loop, _loops_innermost_first
from .registry import register_pass

__all__ = ["loop_weights", "transposed_loop_weights"]


def transposed_loop_weights(loop: Node) -> list[Node]:
    """The ``linear`` nodes directly in ``loop``'s regions that read a loop const as a
    ``(out, in)`` weight (``transpose_b=True``, a 2-D weight)."""
    nc = loop.attrs.get("num_consts", 0)
    found = []
    for region in loop.regions:
        consts = {id(a) for a in region.arguments[:nc]}
        for node in region:
            if (node.op == "linear" and node.attrs.get("transpose_b", True) and len(node.inputs) >= 2
                    and id(node.inputs[1]) in consts and node.inputs[1].type.rank == 2):
                found.append(node)
    return found


def _rewrite(graph: Graph, builder: Builder, loop: Node, nodes: list[Node], stats: dict) -> None:
    transposed: dict[int, object] = {}  # id(const argument) -> its transpose inside the region
    for node in nodes:
        w = node.inputs[1]
        wt = transposed.get(id(w))
        with builder.inserting_before(node), builder.provenance(node.scope, node.loc):
            if wt is None:
                wt = transposed[id(w)] = builder.emit1("transpose", [w], {"perm": [1, 0]})
            new = builder.emit("linear", [node.inputs[0], wt, *node.inputs[2:]], dict(node.attrs, transpose_b=False))
        for old, value in zip(node.outputs, new):
            graph.replace_all_uses_with(old, value)
        node.block.erase(node)
        stats["rewritten"] = stats.get("rewritten", 0) + 1
    # the transposes read only consts: hoist moves them (and only what is invariant) before the loop
    _hoist_loop(graph, builder, loop, stats)


@register_pass("loop_weights", preserves=("typed",), stats=True)
def loop_weights(graph: Graph, *, stats: dict | None = None) -> tuple[Graph, bool]:
    stats = {} if stats is None else stats
    builder = Builder(graph, capture_locations=False)
    changed = False
    for loop in _loops_innermost_first(graph.body):
        nodes = transposed_loop_weights(loop)
        if nodes:
            _rewrite(graph, builder, loop, nodes, stats)
            changed = True
    return graph, changed
