"""Helpers shared by the nn op definitions (``nn_ops`` and its ``_nn_*`` parts): layout checks,
strided window views and small constants."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import is_static
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
