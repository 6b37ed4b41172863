"""How a ``conv2d`` (any spatial rank, NCHW / OIHW) becomes XLA on the JAX back end, chosen by
static shape: XLA's own convolution, or a *banded matmul* for a network's stem (a convolution
over 1-3 input channels) and for that stem's weight gradient.

Why: XLA:CPU's convolution reaches 10-25 GFLOP/s when the contraction is a handful of input
channels times the kernel (LeNet's conv1: 25 terms, 3.4 ms for 15 M multiply-adds on the 2-core
AVX-512 VM) and a weight-gradient convolution whose batch is 1-3 channels parallelises poorly,
while one large ``dot_general`` runs at 100-150. The banded form writes each output row as one
matmul row: the input rows the kernel covers, stacked (kernel rows x channels x input width),
times a banded matrix built once from the weights (entry (u, c, j; o, q) is ``w[o, c, u, v]``
where input column j is output column q's tap v, else 0). It does (input width / kernel width)
times the multiply-adds, bounded by ``MAX_BAND_WASTE``, and still measured 2.4x faster on LeNet's
conv1 and 1.5x on its weight gradient; inside the train step LeNet went 13.5 -> 9.8 ms and
ResNet-8 30.3 -> 27.6 ms (docs/benchmarks.md, "banded"). Measured slower, so not chosen: wider
stems (7x7 over RGB, 1.5x), 3x3 stems on 28-32 wide maps (waste 9-11, 1.6x), every convolution
with more channels, weight gradients of those.

The other lowerings here (``"im2col"``: strided slices into a patch matrix, one matmul;
``"nhwc"``: channels-last at the op's edges; ``"shift"``: a sum of shifted, scaled slices) are
kept as measured candidates, reachable only through ``method=`` (tests and
``benchmarks/bench_conv_candidates.py``); their numbers are in docs/benchmarks.md.

``conv_general(x, w, strides, padding, dilation, groups, precision, method=None)`` is what the
``conv2d`` and (stride-1) ``conv_transpose2d`` lowerings call; ``choose(...)`` names the method a
shape gets.
"""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["conv_general", "choose", "METHODS", "STEM_CHANNELS", "STEM_CONTRACTION", "MAX_BAND_WASTE",
           "MAX_BAND_ELEMENTS"]

METHODS = ("xla", "banded", "im2col", "nhwc", "shift")
# a stem: at most this many input channels (grey, two-channel, RGB) ...
STEM_CHANNELS = 3
# ... and at most this many terms per output (channels x kernel): 3x5x5 measured 0.58x of XLA,
# 3x7x7 (147 terms, where XLA's convolution reaches 70 GFLOP/s) 1.5x
STEM_CONTRACTION = 75
# the banded matmul's multiply-adds over the convolution's (input width / kernel width for a
# forward conv, padded input width / output width for a weight gradient): 5.3-6.4 measured faster,
# 9-11 slower
MAX_BAND_WASTE = 6.5
# the banded matrix (forward) or the per-row products (weight gradient), in elements, at most: the
# bounds above keep stems far below it (LeNet's conv1: 23.5 k); a guard against an odd shape's memory
MAX_BAND_ELEMENTS = 1 << 24


def _out_sizes(sizes, kernel, strides, padding, dilation):
    return [(sizes[i] + lo + hi - dilation[i] * (kernel[i] - 1) - 1) // strides[i] + 1
            for i, (lo, hi) in enumerate(padding)]


def choose(x_shape, w_shape, strides, padding, dilation, groups, platform: str | None = None) -> str:
    """The method a convolution gets by shape: ``"banded"`` for a 1-2 spatial-axis stem (at most
    ``STEM_CHANNELS`` input channels and ``STEM_CONTRACTION`` terms per output) and for a stem's
    weight gradient (graphforge's conv VJP writes it as a convolution whose batch is the stem's
    input channels and whose output is the kernel), when the band wastes at most
    ``MAX_BAND_WASTE``; ``"xla"`` otherwise (including grouped convolutions, negative pads,
    symbolic sizes and every ``platform`` but ``"cpu"``, default jax's backend: the bounds were
    measured on XLA:CPU, where GPU convolutions are cuDNN's). The measurements behind each bound
    are in the module docstring."""
    nsp = len(x_shape) - 2
    if (platform or jax.default_backend()) != "cpu":
        return "xla"
    if (groups != 1 or nsp not in (1, 2) or any(lo < 0 or hi < 0 for lo, hi in padding)
            or not all(isinstance(d, int) for d in tuple(x_shape) + tuple(w_shape))):
        return "xla"
    kernel = tuple(w_shape[2:])
    out = _out_sizes(x_shape[2:], kernel, strides, padding, dilation)
    if math.prod(kernel) <= 1 or min(out) < 1:
        return "xla"
    if math.prod(kernel) <= math.prod(out):
        # a forward convolution: each output column reads kernel[-1] of the input's columns
        stem = x_shape[1] <= STEM_CHANNELS and x_shape[1] * math.prod(kernel) <= STEM_CONTRACTION
        waste = x_shape[-1] / kernel[-1]
        size = math.prod(kernel[:-1]) * x_shape[1] * x_shape[-1] * w_shape[0] * out[-1]
    else:
        # a weight gradient: batch = the stem's channels, output = its kernel, contraction = the
        # forward batch; the band runs over the padded input width per output column
        stem = x_shape[0] <= STEM_CHANNELS and x_shape[0] * math.prod(out) <= STEM_CONTRACTION
        waste = (x_shape[-1] + sum(padding[-1])) / out[-1]
        size = x_shape[0] * math.prod(out[:-1]) * (x_shape[-1] + sum(padding[-1])) * w_shape[0] * kernel[-1]
    return "banded" if stem and waste <= MAX_BAND_WASTE and size <= MAX_BAND_ELEMENTS else "xla"


def _band_matrix(w, taps, cols, out, first_col, stride, dilation):
    """The banded weight matrix of a forward conv along the last axis: (KH, C, cols, O, out) with
    entry (u, c, j, o, q) = ``w[o, c, u, v]`` where input column ``j`` is output column ``q``'s tap
    ``v`` (``j + first_col == q * stride + v * dilation``), else 0 — the weights contracted with a
    constant 0/1 selector, so the weight gradient flows back through the same einsum."""
    sel = np.zeros((taps, cols, out), dtype=np.float32)
    for v in range(taps):
        for q in range(out):
            j = q * stride + v * dilation - first_col
            if 0 <= j < cols:
                sel[v, j, q] = 1
    return jnp.einsum("ocuv,vjq->ucjoq", w, jnp.asarray(sel, dtype=w.dtype))


def _banded(x, w, strides, padding, dilation, precision):
    """A 2-D convolution (1-D ones get a unit height) as one matmul per output row against a
    banded weight matrix, or, for a weight-gradient convolution (more kernel than output
    positions), one matmul per output row into (input column, kernel column) pairs whose
    diagonals are the output columns. Layout: the matmul writes (N, OH, O, OW); one transpose
    gives NCHW."""
    if x.ndim == 3:
        y = _banded(x[:, :, None], w[:, :, None], (1,) + tuple(strides), [(0, 0)] + list(padding),
                    (1,) + tuple(dilation), precision)
        return y[:, :, 0]
    n, c, _, width = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    oh, ow = _out_sizes(x.shape[2:], (kh, kw), strides, padding, dilation)
    (pt, pb), (pl, pr) = padding
    if kh * kw <= oh * ow:
        # rows: the kh input rows under output row p, over the *unpadded* width (the band's
        # offset accounts for the left pad, so zero columns cost no multiply-adds)
        xr = jnp.pad(x, [(0, 0), (0, 0), (pt, pb), (0, 0)]) if pt or pb else x
        rows = jnp.stack([xr[:, :, u * dh: u * dh + sh * (oh - 1) + 1: sh, :] for u in range(kh)], axis=1)
        rows = jnp.transpose(rows, (0, 3, 1, 2, 4)).reshape(n * oh, kh * c * width)   # (N*OH, KH*C*W)
        band = _band_matrix(w, kw, width, ow, pl, sw, dw).reshape(kh * c * width, o * ow)
        y = lax.dot_general(rows, band, (((1,), (0,)), ((), ())), precision=precision)
        return jnp.transpose(y.reshape(n, oh, o, ow), (0, 2, 1, 3))
    # weight-gradient shape: g[n, p, j, o, v] = sum_{c, u} xpad[n, c, p*sh + u*dh, j] w[o, c, u, v]
    # (one matmul over channels x kernel rows), then y[n, o, p, q] = sum_v g[n, p, q*sw + v*dw, o, v]
    xp = jnp.pad(x, [(0, 0), (0, 0), (pt, pb), (pl, pr)])
    rows = jnp.stack([xp[:, :, p * sh: p * sh + dh * (kh - 1) + 1: dh, :] for p in range(oh)], axis=1)
    g = lax.dot_general(rows, w, (((2, 3), (1, 2)), ((), ())), precision=precision)   # (N, OH, Wp, O, KW)
    cols = [jnp.trace(g[:, :, q * sw: q * sw + dw * (kw - 1) + 1: dw], axis1=2, axis2=4) for q in range(ow)]
    return jnp.transpose(jnp.stack(cols, axis=-1), (0, 2, 1, 3))


def _im2col(x, w, strides, padding, dilation, precision):
    """y[n, o, *p] = sum_{c, *k} xpad[n, c, p*s + k*d] * w[o, c, *k] as one matmul over patches
    built from strided slices: one slice per kernel position when there are fewer kernel positions
    than output positions (a forward conv), else one per output position (a weight-gradient conv,
    whose kernel is a feature map)."""
    nsp = x.ndim - 2
    kernel = tuple(w.shape[2:])
    n, c = x.shape[:2]
    o = w.shape[0]
    out = _out_sizes(x.shape[2:], kernel, strides, padding, dilation)
    xp = jnp.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in padding]) if any(lo or hi for lo, hi in padding) else x
    K, P = math.prod(kernel), math.prod(out)
    lead = (slice(None), slice(None))
    if K <= P:
        # channels-last patches (N, *out, K*C): one strided slice of the NHWC input per kernel
        # position, concatenated on the last axis, so the matmul reads rows with no transpose
        xl = jnp.moveaxis(xp, 1, -1)                                   # (N, *S, C)
        cols = []
        for pos in itertools.product(*(range(kk) for kk in kernel)):
            sl = tuple(slice(pos[i] * dilation[i], pos[i] * dilation[i] + strides[i] * (out[i] - 1) + 1, strides[i])
                       for i in range(nsp))
            cols.append(xl[(slice(None),) + sl])
        patches = jnp.concatenate(cols, axis=-1)                       # (N, *out, K*C), k major
        wm = jnp.moveaxis(w, 1, -1).reshape(o, K * c)                  # (O, K*C), same order
        y = lax.dot_general(patches, wm, (((nsp + 1,), (1,)), ((), ())), precision=precision)   # (N, *out, O)
        return jnp.moveaxis(y, -1, 1)
    # patches (N, P, C, *kernel): one slice per output position (dilated by the conv's dilation),
    # stacked on axis 1 so that (C, *kernel) is one contiguous contraction run
    cols = []
    for pos in itertools.product(*(range(pp) for pp in out)):
        sl = tuple(slice(pos[i] * strides[i], pos[i] * strides[i] + dilation[i] * (kernel[i] - 1) + 1, dilation[i])
                   for i in range(nsp))
        cols.append(xp[lead + sl])
    patches = jnp.stack(cols, axis=1).reshape(n, P, c * K)            # (N, P, C*K)
    wm = w.reshape(o, c * K)
    y = lax.dot_general(patches, wm, (((2,), (1,)), ((), ())), precision=precision)   # (N, P, O)
    return jnp.moveaxis(y, -1, 1).reshape((n, o) + tuple(out))


def _shift_sum(x, w, strides, padding, dilation):
    """y = sum over (c, kernel position) of w[:, c, k] * shifted x[:, c]: one elementwise loop fusion
    writing NCHW directly, no patch buffer and no layout copy (for a very short contraction)."""
    nsp = x.ndim - 2
    kernel = tuple(w.shape[2:])
    out = _out_sizes(x.shape[2:], kernel, strides, padding, dilation)
    xp = jnp.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in padding]) if any(lo or hi for lo, hi in padding) else x
    acc = None
    for c in range(x.shape[1]):
        for pos in itertools.product(*(range(kk) for kk in kernel)):
            sl = tuple(slice(pos[i] * dilation[i], pos[i] * dilation[i] + strides[i] * (out[i] - 1) + 1, strides[i])
                       for i in range(nsp))
            term = xp[(slice(None), slice(c, c + 1)) + sl] * w[(slice(None), c) + pos].reshape((1, -1) + (1,) * nsp)
            acc = term if acc is None else acc + term
    # Alone (conv1 of LeNet + bias + ReLU) this is ~7x faster than XLA's convolution, but inside a
    # train step XLA fuses the whole sum into each consumer (ReLU mask, pool, pool gradient) and
    # recomputes it; XLA:CPU drops optimization barriers, so it cannot be pinned: not chosen by shape
    return acc


def conv_general(x, w, strides, padding, dilation, groups, precision, method=None):
    """A ``conv2d`` (N, C, *S) x (O, C/G, *K) with explicit ``padding`` [(lo, hi)] per spatial
    axis; ``method`` None picks by shape (:func:`choose`)."""
    strides, dilation = tuple(strides), tuple(dilation)
    padding = [tuple(p) for p in padding]
    method = method or choose(tuple(x.shape), tuple(w.shape), strides, padding, dilation, groups)
    # the slice-based methods need one group and no negative (cropping) pads; otherwise XLA's
    dense = groups == 1 and all(lo >= 0 and hi >= 0 for lo, hi in padding)
    if method == "banded" and dense and x.ndim in (3, 4):
        return _banded(x, w, strides, padding, dilation, precision)
    if method == "im2col" and dense:
        return _im2col(x, w, strides, padding, dilation, precision)
    if method == "shift" and dense:
        return _shift_sum(x, w, strides, padding, dilation)
    if method == "nhwc":
        # channels-last at the op's edges (XLA folds adjacent transposes): measured, not chosen by
        # shape — XLA:CPU's layout assignment already runs its convolutions channels-last
        nsp = x.ndim - 2
        sp = tuple(range(2, 2 + nsp))
        spec = "".join("DHW"[3 - nsp:])
        y = lax.conv_general_dilated(jnp.transpose(x, (0,) + sp + (1,)), jnp.transpose(w, sp + (1, 0)), strides,
                                     padding, rhs_dilation=dilation, feature_group_count=groups, precision=precision,
                                     dimension_numbers=("N" + spec + "C", spec + "IO", "N" + spec + "C"))
        return jnp.transpose(y, (0, nsp + 1) + tuple(range(1, nsp + 1)))
    return lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation, feature_group_count=groups,
                                    precision=precision)
