"""ONNX lowerings of the ops with data-dependent result lengths (``graphforge/ops/data_dependent.py``):
onnxruntime's native kernels size their results at run time; the length symbol becomes the output's
dim_param."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []

@lowers("nonzero")
def _nonzero(ctx, args, attrs):
    return [ctx.op("NonZero", [args[0]])]


@lowers("compress")
def _compress(ctx, args, attrs):
    return [ctx.op("Compress", args, axis=attrs["axis"])]


@lowers("unique")
def _unique(ctx, args, attrs):
    return list(ctx.op("Unique", [args[0]], outputs=4, axis=attrs["axis"], sorted=int(attrs["sorted"])))


@lowers("non_max_suppression")
def _nms(ctx, args, attrs):
    boxes, scores, max_out, iou, thr = args
    if ctx.in_types[0].dtype != "float32":  # ONNX's NonMaxSuppression is float32 only
        boxes, scores, iou, thr = (ctx.cast(v, "float32") for v in (boxes, scores, iou, thr))
    if ctx.in_types[2].dtype != "int64":
        max_out = ctx.cast(max_out, "int64")
    ins = [boxes, scores, max_out, iou] + ([thr] if attrs["use_score_threshold"] else [])
    return [ctx.op("NonMaxSuppression", ins, center_point_box=int(attrs["center_point_box"]))]
