"""Move a residual branch's output bias into the LayerNorm that produced the other summand.

In a post-norm Transformer block ``z = layer_norm(s, g, beta)`` feeds both the branch and the
residual sum: ``out = z + linear(h, W2, b2)``, and every other reader of ``z`` is a ``linear``
(``z @ W1ᵀ + b1``). Adding ``b2`` to ``z`` instead of to the branch changes nothing exactly::

    z' = layer_norm(s, g, beta + b2)        (= z + b2)
    linear(z', W1, b1 - W1 @ b2)            (= linear(z, W1, b1))
    out = z' + linear(h, W2)                (= z + linear(h, W2, b2))

so the branch's bias add disappears. On onnxruntime's CPU kernels that is one elementwise pass over
the activations fewer per block (the feed-forward's second layer; the attention output projection
of every layer after the first, whose residual is the previous block's norm). Float rounding moves
by ~1 ulp of the folded biases. Parameters change: the pass is for inference exports
(``to_onnx(..., contrib_ops=True)`` runs it on a copy), not for a graph that is still trained.
"""
from __future__ import annotations

import numpy as np

from graphforge.ir.graph import Graph, Node
from graphforge.trace.builder import Builder

from .fold_norm import drop_unused_and_verify, linear_readers, new_float32_param, replace_node, stored_float32
from .registry import register_pass

__all__ = ["fold_residual_bias", "has_residual_bias"]


def _biased_branch(g: Graph, value):
    """(linear node, its bias) when ``value`` is a ``linear`` read once, with a stored 1-D bias and
    no fused activation; else None."""
    lin = value.producer
    if lin is None or lin.op != "linear" or len(lin.inputs) < 3 or len(value.uses) != 1 or g.is_output(value):
        return None
    if lin.attrs.get("activation", "none") != "none":
        return None
    bias = stored_float32(g, lin.inputs[2])
    return (lin, bias) if bias is not None and bias.ndim == 1 else None


def _foldable_norm(g: Graph, value, add: Node, width: int):
    """(norm node, its shift or None, the other reader linears) when ``value`` is a last-axis
    ``layer_norm`` output of that ``width`` whose readers besides ``add`` are linears with stored
    weights (and biases, if any); else None."""
    norm = value.producer
    if norm is None or norm.op != "layer_norm" or g.is_output(value):
        return None
    x = norm.inputs[0]
    if norm.attrs["axis"] % x.type.rank != x.type.rank - 1 or x.type.shape[-1] != width:
        return None
    shift = stored_float32(g, norm.inputs[2]) if len(norm.inputs) > 2 else None
    if len(norm.inputs) > 2 and shift is None:
        return None
    readers = linear_readers(g, value, skip=add)
    return None if readers is None else (norm, shift, readers)


def _match(g: Graph, add: Node):
    if add.op != "add" or len(add.inputs) != 2 or add.inputs[0].type != add.inputs[1].type:
        return None
    for r, b in ((0, 1), (1, 0)):
        branch = _biased_branch(g, add.inputs[b])
        if branch is None:
            continue
        norm = _foldable_norm(g, add.inputs[r], add, branch[1].shape[0])
        if norm is not None:
            return branch, norm
    return None


def has_residual_bias(g: Graph) -> bool:
    """Whether :func:`fold_residual_bias` would change ``g`` (read only: callers that fold a copy
    need not copy a graph with nothing to fold)."""
    return any(_match(g, node) is not None for node in g.nodes)


def fold_residual_bias(g: Graph) -> tuple[Graph, bool]:
    """Fold, in place, every residual branch bias the module docstring describes into the norm
    beside it. Returns ``(g, changed)``; parameters no longer read are removed."""
    b = Builder(g, capture_locations=False)
    changed = False
    for add in list(g.nodes):  # (a fold erases norms and linears, never an add)
        found = _match(g, add)
        if found is None:
            continue
        (lin, bias), (norm, shift, readers) = found
        # named after the norm's own parameters (its input is an unnamed activation)
        stem = next((v.name for v in norm.inputs[1:][::-1] if v.name), None) or norm.scope or "layer_norm"
        new_shift = new_float32_param(g, (shift if shift is not None else 0.0) + bias, f"{stem}.residual_shift")
        scale = norm.inputs[1] if len(norm.inputs) > 1 else \
            new_float32_param(g, np.ones(bias.shape[0], np.float32), f"{stem}.residual_scale")
        z = replace_node(b, g, norm, [norm.inputs[0], scale, new_shift])  # its readers now read z + b2
        for reader in readers:
            w = stored_float32(g, reader.inputs[1])
            w_out_in = w if reader.attrs.get("transpose_b", True) else w.T
            old = (stored_float32(g, reader.inputs[2]) if len(reader.inputs) > 2
                   else np.zeros(w_out_in.shape[0], np.float32))
            # in float64, then rounded once: the reader's output moves by ~1 ulp at most
            moved = w_out_in.astype(np.float64) @ bias.astype(np.float64)
            new_bias = new_float32_param(g, old.astype(np.float64) - moved, f"{reader.inputs[1].name}.residual_bias")
            replace_node(b, g, reader, [z, reader.inputs[1], new_bias])
        replace_node(b, g, lin, lin.inputs[:2])
        changed = True
    if changed:
        drop_unused_and_verify(g)
    return g, changed


@register_pass("fold_residual_bias")
def _fold_residual_bias_pass(graph: Graph):
    """Move post-norm residual branches' output biases into the LayerNorm beside them."""
    return fold_residual_bias(graph)
