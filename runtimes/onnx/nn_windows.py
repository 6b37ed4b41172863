"""Sliding-window helpers for the nn lowerings: explicit pool padding (PyTorch's ceil_mode rows),
the stack of strided window slices, and convolution spelled with slices + Einsum.

The slice form exists because onnxruntime's CPU provider has no float64 Conv, ConvTranspose or
AveragePool kernels; it computes exactly what the contract says (no accumulation-order surprises),
so float64 results match the reference to ~1e-15. H and W are static (the contract requires it).
"""
from __future__ import annotations

import numpy as np

from .lower import Emitter

__all__ = ["pool_pads", "windows", "conv_by_slices", "pad_or_crop", "dilate", "avg_divisor"]

_INT64_MAX = 2 ** 63 - 1


def pool_pads(in_hw, out_hw, attrs) -> list[tuple[int, int]]:
    """(before, after) per spatial axis, with ceil_mode's extra rows added at the bottom/right."""
    k, s = attrs["kernel"], attrs["strides"]
    pt, pl, pb, pr = attrs["pads"]
    out = []
    for i, (lo, hi) in enumerate(((pt, pb), (pl, pr))):
        if not (isinstance(out_hw[i], int) and isinstance(in_hw[i], int)):
            out.append((lo, hi))  # symbolic H/W is floor mode only: no extra rows (ops/_nn_pool.py)
            continue
        need = (out_hw[i] - 1) * s[i] + k[i]
        extra = max(0, need - (in_hw[i] + lo + hi))
        out.append((lo, hi + extra))
    return out


def pad_or_crop(ctx: Emitter, x: str, pads, value=None, dtype="float32") -> str:
    """Pad (positive) or crop (negative) the last two axes: ``pads`` = [(top, bottom), (left, right)]."""
    grow = [max(0, p) for pair in pads for p in pair]
    if any(grow):
        (t, b), (l, r) = [(max(0, lo), max(0, hi)) for lo, hi in pads]
        onnx_pads = [0, 0, t, l, 0, 0, b, r]
        inputs = [x, ctx.ints(onnx_pads)]
        if value is not None:
            inputs.append(ctx.scalar(value, dtype))
        x = ctx.op("Pad", inputs, mode="constant")
    crop = [(-min(0, lo), -min(0, hi)) for lo, hi in pads]
    if any(c for pair in crop for c in pair):
        starts = [crop[0][0], crop[1][0]]
        ends = [-crop[0][1] if crop[0][1] else _INT64_MAX, -crop[1][1] if crop[1][1] else _INT64_MAX]
        x = ctx.op("Slice", [x, ctx.ints(starts), ctx.ints(ends), ctx.ints([2, 3])])
    return x


def windows(ctx: Emitter, xp: str, kernel, strides, dilations, out_hw) -> str:
    """(N, C, kh*kw, OH, OW): every kernel offset's strided slice of the padded input ``xp``."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    oh, ow = out_hw
    parts = []
    for i in range(kh):
        for j in range(kw):
            starts = [i * dh, j * dw]
            ends = [i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1]
            s = ctx.op("Slice", [xp, ctx.ints(starts), ctx.ints(ends), ctx.ints([2, 3]), ctx.ints([sh, sw])])
            parts.append(ctx.op("Unsqueeze", [s, ctx.ints([2])]))
    return parts[0] if len(parts) == 1 else ctx.op("Concat", parts, axis=2)


def conv_by_slices(ctx: Emitter, x: str, w: str, x_shape, w_shape, out_hw, strides, dilations, groups) -> str:
    """conv2d of an already padded ``x`` (N, C, H, W) with ``w`` (O, C/g, kh, kw), no bias."""
    n, c = x_shape[0], x_shape[1]
    o, cg, kh, kw = w_shape
    g = groups
    stack = windows(ctx, x, (kh, kw), strides, dilations, out_hw)
    oh, ow = out_hw
    stack = ctx.reshape(stack, [n, c, kh * kw, oh, ow], [n, g, cg, kh * kw, oh, ow])
    wr = ctx.reshape(w, w_shape, [g, _div(o, g), cg, kh * kw])
    y = ctx.op("Einsum", [stack, wr], equation="ngckhw,gock->ngohw")
    return ctx.reshape(y, [n, g, _div(o, g), oh, ow], [n, o, oh, ow])


def dilate(ctx: Emitter, x: str, x_shape, strides) -> str:
    """Insert ``s - 1`` zeros between the rows/columns of ``x`` (N, C, H, W)."""
    sh, sw = strides
    if sh == 1 and sw == 1:
        return x
    n, c, h, w = x_shape
    u = ctx.op("Unsqueeze", [x, ctx.ints([3, 5])])
    u = ctx.op("Pad", [u, ctx.ints([0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1])], mode="constant")
    u = ctx.reshape(u, [n, c, h, sh, w, sw], [n, c, h * sh, w * sw])
    return ctx.op("Slice", [u, ctx.ints([0, 0]), ctx.ints([(h - 1) * sh + 1, (w - 1) * sw + 1]), ctx.ints([2, 3])])


def avg_divisor(in_hw, pads, attrs) -> np.ndarray:
    """The contract's divisor per output position: the window clipped to [-pt, H+pb) or to [0, H)."""
    h, w = in_hw
    (t, b_ext), (l, r_ext) = pads
    pt, pl, pb, pr = attrs["pads"]
    if attrs.get("count_include_pad", True):
        ones = np.ones((h + pt + pb, w + pl + pr))
        ones = np.pad(ones, [(0, b_ext - pb), (0, r_ext - pr)])
    else:
        ones = np.pad(np.ones((h, w)), [(t, b_ext), (l, r_ext)])
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["strides"]
    oh = (ones.shape[0] - kh) // sh + 1
    ow = (ones.shape[1] - kw) // sw + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = ones[i * sh:i * sh + kh, j * sw:j * sw + kw].sum()
    return out


def _div(a, b):
    from graphforge.ir.dims import dim_divide

    return a // b if isinstance(a, int) else dim_divide(a, b)
