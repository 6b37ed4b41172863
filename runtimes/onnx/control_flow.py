"""ONNX lowerings of the control-flow ops: ``cond`` → ``If``, ``scan`` → ``Scan`` (``Loop`` when it has
no scanned inputs), ``while_loop`` → ``Loop``.

graphforge regions capture explicitly (every outer value a body reads is an operand and a region
argument); ONNX subgraphs capture by name. So a region argument that stands for an operand the ONNX
op does not pass to its body (``cond``'s operands, a scan's or loop's constants) is simply *named*
like the outer operand inside the subgraph, and only the values ONNX really feeds per iteration
(carries, scanned slices, the loop counter) become subgraph inputs. Every region is lowered through
the exporter's own driver (so nested regions, half types, decompositions and unsupported-op reports
work inside bodies as at the top level) into a node list of its own; names stay unique across the
whole model (ONNX forbids shadowing) because one :class:`Emitter` hands them all out.

``while_loop`` follows Loop's order of evaluation: the ``cond`` region is evaluated once in the outer
graph for the first check and again at the end of each body on the new carry (Loop's ``cond_out``);
``max_iterations >= 0`` is Loop's trip count ``M``. A reverse ``scan`` sets every
``scan_input_directions``/``scan_output_directions`` to 1 (the first step reads the last slice and
its output lands last), like ``jax.lax.scan(reverse=True)``.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

from onnx import TensorProto, helper

from graphforge.ir.types import TensorType

from .lower import DTYPE_GENERIC, lowers, onnx_dtype
from . import recurrent

__all__ = ["lower_region_inline", "region_subgraph", "reads", "subgraphs"]

# Control flow only routes values: the exporter must not raise half-type operands to float32 around
# it (the nodes inside the regions do that themselves, one by one).
DTYPE_GENERIC.update({"cond", "scan", "while_loop"})


@contextlib.contextmanager
def _own_node_list(ctx):
    """Emit into a fresh node list (a subgraph's); run-time dims computed inside stay inside."""
    saved_nodes, saved_dims = ctx.nodes, ctx._dims
    ctx.nodes, ctx._dims = [], dict(saved_dims)
    try:
        yield ctx.nodes
    finally:
        ctx.nodes, ctx._dims = saved_nodes, saved_dims


def _body_nodes(block):
    return [n for n in block if n.op != "yield"]


def lower_region_inline(ctx, block, arg_names: Sequence[str]) -> list[str]:
    """Lower ``block``'s nodes into the node list in progress with its arguments bound to
    ``arg_names``; returns the names of what it yields."""
    env = {id(a): name for a, name in zip(block.arguments, arg_names)}
    ctx.driver.lower_nodes(_body_nodes(block), env)
    return [env[id(v)] for v in block.results]


def _value_info(name: str, t):
    return helper.make_tensor_value_info(name, onnx_dtype(t.dtype), list(t.shape))


def _prune(nodes: list, results: Sequence[str]) -> list:
    """The nodes ``results`` depend on, in order (subgraph reads are counted by name)."""
    need, kept = set(results), []
    for node in reversed(nodes):
        if not need.isdisjoint(node.output):
            kept.append(node)
            need.update(reads(node))
    return kept[::-1]


def subgraphs(node) -> list:
    """The GraphProtos held in ``node``'s attributes (If's branches, a Loop's or Scan's body)."""
    out = []
    if not node.attribute:  # most nodes: no attribute to look through (the export walks every node)
        return out
    for attr in node.attribute:
        if attr.type == attr.GRAPH:
            out.append(attr.g)
        elif attr.type == attr.GRAPHS:
            out.extend(attr.graphs)
    return out


def reads(node) -> list[str]:
    """Every tensor name ``node`` reads, including what its subgraphs read (by name) from outside."""
    names = list(node.input)
    for g in subgraphs(node):
        for inner in g.node:
            names.extend(reads(inner))
    return names


def region_subgraph(ctx, name: str, inputs: Sequence[tuple[str, object]], build) -> object:
    """A ``GraphProto`` named ``name`` with formal ``inputs`` ((name, TensorType) pairs) whose
    nodes are what ``build()`` emits; ``build`` returns the (name, TensorType) of each output."""
    with _own_node_list(ctx) as nodes:
        outs = list(build())
        produced = {o for n in nodes for o in n.output}
        names, seen = [], set()
        for src, t in outs:
            # an output must be produced inside the subgraph, once: a pass-through argument, an outer
            # value or a second use of one result goes through an Identity
            if src not in produced or src in seen:
                src = ctx.op("Identity", [src])
                produced.add(src)
            seen.add(src)
            names.append(src)
        body = _prune(nodes, names)
    return helper.make_graph(body, name, [_value_info(n, t) for n, t in inputs],
                             [_value_info(n, t) for n, (_, t) in zip(names, outs)])


def _graph_name(ctx, what: str) -> str:
    stem = f"{ctx.scope}/{ctx.node.op}" if ctx.scope else ctx.node.op
    return ctx.reserve(f"{stem}_{what}")


def _as_bool(ctx, name: str, dtype: str) -> str:
    # cond's predicate may be int/float, meaning != 0 (Cast to BOOL is exactly that, NaN included)
    return name if dtype == "bool" else ctx.op("Cast", [name], to=TensorProto.BOOL)


def _as_list(out) -> list[str]:
    return [out] if isinstance(out, str) else list(out)


@lowers("cond")
def _cond(ctx, args, attrs):
    node = ctx.node
    out_types = [v.type for v in node.outputs]
    if not out_types:
        return []
    pred = _as_bool(ctx, args[0], node.inputs[0].type.dtype)
    operands = list(args[1:])
    branches = {}
    for key, region in zip(("then_branch", "else_branch"), node.regions):
        def build(region=region):
            return zip(lower_region_inline(ctx, region, operands), out_types)
        branches[key] = region_subgraph(ctx, _graph_name(ctx, key.split("_")[0]), [], build)
    return _as_list(ctx.op("If", [pred], outputs=len(out_types), **branches))


@lowers("scan")
def _scan(ctx, args, attrs):
    if attrs.get("recurrence"):  # an nn.LSTM/GRU/RNN layer: its native ONNX op where that applies
        native = recurrent.lower_native(ctx, args, attrs)
        if native is not None:
            return native
    node = ctx.node
    nc, nk = int(attrs.get("num_consts", 0)), int(attrs.get("num_carry", 0))
    reverse = bool(attrs.get("reverse", False))
    consts, init, xs = list(args[:nc]), list(args[nc:nc + nk]), list(args[nc + nk:])
    body = node.regions[0]
    carry_types = [a.type for a in body.arguments[nc:nc + nk]]
    slice_types = [a.type for a in body.arguments[nc + nk:]]
    out_types = [v.type for v in node.outputs]
    y_types = [t.with_shape(t.shape[1:]) for t in out_types[nk:]]
    carry_in = [ctx.fresh("carry") for _ in carry_types]
    if xs:
        x_in = [ctx.fresh("slice") for _ in slice_types]

        def build():
            return zip(lower_region_inline(ctx, body, consts + carry_in + x_in), carry_types + y_types)

        g = region_subgraph(ctx, _graph_name(ctx, "body"),
                            list(zip(carry_in, carry_types)) + list(zip(x_in, slice_types)), build)
        directions = {}
        if reverse:
            directions["scan_input_directions"] = [1] * len(xs)
            if y_types:
                directions["scan_output_directions"] = [1] * len(y_types)
        if not out_types:
            return []
        return _as_list(ctx.op("Scan", init + xs, outputs=len(out_types), body=g, num_scan_inputs=len(xs),
                               **directions))
    # no scanned inputs: Scan needs at least one, so a counted Loop (its scan outputs stack like ys)
    if not out_types:
        return []
    it, cond_in = ctx.fresh("iter"), ctx.fresh("cond")

    def build_loop():
        new = lower_region_inline(ctx, body, consts + carry_in)
        return [(cond_in, TensorType((), "bool"))] + list(zip(new, carry_types + y_types))

    g = region_subgraph(ctx, _graph_name(ctx, "body"),
                        [(it, TensorType((), "int64")), (cond_in, TensorType((), "bool"))]
                        + list(zip(carry_in, carry_types)), build_loop)
    length = attrs.get("length")
    outs = _as_list(ctx.op("Loop", [ctx.scalar_dim(length), ""] + init, outputs=len(out_types), body=g))
    if reverse:  # the loop ran forwards; ys of a reverse scan are stored in the order of xs
        big = -(2 ** 63)
        outs = outs[:nk] + [ctx.op("Slice", [y, ctx.ints([-1]), ctx.ints([big]), ctx.ints([0]), ctx.ints([-1])])
                            for y in outs[nk:]]
    return outs


@lowers("while_loop")
def _while_loop(ctx, args, attrs):
    node = ctx.node
    nc = int(attrs.get("num_consts", 0))
    consts, init = list(args[:nc]), list(args[nc:])
    cond_r, body_r = node.regions
    carry_types = [v.type for v in node.outputs]
    if not carry_types:
        return []
    pred_dtype = cond_r.results[0].type.dtype
    first = _as_bool(ctx, lower_region_inline(ctx, cond_r, consts + init)[0], pred_dtype)
    limit = int(attrs.get("max_iterations", -1))
    trip = ctx.scalar(limit, "int64") if limit >= 0 else ""
    it, cond_in = ctx.fresh("iter"), ctx.fresh("cond")
    carry_in = [ctx.fresh("carry") for _ in carry_types]

    def build():
        new = lower_region_inline(ctx, body_r, consts + carry_in)
        again = _as_bool(ctx, lower_region_inline(ctx, cond_r, consts + new)[0], pred_dtype)
        return [(again, TensorType((), "bool"))] + list(zip(new, carry_types))

    g = region_subgraph(ctx, _graph_name(ctx, "body"),
                        [(it, TensorType((), "int64")), (cond_in, TensorType((), "bool"))]
                        + list(zip(carry_in, carry_types)), build)
    return _as_list(ctx.op("Loop", [trip, first] + init, outputs=len(carry_types), body=g))
