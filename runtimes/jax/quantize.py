"""JAX lowerings of the quantized ops (``graphforge/ops/quantize.py``).

Integer products accumulate in int32 (``preferred_element_type``), requantisation multiplies in
float32 and rounds half to even (``jnp.round``), like the NumPy references and onnxruntime.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from graphforge.ops.quantize import FLOAT_QUANT_DTYPES, qrange
from graphforge import dtypes as _dt

from .lower import lowers

__all__: list[str] = []

_DN = ("NCHW", "OIHW", "NCHW")


def _expand(p, x_shape, axis: int, block: int):
    """A scale/zero point broadcastable against ``x_shape`` (per tensor, per axis or blocked)."""
    rank = len(x_shape)
    if block == 0:
        if p.ndim == 0 or p.size == 1:
            return p.reshape(())
        ax = axis % rank
        return p.reshape([-1 if i == ax else 1 for i in range(rank)])
    ax = axis % rank
    return lax.slice_in_dim(jnp.repeat(p, block, axis=ax), 0, x_shape[ax], axis=ax)


def _saturate(q, dtype):
    lo, hi = qrange(_dt.from_numpy_dtype(dtype))
    return jnp.clip(q, lo, hi).astype(dtype)


@lowers("quantize_linear")
def _quantize(ctx, args, attrs):
    x, scale = args[0].astype(jnp.float32), args[1].astype(jnp.float32)
    ax, block = attrs["axis"], attrs["block_size"]
    out = _dt.from_numpy_dtype(ctx.dtype)
    if out in FLOAT_QUANT_DTYPES:  # a saturating float8/float4 cast of x / scale + zero point
        y = x / _expand(scale, x.shape, ax, block)
        if len(args) == 3:
            y = y + _expand(args[2], x.shape, ax, block).astype(jnp.float32)
        return ctx.lower_as("cast", [y], {"dtype": out, "saturate": attrs.get("saturate", True)})
    q = jnp.round(x / _expand(scale, x.shape, ax, block))
    if len(args) == 3:
        q = q + _expand(args[2], x.shape, ax, block).astype(jnp.float32)
    return [_saturate(q, ctx.dtype)]


@lowers("dequantize_linear")
def _dequantize(ctx, args, attrs):
    x = args[0].astype(jnp.float32 if _dt.from_numpy_dtype(args[0].dtype) in FLOAT_QUANT_DTYPES else jnp.int32)
    ax, block = attrs["axis"], attrs["block_size"]
    if len(args) == 3:
        x = x - _expand(args[2], x.shape, ax, block).astype(x.dtype)
    y = x.astype(jnp.float32) * _expand(args[1].astype(jnp.float32), x.shape, ax, block)
    return [y.astype(ctx.dtype)]


@lowers("dynamic_quantize_linear")
def _dynamic_quantize(ctx, args, attrs):
    x = args[0].astype(jnp.float32)
    lo = jnp.minimum(jnp.min(x, initial=0.0), 0.0)
    hi = jnp.maximum(jnp.max(x, initial=0.0), 0.0)
    scale = (hi - lo) / jnp.float32(255)
    zero = scale == 0
    scale = jnp.where(zero, jnp.float32(1), scale)  # a zero range gets scale 1 (onnxruntime's answer)
    zp = jnp.where(zero, 0.0, jnp.clip(jnp.round(-lo / scale), 0, 255))
    y = _saturate(jnp.round(x / scale) + zp, jnp.uint8)
    return [y, scale, zp.astype(jnp.uint8)]


def _centred(x, zp):
    x = x.astype(jnp.int32)
    return x if zp is None else x - zp.astype(jnp.int32).reshape(())


def _imatmul(a, b):
    return jnp.matmul(a, b, preferred_element_type=jnp.int32)


@lowers("matmul_integer")
def _matmul_integer(ctx, args, attrs):
    a = _centred(args[0], args[2] if len(args) > 2 else None)
    b = _centred(args[1], args[3] if len(args) > 3 else None)
    return [_imatmul(a, b)]


def _w_centred(w, zp):
    w = w.astype(jnp.int32)
    if zp is None:
        return w
    zp = zp.astype(jnp.int32)
    return w - (zp.reshape(()) if zp.size == 1 else zp.reshape(-1, 1, 1, 1))


def _iconv(x, w, attrs):
    pt, pl, pb, pr = attrs["pads"]
    return lax.conv_general_dilated(x, w, tuple(attrs["strides"]), [(pt, pb), (pl, pr)],
                                    rhs_dilation=tuple(attrs["dilations"]), dimension_numbers=_DN,
                                    feature_group_count=attrs["groups"], preferred_element_type=jnp.int32)


@lowers("conv_integer")
def _conv_integer(ctx, args, attrs):
    x = _centred(args[0], args[2] if len(args) > 2 else None)
    w = _w_centred(args[1], args[3] if len(args) > 3 else None)
    return [_iconv(x, w, attrs)]


def _ratio(a_s, b_s, y_s):
    f = jnp.float32
    return (a_s.astype(f).reshape(()) * b_s.astype(f)) / y_s.astype(f).reshape(())


def _requantize(acc, multiplier, y_zp, dtype):
    y = jnp.round(acc.astype(jnp.float32) * multiplier) + y_zp.astype(jnp.float32).reshape(())
    return _saturate(y, dtype)


@lowers("qlinear_matmul")
def _qlinear_matmul(ctx, args, attrs):
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = args
    acc = _imatmul(_centred(a, a_zp), _centred(b, b_zp))
    return [_requantize(acc, _ratio(a_s, b_s, y_s).reshape(()), y_zp, ctx.dtype)]


@lowers("qlinear_conv")
def _qlinear_conv(ctx, args, attrs):
    x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp = args[:8]
    acc = _iconv(_centred(x, x_zp), _w_centred(w, w_zp), attrs)
    if len(args) == 9:
        acc = acc + args[8].astype(jnp.int32).reshape(1, -1, 1, 1)
    ratio = _ratio(x_s, w_s, y_s)
    ratio = ratio.reshape(()) if ratio.size == 1 else ratio.reshape(1, -1, 1, 1)
    return [_requantize(acc, ratio, y_zp, ctx.dtype)]
