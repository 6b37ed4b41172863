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

__all__ = ["fold_norm_affine"]


def _stored(g: Graph, value) -> np.ndarray | None:
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
    scale = _stored(g, norm.inputs[1])
    shift = _stored(g, norm.inputs[2]) if len(norm.inputs) > 2 else None
    if scale is None or (len(norm.inputs) > 2 and shift is None):
        return None
    readers = []
    for user, i in out.uses:
        if user.op != "linear" or i != 0:
            return None
        w = _stored(g, user.inputs[1])
        if w is None or w.ndim != 2 or (len(user.inputs) > 2 and _stored(g, user.inputs[2]) is None):
            return None
        readers.append(user)
    return scale, shift, readers


def _param(g: Graph, array: np.ndarray, stem: str):
    name = g.fresh_param_name(stem)
    return g.add_param(name, TensorType(array.shape, "float32"), np.ascontiguousarray(array, np.float32), "param")


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
            w = _stored(g, lin.inputs[1])
            transpose_b = lin.attrs.get("transpose_b", True)
            w_in = w if transpose_b else w.T  # (out, in)
            bias = _stored(g, lin.inputs[2]) if len(lin.inputs) > 2 else np.zeros(w_in.shape[0], np.float32)
            new_w = w_in * scale[None, :]
            new_b = bias + (w_in @ shift if shift is not None else 0.0)
            wv = _param(g, new_w if transpose_b else new_w.T, f"{lin.inputs[1].name}.norm_folded")
            bv = _param(g, new_b, f"{lin.inputs[2].name if len(lin.inputs) > 2 else lin.inputs[1].name}"
                                  f".norm_folded_bias")
            with b.inserting_before(lin), b.provenance(lin.scope, lin.loc):
                y = b.emit1("linear", [lin.inputs[0], wv, bv], dict(lin.attrs))
            g.replace_all_uses_with(lin.outputs[0], y)
            g.erase(lin)
        with b.inserting_before(norm), b.provenance(norm.scope, norm.loc):
            plain = b.emit1("layer_norm", [norm.inputs[0]], dict(norm.attrs))
        g.replace_all_uses_with(norm.outputs[0], plain)
        g.erase(norm)
        changed = True
    if changed:
        from .quantize import drop_unused_params  # (quantize imports this module's siblings)

        drop_unused_params(g)
        g.verify()
    return g, changed


@register_pass("fold_norm_affine")
def _fold_norm_affine_pass(graph: Graph):
    """Fold last-axis LayerNorm scales and shifts into the linear layers that read them."""
    return fold_norm_affine(graph)
