"""Determinant: ``det(x)`` of the square matrices in the last two axes of ``x`` (ONNX Det).

``x`` has shape ``(*batch, n, n)`` (float; the batch dims may be symbolic) and the result shape
``batch``. The reference computes in float64 with LU
(``np.linalg.det``). The VJP is the cofactor matrix: d det / d x[i, j] = (-1)^(i+j) det(minor(i, j)),
built from ``gather`` and ``det`` itself, so it needs no matrix inverse, stays finite for singular
matrices and is differentiable again. It needs a static ``n`` (a ShapeError names it otherwise).
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.dims import is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._shapes import require_float
from .registry import OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import shape_ops as _shape_ops

__all__ = ["det"]


def _det_rule(ts, attrs):
    (x,) = ts
    require_float(x, "det's input")
    if x.rank < 2:
        raise ShapeError(f"det: needs a tensor of rank >= 2 (a batch of square matrices), got {x}")
    n, m = x.shape[-2], x.shape[-1]
    if n != m:
        raise ShapeError(f"det: the last two axes must be square, got {x} ({n} x {m})")
    return [TensorType(x.shape[:-2], x.dtype)]


def _det_ref(xs, attrs, env=None):
    (x,) = xs
    # LU in float64, then rounded to the input dtype
    return [np.asarray(np.linalg.det(x.astype(np.float64))).astype(x.dtype)]


def _det_flops(ins, outs, attrs):
    n = int(ins[0].shape[-1])
    batch = 1
    for d in ins[0].shape[:-2]:
        batch *= int(d)
    return batch * (2 * n ** 3) // 3


def _minor_indices(n: int) -> np.ndarray:
    """(n, n-1) int64: row i lists every index but i (the rows/columns a minor keeps)."""
    return np.array([[k for k in range(n) if k != i] for i in range(n)], dtype=np.int64).reshape(n, n - 1)


def _det_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    (x,) = inputs
    n = x.shape[-1]
    if not is_static(n):
        raise ShapeError(f"det: its gradient needs a static matrix size, got {x.type}",
                         hint="bind the matrix dims before differentiating")
    n = int(n)
    gg = _shape_ops.unsqueeze(_shape_ops.unsqueeze(g, -1), -1)  # (*batch, 1, 1)
    if n == 1:  # d det / d x = 1
        return [_shape_ops.broadcast_to(gg, list(x.shape))]
    keep = _minor_indices(n)
    r = x.ndim
    rows = _shape_ops.gather(x, keep, axis=r - 2)                 # (*b, i, n-1, n)
    minors = _shape_ops.gather(rows, keep, axis=r)                # (*b, i, n-1, j, n-1)
    b = list(range(r - 2))
    minors = _shape_ops.transpose(minors, b + [r - 2, r, r - 1, r + 1])  # (*b, i, j, n-1, n-1)
    sign = np.fromfunction(lambda i, j: (-1.0) ** (i + j), (n, n))
    cof = det(minors) * sign.astype(np.float64 if x.dtype == "float64" else np.float32)
    return [cof * gg]


register_op(OpDef(
    name="det", family="linalg", num_inputs=(1, 1), type_rule=_det_rule, reference=_det_ref,
    flops=_det_flops, vjp=_det_vjp,
    samples=[Sample([TensorType((3, 3), "float32")]),
             Sample([TensorType((2, 4, 4), "float64")]),
             Sample([TensorType(("batch", 2, 2), "float32")], bind={"batch": 3}, note="symbolic batch"),
             Sample([TensorType((2, 1, 1), "float32")], note="1x1 matrices")],
))


def det(x):
    """Determinant of the square matrices in the last two axes (``(*batch, n, n)`` → ``batch``).

    Args:
        x: a float Tensor of rank >= 2 whose last two dims are equal.
    """
    return apply("det", x)
