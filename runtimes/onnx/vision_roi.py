"""ONNX lowerings of the region-of-interest ops (``graphforge/ops/vision_roi.py``): RoiAlign and
MaxRoiPool as one node up to opset 21, where onnxruntime has kernels; newer opsets and other dtypes
are left by the ``when=`` conditions to the ``decompose`` pass (gathers and interpolation weights)."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


def _float32(node, target) -> bool:
    # onnxruntime 1.32 registers RoiAlign/MaxRoiPool kernels only up to their opset-21 versions
    # (opset 22 re-versioned them for bfloat16): newer exports use the decomposition
    return target.opset <= 21 and all(i.type.dtype in ("float32", "int64") for i in node.inputs)


@lowers("roi_align", when=lambda node, target: target.opset >= 16 and _float32(node, target))
def _roi_align(ctx, args, attrs):
    return [ctx.op("RoiAlign", list(args), mode=attrs["mode"], output_height=int(attrs["output_height"]),
                   output_width=int(attrs["output_width"]), sampling_ratio=int(attrs["sampling_ratio"]),
                   spatial_scale=float(attrs["spatial_scale"]),
                   coordinate_transformation_mode=attrs["coordinate_transformation_mode"])]


@lowers("max_roi_pool", when=_float32)
def _max_roi_pool(ctx, args, attrs):
    return [ctx.op("MaxRoiPool", list(args), pooled_shape=[int(d) for d in attrs["pooled_shape"]],
                   spatial_scale=float(attrs["spatial_scale"]))]
