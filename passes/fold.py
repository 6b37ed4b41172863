"""``fold``: constant folding with the NumPy reference (``runtimes/reference``'s ``evaluate_node``).

A node folds when every input is a constant (a ``constant`` node or a ``const`` parameter), its
result types are static, and its op is not random. Results of at most :data:`INLINE_MAX_ELEMENTS`
elements become ``constant`` nodes; larger ones become ``const`` parameters — but only up to
:data:`FOLD_MAX_ELEMENTS`, and never when the result is larger than the constants it is computed
from (so a ``broadcast_to`` of a scalar is not materialised). Nodes that read inputs, trainable
parameters or buffers are never folded. Folded values keep the folded node's scope and location."""
from __future__ import annotations

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import GraphforgeError
from graphforge.ir.graph import Graph
from graphforge.ir.types import TensorType
from graphforge.ops import registry
from graphforge.ops.evaluate import evaluate_node
from graphforge.trace.builder import Builder

from .registry import register_pass
from .rewrite import constant_array, erase_dead, output_ids, replace_value

__all__ = ["fold", "INLINE_MAX_ELEMENTS", "FOLD_MAX_ELEMENTS"]

INLINE_MAX_ELEMENTS = 64
FOLD_MAX_ELEMENTS = 1 << 20


def _numel(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


@register_pass("fold", preserves=("typed",))
def fold(graph: Graph) -> tuple[Graph, bool]:
    outs = output_ids(graph)
    builder = Builder(graph, capture_locations=False)
    folded = []
    # Region bodies too (walk); the constants built below go before the cursor: not revisited.
    for node in graph.walk():
        if not _foldable(graph, node):
            continue
        args = [constant_array(graph, v) for v in node.inputs]
        in_size = sum(int(a.size) for a in args)
        sizes = [_numel(o.type) for o in node.outputs]
        if any(s > INLINE_MAX_ELEMENTS and (s > FOLD_MAX_ELEMENTS or s > in_size) for s in sizes):
            continue
        try:
            results = evaluate_node(node, args, {})
        except GraphforgeError:
            continue
        replacements = []
        added_params = []
        # Inline constants take the folded node's place in the order.
        with builder.inserting_before(node), builder.recording() as emitted:
            for out, array in zip(node.outputs, results):
                array = np.asarray(array).astype(_dt.to_numpy_dtype(out.type.dtype), copy=False)
                if array.shape != out.type.shape:
                    replacements = None
                    break
                if array.size <= INLINE_MAX_ELEMENTS:
                    with builder.provenance(node.scope, node.loc):
                        replacements.append(builder.emit1("constant", [], {"value": np.array(array)}))
                else:
                    if id(out) in outs:  # an output may not become a parameter
                        replacements = None
                        break
                    stem = f"{node.scope}.folded" if node.scope else "folded"
                    name = graph.fresh_param_name(stem)
                    replacements.append(graph.add_param(name, out.type, np.ascontiguousarray(array), "const"))
                    added_params.append(name)
        if replacements is None or not all(o.type == r.type for o, r in zip(node.outputs, replacements)):
            graph.remove_nodes(emitted)  # undo: nothing reads them yet
            for name in added_params:
                graph.remove_param(name)
            continue
        for out, new in zip(node.outputs, replacements):
            replace_value(graph, out, new, outs)
        folded.append(node)  # now unused; erased below with any constants it alone read
    if folded:
        erase_dead(graph, folded, outs)
    return graph, bool(folded)


# a dequantize_linear of constants is how quantized weights are stored (QDQ): folding it would write
# the float weights back into the file
_KEEP = {"dequantize_linear"}


def _foldable(graph: Graph, node) -> bool:
    if node.op == "constant" or not node.outputs or node.regions or node.op in _KEEP:
        # A region op is not folded whole (its body is folded in place); its erasure would also
        # drop the body nodes the walk is about to visit.
        return False
    # Cheapest test first: most nodes read a non-constant.
    for v in node.inputs:
        if v.producer is not None:
            if v.producer.op != "constant":
                return False
        elif v.kind != "const" or v.name not in graph.params:
            return False
    if not all(o.type.is_static for o in node.outputs):
        return False
    try:
        opdef = registry.get_op(node.op)
    except GraphforgeError:
        return False
    return not opdef.random
