"""Resizing by interpolation (``gf.interpolate``; ONNX ``Resize`` of run-time sizes): nearest and
linear, one axis at a time, with ONNX's coordinate transformations and nearest rounding modes.

No op of its own: each resized axis is a source-coordinate computation over ``arange(size)`` and a
``gather`` of the neighbouring rows (linear: two gathers and their weights), so it serves any size —
static, or a dim expression (``2*h+1``, ``floor((3*w)/4)``) whose value is only known at run time —
and every back end, gradients included, runs it from the primitives. The coordinates are computed in
float32 with onnxruntime's order of operations, so nearest picks the rows onnxruntime picks (a
coordinate exactly halfway is rounded by ``nearest_mode``):

- ``half_pixel``: ``(i + 0.5) / scale - 0.5``; ``pytorch_half_pixel``: the same, 0 when the output has
  one row; ``align_corners``: ``i * (n - 1) / (m - 1)``; ``asymmetric``: ``i / scale``;
- ``scale`` is the one given, else ``m / n`` (float32); the coordinate is clamped to ``[0, n - 1]``;
- linear: ``(1 - f) * x[floor(c)] + f * x[min(floor(c) + 1, n - 1)]``, ``f = c - floor(c)``.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import dtypes as _dt
from ..errors import ShapeError
from ..ir.dims import dim_add, dim_floordiv, dim_mul, is_static
from . import (creation as _creation, elementwise as _elementwise, math_ops as _math_ops,
               shape_ops as _shape_ops)

__all__ = ["interpolate"]

COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
"""The coordinate transformations ``resize_axis`` implements (ONNX's names)."""
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
"""The rounding of a nearest resize (ONNX's names)."""


def scaled_size(n, scale: float):
    """``floor(n * scale)`` (ONNX's and PyTorch's output length) for an int or symbolic ``n``: the scale
    is read as the simplest fraction within float32 precision of it (1.5 is 3/2), so a symbolic length
    stays a dim expression (``floor((3*h)/4)`` for 0.75).

    Args:
        n: the input length.
        scale: a positive float.
    """
    frac = Fraction(float(np.float32(scale))).limit_denominator(1 << 16)
    if frac <= 0:
        raise ShapeError(f"interpolate: the scale must be positive, got {scale}")
    if is_static(n):
        return n * frac.numerator // frac.denominator
    return dim_floordiv(dim_mul(n, frac.numerator), frac.denominator)


def _f32(v):
    return _creation.constant(np.array(v, np.float32), "float32")


def _dim_f32(d):
    return _elementwise.cast(_creation.dim_value(d), "float32")


def _source_coordinates(n, m, scale, coordinate):
    """The float32 source coordinate (m,) of every output position along an axis of length ``n``."""
    i = _elementwise.cast(_creation.arange(m), "float32")
    if coordinate == "align_corners":
        if is_static(m) and m == 1:
            return i * _f32(0.0)
        den = _dim_f32(dim_add(m, -1))
        den = _elementwise.maximum(den, _f32(1.0))   # one output row: i = 0, any divisor
        return i * _dim_f32(dim_add(n, -1)) / den
    s = _f32(scale) if scale is not None else _dim_f32(m) / _dim_f32(n)
    if coordinate == "asymmetric":
        return i / s
    c = (i + _f32(0.5)) / s - _f32(0.5)
    if coordinate == "pytorch_half_pixel":
        if is_static(m):
            return c if m > 1 else i * _f32(0.0)
        return _elementwise.where(_creation.dim_value(m) > 1, c, i * _f32(0.0))
    return c


def _to_index(c):
    return _elementwise.cast(c, "int64")


def resize_axis(x, axis: int, size, scale=None, mode: str = "nearest", coordinate: str = "half_pixel",
                nearest_mode: str = "round_prefer_floor"):
    """``x`` resized along ``axis`` to ``size`` rows (an int or a dim expression).

    Args:
        x: the input Tensor.
        axis: the resized axis.
        size: the output length.
        scale: the scale the coordinates use (ONNX ``scales``); None: ``size / n``.
        mode: ``"nearest"`` or ``"linear"``.
        coordinate: one of ``COORDINATE_MODES``.
        nearest_mode: one of ``NEAREST_MODES`` (nearest only).

    Returns:
        The resized Tensor.

    Raises:
        ShapeError: an unknown mode, or a linear resize of a non-float tensor.
    """
    if mode not in ("nearest", "linear"):
        raise ShapeError(f"interpolate: mode {mode!r} is not one of nearest, linear")
    if coordinate not in COORDINATE_MODES:
        raise ShapeError(f"interpolate: coordinate transformation {coordinate!r} is not one of {COORDINATE_MODES}")
    if nearest_mode not in NEAREST_MODES:
        raise ShapeError(f"interpolate: nearest_mode {nearest_mode!r} is not one of {NEAREST_MODES}")
    rank = len(x.shape)
    axis = axis % rank
    n = x.shape[axis]
    c = _source_coordinates(n, size, scale, coordinate)
    last = _dim_f32(dim_add(n, -1))
    zero = _f32(0.0)
    if mode == "nearest":
        r = _math_ops.floor(c)
        if nearest_mode == "floor":
            idx = r
        elif nearest_mode == "ceil":
            idx = _math_ops.ceil(c)
        else:  # a coordinate exactly halfway goes down (prefer_floor) or up (prefer_ceil)
            half = (c - r) <= _f32(0.5) if nearest_mode == "round_prefer_floor" else (c - r) < _f32(0.5)
            idx = _elementwise.where(half, r, r + _f32(1.0))
        idx = _elementwise.minimum(_elementwise.maximum(idx, zero), last)
        return _shape_ops.gather(x, _to_index(idx), axis)
    if not _dt.is_float(x.dtype):
        raise ShapeError(f"interpolate: linear interpolation needs a float tensor, got {x.dtype}",
                         hint="cast to float32 first, or use mode='nearest'")
    c = _elementwise.minimum(_elementwise.maximum(c, zero), last)
    lo = _math_ops.floor(c)
    frac = c - lo
    i0 = _to_index(lo)
    i1 = _elementwise.minimum(i0 + _creation.constant(np.array(1), "int64"), _creation.dim_value(dim_add(n, -1)))
    view = [1] * rank
    view[axis] = size
    w1 = _shape_ops.reshape(_elementwise.cast(frac, x.dtype), view)
    w0 = _shape_ops.reshape(_elementwise.cast(_f32(1.0) - frac, x.dtype), view)
    return _shape_ops.gather(x, i0, axis) * w0 + _shape_ops.gather(x, i1, axis) * w1


def interpolate(x, size=None, scale_factor=None, mode: str = "nearest", align_corners=None, *,
                coordinate_transformation_mode=None, nearest_mode=None):
    """Resize the spatial axes (2, 3, ...) of an ``(N, C, *spatial)`` tensor, as PyTorch's
    ``F.interpolate``: to ``size`` (ints or symbolic dims, e.g. ``2 * x.shape[2] + 1``) or by
    ``scale_factor`` (output ``floor(n * scale)``; the coordinates use the scale itself), in any ratio.
    Modes: ``"nearest"`` (PyTorch's: asymmetric coordinates, rounded down), ``"linear"`` /
    ``"bilinear"`` / ``"trilinear"`` (``align_corners`` False: pytorch_half_pixel, True:
    align_corners). The keyword-only ONNX names override: any of ``COORDINATE_MODES`` and
    ``NEAREST_MODES`` (onnxruntime's ``Resize`` semantics).

    Args:
        x: an ``(N, C, *spatial)`` Tensor.
        size: an int or one per spatial axis (ints or dims).
        scale_factor: a float or one per spatial axis.
        mode: ``"nearest"``, ``"linear"``, ``"bilinear"`` or ``"trilinear"``.
        align_corners: linear modes only (PyTorch's default False).
        coordinate_transformation_mode: ONNX's coordinate transformation, overriding the mode's.
        nearest_mode: ONNX's nearest rounding, overriding the mode's.

    Returns:
        The resized Tensor.

    Raises:
        ShapeError: neither or both of ``size`` and ``scale_factor``, the wrong number of sizes or
            scales, an unknown mode, ``align_corners`` with nearest, or linear on integers.

    Example:
        ```python
        x = gf.TensorSpec(("batch", 3, "h", "w"))
        up = gf.trace(lambda t: gf.interpolate(t, scale_factor=1.5, mode="bilinear"), x)
        print(up.outputs[0].type)    # f32[batch,3,floor(h/2)+h,floor(w/2)+w]
        ```
    """
    nsp = len(x.shape) - 2
    if nsp < 1:
        raise ShapeError(f"interpolate: expects an (N, C, *spatial) input, got shape {list(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ShapeError("interpolate: give exactly one of size and scale_factor")
    linear = mode in ("linear", "bilinear", "trilinear")
    if not linear and mode != "nearest":
        raise ShapeError(f"interpolate: mode {mode!r} is not one of nearest, linear, bilinear, trilinear")
    if align_corners is not None and not linear:
        raise ShapeError("interpolate: align_corners applies to the linear modes only")
    coordinate = coordinate_transformation_mode or (
        ("align_corners" if align_corners else "pytorch_half_pixel") if linear else "asymmetric")
    rounding = nearest_mode or "floor"

    def per_axis(v, what):
        if isinstance(v, (list, tuple)):
            if len(v) != nsp:
                raise ShapeError(f"interpolate: {what} needs {nsp} values (one per spatial axis), got {list(v)}")
            return list(v)
        return [v] * nsp

    sizes = per_axis(size, "size") if size is not None else None
    scales = per_axis(scale_factor, "scale_factor") if scale_factor is not None else None
    y = x
    for i in range(nsp):
        n = x.shape[2 + i]
        scale = float(scales[i]) if scales is not None else None
        m = scaled_size(n, scale) if scales is not None else sizes[i]
        m = m if isinstance(m, int) else str(m)
        if m == n and (scale is None or scale == 1.0):
            continue
        y = resize_axis(y, 2 + i, m, scale, "linear" if linear else "nearest", coordinate, rounding)
    return y
