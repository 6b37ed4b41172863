"""ONNX lowering of ``deform_conv2d`` (``graphforge/ops/vision_deform.py``): DeformConv (opset 19)
for float32; other dtypes and opsets are exported through the op's decomposition."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


@lowers("deform_conv2d", when=lambda node, target: target.opset >= 19 and _all_float32(node))
def _deform_conv(ctx, args, attrs):
    return [ctx.op("DeformConv", list(args), strides=list(attrs["strides"]), dilations=list(attrs["dilations"]),
                   pads=list(attrs["pads"]), group=int(attrs["group"]), offset_group=int(attrs["offset_group"]))]


def _all_float32(node) -> bool:
    return all(i.type.dtype == "float32" for i in node.inputs)
