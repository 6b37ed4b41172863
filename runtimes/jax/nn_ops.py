"""JAX lowerings of the nn ops (``graphforge/ops/nn_ops.py``): conv, pools, norms, dropout,
embedding, attention — written from the contract in docs/ARCHITECTURE.md "nn ops"."""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .conv_impl import conv_general
from .lower import lowers, softmax_shift, upcast
from .shape_ops import wrap_index

__all__: list[str] = []

def _add_bias(y, args):
    if len(args) > 2:
        y = y + args[2].reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def _pairs(pads):
    """ONNX-order pads (begins, then ends) -> [(lo, hi)] per spatial axis."""
    n = len(pads) // 2
    return [(pads[i], pads[n + i]) for i in range(n)]


@lowers("conv2d")
def _conv2d(ctx, args, attrs):
    # dimension_numbers=None: (N, C, *spatial) x (O, I, *kernel), any spatial rank
    x, w = args[0], args[1]
    # XLA's convolution or a banded matmul (a stem and its weight gradient), by shape (conv_impl.py)
    y = conv_general(x, w, attrs["strides"], _pairs(attrs["pads"]), attrs["dilations"], attrs["groups"], ctx.precision)
    return [_add_bias(y, args).astype(ctx.dtype)]


@lowers("conv_transpose2d")
def _conv_transpose2d(ctx, args, attrs):
    x, w = args[0], args[1]
    g = attrs["groups"]
    cin, cout_g = w.shape[:2]
    kernel = tuple(w.shape[2:])
    nsp = len(kernel)
    # (Cin, Cout/g, *k) -> (Cout, Cin/g, *k), spatially flipped: a conv over the dilated input
    wt = w.reshape((g, cin // g, cout_g) + kernel)
    wt = wt.transpose((0, 2, 1) + tuple(range(3, 3 + nsp))).reshape((g * cout_g, cin // g) + kernel)
    wt = wt[(slice(None), slice(None)) + (slice(None, None, -1),) * nsp]
    dil, out_pad = attrs["dilations"], attrs.get("output_padding") or [0] * nsp
    padding = []
    for i, (lo, hi) in enumerate(_pairs(attrs["pads"])):
        full = dil[i] * (kernel[i] - 1)
        padding.append((full - lo, full - hi + out_pad[i]))
    if all(s == 1 for s in attrs["strides"]):   # no input dilation: a plain conv (im2col by shape)
        y = conv_general(x, wt, (1,) * nsp, padding, dil, g, ctx.precision)
    else:
        y = lax.conv_general_dilated(x, wt, (1,) * nsp, padding, lhs_dilation=tuple(attrs["strides"]),
                                     rhs_dilation=tuple(dil), feature_group_count=g, precision=ctx.precision)
    return [_add_bias(y, args).astype(ctx.dtype)]


def _dilations(attrs):
    return tuple(attrs.get("dilations") or (1,) * len(attrs["kernel"]))


def _pool_padding(x, out_shape, attrs):
    """Explicit (lo, hi) padding per spatial axis, with the ceil_mode rows added at the end."""
    k, s, d = attrs["kernel"], attrs["strides"], _dilations(attrs)
    pads = []
    for i, (lo, hi) in enumerate(_pairs(attrs["pads"])):
        need = (out_shape[2 + i] - 1) * s[i] + d[i] * (k[i] - 1) + 1
        extra = max(0, need - (x.shape[2 + i] + lo + hi))
        pads.append((lo, hi + extra))
    return pads


def _max_pool_fn(x, attrs, out_shape):
    pads = _pool_padding(x, out_shape, attrs)
    init = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    # a NumPy scalar identity lets jax pick its differentiable reduce_window_max primitive
    return lax.reduce_window(x, np.array(init, x.dtype), lax.max, (1, 1) + tuple(attrs["kernel"]),
                             (1, 1) + tuple(attrs["strides"]), [(0, 0), (0, 0)] + pads,
                             window_dilation=(1, 1) + _dilations(attrs))


def _dilated_windows(x, attrs, out_shape):
    """(N, C, *out, K) windows gathered by constant flat indices (padding -inf), the padded sizes,
    the pads and the indices: the form dilated max pools use, because JAX's reduce_window_max has no
    VJP with window dilation."""
    pads = _pool_padding(x, out_shape, attrs)
    n, c = x.shape[:2]
    idx, padded = _window_index(x.shape[2:], pads, attrs, out_shape[2:])
    xp = jnp.pad(x, [(0, 0), (0, 0)] + pads, constant_values=-jnp.inf).reshape(n, c, -1)
    return xp[:, :, idx], padded, pads, idx


@lowers("max_pool2d")
def _max_pool(ctx, args, attrs):
    x = args[0]
    if all(d == 1 for d in _dilations(attrs)) or not jnp.issubdtype(x.dtype, jnp.floating):
        return [_max_pool_fn(x, attrs, ctx.shape)]
    return [jnp.max(_dilated_windows(x, attrs, ctx.shape)[0], axis=-1)]


def _window_index(sizes, pads, attrs, out):
    """(*out, K) flat indices into the padded image of every window element (NumPy, static)."""
    padded = [sizes[i] + lo + hi for i, (lo, hi) in enumerate(pads)]
    grids = []
    for i in range(len(sizes)):
        pos = np.arange(out[i])[:, None] * attrs["strides"][i] + np.arange(attrs["kernel"][i])[None, :] * _dilations(attrs)[i]
        grids.append(pos)
    idx = np.zeros(tuple(out) + tuple(attrs["kernel"]), np.int64)
    n = len(sizes)
    for i, pos in enumerate(grids):
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = pos.shape
        idx = idx * padded[i] + pos.reshape(shape)
    return idx.reshape(tuple(out) + (-1,)), padded


_TILED_MAX_WINDOW = 16   # unrolled window positions at most: beyond it select-and-scatter is used


def _tiled_pool_grad(x, g, attrs):
    """max_pool2d_grad for non-overlapping windows (kernel == strides, no pads, no dilation, no
    partial window), or None where that does not hold: view x as (N, C, O1, k1, O2, k2, ...), mark
    each window's first maximum in row-major window order (a NaN counts as the maximum, as
    reduce-window max propagates it) and place g there. All elementwise, one XLA loop fusion with
    no scatter: on XLA:CPU ~3x faster than select-and-scatter on LeNet's pools (docs/benchmarks.md)."""
    k, s, out = tuple(attrs["kernel"]), tuple(attrs["strides"]), tuple(g.shape[2:])
    nsp = len(k)
    if (k != s or any(attrs["pads"]) or any(d != 1 for d in _dilations(attrs))
            or not jnp.issubdtype(x.dtype, jnp.floating) or math.prod(k) > _TILED_MAX_WINDOW
            or any(out[i] * k[i] > x.shape[2 + i] or out[i] == 0 for i in range(nsp))):
        return None
    n, c = x.shape[:2]
    xc = x[(slice(None), slice(None)) + tuple(slice(0, out[i] * k[i]) for i in range(nsp))]
    tiled = (n, c) + tuple(d for i in range(nsp) for d in (out[i], k[i]))
    xr = xc.reshape(tiled)
    kaxes = tuple(3 + 2 * i for i in range(nsp))
    y = jnp.max(xr, axis=kaxes, keepdims=True)
    gb = g.astype(x.dtype).reshape((n, c) + tuple(d for i in range(nsp) for d in (out[i], 1)))
    taken = jnp.zeros(y.shape, bool)
    pieces = {}
    for pos in itertools.product(*(range(ki) for ki in k)):
        xi = xr[(slice(None), slice(None)) + tuple(e for i in range(nsp) for e in (slice(None), slice(pos[i], pos[i] + 1)))]
        hit = ((xi == y) | (jnp.isnan(xi) & jnp.isnan(y))) & ~taken
        taken = taken | hit
        pieces[pos] = jnp.where(hit, gb, jnp.zeros((), x.dtype))

    def assemble(prefix):   # nested concatenation back into the tiled view (no transpose)
        if len(prefix) == nsp:
            return pieces[prefix]
        return jnp.concatenate([assemble(prefix + (i,)) for i in range(k[len(prefix)])], axis=3 + 2 * len(prefix))

    full = assemble(()).reshape(xc.shape)
    if full.shape != x.shape:   # floor mode dropped trailing rows: they get no cotangent
        full = jnp.pad(full, [(0, 0), (0, 0)] + [(0, x.shape[2 + i] - out[i] * k[i]) for i in range(nsp)])
    return full


@lowers("max_pool2d_grad")
def _max_pool_grad(ctx, args, attrs):
    x, g = args
    tiled = _tiled_pool_grad(x, g, attrs)
    if tiled is not None:
        return [tiled]
    if all(d == 1 for d in _dilations(attrs)):
        # JAX's own VJP of reduce_window_max is XLA's select-and-scatter (first maximum wins a tie,
        # the contract's rule); ~3x faster on XLA:CPU than gather/scatter over window indices
        _, vjp = jax.vjp(lambda t: _max_pool_fn(t, attrs, g.shape), x)
        return [vjp(g.astype(x.dtype))[0]]
    # JAX has no select-and-scatter VJP for dilated windows: gather the windows by constant flat
    # indices, take each window's first maximum and scatter-add the cotangent back
    win, padded, pads, idx = _dilated_windows(x, attrs, g.shape)      # (N, C, *out, K)
    n, c = x.shape[:2]
    arg = jnp.argmax(win, axis=-1)
    pos = jnp.take_along_axis(jnp.broadcast_to(jnp.asarray(idx), win.shape), arg[..., None], -1)[..., 0]
    flat = jnp.zeros((n * c, int(np.prod(padded))), x.dtype)
    rows = jnp.arange(n * c)[:, None]
    flat = flat.at[rows, pos.reshape(n * c, -1)].add(g.astype(x.dtype).reshape(n * c, -1))
    full = flat.reshape((n, c) + tuple(padded))
    crop = tuple(slice(lo, lo + x.shape[2 + i]) for i, (lo, _) in enumerate(pads))
    return [full[(slice(None), slice(None)) + crop]]


@lowers("avg_pool2d")
def _avg_pool(ctx, args, attrs):
    from graphforge.ops.nn_pool import pool_window_counts

    x = args[0]
    pads = _pool_padding(x, ctx.shape, attrs)
    window, strides = (1, 1) + tuple(attrs["kernel"]), (1, 1) + tuple(attrs["strides"])
    xc = upcast(x)
    total = lax.reduce_window(xc, np.array(0, xc.dtype), lax.add, window, strides, [(0, 0), (0, 0)] + pads,
                              window_dilation=(1, 1) + _dilations(attrs))
    # divisor: the contract's window counts, static, folded by XLA
    div = pool_window_counts(tuple(x.shape[2:]), attrs)
    return [(total / jnp.asarray(div, xc.dtype)).astype(x.dtype)]


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
