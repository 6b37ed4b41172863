"""Selection ops: ``topk`` (the k largest/smallest entries along an axis, and their indices).

``topk`` has a static ``k`` (an attribute, so its result type is known when the node is built);
ties go to the lower index first (ONNX TopK's rule, XLA's TopK and a stable sort). Its VJP scatters
the values' cotangent back onto the chosen positions (``scatter_add`` over flattened rows); the
indices output has no gradient.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.dims import dim_product, is_static, require_le
from ..ir.types import TensorType
from ..trace.tensor import apply
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, shape_ops as _shape_ops

__all__ = ["topk"]


def _axis(attrs, rank, op):
    a = attrs["axis"]
    if not -rank <= a < rank:
        raise ShapeError(f"{op}: axis {a} is out of range for rank {rank}")
    return a % rank


def _topk_rule(ts, attrs):
    (x,) = ts
    if x.rank == 0:
        raise ShapeError(f"topk: needs a tensor of rank >= 1, got {x}")
    if x.dtype == "bool":
        raise DTypeError(f"topk: bool tensors have no order, got {x}", hint="cast to an integer type first")
    axis = _axis(attrs, x.rank, "topk")
    k, n = attrs["k"], x.shape[axis]
    if k < 0 or (is_static(n) and k > n):
        raise ShapeError(f"topk: k={k} must be in [0, {n}] (the size of axis {axis} of {x})")
    if not is_static(n):  # a symbolic axis: the binding checks k <= n
        require_le(k, n, f"topk: k={k} must not exceed axis {axis} of the input")
    shape = tuple(k if i == axis else d for i, d in enumerate(x.shape))
    return [TensorType(shape, x.dtype), TensorType(shape, "int64")]


def _order_key(x, largest):
    if not largest:
        return x
    # ~x reverses the order of integers without overflowing at the minimum; -x for floats
    return ~x if np.issubdtype(x.dtype, np.integer) else -x


def _topk_ref(xs, attrs, env=None):
    x = xs[0]
    axis = attrs["axis"] % x.ndim
    order = np.argsort(_order_key(x, attrs["largest"]), axis=axis, kind="stable")  # ties: lower index first
    idx = np.take(order, np.arange(attrs["k"]), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


def _topk_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x, idx = inputs[0], outputs[1]
    rank = len(x.shape)
    axis = attrs["axis"] % rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    inv = list(np.argsort(perm))
    lead = [x.shape[i] for i in perm[:-1]]
    n, k = x.shape[axis], attrs["k"]
    rows = dim_product(lead) if lead else 1
    it = _shape_ops.reshape(_shape_ops.transpose(idx, perm), [rows, k])
    gt = _shape_ops.reshape(_shape_ops.transpose(g, perm), [dim_product([rows, k])])
    size = n if is_static(n) else _shape_ops.dim_size(x, [axis], "int64")
    starts = _shape_ops.reshape(_creation.arange(0, rows) * size, [rows, 1])  # each row's offset
    flat = _shape_ops.reshape(it + starts, [dim_product([rows, k])])
    base = _shape_ops.broadcast_to(_creation.constant(np.zeros(()), x.dtype), [dim_product([rows, n])])
    gx = _shape_ops.reshape(_shape_ops.scatter_add(base, flat, gt, 0), lead + [n])
    return [_shape_ops.transpose(gx, inv)]


def _topk_flops(ins, outs, attrs):
    n = int(np.prod([int(d) for d in ins[0].shape]))
    return n * max(1, int(np.ceil(np.log2(max(attrs["k"], 2)))))


F32, F64 = "float32", "float64"

register_op(OpDef(
    name="topk", family="selection", num_inputs=(1, 1),
    attrs={"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("bool", True), "sorted": Attr("bool", True)},
    type_rule=_topk_rule, reference=_topk_ref, flops=_topk_flops, vjp=_topk_vjp,
    doc="(values, int64 indices) of the k largest (or smallest) entries along axis, sorted; ties go to "
        "the lower index. sorted=False is accepted and gives the sorted order too.",
    samples=[
        Sample([TensorType(("batch", 6), F32)], attrs={"k": 3}, bind={"batch": 3}, domain=["distinct"],
               note="symbolic batch"),
        Sample([TensorType((5, 2, 3), F64)], attrs={"k": 2, "axis": 0, "largest": False}, domain=["distinct"],
               note="smallest along axis 0"),
        Sample([TensorType((2, 5), F64)], attrs={"k": 4, "axis": 1},
               domain=[np.array([[1., 3, 3, 0, 3], [2, 2, 2, 2, 2]])], grad=False, note="ties: lower index first"),
        Sample([TensorType((3, 4), "int64")], attrs={"k": 2, "axis": -1, "largest": False}, domain=["int:-4:4"],
               grad=False, note="integers"),
        Sample([TensorType((2, 4, 3), F32)], attrs={"k": 4, "axis": 1, "sorted": False}, domain=["distinct"],
               note="k = the whole axis"),
    ],
))


def topk(x, k: int, axis: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) entries along ``axis``,
    in sorted order; ties go to the lower index (PyTorch's ``torch.topk`` signature).

    Args:
        x: a Tensor of rank >= 1 (not bool).
        k: how many entries to keep, from 0 to the size of ``axis``.
        axis: the axis to select along.
        largest: the largest entries (False: the smallest).
        sorted: accepted for PyTorch compatibility; False gives the sorted order too.

    Returns:
        ``(values, indices)``: ``x``'s shape with ``axis`` of size ``k``; values of ``x``'s dtype,
        int64 indices.

    Raises:
        ShapeError: a rank-0 ``x``, an out-of-range ``axis`` or ``k``.
        DTypeError: a bool ``x``.
    """
    return apply("topk", x, k=int(k), axis=int(axis), largest=bool(largest), sorted=bool(sorted))
