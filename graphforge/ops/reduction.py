"""Reductions over axes (sum mean max min prod argmax argmin) and softmax / log_softmax."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._shapes import normalize_axes, normalize_axis, reduce_shape, require_float
from .common import compute_dtype, elementwise_flops, numel, out_like
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import elementwise as _elementwise, shape_ops as _shape_ops

__all__ = ["sum", "mean", "max", "min", "prod", "argmax", "argmin", "softmax", "log_softmax", "var",
           "REDUCE_OPS"]

_AXES_ATTRS = {"axes": Attr("ints", None, optional=True), "keepdims": Attr("bool", False)}


def _reduce_rule(ts, attrs):
    t = ts[0]
    axes = normalize_axes(attrs["axes"], t.rank)
    return [TensorType(reduce_shape(t.shape, axes, attrs["keepdims"]), t.dtype)]


def _require_nonempty(t, axes, what):
    """max/min/argmax/argmin have no identity: reducing a (static) empty axis has no answer."""
    for a in axes:
        if t.shape[a] == 0:
            raise ShapeError(f"{what} over axis {a} of size 0 has no value (the reduction has no identity)")


def _chooser_rule(ts, attrs):
    _require_nonempty(ts[0], normalize_axes(attrs["axes"], ts[0].rank), "a max/min")
    return _reduce_rule(ts, attrs)


def _axes_tuple(attrs, rank):
    return tuple(normalize_axes(attrs["axes"], rank))


def _reduce_ref(fn):
    def ref(xs, attrs, env=None):
        x = xs[0]
        axes = _axes_tuple(attrs, x.ndim)
        out = fn(x.astype(compute_dtype(x)), axis=axes, keepdims=attrs["keepdims"])
        return [np.asarray(out).astype(x.dtype)]
    return ref


def _keep(g, x, attrs):
    """The cotangent of a reduction reshaped with kept dims so it broadcasts against ``x``."""

    axes = normalize_axes(attrs["axes"], x.ndim)
    if not attrs["keepdims"]:
        g = _shape_ops.reshape(g, reduce_shape(x.shape, axes, True))
    return g


def _sum_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    return [_shape_ops.broadcast_to(_keep(g, inputs[0], attrs), inputs[0].shape)]


def _mean_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    count = _shape_ops.dim_size(x, normalize_axes(attrs["axes"], x.ndim), x.dtype)
    return [_shape_ops.broadcast_to(_keep(g, x, attrs) / count, x.shape)]


def _chooser_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    y = _keep(outputs[0], x, attrs)
    # Ties share the cotangent evenly, as jax.grad does.
    mask = _elementwise.cast(_elementwise.equal(x, y), x.dtype)
    count = sum(mask, attrs["axes"], keepdims=True)
    return [_shape_ops.broadcast_to(_keep(g, x, attrs), x.shape) * mask / count]


def _prod_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    return [_shape_ops.broadcast_to(_keep(g * outputs[0], x, attrs), x.shape) / x]


_REDUCE = {
    "sum": (np.sum, _sum_vjp, "any"),
    "mean": (np.mean, _mean_vjp, "any"),
    "max": (np.max, _chooser_vjp, "distinct"),
    "min": (np.min, _chooser_vjp, "distinct"),
    "prod": (np.prod, _prod_vjp, "nonzero"),
}
REDUCE_OPS = tuple(_REDUCE)
"""The names of the reduction ops (``sum``, ``mean``, ...), each also ``gf.<name>(x, axis, keepdims)``."""


def _reduce_samples(domain):
    f = "float32"
    return [
        Sample([TensorType((3, 4), f)], attrs={"axes": [1]}, domain=[domain]),
        Sample([TensorType(("batch", 4, 5), f)], attrs={"axes": [0, 2], "keepdims": True}, bind={"batch": 2},
               domain=[domain]),
        Sample([TensorType((2, 3), f)], attrs={"axes": None}, domain=[domain]),
        Sample([TensorType((1, 3, 1), "float64")], attrs={"axes": [-1], "keepdims": False}, domain=[domain]),
    ]


for _name, (_fn, _vjp, _domain) in _REDUCE.items():
    _samples = _reduce_samples(_domain)
    if _name != "mean":
        _samples.append(Sample([TensorType((3, 4), "int32")], attrs={"axes": [0]}, domain=["int:-3:3"], grad=False))
    register_op(OpDef(
        name=_name, family="reduction", num_inputs=(1, 1), attrs=dict(_AXES_ATTRS),
        type_rule=_chooser_rule if _name in ("max", "min") else _reduce_rule,
        reference=_reduce_ref(_fn), flops=lambda i, o, a: numel(i[0]), vjp=_vjp, samples=_samples,
    ))


def _reduce_api(name):
    def fn(x, axis=None, keepdims: bool = False):
        axes = [axis] if isinstance(axis, int) else (list(axis) if axis is not None else None)
        return apply(name, x, axes=axes, keepdims=keepdims)
    fn.__name__ = name
    fn.__doc__ = (f"{name} of the Tensor ``x`` over ``axis`` (an int, a list of ints, or None for all axes); "
                  f"``keepdims`` keeps the reduced axes with size 1.\n\nReturns the reduced Tensor; an axis out of "
                  f"range is a ``ShapeError``.\n\nExample:\n    ```python\n    y = gf.{name}(x, axis=-1, keepdims=True)\n    ```")
    return fn


sum = _reduce_api("sum")  # noqa: A001
mean = _reduce_api("mean")
max = _reduce_api("max")  # noqa: A001
min = _reduce_api("min")  # noqa: A001
prod = _reduce_api("prod")


def var(x, axis=None, keepdims: bool = False, correction: int = 0):
    """Variance over ``axis`` (population variance unless ``correction=1``).

    Args:
        x: the input Tensor.
        axis: None (all axes), an int or a list of ints.
        keepdims: keep the reduced axes with size 1.
        correction: 0 for the population variance, 1 for the sample variance.
    """
    mu = mean(x, axis, keepdims=True)
    d = x - mu
    out = mean(d * d, axis, keepdims=keepdims)
    if correction:
        n = _shape_ops.dim_size(x, normalize_axes([axis] if isinstance(axis, int) else axis, x.ndim), x.dtype)
        out = out * n / (n - correction)
    return out


def _arg_rule(ts, attrs):
    t = ts[0]
    axis = normalize_axis(attrs["axis"], t.rank)
    _require_nonempty(t, [axis], "an argmax/argmin")
    return [TensorType(reduce_shape(t.shape, [axis], attrs["keepdims"]), "int64")]


def _arg_ref(fn):
    def ref(xs, attrs, env=None):
        x = xs[0]
        out = fn(x, axis=attrs["axis"])
        if attrs["keepdims"]:
            out = np.expand_dims(out, attrs["axis"])
        return [np.asarray(out, dtype=np.int64)]
    return ref


for _name, _fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    register_op(OpDef(
        name=_name, family="reduction", num_inputs=(1, 1),
        attrs={"axis": Attr("int", -1), "keepdims": Attr("bool", False)}, type_rule=_arg_rule,
        reference=_arg_ref(_fn), flops=lambda i, o, a: numel(i[0]), vjp=NOT_DIFFERENTIABLE,
        samples=[Sample([TensorType((3, 4), "float32")], attrs={"axis": 1}, domain=["distinct"]),
                 Sample([TensorType(("batch", 5), "float32")], attrs={"axis": -1, "keepdims": True},
                        bind={"batch": 3}, domain=["distinct"]),
                 Sample([TensorType((4, 2), "int32")], attrs={"axis": 0}, domain=["permutation"])],
    ))


def argmax(x, axis: int = -1, keepdims: bool = False):
    """Index of the largest value along ``axis`` (first one on ties), as int64.

    Args:
        x: the input Tensor.
        axis: the axis searched.
        keepdims: keep the axis with size 1.
    """
    return apply("argmax", x, axis=axis, keepdims=keepdims)


def argmin(x, axis: int = -1, keepdims: bool = False):
    """Index of the smallest value along ``axis`` (first one on ties), as int64.

    Args:
        x: the input Tensor.
        axis: the axis searched.
        keepdims: keep the axis with size 1.
    """
    return apply("argmin", x, axis=axis, keepdims=keepdims)


def _softmax_rule(ts, attrs):
    require_float(ts[0])
    normalize_axis(attrs["axis"], ts[0].rank)
    return out_like(ts[0])


def _softmax_np(x, axis):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # (initial: an empty axis is fine)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_np(x, axis):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    s = x - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _softmax_ref(fn):
    def ref(xs, attrs, env=None):
        x = xs[0]
        return [fn(x.astype(compute_dtype(x)), attrs["axis"]).astype(x.dtype)]
    return ref


def _softmax_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    y = outputs[0]
    return [y * (g - sum(g * y, attrs["axis"], keepdims=True))]


def _log_softmax_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    return [g - _elementwise.exp(outputs[0]) * sum(g, attrs["axis"], keepdims=True)]


def _softmax_decompose(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    e = _elementwise.exp(x - max(x, axis, keepdims=True))
    return [e / sum(e, axis, keepdims=True)]


def _log_softmax_decompose(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    s = x - max(x, axis, keepdims=True)
    return [s - _elementwise.log(sum(_elementwise.exp(s), axis, keepdims=True))]


_SOFTMAX_SAMPLES = [
    Sample([TensorType((3, 4), "float32")], attrs={"axis": -1}),
    Sample([TensorType(("batch", 3, 5), "float32")], attrs={"axis": 1}, bind={"batch": 2}),
    Sample([TensorType((2, 1), "float64")], attrs={"axis": 0}),
]
register_op(OpDef(
    name="softmax", family="reduction", num_inputs=(1, 1), attrs={"axis": Attr("int", -1)},
    type_rule=_softmax_rule, reference=_softmax_ref(_softmax_np), flops=elementwise_flops(5),
    vjp=_softmax_vjp, decompose=_softmax_decompose, samples=list(_SOFTMAX_SAMPLES),
))
register_op(OpDef(
    name="log_softmax", family="reduction", num_inputs=(1, 1), attrs={"axis": Attr("int", -1)},
    type_rule=_softmax_rule, reference=_softmax_ref(_log_softmax_np), flops=elementwise_flops(5),
    vjp=_log_softmax_vjp, decompose=_log_softmax_decompose, samples=list(_SOFTMAX_SAMPLES),
))


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis``, computed stably: finite for any finite row; -inf entries get 0,
    a row that is all -inf or holds +inf or NaN is NaN (as PyTorch)."""
    return apply("softmax", x, axis=axis)


def log_softmax(x, axis: int = -1):
    """log(softmax(x)) along ``axis``, computed stably: finite for a finite row whose spread (max - min) is a
    float32; -inf entries give -inf, a row that is all -inf or holds +inf or NaN is NaN (as PyTorch)."""
    return apply("log_softmax", x, axis=axis)


