"""ONNX lowerings of the sampling ops (``graphforge/ops/vision_grid.py``): GridSample (opset 16: 4-D
inputs, PyTorch's mode names; opset 20: linear/cubic names; not bicubic + border, where
onnxruntime differs from the spec) and AffineGrid (opset 20) as one node where onnxruntime has the
kernel; everything else (float64, half types, 3-D grids, older opsets) is left by the ``when=``
conditions to the ``decompose`` pass."""
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
