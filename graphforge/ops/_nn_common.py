"""Helpers shared by the nn op families (``nn_ops``, ``nn_conv``, ``nn_pool``, ``nn_norm``,
``nn_attention``): layout checks, strided window views, argument normalisation and small constants."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import dim_add, dim_ceildiv, dim_floordiv, dim_min, dim_mul, is_static, require_le
from ..ir.types import TensorType
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation

__all__: list[str] = []

F32, F64 = "float32", "float64"
_sliding = np.lib.stride_tricks.sliding_window_view


def _fmt(t: TensorType) -> str:
    return str(t)


def _check_pairs(attrs, op, names=("strides", "dilations", "kernel"), nsp=2):
    """Per-axis attrs: ``nsp`` positive ints each; ``pads`` 2*nsp non-negative ints (begins, then ends)."""
    axes = "[h, w]" if nsp == 2 else f"(one per spatial axis, {nsp})"
    for key in names:
        if key in attrs:
            v = attrs[key]
            if len(v) != nsp or any(int(e) < 1 for e in v):
                raise ShapeError(f"{op}: {key} must be {nsp} positive ints {axes}, got {v}")
    if "pads" in attrs:
        p = attrs["pads"]
        if len(p) != 2 * nsp or any(int(e) < 0 for e in p):
            what = "[top, left, bottom, right]" if nsp == 2 else "(the begins of every spatial axis, then the ends)"
            raise ShapeError(f"{op}: pads must be {2 * nsp} non-negative ints {what}, got {p}")


def _spatial_rank(x: TensorType, op: str) -> int:
    """The number of spatial axes of an (N, C, *spatial) input: 1, 2 or 3."""
    if x.rank not in (3, 4, 5):
        hint = ("add a batch axis with x.unsqueeze(0)" if x.rank == 2
                else "conv/pool ops take (N, C, W), (N, C, H, W) or (N, C, D, H, W) tensors")
        raise ShapeError(f"{op}: expects an (N, C, *spatial) input with 1 to 3 spatial axes, got {_fmt(x)}",
                         hint=hint)
    return x.rank - 2


def _static_spatial(x: TensorType, op: str, what="input"):
    sizes = tuple(x.shape[2:])
    if not all(is_static(d) for d in sizes):
        raise ShapeError(f"{op}: needs static spatial dims in its {what}, got {_fmt(x)}",
                         hint="give the image size as ints in the TensorSpec; only the batch dim may be symbolic")
    return sizes


def _window_out(size, k, s, p0, p1, d, op, axis):
    """Output length of a window op (conv, floor-mode pool) over a symbolic ``size``: the formula
    as a dim expression, with the guard that the padded input holds one (dilated) window."""
    span = d * (k - 1) + 1
    require_le(span, dim_add(size, p0 + p1), f"{op}: spatial axis {axis} must hold the "
               f"window of {span} (kernel {k}, dilation {d}, pads {p0}+{p1})")
    return dim_add(dim_floordiv(dim_add(size, p0 + p1 - span), s), 1)


def _ceil_window_out(size, k, s, p0, p1, d, op, axis):
    """PyTorch's ceil_mode output length over a symbolic ``size``: ``ceil(room / s) + 1`` windows, less
    the last one when it would start past the input and its begin padding, i.e.
    ``min(ceil((size + p0 + p1 - span) / s) + 1, ceil((size + p0) / s))`` (the two agree with the
    static rule in ``nn_pool._axis_geometry`` because every end pad is below the window span)."""
    span = d * (k - 1) + 1
    require_le(span, dim_add(size, p0 + p1), f"{op}: spatial axis {axis} must hold the "
               f"window of {span} (kernel {k}, dilation {d}, pads {p0}+{p1})")
    return dim_min(dim_add(dim_ceildiv(dim_add(size, p0 + p1 - span), s), 1), dim_ceildiv(dim_add(size, p0), s))


def _transposed_out(size, k, s, p0, p1, d, out_pad, op):
    out = dim_add(dim_mul(size, s), -s - p0 - p1 + d * (k - 1) + 1 + out_pad)
    require_le(1, out, f"{op}: pads {p0}+{p1} must leave an output")
    return out


def _require_nchw(x: TensorType, op: str):
    if x.rank != 4:
        hint = "add a batch axis with x.unsqueeze(0)" if x.rank == 3 else "conv/pool ops take NCHW tensors"
        raise ShapeError(f"{op}: expects a rank-4 NCHW input (batch, channels, height, width), got {_fmt(x)}",
                         hint=hint)

def _windows(xp, kernel, s, d, out):
    """(N, C, *out, *kernel) strided view of the padded input ``xp`` (no copy), any spatial rank."""
    nsp = len(kernel)
    span = tuple(di * (k - 1) + 1 for k, di in zip(kernel, d))
    win = _sliding(xp, span, axis=tuple(range(2, 2 + nsp)))
    strided = (slice(None), slice(None)) + tuple(slice(None, None, si) for si in s) \
        + tuple(slice(None, None, di) for di in d)
    win = win[strided]
    return win[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]


def _zero(x):
    return _creation.constant(np.zeros(()), x.dtype)


def _tuple_of(v, name, n=2):
    """An int or an n-sequence of ints -> a list of n ints (one per spatial axis)."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            what = "a pair (h, w)" if n == 2 else f"{n} values (one per spatial axis)"
            raise ShapeError(f"{name} must be an int or {what}, got {v!r}")
        return [int(e) for e in v]
    return [int(v)] * n


def _pair_of(v, name):
    return _tuple_of(v, name, 2)
