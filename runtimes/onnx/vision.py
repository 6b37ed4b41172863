"""ONNX lowerings of the sampling ops (``graphforge/ops/vision_grid.py``): GridSample (opset 16: 4-D
inputs, PyTorch's mode names; opset 20: linear/cubic names; not bicubic + border, where
onnxruntime differs from the spec) and AffineGrid (opset 20) as one node where
onnxruntime has the kernel; everything else (float64, half types, 3-D grids, older opsets) is exported
through the op's decomposition; RoiAlign and MaxRoiPool likewise, natively up to opset 21 (gathers and interpolation weights), which the ``when=`` conditions
leave to the ``decompose`` pass."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []

_OPSET16_MODES = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}


def _native_grid_sample(node, target) -> bool:
    # onnxruntime's CPU GridSample is float32 and (at the opsets probed here) 4-D only; its bicubic
    # with border padding clamps the coordinate, not each tap (up to 0.3 off onnx's reference)
    x, grid = node.inputs[0].type, node.inputs[1].type
    if node.attrs["mode"] == "cubic" and node.attrs["padding_mode"] == "border":
        return False
    return target.opset >= 16 and x.rank == 4 and x.dtype == "float32" and grid.dtype == "float32"


@lowers("grid_sample", when=_native_grid_sample)
def _grid_sample(ctx, args, attrs):
    mode = attrs["mode"] if ctx.opset >= 20 else _OPSET16_MODES[attrs["mode"]]
    return [ctx.op("GridSample", list(args), mode=mode, padding_mode=attrs["padding_mode"],
                   align_corners=int(bool(attrs["align_corners"])))]


def _native_affine_grid(node, target) -> bool:
    return target.opset >= 20 and node.inputs[0].type.dtype == "float32"


@lowers("affine_grid", when=_native_affine_grid)
def _affine_grid(ctx, args, attrs):
    size = ctx.shape(list(attrs["size"]))
    return [ctx.op("AffineGrid", [args[0], size], align_corners=int(bool(attrs["align_corners"])))]


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


@lowers("deform_conv2d", when=lambda node, target: target.opset >= 19 and _all_float32(node))
def _deform_conv(ctx, args, attrs):
    return [ctx.op("DeformConv", list(args), strides=list(attrs["strides"]), dilations=list(attrs["dilations"]),
                   pads=list(attrs["pads"]), group=int(attrs["group"]), offset_group=int(attrs["offset_group"]))]


def _all_float32(node) -> bool:
    return all(i.type.dtype == "float32" for i in node.inputs)


# onnxruntime's Col2Im is right for 2-D images only (3-D results come out scrambled)
@lowers("col2im", when=lambda node, target: target.opset >= 18 and _all_float32(node)
        and len(node.attrs["image_shape"]) == 2)
def _col2im(ctx, args, attrs):
    k = len(attrs["image_shape"])
    return [ctx.op("Col2Im", [args[0], ctx.ints(list(attrs["image_shape"])), ctx.ints(list(attrs["block_shape"]))],
                   strides=list(attrs["strides"] or [1] * k), dilations=list(attrs["dilations"] or [1] * k),
                   pads=list(attrs["pads"] or [0] * (2 * k)))]
