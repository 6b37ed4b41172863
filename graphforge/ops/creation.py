"""Ops that create tensors: ``constant``, ``arange``, ``one_hot`` and ``dim_value``; and the
functional ``full``/``zeros``/``ones``/``tril``/``triu`` built from them (shapes and bounds may be
symbolic dims such as ``x.shape[1]``)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.dims import dim_ceildiv, dim_sub, is_static, require_le, resolve_attr_dims, resolve_dim
from ..ir.types import TensorType
from ..trace.builder import current_builder
from ..trace.tensor import apply, wrap
from .common import numel
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _elementwise, shape_ops as _shape_ops

__all__ = ["constant", "arange", "one_hot", "full", "zeros", "ones", "tril", "triu", "dim_value"]


def _constant_rule(ts, attrs):
    value = attrs["value"]
    return [TensorType(value.shape, _dt.from_numpy_dtype(value.dtype))]


register_op(OpDef(
    name="constant", family="creation", num_inputs=(0, 0), attrs={"value": Attr("tensor")},
    type_rule=_constant_rule, reference=lambda xs, attrs, env=None: [attrs["value"]],
    flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE,
    samples=[Sample([], attrs={"value": np.arange(6, dtype=np.float32).reshape(2, 3)}),
             Sample([], attrs={"value": np.array(3, dtype=np.int64)})],
))


def constant(value, dtype=None):
    """A constant tensor inside the graph being traced.

    Args:
        value: a number or an array.
        dtype: None: from ``value``.
    """
    array = np.asarray(value)
    if dtype is not None:
        array = array.astype(_dt.to_numpy_dtype(dtype))
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    builder = current_builder()
    return wrap(builder.emit1("constant", [], {"value": array}), builder)


def _dims(shape):
    return [d if isinstance(d, str) else int(d) for d in shape]


def full(shape, fill_value, dtype="float32"):
    """A tensor of ``shape`` filled with ``fill_value``; symbolic dims (``x.shape[0]``) give a
    run-time shape (a broadcast scalar), static shapes a constant.

    Args:
        shape: ints or symbolic dims.
        fill_value: the value.
        dtype: the result's dtype.
    """
    shape = _dims(shape)
    if all(isinstance(d, int) for d in shape):
        return constant(np.full(tuple(shape), fill_value, dtype=_dt.to_numpy_dtype(dtype)), dtype)
    return _shape_ops.broadcast_to(constant(np.array(fill_value, dtype=_dt.to_numpy_dtype(dtype)), dtype), shape)


def zeros(shape, dtype="float32"):
    """A tensor of ``shape`` (ints or symbolic dims) filled with 0, of ``dtype``; see :func:`full`.

    Example:
        ```python
        h0 = gf.zeros((x.shape[0], 64))
        ```
    """
    return full(shape, 0, dtype)


def ones(shape, dtype="float32"):
    """A tensor of ``shape`` (ints or symbolic dims) filled with 1, of ``dtype``; see :func:`full`.

    Example:
        ```python
        mask = gf.ones((x.shape[0], x.shape[1]), "bool")
        ```
    """
    return full(shape, 1, dtype)


def _arange_rule(ts, attrs):
    start, stop, step = attrs["start"], attrs["stop"], attrs["step"]
    if step == 0:
        raise ShapeError("arange: step must not be 0")
    if is_static(start) and is_static(stop):
        n = max(0, -(-(stop - start) // step))
    elif step < 0:
        raise ShapeError(f"arange: a negative step needs static bounds, got start={start}, stop={stop}")
    else:
        require_le(start, stop, f"arange({start}, {stop}, {step})")
        n = dim_ceildiv(dim_sub(stop, start), step)
    return [TensorType((n,), attrs["dtype"])]


def _arange_ref(xs, attrs, env=None):
    a = resolve_attr_dims(attrs, ("start", "stop"), env or {})
    return [np.arange(a["start"], a["stop"], a["step"], dtype=_dt.to_numpy_dtype(a["dtype"]))]


register_op(OpDef(
    name="arange", family="creation", num_inputs=(0, 0),
    attrs={"start": Attr("dim", 0), "stop": Attr("dim"), "step": Attr("int", 1), "dtype": Attr("dtype", "int64")},
    type_rule=_arange_rule, reference=_arange_ref, flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE,
    doc="Integers start, start+step, … below stop (also known as iota); start/stop may be symbolic dims.",
    samples=[Sample([], attrs={"stop": 5}), Sample([], attrs={"start": 2, "stop": 11, "step": 3, "dtype": "float32"}),
             Sample([], attrs={"start": 5, "stop": 0, "step": -2, "dtype": "int32"})],
    # (a zero-input op has no input to bind a symbol: tests/trace/test_symbolic_shapes.py runs the
    # symbolic bounds on every back end)
))


def arange(start, stop=None, step: int = 1, dtype="int64"):
    """``arange(stop)`` or ``arange(start, stop, step)``; bounds are ints or symbolic dims
    (``gf.arange(x.shape[1])``), the step a static int.

    Args:
        start: the start (or the stop, alone).
        stop: the stop (exclusive).
        step: a static int.
        dtype: the result's dtype.
    """
    if stop is None:
        start, stop = 0, start
    start, stop = _dims([start])[0], _dims([stop])[0]
    builder = current_builder()
    return wrap(builder.emit1("arange", [], {"start": start, "stop": stop, "step": step, "dtype": dtype}), builder)


def _tri(x, k, lower):
    rows, cols = x.shape[-2], x.shape[-1]
    i = _shape_ops.unsqueeze(arange(rows), 1)
    j = _shape_ops.unsqueeze(arange(cols), 0)
    if k:
        i = i + int(k)
    keep = _elementwise.greater_equal(i, j) if lower else _elementwise.less_equal(i, j)
    return _elementwise.where(keep, x, np.zeros((), dtype=_dt.to_numpy_dtype(x.dtype)))


def tril(x, k: int = 0):
    """The lower triangle of the last two axes (``j <= i + k``), zeros above; works on symbolic
    sizes, e.g. the causal mask ``gf.tril(gf.ones((n, n)))`` with ``n = x.shape[1]``."""
    return _tri(x, k, True)


def triu(x, k: int = 0):
    """The upper triangle of the last two axes (``j >= i + k``), zeros below.

    Args:
        x: the input Tensor.
        k: the diagonal offset.
    """
    return _tri(x, k, False)


def _dim_value_ref(xs, attrs, env=None):
    return [np.array(resolve_dim(attrs["dim"], env or {}), dtype=_dt.to_numpy_dtype(attrs["dtype"]))]


register_op(OpDef(
    name="dim_value", family="creation", num_inputs=(0, 0),
    attrs={"dim": Attr("dim"), "dtype": Attr("dtype", "int64")},
    type_rule=lambda ts, a: [TensorType((), a["dtype"])], reference=_dim_value_ref, flops=lambda i, o, a: 0,
    vjp=NOT_DIFFERENTIABLE,
    doc="The run-time value of a (symbolic) dim expression as a scalar: ``x / x.shape[1]`` in a model.",
    samples=[Sample([], attrs={"dim": 5}), Sample([], attrs={"dim": 3, "dtype": "float32"})],
))


def dim_value(dim, dtype="int64"):
    """A 0-d tensor holding the run-time value of ``dim`` (an int or a symbolic dim).

    Args:
        dim: an int or a symbolic dim (``x.shape[0]``).
        dtype: the result's dtype.
    """
    dim = _dims([dim])[0]
    if isinstance(dim, int):
        return constant(np.array(dim), dtype)
    builder = current_builder()
    return wrap(builder.emit1("dim_value", [], {"dim": dim, "dtype": dtype}), builder)


def _one_hot_rule(ts, attrs):
    t = ts[0]
    if not _dt.is_int(t.dtype):
        raise DTypeError(f"one_hot: indices must be integers, got {t}", hint="labels should be int32 or int64")
    if attrs["num_classes"] <= 0:
        raise ShapeError("one_hot: num_classes must be positive")
    return [TensorType(t.shape + (attrs["num_classes"],), attrs["dtype"])]


def _one_hot_ref(xs, attrs, env=None):
    idx = xs[0].astype(np.int64)
    n = attrs["num_classes"]
    out = (idx[..., None] == np.arange(n)).astype(_dt.to_numpy_dtype(attrs["dtype"]))
    return [out]


register_op(OpDef(
    name="one_hot", family="creation", num_inputs=(1, 1),
    attrs={"num_classes": Attr("int"), "dtype": Attr("dtype", "float32")},
    type_rule=_one_hot_rule, reference=_one_hot_ref, flops=lambda i, o, a: numel(o[0]),
    vjp=NOT_DIFFERENTIABLE,
    samples=[Sample([TensorType((4,), "int64")], attrs={"num_classes": 5}, domain=["int:0:5"]),
             Sample([TensorType(("batch", 3), "int32")], attrs={"num_classes": 3}, bind={"batch": 2},
                    domain=["int:0:3"])],
))


def one_hot(indices, num_classes: int, dtype="float32"):
    """One-hot encode integer ``indices`` along a new last axis (out-of-range rows are all zero).

    Args:
        indices: an integer Tensor.
        num_classes: the size of the new axis.
        dtype: the result's dtype.
    """
    return apply("one_hot", indices, num_classes=num_classes, dtype=dtype)
