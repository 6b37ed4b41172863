"""ONNX lowering of ``col2im`` (``graphforge/ops/col2im.py``): Col2Im (opset 18) for 2-D float32
images; 3-D images and other dtypes are exported through the op's decomposition."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


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
