"""Importers for the ONNX ops with data-dependent result lengths onto ``graphforge/ops/data_dependent.py``
(NonZero, Compress, Unique, NonMaxSuppression): each result length is a fresh symbol."""
from __future__ import annotations

from graphforge.ops.data_dependent import fresh_length

from .importer import attrs_of, importer

__all__: list[str] = []


@importer("NonZero")
def _nonzero(ctx, node):
    return [ctx.emit("nonzero", [ctx.input(node, 0)], length=fresh_length("nnz"))]


@importer("Compress")
def _compress(ctx, node):
    a = attrs_of(node)
    axis = int(a["axis"]) if "axis" in a else None
    return [ctx.emit("compress", [ctx.input(node, 0), ctx.input(node, 1)], length=fresh_length("kept"), axis=axis)]


@importer("Unique")
def _unique(ctx, node):
    a = attrs_of(node)
    axis = int(a["axis"]) if "axis" in a else None
    outs = ctx.emit_n("unique", [ctx.input(node, 0)], length=fresh_length("uniq"), axis=axis,
                      sorted=bool(int(a.get("sorted", 1))))
    return outs[:len(node.output)]


@importer("NonMaxSuppression")
def _nms(ctx, node):
    a = attrs_of(node)
    boxes, scores = ctx.input(node, 0), ctx.input(node, 1)
    dt = boxes.type.dtype
    max_out = ctx.input(node, 2) if ctx.has(node, 2) else ctx.scalar(0, "int64")  # ONNX's default: no boxes
    iou = ctx.input(node, 3) if ctx.has(node, 3) else ctx.scalar(0.0, dt)
    use = ctx.has(node, 4)
    thr = ctx.input(node, 4) if use else ctx.scalar(0.0, dt)
    return [ctx.emit("non_max_suppression", [boxes, scores, max_out, iou, thr], length=fresh_length("sel"),
                     center_point_box=bool(int(a.get("center_point_box", 0))), use_score_threshold=use)]
