"""``decompose``: replace composite ops a target cannot lower by their registry decomposition.

A composite op (``linear``, ``layer_norm``, ``attention``, ``softmax``…) carries ``OpDef.decompose``,
written with graphforge ops. Which nodes to keep is the target's business: each back end's lowering
table says, per node, whether it lowers it as it is (``runtimes/_registry.py``
``LoweringTable.can_lower``; the ONNX table refuses ``layer_norm`` where onnxruntime has no
LayerNormalization kernel, the JAX table has no ``layer_norm`` at all). ``decompose(graph, keep)``
rewrites every other node that has a decomposition, and the nodes its decomposition produced in turn,
until only kept or primitive ops remain. Back ends run it before lowering (``gf.run``, ``gf.to_onnx``),
so no back end decomposes an op inside itself.

As a registered pass (``"decompose"`` in a pipeline) it keeps nothing: every composite op becomes
primitives. The decomposed nodes keep the provenance (scope and ``file:line``) of the node they
replace (rule 5).
"""
from __future__ import annotations

from typing import Callable

from graphforge import dtypes as _dt
from graphforge.errors import PassError
from graphforge.ir.graph import Graph, Node, Value
from graphforge.ops.registry import lookup_op
from graphforge.trace.tensor import Tensor, apply

from .registry import register_pass
from .rewrite import Rewriter, RewriteRefused, can_replace, erase_dead, output_ids, replace_value

__all__ = ["decompose", "decompose_all", "MAX_DEPTH"]

# A decomposition that (through others) produces its own op again would never end; real ones are
# two or three levels deep (linear → gelu …), so a chain this long is a registry bug.
MAX_DEPTH = 16


def _decomposable(node: Node, keep: Callable[[Node], bool]) -> bool:
    opdef = lookup_op(node.op)
    return opdef is not None and opdef.decompose is not None and not keep(node)


def _new_nodes(results: list[Value], known: set[int]) -> list[Node]:
    """The nodes a decomposition emitted: the producers reachable from its results that were not in
    the graph before (found by walking back, so the graph's node container is only read)."""
    found: dict[int, Node] = {}
    stack = [v.producer for v in results if v.producer is not None]
    while stack:
        node = stack.pop()
        if id(node) in known or id(node) in found:
            continue
        found[id(node)] = node
        stack.extend(v.producer for v in node.inputs if v.producer is not None)
    return list(found.values())


def decompose(graph: Graph, keep: Callable[[Node], bool] | None = None, *,
              refused: list | None = None) -> tuple[Graph, bool]:
    """Decompose, in place, every node that has a registry decomposition and that ``keep`` (a
    target's ``can_lower``) refuses; ``keep=None`` keeps nothing. Returns ``(graph, changed)``.

    A decomposition whose types do not check for a node (e.g. it needs a static dim the node does
    not have) leaves the node as it is; with ``refused`` (a list) given, ``(node, reason)`` is
    appended there so the back end can name the node it still cannot lower."""
    keep = keep or (lambda node: False)
    # Region bodies too (graph.walk): a composite op inside a loop body is decomposed in place there.
    work = [(node, 0) for node in graph.walk() if _decomposable(node, keep)]
    if not work:
        return graph, False
    known = {id(n) for n in graph.walk()}
    outs = output_ids(graph)
    rw = Rewriter(graph)
    done: list[Node] = []
    while work:
        node, depth = work.pop()
        if depth > MAX_DEPTH:
            raise PassError(f"decomposing {node.op} does not terminate: still composite after {MAX_DEPTH} "
                            "levels of decomposition", scope=node.scope, op=node.op, loc=node.loc,
                            hint="an OpDef.decompose must end in ops without a decomposition")
        opdef = lookup_op(node.op)
        try:
            with rw.at([node], before=node):  # in place: the node's inputs are all defined here
                results = opdef.decompose(_inputs_with_gradient_contract(rw, node, opdef), dict(node.attrs))
        except RewriteRefused as exc:
            if refused is not None:
                refused.append((node, f"its decomposition does not apply: {exc}"))
            continue
        values = [r.value if isinstance(r, Tensor) else r for r in results]
        if len(values) != len(node.outputs) or any(v.type != o.type for v, o in zip(values, node.outputs)):
            raise PassError(f"the decomposition of {node.op} gives {[str(v.type) for v in values]}, the op "
                            f"{[str(o.type) for o in node.outputs]}", scope=node.scope, op=node.op, loc=node.loc,
                            hint="OpDef.decompose must return the op's results with the op's types")
        emitted = _new_nodes(values, known)
        if not all(can_replace(graph, old, new, outs) for old, new in zip(node.outputs, values)):
            # only when an output of the graph would become an input or parameter: keep the node
            erase_dead(graph, emitted, outs)
            if refused is not None:
                refused.append((node, "its decomposition returns an input as a graph output"))
            continue
        for old, new in zip(node.outputs, values):
            replace_value(graph, old, new, outs)
        known.update(id(n) for n in emitted)
        done.append(node)
        work.extend((n, depth + 1) for n in emitted if _decomposable(n, keep))
    if not done:
        return graph, False
    graph.remove_nodes(done)
    return graph, True


def _inputs_with_gradient_contract(rw: Rewriter, node: Node, opdef) -> list:
    """The node's inputs for its decomposition; a float input the op declares non-differentiable
    (RoI boxes) goes through ``stop_gradient``, so the primitives do not start
    differentiating it: gf.grad and jax.grad of the decomposed graph agree with the op's own VJP."""
    args = [rw.t(v) for v in node.inputs]
    for i in opdef.nondiff_inputs:
        if i < len(args) and _dt.is_float(node.inputs[i].type.dtype):
            args[i] = apply("stop_gradient", args[i])
    return args


@register_pass("decompose")
def decompose_all(graph: Graph) -> tuple[Graph, bool]:
    """The pipeline pass: every composite op becomes primitives (a target that lowers nothing natively)."""
    return decompose(graph)
