"""Importers for ONNX TopK onto ``graphforge/ops/selection.py`` (K must be a constant: the result
type holds it)."""
from __future__ import annotations

import numpy as np

from .importer import attrs_of, importer

__all__: list[str] = []


@importer("TopK")
def _topk(ctx, node):
    a = attrs_of(node)
    x = ctx.input(node, 0)
    k = int(np.asarray(ctx.need_const(node, 1, "K")).reshape(-1)[0]) if ctx.has(node, 1) else int(a["k"])
    values, indices = ctx.emit_n("topk", [x], k=k, axis=int(a.get("axis", -1)),
                                     largest=bool(int(a.get("largest", 1))), sorted=bool(int(a.get("sorted", 1))))
    return [values, indices]


# ---- data-dependent lengths: each result length is a fresh symbol (ops/data_dependent.py) ----------

@importer("NonZero")
def _nonzero(ctx, node):
    from graphforge.ops.data_dependent import fresh_length

    return [ctx.emit("nonzero", [ctx.input(node, 0)], length=fresh_length("nnz"))]


@importer("Compress")
def _compress(ctx, node):
    from graphforge.ops.data_dependent import fresh_length

    a = attrs_of(node)
    axis = int(a["axis"]) if "axis" in a else None
    return [ctx.emit("compress", [ctx.input(node, 0), ctx.input(node, 1)], length=fresh_length("kept"), axis=axis)]


@importer("Unique")
def _unique(ctx, node):
    from graphforge.ops.data_dependent import fresh_length

    a = attrs_of(node)
    axis = int(a["axis"]) if "axis" in a else None
    outs = ctx.emit_n("unique", [ctx.input(node, 0)], length=fresh_length("uniq"), axis=axis,
                      sorted=bool(int(a.get("sorted", 1))))
    return outs[:len(node.output)]
