"""Importers for ONNX ops that are plain compositions of registry ops (issue 19's cheap ops):

- ``HannWindow`` / ``HammingWindow`` / ``BlackmanWindow``: the generalised cosine window
  ``a0 - a1 cos(2 pi n / D) + a2 cos(4 pi n / D)`` over ``n = arange(size)`` with ``D = size``
  (``periodic=1``, the default) or ``size - 1`` (symmetric), computed in float64 and cast to
  ``output_datatype``. ``size`` must be a constant (it is the result's length).
- ``GlobalLpPool``: ``(sum over the spatial axes of |x|^p) ^ (1/p)`` with the spatial axes kept as 1.
- ``ReverseSequence``: reverses the first ``sequence_lens[b]`` entries along ``time_axis`` of each
  batch entry ``b``: one ``gather`` from the flattened input at ``where(t < L_b, L_b - 1 - t, t)``
  (``sequence_lens`` may be a run-time input; the shape of ``x`` must be static).
"""
from __future__ import annotations

import numpy as np

from .importer import attrs_of, importer, onnx_dtype, unsupported

__all__: list[str] = []

# ONNX's coefficients (onnx/defs/math/defs.cc: HannWindow, HammingWindow, BlackmanWindow)
_WINDOWS = {"HannWindow": (0.5, 0.5, 0.0), "HammingWindow": (25.0 / 46.0, 21.0 / 46.0, 0.0),
            "BlackmanWindow": (0.42, 0.5, 0.08)}


@importer(*_WINDOWS)
def _window(ctx, node):
    a = attrs_of(node)
    size = np.asarray(ctx.need_const(node, 0, "size")).reshape(-1)
    if size.size != 1 or size.dtype.kind not in "iu" or int(size[0]) < 0:
        unsupported(node, f"size must be one non-negative integer, got {size.tolist()}")
    n = int(size[0])
    dtype = onnx_dtype(int(a.get("output_datatype", 1)))
    periodic = int(a.get("periodic", 1))
    if periodic not in (0, 1):
        unsupported(node, f"periodic={periodic} (must be 0 or 1)")
    a0, a1, a2 = _WINDOWS[node.op_type]
    e = ctx.emit
    denom = n if periodic else n - 1
    t = e("arange", [], start=0, stop=n, step=1, dtype="float64")
    # denom 0 (a one-point symmetric window): ONNX's reference divides by zero only for n = 1, giving NaN
    # angles; torch and NumPy give [1.0]. The angle is 0 there, so every window is a0 - a1 + a2 == 0.
    step = 2.0 * np.pi / denom if denom else 0.0
    ang = e("mul", [t, ctx.scalar(step, "float64")])
    w = e("sub", [ctx.scalar(a0, "float64"), e("mul", [ctx.scalar(a1, "float64"), e("cos", [ang])])])
    if a2:
        two = e("mul", [ang, ctx.scalar(2.0, "float64")])
        w = e("add", [w, e("mul", [ctx.scalar(a2, "float64"), e("cos", [two])])])
    return [ctx.cast(w, dtype)]


@importer("GlobalLpPool")
def _global_lp_pool(ctx, node):
    x = ctx.input(node, 0)
    p = int(attrs_of(node).get("p", 2))
    if p < 1:
        unsupported(node, f"p={p} (must be >= 1)")
    rank = len(x.type.shape)
    if rank < 3:
        unsupported(node, f"input of rank {rank} (needs (N, C, spatial...))")
    dt = x.type.dtype
    e = ctx.emit
    if p == 2:
        powed = e("mul", [x, x])
    elif p == 1:
        powed = e("abs", [x])
    else:
        powed = e("pow", [e("abs", [x]), ctx.scalar(float(p), dt)])
    total = e("sum", [powed], axes=list(range(2, rank)), keepdims=True)
    if p == 1:
        return [total]
    if p == 2:
        return [e("sqrt", [total])]
    return [e("pow", [total, ctx.scalar(1.0 / p, dt)])]


@importer("ReverseSequence")
def _reverse_sequence(ctx, node):
    a = attrs_of(node)
    x, lens = ctx.input(node, 0), ctx.input(node, 1)
    shape = x.type.shape
    rank = len(shape)
    if rank < 2 or not all(isinstance(d, int) for d in shape):
        unsupported(node, f"input {x.type}: needs a static shape of rank >= 2")
    ta, ba = int(a.get("time_axis", 0)), int(a.get("batch_axis", 1))
    if {ta, ba} != {0, 1}:
        unsupported(node, f"time_axis={ta}, batch_axis={ba} (ONNX allows 0 and 1, one each)")
    ctx.require((rank + 1, *shape), 8, "the index grid")
    grid = np.indices(shape, dtype=np.int64)
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(rank)]
    base = sum(grid[d] * strides[d] for d in range(rank) if d != ta)
    e = ctx.emit
    t = ctx.materialize(grid[ta], "reverse_sequence_time")
    lb = e("gather", [ctx.cast(lens, "int64"), ctx.materialize(grid[ba], "reverse_sequence_batch")], axis=0)
    rev = e("sub", [e("sub", [lb, ctx.scalar(1, "int64")]), t])
    src = e("where", [e("less", [t, lb]), rev, t])
    flat = e("add", [e("mul", [src, ctx.scalar(strides[ta], "int64")]),
                     ctx.materialize(np.asarray(base, np.int64), "reverse_sequence_base")])
    return [e("gather", [e("reshape", [x], shape=[-1]), flat], axis=0)]
