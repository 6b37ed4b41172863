"""Sliding-window helpers for the nn lowerings over 1-3 spatial axes: explicit pool padding (PyTorch's
ceil_mode rows), the stack of strided window slices, and convolution spelled with slices + Einsum.

The slice form exists because onnxruntime's CPU provider has no float64 Conv, ConvTranspose or
AveragePool kernels; it computes exactly what the contract says (no accumulation-order surprises),
so float64 results match the reference to ~1e-15. Spatial sizes may be symbolic (dims, computed in the model).
"""
from __future__ import annotations

import itertools

import numpy as np

from onnx import numpy_helper

from graphforge.ir.dims import dim_add, dim_mul

from .lower import Emitter

__all__ = ["pool_pads", "windows", "window_counts", "conv_by_slices", "pad_or_crop", "dilate", "avg_divisor", "pad_pairs", "kernel_shape_attr"]

_INT64_MAX = 2 ** 63 - 1
_LETTERS = "pqr"


def pad_pairs(pads) -> list[tuple[int, int]]:
    """ONNX-order pads (the begins of every spatial axis, then the ends) -> [(begin, end)] per axis."""
    n = len(pads) // 2
    return [(pads[i], pads[n + i]) for i in range(n)]


def _dils(attrs):
    return list(attrs.get("dilations") or [1] * len(attrs["kernel"]))


def pool_pads(in_sizes, out_sizes, attrs) -> list[tuple[int, int]]:
    """(before, after) per spatial axis, with ceil_mode's extra rows added at the end."""
    k, s, d = attrs["kernel"], attrs["strides"], _dils(attrs)
    out = []
    for i, (lo, hi) in enumerate(pad_pairs(attrs["pads"])):
        if not (isinstance(out_sizes[i], int) and isinstance(in_sizes[i], int)):
            # symbolic sizes: ceil_mode needs at most s-1 extra rows (every end pad is below the span);
            # padding that bound always leaves room for the output's windows, which the lowering cuts to
            # the output's length (windows() reads exactly ``out`` windows)
            out.append((lo, hi + (s[i] - 1 if attrs.get("ceil_mode") else 0)))
            continue
        need = (out_sizes[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1
        extra = max(0, need - (in_sizes[i] + lo + hi))
        out.append((lo, hi + extra))
    return out


def pad_or_crop(ctx: Emitter, x: str, pads, value=None, dtype="float32") -> str:
    """Pad (positive) or crop (negative) the spatial axes (2, 3, ...): ``pads`` = [(begin, end)] per axis."""
    n = len(pads)
    if any(not isinstance(p, int) for pair in pads for p in pair):
        # amounts that are dims (a gradient at symbolic sizes) are paddings, computed at run time
        onnx_pads = [0, 0] + [lo for lo, _ in pads] + [0, 0] + [hi for _, hi in pads]
        inputs = [x, ctx.shape(onnx_pads)]
        if value is not None:
            inputs.append(ctx.scalar(value, dtype))
        return ctx.op("Pad", inputs, mode="constant")
    if any(max(0, p) for pair in pads for p in pair):
        onnx_pads = [0, 0] + [max(0, lo) for lo, _ in pads] + [0, 0] + [max(0, hi) for _, hi in pads]
        inputs = [x, ctx.ints(onnx_pads)]
        if value is not None:
            inputs.append(ctx.scalar(value, dtype))
        x = ctx.op("Pad", inputs, mode="constant")
    crop = [(-min(0, lo), -min(0, hi)) for lo, hi in pads]
    if any(c for pair in crop for c in pair):
        starts = [lo for lo, _ in crop]
        ends = [-hi if hi else _INT64_MAX for _, hi in crop]
        x = ctx.op("Slice", [x, ctx.ints(starts), ctx.ints(ends), ctx.ints(list(range(2, 2 + n)))])
    return x


def windows(ctx: Emitter, xp: str, kernel, strides, dilations, out) -> str:
    """(N, C, K, *out): every kernel offset's strided slice of the padded input ``xp``, K = prod(kernel)
    in row-major kernel order."""
    n = len(kernel)
    axes = ctx.ints(list(range(2, 2 + n)))
    parts = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        starts = [o * d for o, d in zip(offs, dilations)]
        # symbolic output lengths: the slice ends are computed in the model from the bound dims
        ends = [dim_add(dim_mul(dim_add(out[i], -1), strides[i]), starts[i] + 1) for i in range(n)]
        s = ctx.op("Slice", [xp, ctx.ints(starts), ctx.shape(ends), axes, ctx.ints(list(strides))])
        parts.append(ctx.op("Unsqueeze", [s, ctx.ints([2])]))
    return parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=2)


def conv_by_slices(ctx: Emitter, x: str, w: str, x_shape, w_shape, out, strides, dilations, groups) -> str:
    """conv of an already padded ``x`` (N, C, *S) with ``w`` (O, C/g, *kernel), no bias."""
    n, c = x_shape[0], x_shape[1]
    o, cg = w_shape[0], w_shape[1]
    kernel = list(w_shape[2:])
    k = int(np.prod(kernel))
    g = groups
    out = list(out)
    P = _LETTERS[:len(kernel)]
    stack = windows(ctx, x, kernel, strides, dilations, out)
    stack = ctx.reshape(stack, [n, c, k] + out, [n, g, cg, k] + out)
    wr = ctx.reshape(w, w_shape, [g, _div(o, g), cg, k])
    y = ctx.op("Einsum", [stack, wr], equation=f"ngck{P},gock->ngo{P}")
    return ctx.reshape(y, [n, g, _div(o, g)] + out, [n, o] + out)


def dilate(ctx: Emitter, x: str, x_shape, strides) -> str:
    """Insert ``s - 1`` zeros between the elements of every spatial axis of ``x`` (N, C, *S)."""
    if all(s == 1 for s in strides):
        return x
    n, c = x_shape[0], x_shape[1]
    sizes = list(x_shape[2:])
    nsp = len(sizes)
    u = ctx.op("Unsqueeze", [x, ctx.ints([3 + 2 * i for i in range(nsp)])])
    ends = [0, 0] + [e for s in strides for e in (0, s - 1)]
    u = ctx.op("Pad", [u, ctx.ints([0] * (2 + 2 * nsp) + ends)], mode="constant")
    inter = [n, c] + [e for size, s in zip(sizes, strides) for e in (size, s)]
    u = ctx.reshape(u, inter, [n, c] + [dim_mul(size, s) for size, s in zip(sizes, strides)])
    ends = [dim_add(dim_mul(size, s), 1 - s) for size, s in zip(sizes, strides)]
    return ctx.op("Slice", [u, ctx.ints([0] * nsp), ctx.shape(ends), ctx.ints(list(range(2, 2 + nsp)))])


def window_counts(ctx: Emitter, x: str, x_shape, attrs, out, pads) -> str:
    """The avg-pool divisor (1, 1, *out) computed in the model, for symbolic spatial sizes: the window
    sums of a ones image padded like the input — with ones where ``count_include_pad`` counts the
    padding, zeros in ceil_mode's extra rows (``pads`` = pool_pads, which include them)."""
    nsp = len(out)
    spatial = list(x_shape[2:])
    ones = ctx.op("ConstantOfShape", [ctx.shape([1, 1] + spatial)],
                  value=numpy_helper.from_array(np.ones(1, np.float32)))
    real = pad_pairs(attrs["pads"])
    fill = 1.0 if attrs.get("count_include_pad", True) else 0.0
    mask = pad_or_crop(ctx, ones, real, fill, "float32")
    mask = pad_or_crop(ctx, mask, [(0, pads[i][1] - real[i][1]) for i in range(nsp)], 0.0, "float32")
    stack = windows(ctx, mask, attrs["kernel"], attrs["strides"], _dils(attrs), out)
    return ctx.op("ReduceSum", [stack, ctx.ints([2])], keepdims=0)


def avg_divisor(in_sizes, attrs) -> np.ndarray:
    """The contract's divisor per output position (ops/nn_pool.py ``pool_window_counts``)."""
    from graphforge.ops.nn_pool import pool_window_counts

    return pool_window_counts(tuple(in_sizes), attrs)


def _div(a, b):
    from graphforge.ir.dims import dim_divide

    return a // b if isinstance(a, int) else dim_divide(a, b)


def kernel_shape_attr(weight_type) -> dict:
    """``{"kernel_shape": [...]}`` from a convolution weight's static spatial dims, else ``{}``. ONNX
    infers it from the weight when absent, but onnxruntime's Conv kernels then recompute it from the
    weight's shape on every call (ResNet-8 at batch 1: ~1 % of the run, 9 convolutions); torch.onnx
    writes it too."""
    if weight_type is None:
        return {}
    spatial = list(weight_type.shape[2:])
    return {"kernel_shape": [int(d) for d in spatial]} if spatial and all(isinstance(d, int) for d in spatial) else {}
