"""Ops that create tensors: ``constant``, ``arange`` and ``one_hot``."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..ir.types import TensorType
from ..trace.builder import current_builder
from ..trace.tensor import apply, wrap
from .common import numel
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op

__all__ = ["constant", "arange", "one_hot", "full", "zeros", "ones"]


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
    """A constant tensor inside the graph being traced."""
    array = np.asarray(value)
    if dtype is not None:
        array = array.astype(_dt.to_numpy_dtype(dtype))
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    builder = current_builder()
    return wrap(builder.emit1("constant", [], {"value": array}), builder)


def full(shape, fill_value, dtype="float32"):
    """A constant tensor of static ``shape`` filled with ``fill_value``."""
    return constant(np.full(tuple(shape), fill_value, dtype=_dt.to_numpy_dtype(dtype)), dtype)


def zeros(shape, dtype="float32"):
    return full(shape, 0, dtype)


def ones(shape, dtype="float32"):
    return full(shape, 1, dtype)


def _arange_rule(ts, attrs):
    start, stop, step = attrs["start"], attrs["stop"], attrs["step"]
    if step == 0:
        raise ShapeError("arange: step must not be 0")
    n = max(0, -(-(stop - start) // step))
    return [TensorType((n,), attrs["dtype"])]


def _arange_ref(xs, attrs, env=None):
    return [np.arange(attrs["start"], attrs["stop"], attrs["step"], dtype=_dt.to_numpy_dtype(attrs["dtype"]))]


register_op(OpDef(
    name="arange", family="creation", num_inputs=(0, 0),
    attrs={"start": Attr("int", 0), "stop": Attr("int"), "step": Attr("int", 1), "dtype": Attr("dtype", "int64")},
    type_rule=_arange_rule, reference=_arange_ref, flops=lambda i, o, a: 0, vjp=NOT_DIFFERENTIABLE,
    doc="Integers start, start+step, … below stop (also known as iota).",
    samples=[Sample([], attrs={"stop": 5}), Sample([], attrs={"start": 2, "stop": 11, "step": 3, "dtype": "float32"}),
             Sample([], attrs={"start": 5, "stop": 0, "step": -2, "dtype": "int32"})],
))


def arange(start: int, stop: int | None = None, step: int = 1, dtype="int64"):
    """``arange(stop)`` or ``arange(start, stop, step)`` with static integer bounds."""
    if stop is None:
        start, stop = 0, start
    builder = current_builder()
    return wrap(builder.emit1("arange", [], {"start": start, "stop": stop, "step": step, "dtype": dtype}), builder)


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
    """One-hot encode integer ``indices`` along a new last axis (out-of-range rows are all zero)."""
    return apply("one_hot", indices, num_classes=num_classes, dtype=dtype)
