"""JAX lowerings of the nn ops (``graphforge/ops/nn_ops.py``): conv, pools, norms, dropout,
embedding, attention — written from the contract in docs/ARCHITECTURE.md "nn ops"."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .lower import lowers, softmax_shift, upcast
from .shape_ops import wrap_index

__all__: list[str] = []

_DN = ("NCHW", "OIHW", "NCHW")


def _add_bias(y, args):
    if len(args) > 2:
        y = y + args[2].reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


@lowers("conv2d")
def _conv2d(ctx, args, attrs):
    x, w = args[0], args[1]
    pt, pl, pb, pr = attrs["pads"]
    y = lax.conv_general_dilated(x, w, tuple(attrs["strides"]), [(pt, pb), (pl, pr)],
                                 rhs_dilation=tuple(attrs["dilations"]), dimension_numbers=_DN,
                                 feature_group_count=attrs["groups"], precision=ctx.precision)
    return [_add_bias(y, args).astype(ctx.dtype)]


@lowers("conv_transpose2d")
def _conv_transpose2d(ctx, args, attrs):
    x, w = args[0], args[1]
    g = attrs["groups"]
    cin, cout_g, kh, kw = w.shape
    # (Cin, Cout/g, kh, kw) -> (Cout, Cin/g, kh, kw), spatially flipped: a conv over the dilated input
    wt = w.reshape(g, cin // g, cout_g, kh, kw).transpose(0, 2, 1, 3, 4).reshape(g * cout_g, cin // g, kh, kw)
    wt = wt[:, :, ::-1, ::-1]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    pt, pl, pb, pr = attrs["pads"]
    oh, ow = attrs.get("output_padding", [0, 0])
    ph, pw = dh * (kh - 1), dw * (kw - 1)
    y = lax.conv_general_dilated(x, wt, (1, 1), [(ph - pt, ph - pb + oh), (pw - pl, pw - pr + ow)],
                                 lhs_dilation=(sh, sw), rhs_dilation=(dh, dw), dimension_numbers=_DN,
                                 feature_group_count=g, precision=ctx.precision)
    return [_add_bias(y, args).astype(ctx.dtype)]


def _pool_padding(x, out_shape, attrs):
    """Explicit (lo, hi) padding per axis, with the ceil_mode rows added at the bottom/right."""
    k, s = attrs["kernel"], attrs["strides"]
    pt, pl, pb, pr = attrs["pads"]
    pads = []
    for i, (lo, hi) in enumerate(((pt, pb), (pl, pr))):
        need = (out_shape[2 + i] - 1) * s[i] + k[i]
        extra = max(0, need - (x.shape[2 + i] + lo + hi))
        pads.append((lo, hi, extra))
    return pads


def _max_pool_fn(x, attrs, out_shape):
    pads = _pool_padding(x, out_shape, attrs)
    init = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    # a NumPy scalar identity lets jax pick its differentiable reduce_window_max primitive
    return lax.reduce_window(x, np.array(init, x.dtype), lax.max, (1, 1) + tuple(attrs["kernel"]),
                             (1, 1) + tuple(attrs["strides"]),
                             [(0, 0), (0, 0)] + [(lo, hi + e) for lo, hi, e in pads])


@lowers("max_pool2d")
def _max_pool(ctx, args, attrs):
    return [_max_pool_fn(args[0], attrs, ctx.shape)]


@lowers("max_pool2d_grad")
def _max_pool_grad(ctx, args, attrs):
    x, g = args
    # JAX's own VJP of reduce_window_max is XLA's select-and-scatter (first maximum wins a tie,
    # the contract's rule); ~3x faster on XLA:CPU than gather/scatter over window indices
    _, vjp = jax.vjp(lambda t: _max_pool_fn(t, attrs, g.shape), x)
    return [vjp(g.astype(x.dtype))[0]]


@lowers("avg_pool2d")
def _avg_pool(ctx, args, attrs):
    x = args[0]
    pads = _pool_padding(x, ctx.shape, attrs)
    window, strides = (1, 1) + tuple(attrs["kernel"]), (1, 1) + tuple(attrs["strides"])
    xc = upcast(x)
    padding = [(0, 0), (0, 0)] + [(lo, hi + e) for lo, hi, e in pads]
    total = lax.reduce_window(xc, np.array(0, xc.dtype), lax.add, window, strides, padding)
    # divisor: the window clipped to [-pt, H+pb) (count_include_pad) or [0, H); static, folded by XLA
    h, w = x.shape[2], x.shape[3]
    if attrs.get("count_include_pad", True):
        ones = np.ones((1, 1, h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1]), np.float64)
        ones = np.pad(ones, [(0, 0), (0, 0), (0, pads[0][2]), (0, pads[1][2])])
    else:
        ones = np.pad(np.ones((1, 1, h, w)), [(0, 0), (0, 0)] + [(lo, hi + e) for lo, hi, e in pads])
    div = _np_window_sum(ones, attrs["kernel"], attrs["strides"])
    return [(total / jnp.asarray(div, xc.dtype)).astype(x.dtype)]


def _np_window_sum(a, k, s):
    oh = (a.shape[2] - k[0]) // s[0] + 1
    ow = (a.shape[3] - k[1]) // s[1] + 1
    out = np.zeros((1, 1, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[0, 0, i, j] = a[0, 0, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].sum()
    return out


@lowers("global_avg_pool2d")
def _global_avg_pool(ctx, args, attrs):
    x = args[0]
    return [jnp.mean(upcast(x), axis=(2, 3), keepdims=True).astype(x.dtype)]


@lowers("batch_norm")
def _batch_norm(ctx, args, attrs):
    x, scale, bias, rm, rv = args
    xc = upcast(x)
    cd = xc.dtype
    shp = (1, -1) + (1,) * (x.ndim - 2)
    eps = jnp.asarray(attrs["eps"], cd)
    s, b = scale.astype(cd).reshape(shp), bias.astype(cd).reshape(shp)
    if not attrs["training"]:
        y = (xc - rm.astype(cd).reshape(shp)) / jnp.sqrt(rv.astype(cd).reshape(shp) + eps)
        return [(y * s + b).astype(x.dtype)]
    axes = (0,) + tuple(range(2, x.ndim))
    n = x.size // max(x.shape[1], 1)
    mu = jnp.mean(xc, axis=axes)
    d = xc - mu.reshape(shp)
    var = jnp.mean(d * d, axis=axes)
    y = d / jnp.sqrt(var.reshape(shp) + eps) * s + b
    m = jnp.asarray(attrs["momentum"], cd)
    unbiased = var * jnp.asarray(n / (n - 1), cd) if n > 1 else var
    new_rm = (1 - m) * rm.astype(cd) + m * mu
    new_rv = (1 - m) * rv.astype(cd) + m * unbiased
    return [y.astype(x.dtype), new_rm.astype(rm.dtype), new_rv.astype(rv.dtype)]


def dropout_keep(shape, key, p: float):
    """The contract's counter-based mask (uint32 arithmetic wraps mod 2**32)."""
    from .random import counter_hash

    return (counter_hash(shape, key) >> jnp.uint32(8)) >= jnp.uint32(round(p * 2 ** 24))


@lowers("dropout")
def _dropout(ctx, args, attrs):
    x, key = args
    p = attrs["p"]
    keep = dropout_keep(x.shape, key, p)
    scaled = x / jnp.asarray(1 - p, x.dtype) if p < 1 else jnp.zeros_like(x)
    return [jnp.where(keep, scaled, jnp.zeros_like(x))]


@lowers("embedding")
def _embedding(ctx, args, attrs):
    table, idx = args
    return [jnp.take(table, wrap_index(idx, table.shape[0]), axis=0, mode="clip")]


@lowers("attention")
def _attention(ctx, args, attrs):
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else None
    d = q.shape[-1]
    scale = attrs.get("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    sq, sk = q.shape[2], k.shape[2]
    causal = bool(attrs.get("causal"))
    full = None
    if mask is not None:
        full = jnp.broadcast_to(mask, q.shape[:2] + (sq, sk))
    if causal:
        tri = jnp.tril(jnp.ones((sq, sk), bool))
        full = tri if full is None else jnp.logical_and(full, tri)
    qc, kc, vc = upcast(q), upcast(k), upcast(v)
    s = jnp.einsum("bhqd,bhkd->bhqk", qc, kc, precision=ctx.precision) * jnp.asarray(scale, qc.dtype)
    if full is not None:
        s = jnp.where(full, s, -jnp.inf)
    # softmax_shift, not jax.nn.dot_product_attention: XLA contracts its `scores * scale` into the
    # max subtraction, which turns rows of large scores into NaN. A fully masked row gives NaN (as
    # PyTorch and the reference).
    e = jnp.exp(softmax_shift(s, -1))
    pw = e / jnp.sum(e, axis=-1, keepdims=True)
    out = jnp.einsum("bhqk,bhkd->bhqd", pw, vc, precision=ctx.precision)
    return [out.astype(ctx.dtype)]
