"""Fold a LayerNorm's scale and shift into the linear layers that read it (before int8 quantization).

``linear(layer_norm(x) * g + b, W, c) == linear(layer_norm(x), W * g, c + W @ b)`` (``W`` is (out, in),
``g``/``b`` scale the ``in`` features). When every reader of a last-axis ``layer_norm`` with stored
scale/shift is such a ``linear`` with a stored weight — the pre-norm Transformer's q/k/v projections
and first feed-forward layer —, the scale and shift move into those weights and biases and the norm
keeps no affine parameters: a quantized file then stores two fewer vectors per norm, and the norm's
output is what the quantized linears read anyway.

Run it before calibration (``gf.quantize`` does, for the int8 modes with ``other_params="int8"``):
the activation between the norm and the linears changes.
"""
from __future__ import annotations

import numpy as np

from graphforge.ir.graph import Graph, Node
from graphforge.ir.types import TensorType
from graphforge.trace.builder import Builder

from .registry import register_pass

__all__ = ["fold_norm_affine", "stored_float32", "new_float32_param", "linear_readers", "replace_node",
           "drop_unused_and_verify"]


def stored_float32(g: Graph, value) -> np.ndarray | None:
    """``value``'s array when it is a stored float32 parameter, buffer or constant; else None."""
    if value.kind in ("param", "buffer", "const") and value.name in g.params and value.type.dtype == "float32":
        return np.asarray(g.params[value.name], np.float32)
    return None


def _foldable(g: Graph, norm: Node):
    """(scale, shift or None, readers) when ``norm`` can be folded, else None."""
    if norm.op != "layer_norm" or len(norm.inputs) < 2:
        return None
    x, out = norm.inputs[0], norm.outputs[0]
    if norm.attrs["axis"] % x.type.rank != x.type.rank - 1 or g.is_output(out) or not out.uses:
        return None
    scale = stored_float32(g, norm.inputs[1])
    shift = stored_float32(g, norm.inputs[2]) if len(norm.inputs) > 2 else None
    if scale is None or (len(norm.inputs) > 2 and shift is None):
        return None
    readers = linear_readers(g, out)
    return None if readers is None else (scale, shift, readers)


def linear_readers(g: Graph, value, skip=None) -> list[Node] | None:
    """Every reader of ``value`` but ``skip`` when all are ``linear`` nodes reading it as their input
    with a stored 2-D float32 weight (and a stored bias, if any) — the linears a fold can rewrite
    by changing their parameters; else None."""
    readers = []
    for user, i in value.uses:
        if user is skip:
            continue
        if user.op != "linear" or i != 0:
            return None
        w = stored_float32(g, user.inputs[1])
        if w is None or w.ndim != 2 or (len(user.inputs) > 2 and stored_float32(g, user.inputs[2]) is None):
            return None
        readers.append(user)
    return readers


def new_float32_param(g: Graph, array: np.ndarray, stem: str):
    """A new float32 parameter of ``g`` holding ``array``, named after ``stem``."""
    name = g.fresh_param_name(stem)
    return g.add_param(name, TensorType(array.shape, "float32"), np.ascontiguousarray(array, np.float32), "param")


def replace_node(b: Builder, g: Graph, node: Node, inputs, attrs: dict | None = None):
    """Emit ``node``'s op on ``inputs`` in its place (its provenance; its attributes unless given),
    route its readers to the new result and erase it. Returns the new result."""
    with b.inserting_before(node), b.provenance(node.scope, node.loc):
        y = b.emit1(node.op, list(inputs), dict(node.attrs if attrs is None else attrs))
    g.replace_all_uses_with(node.outputs[0], y)
    g.erase(node)
    return y


def fold_norm_affine(g: Graph) -> tuple[Graph, bool]:
    """Fold, in place, every foldable ``layer_norm``'s scale and shift (see the module docstring) into
    its reader linears. Returns ``(g, changed)``; parameters no longer read are removed."""
    b = Builder(g, capture_locations=False)
    changed = False
    for norm in list(g.nodes):
        found = _foldable(g, norm)
        if found is None:
            continue
        scale, shift, readers = found
        for lin in readers:
            w = stored_float32(g, lin.inputs[1])
            transpose_b = lin.attrs.get("transpose_b", True)
            w_in = w if transpose_b else w.T  # (out, in)
            bias = stored_float32(g, lin.inputs[2]) if len(lin.inputs) > 2 else np.zeros(w_in.shape[0], np.float32)
            new_w = w_in * scale[None, :]
            new_b = bias + (w_in @ shift if shift is not None else 0.0)
            wv = new_float32_param(g, new_w if transpose_b else new_w.T, f"{lin.inputs[1].name}.norm_folded")
            bv = new_float32_param(g, new_b, f"{lin.inputs[2].name if len(lin.inputs) > 2 else lin.inputs[1].name}"
                                  f".norm_folded_bias")
            replace_node(b, g, lin, [lin.inputs[0], wv, bv])
        replace_node(b, g, norm, [norm.inputs[0]])
        changed = True
    if changed:
        drop_unused_and_verify(g)
    return g, changed


def drop_unused_and_verify(g: Graph) -> None:
    """After a parameter-rewriting fold: remove the parameters nothing reads any more, check ``g``."""
    from .quantize import drop_unused_params  # (quantize imports this module's siblings)

    drop_unused_params(g)
    g.verify()


@register_pass("fold_norm_affine")
def _fold_norm_affine_pass(graph: Graph):
    """Fold last-axis LayerNorm scales and shifts into the linear layers that read them."""
    return fold_norm_affine(graph)
