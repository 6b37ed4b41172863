"""Importers for ONNX's sampling ops onto ``graphforge/ops/vision_grid.py``: GridSample (opset 16's
bilinear/bicubic and opset 20's linear/cubic mode names) and AffineGrid (its ``size`` input must be
known at import time: it fixes the output's shape)."""
from __future__ import annotations

from .importer import attrs_of, importer, unsupported

__all__: list[str] = []

_MODES = {"bilinear": "linear", "linear": "linear", "bicubic": "cubic", "cubic": "cubic", "nearest": "nearest"}


@importer("GridSample")
def _grid_sample(ctx, node):
    a = attrs_of(node)
    mode = a.get("mode", "linear" if ctx.opset >= 20 else "bilinear")
    pad = a.get("padding_mode", "zeros")
    if mode not in _MODES:
        unsupported(node, f"mode {mode!r}")
    x, grid = ctx.input(node, 0), ctx.input(node, 1)
    return [ctx.emit("grid_sample", [x, grid], mode=_MODES[mode], padding_mode=pad,
                     align_corners=bool(a.get("align_corners", 0)))]


@importer("AffineGrid")
def _affine_grid(ctx, node):
    a = attrs_of(node)
    size = ctx.need_const(node, 1, "size", dims=True)
    dims = [d if isinstance(d, str) else int(d) for d in size.tolist()]
    return [ctx.emit("affine_grid", [ctx.input(node, 0)], size=dims, align_corners=bool(a.get("align_corners", 0)))]




@importer("RoiAlign")
def _roi_align(ctx, node):
    a = attrs_of(node)
    ratio = int(a.get("sampling_ratio", 0))
    if ratio < 1:
        unsupported(node, "sampling_ratio 0 (adaptive: each box's number of samples, a shape, depends on its size)")
    ctm = a.get("coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else "output_half_pixel")
    bidx = ctx.input(node, 2)
    return [ctx.emit("roi_align", [ctx.input(node, 0), ctx.input(node, 1), ctx.cast(bidx, "int64")],
                     mode=a.get("mode", "avg"), output_height=int(a.get("output_height", 1)),
                     output_width=int(a.get("output_width", 1)), sampling_ratio=ratio,
                     spatial_scale=float(a.get("spatial_scale", 1.0)), coordinate_transformation_mode=ctm)]


@importer("MaxRoiPool")
def _max_roi_pool(ctx, node):
    a = attrs_of(node)
    return [ctx.emit("max_roi_pool", [ctx.input(node, 0), ctx.input(node, 1)],
                     pooled_shape=[int(d) for d in a["pooled_shape"]], spatial_scale=float(a.get("spatial_scale", 1.0)))]


@importer("DeformConv")
def _deform_conv(ctx, node):
    import numpy as np

    from graphforge.dtypes import to_numpy_dtype

    a = attrs_of(node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    if len(w.type.shape) != 4:
        unsupported(node, f"only 2-D deformable convolutions are supported (weight rank {len(w.type.shape)})")
    ins = [x, w, ctx.input(node, 2)]
    if ctx.has(node, 3):
        ins.append(ctx.input(node, 3))
    if ctx.has(node, 4):
        if len(ins) == 3:  # a mask without a bias: ONNX's absent bias is zeros
            ins.append(ctx.materialize(np.zeros([int(w.type.shape[0])], to_numpy_dtype(w.type.dtype)), "bias"))
        ins.append(ctx.input(node, 4))
    return [ctx.emit("deform_conv2d", ins, strides=list(a.get("strides", [1, 1])),
                     dilations=list(a.get("dilations", [1, 1])), pads=list(a.get("pads", [0, 0, 0, 0])),
                     group=int(a.get("group", 1)), offset_group=int(a.get("offset_group", 1)))]


@importer("Col2Im")
def _col2im(ctx, node):
    a = attrs_of(node)
    image = [int(d) for d in ctx.need_const(node, 1, "image_shape").reshape(-1)]
    block = [int(d) for d in ctx.need_const(node, 2, "block_shape").reshape(-1)]
    return [ctx.emit("col2im", [ctx.input(node, 0)], image_shape=image, block_shape=block,
                     strides=list(a["strides"]) if "strides" in a else None,
                     dilations=list(a["dilations"]) if "dilations" in a else None,
                     pads=list(a["pads"]) if "pads" in a else None)]
