"""Helpers for writing op definitions compactly: numeric casting, FLOP counts, VJP helpers."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import dtypes as _dt
from ..errors import ShapeError
from ..ir.types import TensorType

__all__ = ["compute_dtype", "numel", "elementwise_flops", "unbroadcast", "out_like", "as_dtype"]


def compute_dtype(x: np.ndarray) -> np.dtype:
    """The dtype a reference computes in: half and float8 types in float32, 4-bit ints in 8 bits."""
    if x.dtype in _WIDER:
        return _WIDER[x.dtype]
    return x.dtype


# Storage-only types compute in a wider one: half and float8 in float32, 4-bit ints in 8-bit ones.
_WIDER = {_dt.to_numpy_dtype(name): np.dtype(np.float32)
          for name in ("float16", "bfloat16") + _dt.FLOAT8_DTYPES + _dt.FLOAT4_DTYPES + (_dt.E8M0,)}
for _name in _dt.INT4_DTYPES + _dt.INT2_DTYPES:
    _WIDER[_dt.to_numpy_dtype(_name)] = np.dtype(np.uint8 if _name.startswith("u") else np.int8)


def as_dtype(array, dtype: str) -> np.ndarray:
    return np.asarray(array).astype(_dt.to_numpy_dtype(dtype), copy=False)


def numel(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= int(d)
    return n


def elementwise_flops(per_element: int = 1) -> Callable:
    return lambda ins, outs, attrs: per_element * sum(numel(o) for o in outs)


def out_like(t: TensorType, dtype: str | None = None) -> list[TensorType]:
    return [TensorType(t.shape, dtype or t.dtype)]


def unbroadcast(g, shape):
    """Sum a cotangent ``g`` (a Tensor) down to ``shape`` after NumPy broadcasting."""
    # Inside the function on purpose: every family imports this module's names at load time, so a
    # module-level import of a family here would run that family before these names exist.
    from . import reduction, shape_ops

    gshape = tuple(g.shape)
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    for i, d in enumerate(shape):
        if d != 1 and d != gshape[lead + i] and not (isinstance(d, int) and isinstance(gshape[lead + i], int)):
            # a broadcast of two different symbolic dims (max(a, b)): whether this axis was broadcast
            # is only known at run time, so the sum down to the input's shape cannot be a graph
            raise ShapeError(f"the gradient of a broadcast of the symbolic dim {d} to {gshape[lead + i]} is not "
                             "supported: whether it was broadcast is only known at run time",
                             hint="give the two dims one name in the input specs (or make one of them 1)")
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and gshape[lead + i] != 1]
    if axes:
        g = reduction.sum(g, axes, keepdims=True)
    if tuple(g.shape) != shape:
        g = shape_ops.reshape(g, shape)
    return g
