"""Helpers shared by the nn op definitions (``nn_ops`` and its ``_nn_*`` parts): layout checks,
strided window views and small constants."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import dim_add, dim_floordiv, dim_mul, is_static, require_le
from ..ir.types import TensorType
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation

__all__: list[str] = []

F32, F64 = "float32", "float64"
_sliding = np.lib.stride_tricks.sliding_window_view


def _fmt(t: TensorType) -> str:
    return str(t)


def _check_pairs(attrs, op, names=("strides", "dilations", "kernel")):
    for key in names:
        if key in attrs:
            v = attrs[key]
            if len(v) != 2 or any(int(e) < 1 for e in v):
                raise ShapeError(f"{op}: {key} must be two positive ints [h, w], got {v}")
    if "pads" in attrs:
        p = attrs["pads"]
        if len(p) != 4 or any(int(e) < 0 for e in p):
            raise ShapeError(f"{op}: pads must be four non-negative ints [top, left, bottom, right], got {p}")


def _static_spatial(x: TensorType, op: str, what="input"):
    h, w = x.shape[2], x.shape[3]
    if not (is_static(h) and is_static(w)):
        raise ShapeError(f"{op}: needs static spatial dims (H, W) in its {what}, got {_fmt(x)}",
                         hint="give the image size as ints in the TensorSpec; only the batch dim may be symbolic")
    return h, w


def _window_out(size, k, s, p0, p1, d, op, axis):
    """Output length of a window op (conv, floor-mode pool) over a symbolic ``size``: the formula
    as a dim expression, with the guard that the padded input holds one (dilated) window."""
    span = d * (k - 1) + 1
    require_le(span, dim_add(size, p0 + p1), f"{op}: the {'height' if axis == 2 else 'width'} must hold the "
               f"window of {span} (kernel {k}, dilation {d}, pads {p0}+{p1})")
    return dim_add(dim_floordiv(dim_add(size, p0 + p1 - span), s), 1)


def _transposed_out(size, k, s, p0, p1, d, out_pad, op):
    out = dim_add(dim_mul(size, s), -s - p0 - p1 + d * (k - 1) + 1 + out_pad)
    require_le(1, out, f"{op}: pads {p0}+{p1} must leave an output")
    return out


def _require_nchw(x: TensorType, op: str):
    if x.rank != 4:
        hint = "add a batch axis with x.unsqueeze(0)" if x.rank == 3 else "conv/pool ops take NCHW tensors"
        raise ShapeError(f"{op}: expects a rank-4 NCHW input (batch, channels, height, width), got {_fmt(x)}",
                         hint=hint)

def _windows(xp, kh, kw, s, d, oh, ow):
    """(N, C, OH, OW, kh, kw) strided view of the padded input ``xp`` (no copy)."""
    (sh, sw), (dh, dw) = s, d
    win = _sliding(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow]

def _zero(x):
    return _creation.constant(np.zeros(()), x.dtype)
