"""max_pool2d, its gradient max_pool2d_grad, avg_pool2d and global_avg_pool2d.

max_pool2d's VJP is the native ``max_pool2d_grad`` op: every back end has a fast native form of it
(XLA's select-and-scatter, which JAX's own reduce-window VJP emits), where the gather/scatter_add
over window indices that it replaced ran ~3x slower on XLA:CPU (docs/benchmarks.md). The avg pool
VJP still gathers the windows with constant flat indices and scatter_adds the cotangents back."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..errors import ShapeError
from ..ir.types import TensorType
from ..ir.dims import is_static
from ..trace.tensor import apply
from ._nn_common import (F32, F64, _check_pairs, _fmt, _require_nchw, _static_spatial, _window_out, _windows,
                         _zero)
from ._shapes import require_float
from .common import compute_dtype, numel
from .registry import Attr, OpDef, Sample, register_op
# modules, not names: the op families use each other's functions (looked up at call time)
from . import (creation as _creation, reduction as _reduction,
               shape_ops as _shape_ops)

__all__: list[str] = []


# ---- pooling --------------------------------------------------------------------------------

def _pool_geometry(h, w, attrs):
    """Output size and the extra bottom/right padding ceil_mode needs (PyTorch rules)."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    dims = []
    for size, k, s, p0, p1 in ((h, kh, sh, pt, pb), (w, kw, sw, pl, pr)):
        span = size + p0 + p1 - k
        if attrs["ceil_mode"]:
            out = -(-span // s) + 1
            if (out - 1) * s >= size + p0:  # the last window must start inside the input or left pad
                out -= 1
        else:
            out = span // s + 1
        extra = max(0, (out - 1) * s + k - (size + p0 + p1))
        dims.append((out, extra))
    return dims


def _pool_rule(op):
    def rule(ts, attrs):
        x = ts[0]
        require_float(x, f"{op}'s input")
        _check_pairs(attrs, op)
        _require_nchw(x, op)
        (kh, kw), (pt, pl, pb, pr) = attrs["kernel"], attrs["pads"]
        if 2 * max(pt, pb) > kh or 2 * max(pl, pr) > kw:
            raise ShapeError(f"{op}: pads {attrs['pads']} must be at most half the kernel {attrs['kernel']}")
        # symbolic H/W: max pooling in floor mode (ceil_mode's last-window rule and avg's divisor
        # map are computed from static sizes by the lowerings)
        if not (is_static(x.shape[2]) and is_static(x.shape[3])) and not attrs["ceil_mode"] and op == "max_pool2d":
            (sh, sw) = attrs["strides"]
            oh = (_pool_geometry(x.shape[2], 1 + pl + pr, attrs)[0][0] if is_static(x.shape[2])
                  else _window_out(x.shape[2], kh, sh, pt, pb, 1, op, 2))
            ow = (_pool_geometry(1 + pt + pb, x.shape[3], attrs)[1][0] if is_static(x.shape[3])
                  else _window_out(x.shape[3], kw, sw, pl, pr, 1, op, 3))
            return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]
        h, w = _static_spatial(x, op)
        if h + pt + pb < kh or w + pl + pr < kw:
            raise ShapeError(f"{op}: the kernel {kh}x{kw} is larger than the padded input {h + pt + pb}x"
                             f"{w + pl + pr} of {_fmt(x)}", hint="use a smaller kernel or global_avg_pool2d")
        (oh, _), (ow, _) = _pool_geometry(h, w, attrs)
        return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]
    return rule


def _pool_windows(x, attrs, fill):
    (oh, eh), (ow, ew) = _pool_geometry(x.shape[2], x.shape[3], attrs)
    pt, pl, pb, pr = attrs["pads"]
    (kh, kw), s = attrs["kernel"], attrs["strides"]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew)), constant_values=fill)
    return _windows(xp, kh, kw, s, (1, 1), oh, ow)


def _avg_divisor(h, w, attrs):
    """(OH, OW) window sizes: clipped to the padded input (count_include_pad) or to the input."""
    (oh, _), (ow, _) = _pool_geometry(h, w, attrs)
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = attrs["kernel"], attrs["strides"], attrs["pads"]
    counts = []
    for out, size, k, s, p0, p1 in ((oh, h, kh, sh, pt, pb), (ow, w, kw, sw, pl, pr)):
        start = np.arange(out) * s - p0
        end = np.minimum(start + k, size + p1)
        if not attrs["count_include_pad"]:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.outer(counts[0], counts[1]).astype(np.float64)


def _max_pool_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    win = _pool_windows(x.astype(cd), attrs, -np.inf)
    return [win.max(axis=(4, 5)).astype(x.dtype)]


def _avg_pool_ref(xs, attrs, env=None):
    x = xs[0]
    cd = compute_dtype(x)
    win = _pool_windows(x.astype(cd), attrs, 0)
    div = _avg_divisor(x.shape[2], x.shape[3], attrs).astype(cd)
    return [(win.sum(axis=(4, 5)) / div).astype(x.dtype)]


def _pool_indices(h, w, attrs):
    """Flat indices into the padded (Hp*Wp) image of every window element: (OH, OW, kh, kw)."""
    (oh, eh), (ow, ew) = _pool_geometry(h, w, attrs)
    pt, pl, pb, pr = attrs["pads"]
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["strides"]
    hp, wp = h + pt + pb + eh, w + pl + pr + ew
    rows = (np.arange(oh) * sh)[:, None] + np.arange(kh)[None, :]  # (OH, kh)
    cols = (np.arange(ow) * sw)[:, None] + np.arange(kw)[None, :]  # (OW, kw)
    idx = rows[:, None, :, None] * wp + cols[None, :, None, :]     # (OH, OW, kh, kw)
    return idx.astype(np.int64), (hp, wp), (pt, pl, pb + eh, pr + ew)


def _pool_patches(x, attrs, fill):
    """(N, C, OH, OW, kh, kw) patches of x as graph ops, plus what the scatter back needs."""

    idx, (hp, wp), (pt, pl, pb, pr) = _pool_indices(x.shape[2], x.shape[3], attrs)
    xp = _shape_ops.pad(x, [0, 0, 0, 0, pt, pb, pl, pr], value=fill) if (pt or pl or pb or pr) else x
    flat = _shape_ops.reshape(xp, [x.shape[0], x.shape[1], hp * wp])
    idx_t = _creation.constant(idx)
    return _shape_ops.gather(flat, idx_t, 2), idx_t, (hp, wp), (pt, pl, pb, pr)


def _pool_scatter(x, contrib, idx_t, hp_wp, pads):
    """Sum the per-window contributions (N, C, OH, OW, kh, kw) back onto x's positions."""

    hp, wp = hp_wp
    pt, pl, _, _ = pads
    base = _shape_ops.broadcast_to(_zero(x), [x.shape[0], x.shape[1], hp * wp])
    gflat = _shape_ops.scatter_add(base, idx_t, contrib, 2)
    g = _shape_ops.reshape(gflat, [x.shape[0], x.shape[1], hp, wp])
    if (hp, wp) != (x.shape[2], x.shape[3]):
        g = _shape_ops.slice(g, [pt, pl], [pt + x.shape[2], pl + x.shape[3]], [2, 3])
    return g

def _max_pool_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    return [apply("max_pool2d_grad", inputs[0], g, **attrs)]


def _max_pool_grad_rule(ts, attrs):
    x, g = ts
    (y,) = _pool_rule("max_pool2d_grad")([x], attrs)
    if g.dtype != x.dtype or g.rank != 4 or tuple(g.shape) != tuple(y.shape):
        raise ShapeError(f"max_pool2d_grad: the cotangent must have the pooled type {_fmt(y)} of the input "
                         f"{_fmt(x)}, got {_fmt(g)}", hint="pass max_pool2d(x)'s cotangent with the same attrs")
    return [x]


def _first_max_positions(x, attrs):
    """Per window (N, C, OH, OW): the flat index into the padded image of its first maximum (row-major
    window order, padding never preferred over an equal earlier element), plus the padding geometry."""
    idx, hp_wp, pads = _pool_indices(x.shape[2], x.shape[3], attrs)
    win = _pool_windows(x, attrs, -np.inf)
    n, c, oh, ow, kh, kw = win.shape
    arg = win.reshape(n, c, oh, ow, kh * kw).argmax(axis=-1)
    return idx.reshape(oh, ow, kh * kw)[np.arange(oh)[:, None], np.arange(ow)[None, :], arg], hp_wp, pads


def _max_pool_grad_ref(xs, attrs, env=None):
    x, g = xs
    cd = compute_dtype(x)
    pos, (hp, wp), (pt, pl, _, _) = _first_max_positions(x.astype(cd), attrs)
    n, c, h, w = x.shape
    out = np.zeros((n * c, hp * wp), cd)
    rows = np.arange(n * c)[:, None]
    np.add.at(out, (rows, pos.reshape(n * c, -1)), g.astype(cd).reshape(n * c, -1))
    out = out.reshape(n, c, hp, wp)[:, :, pt:pt + h, pl:pl + w]
    return [np.ascontiguousarray(out).astype(x.dtype)]


def _max_pool_grad_vjp(inputs, outputs, cots, attrs):
    """Linear in the cotangent ``g``: d/dg picks each window's first-max element of the incoming
    cotangent (a one-hot over the window); piecewise constant in ``x`` (no cotangent)."""
    c = cots[0]
    if c is None:
        return [None, None]
    x = inputs[0]
    kh, kw = attrs["kernel"]
    xp, _, _, _ = _pool_patches(x, attrs, -math.inf)
    cp, _, _, _ = _pool_patches(c, attrs, 0.0)
    shape = [x.shape[0], x.shape[1], xp.shape[2], xp.shape[3], kh * kw]
    pick = _creation.one_hot(_reduction.argmax(_shape_ops.reshape(xp, shape), -1), kh * kw, x.dtype)
    return [None, _reduction.sum(pick * _shape_ops.reshape(cp, shape), [4])]


def _avg_pool_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    idx, hp_wp, pads = _pool_indices(x.shape[2], x.shape[3], attrs)
    div = _avg_divisor(x.shape[2], x.shape[3], attrs).astype(_dt.to_numpy_dtype(x.dtype))
    scaled = _shape_ops.unsqueeze(g / _creation.constant(div, x.dtype), [4, 5])
    kh, kw = attrs["kernel"]
    contrib = _shape_ops.broadcast_to(scaled, list(g.shape) + [kh, kw])
    return [_pool_scatter(x, contrib, _creation.constant(idx), hp_wp, pads)]


def _pool_flops(ins, outs, attrs):
    kh, kw = attrs["kernel"]
    return numel(outs[0]) * kh * kw


_POOL_ATTRS = {"kernel": Attr("ints"), "strides": Attr("ints", [1, 1]), "pads": Attr("ints", [0, 0, 0, 0]),
               "ceil_mode": Attr("bool", False)}

register_op(OpDef(
    name="max_pool2d", family="nn", num_inputs=(1, 1), attrs=dict(_POOL_ATTRS), type_rule=_pool_rule("max_pool2d"),
    reference=_max_pool_ref, flops=_pool_flops, vjp=_max_pool_vjp,
    doc="Max over kh x kw windows (NCHW); padding never wins; ceil_mode as in PyTorch.",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32)], attrs={"kernel": [2, 2], "strides": [2, 2]}, domain=["distinct"]),
        Sample([TensorType(("batch", 2, 5, 6), F32)], attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0]},
               bind={"batch": 2}, domain=["distinct"], note="symbolic batch, padding"),
        Sample([TensorType((1, 2, 5, 5), F64)], attrs={"kernel": [2, 2], "strides": [2, 2], "ceil_mode": True},
               domain=["distinct"], note="ceil_mode"),
        Sample([TensorType((1, 1, 4, 5), F64)], attrs={"kernel": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1],
                                                     "ceil_mode": True}, domain=["distinct"]),
        Sample([TensorType(("batch", 2, "h", "w"), F32)], attrs={"kernel": [2, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
               bind={"batch": 2, "h": 5, "w": 6}, domain=["distinct"], grad=False,
               note="symbolic H, W (floor mode): floor((h+2)/2) and floor((w+1)/2)"),
    ],
))
register_op(OpDef(
    name="max_pool2d_grad", family="nn", num_inputs=(2, 2), attrs=dict(_POOL_ATTRS), type_rule=_max_pool_grad_rule,
    reference=_max_pool_grad_ref, flops=lambda i, o, a: numel(i[1]) * a["kernel"][0] * a["kernel"][1],
    vjp=_max_pool_grad_vjp, nondiff_inputs=(0,),
    doc="max_pool2d's VJP: max_pool2d_grad(x, g) adds each window's cotangent g onto the first maximum "
        "of x in that window (row-major window order; a tie goes to the earlier element, as in XLA's "
        "select-and-scatter and PyTorch). Same attrs as max_pool2d.",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32), TensorType((2, 3, 2, 2), F32)],
               attrs={"kernel": [2, 2], "strides": [2, 2]}, domain=["distinct", "any"]),
        Sample([TensorType(("batch", 2, 5, 6), F32), TensorType(("batch", 2, 3, 3), F32)],
               attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0]},
               bind={"batch": 2}, domain=["distinct", "any"], note="symbolic batch, padding"),
        Sample([TensorType((1, 1, 4, 5), F64), TensorType((1, 1, 4, 3), F64)],
               attrs={"kernel": [3, 3], "strides": [1, 2], "pads": [1, 1, 1, 1], "ceil_mode": True},
               domain=["distinct", "any"], note="overlapping windows, ceil_mode"),
        Sample([TensorType((1, 2, 4, 4), F64), TensorType((1, 2, 2, 2), F64)],
               attrs={"kernel": [2, 2], "strides": [2, 2]},
               domain=[np.array([[[[1., 1, 0, 2], [1, 1, 2, 0], [3, 0, 5, 5], [0, 3, 5, 5]]] * 2]), "any"],
               note="ties: the first maximum of each window takes the cotangent"),
    ],
))
register_op(OpDef(
    name="avg_pool2d", family="nn", num_inputs=(1, 1), attrs=dict(_POOL_ATTRS, count_include_pad=Attr("bool", True)),
    type_rule=_pool_rule("avg_pool2d"), reference=_avg_pool_ref, flops=_pool_flops, vjp=_avg_pool_vjp,
    doc="Mean over kh x kw windows (NCHW). The divisor is the window clipped to the padded input "
        "(count_include_pad=True) or to the input (False); ceil_mode overhang never counts (PyTorch).",
    samples=[
        Sample([TensorType((2, 3, 4, 4), F32)], attrs={"kernel": [2, 2], "strides": [2, 2]}),
        Sample([TensorType(("batch", 2, 5, 6), F32)], attrs={"kernel": [3, 2], "strides": [2, 2], "pads": [1, 1, 1, 0],
                                                           "count_include_pad": False},
               bind={"batch": 2}, note="symbolic batch, padding excluded"),
        Sample([TensorType((1, 2, 5, 5), F64)], attrs={"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                                     "ceil_mode": True}, note="ceil_mode, padding included"),
    ],
))


def _gap_rule(ts, attrs):
    x = ts[0]
    require_float(x, "global_avg_pool2d's input")
    _require_nchw(x, "global_avg_pool2d")
    return [TensorType((x.shape[0], x.shape[1], 1, 1), x.dtype)]


def _gap_ref(xs, attrs, env=None):
    x = xs[0]
    return [x.astype(compute_dtype(x)).mean(axis=(2, 3), keepdims=True).astype(x.dtype)]


def _gap_vjp(inputs, outputs, cots, attrs):
    g = cots[0]
    if g is None:
        return [None]
    x = inputs[0]
    return [_shape_ops.broadcast_to(g / _shape_ops.dim_size(x, [2, 3], x.dtype), x.shape)]


def _gap_decompose(inputs, attrs):
    return [_reduction.mean(inputs[0], [2, 3], keepdims=True)]


register_op(OpDef(
    name="global_avg_pool2d", family="nn", num_inputs=(1, 1), type_rule=_gap_rule, reference=_gap_ref,
    flops=lambda i, o, a: numel(i[0]), vjp=_gap_vjp, decompose=_gap_decompose,
    doc="Mean over H and W: (N, C, H, W) -> (N, C, 1, 1).",
    samples=[Sample([TensorType((2, 3, 4, 5), F32)]),
             Sample([TensorType(("batch", 3, 2, 2), F32)], bind={"batch": 2}),
             Sample([TensorType(("batch", 2, "h", "w"), F64)], bind={"batch": 1, "h": 3, "w": 2},
                    note="symbolic spatial dims")],
))
