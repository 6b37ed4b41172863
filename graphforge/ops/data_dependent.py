"""Ops whose result length depends on the data: ``nonzero``, ``compress``, ``unique`` and
``non_max_suppression``.

Design (issue #19): the data-dependent length is a **fresh symbolic dim** named by the node's
``length`` attribute (``nnz0``, ``kept1``, ``uniq2`` …; the functional API and the ONNX importer pick
an unused name), so the type is known when the node is built and every later node can refer to it
(``f32[kept1,2]``). No input binds that symbol: it is bound only by running the graph.

- The reference interpreter and onnxruntime (native NonZero / Compress / Unique) run such graphs.
- The JAX back end runs them **eagerly** (op by op, not under ``jax.jit``) when ``gf.run`` meets a
  node whose result dims no input binds; lowering them for ``jax.jit`` (``runtimes.jax.lower`` /
  ``compile_graph``) raises ``UnsupportedOpError`` naming the op and the unbound length, because
  XLA needs static shapes. (A bounded-size variant — an upper bound in the type plus a run-time
  length — is the alternative the issue names; it is not built.)

``compress``'s VJP scatters the cotangent back onto the kept positions (a ``nonzero`` of the
condition feeds ``scatter_add``); ``nonzero`` and ``unique`` are not differentiable (index
results; unique's values are a selection whose positions are themselves data-dependent).
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ir.dims import dim_product, is_static
from ..ir.types import TensorType
from ..trace.tensor import apply
from .common import numel
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, shape_ops as _shape_ops

__all__ = ["nonzero", "compress", "unique", "non_max_suppression", "fresh_length"]

_COUNTER = itertools.count()


def fresh_length(prefix: str) -> str:
    """A new symbol name for a data-dependent length (unique in this process)."""
    return f"{prefix}{next(_COUNTER)}"


def _length(attrs, op):
    name = attrs["length"]
    if not name.isidentifier():
        raise ShapeError(f"{op}: length must name a symbolic dim (an identifier), got {name!r}")
    return name


# ---- nonzero --------------------------------------------------------------------------------

def _nonzero_rule(ts, attrs):
    (x,) = ts
    return [TensorType((x.rank, _length(attrs, "nonzero")), "int64")]


def _nonzero_ref(xs, attrs, env=None):
    x = xs[0]
    return [np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)]


register_op(OpDef(
    name="nonzero", family="selection", num_inputs=(1, 1), attrs={"length": Attr("str")},
    type_rule=_nonzero_rule, reference=_nonzero_ref, flops=lambda i, o, a: numel(i[0]), vjp=NOT_DIFFERENTIABLE,
    doc="ONNX NonZero: the (rank, n) int64 indices of the non-zero entries in row-major order; n is the "
        "data-dependent symbol named by length.",
    samples=[
        Sample([TensorType((3, 4), "bool")], attrs={"length": "nnz"}, bind={"nnz": 5},
               domain=[np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 1]], bool)]),
        Sample([TensorType(("batch", 5), "float32")], attrs={"length": "nnz"}, bind={"batch": 2, "nnz": 4},
               domain=[np.array([[0., 1, 0, 2, 0], [3, 0, 0, 0, 4]], np.float32)], note="symbolic batch"),
        Sample([TensorType((4,), "int64")], attrs={"length": "nnz"}, bind={"nnz": 0}, domain=[np.zeros(4, np.int64)],
               note="nothing non-zero: (1, 0)"),
    ],
))


# ---- compress -------------------------------------------------------------------------------

def _compress_rule(ts, attrs):
    x, cond = ts
    if cond.dtype != "bool" or cond.rank != 1:
        raise DTypeError(f"compress: the condition must be a 1-D bool tensor, got {cond}")
    n = _length(attrs, "compress")
    axis = attrs["axis"]
    if axis is None:
        return [TensorType((n,), x.dtype)]
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"compress: axis {axis} is out of range for {x}")
    axis %= x.rank
    size = x.shape[axis]
    if is_static(size) and is_static(cond.shape[0]) and cond.shape[0] > size:
        raise ShapeError(f"compress: the condition ({cond.shape[0]}) is longer than axis {axis} of {x}")
    return [TensorType(tuple(n if i == axis else d for i, d in enumerate(x.shape)), x.dtype)]


def _compress_ref(xs, attrs, env=None):
    x, cond = xs
    return [np.compress(cond, x, axis=attrs["axis"])]


def _compress_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None, None]
    x, cond = inputs
    kept = outputs[0].shape[0 if attrs["axis"] is None else attrs["axis"] % len(x.shape)]
    where = _shape_ops.reshape(apply("nonzero", cond, length=kept), [kept])  # the kept positions
    zero = _creation.constant(np.zeros(()), x.dtype)
    if attrs["axis"] is None:
        flat = _shape_ops.scatter_add(_shape_ops.broadcast_to(zero, [dim_product(list(x.shape))]), where, g, 0)
        return [_shape_ops.reshape(flat, list(x.shape)), None]
    return [_shape_ops.scatter_add(_shape_ops.broadcast_to(zero, list(x.shape)), where, g, attrs["axis"]), None]


register_op(OpDef(
    name="compress", family="selection", num_inputs=(2, 2),
    attrs={"length": Attr("str"), "axis": Attr("int", None, optional=True)},
    type_rule=_compress_rule, reference=_compress_ref, flops=lambda i, o, a: 0, vjp=_compress_vjp,
    nondiff_inputs=(1,),
    doc="ONNX Compress: the slices of x along axis (the flattened x when axis is None) where the bool "
        "condition is true; a condition shorter than the axis drops the rest. The kept length is the "
        "data-dependent symbol named by length.",
    samples=[
        Sample([TensorType((3, 2), "float64"), TensorType((3,), "bool")], attrs={"length": "kept", "axis": 0},
               bind={"kept": 2}, domain=["any", np.array([True, False, True])]),
        Sample([TensorType(("batch", 4), "float32"), TensorType((3,), "bool")],
               attrs={"length": "kept", "axis": -1}, bind={"batch": 2, "kept": 2}, grad=False,
               domain=["any", np.array([False, True, True])], note="symbolic batch, a short condition"),
        Sample([TensorType((2, 3), "float64"), TensorType((6,), "bool")], attrs={"length": "kept"}, bind={"kept": 3},
               domain=["any", np.array([True, False, False, True, True, False])], grad=False, note="no axis: flattened"),
    ],
))


# ---- unique ---------------------------------------------------------------------------------

def _unique_rule(ts, attrs):
    (x,) = ts
    if x.rank == 0:
        raise ShapeError(f"unique: needs a tensor of rank >= 1, got {x}")
    n = _length(attrs, "unique")
    axis = attrs["axis"]
    if axis is None:
        total = dim_product(list(x.shape))
        return [TensorType((n,), x.dtype), TensorType((n,), "int64"), TensorType((total,), "int64"),
                TensorType((n,), "int64")]
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"unique: axis {axis} is out of range for {x}")
    axis %= x.rank
    y = tuple(n if i == axis else d for i, d in enumerate(x.shape))
    return [TensorType(y, x.dtype), TensorType((n,), "int64"), TensorType((x.shape[axis],), "int64"),
            TensorType((n,), "int64")]


def _unique_ref(xs, attrs, env=None):
    x = xs[0]
    axis = attrs["axis"]
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not attrs["sorted"]:  # order of first occurrence (ONNX sorted=0)
        order = np.argsort(first, kind="stable")
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts = first[order], counts[order]
        inverse = np.argsort(order)[inverse]
    return [y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)]


register_op(OpDef(
    name="unique", family="selection", num_inputs=(1, 1),
    attrs={"length": Attr("str"), "axis": Attr("int", None, optional=True), "sorted": Attr("bool", True)},
    type_rule=_unique_rule, reference=_unique_ref, flops=lambda i, o, a: numel(i[0]), vjp=NOT_DIFFERENTIABLE,
    doc="ONNX Unique: (unique values or slices along axis, first-occurrence indices, inverse indices, counts); "
        "sorted ascending, or in order of first occurrence with sorted=False. The unique count is the "
        "data-dependent symbol named by length.",
    samples=[
        Sample([TensorType((6,), "float32")], attrs={"length": "u"}, bind={"u": 4},
               domain=[np.array([2., 1, 1, 3, 4, 3], np.float32)]),
        Sample([TensorType((6,), "float64")], attrs={"length": "u", "sorted": False}, bind={"u": 4},
               domain=[np.array([2., 1, 1, 3, 4, 3])], note="first-occurrence order"),
        Sample([TensorType((3, 3), "int64")], attrs={"length": "u", "axis": 0}, bind={"u": 2},
               domain=[np.array([[1, 0, 0], [1, 0, 0], [2, 3, 4]])], note="unique rows"),
        Sample([TensorType(("batch", 4), "int64")], attrs={"length": "u", "axis": -1}, bind={"batch": 2, "u": 2},
               domain=[np.array([[1, 2, 1, 2], [0, 3, 0, 3]])], note="symbolic batch, unique columns"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def nonzero(x):
    """ONNX/NumPy-style nonzero: the (rank, n) int64 indices of the non-zero entries.

    Args:
        x: a Tensor; its non-zero (True) entries are listed in row-major order.

    Returns:
        An int64 Tensor of shape (rank of ``x``, n); n is a fresh data-dependent symbol.
    """
    return apply("nonzero", x, length=fresh_length("nnz"))


def compress(x, condition, axis: int | None = None):
    """``np.compress(condition, x, axis)``: the slices where the 1-D bool ``condition`` holds."""
    return apply("compress", x, condition, length=fresh_length("kept"), axis=axis)


def unique(x, axis: int | None = None, sorted: bool = True):  # noqa: A002
    """``(values, first_indices, inverse_indices, counts)`` like ONNX Unique (``sorted=False``: in order
    of first occurrence).

    Args:
        x: a Tensor of rank >= 1.
        axis: None: the unique elements of the flattened ``x``; an int: the unique slices along that axis.
        sorted: ascending order (False: in order of first occurrence).

    Returns:
        ``(values, first_indices, inverse_indices, counts)``; the number of unique entries is a fresh
        data-dependent symbol.

    Raises:
        ShapeError: a rank-0 ``x`` or an out-of-range ``axis``.
    """
    return apply("unique", x, length=fresh_length("uniq"), axis=axis, sorted=bool(sorted))


# ---- non_max_suppression ----------------------------------------------------------------------

def _nms_rule(ts, attrs):
    boxes, scores, max_out, iou, thr = ts
    if boxes.rank != 3 or boxes.shape[2] != 4:
        raise ShapeError(f"non_max_suppression: boxes must be (batch, boxes, 4), got {boxes}")
    if scores.rank != 3 or scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise ShapeError(f"non_max_suppression: scores must be (batch, classes, boxes) matching {boxes}, got {scores}")
    for t, what, kinds in ((max_out, "max_output_boxes_per_class", ("int64", "int32")),
                           (iou, "iou_threshold", (boxes.dtype,)), (thr, "score_threshold", (boxes.dtype,))):
        if t.dtype not in kinds or t.rank > 1 or (t.rank == 1 and t.shape[0] != 1):
            raise DTypeError(f"non_max_suppression: {what} must be a scalar of {' or '.join(kinds)}, got {t}")
    if scores.dtype != boxes.dtype or boxes.dtype not in ("float32", "float64"):
        raise DTypeError(f"non_max_suppression: boxes and scores must share float32/float64, got {boxes}, {scores}")
    return [TensorType((_length(attrs, "non_max_suppression"), 3), "int64")]


def _corners(b, center):
    """(N, 4) boxes -> (y_min, x_min, y_max, x_max) with each pair ordered."""
    if center:
        xc, yc, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
    return (np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
            np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3]))


def _iou_over(b, center, thr):
    """(N, N) bool: box i suppresses box j (IoU > thr; touching or empty boxes never do), ONNX's rule."""
    y0, x0, y1, x1 = _corners(b, center)
    iy = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
    ix = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
    inter = np.where((iy > 0) & (ix > 0), iy * ix, 0.0)
    area = (y1 - y0) * (x1 - x0)
    union = area[:, None] + area[None] - inter
    ok = (inter > 0) & (area[:, None] > 0) & (area[None] > 0) & (union > 0)
    with np.errstate(all="ignore"):
        return ok & (inter / np.where(union > 0, union, 1) > thr)


def _nms_ref(xs, attrs, env=None):
    boxes, scores, max_out, iou, thr = xs
    k = max(int(np.asarray(max_out).reshape(-1)[0]), 0)
    iou_t, score_t = float(np.asarray(iou).reshape(-1)[0]), float(np.asarray(thr).reshape(-1)[0])
    picked = []
    for b in range(boxes.shape[0]):
        over = _iou_over(boxes[b], attrs["center_point_box"], iou_t)
        for c in range(scores.shape[1]):
            s = scores[b, c]
            order = [i for i in np.lexsort((np.arange(len(s)), -s))
                     if not attrs["use_score_threshold"] or s[i] > score_t]  # best first; ties: lower index
            kept: list[int] = []
            for i in order:
                if len(kept) >= k:
                    break
                if not any(over[i, j] for j in kept):
                    kept.append(i)
                    picked.append((b, c, i))
    return [np.array(picked, dtype=np.int64).reshape(-1, 3)]


_BOXES = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, -0.1, 1, 0.9], [0, 10, 1, 11], [0, 10.1, 1, 11.1],
                    [0, 100, 1, 101]]], np.float32)
_SCORES = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)

register_op(OpDef(
    name="non_max_suppression", family="selection", num_inputs=(5, 5),
    attrs={"length": Attr("str"), "center_point_box": Attr("bool", False), "use_score_threshold": Attr("bool", True)},
    type_rule=_nms_rule, reference=_nms_ref, flops=lambda i, o, a: numel(i[1]) * int(i[0].shape[1]),
    vjp=NOT_DIFFERENTIABLE,
    doc="ONNX NonMaxSuppression: (selected, 3) int64 rows (batch, class, box), per batch and class the boxes "
        "by descending score (ties: lower index) that no earlier pick overlaps with IoU > iou_threshold, at "
        "most max_output_boxes_per_class of them, scores > score_threshold (use_score_threshold). selected "
        "is the data-dependent symbol named by length.",
    samples=[
        Sample([TensorType((1, 6, 4), "float32"), TensorType((1, 1, 6), "float32"), TensorType((), "int64"),
                TensorType((), "float32"), TensorType((), "float32")], attrs={"length": "sel"}, bind={"sel": 3},
               domain=[_BOXES, _SCORES, np.array(3, np.int64), np.array(0.5, np.float32), np.array(0.0, np.float32)]),
        Sample([TensorType((1, 6, 4), "float64"), TensorType((1, 2, 6), "float64"), TensorType((1,), "int64"),
                TensorType((1,), "float64"), TensorType((1,), "float64")],
               attrs={"length": "sel", "center_point_box": True}, bind={"sel": 4},
               domain=[np.array([[[0.5, 0.5, 1, 1], [0.5, 0.6, 1, 1], [0.5, 0.4, 1, 1], [0.5, 10.5, 1, 1],
                                  [0.5, 10.6, 1, 1], [0.5, 100.5, 1, 1]]]),
                       np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]]),
                       np.array([2]), np.array([0.5]), np.array([0.35])],
               note="center boxes, two classes, a score threshold"),
    ],
))


def non_max_suppression(boxes, scores, max_output_boxes_per_class=0, iou_threshold=0.0, score_threshold=None,
                        center_point_box: bool = False):
    """ONNX NonMaxSuppression: (selected, 3) int64 rows (batch, class, box). Per batch and class, the
    boxes by descending score (ties: lower index) that no earlier pick overlaps with IoU above the
    threshold.

    Args:
        boxes: a (batch, boxes, 4) float32/float64 Tensor.
        scores: a (batch, classes, boxes) Tensor of the same dtype.
        max_output_boxes_per_class: the most boxes kept per batch and class (an int or an int64/int32
            scalar Tensor); 0 keeps none.
        iou_threshold: a box overlapping an earlier pick with IoU above this is dropped (a float or a
            scalar Tensor of the boxes' dtype).
        score_threshold: None: no threshold; otherwise only boxes scoring above it are kept (a float or
            a scalar Tensor).
        center_point_box: boxes are (x_center, y_center, width, height) instead of two corners
            (y1, x1, y2, x2).

    Returns:
        A (selected, 3) int64 Tensor; selected is a fresh data-dependent symbol.

    Raises:
        ShapeError: ``boxes`` or ``scores`` of the wrong shape.
        DTypeError: mismatched or non-float dtypes, or a threshold that is not a scalar.
    """
    dt = boxes.dtype
    max_out = max_output_boxes_per_class if hasattr(max_output_boxes_per_class, "dtype") and not isinstance(
        max_output_boxes_per_class, np.ndarray) else _creation.constant(np.array(max_output_boxes_per_class, np.int64))
    iou = iou_threshold if hasattr(iou_threshold, "builder") else _creation.constant(np.array(iou_threshold), dt)
    use = score_threshold is not None
    thr = score_threshold if hasattr(score_threshold, "builder") else _creation.constant(np.array(0.0 if not use else score_threshold), dt)
    return apply("non_max_suppression", boxes, scores, max_out, iou, thr, length=fresh_length("sel"),
                 center_point_box=bool(center_point_box), use_score_threshold=use)
