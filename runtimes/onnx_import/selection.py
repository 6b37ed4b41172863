"""Importers for ONNX TopK onto ``graphforge/ops/selection.py`` (K must be a constant: the result
type holds it)."""
from __future__ import annotations

import numpy as np

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []


@importer("TopK")
def _topk(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    k = int(np.asarray(ctx.need_const(node, 1, "K")).reshape(-1)[0]) if ctx.has(node, 1) else int(a["k"])
    values, indices = ctx.emit_n("topk", [x], k=k, axis=int(a.get("axis", -1)),
                                     largest=bool(int(a.get("largest", 1))), sorted=bool(int(a.get("sorted", 1))))
    return [values, indices]


@importer("MaxUnpool")
def _max_unpool(ctx, node):
    """MaxUnpool(X, I[, output_shape]): X's values scattered into zeros of the output shape at the flat
    indices I (into the whole (N, C, *spatial) output, MaxPool's Indices convention): one scatter_add
    over the flattened output. Without output_shape each axis is (in - 1) * stride + kernel - pads."""
    from graphforge.ir.dims import dim_product

    a = attrs_of(node)
    x, idx = ctx.input(node, 0), ctx.input(node, 1)
    shape = list(x.type.shape)
    kernel = list(a["kernel_shape"])
    n = len(kernel)
    strides = list(a.get("strides", [1] * n))
    pads = list(a.get("pads", [0] * (2 * n)))
    out = shape[:2] + [(shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[n + i] for i in range(n)]
    zero = ctx.emit("broadcast_to", [ctx.scalar(0, x.type.dtype)], shape=[dim_product(out)])
    flat_i = ctx.emit("reshape", [idx], shape=[dim_product(shape)])
    flat_x = ctx.emit("reshape", [x], shape=[dim_product(shape)])
    y = ctx.emit("reshape", [ctx.emit("scatter_add", [zero, flat_i, flat_x], axis=0)], shape=out)
    if ctx.has(node, 2):  # the indices address the default shape; a larger output_shape pads at the end
        want = [int(d) for d in np.asarray(ctx.need_const(node, 2, "output_shape")).reshape(-1)]
        grow = [want[2 + i] - out[2 + i] for i in range(n)]
        if any(g < 0 for g in grow):
            unsupported(node, f"output_shape {want} smaller than the unpooled shape {out}")
        if any(grow):
            y = ctx.emit("pad", [y], pads=[0, 0, 0, 0] + [p for g in grow for p in (0, g)], value=0.0)
    return [y]
