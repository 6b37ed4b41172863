"""batch_norm (eval: 1 output; training: y and the new running statistics) and layer_norm
(composite, with a decomposition into primitives): the op definitions and their public functions."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from ..trace.tensor import apply
from ._nn_common import F32, F64, _fmt
from ._shapes import normalize_axis, require_float, same_dtype
from .common import compute_dtype, elementwise_flops
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import creation as _creation, elementwise as _elementwise, reduction as _reduction, shape_ops as _shape_ops

__all__ = ["batch_norm", "layer_norm", "normalize"]


# ---- batch_norm -----------------------------------------------------------------------------

def _bn_rule(ts, attrs):
    x = ts[0]
    require_float(x, "batch_norm's input")
    same_dtype(ts, "batch_norm's input, scale, bias, running_mean and running_var")
    if x.rank < 2:
        raise ShapeError(f"batch_norm: expects (N, C, ...) input, got {_fmt(x)}")
    c = x.shape[1]
    names = ("scale", "bias", "running_mean", "running_var")
    for name, t in zip(names, ts[1:]):
        if tuple(t.shape) != (c,):
            hint = "if your data is NHWC, transpose it with x.permute(0, 3, 1, 2)" if (
                x.rank == 4 and (x.shape[3],) == tuple(t.shape)) else f"BatchNorm's num_features must equal the channels ({c})"
            raise ShapeError(f"batch_norm: {name} has shape {_fmt(t)} but the input {_fmt(x)} has {c} channels "
                             f"at axis 1", hint=hint)
    if not 0.0 <= attrs["momentum"] <= 1.0:
        raise ShapeError(f"batch_norm: momentum must be in [0, 1], got {attrs['momentum']}")
    if attrs["training"]:
        return [x, ts[3], ts[4]]
    return [x]


def _bn_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def _bn_ref(xs, attrs, env=None):
    x, scale, bias, rm, rv = xs
    cd = compute_dtype(x)
    xc = x.astype(cd)
    shp = _bn_shape(x)
    eps = attrs["eps"]
    if not attrs["training"]:
        y = (xc - rm.astype(cd).reshape(shp)) / np.sqrt(rv.astype(cd).reshape(shp) + cd.type(eps))
        y = y * scale.astype(cd).reshape(shp) + bias.astype(cd).reshape(shp)
        return [y.astype(x.dtype)]
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // max(x.shape[1], 1)
    mu = xc.mean(axis=axes)
    var = ((xc - mu.reshape(shp)) ** 2).mean(axis=axes)
    y = (xc - mu.reshape(shp)) / np.sqrt(var.reshape(shp) + cd.type(eps))
    y = y * scale.astype(cd).reshape(shp) + bias.astype(cd).reshape(shp)
    m = cd.type(attrs["momentum"])
    unbiased = var * cd.type(n / (n - 1)) if n > 1 else var
    new_rm = (1 - m) * rm.astype(cd) + m * mu
    new_rv = (1 - m) * rv.astype(cd) + m * unbiased
    return [y.astype(x.dtype), new_rm.astype(rm.dtype), new_rv.astype(rv.dtype)]


def _bn_vjp(inputs, outputs, cots, attrs):
    x, scale, bias, rm, rv = inputs
    g = cots[0]
    eps, m = attrs["eps"], attrs["momentum"]
    axes = [0] + list(range(2, x.ndim))
    shp = [1, -1] + [1] * (x.ndim - 2)

    def bc(t):
        return _shape_ops.reshape(t, shp)

    if not attrs["training"]:
        if g is None:
            return [None] * 5
        inv = _elementwise.rsqrt(rv + eps)
        xhat = (x - bc(rm)) * bc(inv)
        gs = _reduction.sum(g, axes)
        gsx = _reduction.sum(g * xhat, axes)
        gx = g * bc(scale * inv)
        g_rm = -(gs * scale * inv)
        g_rv = gsx * scale * (-0.5) / (rv + eps)
        return [gx, gsx, gs, g_rm, g_rv]
    g_nm = cots[1] if len(cots) > 1 else None
    g_nv = cots[2] if len(cots) > 2 else None
    n = _shape_ops.dim_size(x, axes, x.dtype)
    mu = _reduction.mean(x, axes, keepdims=True)
    d = x - mu
    var = _reduction.mean(d * d, axes, keepdims=True)
    inv = _elementwise.rsqrt(var + eps)
    xhat = d * inv
    gx = g_scale = g_bias = None
    if g is not None:
        gs = _reduction.sum(g, axes, keepdims=True)
        gsx = _reduction.sum(g * xhat, axes, keepdims=True)
        gx = bc(scale) * inv * (g - gs / n - xhat * gsx / n)
        g_scale = _shape_ops.reshape(gsx, [x.shape[1]])
        g_bias = _shape_ops.reshape(gs, [x.shape[1]])
    g_rm = g_rv = None
    if g_nm is not None:
        g_rm = g_nm * (1 - m)
        extra = bc(g_nm) * (m / n)
        gx = extra if gx is None else gx + extra
    if g_nv is not None:
        g_rv = g_nv * (1 - m)
        extra = bc(g_nv) * d * (2 * m / (n - 1))
        gx = extra if gx is None else gx + extra
    if gx is not None and tuple(gx.shape) != tuple(x.shape):
        gx = _shape_ops.broadcast_to(gx, x.shape)
    return [gx, g_scale, g_bias, g_rm, g_rv]


_BN_TYPES = lambda shape, c, dt: [TensorType(shape, dt)] + [TensorType((c,), dt)] * 4  # noqa: E731
_BN_DOMAIN = ["any", "any", "any", "any", "positive"]

register_op(OpDef(
    name="batch_norm", family="nn", num_inputs=(5, 5),
    attrs={"eps": Attr("float", 1e-5), "momentum": Attr("float", 0.1), "training": Attr("bool", False)},
    type_rule=_bn_rule, reference=_bn_ref, flops=elementwise_flops(4), vjp=_bn_vjp,
    doc="(x - mean) / sqrt(var + eps) * scale + bias per channel (axis 1). Eval: running stats, 1 output. "
        "Training: batch stats, outputs (y, new_running_mean, new_running_var) with PyTorch's momentum "
        "and the unbiased batch variance in the running var.",
    samples=[
        Sample(_BN_TYPES((2, 3, 4, 4), 3, F32), domain=_BN_DOMAIN),
        Sample(_BN_TYPES(("batch", 3, 2, 2), 3, F32), attrs={"training": True, "momentum": 0.2},
               bind={"batch": 3}, domain=_BN_DOMAIN, note="training, symbolic batch"),
        Sample(_BN_TYPES((4, 2, 3), 2, F64), attrs={"training": True, "eps": 1e-3}, domain=_BN_DOMAIN,
               note="training, rank 3, float64"),
        Sample(_BN_TYPES(("batch", 2), 2, F64), bind={"batch": 3}, domain=_BN_DOMAIN, note="eval, rank 2"),
    ],
))


# ---- layer_norm -----------------------------------------------------------------------------

def _ln_rule(ts, attrs):
    x = ts[0]
    require_float(x, "layer_norm's input")
    same_dtype(ts, "layer_norm's input, scale and bias")
    if x.rank == 0:
        raise ShapeError("layer_norm: needs an input of rank >= 1")
    axis = normalize_axis(attrs["axis"], x.rank)
    norm = tuple(x.shape[axis:])
    for name, t in zip(("scale", "bias"), ts[1:]):
        if tuple(t.shape) != norm:
            raise ShapeError(f"layer_norm: {name} has shape {_fmt(t)} but the normalised axes of {_fmt(x)} "
                             f"(from axis {axis}) have shape ({', '.join(map(str, norm))})",
                             hint="LayerNorm(normalized_shape) must equal the input's trailing dims")
    if attrs["eps"] < 0:
        raise ShapeError(f"layer_norm: eps must be >= 0, got {attrs['eps']}")
    return [x]


def _ln_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    xc = x.astype(cd)
    axes = tuple(range(attrs["axis"] % x.ndim, x.ndim))
    mu = xc.mean(axis=axes, keepdims=True)
    d = xc - mu
    var = (d * d).mean(axis=axes, keepdims=True)
    y = d / np.sqrt(var + cd.type(attrs["eps"]))
    if len(xs) > 1:
        y = y * xs[1].astype(cd)
    if len(xs) > 2:
        y = y + xs[2].astype(cd)
    return [y.astype(x.dtype)]


def normalize(x, axes, eps):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (Tensors; biased variance), with the mean and the
    inverse standard deviation (keepdims): the one graph-level spelling of the normalisation that
    layer_norm's decomposition and VJP and the ONNX importer's Layer/Instance/Group norms share."""

    mu = _reduction.mean(x, axes, keepdims=True)
    d = x - mu
    var = _reduction.mean(d * d, axes, keepdims=True)
    inv = _elementwise.rsqrt(var + eps)
    return d * inv, mu, inv


def _ln_core(x, axis, eps):
    axes = list(range(axis, x.ndim))
    xhat, _, inv = normalize(x, axes, eps)
    return xhat, inv, axes


def _ln_decompose(inputs, attrs):
    dtype = inputs[0].dtype
    half = dtype in ("float16", "bfloat16")
    if half:  # half types compute in float32, like the reference (statistics in half lose digits)
        inputs = [_elementwise.cast(t, F32) for t in inputs]
    x = inputs[0]
    y, _, _ = _ln_core(x, attrs["axis"] % x.ndim, attrs["eps"])
    if len(inputs) > 1:
        y = y * inputs[1]
    if len(inputs) > 2:
        y = y + inputs[2]
    return [_elementwise.cast(y, dtype) if half else y]


def _ln_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None] * len(inputs)
    x = inputs[0]
    axis = attrs["axis"] % x.ndim
    xhat, inv, axes = _ln_core(x, axis, attrs["eps"])
    lead = list(range(axis))
    gxhat = g * inputs[1] if len(inputs) > 1 else g
    gx = inv * (gxhat - _reduction.mean(gxhat, axes, keepdims=True) - xhat * _reduction.mean(gxhat * xhat, axes, keepdims=True))
    grads = [gx]
    if len(inputs) > 1:
        grads.append(_reduction.sum(g * xhat, lead) if lead else g * xhat)
    if len(inputs) > 2:
        grads.append(_reduction.sum(g, lead) if lead else g)
    return grads


register_op(OpDef(
    name="layer_norm", family="nn", num_inputs=(1, 3),
    attrs={"axis": Attr("int", -1), "eps": Attr("float", 1e-5)}, type_rule=_ln_rule, reference=_ln_ref,
    flops=elementwise_flops(8), vjp=_ln_vjp, decompose=_ln_decompose,
    doc="Normalise over the axes from ``axis`` to the end; scale/bias have the shape of those axes.",
    samples=[
        Sample([TensorType((3, 5), F32), TensorType((5,), F32), TensorType((5,), F32)]),
        Sample([TensorType(("batch", 4, 6), F32), TensorType((6,), F32), TensorType((6,), F32)],
               bind={"batch": 2}, note="symbolic batch"),
        Sample([TensorType((2, 3, 4), F64), TensorType((3, 4), F64)], attrs={"axis": 1, "eps": 1e-3},
               note="two normalised axes, no bias"),
        Sample([TensorType((2, "seq", 4), F64)], bind={"seq": 3}, note="no affine, symbolic seq"),
    ],
))


# ---- functional API -------------------------------------------------------------------------

def _const_like(value, n, like):
    return _creation.full((n,), value, like.dtype)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation over axis 1 (PyTorch's argument order). Eval returns ``y``; training
    returns ``(y, new_running_mean, new_running_var)`` (batch statistics; momentum as in PyTorch).

    Args:
        x: an (N, C, ...) Tensor.
        running_mean: (C,) running mean.
        running_var: (C,) running variance.
        weight: None or the (C,) scale.
        bias: None or the (C,) shift.
        training: use batch statistics.
        momentum: weight of the batch statistics in the new running ones.
        eps: added to the variance.
    """
    c = x.shape[1] if len(x.shape) >= 2 else 1
    if weight is None:
        weight = _const_like(1.0, c, x)
    if bias is None:
        bias = _const_like(0.0, c, x)
    return apply("batch_norm", x, weight, bias, running_mean, running_var, eps=eps, momentum=momentum,
                 training=training)


def layer_norm(x, normalized_shape_or_axis=-1, weight=None, bias=None, eps: float = 1e-5):
    """Layer normalisation. The second argument is a first normalised ``axis`` (an int, default -1)
    or PyTorch's ``normalized_shape`` (a tuple/list: the trailing dims to normalise over).

    Args:
        x: the input Tensor.
        normalized_shape_or_axis: see above.
        weight: None or the scale.
        bias: None or the shift.
        eps: added to the variance.
    """

    rank = len(x.shape)
    spec = normalized_shape_or_axis
    if isinstance(spec, (list, tuple)):
        shape = tuple(spec)
        if tuple(x.shape[rank - len(shape):]) != shape or len(shape) > rank or not shape:
            raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of "
                             f"{getattr(x, 'type', x.shape)}", hint="normalized_shape must equal x.shape[-k:]")
        axis = -len(shape)
    else:
        axis = int(spec)
        if not -rank <= axis < rank and rank and x.shape[-1] == axis:
            axis = -1  # PyTorch's int normalized_shape (e.g. layer_norm(x, 512))
    if weight is None and bias is not None:
        weight = _creation.ones(tuple(x.shape[axis % rank:]), x.dtype)
    args = [x] + ([weight] if weight is not None else []) + ([bias] if bias is not None else [])
    return apply("layer_norm", *args, axis=axis, eps=eps)
