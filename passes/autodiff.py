"""Reverse-mode differentiation as a graph-to-graph pass (``gf.grad``).

Walk the nodes that lie between the ``wrt`` values and the differentiated output in reverse,
emit each op's VJP rule (written with graphforge ops) as new nodes, accumulate cotangents with
``add``, and treat missing cotangents as symbolic zeros. The result is an ordinary Graph: it prints,
optimises, and lowers to JAX and to ONNX like any other.

Registered as the pass ``grad`` (``gf.optimize(g, "infer,grad,dce")``): the gradient of the first
output with respect to every trainable parameter, as a new graph (the pass is not in place).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import GraphforgeError, ShapeError
from graphforge.ir.graph import Graph, Value
from graphforge.ops._region_ad import reverse_sweep
from graphforge.trace.builder import Builder

from .registry import register_pass

__all__ = ["grad", "grad_pass", "GRAD_PREFIX"]

GRAD_PREFIX = "grad:"


def _resolve_wrt(graph: Graph, wrt) -> list[Value]:
    by_name = {v.name: v for v in graph.inputs}
    by_name.update(graph.param_values)
    if wrt == "params":
        names = graph.trainable_names
    elif isinstance(wrt, str):
        names = [wrt]
    else:
        names = list(wrt)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GraphforgeError(f"gf.grad: wrt names {', '.join(map(repr, repeated))} more than once")
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise GraphforgeError(f"gf.grad: no input or parameter named {', '.join(map(repr, unknown))}; "
                              f"graph {graph.name!r} has inputs {[v.name for v in graph.inputs]} and "
                              f"{len(graph.param_values)} parameters")
    values = [by_name[n] for n in names]
    for v in values:
        if not _dt.is_float(v.dtype):
            raise GraphforgeError(f"gf.grad: cannot differentiate with respect to {v.name} of type {v.type} "
                                  "(only floating-point values have gradients)")
    return values


def _active_nodes(graph: Graph, sources: Iterable[Value], target: Value) -> set[int]:
    """Nodes that depend on a source and that the target depends on."""
    forward = {id(v) for v in sources}
    live: set[int] = set()
    for node in graph.nodes:
        if any(id(v) in forward for v in node.inputs):
            live.add(id(node))
            forward.update(id(o) for o in node.outputs)
    needed: set[int] = set()
    wanted = {id(target)}
    for node in reversed(graph.nodes):
        if any(id(o) in wanted for o in node.outputs):
            needed.add(id(node))
            wanted.update(id(v) for v in node.inputs)
    return live & needed


def _zeros(builder: Builder, value: Value) -> Value:
    zero = builder.emit1("constant", [], {"value": np.zeros((), dtype=_dt.to_numpy_dtype(value.dtype))})
    return builder.emit1("broadcast_to", [zero], {"shape": list(value.type.shape)})


def grad(graph: Graph, wrt="params", output: int = 0, *, keep_outputs: bool = False,
         cotangent_input: bool = False, optimize: bool | str = True, remat=None) -> Graph:
    """Differentiate ``graph.outputs[output]`` with respect to ``wrt`` (``"params"`` for every trainable
    parameter, or a list of input/parameter names).

    The new graph's outputs are the differentiated output followed by one gradient per ``wrt`` entry
    (named ``grad:<name>``); ``keep_outputs=True`` appends the other original outputs after them.
    A non-scalar output needs ``cotangent_input=True``, which adds an input ``d_output`` (a VJP).

    ``optimize`` (default True) runs the default pass pipeline on the result (CSE of forward
    recomputations, DCE of unused cotangents, folding, fusion); a pipeline string runs that one
    instead and False returns the raw gradient graph. The outputs — their number, order, names and
    values — are the same either way.

    ``remat`` (a policy for every top-level module, or scope -> policy; added to the scopes
    ``nn.remat``/``gf.checkpoint`` marked) recomputes those regions' activations in the backward
    pass instead of keeping them (:mod:`graphforge.passes.remat`)."""
    if not 0 <= output < len(graph.outputs):
        raise GraphforgeError(f"gf.grad: output {output} does not exist (graph has {len(graph.outputs)} outputs)")
    g = graph.copy()
    target = g.outputs[output]
    target_name = g.output_names[output]
    if not _dt.is_float(target.dtype):
        raise GraphforgeError(f"gf.grad: output {target_name!r} has type {target.type}; only floating-point "
                              "outputs can be differentiated")
    if target.type.shape and not cotangent_input:
        raise ShapeError(f"gf.grad: output {target_name!r} has shape {target.type}, not a scalar",
                         hint="reduce it to a scalar loss (e.g. .mean()), or pass cotangent_input=True for a VJP")
    wrt_values = _resolve_wrt(g, wrt)
    from .remat import apply_remat, remat_regions
    regions = remat_regions(g, remat)
    forward = {id(n) for n in g.nodes} if regions else set()
    builder = Builder(g, capture_locations=False)
    cotangents: dict[int, Value] = {}
    with builder.activate():
        if cotangent_input:
            seed = g.add_input("d_output", target.type)
        else:
            seed = builder.emit1("constant", [], {"value": np.ones((), dtype=_dt.to_numpy_dtype(target.dtype))})
        cotangents[id(target)] = seed
        active = _active_nodes(g, wrt_values, target)
        requires = {id(v) for v in wrt_values}
        for node in g.nodes:
            if id(node) in active:
                requires.update(id(o) for o in node.outputs)
        forward_nodes = [n for n in g.nodes if id(n) in active]
        reverse_sweep(builder, [(n, list(n.inputs), list(n.outputs)) for n in forward_nodes], cotangents,
                      requires, relocate_errors=True)
        grads = []
        for v in wrt_values:
            c = cotangents.get(id(v))
            grads.append(c if c is not None else _zeros(builder, v))
    # A loop's VJP may replace its forward node by one that also saves residuals (redirecting every
    # use and graph output), so the differentiated output is read again.
    target = g.outputs[output]
    outputs = [target] + grads
    names = [target_name] + [GRAD_PREFIX + v.name for v in wrt_values]
    if keep_outputs:
        for i, (o, n) in enumerate(zip(graph.outputs, graph.output_names)):
            if i != output:
                outputs.append(g.outputs[i])
                names.append(n)
    g.set_outputs(outputs, names)
    g.name = f"{graph.name}_grad"
    apply_remat(g, forward, regions)  # a hook: the logic is in passes/remat.py
    if optimize:
        from graphforge.passes import optimize as run_pipeline
        g = run_pipeline(g, "default" if optimize is True else optimize)
    return g


@register_pass("grad", in_place=False, requires=("typed",), preserves=("typed",))
def grad_pass(graph: Graph) -> tuple[Graph, bool]:
    """Outputs ``[loss, grad:<param>...]``: ``gf.grad(graph)`` without its own optimisation (the
    pipeline decides what runs after it)."""
    return grad(graph, optimize=False), True
