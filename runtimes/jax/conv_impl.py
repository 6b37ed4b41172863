"""How a ``conv2d`` (any spatial rank, NCHW / OIHW) becomes XLA on the JAX back end, chosen by
static shape: XLA's own convolution, or an im2col + matmul (strided slices stacked into a patch
matrix, one ``dot_general``).

Why: XLA:CPU runs a weight-gradient convolution (graphforge's conv VJP writes it as a conv of the
transposed input by the transposed cotangent: a "kernel" the size of a feature map, the batch as
channels, a handful of output positions) through its generic spatial kernel; one matmul over
per-output-position slices does the same contraction. The other lowerings here (``"nhwc"``:
channels-last at the op's edges; ``"shift"``: a sum of shifted, scaled slices; ``"im2col"`` for a
forward conv) are kept as measured candidates, reachable only through ``method=`` (tests and
``benchmarks/bench_conv_candidates.py``); their numbers are in docs/benchmarks.md.

``conv_general(x, w, strides, padding, dilation, groups, precision, method=None)`` is what the
``conv2d`` and (stride-1) ``conv_transpose2d`` lowerings call; ``choose(...)`` names the method a
shape gets.
"""
from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general", "choose", "METHODS"]

METHODS = ("xla", "im2col", "nhwc", "shift")


def _out_sizes(sizes, kernel, strides, padding, dilation):
    return [(sizes[i] + lo + hi - dilation[i] * (kernel[i] - 1) - 1) // strides[i] + 1
            for i, (lo, hi) in enumerate(padding)]


def choose(x_shape, w_shape, strides, padding, dilation, groups) -> str:
    """The method a convolution gets by shape: ``"xla"`` for every shape today. Each alternative
    measured slower inside a train step on XLA:CPU, or no faster beyond the noise of a shared
    machine (docs/benchmarks.md, "candidates that did not pay"): im2col of the weight-gradient
    convolutions was level on LeNet and 1.8x slower on ResNet-8; shift-and-add, 7x faster alone on
    LeNet's 1-channel conv1, made the step 1.6x slower because XLA fuses (and recomputes) the sum
    into every consumer; channels-last edges are what XLA's layout assignment already does.
    A shape that measures faster another way gets its branch here."""
    return "xla"


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
    if method == "im2col" and groups == 1 and all(lo >= 0 and hi >= 0 for lo, hi in padding):
        return _im2col(x, w, strides, padding, dilation, precision)
    if method == "shift" and groups == 1 and all(lo >= 0 and hi >= 0 for lo, hi in padding):
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
