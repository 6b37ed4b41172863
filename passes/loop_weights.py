"""``loop_weights``: a loop-invariant weight that a loop body reads transposed is transposed once,
before the loop; a scan input's projection bias is added in the body instead of over the whole
stacked input.

``linear(x, w, b)`` (``transpose_b=True``, the layers' form: ``w`` is ``(out, in)``) contracts ``x``
with ``w``'s second dimension. XLA:CPU hands such a dot to YNNPACK, which transposes ``w`` into
its own layout on every call — inside a ``scan`` body that is once per step, for a weight that
never changes (an LSTM's ``W_hh``: a (4H, H) transpose per time step; ``ynn::transpose_x32`` was
4 % of the LSTM train step's CPU time, docs/benchmarks.md "LSTM train step"). This pass rewrites
each such ``linear`` whose weight is one of the loop's consts to ``linear(x, transpose(w), b,
transpose_b=False)`` and lets :mod:`hoist <graphforge.passes.hoist>` move the transpose out of the
loop, so the body's dot reads a ``(in, out)`` weight as it is.

An input projection ``xs = linear(x, w, b)`` that only a ``scan`` reads (the recurrent layers'
``x @ W_ihᵀ + b_ih``, computed for the whole sequence before the loop) becomes ``linear(x, w)``, and
the body adds ``b`` (a new loop const) to its slice: XLA:CPU computed the (T, B, G·H) projection with
one YNNPACK dot and then wrote it again, bias added, to a second buffer of the same size (an 8 MiB
pass and 8 MiB more temporary memory per LSTM layer in the benchmark); in the body the add fuses
into the gate nonlinearities for free. Same operations in the same order: the results are equal.

Only weights that are loop consts (region arguments below ``num_consts``) are rewritten: a weight
computed per step gains nothing. The JAX lowering runs this pass on its working copy of a graph
(``runtimes/jax``: ``prepared``); the graph a user holds, and its ONNX export (whose native
``LSTM``/``GRU`` ops read the layers' scans as traced), keep the ``(out, in)`` form.
"""
from __future__ import annotations

from graphforge.ir.graph import Graph, Node
from graphforge.trace.builder import Builder

from .hoist import _hoist_loop, _loops_innermost_first, rebuild_loop
from .registry import register_pass

__all__ = ["loop_weights", "transposed_loop_weights", "scanned_biases"]


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


def scanned_biases(loop: Node) -> list[int]:
    """Operand indices of ``loop``'s scanned inputs (a ``scan``'s xs) that are ``linear(x, w, b)``
    with a 1-D bias, no activation, and no other reader."""
    if loop.op != "scan":
        return []
    start = loop.attrs.get("num_consts", 0) + loop.attrs["num_carry"]
    found = []
    for i in range(start, len(loop.inputs)):
        v = loop.inputs[i]
        p = v.producer
        if (p is not None and p.op == "linear" and len(p.inputs) == 3 and p.attrs.get("activation", "none") == "none"
                and len(v.uses) == 1 and p.inputs[2].type.rank == 1 and v.type.rank >= 2):
            found.append(i)
    return found


def _biases_into_body(graph: Graph, builder: Builder, loop: Node, indices: list[int], stats: dict) -> Node:
    nc = loop.attrs.get("num_consts", 0)
    (region,) = loop.regions
    first = next(iter(region))
    inputs = list(loop.inputs)
    biases, projections = [], []
    for i in indices:
        proj = inputs[i].producer
        with builder.inserting_before(loop), builder.provenance(proj.scope, proj.loc):
            inputs[i] = builder.emit1("linear", list(proj.inputs[:2]), dict(proj.attrs))
        sliced = region.arguments[i]
        bias = region.add_argument(proj.inputs[2].type, index=nc + len(biases))
        with builder.inserting_before(first), builder.provenance(proj.scope, proj.loc):
            added = builder.emit1("add", [sliced, bias])
        for user, k in list(sliced.uses):
            if user is not added.producer:
                user.set_input(k, added)
        biases.append(proj.inputs[2])
        projections.append(proj)
        stats["biases"] = stats.get("biases", 0) + 1
    new_loop = rebuild_loop(graph, builder, loop, inputs[:nc] + biases + inputs[nc:], nc + len(biases), [region])
    for proj in projections:
        graph.erase(proj)
    return new_loop


def _rewrite(graph: Graph, builder: Builder, loop: Node, nodes: list[Node], stats: dict) -> Node:
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
    return _hoist_loop(graph, builder, loop, stats) or loop


@register_pass("loop_weights", preserves=("typed",), stats=True)
def loop_weights(graph: Graph, *, stats: dict | None = None) -> tuple[Graph, bool]:
    stats = {} if stats is None else stats
    builder = Builder(graph, capture_locations=False)
    changed = False
    for loop in _loops_innermost_first(graph.body):
        nodes = transposed_loop_weights(loop)
        if nodes:
            loop = _rewrite(graph, builder, loop, nodes, stats)
            changed = True
        indices = scanned_biases(loop)
        if indices:
            _biases_into_body(graph, builder, loop, indices, stats)
            changed = True
    return graph, changed
